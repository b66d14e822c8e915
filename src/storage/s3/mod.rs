//! The S3 driver: distribution's `s3` storage on any S3-compatible object store.
//!
//! Keys are distribution's: a [`DriverPath`] `/docker/registry/v2/...` is the key
//! `PREFIX/docker/registry/v2/...`, so distribution 2.8 (with `rootdirectory: /PREFIX`) and
//! layerstore read and write the same bucket.
//!
//! The [`StorageDriver`] trait stays synchronous. The driver owns a small tokio runtime and runs
//! each S3 call on it, waiting on a plain channel, so it can be called from any thread (the
//! store's callers already run it on blocking threads).

mod config;

pub use config::{S3Config, DEFAULT_PART_SIZE, MAX_COPY_OBJECT, MIN_PART_SIZE};
mod client;
mod listing;
mod multipart;
mod reader;
mod writer;

use std::io::Read;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::MetadataDirective;
use bytes::Bytes;

use self::client::{quick, storage_error, system_time, unavailable, S3Client};
use super::MAX_CONTENT_LEN;
use super::{DriverPath, FileInfo, FileWriter, StorageDriver, StorageError, WalkControl};

/// How long a presigned blob URL stays valid (`redirect`).
const PRESIGNED_FOR: Duration = Duration::from_secs(20 * 60);

/// A [`StorageDriver`] on an S3 bucket. Cheap to clone; clones share the connection.
///
/// ```no_run
/// use layerstore::storage::s3::{S3Config, S3Driver};
/// use layerstore::store::Store;
///
/// let mut config = S3Config::new("registry", "prod");
/// config.endpoint = Some("http://127.0.0.1:3900".into());
/// let driver = S3Driver::connect(config).expect("bucket reachable");
/// let store = Store::new(std::sync::Arc::new(driver));
/// ```
#[derive(Debug, Clone)]
pub struct S3Driver {
    client: S3Client,
    part_size: u64,
    redirect: bool,
}

impl S3Driver {
    /// Connects and checks the bucket answers: a missing bucket, refused credentials or an
    /// unreachable endpoint is one [`StorageError::Unavailable`] with a clear message, at once.
    pub fn connect(config: S3Config) -> Result<S3Driver, StorageError> {
        let client = S3Client::connect(&config)?;
        Ok(S3Driver {
            client,
            part_size: config.part_size.max(MIN_PART_SIZE),
            redirect: config.redirect,
        })
    }

    /// A driver whose requests all go to `http` (see [`S3Client::offline`]): the `s3_xml` fuzz
    /// target's, answering with its input.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn offline(
        config: S3Config,
        http: aws_sdk_s3::config::SharedHttpClient,
        sleep: aws_sdk_s3::config::SharedAsyncSleep,
    ) -> Result<S3Driver, StorageError> {
        Ok(S3Driver {
            client: S3Client::offline(&config, http, sleep)?,
            part_size: config.part_size.max(MIN_PART_SIZE),
            redirect: config.redirect,
        })
    }

    /// The multipart part size in use.
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// [`reader::open`], after completing an unfinished multipart upload at `path` if there
    /// is no object yet.
    fn open_reader(
        &self,
        path: &DriverPath,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        match reader::open(&self.client, path, offset, len) {
            Err(StorageError::NotFound(_)) if self.complete_unfinished(path)? => {
                reader::open(&self.client, path, offset, len)
            }
            other => other,
        }
    }

    /// Completes the unfinished multipart upload at `path`, if there is one, so its bytes can
    /// be read or copied; returns whether there was one. Parts that a crash cut short are left
    /// out ([`multipart::complete_longest`]), so the file may end up shorter than its listed
    /// size (or, with no usable part, be the object at the key, if any).
    fn complete_unfinished(&self, path: &DriverPath) -> Result<bool, StorageError> {
        let key = self.client.key(path);
        let object = object_size(&self.client, path)?;
        match multipart::find(&self.client, &key, path)? {
            Some(found)
                if !found.parts.is_empty() && object.is_none_or(|size| found.size() >= size) =>
            {
                let floor = object.unwrap_or(0);
                let (id, parts) = (&found.upload_id, &found.parts);
                multipart::complete_longest(&self.client, &key, id, parts, floor, path)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn head(&self, path: &DriverPath) -> Result<Option<FileInfo>, StorageError> {
        head_object(&self.client, path)
    }

    /// Copies `source` to `dest` on the server side. A copy onto itself (a touch) replaces the
    /// metadata, as S3 allows no copy in place that changes nothing.
    fn copy_object(
        &self,
        source: &DriverPath,
        dest: &DriverPath,
        size: u64,
    ) -> Result<(), StorageError> {
        let (source_key, dest_key) = (self.client.key(source), self.client.key(dest));
        if size <= MAX_COPY_OBJECT {
            let directive = if source_key == dest_key {
                MetadataDirective::Replace
            } else {
                MetadataDirective::Copy
            };
            let request = self
                .client
                .sdk
                .copy_object()
                .bucket(&self.client.bucket)
                .key(&dest_key)
                .metadata_directive(directive)
                .copy_source(self.client.copy_source(&source_key));
            self.client
                .run(async move { request.send().await })
                .map_err(|e| storage_error("CopyObject", source, e))?;
            return Ok(());
        }
        let id = multipart::create(&self.client, &dest_key, dest)?;
        let parts = multipart::copy_parts(&self.client, &source_key, &dest_key, &id, size, dest);
        match parts {
            Ok(parts) => multipart::complete(&self.client, &dest_key, &id, &parts, dest),
            Err(e) => {
                let _ = multipart::abort(&self.client, &dest_key, &id, dest);
                Err(e)
            }
        }
    }
}

/// The complete object at `path` (size and modification time), if there is one.
fn head_object(client: &S3Client, path: &DriverPath) -> Result<Option<FileInfo>, StorageError> {
    let request = client
        .sdk
        .head_object()
        .bucket(&client.bucket)
        .key(client.key(path));
    match client.run(async move { request.customize().config_override(quick()).send().await }) {
        Ok(output) => Ok(Some(FileInfo {
            path: path.clone(),
            size: output.content_length().unwrap_or_default().max(0) as u64,
            is_dir: false,
            modified: system_time(output.last_modified()),
        })),
        Err(e) => match storage_error("HeadObject", path, e) {
            StorageError::NotFound(_) => Ok(None),
            other => Err(other),
        },
    }
}

/// Deletes the object at `path` (S3 answers success whether or not it was there).
fn delete_object(client: &S3Client, path: &DriverPath) -> Result<(), StorageError> {
    let request = client
        .sdk
        .delete_object()
        .bucket(&client.bucket)
        .key(client.key(path));
    client
        .run(async move { request.customize().config_override(quick()).send().await })
        .map_err(|e| storage_error("DeleteObject", path, e))?;
    Ok(())
}

/// The size of the complete object at `path`, if there is one.
fn object_size(client: &S3Client, path: &DriverPath) -> Result<Option<u64>, StorageError> {
    Ok(head_object(client, path)?.map(|info| info.size))
}

impl StorageDriver for S3Driver {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError> {
        let request = self
            .client
            .sdk
            .get_object()
            .bucket(&self.client.bucket)
            .key(self.client.key(path));
        let path_for_error = path.clone();
        let result = self.client.run(async move {
            let output = request
                .customize()
                .config_override(quick())
                .send()
                .await
                .map_err(|e| storage_error("GetObject", &path_for_error, e))?;
            let size = output.content_length().unwrap_or_default().max(0) as u64;
            if size > MAX_CONTENT_LEN {
                return Err(StorageError::TooLarge {
                    path: path_for_error,
                    size,
                    limit: MAX_CONTENT_LEN,
                });
            }
            let body = output
                .body
                .collect()
                .await
                .map_err(|e| unavailable("GetObject", &path_for_error, e.to_string()))?;
            Ok(body.into_bytes().to_vec())
        });
        match result {
            Err(StorageError::NotFound(_)) if listing::is_dir(&self.client, path)?.is_some() => {
                Err(StorageError::IsDirectory(path.clone()))
            }
            other => other,
        }
    }

    fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        let body = Bytes::copy_from_slice(content);
        let request = self
            .client
            .sdk
            .put_object()
            .bucket(&self.client.bucket)
            .key(self.client.key(path))
            .content_length(body.len() as i64)
            .body(body.into());
        self.client
            .run(async move { request.customize().config_override(quick()).send().await })
            .map_err(|e| storage_error("PutObject", path, e))?;
        Ok(())
    }

    fn reader(&self, path: &DriverPath, offset: u64) -> Result<Box<dyn Read + Send>, StorageError> {
        self.open_reader(path, offset, None)
    }

    fn reader_range(
        &self,
        path: &DriverPath,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        self.open_reader(path, offset, Some(len))
    }

    fn writer(&self, path: &DriverPath, append: bool) -> Result<Box<dyn FileWriter>, StorageError> {
        Ok(Box::new(writer::S3Writer::open(
            &self.client,
            path,
            append,
            self.part_size,
        )?))
    }

    /// An object, or a "directory" (keys below it). A file still being written (an unfinished
    /// multipart upload) is not seen here: its size is [`append_size`](Self::append_size).
    fn stat(&self, path: &DriverPath) -> Result<FileInfo, StorageError> {
        if let Some(info) = self.head(path)? {
            return Ok(info);
        }
        listing::is_dir(&self.client, path)?.ok_or_else(|| StorageError::NotFound(path.clone()))
    }

    /// An unfinished multipart upload counts, and wins over an object at the same key when it
    /// holds at least as many bytes (a writer reopened the object and went on).
    fn append_size(&self, path: &DriverPath) -> Result<u64, StorageError> {
        let key = self.client.key(path);
        let object = object_size(&self.client, path)?;
        let unfinished = multipart::find(&self.client, &key, path)?.map(|m| m.size());
        match (unfinished, object) {
            (Some(parts), object) if object.is_none_or(|size| parts >= size) => Ok(parts),
            (_, Some(size)) => Ok(size),
            (None, None) => match listing::is_dir(&self.client, path)? {
                Some(_) => Err(StorageError::IsDirectory(path.clone())),
                None => Err(StorageError::NotFound(path.clone())),
            },
            (Some(_), None) => unreachable!("matched by the first arm"),
        }
    }

    fn file_size(&self, path: &DriverPath) -> Result<Option<u64>, StorageError> {
        Ok(self.head(path)?.map(|info| info.size))
    }

    /// One discovery (`ListMultipartUploads`, `ListParts`, `HeadObject`) for both the size and
    /// the writer, where `append_size` and then `writer` would ask twice.
    fn open_append(&self, path: &DriverPath) -> Result<Option<Box<dyn FileWriter>>, StorageError> {
        let writer = writer::S3Writer::open(&self.client, path, true, self.part_size)?;
        if !writer.found_nothing() {
            return Ok(Some(Box::new(writer)));
        }
        match listing::is_dir(&self.client, path)? {
            Some(_) => Err(StorageError::IsDirectory(path.clone())),
            None => Ok(None),
        }
    }

    fn listings_may_lag(&self) -> bool {
        true
    }

    fn start_appendable(&self, path: &DriverPath) -> Result<(), StorageError> {
        multipart::create(&self.client, &self.client.key(path), path).map(|_| ())
    }

    fn finish_appends(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.complete_unfinished(path).map(|_| ())
    }

    fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
        listing::list(&self.client, path)
    }

    fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError> {
        let size = match self.head(source)? {
            Some(info) => info.size,
            None if self.complete_unfinished(source)? => {
                self.head(source)?
                    .ok_or_else(|| StorageError::NotFound(source.clone()))?
                    .size
            }
            None => return Err(StorageError::NotFound(source.clone())),
        };
        self.copy_object(source, dest, size)?;
        delete_object(&self.client, source)
    }

    fn delete(&self, path: &DriverPath) -> Result<(), StorageError> {
        // Below first: most deletes are directories (upload sessions, repositories), and no
        // path of the layout is both a file and a directory.
        let mut found = listing::delete_below(&self.client, path)?;
        if !found && self.head(path)?.is_some() {
            delete_object(&self.client, path)?;
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(StorageError::NotFound(path.clone()))
        }
    }

    fn delete_files(&self, paths: &[DriverPath]) -> Result<(), StorageError> {
        // S3 answers success for keys that are not there, so "already gone" needs no care.
        for chunk in paths.chunks(1000) {
            let keys = chunk.iter().map(|path| self.client.key(path)).collect();
            listing::delete_keys(&self.client, keys, &chunk[0])?;
        }
        Ok(())
    }

    fn touch(&self, path: &DriverPath) -> Result<(), StorageError> {
        let info = self
            .head(path)?
            .ok_or_else(|| StorageError::NotFound(path.clone()))?;
        self.copy_object(path, path, info.size)
    }

    /// Aborts unfinished multipart uploads started before `cutoff` that belong to no upload
    /// session (a copy into the blob store cut short by a crash); sessions' own are purged
    /// with their session.
    fn sweep_temp_files(&self, cutoff: SystemTime) -> Result<u64, StorageError> {
        let root = DriverPath::root();
        let prefix = self.client.dir_prefix(&root);
        let mut swept = 0;
        for (key, id, initiated) in multipart::list_uploads(&self.client, &prefix, &root)? {
            if initiated < cutoff && !key.contains("/_uploads/") {
                multipart::abort(&self.client, &key, &id, &root)?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    fn walk(
        &self,
        path: &DriverPath,
        visit: &mut dyn FnMut(&FileInfo) -> Result<WalkControl, StorageError>,
    ) -> Result<(), StorageError> {
        listing::walk(&self.client, path, visit)
    }

    fn redirect_url(&self, path: &DriverPath) -> Option<Result<String, StorageError>> {
        if !self.redirect {
            return None;
        }
        let request = self
            .client
            .sdk
            .get_object()
            .bucket(&self.client.bucket)
            .key(self.client.key(path));
        let presigning = match PresigningConfig::expires_in(PRESIGNED_FOR) {
            Ok(config) => config,
            Err(e) => return Some(Err(unavailable("presign", path, e.to_string()))),
        };
        let presigned = self
            .client
            .run(async move { request.presigned(presigning).await });
        Some(
            presigned
                .map(|p| p.uri().to_owned())
                .map_err(|e| storage_error("presign", path, e)),
        )
    }
}
