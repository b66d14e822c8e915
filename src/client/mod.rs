//! A registry client: the OCI distribution API from the other side.
//!
//! So far its pure parts: image references, `WWW-Authenticate` challenges, and the credential
//! files docker and podman keep.

pub mod challenge;
pub mod credentials;
mod files;
pub mod layout;
pub mod reference;
