//! A small cache of blob memory maps, keyed by canonical digest.
//!
//! Blob bytes never change once published (they are named by their digest), so a map made for
//! one read can serve the next: a hot blob read by many small range requests costs no
//! `open`/`mmap`/`munmap` (and no TLB shoot-down) per request. The repository link is still
//! checked on every read. Eviction is first-in first-out once [`CAPACITY`] maps or [`MAX_BYTES`]
//! mapped bytes are held; the pages themselves are the kernel's page cache.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::digest::Digest;

/// Maps kept at most.
pub const CAPACITY: usize = 1024;

/// Total mapped bytes kept at most, so the cache never pins more than this much of the page
/// cache in the process's mappings (a larger blob is still served, just not kept).
pub const MAX_BYTES: usize = 1 << 30;

/// The cache; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    maps: HashMap<Digest, Arc<memmap2::Mmap>>,
    order: VecDeque<Digest>,
    bytes: usize,
}

impl MapCache {
    pub(crate) fn get(&self, digest: &Digest) -> Option<Arc<memmap2::Mmap>> {
        self.inner.lock().maps.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: &Digest, map: Arc<memmap2::Mmap>) {
        if map.len() > MAX_BYTES {
            return;
        }
        let mut inner = self.inner.lock();
        let len = map.len();
        match inner.maps.insert(digest.clone(), map) {
            Some(old) => inner.bytes -= old.len(),
            None => inner.order.push_back(digest.clone()),
        }
        inner.bytes += len;
        while inner.order.len() > CAPACITY || inner.bytes > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.maps.remove(&oldest) {
                inner.bytes -= evicted.len();
            }
        }
    }
}
