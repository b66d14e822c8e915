//! One client's HTTP/1.1 connection to the server: the bench's kept-alive [`Connection`] (on the
//! crate's registry client, with no retries, so every answer the server gave is the one seen),
//! driven from a plain thread by a runtime of its own.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use layerstore::bench::client::{self, Connection, Target};

/// Largest body read (blobs and manifests here are a few KiB).
const BODY_LIMIT: usize = 1 << 20;

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first OCI error code of a JSON error body.
    pub fn code(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(json["errors"][0]["code"].as_str()?.to_owned())
    }

    /// Status and the start of the body, for an error message.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(400)]).into_owned();
        format!("{} {body}", self.status)
    }
}

/// A connection and the runtime that drives it.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    conn: Connection,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let target = runtime
            .block_on(Target::resolve(&format!("http://{addr}")))
            .unwrap();
        Http {
            runtime,
            conn: Connection::new(target),
        }
    }

    /// Sends one request and reads the whole answer; `Err` only when there is no answer.
    pub fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let mut builder = client::request(method.clone(), path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = if body.is_empty() {
            client::empty()
        } else {
            client::full(Bytes::copy_from_slice(body))
        };
        let request = builder.body(body).map_err(|e| e.to_string())?;
        let conn = &mut self.conn;
        self.runtime
            .block_on(async {
                let response = conn.send("gc-load", request).await?;
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = client::read_body("gc-load", response.into_body(), BODY_LIMIT).await?;
                Ok(Answer {
                    status,
                    headers,
                    body,
                })
            })
            .map_err(|e: layerstore::bench::BenchError| format!("{method} {path}: {e}"))
    }

    /// The path and query of the `Location` of `answer`, given to a request for `path`.
    pub fn location(&self, path: &str, answer: &Answer) -> Result<String, String> {
        answer
            .header("location")
            .and_then(|location| self.conn.target().resolve_location(path, location))
            .ok_or_else(|| format!("{path}: no usable Location in {}", answer.describe()))
    }
}

/// `answer` if its status is `expected`, else an error naming `what`.
pub fn expect(answer: Answer, expected: u16, what: &str) -> Result<Answer, String> {
    if answer.status == expected {
        Ok(answer)
    } else {
        Err(format!(
            "{what}: expected {expected}, got {}",
            answer.describe()
        ))
    }
}
