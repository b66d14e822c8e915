//! A small cache of open blob files, keyed by canonical digest.
//!
//! Blob bytes never change once published (they are named by their digest), so a file opened
//! for one read can serve the next: a hot blob read by many small range requests costs no
//! `open`/`close` per request. The repository link is still checked on every read. Eviction is
//! first-in first-out once [`CAPACITY`] files are held. Holding a file holds no memory: reads are
//! positioned reads or short-lived maps, so the pages stay the kernel's page cache.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::digest::Digest;

/// Files kept open at most (each holds one file descriptor, and keeps a deleted blob's space
/// allocated until it is evicted).
pub const CAPACITY: usize = 256;

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
}

impl FileCache {
    pub(crate) fn get(&self, digest: &Digest) -> Option<OpenBlob> {
        self.inner.lock().files.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: &Digest, blob: OpenBlob) {
        let mut inner = self.inner.lock();
        if inner.files.insert(digest.clone(), blob).is_none() {
            inner.order.push_back(digest.clone());
        }
        while inner.order.len() > CAPACITY {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.files.remove(&oldest);
        }
    }
}
