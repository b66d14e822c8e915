//! layerstore mounted under `/v2` of an axum application that has routes of its own, with an
//! access rule of its own: anyone may pull, only repositories under `team-a/` may be written.
//!
//! ```sh
//! cargo run --example axum -- [STORAGE] [ADDR]   # defaults: a temporary directory, 127.0.0.1:5000
//! skopeo copy oci:image:v1 docker://127.0.0.1:5000/team-a/app:v1 --dest-tls-verify=false
//! curl http://127.0.0.1:5000/healthz
//! ```
//!
//! It prints `listening on ADDR` once it accepts connections. `WRITABLE_PREFIX` replaces
//! `team-a/` (the overhead benchmark, `benches/embedding_overhead.sh`, writes under `bench-`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use layerstore::auth::Action;
use layerstore::http::{
    AccessControl, AccessRequest, BoxFuture, ClientAddr, Decision, GrantedAccess, RegistryBuilder,
    RegistryService,
};

/// Anyone may pull; pushes and deletes only under one prefix (`team-a/`).
#[derive(Debug)]
struct TeamAWrites {
    prefix: String,
}

impl AccessControl for TeamAWrites {
    fn decide<'a>(&'a self, request: AccessRequest<'a>) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            let writes_elsewhere = request.needed.iter().any(|scope| {
                scope.resource_type == "repository"
                    && !scope.name.starts_with(&self.prefix)
                    && scope.actions.iter().any(|action| *action != Action::Pull)
            });
            if writes_elsewhere {
                let reason = format!("only repositories under {} are writable", self.prefix);
                return Decision::Deny(reason);
            }
            // Everything else as the registry's own rules say (its tokens, its htpasswd).
            GrantedAccess.decide(request).await
        })
    }
}

/// The application: its own `/healthz`, and the registry for everything under `/v2/`.
fn app(registry: RegistryService) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        // The registry routes by the full path, so it is mounted without stripping `/v2`.
        .route_service("/v2/", registry.clone())
        .route_service("/v2/{*path}", registry)
        // The client's address, for the registry's access log and events.
        .layer(axum::middleware::map_request(client_addr))
}

async fn client_addr(ConnectInfo(addr): ConnectInfo<SocketAddr>, mut request: Request) -> Request {
    request.extensions_mut().insert(ClientAddr(addr));
    request
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let temporary = tempfile::tempdir()?;
    let storage = args
        .next()
        .unwrap_or_else(|| temporary.path().display().to_string());
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5000").parse()?;

    let registry = RegistryBuilder::from_storage_url(&storage)?
        .access_control(TeamAWrites {
            prefix: std::env::var("WRITABLE_PREFIX").unwrap_or_else(|_| "team-a/".into()),
        })
        .build()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    // As `layerstore serve` does: no Nagle delay on small answers (a range GET, a 202).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = app(registry).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
