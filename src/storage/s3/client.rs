//! The S3 connection: an SDK client, the runtime it runs on, key mapping and error mapping.
//!
//! Every driver method is synchronous; [`S3Client::run`] hands a future to the driver's own
//! runtime and waits for it on a plain channel, so it works from any thread (unlike
//! `block_on`, which panics inside another runtime's worker).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::S3Config;
use crate::storage::{DriverPath, StorageError};

/// Attempts per S3 call while serving (the SDK's standard exponential backoff between them).
const SERVICE_ATTEMPTS: u32 = 5;
/// Attempts, and the time one may take, for calls that move little data ([`S3Client::quick`]).
const QUICK_ATTEMPTS: u32 = 3;
const QUICK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to the first byte of an answer. Generous: it counts from the start of the request, so
/// it includes sending a whole part.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A tokio runtime that may be dropped anywhere: a plain `Runtime` panics when dropped inside
/// another runtime (a test server's, say), so this one shuts down in the background.
#[derive(Debug)]
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What every part of the driver shares: the client, the bucket, the key prefix, the runtime.
#[derive(Debug, Clone)]
pub(crate) struct S3Client {
    pub(crate) sdk: aws_sdk_s3::Client,
    pub(crate) bucket: String,
    /// `""` or `"prefix/"`: prepended to a driver path (without its leading `/`).
    key_prefix: String,
    /// Send bulk bodies with `UNSIGNED-PAYLOAD` (the endpoint is HTTPS, whose TLS already
    /// protects the bytes) instead of a second SHA-256 pass over every part for SigV4.
    unsigned_bulk: bool,
    runtime: Arc<OwnedRuntime>,
}

impl S3Client {
    /// Builds the client and checks the bucket answers (one `HeadBucket`, no retries), so a
    /// wrong bucket, wrong credentials or an unreachable endpoint is one clear error at start.
    pub(crate) fn connect(config: &S3Config) -> Result<S3Client, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("layerstore-s3")
            .enable_all()
            .build()
            .map_err(|e| unavailable("runtime", &DriverPath::root(), e.to_string()))?;
        let sdk_config = runtime.block_on(sdk_config(config));
        let sdk = aws_sdk_s3::Client::from_conf(sdk_config);
        let client = S3Client {
            sdk,
            bucket: config.bucket.clone(),
            key_prefix: key_prefix(config),
            unsigned_bulk: !endpoint_of(config).is_some_and(|e| e.starts_with("http://")),
            runtime: Arc::new(OwnedRuntime(Some(runtime))),
        };
        client.check_bucket(config)?;
        Ok(client)
    }

    /// A client whose requests all go to `http`, with `sleep` for its timers: the `s3_xml` fuzz
    /// target answers them itself. Nothing is read from the AWS environment, the bucket is not
    /// checked, and the client's own settings do not retry (the per-call overrides still do).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn offline(
        config: &S3Config,
        http: aws_sdk_s3::config::SharedHttpClient,
        sleep: aws_sdk_s3::config::SharedAsyncSleep,
    ) -> Result<S3Client, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("layerstore-s3-offline")
            .enable_all()
            .build()
            .map_err(|e| unavailable("runtime", &DriverPath::root(), e.to_string()))?;
        let credentials = Credentials::new("offline", "offline", None, None, "offline");
        let no_stall_checks = aws_sdk_s3::config::StalledStreamProtectionConfig::disabled();
        let sdk_config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials)
            .endpoint_url("http://s3.offline.invalid")
            .force_path_style(true)
            .http_client(http)
            .sleep_impl(sleep)
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(no_stall_checks)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        Ok(S3Client {
            sdk: aws_sdk_s3::Client::from_conf(sdk_config),
            bucket: config.bucket.clone(),
            key_prefix: key_prefix(config),
            unsigned_bulk: false,
            runtime: Arc::new(OwnedRuntime(Some(runtime))),
        })
    }

    /// Runs `future` on the driver's runtime and waits for its result.
    pub(crate) fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().expect("the S3 runtime outlives its client")
    }

    /// Starts `future` on the driver's runtime without waiting.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.0.as_ref().expect("runtime present until drop");
        runtime.spawn(future)
    }

    /// Whether bulk bodies (parts, large objects) go unsigned over TLS; see the field.
    pub(crate) fn unsigned_bulk(&self) -> bool {
        self.unsigned_bulk
    }

    /// The object key of a driver path.
    pub(crate) fn key(&self, path: &DriverPath) -> String {
        format!("{}{}", self.key_prefix, &path.as_str()[1..])
    }

    /// The key prefix of everything below `path` (ends with `/` unless it is the bucket root).
    pub(crate) fn dir_prefix(&self, path: &DriverPath) -> String {
        let key = self.key(path);
        if key.is_empty() || key.ends_with('/') {
            key
        } else {
            key + "/"
        }
    }

    /// The driver path of an object key, if the key lies below the prefix and is a valid path.
    pub(crate) fn path_of(&self, key: &str) -> Option<DriverPath> {
        let relative = key.strip_prefix(&self.key_prefix)?;
        DriverPath::parse(&format!("/{}", relative.trim_end_matches('/'))).ok()
    }

    /// The `x-amz-copy-source` value for `key`: `bucket/key`, percent-encoded.
    pub(crate) fn copy_source(&self, key: &str) -> String {
        let mut out = String::with_capacity(self.bucket.len() + key.len() + 1);
        for part in [self.bucket.as_str(), "/", key] {
            for byte in part.bytes() {
                match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                        out.push(byte as char)
                    }
                    _ => out.push_str(&format!("%{byte:02X}")),
                }
            }
        }
        out
    }

    fn check_bucket(&self, config: &S3Config) -> Result<(), StorageError> {
        let request = self
            .sdk
            .head_bucket()
            .bucket(&self.bucket)
            .customize()
            .config_override(
                aws_sdk_s3::config::Config::builder().retry_config(RetryConfig::disabled()),
            );
        let result = self.run(async move { request.send().await });
        let where_ = match &config.endpoint {
            Some(endpoint) => format!("bucket {:?} at {endpoint}", self.bucket),
            None => format!("bucket {:?}", self.bucket),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = http_status(&e);
                let message = match status {
                    Some(404) => format!("{where_} does not exist"),
                    Some(301) => format!("{where_} is in another region (set AWS_REGION)"),
                    Some(400 | 401 | 403) => format!(
                        "{where_}: access denied (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \
                         and the region)"
                    ),
                    _ => format!("{where_}: cannot reach the object store: {}", describe(&e)),
                };
                Err(unavailable("HeadBucket", &DriverPath::root(), message))
            }
        }
    }
}

/// `""` or `"prefix/"`.
fn key_prefix(config: &S3Config) -> String {
    if config.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", config.prefix)
    }
}

/// The SDK configuration: explicit settings first, then the AWS environment.
async fn sdk_config(config: &S3Config) -> aws_sdk_s3::Config {
    let region = config
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(RetryConfig::standard().with_max_attempts(SERVICE_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .build(),
        );
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        let credentials = Credentials::new(
            id,
            secret,
            config.session_token.clone(),
            None,
            "layerstore-config",
        );
        loader = loader.credentials_provider(credentials);
    }
    let endpoint = endpoint_of(config);
    if let Some(endpoint) = &endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    aws_sdk_s3::config::Builder::from(&shared)
        // A custom endpoint (Garage, MinIO, Ceph) is addressed by path, as distribution does.
        .force_path_style(endpoint.is_some())
        // Checksums only where S3 requires them: the payload is already signed (SigV4), and
        // aws-chunked trailers are not understood by every S3-compatible store.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .build()
}

/// Overrides for calls that move little data (heads, listings, small objects, deletes,
/// starting and aborting uploads): an attempt that has not answered in 10 s is cut and
/// retried, 3 attempts in all, so a store that accepts connections and never answers costs
/// a request about half a minute, not the 5 minutes of 5 attempts at the read timeout.
/// Part uploads and server-side copies keep the long timeouts.
pub(crate) fn quick() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(QUICK_ATTEMPT_TIMEOUT)
                .operation_attempt_timeout(QUICK_ATTEMPT_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(QUICK_ATTEMPTS))
}

/// The endpoint: the configuration's, else the AWS environment's; `None` means AWS itself.
fn endpoint_of(config: &S3Config) -> Option<String> {
    config
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
}

/// The HTTP status of a failed call, when the store answered at all.
pub(crate) fn http_status<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HttpStatus,
{
    match e {
        SdkError::ServiceError(service) => Some(service.raw().status_u16()),
        SdkError::ResponseError(response) => Some(response.raw().status_u16()),
        _ => None,
    }
}

/// Raw responses that carry a status.
pub(crate) trait HttpStatus {
    fn status_u16(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

/// A one-line description of a failed call.
pub(crate) fn describe<E: ProvideErrorMetadata + std::error::Error, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => format!("{err}"),
            }
        }
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(connector) => format!("connection failed: {connector}"),
            None => "connection failed".to_owned(),
        },
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        other => other.to_string(),
    }
}

/// Maps a failed call on `path` to a [`StorageError`]: 404 is [`StorageError::NotFound`];
/// what retrying may fix (no answer, 5xx, throttling, denied credentials, which rotate) is
/// [`StorageError::Unavailable`]; anything else is [`StorageError::Backend`].
pub(crate) fn storage_error<E, R>(
    op: &'static str,
    path: &DriverPath,
    e: SdkError<E, R>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error,
    R: HttpStatus + std::fmt::Debug,
{
    let message = describe(&e);
    match http_status(&e) {
        Some(404) => StorageError::NotFound(path.clone()),
        Some(403 | 408 | 429) | Some(500..=599) | None => unavailable(op, path, message),
        Some(_) => StorageError::Backend {
            op,
            path: path.clone(),
            message,
        },
    }
}

pub(crate) fn unavailable(op: &'static str, path: &DriverPath, message: String) -> StorageError {
    StorageError::Unavailable {
        op,
        path: path.clone(),
        message,
    }
}

/// An S3 timestamp as a `SystemTime` (the epoch when absent).
pub(crate) fn system_time(time: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    time.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
