//! [`InMemoryDriver`]: a storage driver over a map in memory, for tests and ephemeral stores.
//!
//! Files are the map's keys; directories are implicit (a path is a directory while some key lies
//! below it), which is how object stores behave too, so the driver test suite checks that the
//! store never relies on empty directories. One `parking_lot` read-write lock guards the map;
//! readers copy what they need out under a read lock.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;

use super::{DriverPath, FileInfo, FileWriter, StorageDriver, StorageError, MAX_CONTENT_LEN};

#[derive(Debug, Clone)]
struct Entry {
    data: Vec<u8>,
    modified: SystemTime,
}

/// Keyed by the path string: a `String` range scan over `dir/` finds exactly the keys below it.
type Files = Arc<RwLock<BTreeMap<String, Entry>>>;

/// A storage driver that keeps everything in memory.
///
/// ```
/// use layerstore::storage::{DriverPath, InMemoryDriver, StorageDriver};
/// let driver = InMemoryDriver::new();
/// let path = DriverPath::parse("/a/b").unwrap();
/// driver.put_content(&path, b"x").unwrap();
/// assert!(driver.stat(&DriverPath::parse("/a").unwrap()).unwrap().is_dir);
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryDriver {
    files: Files,
}

impl InMemoryDriver {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The `dir/` prefix every key below `dir` starts with.
fn prefix(dir: &DriverPath) -> String {
    if dir.is_root() {
        "/".to_owned()
    } else {
        format!("{dir}/")
    }
}

/// The keys strictly below `dir`, in sorted order.
fn below<'a>(
    files: &'a BTreeMap<String, Entry>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
    files
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

fn has_children(files: &BTreeMap<String, Entry>, dir: &DriverPath) -> bool {
    below(files, &prefix(dir)).next().is_some()
}

impl StorageDriver for InMemoryDriver {
    fn name(&self) -> &'static str {
        "inmemory"
    }

    fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError> {
        let files = self.files.read();
        match files.get(path.as_str()) {
            Some(e) if e.data.len() as u64 > MAX_CONTENT_LEN => Err(StorageError::TooLarge {
                path: path.clone(),
                size: e.data.len() as u64,
                limit: MAX_CONTENT_LEN,
            }),
            Some(e) => Ok(e.data.clone()),
            None if has_children(&files, path) => Err(StorageError::IsDirectory(path.clone())),
            None => Err(StorageError::NotFound(path.clone())),
        }
    }

    fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        let mut files = self.files.write();
        if has_children(&files, path) {
            return Err(StorageError::IsDirectory(path.clone()));
        }
        files.insert(
            path.as_str().to_owned(),
            Entry {
                data: content.to_vec(),
                modified: SystemTime::now(),
            },
        );
        Ok(())
    }

    fn reader(&self, path: &DriverPath, offset: u64) -> Result<Box<dyn Read + Send>, StorageError> {
        let files = self.files.read();
        let entry = files
            .get(path.as_str())
            .ok_or_else(|| StorageError::NotFound(path.clone()))?;
        let size = entry.data.len() as u64;
        if offset > size {
            return Err(StorageError::InvalidOffset {
                path: path.clone(),
                offset,
                size,
            });
        }
        // A snapshot: later appends are not seen, as with a file opened before them.
        Ok(Box::new(Cursor::new(
            entry.data[offset as usize..].to_vec(),
        )))
    }

    fn writer(&self, path: &DriverPath, append: bool) -> Result<Box<dyn FileWriter>, StorageError> {
        let mut files = self.files.write();
        if has_children(&files, path) {
            return Err(StorageError::IsDirectory(path.clone()));
        }
        let entry = files
            .entry(path.as_str().to_owned())
            .or_insert_with(|| Entry {
                data: Vec::new(),
                modified: SystemTime::now(),
            });
        if !append {
            entry.data.clear();
        }
        let size = entry.data.len() as u64;
        Ok(Box::new(MemWriter {
            files: Arc::clone(&self.files),
            path: path.clone(),
            size,
        }))
    }

    fn stat(&self, path: &DriverPath) -> Result<FileInfo, StorageError> {
        let files = self.files.read();
        if let Some(e) = files.get(path.as_str()) {
            return Ok(FileInfo {
                path: path.clone(),
                size: e.data.len() as u64,
                is_dir: false,
                modified: e.modified,
            });
        }
        let newest = below(&files, &prefix(path)).map(|(_, e)| e.modified).max();
        match newest {
            Some(modified) => Ok(FileInfo {
                path: path.clone(),
                size: 0,
                is_dir: true,
                modified,
            }),
            None => Err(StorageError::NotFound(path.clone())),
        }
    }

    fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
        let files = self.files.read();
        if files.contains_key(path.as_str()) {
            return Err(StorageError::NotADirectory(path.clone()));
        }
        let prefix = prefix(path);
        let mut children: Vec<DriverPath> = Vec::new();
        // Keys sharing a child's prefix are contiguous, so comparing with the last one dedupes.
        for (key, _) in below(&files, &prefix) {
            let name = key[prefix.len()..].split('/').next().unwrap_or("");
            if children.last().map(DriverPath::name) != Some(name) {
                children.push(path.join(name)?);
            }
        }
        children.sort();
        if children.is_empty() && !path.is_root() {
            return Err(StorageError::NotFound(path.clone()));
        }
        Ok(children)
    }

    fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError> {
        let mut files = self.files.write();
        if has_children(&files, dest) {
            return Err(StorageError::IsDirectory(dest.clone()));
        }
        let entry = files
            .remove(source.as_str())
            .ok_or_else(|| StorageError::NotFound(source.clone()))?;
        files.insert(dest.as_str().to_owned(), entry);
        Ok(())
    }

    fn touch(&self, path: &DriverPath) -> Result<(), StorageError> {
        let mut files = self.files.write();
        let entry = files
            .get_mut(path.as_str())
            .ok_or_else(|| StorageError::NotFound(path.clone()))?;
        entry.modified = SystemTime::now();
        Ok(())
    }

    fn delete(&self, path: &DriverPath) -> Result<(), StorageError> {
        let mut files = self.files.write();
        let prefix = prefix(path);
        let doomed: Vec<String> = files
            .get_key_value(path.as_str())
            .map(|(k, _)| k.clone())
            .into_iter()
            .chain(below(&files, &prefix).map(|(k, _)| k.clone()))
            .collect();
        if doomed.is_empty() {
            return Err(StorageError::NotFound(path.clone()));
        }
        for key in doomed {
            files.remove(&key);
        }
        Ok(())
    }
}

/// The in-memory [`FileWriter`]: each write appends to the map entry under the write lock.
#[derive(Debug)]
struct MemWriter {
    files: Files,
    path: DriverPath,
    size: u64,
}

impl Write for MemWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut files = self.files.write();
        let entry = files
            .entry(self.path.as_str().to_owned())
            .or_insert_with(|| Entry {
                data: Vec::new(),
                modified: SystemTime::now(),
            });
        entry.data.extend_from_slice(buf);
        entry.modified = SystemTime::now();
        self.size = entry.data.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for MemWriter {
    fn size(&self) -> u64 {
        self.size
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }

    fn cancel(self: Box<Self>) -> Result<(), StorageError> {
        self.files.write().remove(self.path.as_str());
        Ok(())
    }
}
