//! Fuzz entry for the S3 driver on whatever an S3 store answers.
//!
//! The XML is parsed by `aws-sdk-s3`; what is fuzzed is the driver's own code on what the SDK
//! hands back: odd keys, sizes, prefixes, truncation flags, continuation tokens, upload ids,
//! part numbers, errors. The driver is a real [`S3Driver`] whose HTTP client is [`Server`]:
//! it answers each request, in order, with the next answer of the fuzz input, and keeps
//! repeating the last one (a store stuck on one answer), so nothing touches the network. The
//! SDK's timers are [`NoWaiting`]: retry backoffs take no time and timeouts never fire.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_sdk_s3::config::{
    AsyncSleep, HttpClient, RuntimeComponents, SharedAsyncSleep, SharedHttpClient, Sleep,
};
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};

use crate::storage::s3::{S3Config, S3Driver};
use crate::storage::{DriverPath, FileInfo, StorageDriver, WalkControl, MAX_CONTENT_LEN};

/// Most requests one driver call may make. A call that goes on asking a store that keeps
/// giving the same answer would never end; past this it gets 400s and the target fails.
const MAX_REQUESTS: usize = 1000;

/// The paths driver calls are made on, picked by the high bits of the first byte.
const PATHS: [&str; 4] = [
    "/",
    "/docker/registry/v2/repositories/r/_uploads",
    "/a",
    "/a/b/data",
];

/// The S3 driver on a scripted store. The first byte picks the call (low 4 bits) and the
/// path (high bits); the rest is the store's answers, separated by NUL bytes. An answer is
/// `STATUS\nName: value\n…\n\nBODY` when it starts with three digits and a newline, else a
/// 200 whose body is the whole answer (XML, usually).
///
/// Never panics, never hangs (at most `MAX_REQUESTS` (1,000) requests per call, even when every
/// answer says "more"), and what it returns stays inside the path asked about: a listing gives
/// sorted, distinct direct children; a walk visits only paths below, each once; `stat` speaks
/// of the path itself; a small file's content is at most [`MAX_CONTENT_LEN`] bytes.
pub fn s3_xml(data: &[u8]) {
    let Some((&selector, script)) = data.split_first() else {
        return;
    };
    let _one_at_a_time = lock(serial());
    let (driver, server) = offline_driver();
    server.load(script);
    let path =
        DriverPath::parse(PATHS[usize::from(selector >> 4) % PATHS.len()]).expect("a valid path");
    call(driver, &path, selector & 0x0f);
    let served = server.served();
    assert!(
        served <= MAX_REQUESTS,
        "call {} made {served} requests: it loops on a store that repeats itself",
        selector & 0x0f
    );
}

/// One driver call, `which` of them, with its checks.
fn call(driver: &S3Driver, path: &DriverPath, which: u8) {
    match which {
        0 => {
            if let Ok(children) = driver.list(path) {
                assert!(children.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
                for child in &children {
                    assert_eq!(child.parent().as_ref(), Some(path), "{child} is no child");
                }
            }
        }
        1 => walk(driver, path),
        2 => {
            if let Ok(info) = driver.stat(path) {
                assert_eq!(&info.path, path);
            }
        }
        3 => drop(driver.append_size(path)),
        4 => drop(driver.file_size(path)),
        5 => drop(driver.delete(path)),
        6 => {
            let second = path.join("x").expect("a valid path");
            drop(driver.delete_files(&[path.clone(), second]));
        }
        7 => drop(driver.sweep_temp_files(SystemTime::now())),
        8 => drop(driver.finish_appends(path)),
        9 => {
            if let Ok(content) = driver.get_content(path) {
                assert!(content.len() as u64 <= MAX_CONTENT_LEN);
            }
        }
        10 => drop(driver.open_append(path)),
        _ => {
            if let Ok(reader) = driver.reader(path, 0) {
                use std::io::Read;
                let _ = reader.take(1 << 20).read_to_end(&mut Vec::new());
            }
        }
    }
}

/// A walk that skips directories whose name starts with `_`, as the store's walks skip
/// `_manifests` and `_uploads`.
fn walk(driver: &S3Driver, path: &DriverPath) {
    let mut seen = std::collections::BTreeSet::new();
    let mut visit = |info: &FileInfo| {
        assert!(
            info.path.starts_with(path) && info.path != *path,
            "{} is not below {path}",
            info.path
        );
        assert!(
            seen.insert(info.path.clone()),
            "{} visited twice",
            info.path
        );
        Ok(if info.is_dir && info.path.name().starts_with('_') {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        })
    };
    let _ = driver.walk(path, &mut visit);
}

fn serial() -> &'static Mutex<()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    &SERIAL
}

/// A lock that a failed assertion elsewhere (which poisons it) does not break.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One driver and its store per process: a driver owns a runtime and its thread.
fn offline_driver() -> &'static (S3Driver, Server) {
    static DRIVER: OnceLock<(S3Driver, Server)> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let server = Server::default();
        let config = S3Config::new("fuzz-bucket", "prefix");
        let http = SharedHttpClient::new(server.clone());
        let sleep = SharedAsyncSleep::new(NoWaiting);
        let driver = S3Driver::offline(config, http, sleep).expect("an offline driver");
        (driver, server)
    })
}

/// One scripted answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    /// `STATUS\nName: value\n…\n\nBODY`, or a 200 with the whole text as body.
    fn parse(text: &[u8]) -> Answer {
        let status_line = text.len() >= 3
            && text[..3].iter().all(u8::is_ascii_digit)
            && matches!(text.get(3), None | Some(b'\n'));
        if !status_line {
            return Answer {
                status: 200,
                headers: Vec::new(),
                body: text.to_vec(),
            };
        }
        let status = text[..3]
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let mut rest = text.get(4..).unwrap_or_default();
        let mut headers = Vec::new();
        while !rest.is_empty() {
            let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let line = String::from_utf8_lossy(&rest[..end]).into_owned();
            rest = rest.get(end + 1..).unwrap_or_default();
            match line.split_once(':') {
                Some((name, value)) => headers.push((name.trim().into(), value.trim().into())),
                None if line.is_empty() => break,
                None => {}
            }
        }
        Answer {
            status,
            headers,
            body: rest.to_vec(),
        }
    }

    /// The answer as the SDK takes it; headers that are not valid HTTP are left out.
    fn response(&self) -> HttpResponse {
        use hyper::header::{HeaderName, HeaderValue};
        let status = hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::OK);
        let mut response = hyper::Response::new(SdkBody::from(self.body.clone()));
        *response.status_mut() = status;
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        HttpResponse::try_from(response).unwrap_or_else(|_| {
            let status = 400u16.try_into().expect("a valid status");
            HttpResponse::new(status, SdkBody::empty())
        })
    }
}

/// The scripted store: the answers of the current input and how many requests it served.
#[derive(Default)]
struct Script {
    answers: Vec<Answer>,
    served: usize,
}

/// An S3 store that answers from a [`Script`]: request `n` gets answer `n`, and every request
/// past the last answer gets the last answer again, until [`MAX_REQUESTS`].
#[derive(Clone, Default)]
struct Server(Arc<Mutex<Script>>);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Server")
    }
}

impl Server {
    fn load(&self, script: &[u8]) {
        let answers = script.split(|b| *b == 0).map(Answer::parse).collect();
        *lock(&self.0) = Script { answers, served: 0 };
    }

    fn served(&self) -> usize {
        lock(&self.0).served
    }

    fn answer(&self) -> HttpResponse {
        let mut script = lock(&self.0);
        script.served += 1;
        if script.served > MAX_REQUESTS {
            let status = 400u16.try_into().expect("a valid status");
            return HttpResponse::new(status, SdkBody::empty());
        }
        let index = (script.served - 1).min(script.answers.len().saturating_sub(1));
        match script.answers.get(index) {
            Some(answer) => answer.response(),
            None => HttpResponse::new(200u16.try_into().expect("valid"), SdkBody::empty()),
        }
    }
}

impl HttpConnector for Server {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Ok(self.answer()))
    }
}

impl HttpClient for Server {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The SDK's timers: a retry's backoff (under 5 s) is over at once; a timeout (5 s and more)
/// never fires, as the scripted store answers at once.
#[derive(Debug)]
struct NoWaiting;

impl AsyncSleep for NoWaiting {
    fn sleep(&self, duration: Duration) -> Sleep {
        if duration < Duration::from_secs(5) {
            Sleep::new(std::future::ready(()))
        } else {
            Sleep::new(std::future::pending())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `ListObjectsV2` page of `keys` and `dirs` (under the driver's `prefix/`).
    fn page(keys: &[String], dirs: &[String], truncated: bool, token: &str) -> String {
        let contents: String = keys
            .iter()
            .map(|k| format!("<Contents><Key>prefix/{k}</Key><Size>3</Size></Contents>"))
            .collect();
        let prefixes: String = dirs
            .iter()
            .map(|d| format!("<CommonPrefixes><Prefix>prefix/{d}</Prefix></CommonPrefixes>"))
            .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>{contents}{prefixes}\
             <IsTruncated>{truncated}</IsTruncated>\
             <NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>"
        )
    }

    #[test]
    fn the_scripted_store_answers_listings() {
        let _serial = lock(serial());
        let (driver, server) = offline_driver();
        let keys = ["a/x".to_owned()];
        server.load(page(&keys, &["a/y/".to_owned()], false, "t").as_bytes());
        let children = driver.list(&DriverPath::parse("/a").unwrap()).unwrap();
        let names: Vec<&str> = children.iter().map(DriverPath::as_str).collect();
        assert_eq!(names, ["/a/x", "/a/y"]);
        assert_eq!(server.served(), 1);
        let answer = Answer::parse(b"404\nx-amz-request-id: 1\n\n<Error/>");
        assert_eq!((answer.status, answer.headers.len()), (404, 1));
        assert_eq!(answer.body, b"<Error/>");
    }

    /// Runs `call` on a store scripted with `answers` and gives its error's text.
    fn error_of<T: std::fmt::Debug>(
        answers: &[String],
        call: impl FnOnce(&S3Driver) -> Result<T, crate::storage::StorageError>,
    ) -> String {
        let _serial = lock(serial());
        let (driver, server) = offline_driver();
        server.load(answers.join("\0").as_bytes());
        let error = call(driver)
            .expect_err("a broken store is an error")
            .to_string();
        assert!(server.served() < 10, "{} requests", server.served());
        error
    }

    #[test]
    fn a_store_that_never_gets_anywhere_is_an_error_not_a_loop() {
        let a = DriverPath::parse("/a").unwrap();
        let stuck = [page(&["a/x".to_owned()], &[], true, "t")];
        let error = error_of(&stuck, |d| d.list(&a));
        assert!(
            error.contains("the same continuation token again"),
            "{error}"
        );
        let error = error_of(&stuck, |d| d.walk(&a, &mut |_| Ok(WalkControl::Continue)));
        assert!(
            error.contains("the same continuation token again"),
            "{error}"
        );
        let no_token = [page(&["a/x".to_owned()], &[], true, "")];
        let error = error_of(&no_token, |d| d.list(&a));
        assert!(error.contains("without a continuation token"), "{error}");
        // DeleteObjects says yes, and the next listing still has the key.
        let deleted = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeleteResult/>".to_owned();
        let ignored = [stuck[0].clone(), deleted.clone(), stuck[0].clone(), deleted];
        let error = error_of(&ignored, |d| d.delete(&a));
        assert!(
            error.contains("listed again after DeleteObjects"),
            "{error}"
        );
        let uploads = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>prefix/a</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>\
            <Upload><Key>prefix/a</Key><UploadId>u</UploadId></Upload>\
            </ListMultipartUploadsResult>";
        let error = error_of(&[uploads.to_owned()], |d| {
            d.sweep_temp_files(SystemTime::now())
        });
        assert!(error.contains("the same markers again"), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A stable-toolchain stand-in for the fuzz target: every driver call on listings of
        /// random keys, truncated or not, with tokens that may repeat.
        #[test]
        fn the_driver_keeps_its_promises_on_shaped_listings(
            which in 0u8..12,
            path in 0u8..4,
            pages in proptest::collection::vec((
                proptest::collection::vec(
                    "(a/|a/b/|docker/registry/v2/repositories/r/_uploads/)?[ab_/]{0,6}", 0..5),
                proptest::collection::vec("a/[ab_]{1,3}/", 0..2),
                any::<bool>(),
                "[t1]{0,2}",
            ), 1..4),
        ) {
            let answers: Vec<String> = pages
                .iter()
                .map(|(keys, dirs, truncated, token)| page(keys, dirs, *truncated, token))
                .collect();
            let mut input = vec![path << 4 | which];
            input.extend(answers.join("\0").into_bytes());
            s3_xml(&input);
        }
    }
}
