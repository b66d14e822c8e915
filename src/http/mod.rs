//! The OCI distribution HTTP API on hyper + tokio.
//!
//! For embedders, three things: [`RegistryService`] (the whole API as a tower `Service`, made by
//! [`RegistryBuilder`]), and the two extension points, [`AccessControl`] (who may do what) and
//! [`EventSink`] (what happened). [`Server`] serves a `RegistryService` with connection limits, TLS and
//! graceful shutdown, as `layerstore serve` does. The rest are the pipeline's parts: routes,
//! handlers, error codes, ranges, upload tokens; the pure ones take text in and give values or
//! typed errors out, with no sockets.

pub mod access;
pub mod access_control;
pub mod access_log;
pub mod app;
pub mod body;
mod builder;
pub mod error;
pub mod error_code;
pub mod events;
mod handlers;
pub mod ops;
pub mod range;
pub mod request_id;
pub mod routes;
pub mod server;
mod service;
pub mod tls;
pub mod token;

pub use access_control::{AccessControl, AccessRequest, BoxFuture, Decision, GrantedAccess};
pub use app::ClientAddr;
pub use builder::{BuildError, RegistryBuilder};
pub use events::{Event, EventAction, EventRequest, EventSink, EventTarget};
pub use server::{Limits, Server};
pub use service::{RegistryService, ResponseFuture};
