//! # layerstore
//!
//! A content-addressable blob store for container registries: resumable SHA-256 and TarSum,
//! storage laid out exactly like the distribution registry's, and an OCI distribution server.
//!
//! Read this crate from the bottom up; nothing calls upward:
//!
//! | module | what it is | I/O? |
//! |---|---|---|
//! | [`digest`] | `algorithm:hex` digests: parse, validate, print | pure |
//! | [`hash`] | resumable SHA-256/512 states, own and Go encodings | pure |
//! | [`names`] | validated repository names, tags, upload ids, references | pure |
//! | [`manifest`] | manifest parsing and validation, Accept, referrers, pagination | pure |
//! | [`tarsum`] | Docker TarSum v0/v1/dev: streaming, resumable, plain or gzip tar | pure |
//! | [`storage`] | storage drivers (filesystem, in-memory), validated paths, distribution's layout | files |
//! | [`store`] | blobs, resumable uploads, manifests, tags, referrers, purge, fsck | via a driver |
//! | [`filehash`] | hash files and streams with flat memory (one measured way to read files) | reads files |
//! | [`auth`] | htpasswd and registry-token (JWT) authentication, scopes, challenges | reads files |
//! | [`http`] | the OCI distribution API on hyper + tokio: routes, handlers, errors, tokens | sockets |
//! | [`metrics`] | Prometheus metric families of a server, text encoding, fsck textfiles | pure |
//! | `bench` (feature `bench`) | `layerstore bench`: verified throughput/latency client for any OCI registry | network |
//! | `fuzzing` (feature `fuzzing`) | entry points shared by the fuzz targets and the corpus replay test | pure |
//!
//! The binary (`src/main.rs`, `src/cli/`) is a thin clap front end over these modules.
//! `docs/design.md` follows a byte through them.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub mod bench;
pub mod client;
pub mod digest;
pub mod filehash;
#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
pub mod fuzzing;
pub mod hash;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod storage;
pub mod store;
pub mod tarsum;

pub use digest::{Digest, DigestError};
pub use hash::{Hasher, ResumableSha256, ResumableSha512, StateError};
pub use manifest::{Manifest, ManifestError, ParsedManifest};
pub use store::{Store, StoreError};
pub use tarsum::{TarSum, TarSumStream, TarsumError, TarsumStateError};
