//! The client's patience, against a scripted server on 127.0.0.1: 503 and 429 answers are
//! retried (after `Retry-After` when given), a connection closed before an answer is retried,
//! an error that is not transient is not, and a server that never answers costs exactly the
//! configured timeout.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use layerstore::client::{ClientError, ClientOptions, Registry};
use parking_lot::Mutex;

/// What the scripted server does with one request.
#[derive(Clone, Copy)]
enum Step {
    /// Answer with this status (and `Retry-After: 1` when the flag is set).
    Status(u16, bool),
    /// Close the connection without answering.
    Hang,
    /// Never answer (keep the connection open).
    Silence,
    /// Answer with this status, these headers and this body.
    Answer(u16, &'static [(&'static str, &'static str)], &'static str),
}

struct Script {
    steps: Mutex<VecDeque<Step>>,
    requests: AtomicUsize,
}

/// Serves `steps` in order, then 200 to everything.
async fn scripted(steps: &[Step]) -> (SocketAddr, Arc<Script>) {
    let script = Arc::new(Script {
        steps: Mutex::new(steps.iter().copied().collect()),
        requests: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::clone(&script);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let script = Arc::clone(&shared);
            tokio::spawn(async move {
                let step = {
                    script.requests.fetch_add(1, Ordering::SeqCst);
                    script
                        .steps
                        .lock()
                        .pop_front()
                        .unwrap_or(Step::Status(200, false))
                };
                match step {
                    Step::Hang => drop(stream),
                    Step::Silence => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        drop(stream);
                    }
                    Step::Status(..) | Step::Answer(..) => {
                        let (code, headers, body): (u16, &[(&str, &str)], &str) = match step {
                            Step::Status(code, true) => (code, &[("retry-after", "1")], "{}"),
                            Step::Status(code, false) => (code, &[], "{}"),
                            Step::Answer(code, headers, body) => (code, headers, body),
                            Step::Hang | Step::Silence => unreachable!("matched above"),
                        };
                        let service = service_fn(
                            move |_request: Request<hyper::body::Incoming>| async move {
                                let mut response =
                                    Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                                *response.status_mut() = StatusCode::from_u16(code).unwrap();
                                for (name, value) in headers {
                                    response.headers_mut().insert(*name, value.parse().unwrap());
                                }
                                Ok::<_, Infallible>(response)
                            },
                        );
                        // One request per connection, so each step is one request.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    (addr, script)
}

fn options() -> ClientOptions {
    ClientOptions {
        backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        ..ClientOptions::plain_http()
    }
}

#[tokio::test]
async fn busy_answers_and_dropped_connections_are_retried() {
    let steps = [
        Step::Status(503, false),
        Step::Hang,
        Step::Status(429, false),
    ];
    let (addr, script) = scripted(&steps).await;
    let registry = Registry::new(&addr.to_string(), options()).unwrap();
    registry.ping().await.unwrap();
    assert_eq!(script.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (addr, script) = scripted(&[Step::Status(503, true)]).await;
    let registry = Registry::new(&addr.to_string(), options()).unwrap();
    let started = Instant::now();
    registry.ping().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(script.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retries_stop_at_the_limit_and_other_errors_are_not_retried() {
    let (addr, script) = scripted(&[Step::Status(500, false); 10]).await;
    let registry = Registry::new(
        &addr.to_string(),
        ClientOptions {
            retries: 2,
            ..options()
        },
    )
    .unwrap();
    let error = registry.ping().await.unwrap_err();
    assert_eq!(
        error.status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR),
        "{error}"
    );
    assert_eq!(
        script.requests.load(Ordering::SeqCst),
        3,
        "one try and two retries"
    );

    let (addr, script) = scripted(&[Step::Status(404, false)]).await;
    let registry = Registry::new(&addr.to_string(), options()).unwrap();
    assert!(registry.ping().await.is_err());
    assert_eq!(
        script.requests.load(Ordering::SeqCst),
        1,
        "a 404 is an answer, not a failure"
    );
}

#[tokio::test]
async fn a_silent_server_costs_the_configured_timeout() {
    let (addr, _script) = scripted(&[Step::Silence; 10]).await;
    let quick = ClientOptions {
        timeout: Duration::from_millis(300),
        retries: 1,
        ..options()
    };
    let registry = Registry::new(&addr.to_string(), quick).unwrap();
    let started = Instant::now();
    let error = registry.ping().await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// A PUT that committed but whose answer was lost: the retry finds the session gone (404
/// `BLOB_UPLOAD_UNKNOWN`), and the blob being in the repository is then the answer. Without
/// the blob, the 404 stands.
#[tokio::test]
async fn a_retried_put_whose_first_attempt_committed_succeeds() {
    const UNKNOWN: &str = r#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"gone"}]}"#;
    let session = Step::Answer(202, &[("location", "/v2/r/blobs/uploads/abc")], "");
    let steps = |blob_there: Step| {
        [
            Step::Status(404, false),        // HEAD: not there yet
            session,                         // POST ?digest=: a session instead
            Step::Hang,                      // PUT: committed, answer lost
            Step::Answer(404, &[], UNKNOWN), // PUT again: the session is gone
            blob_there,                      // HEAD: is the blob there now?
        ]
    };
    let (addr, script) = scripted(&steps(Step::Status(200, false))).await;
    let registry = Registry::new(&addr.to_string(), options()).unwrap();
    registry
        .push_blob_bytes("r", Bytes::from_static(b"layer"))
        .await
        .unwrap();
    assert_eq!(script.requests.load(Ordering::SeqCst), 5);

    let (addr, _) = scripted(&steps(Step::Status(404, false))).await;
    let registry = Registry::new(&addr.to_string(), options()).unwrap();
    let error = registry
        .push_blob_bytes("r", Bytes::from_static(b"layer"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Status { code: Some(code), .. } if code == "BLOB_UPLOAD_UNKNOWN"),
        "{error}"
    );
}
