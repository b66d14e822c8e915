//! The OCI distribution HTTP API. So far, its pure parts: range headers, upload tokens and
//! error codes. Each takes text in and gives values or typed errors out, with no sockets.

pub mod error_code;
pub mod range;
pub mod routes;
pub mod token;
