//! Multipart uploads: how an unfinished file lives in S3, for layerstore and distribution alike.
//!
//! An upload's `data` is a multipart upload at its key until it is committed; its size is the
//! sum of its parts. S3 wants every part but the last to be at least 5 MiB, so a file whose
//! last part is smaller cannot simply grow: [`Multipart::reopen_for_append`] completes it,
//! starts a new multipart upload, copies the completed object's full parts server-side
//! (`UploadPartCopy`) and reads the small tail back. distribution 2.8 does the same, so either
//! registry continues the other's unfinished upload.

use aws_sdk_s3::error::ProvideErrorMetadata;
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
        total_size(&self.parts)
    }
}

/// Bytes in `parts`. Saturating: the sizes are the store's word, and no real sum comes near.
pub(crate) fn total_size(parts: &[Part]) -> u64 {
    parts.iter().fold(0u64, |sum, p| sum.saturating_add(p.size))
}

/// An error for a store whose listing of uploads or parts would never end, or would end short
/// while saying there is more.
fn broken_listing(op: &'static str, path: &DriverPath, what: &str) -> StorageError {
    StorageError::Backend {
        op,
        path: path.clone(),
        message: format!("the store's listing is broken: {what}"),
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
        let next = (
            page.next_key_marker().map(str::to_owned),
            page.next_upload_id_marker().map(str::to_owned),
        );
        let op = "ListMultipartUploads";
        if next.0.is_none() {
            return Err(broken_listing(
                op,
                path,
                "truncated without a next key marker",
            ));
        }
        if next == markers {
            return Err(broken_listing(op, path, "the same markers again"));
        }
        markers = next;
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
        if page.is_truncated() != Some(true) {
            break;
        }
        let next = page.next_part_number_marker().map(str::to_owned);
        if next.is_none() {
            return Err(broken_listing(
                "ListParts",
                path,
                "truncated without a next marker",
            ));
        }
        if next == marker {
            return Err(broken_listing("ListParts", path, "the same marker again"));
        }
        marker = next;
    }
    parts.sort_by_key(|p| p.number);
    // Parts are numbered from 1 in file order, and a writer uploads two at a time: a crash can
    // leave part N+1 without part N. Only the unbroken run from part 1 is the file: a part
    // after a gap is not counted, so no size, resume or completion includes it.
    let unbroken = parts
        .iter()
        .zip(1..)
        .take_while(|(part, number)| part.number == *number)
        .count();
    parts.truncate(unbroken);
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
    match try_complete(client, key, upload_id, parts, path)? {
        Completion::Done => Ok(()),
        Completion::Refused(e) => Err(e),
    }
}

/// How a completion went, short of failing.
enum Completion {
    Done,
    /// The store refused a part (`InvalidPart`).
    Refused(StorageError),
}

fn try_complete(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    parts: &[Part],
    path: &DriverPath,
) -> Result<Completion, StorageError> {
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
    match client.run(async move { request.send().await }) {
        Ok(_) => Ok(Completion::Done),
        Err(e) => {
            let refused = e.code() == Some("InvalidPart");
            let e = storage_error("CompleteMultipartUpload", path, e);
            if refused {
                Ok(Completion::Refused(e))
            } else {
                Err(e)
            }
        }
    }
}

/// Parts a crash can leave listed and yet refused by `CompleteMultipartUpload`: the ones a
/// writer had uploading when it died (two whole parts in flight and the tail).
const REFUSED_AT_MOST: usize = 3;

/// Completes `upload_id` with the longest run of `parts` (from the first) that the store accepts
/// and that holds at least `floor` bytes (what the object at `key` holds, which the completion
/// replaces). Returns the bytes completed, or `None` when no such run exists: the upload is then
/// aborted, and the object at `key`, if any, is the file.
///
/// A part whose upload a crash cut short can be listed and still be refused (`InvalidPart`):
/// Garage's cleanup of the interrupted request drops the part's data after `ListParts` already
/// shows it (seen for about 1 in 20 part uploads cut short between their body and the answer).
/// Its writer never saw that upload finish, so no hash state covers that part or any after it,
/// and leaving them out loses nothing acknowledged. More than [`REFUSED_AT_MOST`] refused parts
/// is an error, not a reason to drop more.
pub(crate) fn complete_longest(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    parts: &[Part],
    floor: u64,
    path: &DriverPath,
) -> Result<Option<u64>, StorageError> {
    let completed = longest_run(parts, floor, path, |run| {
        let completion = try_complete(client, key, upload_id, run, path)?;
        Ok(matches!(completion, Completion::Done))
    })?;
    if completed.is_none() {
        abort(client, key, upload_id, path)?;
    }
    Ok(completed)
}

/// The choice [`complete_longest`] makes: `complete` is tried with `parts`, then without its
/// last part, and so on, while the run holds at least `floor` bytes; `Ok(false)` from it means a
/// part was refused.
fn longest_run(
    parts: &[Part],
    floor: u64,
    path: &DriverPath,
    mut complete: impl FnMut(&[Part]) -> Result<bool, StorageError>,
) -> Result<Option<u64>, StorageError> {
    for keep in (1..=parts.len()).rev() {
        let run = &parts[..keep];
        let size = total_size(run);
        if size < floor {
            break;
        }
        if parts.len() - keep > REFUSED_AT_MOST {
            return Err(StorageError::Backend {
                op: "CompleteMultipartUpload",
                path: path.clone(),
                message: format!(
                    "InvalidPart: more than {REFUSED_AT_MOST} of {} parts refused",
                    parts.len()
                ),
            });
        }
        if complete(run)? {
            return Ok(Some(size));
        }
    }
    Ok(None)
}

/// Aborts a multipart upload; one already gone is fine.
pub(crate) fn abort(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    path: &DriverPath,
) -> Result<(), StorageError> {
    abort_or_gone(client, key, upload_id, path).map(|_| ())
}

/// Aborts a multipart upload: `Ok(false)` when the store says there is no such upload.
///
/// That is not always a race with another abort or completion: a `CreateMultipartUpload` cut
/// short by a crash can leave, in Garage, an upload that `ListMultipartUploads` shows forever
/// and that every other call calls unknown (the object's "uploading" version was stored, the
/// upload's own record not yet). Only a newer version of the key (a `DeleteObject`, or an
/// upload completed there) makes it go.
pub(crate) fn abort_or_gone(
    client: &S3Client,
    key: &str,
    upload_id: &str,
    path: &DriverPath,
) -> Result<bool, StorageError> {
    let request = client
        .sdk
        .abort_multipart_upload()
        .bucket(&client.bucket)
        .key(key)
        .upload_id(upload_id);
    match client.run(async move { request.send().await }) {
        Ok(_) => Ok(true),
        Err(e) => match storage_error("AbortMultipartUpload", path, e) {
            StorageError::NotFound(_) => Ok(false),
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

    fn parts(sizes: &[u64]) -> Vec<Part> {
        sizes
            .iter()
            .zip(1..)
            .map(|(&size, number)| Part {
                number,
                etag: format!("e{number}"),
                size,
            })
            .collect()
    }

    /// `complete` that refuses any run including one of `refused` (part numbers), recording
    /// the runs it was given.
    fn store<'a>(
        refused: &'a [i32],
        tried: &'a mut Vec<usize>,
    ) -> impl FnMut(&[Part]) -> Result<bool, StorageError> + 'a {
        move |run| {
            tried.push(run.len());
            Ok(!run.iter().any(|p| refused.contains(&p.number)))
        }
    }

    #[test]
    fn the_longest_accepted_run_above_the_floor_is_completed() {
        let path = DriverPath::root();
        let five = parts(&[5, 5, 5, 2]);
        let mut tried = Vec::new();
        // Nothing refused: everything, at once.
        let all = longest_run(&five, 0, &path, store(&[], &mut tried)).unwrap();
        assert_eq!((all, tried.as_slice()), (Some(17), &[4][..]));
        // The tail cut short: the whole parts.
        let mut tried = Vec::new();
        let run = longest_run(&five, 0, &path, store(&[4], &mut tried)).unwrap();
        assert_eq!((run, tried.as_slice()), (Some(15), &[4, 3][..]));
        // Part 3 refused, part 4 fine: nothing after a refused part can be kept.
        let mut tried = Vec::new();
        let run = longest_run(&five, 0, &path, store(&[3], &mut tried)).unwrap();
        assert_eq!((run, tried.as_slice()), (Some(10), &[4, 3, 2][..]));
        // Not below what the object holds: then the object is the file.
        let mut tried = Vec::new();
        let run = longest_run(&five, 16, &path, store(&[4], &mut tried)).unwrap();
        assert_eq!((run, tried.as_slice()), (None, &[4][..]));
        // Every part refused.
        let mut tried = Vec::new();
        let one = parts(&[2]);
        assert_eq!(
            longest_run(&one, 0, &path, store(&[1], &mut tried)).unwrap(),
            None
        );
        // More refused parts than a crash can leave: an error, nothing dropped.
        let many = parts(&[5, 5, 5, 5, 5, 5]);
        let mut tried = Vec::new();
        let err = longest_run(&many, 0, &path, store(&[1], &mut tried)).unwrap_err();
        assert!(err.to_string().contains("InvalidPart"), "{err}");
        assert_eq!(tried, [6, 5, 4, 3]);
    }

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
