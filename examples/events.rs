//! A registry served by plain hyper that prints every push event as a JSON line on stdout:
//! each blob and manifest pushed, once, after it is durable.
//!
//! ```sh
//! cargo run --example events -- [STORAGE] [ADDR]   # defaults: a temporary directory, 127.0.0.1:5000
//! ```
//!
//! It prints `listening on ADDR` on stderr once it accepts connections; stdout holds only events.

use std::io::Write;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use layerstore::http::{ClientAddr, Event, EventAction, EventSink, RegistryBuilder};

/// Writes push events to stdout, one JSON object per line.
#[derive(Debug)]
struct PrintPushes;

impl EventSink for PrintPushes {
    fn deliver(&self, event: &Event) {
        if event.action != EventAction::Push {
            return;
        }
        let line = serde_json::to_string(event).expect("events serialize");
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (the reader went away) is not the registry's problem.
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    }
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
        .event_sink(PrintPushes)
        .build()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        let registry = registry.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            let registry = registry.clone();
            async move { Ok::<_, std::convert::Infallible>(registry.handle(request).await) }
        });
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}
