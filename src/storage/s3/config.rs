//! [`S3Config`]: where the bucket is and how to reach it.

/// Smallest part S3 accepts for any part of a multipart upload but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// Default part size (chosen by measurement on a 3-node Garage cluster; docs/benchmarks.md).
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;

/// Largest object a single `CopyObject` may copy; larger ones are copied in parts
/// (`UploadPartCopy`).
pub const MAX_COPY_OBJECT: u64 = 5 << 30;

/// How to reach a bucket. Fields left `None` come from the AWS environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, profiles, instance roles), as every AWS tool takes them.
///
/// ```
/// use layerstore::storage::s3::S3Config;
///
/// let config = S3Config::new("registry", "prod/eu");
/// assert_eq!(config.bucket, "registry");
/// assert_eq!(config.prefix, "prod/eu");
/// assert_eq!(config.part_size, layerstore::storage::s3::DEFAULT_PART_SIZE);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Key prefix (distribution's `rootdirectory` without its leading `/`); empty for none.
    /// Objects live under `PREFIX/docker/registry/v2/...`.
    pub prefix: String,
    /// Region; `AWS_REGION` (or `us-east-1`) when unset.
    pub region: Option<String>,
    /// Endpoint URL (`http://127.0.0.1:3900` for a local Garage); `AWS_ENDPOINT_URL` when unset.
    /// With an endpoint, requests use path-style addressing.
    pub endpoint: Option<String>,
    /// Access key id; from the AWS environment when unset.
    pub access_key_id: Option<String>,
    /// Secret access key; from the AWS environment when unset.
    pub secret_access_key: Option<String>,
    /// Session token, with temporary credentials.
    pub session_token: Option<String>,
    /// Multipart part size in bytes (at least [`MIN_PART_SIZE`]).
    pub part_size: u64,
    /// Answer blob GETs with a 307 to a presigned URL instead of streaming them.
    pub redirect: bool,
}

impl S3Config {
    /// A configuration for `bucket` under `prefix` (leading and trailing `/` are ignored), with
    /// everything else from the environment and the default part size.
    pub fn new(bucket: impl Into<String>, prefix: &str) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').to_owned(),
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            part_size: DEFAULT_PART_SIZE,
            redirect: false,
        }
    }
}
