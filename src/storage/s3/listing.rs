//! Listings on S3, one `ListObjectsV2` page (at most 1,000 keys) in memory at a time.
//!
//! Directories are key prefixes. [`list`] asks with delimiter `/` for one level; [`walk`] lists
//! every key below a path without a delimiter and makes up the directories from the keys, in
//! key order; a directory the visitor skips is jumped over by starting the next request after
//! it (`StartAfter`), so skipping `_manifests` costs one request, not a page per revision.
//!
//! A listing cut short and taken for complete could make the store think files are gone, so
//! a store that says "more" without saying where, or gives back the continuation token it was
//! just asked with (it would be asked forever), is an error, as is one that lists again what
//! a `DeleteObjects` removed. Keys outside the prefix asked for, and keys a walk has passed
//! (a store that ignores `StartAfter` or repeats a page), are not used.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::client::{quick, storage_error, system_time, S3Client};
use super::multipart;
use crate::storage::{DriverPath, FileInfo, StorageError, WalkControl};

/// Sorts after every valid key below a prefix: `StartAfter` for skipping a directory.
const AFTER_EVERYTHING: char = '\u{10FFFF}';

/// One page of keys.
struct Page {
    objects: Vec<(String, u64, std::time::SystemTime)>,
    prefixes: Vec<String>,
    next: Option<String>,
}

fn list_page(
    client: &S3Client,
    prefix: &str,
    delimiter: bool,
    start_after: Option<String>,
    token: Option<String>,
    path: &DriverPath,
) -> Result<Page, StorageError> {
    let request = client
        .sdk
        .list_objects_v2()
        .bucket(&client.bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.then(|| "/".to_owned()))
        .set_start_after(start_after)
        .set_continuation_token(token);
    let output = client
        .run(async move { request.customize().config_override(quick()).send().await })
        .map_err(|e| storage_error("ListObjectsV2", path, e))?;
    let objects = output
        .contents()
        .iter()
        .filter_map(|o| {
            let key = o.key()?.to_owned();
            let size = o.size().unwrap_or_default().max(0) as u64;
            Some((key, size, system_time(o.last_modified())))
        })
        .collect();
    let prefixes = output
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix().map(str::to_owned))
        .collect();
    let next = match output.is_truncated() {
        Some(true) => Some(
            output
                .next_continuation_token()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| broken(path, "a truncated listing without a continuation token"))?
                .to_owned(),
        ),
        _ => None,
    };
    Ok(Page {
        objects,
        prefixes,
        next,
    })
}

/// An error for a store that answers a listing in a way no correct store does.
fn broken(path: &DriverPath, what: &str) -> StorageError {
    StorageError::Backend {
        op: "ListObjectsV2",
        path: path.clone(),
        message: format!("the store's listing is broken: {what}"),
    }
}

/// The token to ask with next: `next`, unless it is the token just used.
fn advance(
    used: Option<String>,
    next: Option<String>,
    path: &DriverPath,
) -> Result<Option<String>, StorageError> {
    match next {
        Some(next) if used.as_ref() == Some(&next) => {
            Err(broken(path, "the same continuation token again"))
        }
        next => Ok(next),
    }
}

/// The direct children of `path`, sorted; [`StorageError::NotFound`] when there are none.
pub(crate) fn list(client: &S3Client, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
    let prefix = client.dir_prefix(path);
    let mut children = Vec::new();
    let mut token = None;
    loop {
        let page = list_page(client, &prefix, true, None, token.clone(), path)?;
        let keys = page.objects.into_iter().map(|(key, _, _)| key);
        let below = keys.chain(page.prefixes).filter(|k| k.starts_with(&prefix));
        children.extend(below.filter_map(|k| client.path_of(&k)));
        token = advance(token, page.next, path)?;
        if token.is_none() {
            break;
        }
    }
    // What a correct store lists with the delimiter, and nothing else: one level below.
    children.retain(|child| child.parent().as_ref() == Some(path));
    if children.is_empty() {
        return Err(match super::object_size(client, path)? {
            Some(_) => StorageError::NotADirectory(path.clone()),
            None => StorageError::NotFound(path.clone()),
        });
    }
    children.sort();
    children.dedup();
    Ok(children)
}

/// True when some key lies below `path`.
pub(crate) fn is_dir(
    client: &S3Client,
    path: &DriverPath,
) -> Result<Option<FileInfo>, StorageError> {
    let prefix = client.dir_prefix(path);
    let request = client
        .sdk
        .list_objects_v2()
        .bucket(&client.bucket)
        .prefix(&prefix)
        .max_keys(1);
    let output = client
        .run(async move { request.customize().config_override(quick()).send().await })
        .map_err(|e| storage_error("ListObjectsV2", path, e))?;
    Ok(output.contents().first().map(|o| FileInfo {
        path: path.clone(),
        size: 0,
        is_dir: true,
        modified: system_time(o.last_modified()),
    }))
}

/// Visits every file and directory below `path` in key order (see the module docs).
pub(crate) fn walk(
    client: &S3Client,
    path: &DriverPath,
    visit: &mut dyn FnMut(&FileInfo) -> Result<WalkControl, StorageError>,
) -> Result<(), StorageError> {
    let base = client.dir_prefix(path);
    let mut open: Vec<String> = Vec::new();
    let mut start_after = None;
    let mut token = None;
    let mut seen_any = false;
    // Keys up to here are done: visited, or in a skipped directory.
    let mut floor: Option<String> = None;
    loop {
        let used = token.take();
        let page = list_page(client, &base, false, start_after.take(), used.clone(), path)?;
        let mut restart = None;
        for (key, size, modified) in page.objects {
            let Some(relative) = key.strip_prefix(&base) else {
                continue; // not below the prefix asked for
            };
            if floor.as_ref().is_some_and(|floor| key <= *floor) {
                continue; // listed before, or after StartAfter ignored
            }
            floor = Some(key.clone());
            seen_any = true;
            if relative.is_empty() || relative.ends_with('/') {
                continue; // a "directory marker" object some tools write
            }
            let components: Vec<&str> = relative.split('/').collect();
            let dirs = &components[..components.len() - 1]; // the last one is the file
            let common = open
                .iter()
                .zip(dirs)
                .take_while(|(a, b)| a.as_str() == **b)
                .count();
            open.truncate(common);
            for dir in &dirs[common..] {
                let dir_key = format!("{base}{}{dir}", prefix_of(&open));
                // An empty component (`a//b`, or `//b` right below the prefix, which would
                // name the walk's own root) is no directory of its own.
                let valid = |p: &DriverPath| !dir.is_empty() && p.name() == *dir;
                let Some(dir_path) = client.path_of(&dir_key).filter(valid) else {
                    break;
                };
                let info = FileInfo {
                    path: dir_path,
                    size: 0,
                    is_dir: true,
                    modified,
                };
                if visit(&info)? == WalkControl::SkipDir {
                    let after = format!("{dir_key}/{AFTER_EVERYTHING}");
                    floor = Some(after.clone());
                    restart = Some(after);
                    break;
                }
                open.push((*dir).to_owned());
            }
            if restart.is_some() {
                break;
            }
            if open.len() != dirs.len() {
                continue; // below a directory whose name is not a valid path
            }
            if let Some(file_path) = client.path_of(&key) {
                let info = FileInfo {
                    path: file_path,
                    size,
                    is_dir: false,
                    modified,
                };
                visit(&info)?;
            }
        }
        match (restart, advance(used, page.next, path)?) {
            (Some(after), _) => start_after = Some(after),
            (None, Some(next)) => token = Some(next),
            (None, None) => break,
        }
    }
    if !seen_any {
        return Err(StorageError::NotFound(path.clone()));
    }
    Ok(())
}

fn prefix_of(open: &[String]) -> String {
    open.iter().map(|d| format!("{d}/")).collect()
}

/// Deletes every object below `path` and aborts every unfinished upload at or below it, a page
/// at a time; returns whether anything was there.
pub(crate) fn delete_below(client: &S3Client, path: &DriverPath) -> Result<bool, StorageError> {
    let prefix = client.dir_prefix(path);
    let mut found = false;
    let mut deleted: Vec<String> = Vec::new();
    loop {
        // Always the first page: what it names is deleted before the next request.
        let page = list_page(client, &prefix, false, None, None, path)?;
        let keys: Vec<String> = page
            .objects
            .into_iter()
            .map(|(k, _, _)| k)
            .filter(|k| k.starts_with(&prefix))
            .collect();
        if keys.is_empty() {
            break;
        }
        if keys.iter().any(|k| deleted.binary_search(k).is_ok()) {
            return Err(broken(
                path,
                "keys listed again after DeleteObjects removed them",
            ));
        }
        found = true;
        let more = page.next.is_some();
        deleted.clone_from(&keys);
        deleted.sort();
        delete_keys(client, keys, path)?;
        if !more {
            break;
        }
    }
    // One listing for the file itself (`key`) and everything below it (`key/`).
    let key = client.key(path);
    for (upload_key, id, _) in multipart::list_uploads(client, &key, path)? {
        if upload_key == key || upload_key.starts_with(&prefix) {
            found = true;
            if !multipart::abort_or_gone(client, &upload_key, &id, path)? {
                // Listed, and unknown to abort: a creation a crash cut short (see
                // `abort_or_gone`). Deleting the key, which goes with the rest anyway, ends it.
                delete_keys(client, vec![upload_key], path)?;
            }
        }
    }
    Ok(found)
}

/// Keys per `DeleteObjects` request. S3 takes up to 1,000, but a request of 1,000 can take
/// longer than the per-attempt timeout on a small cluster (measured: over 10 s on a local
/// 3-node Garage), so deletes go in smaller requests, each well within it.
const DELETE_BATCH: usize = 200;

/// Deletes `keys`, [`DELETE_BATCH`] per request.
pub(crate) fn delete_keys(
    client: &S3Client,
    keys: Vec<String>,
    path: &DriverPath,
) -> Result<(), StorageError> {
    for batch in keys.chunks(DELETE_BATCH) {
        delete_batch(client, batch.to_vec(), path)?;
    }
    Ok(())
}

fn delete_batch(
    client: &S3Client,
    keys: Vec<String>,
    path: &DriverPath,
) -> Result<(), StorageError> {
    let objects = keys
        .into_iter()
        .filter_map(|key| ObjectIdentifier::builder().key(key).build().ok())
        .collect();
    let delete = Delete::builder()
        .set_objects(Some(objects))
        .quiet(true)
        .build()
        .map_err(|e| super::client::unavailable("DeleteObjects", path, e.to_string()))?;
    let request = client
        .sdk
        .delete_objects()
        .bucket(&client.bucket)
        .delete(delete);
    let output = client
        .run(async move { request.customize().config_override(quick()).send().await })
        .map_err(|e| storage_error("DeleteObjects", path, e))?;
    if let Some(failed) = output.errors().first() {
        return Err(super::client::unavailable(
            "DeleteObjects",
            path,
            format!(
                "{}: {}",
                failed.key().unwrap_or_default(),
                failed.message().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}
