//! Request handlers, one file per resource. A handler parses what the route did not (query,
//! headers, body), calls the store on a blocking thread, and builds the response.

pub mod base;
pub mod blobs;
mod common;
pub mod listing;
pub mod manifests;
mod upload_body;
pub mod uploads;
