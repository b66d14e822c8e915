//! htpasswd authentication, as distribution's `auth.htpasswd`: Basic credentials checked against
//! bcrypt hashes in a file. A user who passes may do everything.
//!
//! bcrypt is slow by design (tens of milliseconds) and clients send Basic credentials with
//! every request, so: checks run on tokio's blocking pool, at most one per core at a time (a
//! semaphore), and successes are remembered for a few minutes (`cache`). An unknown user is
//! checked against a stand-in hash of the file's cost, so it takes as long as a wrong password
//! and gets the same answer. The file is re-read when it changes (looked at at most once a
//! second), so adding a user needs no restart; a file that turns unreadable or invalid is
//! reported in the log and the users read before stay.

mod cache;
mod file;

pub use file::{HtpasswdError, LineProblem, Users};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Semaphore;

use self::cache::SuccessCache;
use super::challenge::Challenge;
use super::{AuthError, Refusal};

/// How often, at most, the file's modification time is looked at.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The password of the stand-in hash (its value never matters: an unknown user is refused
/// whatever the check says).
const STAND_IN_PASSWORD: &str = "layerstore stand-in for unknown users";

/// Checks Basic credentials against an htpasswd file.
pub struct HtpasswdAuth {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    realm: String,
    table: RwLock<Table>,
    next_check: Mutex<Instant>,
    cache: SuccessCache,
    bcrypt_slots: Semaphore,
}

/// The users as last read, with what is needed to notice a change.
struct Table {
    users: Users,
    stand_in: String,
    stand_in_cost: u32,
    stamp: Option<FileStamp>,
    generation: u64,
}

/// What tells a changed file from the one read before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
        })
    }
}

impl std::fmt::Debug for HtpasswdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtpasswdAuth")
            .field("path", &self.inner.path)
            .field("realm", &self.inner.realm)
            .field("users", &self.users())
            .finish_non_exhaustive()
    }
}

/// Credentials from a Basic header.
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: Vec<u8>,
}

impl HtpasswdAuth {
    /// Reads the file at `path`; clients are challenged with `realm`.
    pub fn load(path: &Path, realm: &str) -> Result<Self, HtpasswdError> {
        let stamp = FileStamp::of(path);
        let users = Users::load(path)?;
        let stand_in_cost = users.max_cost();
        let stand_in = stand_in_hash(stand_in_cost);
        let cache = SuccessCache::new().map_err(|e| HtpasswdError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(HtpasswdAuth {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                realm: realm.to_owned(),
                table: RwLock::new(Table {
                    users,
                    stand_in,
                    stand_in_cost,
                    stamp,
                    generation: 0,
                }),
                next_check: Mutex::new(Instant::now() + RELOAD_CHECK_INTERVAL),
                cache,
                bcrypt_slots: Semaphore::new(cores),
            }),
        })
    }

    /// The realm of the challenge.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// How many users the file has (as last read).
    pub fn users(&self) -> usize {
        self.inner.table.read().users.len()
    }

    /// The challenge a 401 of this realm sends.
    pub fn challenge(&self) -> Challenge {
        Challenge::Basic {
            realm: self.inner.realm.clone(),
        }
    }

    /// The user's name if `authorization` holds Basic credentials of a user in the file.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<String, AuthError> {
        let challenge = || self.challenge();
        let Some(credentials) = authorization.and_then(basic_credentials) else {
            return Err(AuthError::Missing(challenge()));
        };
        let refused = |reason| AuthError::Refused {
            challenge: challenge(),
            reason,
        };
        let credentials = credentials.ok_or_else(|| refused(Refusal::Malformed))?;
        self.reload_if_due().await;
        let user = credentials.user.clone();
        if self.check(credentials).await {
            Ok(user)
        } else {
            Err(refused(Refusal::WrongPassword))
        }
    }

    /// Whether the credentials are a user's: from the cache, else by bcrypt on the blocking
    /// pool (one check per core at a time).
    async fn check(&self, credentials: Credentials) -> bool {
        let (hash, known, generation) = {
            let table = self.inner.table.read();
            match table.users.hash(&credentials.user) {
                Some(hash) => (hash.to_owned(), true, table.generation),
                None => (table.stand_in.clone(), false, table.generation),
            }
        };
        let tag = self
            .inner
            .cache
            .tag(&credentials.user, &credentials.password);
        if known && self.inner.cache.hit(&tag, generation) {
            return true;
        }
        let _slot = self.inner.bcrypt_slots.acquire().await;
        let password = credentials.password;
        let verified =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if verified && known {
            self.inner.cache.insert(tag, generation);
        }
        verified && known
    }

    /// Re-reads the file if it changed, looking at most once per [`RELOAD_CHECK_INTERVAL`].
    async fn reload_if_due(&self) {
        {
            let mut next = self.inner.next_check.lock();
            let now = Instant::now();
            if now < *next {
                return;
            }
            *next = now + RELOAD_CHECK_INTERVAL;
        }
        let inner = Arc::clone(&self.inner);
        let _ = tokio::task::spawn_blocking(move || inner.reload_if_changed()).await;
    }
}

impl Inner {
    fn reload_if_changed(&self) {
        let stamp = FileStamp::of(&self.path);
        if stamp == self.table.read().stamp {
            return;
        }
        match Users::load(&self.path) {
            Ok(users) => {
                let cost = users.max_cost();
                let same_cost = self.table.read().stand_in_cost == cost;
                let stand_in = if same_cost {
                    self.table.read().stand_in.clone()
                } else {
                    stand_in_hash(cost)
                };
                let count = users.len();
                let mut table = self.table.write();
                *table = Table {
                    users,
                    stand_in,
                    stand_in_cost: cost,
                    stamp,
                    generation: table.generation + 1,
                };
                drop(table);
                self.cache.clear();
                tracing::info!(
                    path = %self.path.display(),
                    users = count,
                    "htpasswd file reloaded"
                );
            }
            Err(e) => {
                self.table.write().stamp = stamp;
                tracing::warn!(
                    error = %e,
                    "htpasswd file changed but cannot be used; the users read before stay"
                );
            }
        }
    }
}

/// A bcrypt hash of cost `cost` for unknown users to be checked against.
fn stand_in_hash(cost: u32) -> String {
    bcrypt::hash(STAND_IN_PASSWORD, cost).unwrap_or_else(|_| {
        // Costs come from hashes that parsed with a valid cost, so this is not reached;
        // a stand-in of the default cost still keeps unknown users slow.
        bcrypt::hash(STAND_IN_PASSWORD, bcrypt::DEFAULT_COST).unwrap_or_default()
    })
}

/// The credentials of a `Basic` header (scheme case-insensitive): `None` for another scheme,
/// `Some(None)` for a Basic header that does not decode to `user:password`.
pub(crate) fn basic_credentials(header: &[u8]) -> Option<Option<Credentials>> {
    let space = header.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = header.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok();
    Some(decoded.and_then(|decoded| {
        let colon = decoded.iter().position(|b| *b == b':')?;
        let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
        Some(Credentials {
            user,
            password: decoded[colon + 1..].to_vec(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real bcrypt hash of `password` (cost 4, from the bcrypt crate's tests).
    const ALICE: &str = "alice:$2a$04$UuTkLRZZ6QofpDOlMz32MuuxEHA43WOemOYHPz6.SjsVsyO1tDU96\n";

    fn basic(user_password: &str) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        format!("Basic {encoded}").into_bytes()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn basic_header_forms() {
        let parsed = basic_credentials(&basic("alice:pa:ss")).unwrap().unwrap();
        assert_eq!(
            (parsed.user.as_str(), &parsed.password[..]),
            ("alice", &b"pa:ss"[..])
        );
        let lower = basic("u:p").to_ascii_lowercase();
        assert!(
            basic_credentials(&lower).is_some_and(|c| c.is_none()),
            "base64 is case-sensitive"
        );
        assert!(basic_credentials(b"BASIC dTpw").unwrap().is_some());
        assert!(basic_credentials(b"Bearer abc").is_none());
        assert!(basic_credentials(b"Basic").is_none());
        assert!(basic_credentials(b"Basic !!!").unwrap().is_none());
        assert!(basic_credentials(&basic("no-colon")).unwrap().is_none());
    }

    #[test]
    fn users_pass_and_everyone_else_is_refused_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, ALICE).unwrap();
        let auth = HtpasswdAuth::load(&path, "realm").unwrap();
        let rt = runtime();
        assert_eq!(
            rt.block_on(auth.authenticate(Some(&basic("alice:password")))),
            Ok("alice".to_owned())
        );
        // Cached now, and still right.
        assert!(rt
            .block_on(auth.authenticate(Some(&basic("alice:password"))))
            .is_ok());
        let wrong = rt
            .block_on(auth.authenticate(Some(&basic("alice:nope"))))
            .unwrap_err();
        let unknown = rt
            .block_on(auth.authenticate(Some(&basic("bob:password"))))
            .unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert_eq!(wrong.challenge(), unknown.challenge());
        assert!(matches!(
            rt.block_on(auth.authenticate(None)),
            Err(AuthError::Missing(Challenge::Basic { .. }))
        ));
    }

    #[test]
    fn a_changed_file_is_read_again_and_drops_cached_successes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, ALICE).unwrap();
        let auth = HtpasswdAuth::load(&path, "realm").unwrap();
        let rt = runtime();
        assert!(rt
            .block_on(auth.authenticate(Some(&basic("alice:password"))))
            .is_ok());
        let bob = ALICE.replace("alice", "bob");
        std::fs::write(&path, &bob).unwrap();
        std::thread::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(50));
        assert!(rt
            .block_on(auth.authenticate(Some(&basic("bob:password"))))
            .is_ok());
        assert!(rt
            .block_on(auth.authenticate(Some(&basic("alice:password"))))
            .is_err());
        // A broken file keeps the users read before.
        std::fs::write(&path, "bob:plaintext\n").unwrap();
        std::thread::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(50));
        assert!(rt
            .block_on(auth.authenticate(Some(&basic("bob:password"))))
            .is_ok());
        assert_eq!(auth.users(), 1);
    }
}
