//! [`S3Writer`]: a file that grows by multipart-upload parts, with bounded memory.
//!
//! Bytes collect in a tail buffer; each time it holds a whole part it is uploaded in the
//! background (at most [`MAX_IN_FLIGHT`] at once) and a new tail starts, so a 5 GiB body never
//! holds more than a few parts in memory. [`sync`](FileWriter::sync) uploads the tail as the
//! next part, so everything written is in S3 when it returns. [`commit`](FileWriter::commit)
//! completes the multipart upload; a file that never reached a part is one `PutObject`.
//!
//! **No part number is ever uploaded twice** in one multipart upload: Garage completes an
//! upload with the latest upload of each part number, finished or not, while `ListParts` shows
//! the latest finished one, so a replacement cut short by a crash (SIGKILL in the middle of the
//! body) leaves an upload that can never be completed (`InvalidPart`): its bytes are lost. A tail
//! that grows after a `sync` therefore cannot simply go up again under its number; the upload is
//! rolled over first (see [`S3Writer::roll`]).

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::client::{storage_error, unavailable, S3Client};
use super::multipart::{self, Multipart, Part};
use super::{delete_object, object_size, MIN_PART_SIZE};
use crate::storage::{DriverPath, FileWriter, StorageError};

/// Parts uploading at once per writer.
const MAX_IN_FLIGHT: usize = 2;

type PartTask = JoinHandle<Result<String, StorageError>>;

/// What exists at the key when the writer opens, and must be turned into a multipart upload
/// before bytes can be appended.
#[derive(Debug, Clone)]
enum Pending {
    /// Nothing to prepare.
    None,
    /// A complete object of this size (a small file, or one a reader completed).
    Object(u64),
    /// A multipart upload whose last part is below S3's minimum: it cannot be followed. With
    /// the size of the complete object at the key when it was opened (0 if none).
    SmallLastPart { object: u64 },
}

/// A writer of one key. See the module docs.
#[derive(Debug)]
pub(crate) struct S3Writer {
    client: S3Client,
    key: String,
    path: DriverPath,
    part_size: usize,
    upload_id: Option<String>,
    /// Uploaded whole parts, numbered 1.. in order.
    parts: Vec<Part>,
    /// Whole parts still uploading: number, size, task.
    in_flight: VecDeque<(i32, u64, PartTask)>,
    /// Bytes after the whole parts.
    tail: Vec<u8>,
    /// The tail as it is now was uploaded as the next part, with this ETag.
    tail_etag: Option<String>,
    /// A snapshot of the tail that a `sync` uploaded as the next part: durable bytes, and a
    /// part number that must not be uploaded again (see the module docs).
    tail_part: Option<Part>,
    pending: Pending,
    size: u64,
}

impl S3Writer {
    /// Opens `key` for writing: appending continues the multipart upload (or object) there;
    /// otherwise any unfinished upload is aborted and the file starts empty.
    pub(crate) fn open(
        client: &S3Client,
        path: &DriverPath,
        append: bool,
        part_size: u64,
    ) -> Result<S3Writer, StorageError> {
        let key = client.key(path);
        let mut writer = S3Writer {
            client: client.clone(),
            key,
            path: path.clone(),
            part_size: part_size as usize,
            upload_id: None,
            parts: Vec::new(),
            in_flight: VecDeque::new(),
            tail: Vec::new(),
            tail_etag: None,
            tail_part: None,
            pending: Pending::None,
            size: 0,
        };
        let found = multipart::find(client, &writer.key, path)?;
        if !append {
            if let Some(found) = found {
                multipart::abort(client, &writer.key, &found.upload_id, path)?;
            }
            return Ok(writer);
        }
        let object = object_size(client, path)?;
        match (found, object) {
            (Some(found), object) if object.is_none_or(|size| found.size() >= size) => {
                writer.adopt_multipart(found, object.unwrap_or(0));
            }
            (found, Some(size)) => {
                // A reopen that a crash cut short left a multipart upload with fewer bytes than
                // the object: the object holds every byte.
                if let Some(stale) = found {
                    multipart::abort(client, &writer.key, &stale.upload_id, path)?;
                }
                writer.size = size;
                writer.pending = Pending::Object(size);
            }
            (None, None) => {}
            (Some(_), None) => unreachable!("matched by the first arm"),
        }
        Ok(writer)
    }

    /// True when `open` found neither an object nor an unfinished upload at the key.
    pub(crate) fn found_nothing(&self) -> bool {
        self.upload_id.is_none() && matches!(self.pending, Pending::None) && self.size == 0
    }

    fn adopt_multipart(&mut self, found: Multipart, object: u64) {
        self.size = found.size();
        if found.parts.last().is_some_and(|p| p.size < MIN_PART_SIZE) {
            self.pending = Pending::SmallLastPart { object };
        }
        self.upload_id = Some(found.upload_id);
        self.parts = found.parts;
    }

    /// Makes the file appendable (see [`Pending`]): completes a multipart upload with a small
    /// last part, starts a new one, copies the whole parts server-side and reads the small rest
    /// back as the tail (uploaded by the next `sync` or `commit`). A crash at any step leaves
    /// the object holding every byte and the new upload fewer (or, with no rest, the same);
    /// `open` takes the multipart upload only when it holds at least as many bytes as the
    /// object.
    fn prepare(&mut self) -> Result<(), StorageError> {
        let object_size = match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => return Ok(()),
            Pending::Object(size) => size,
            Pending::SmallLastPart { object } => {
                let id = self.upload_id.take().expect("a multipart upload has an id");
                let (key, path) = (&self.key, &self.path);
                let completed =
                    multipart::complete_longest(&self.client, key, &id, &self.parts, object, path)?;
                // A part a crash cut short was refused: the file is shorter than this writer
                // was opened at, so it cannot go on (the next one opens what is there).
                if completed != Some(self.size) {
                    return Err(StorageError::Backend {
                        op: "CompleteMultipartUpload",
                        path: self.path.clone(),
                        message: format!(
                            "InvalidPart: the file holds {} bytes, not the {} it was opened at",
                            completed.unwrap_or(object),
                            self.size
                        ),
                    });
                }
                self.size
            }
        };
        let upload_id = multipart::create(&self.client, &self.key, &self.path)?;
        // Copy server-side what can be a part (at least 5 MiB), read back the rest.
        let small_last = self.parts.last().map_or(0, |p| p.size);
        let copied = if object_size < MIN_PART_SIZE {
            0
        } else if small_last < MIN_PART_SIZE && object_size - small_last >= MIN_PART_SIZE {
            object_size - small_last
        } else {
            object_size
        };
        self.parts = if copied > 0 {
            multipart::copy_parts(
                &self.client,
                &self.key,
                &self.key,
                &upload_id,
                copied,
                &self.path,
            )?
        } else {
            Vec::new()
        };
        self.upload_id = Some(upload_id);
        self.tail = self.read_object_range(copied, object_size)?;
        self.tail_etag = None;
        self.tail_part = None;
        // The object stays until the multipart upload completes over it: some stores (Garage)
        // drop a key's unfinished uploads with the key.
        Ok(())
    }

    /// Before the tail goes up again after a `sync` uploaded a snapshot of it: completes the
    /// upload with that snapshot as its last part (the object then holds every durable byte),
    /// starts a new upload and copies the whole parts into it server-side, so the tail goes up
    /// under a part number never used in that upload. A crash at any step leaves the old upload
    /// (not yet completed), or the object with a new upload holding fewer bytes (whole parts
    /// only, or the tail's upload cut short, which `ListParts` does not show), which `open`
    /// aborts; once the tail is up the new upload holds more bytes than the object and wins.
    /// After an error the writer still names the completed upload, so it only fails from then
    /// on; the next writer opens what the crash rules above leave.
    fn roll(&mut self) -> Result<(), StorageError> {
        let Some(snapshot) = self.tail_part.clone() else {
            return Ok(());
        };
        self.finish_all()?;
        let id = self
            .upload_id
            .clone()
            .expect("a snapshot went into an upload");
        let mut parts = self.parts.clone();
        parts.push(snapshot);
        multipart::complete(&self.client, &self.key, &id, &parts, &self.path)?;
        let whole = multipart::total_size(&self.parts);
        let upload_id = multipart::create(&self.client, &self.key, &self.path)?;
        // Whole parts are at least MIN_PART_SIZE each, so `whole` is 0 or a valid copy size.
        let copied = if whole > 0 {
            multipart::copy_parts(
                &self.client,
                &self.key,
                &self.key,
                &upload_id,
                whole,
                &self.path,
            )?
        } else {
            Vec::new()
        };
        self.upload_id = Some(upload_id);
        self.parts = copied;
        self.tail_part = None;
        Ok(())
    }

    fn read_object_range(&self, start: u64, end: u64) -> Result<Vec<u8>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let request = self
            .client
            .sdk
            .get_object()
            .bucket(&self.client.bucket)
            .key(&self.key)
            .range(format!("bytes={start}-{}", end - 1));
        let bytes = self
            .client
            .run(async move {
                let output = request.send().await?;
                output
                    .body
                    .collect()
                    .await
                    .map(|b| b.into_bytes())
                    .map_err(aws_sdk_s3::error::SdkError::construction_failure)
            })
            .map_err(|e| storage_error("GetObject", &self.path, e))?;
        Ok(bytes.to_vec())
    }

    fn upload_id(&mut self) -> Result<String, StorageError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let id = multipart::create(&self.client, &self.key, &self.path)?;
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    fn next_part_number(&self) -> i32 {
        (self.parts.len() + self.in_flight.len()) as i32 + 1
    }

    fn start_part(&mut self, number: i32, body: Bytes) -> Result<PartTask, StorageError> {
        let request = self
            .client
            .sdk
            .upload_part()
            .bucket(&self.client.bucket)
            .key(&self.key)
            .upload_id(self.upload_id()?)
            .part_number(number)
            .content_length(body.len() as i64)
            .body(body.into());
        let path = self.path.clone();
        let unsigned = self.client.unsigned_bulk();
        Ok(self.client.spawn(async move {
            let request = request.customize();
            let request = if unsigned {
                request.disable_payload_signing()
            } else {
                request
            };
            let output = request
                .send()
                .await
                .map_err(|e| storage_error("UploadPart", &path, e))?;
            Ok(output.e_tag().unwrap_or_default().to_owned())
        }))
    }

    /// Uploads the full tail as the next whole part, in the background.
    fn ship_full_tail(&mut self) -> Result<(), StorageError> {
        self.roll()?;
        let body = Bytes::from(std::mem::replace(
            &mut self.tail,
            Vec::with_capacity(self.part_size),
        ));
        self.tail_etag = None;
        let number = self.next_part_number();
        let size = body.len() as u64;
        let task = self.start_part(number, body)?;
        self.in_flight.push_back((number, size, task));
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.finish_oldest()?;
        }
        Ok(())
    }

    fn finish_oldest(&mut self) -> Result<(), StorageError> {
        let Some((number, size, task)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let etag = self
            .client
            .run(task)
            .map_err(|e| unavailable("UploadPart", &self.path, e.to_string()))??;
        self.parts.push(Part { number, etag, size });
        Ok(())
    }

    fn finish_all(&mut self) -> Result<(), StorageError> {
        while !self.in_flight.is_empty() {
            self.finish_oldest()?;
        }
        Ok(())
    }

    /// Uploads the tail as the next part unless it is empty or already there as it is (under a
    /// part number not used before: [`roll`](Self::roll)s over an earlier snapshot first).
    fn upload_tail(&mut self) -> Result<(), StorageError> {
        if self.tail.is_empty() || self.tail_etag.is_some() {
            return Ok(());
        }
        self.roll()?;
        let number = self.next_part_number();
        let task = self.start_part(number, Bytes::copy_from_slice(&self.tail))?;
        let etag = self
            .client
            .run(task)
            .map_err(|e| unavailable("UploadPart", &self.path, e.to_string()))??;
        self.tail_etag = Some(etag.clone());
        self.tail_part = Some(Part {
            number,
            etag,
            size: self.tail.len() as u64,
        });
        Ok(())
    }

    fn all_parts(&self) -> Vec<Part> {
        let mut parts = self.parts.clone();
        if let Some(etag) = &self.tail_etag {
            parts.push(Part {
                number: self.next_part_number(),
                etag: etag.clone(),
                size: self.tail.len() as u64,
            });
        }
        parts
    }

    fn put_object(&self, body: Bytes) -> Result<(), StorageError> {
        let request = self
            .client
            .sdk
            .put_object()
            .bucket(&self.client.bucket)
            .key(&self.key)
            .content_length(body.len() as i64)
            .body(body.into());
        self.client
            .run(async move { request.send().await })
            .map_err(|e| storage_error("PutObject", &self.path, e))?;
        Ok(())
    }

    fn append(&mut self, mut buf: &[u8]) -> Result<(), StorageError> {
        self.prepare()?;
        let written = buf.len();
        while !buf.is_empty() {
            let room = self.part_size - self.tail.len();
            let take = room.min(buf.len());
            self.tail.extend_from_slice(&buf[..take]);
            self.tail_etag = None;
            buf = &buf[take..];
            if self.tail.len() == self.part_size {
                self.ship_full_tail()?;
            }
        }
        self.size += written as u64;
        Ok(())
    }
}

impl io::Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for S3Writer {
    fn size(&self) -> u64 {
        self.size
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.finish_all()?;
        if matches!(self.pending, Pending::None) {
            self.upload_tail()?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        self.finish_all()?;
        match (&self.pending, &self.upload_id) {
            // Complete already: nothing was appended.
            (Pending::Object(_), _) => Ok(()),
            // Never reached a whole part: one PutObject.
            (Pending::None, None) => {
                let body = Bytes::from(std::mem::take(&mut self.tail));
                self.put_object(body)
            }
            (_, Some(_)) => {
                self.upload_tail()?;
                // The upload may have rolled over.
                let id = self.upload_id.clone().expect("still an upload");
                let parts = self.all_parts();
                if parts.is_empty() {
                    multipart::abort(&self.client, &self.key, &id, &self.path)?;
                    return self.put_object(Bytes::new());
                }
                multipart::complete(&self.client, &self.key, &id, &parts, &self.path)
            }
            (Pending::SmallLastPart { .. }, None) => unreachable!("a multipart upload has an id"),
        }
    }

    fn cancel(mut self: Box<Self>) -> Result<(), StorageError> {
        for (_, _, task) in self.in_flight.drain(..) {
            task.abort();
        }
        if let Some(id) = self.upload_id.take() {
            multipart::abort(&self.client, &self.key, &id, &self.path)?;
        }
        delete_object(&self.client, &self.path)
    }

    fn durable_len(&mut self) -> u64 {
        while self
            .in_flight
            .front()
            .is_some_and(|(_, _, task)| task.is_finished())
        {
            if self.finish_oldest().is_err() {
                break; // reported again by the next write or sync
            }
        }
        let whole = multipart::total_size(&self.parts);
        match (&self.pending, &self.tail_etag) {
            (Pending::None, Some(_)) => whole + self.tail.len() as u64,
            (Pending::None, None) => whole,
            _ => self.size,
        }
    }

    fn part_boundary(&self) -> Option<u64> {
        match self.pending {
            Pending::None => Some(self.size - self.tail.len() as u64 + self.part_size as u64),
            _ => None,
        }
    }
}
