//! Recently verified Basic credentials, so a client that sends them on every request pays for
//! bcrypt once every few minutes, not every time.
//!
//! Entries are keyed by `HMAC-SHA256(process key, user ":" password)` with a random key made at
//! start: the cache never holds a password, and its keys are useless outside this process.
//! Only successes are cached. Each entry remembers the generation of the user table it was
//! checked against, and the table's generation changes on every reload, so a password changed
//! or a user removed in the file stops working at the next reload, not minutes later.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use parking_lot::Mutex;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How long a verified credential is trusted without bcrypt.
pub const TTL: Duration = Duration::from_secs(300);

/// Entries kept at most; beyond it the expired ones go, and if that is not enough, all.
const MAX_ENTRIES: usize = 4096;

/// A credential's cache key.
pub type Tag = [u8; 32];

/// Verified credentials with their expiry and table generation.
pub struct SuccessCache {
    key: [u8; 32],
    entries: Mutex<HashMap<Tag, (Instant, u64)>>,
}

impl std::fmt::Debug for SuccessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuccessCache")
            .field("entries", &self.entries.lock().len())
            .finish_non_exhaustive()
    }
}

impl SuccessCache {
    /// An empty cache with a fresh random key.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(SuccessCache {
            key,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The key of `user` with `password`.
    pub fn tag(&self, user: &str, password: &[u8]) -> Tag {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(user.as_bytes());
        mac.update(b":");
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` was verified against table `generation` less than [`TTL`] ago.
    pub fn hit(&self, tag: &Tag, generation: u64) -> bool {
        let now = Instant::now();
        self.entries
            .lock()
            .get(tag)
            .is_some_and(|(expires, checked)| *expires > now && *checked == generation)
    }

    /// Records a success against table `generation`.
    pub fn insert(&self, tag: Tag, generation: u64) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(tag, (now + TTL, generation));
    }

    /// Forgets everything (after a reload).
    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_user_password_and_key() {
        let cache = SuccessCache::new().unwrap();
        let tag = cache.tag("alice", b"secret");
        assert_eq!(tag, cache.tag("alice", b"secret"));
        assert_ne!(tag, cache.tag("alice", b"secret2"));
        assert_ne!(tag, cache.tag("alic", b"esecret"));
        let other = SuccessCache::new().unwrap();
        assert_ne!(tag, other.tag("alice", b"secret"));
    }

    #[test]
    fn hits_need_the_same_generation() {
        let cache = SuccessCache::new().unwrap();
        let tag = cache.tag("alice", b"secret");
        assert!(!cache.hit(&tag, 0));
        cache.insert(tag, 0);
        assert!(cache.hit(&tag, 0));
        assert!(!cache.hit(&tag, 1));
        cache.clear();
        assert!(!cache.hit(&tag, 0));
    }

    #[test]
    fn size_is_bounded() {
        let cache = SuccessCache::new().unwrap();
        for i in 0..(MAX_ENTRIES + 10) {
            cache.insert(cache.tag(&i.to_string(), b"p"), 0);
        }
        assert!(cache.entries.lock().len() <= MAX_ENTRIES);
    }
}
