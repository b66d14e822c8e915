//! # layerstore
//!
//! A content-addressable blob store for container registries.
//!
//! Read this crate from the bottom up; nothing calls upward:
//!
//! | module | what it is | I/O? |
//! |---|---|---|
//! | [`digest`] | `algorithm:hex` digests: parse, validate, print | pure |
//! | [`hash`] | resumable SHA-256/512 states, own and Go encodings | pure |
//! | [`filehash`] | hash files (mapped windows) and streams with flat memory | reads files |
//! | [`http`] | OCI distribution API: `Range`/`Content-Range` parsing, `_state` tokens, error codes | pure (so far) |
//! | [`names`] | validated repository names, tags, upload ids | pure |
//! | [`storage`] | storage drivers (filesystem, in-memory), validated paths, distribution's layout | files |
//! | [`store`] | blob store: links, resumable uploads, atomic publish, purge, fsck | files |
//! | [`manifest`] | manifest parsing and validation, Accept, referrers, pagination | pure |
//! | [`fuzzing`] | entry points shared by the fuzz targets and the corpus replay test | pure |
//!
//! The binary (`src/main.rs`, `src/cli/`) is a thin clap front end over these modules.
//! `docs/design.md` follows a byte through them.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
pub mod filehash;
pub mod fuzzing;
pub mod hash;
pub mod http;
pub mod manifest;
pub mod names;
pub mod storage;
pub mod store;

pub use digest::{Digest, DigestError};
pub use hash::{Hasher, ResumableSha256, ResumableSha512, StateError};
pub use manifest::{Manifest, ManifestError, ParsedManifest};
