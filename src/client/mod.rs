//! A registry client: the OCI distribution API from the other side.
//!
//! [`Registry`] speaks to one registry host over a pooled HTTP/1.1 + HTTP/2 connection pool
//! (rustls for HTTPS), authenticates as docker and podman do (Basic, or Bearer tokens from the
//! registry's token server, cached per scope), retries what can be retried, and verifies every
//! whole blob and manifest it reads against its digest.
//!
//! | module | what |
//! |---|---|
//! | [`reference`](mod@reference) | `HOST/REPO[:TAG][@DIGEST]` image references |
//! | [`challenge`] | `WWW-Authenticate` parsing |
//! | [`credentials`] | docker/podman auth files and credential helpers |
//! | [`layout`] | OCI image layouts on disk |
//! | `blobs`, `upload`, `manifests`, `listing`, `reader` | the API calls, as methods of [`Registry`] |
//!
//! ```
//! # layerstore::client::doctest::with_registry(|host| async move {
//! use layerstore::client::{ClientOptions, Registry};
//!
//! let registry = Registry::new(&host, ClientOptions::plain_http())?;
//! let digest = registry.push_blob_bytes("demo", "config".into()).await?;
//! assert_eq!(registry.blob_size("demo", &digest).await?, Some(6));
//! # Ok(()) });
//! ```

mod auth;
mod blobs;
pub mod challenge;
pub mod credentials;
#[doc(hidden)]
pub mod doctest;
mod download;
mod error;
mod files;
mod image;
pub mod layout;
mod listing;
mod location;
mod manifests;
mod options;
mod reader;
pub mod reference;
mod registry;
mod single_flight;
mod transfer;
mod transport;
mod upload;

pub use auth::Scopes;
pub use blobs::BlobStream;
pub use error::ClientError;
pub use image::{read_layout, read_remote, ManifestNode, PlatformFilter};
#[cfg(feature = "bench")]
pub(crate) use location::path_on;
pub use location::resolve_location;
pub use manifests::{Manifest, DEFAULT_ACCEPT, MAX_MANIFEST_BYTES};
pub use options::ClientOptions;
pub use reader::{BlobReader, BlockingBlobReader, READ_AHEAD};
pub use registry::Registry;
pub use transfer::{
    copy_image, pull_image, push_image, BlobOutcome, NoProgress, Progress, TransferOptions,
    TransferReport,
};
pub use upload::{ProgressHook, PushOptions, PushOutcome, SessionHook};
