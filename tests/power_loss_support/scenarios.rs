//! The operations cut by the power-loss test, each on a small store that already holds an
//! image tagged `v1`, an unreferenced blob (garbage) and an upload session with a checkpoint
//! ([`Fixture`]).

use std::time::{Duration, SystemTime};

use layerstore::names::{Reference, UploadId};
use layerstore::storage::{http_secret, DriverPath, StorageError, HTTP_SECRET_PATH};
use layerstore::store::{GcOptions, Store, StoreError};
use layerstore::Digest;

use super::fixture::*;
use super::Operation;

/// Every operation, by name.
pub fn all() -> Vec<(&'static str, Box<dyn Operation>)> {
    vec![
        ("secret at first open", Box::new(FirstOpen::default())),
        ("blob commit", Box::new(BlobCommit::default())),
        (
            "new session, first checkpoint",
            Box::new(NewSession::default()),
        ),
        (
            "upload chunk + checkpoint",
            Box::new(UploadChunk::default()),
        ),
        (
            "upload chunks, deferred checkpoints",
            Box::new(DeferredChunks::default()),
        ),
        ("manifest put by digest", Box::new(ManifestPut::by(false))),
        ("manifest put by tag", Box::new(ManifestPut::by(true))),
        ("re-tag", Box::new(Retag::default())),
        ("manifest delete", Box::new(ManifestDelete::default())),
        ("tag delete", Box::new(TagDelete::default())),
        ("blob delete", Box::new(BlobDelete::default())),
        ("purge uploads", Box::new(purge_uploads())),
        ("gc", Box::new(gc())),
    ]
}

#[derive(Default)]
struct FirstOpen {
    secret: Vec<u8>,
}

impl Operation for FirstOpen {
    fn setup(&mut self, _store: &Store) {}

    fn run(&mut self, store: &Store) {
        self.secret = http_secret(None, &**store.driver()).unwrap().into_bytes();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let path = DriverPath::parse(HTTP_SECRET_PATH).unwrap();
        match store.driver().get_content(&path) {
            Ok(stored) if stored.trim_ascii() == self.secret => Ok(()),
            Ok(stored) if !returned && stored.is_empty() => Ok(()),
            Ok(_) => Err("a different or partial secret is stored".into()),
            Err(StorageError::NotFound(_)) if !returned => Ok(()),
            Err(e) => Err(format!("secret: {e}")),
        }
    }
}

#[derive(Default)]
struct BlobCommit {
    fx: Option<Fixture>,
    bytes: Vec<u8>,
}

impl Operation for BlobCommit {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
        self.bytes = payload(40, 4096);
    }

    fn run(&mut self, store: &Store) {
        put_blob(store, &repo(), &self.bytes);
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let fx = self.fx.as_ref().unwrap();
        check_fixture(store, fx, Changes::default())?;
        let expected = returned.then_some(&self.bytes[..]);
        check_blob(store, &Digest::sha256(&self.bytes), expected)
    }
}

/// A session started (POST, left unsynced) and checkpointed for the first time: from that
/// checkpoint on the session must survive, with its bytes; before it, it may be unknown.
#[derive(Default)]
struct NewSession {
    fx: Option<Fixture>,
    bytes: Vec<u8>,
    id: Option<UploadId>,
}

impl NewSession {
    const CHECKPOINTED: usize = 2000;
}

impl Operation for NewSession {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
        self.bytes = payload(50, 3000);
    }

    fn run(&mut self, store: &Store) {
        let mut upload = store.create_upload(&repo()).unwrap();
        self.id = Some(upload.id().clone());
        upload.append(&self.bytes[..Self::CHECKPOINTED]).unwrap();
        upload.checkpoint().unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        check_fixture(store, self.fx.as_ref().unwrap(), Changes::default())?;
        let id = self.id.as_ref().ok_or("the run recorded no session")?;
        let offset = match store.upload_status(&repo(), id) {
            Ok(status) => status.offset as usize,
            Err(StoreError::BlobUploadUnknown(_)) if !returned => return Ok(()),
            Err(e) => return Err(format!("new session's status: {e}")),
        };
        if returned && offset < Self::CHECKPOINTED {
            return Err(format!(
                "new session at {offset} after its checkpoint returned"
            ));
        }
        finish_upload(store, id, &self.bytes, offset).map_err(|e| format!("new session: {e}"))
    }
}

#[derive(Default)]
struct UploadChunk {
    fx: Option<Fixture>,
}

impl UploadChunk {
    const CHUNK_END: usize = 4500;
}

impl Operation for UploadChunk {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
    }

    fn run(&mut self, store: &Store) {
        let fx = self.fx.as_ref().unwrap();
        let mut upload = store.resume_upload(&repo(), &fx.session).unwrap();
        upload
            .append(&fx.session_bytes[fx.acknowledged..Self::CHUNK_END])
            .unwrap();
        upload.checkpoint().unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        check_session_grew(store, self.fx.as_ref().unwrap(), returned, Self::CHUNK_END)
    }
}

/// After an operation that appended to the fixture's session up to `end`: the rest of the
/// fixture is intact, and the session finishes from at least `end` (when the operation had
/// returned) or the fixture's own acknowledged offset.
fn check_session_grew(
    store: &Store,
    fx: &Fixture,
    returned: bool,
    end: usize,
) -> Result<(), String> {
    let changes = Changes {
        session: true,
        ..Changes::default()
    };
    check_fixture(store, fx, changes)?;
    let acknowledged = if returned { end } else { fx.acknowledged };
    finish_session(store, fx, acknowledged)
}

/// Two chunks, each answered before its checkpoint ran ([`Upload::checkpoint_deferred`]), the
/// second's checkpoint running first. Only a checkpoint that ran makes bytes durable: until
/// then the session may come back at the fixture's offset, never past what is durable.
///
/// [`Upload::checkpoint_deferred`]: layerstore::store::Upload::checkpoint_deferred
#[derive(Default)]
struct DeferredChunks {
    fx: Option<Fixture>,
}

impl DeferredChunks {
    const FIRST_END: usize = 3500;
    const SECOND_END: usize = 4500;
}

impl Operation for DeferredChunks {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
    }

    fn run(&mut self, store: &Store) {
        let fx = self.fx.as_ref().unwrap();
        let mut upload = store.resume_upload(&repo(), &fx.session).unwrap();
        let mut chunk = |from: usize, to: usize| {
            upload.append(&fx.session_bytes[from..to]).unwrap();
            let pending = upload.checkpoint_deferred().unwrap();
            pending.expect("a filesystem defers its checkpoints")
        };
        let first = chunk(fx.acknowledged, Self::FIRST_END);
        let second = chunk(Self::FIRST_END, Self::SECOND_END);
        second.run().unwrap();
        first.run().unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        check_session_grew(store, self.fx.as_ref().unwrap(), returned, Self::SECOND_END)
    }
}

struct ManifestPut {
    fx: Option<Fixture>,
    image: Option<Image>,
    by_tag: bool,
}

impl ManifestPut {
    fn by(by_tag: bool) -> Self {
        ManifestPut {
            fx: None,
            image: None,
            by_tag,
        }
    }
}

impl Operation for ManifestPut {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
        self.image = Some(image_blobs(store, 50));
    }

    fn run(&mut self, store: &Store) {
        let image = self.image.as_ref().unwrap();
        let reference = match self.by_tag {
            true => Reference::Tag(tag("v2")),
            false => Reference::Digest(image.digest.clone()),
        };
        put_manifest(store, image, reference);
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let (fx, image) = (self.fx.as_ref().unwrap(), self.image.as_ref().unwrap());
        check_fixture(store, fx, Changes::default())?;
        let present = manifest_present(store, image)?;
        let tagged = tag_target(store, "v2")?;
        if tagged.as_ref().is_some_and(|d| *d != image.digest) {
            return Err("tag v2 names another manifest".into());
        }
        if tagged.is_some() && !present {
            return Err("tag v2 names a manifest that is not stored".into());
        }
        if returned && (!present || (self.by_tag && tagged.is_none())) {
            return Err(format!("acknowledged manifest lost (tag: {tagged:?})"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Retag {
    fx: Option<Fixture>,
    image: Option<Image>,
}

impl Operation for Retag {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
        let image = image_blobs(store, 60);
        put_manifest(store, &image, Reference::Digest(image.digest.clone()));
        self.image = Some(image);
    }

    fn run(&mut self, store: &Store) {
        put_manifest(
            store,
            self.image.as_ref().unwrap(),
            Reference::Tag(tag("v1")),
        );
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let (fx, image) = (self.fx.as_ref().unwrap(), self.image.as_ref().unwrap());
        let changes = Changes {
            tag: true,
            ..Changes::default()
        };
        check_fixture(store, fx, changes)?;
        check_manifest(store, image)?;
        let target = tag_target(store, "v1")?;
        let allowed = match returned {
            true => vec![Some(image.digest.clone())],
            false => vec![Some(image.digest.clone()), Some(fx.image.digest.clone())],
        };
        if !allowed.contains(&target) {
            return Err(format!("tag v1 names {target:?}"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct ManifestDelete {
    fx: Option<Fixture>,
}

impl Operation for ManifestDelete {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
    }

    fn run(&mut self, store: &Store) {
        let digest = &self.fx.as_ref().unwrap().image.digest;
        store.delete_manifest(&repo(), digest).unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let fx = self.fx.as_ref().unwrap();
        let changes = Changes {
            manifest: true,
            tag: true,
            ..Changes::default()
        };
        check_fixture(store, fx, changes)?;
        let present = manifest_present(store, &fx.image)?;
        let tagged = tag_target(store, "v1")?;
        if returned && (present || tagged.is_some()) {
            return Err(format!("deleted manifest is back (tag: {tagged:?})"));
        }
        Ok(())
    }
}

#[derive(Default)]
struct TagDelete {
    fx: Option<Fixture>,
}

impl Operation for TagDelete {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
    }

    fn run(&mut self, store: &Store) {
        store.delete_tag(&repo(), &tag("v1")).unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let fx = self.fx.as_ref().unwrap();
        let changes = Changes {
            tag: true,
            ..Changes::default()
        };
        check_fixture(store, fx, changes)?;
        let tagged = tag_target(store, "v1")?;
        let listed = store.tags(&repo()).map_err(|e| e.to_string())?;
        if returned && (tagged.is_some() || !listed.is_empty()) {
            return Err(format!(
                "deleted tag is back ({tagged:?}, listed {listed:?})"
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
struct BlobDelete {
    fx: Option<Fixture>,
}

impl Operation for BlobDelete {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
    }

    fn run(&mut self, store: &Store) {
        let digest = &self.fx.as_ref().unwrap().orphan.0;
        store.unlink_blob(&repo(), digest).unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let fx = self.fx.as_ref().unwrap();
        let changes = Changes {
            orphan: true,
            ..Changes::default()
        };
        check_fixture(store, fx, changes)?;
        match store.stat_blob(&repo(), &fx.orphan.0) {
            Ok(_) if returned => Err("deleted blob link is back".into()),
            _ => check_blob(store, &fx.orphan.0, None),
        }
    }
}

/// Deletes every upload session, whatever its age.
fn purge(store: &Store) -> Result<(), String> {
    let later = SystemTime::now() + Duration::from_secs(3600);
    store
        .purge_uploads(Duration::ZERO, later, false)
        .map(|_| ())
        .map_err(|e| format!("purge: {e}"))
}

/// An operation that is safe to run again (purge, gc): a state it was cut short in must show
/// `changes` or nothing, and running it again finishes the job, after which `finished` holds.
struct Rerunnable {
    fx: Option<Fixture>,
    changes: Changes,
    action: fn(&Store) -> Result<(), String>,
    finished: fn(&Store, &Fixture, Changes) -> Result<(), String>,
}

impl Operation for Rerunnable {
    fn setup(&mut self, store: &Store) {
        self.fx = Some(Fixture::build(store));
    }

    fn run(&mut self, store: &Store) {
        (self.action)(store).unwrap();
    }

    fn check(&self, store: &Store, returned: bool) -> Result<(), String> {
        let fx = self.fx.as_ref().unwrap();
        check_fixture(store, fx, self.changes)?;
        if !returned {
            // Cut short: running it again finishes the job.
            (self.action)(store)?;
        }
        (self.finished)(store, fx, self.changes)
    }
}

/// Purge: every upload session is gone.
fn purge_uploads() -> Rerunnable {
    Rerunnable {
        fx: None,
        changes: Changes {
            session: true,
            ..Changes::default()
        },
        action: purge,
        finished: |store, _, _| check_no_sessions(store),
    }
}

/// Collects garbage with no grace window.
fn collect(store: &Store) -> Result<(), String> {
    let options = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    store
        .collect_garbage(&options)
        .map(|_| ())
        .map_err(|e| format!("gc: {e}"))
}

/// GC: the orphan is collected for good, and the image survived the second run too.
fn gc() -> Rerunnable {
    Rerunnable {
        fx: None,
        changes: Changes {
            orphan: true,
            ..Changes::default()
        },
        action: collect,
        finished: |store, fx, changes| {
            let orphan = &fx.orphan.0;
            if store.stat_global(orphan).is_ok() || store.stat_blob(&repo(), orphan).is_ok() {
                return Err("collected garbage is back".into());
            }
            // The session was finished above (the first check's run).
            let changes = Changes {
                session: true,
                ..changes
            };
            check_fixture(store, fx, changes)
        },
    }
}
