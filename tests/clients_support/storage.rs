//! Where a registry process of the client tests keeps its data ([`Storage`]: a directory or a
//! prefix of a Garage bucket, in distribution's layout either way), and what the tests read of
//! it directly: stored files, unfinished multipart uploads and upload-session leftovers.

use std::path::Path;

use crate::common::garage::GarageCluster;

/// Where a registry process keeps its data: the same layout either way
/// (`docker/registry/v2/...` below the root directory or below `PREFIX/` in the bucket), so
/// layerstore and distribution given the same `Storage` share their data.
#[derive(Clone, Copy)]
pub enum Storage<'a> {
    /// A directory: layerstore's `--root`, distribution's `filesystem` driver.
    Root(&'a Path),
    /// `PREFIX/` in the cluster's bucket: layerstore's `--storage s3://BUCKET/PREFIX` (with
    /// 5 MiB parts, so test bodies cross part boundaries cheaply), distribution's `s3` driver
    /// with `rootdirectory: /PREFIX`.
    S3 {
        cluster: &'a GarageCluster,
        prefix: &'a str,
    },
}

impl Storage<'_> {
    /// The stored file at `relative` (below `docker/registry/v2/`), or `None` if there is none.
    /// On S3 only complete objects count (an unfinished multipart upload is no object).
    pub fn read(&self, relative: &str) -> Option<Vec<u8>> {
        match *self {
            Storage::Root(root) => std::fs::read(root.join(V2).join(relative)).ok(),
            Storage::S3 { cluster, prefix } => {
                let key = format!("{}{relative}", s3_v2_prefix(prefix));
                let client = s3_client(cluster);
                s3_runtime().block_on(async {
                    match client
                        .get_object()
                        .bucket(&cluster.bucket)
                        .key(&key)
                        .send()
                        .await
                    {
                        Ok(object) => Some(object.body.collect().await.unwrap().to_vec()),
                        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
                        Err(e) => panic!("GetObject {key}: {e:?}"),
                    }
                })
            }
        }
    }

    /// On S3, the size of every unfinished multipart upload at exactly `relative` (below
    /// `docker/registry/v2/`), each confirmed with a `ListParts`; `None` on a directory.
    pub fn unfinished(&self, relative: &str) -> Option<Vec<u64>> {
        let Storage::S3 { cluster, prefix } = *self else {
            return None;
        };
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let client = s3_client(cluster);
        let bucket = cluster.bucket.as_str();
        let key = format!("{}{relative}", s3_v2_prefix(prefix));
        Some(s3_runtime().block_on(async {
            let uploads = client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListMultipartUploads {key}: {e:?}"));
            let mut sizes = Vec::new();
            for upload in uploads.uploads() {
                let (Some(found), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if found != key {
                    continue;
                }
                let parts = client
                    .list_parts()
                    .bucket(bucket)
                    .key(&key)
                    .upload_id(id)
                    .send()
                    .await;
                match parts {
                    Ok(parts) => {
                        assert_ne!(parts.is_truncated(), Some(true));
                        let size = parts.parts().iter().filter_map(|p| p.size()).sum::<i64>();
                        sizes.push(size as u64);
                    }
                    Err(e)
                        if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchUpload") => {}
                    Err(e) => panic!("ListParts {key}: {e:?}"),
                }
            }
            sizes
        }))
    }

    /// What is left of upload sessions: every file below a repository's `_uploads/`, and on
    /// S3 also every unfinished multipart upload anywhere under the prefix (`"multipart: KEY"`).
    /// Empty once every upload was committed or cancelled.
    ///
    /// Garage's listings may lag for a moment behind a deletion (a key whose `GetObject` already
    /// answers `NoSuchKey` can still be listed), so on S3 every listed object is confirmed with
    /// a `HeadObject` and every listed multipart upload with a `ListParts`.
    pub fn upload_leftovers(&self) -> Vec<String> {
        match *self {
            Storage::Root(root) => {
                let repositories = root.join(V2).join("repositories");
                crate::common::files_below(&repositories)
                    .into_iter()
                    .map(|path| path.display().to_string())
                    .filter(|path| path.contains("/_uploads/"))
                    .collect()
            }
            Storage::S3 { cluster, prefix } => {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let client = s3_client(cluster);
                let bucket = cluster.bucket.as_str();
                let repositories = format!("{}repositories/", s3_v2_prefix(prefix));
                let everything = s3_v2_prefix(prefix)
                    .strip_suffix("docker/registry/v2/")
                    .unwrap()
                    .to_owned();
                s3_runtime().block_on(async {
                    let mut leftovers = Vec::new();
                    let mut pages = client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(&repositories)
                        .into_paginator()
                        .send();
                    while let Some(page) = pages.next().await {
                        let page = page.unwrap_or_else(|e| panic!("ListObjectsV2: {e:?}"));
                        for key in page.contents().iter().filter_map(|o| o.key()) {
                            if !key.contains("/_uploads/") {
                                continue;
                            }
                            match client.head_object().bucket(bucket).key(key).send().await {
                                Ok(_) => leftovers.push(key.to_owned()),
                                Err(e)
                                    if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
                                Err(e) => panic!("HeadObject {key}: {e:?}"),
                            }
                        }
                    }
                    // Few enough here for one page (up to 1,000).
                    let uploads = client
                        .list_multipart_uploads()
                        .bucket(bucket)
                        .prefix(&everything)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("ListMultipartUploads: {e:?}"));
                    assert_ne!(uploads.is_truncated(), Some(true));
                    for upload in uploads.uploads() {
                        let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                            continue;
                        };
                        let parts = client
                            .list_parts()
                            .bucket(bucket)
                            .key(key)
                            .upload_id(id)
                            .send()
                            .await;
                        match parts {
                            Ok(_) => leftovers.push(format!("multipart: {key}")),
                            Err(e)
                                if e.as_service_error().and_then(|e| e.code())
                                    == Some("NoSuchUpload") => {}
                            Err(e) => panic!("ListParts {key}: {e:?}"),
                        }
                    }
                    leftovers
                })
            }
        }
    }
}

/// Where distribution's storage tree starts below a root.
const V2: &str = "docker/registry/v2";

/// `PREFIX/docker/registry/v2/` (or without `PREFIX/` for an empty prefix).
fn s3_v2_prefix(prefix: &str) -> String {
    match prefix.trim_matches('/') {
        "" => format!("{V2}/"),
        prefix => format!("{prefix}/{V2}/"),
    }
}

/// A client of the cluster's node 0 with its key, configured explicitly (nothing from this
/// process's `AWS_*` environment), path-style addressing.
fn s3_client(cluster: &GarageCluster) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cluster.region.clone()))
        .endpoint_url(&cluster.endpoint)
        .credentials_provider(Credentials::new(
            &cluster.access_key_id,
            &cluster.secret_access_key,
            None,
            None,
            "clients-support",
        ))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn s3_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
