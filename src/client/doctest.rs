//! Support for the client's doc examples: an in-process registry on 127.0.0.1.

use std::future::Future;

use super::error::ClientError;
use crate::http::app::AppState;
use crate::http::server::{Limits, Server};
use crate::http::token::TokenSigner;
use crate::store::Store;

/// Runs `example` against a fresh layerstore server on a temporary directory, given the
/// server's `HOST:PORT`; panics if the example fails.
pub fn with_registry<F, Fut>(example: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
    let root = std::env::temp_dir().join(format!(
        "layerstore-doctest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let result = runtime.block_on(async {
        let state = AppState::new(Store::filesystem(&root), TokenSigner::new("doctest"));
        let server = Server::bind(
            "127.0.0.1:0".parse().expect("an address"),
            state,
            Limits::default(),
        )
        .await
        .expect("bind 127.0.0.1:0");
        let address = server.local_addr().expect("a bound address");
        tokio::spawn(server.run(std::future::pending()));
        example(address.to_string()).await
    });
    let _ = std::fs::remove_dir_all(&root);
    if let Err(e) = result {
        panic!("example failed: {e}");
    }
}
