//! A small cache of open blob files, keyed by canonical digest.
//!
//! Blob bytes never change once published (they are named by their digest), so a file opened
//! for one read can serve the next: a hot blob read by many small range requests costs no
//! `open`/`close` per request. The repository link is still checked on every read. Eviction is
//! first-in first-out once [`CAPACITY`] files or [`MAX_BYTES`] of them are held. Holding a file
//! holds no memory (reads are positioned reads or short-lived maps, so the pages stay the
//! kernel's page cache), but it holds a file descriptor, and a blob deleted meanwhile keeps its
//! disk space until its file is evicted: both bounds keep that small.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::digest::Digest;

/// Files kept open at most: one descriptor each.
pub const CAPACITY: usize = 64;

/// Total size of the files kept open at most: the disk space a collection's deletions may wait
/// for (a larger blob is still served, just not kept).
pub const MAX_BYTES: u64 = 1 << 30;

/// An open blob file and its size when opened.
pub(crate) type OpenBlob = (Arc<File>, u64);

/// The cache; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<Digest, OpenBlob>,
    order: VecDeque<Digest>,
    bytes: u64,
}

impl FileCache {
    pub(crate) fn get(&self, digest: &Digest) -> Option<OpenBlob> {
        self.inner.lock().files.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: &Digest, blob: OpenBlob) {
        let size = blob.1;
        if size > MAX_BYTES {
            return;
        }
        let mut inner = self.inner.lock();
        match inner.files.insert(digest.clone(), blob) {
            Some((_, old)) => inner.bytes -= old,
            None => inner.order.push_back(digest.clone()),
        }
        inner.bytes += size;
        while inner.order.len() > CAPACITY || inner.bytes > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, evicted)) = inner.files.remove(&oldest) {
                inner.bytes -= evicted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(size: u64) -> OpenBlob {
        (Arc::new(tempfile::tempfile().unwrap()), size)
    }

    #[test]
    fn holds_at_most_capacity_files_and_max_bytes() {
        let cache = FileCache::default();
        let digests: Vec<Digest> = (0..CAPACITY + 3)
            .map(|i| Digest::sha256(&i.to_le_bytes()))
            .collect();
        for digest in &digests {
            cache.insert(digest, blob(1));
        }
        assert!(
            cache.get(&digests[0]).is_none(),
            "the oldest is evicted first"
        );
        assert!(cache.get(&digests[CAPACITY + 2]).is_some());
        assert_eq!(cache.inner.lock().files.len(), CAPACITY);
        let big = Digest::sha256(b"big");
        cache.insert(&big, blob(MAX_BYTES - 10));
        let inner = cache.inner.lock();
        assert!(inner.bytes <= MAX_BYTES);
        assert!(inner.files.contains_key(&big));
    }

    #[test]
    fn a_file_larger_than_the_byte_bound_is_not_kept() {
        let cache = FileCache::default();
        let huge = Digest::sha256(b"huge");
        cache.insert(&huge, blob(MAX_BYTES + 1));
        assert!(cache.get(&huge).is_none());
    }
}
