//! Multipart uploads: how an unfinished file lives in S3, for layerstore and distribution alike.
//!
//! An upload's `data` is a multipart upload at its key until it is committed; its size is the
//! sum of its parts. S3 wants every part but the last to be at least 5 MiB, so a file whose
//! last part is smaller cannot simply grow: [`Multipart::reopen_for_append`] completes it,
//! starts a new multipart upload, copies the completed object's full parts server-side
//! (`UploadPartCopy`) and reads the small tail back. distribution 2.8 does the same, so either
//! registry continues the other's unfinished upload.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::client::{storage_error, S3Client};
use super::MIN_PART_SIZE;
use crate::storage::{DriverPath, StorageError};

/// Largest range copied by one `UploadPartCopy` (S3 allows 5 GiB; smaller parts copy in
/// parallel).
const COPY_PART: u64 = 1 << 30;

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) number: i32,
    pub(crate) etag: String,
    pub(crate) size: u64,
}

/// An unfinished multipart upload at a key, with its parts in order.
#[derive(Debug, Clone)]
pub(crate) struct Multipart {
    pub(crate) upload_id: String,
    pub(crate) parts: Vec<Part>,
}

impl Multipart {
    /// Bytes in all parts.
    pub(crate) fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// The multipart upload at exactly `key` holding the most bytes (several exist only after a
/// crash between starting one and finishing the previous), or `None`.
pub(crate) fn find(
    client: &S3Client,
    key: &str,
    path: &DriverPath,
) -> Result<Option<Multipart>, StorageError> {
    let mut best: Option<Multipart> = None;
    for upload_id in upload_ids(client, key, path, true)? {
        let parts = match list_parts(client, key, &upload_id, path) {
            Ok(parts) => parts,
            // Completed or aborted since it was listed (listings can lag behind).
            Err(StorageError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let candidate = Multipart { upload_id, parts };
        if best.as_ref().is_none_or(|b| candidate.size() >= b.size()) {
            best = Some(candidate);
        }
    }
    Ok(best)
}

/// Ids of the multipart uploads at `key` (`exact`), or below it (every key starting with it).
pub(crate) fn upload_ids(
    client: &S3Client,
    key: &str,
    path: &DriverPath,
    exact: bool,
) -> Result<Vec<String>, StorageError> {
    Ok(list_uploads(client, key, path)?
        .into_iter()
        .filter(|(k, _, _)| !exact || k == key)
        .map(|(_, id, _)| id)
        .collect())
}

/// `(key, upload id, initiated)` of every multipart upload whose key starts with `prefix`.
pub(crate) fn list_uploads(
    client: &S3Client,
    prefix: &str,
    path: &DriverPath,
) -> Result<Vec<(String, String, std::time::SystemTime)>, StorageError> {
    let mut found = Vec::new();
    let mut markers: (Option<String>, Option<String>) = (None, None);
    loop {
        let request = client
            .sdk
            .list_multipart_uploads()
            .bucket(&client.bucket)
            .prefix(prefix)
            .set_key_marker(markers.0.clone())
            .set_upload_id_marker(markers.1.clone());
        let page = client
            .run(async move { request.send().await })
            .map_err(|e| storage_error("ListMultipartUploads", path, e))?;
        for upload in page.uploads() {
            if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                let initiated = super::client::system_time(upload.initiated());
                found.push((key.to_owned(), id.to_owned(), initiated));
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(found);
        }
        markers = (
            page.next_key_marker().map(str::to_owned),
            page.next_upload_id_marker().map(str::to_owned),
        );
        if markers.0.is_none() {
            return Ok(found);
        }
    }
}

fn list_parts(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    path: &DriverPath,
) -> Result<Vec<Part>, StorageError> {
    let mut parts = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let request = client
            .sdk
            .list_parts()
            .bucket(&client.bucket)
            .key(key)
            .upload_id(upload_id)
            .set_part_number_marker(marker.clone());
        let page = client
            .run(async move { request.send().await })
            .map_err(|e| storage_error("ListParts", path, e))?;
        for part in page.parts() {
            parts.push(Part {
                number: part.part_number().unwrap_or_default(),
                etag: part.e_tag().unwrap_or_default().to_owned(),
                size: part.size().unwrap_or_default().max(0) as u64,
            });
        }
        marker = page.next_part_number_marker().map(str::to_owned);
        if page.is_truncated() != Some(true) || marker.is_none() {
            break;
        }
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

/// Starts a multipart upload at `key`.
pub(crate) fn create(
    client: &S3Client,
    key: &str,
    path: &DriverPath,
) -> Result<String, StorageError> {
    let request = client
        .sdk
        .create_multipart_upload()
        .bucket(&client.bucket)
        .key(key);
    let output = client
        .run(async move { request.send().await })
        .map_err(|e| storage_error("CreateMultipartUpload", path, e))?;
    output.upload_id().map(str::to_owned).ok_or_else(|| {
        super::client::unavailable("CreateMultipartUpload", path, "no upload id".into())
    })
}

/// Completes `upload` with `parts` (in order): the object at `key` becomes their
/// concatenation, atomically.
pub(crate) fn complete(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    parts: &[Part],
    path: &DriverPath,
) -> Result<(), StorageError> {
    let completed: Vec<CompletedPart> = parts
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.number)
                .e_tag(&p.etag)
                .build()
        })
        .collect();
    let request = client
        .sdk
        .complete_multipart_upload()
        .bucket(&client.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        );
    client
        .run(async move { request.send().await })
        .map_err(|e| storage_error("CompleteMultipartUpload", path, e))?;
    Ok(())
}

/// Aborts a multipart upload; one already gone is fine.
pub(crate) fn abort(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    path: &DriverPath,
) -> Result<(), StorageError> {
    let request = client
        .sdk
        .abort_multipart_upload()
        .bucket(&client.bucket)
        .key(key)
        .upload_id(upload_id);
    match client.run(async move { request.send().await }) {
        Ok(_) => Ok(()),
        Err(e) => match storage_error("AbortMultipartUpload", path, e) {
            StorageError::NotFound(_) => Ok(()),
            other => Err(other),
        },
    }
}

/// Copies bytes `0..size` of the object at `source_key` into `upload_id` (at `dest_key`) as
/// parts numbered from 1, in parallel, each at least [`MIN_PART_SIZE`] (`size` must be too)
/// and at most [`COPY_PART`].
pub(crate) fn copy_parts(
    client: &S3Client,
    source_key: &str,
    dest_key: &str,
    upload_id: &str,
    size: u64,
    path: &DriverPath,
) -> Result<Vec<Part>, StorageError> {
    let ranges = copy_ranges(size);
    let source = client.copy_source(source_key);
    let tasks: Vec<_> = ranges
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let request = client
                .sdk
                .upload_part_copy()
                .bucket(&client.bucket)
                .key(dest_key)
                .upload_id(upload_id)
                .part_number(i as i32 + 1)
                .copy_source(&source)
                .copy_source_range(format!("bytes={start}-{}", end - 1));
            client.spawn(async move { request.send().await })
        })
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.into_iter().enumerate() {
        let output = client
            .run(task)
            .map_err(|e| super::client::unavailable("UploadPartCopy", path, e.to_string()))?
            .map_err(|e| storage_error("UploadPartCopy", path, e))?;
        let etag = output
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .unwrap_or_default()
            .to_owned();
        let (start, end) = ranges[i];
        parts.push(Part {
            number: i as i32 + 1,
            etag,
            size: end - start,
        });
    }
    Ok(parts)
}

/// Splits `0..size` into copy ranges of at most [`COPY_PART`] bytes, none below
/// [`MIN_PART_SIZE`] (a short remainder joins the range before it).
pub(crate) fn copy_ranges(size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < size {
        let mut end = (start + COPY_PART).min(size);
        if size - end < MIN_PART_SIZE {
            end = size;
        }
        ranges.push((start, end));
        start = end;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_cover_the_object_with_valid_part_sizes() {
        for size in [
            MIN_PART_SIZE,
            COPY_PART,
            COPY_PART + 1,
            COPY_PART + MIN_PART_SIZE,
            3 * COPY_PART + 7,
        ] {
            let ranges = copy_ranges(size);
            assert_eq!(ranges.first().unwrap().0, 0);
            assert_eq!(ranges.last().unwrap().1, size);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1, pair[1].0);
            }
            for &(start, end) in &ranges {
                assert!(end - start >= MIN_PART_SIZE, "{size}: {start}..{end}");
                assert!(end - start <= COPY_PART + MIN_PART_SIZE);
            }
        }
    }
}
