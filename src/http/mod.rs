//! The OCI distribution HTTP API. So far, its pure parts: range headers, upload tokens and
//! error codes. Each takes text in and gives values or typed errors out, with no sockets.

pub mod app;
pub mod body;
pub mod error;
pub mod error_code;
mod handlers;
pub mod range;
pub mod routes;
pub mod server;
pub mod token;
