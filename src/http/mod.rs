//! The OCI distribution HTTP API. So far, its pure parts: range headers, upload tokens and
//! error codes. Each takes text in and gives values or typed errors out, with no sockets.

pub mod access;
pub mod access_log;
pub mod app;
pub mod body;
pub mod error;
pub mod error_code;
mod handlers;
pub mod ops;
pub mod range;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod tls;
pub mod token;
