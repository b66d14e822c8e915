//! A storage driver wrapper that fails chosen operations on chosen paths, for fault-injection
//! tests: ENOSPC on a write, EIO on a read, a failed rename or fsync, short writes.
//!
//! Rules are armed and cleared while a server runs on top, so a test can break the disk, watch
//! the client get the right error, heal it, and check that nothing was lost.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use layerstore::storage::{
    DriverPath, FileInfo, FileWriter, StorageDriver, StorageError, WalkControl,
};

/// An operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetContent,
    PutContent,
    Read,
    Write,
    Sync,
    Move,
    Delete,
    Stat,
}

/// How it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// ENOSPC.
    NoSpace,
    /// EIO.
    Io,
    /// Writes accept at most this many bytes per call (not an error: `write_all` must cope).
    ShortWrite(usize),
    /// The path is not there (with `Op::Stat`: a listing that lags behind, as an object
    /// store's can; the driver then says its listings may lag).
    Missing,
}

#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    path_contains: String,
    fault: Fault,
}

/// The wrapper. Cloning shares the rules.
#[derive(Debug, Clone)]
pub struct FaultyDriver {
    inner: Arc<dyn StorageDriver>,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl FaultyDriver {
    pub fn new(inner: Arc<dyn StorageDriver>) -> Self {
        FaultyDriver {
            inner,
            rules: Arc::default(),
        }
    }

    /// From now on, `op` on any path containing `path_contains` fails with `fault`.
    pub fn arm(&self, op: Op, path_contains: &str, fault: Fault) {
        self.rules.lock().unwrap().push(Rule {
            op,
            path_contains: path_contains.to_owned(),
            fault,
        });
    }

    /// Removes every rule.
    pub fn heal(&self) {
        self.rules.lock().unwrap().clear();
    }

    fn fault(&self, op: Op, path: &DriverPath) -> Option<Fault> {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.op == op && path.as_str().contains(&r.path_contains))
            .map(|r| r.fault)
    }

    fn check(&self, op: Op, path: &DriverPath) -> Result<(), StorageError> {
        match self.fault(op, path) {
            Some(Fault::NoSpace) => Err(io_error(op, path, no_space())),
            Some(Fault::Io) => Err(io_error(op, path, eio())),
            Some(Fault::Missing) => Err(StorageError::NotFound(path.clone())),
            Some(Fault::ShortWrite(_)) | None => Ok(()),
        }
    }
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28) // ENOSPC
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5) // EIO
}

fn io_error(op: Op, path: &DriverPath, source: io::Error) -> StorageError {
    let op = match op {
        Op::GetContent | Op::Read => "read",
        Op::PutContent | Op::Write => "write",
        Op::Sync => "fsync",
        Op::Move => "rename",
        Op::Delete => "delete",
        Op::Stat => "stat",
    };
    StorageError::Io {
        op,
        path: path.clone(),
        source,
    }
}

impl StorageDriver for FaultyDriver {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError> {
        self.check(Op::GetContent, path)?;
        self.inner.get_content(path)
    }

    fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        self.check(Op::PutContent, path)?;
        self.inner.put_content(path, content)
    }

    fn reader(&self, path: &DriverPath, offset: u64) -> Result<Box<dyn Read + Send>, StorageError> {
        self.check(Op::Read, path)?;
        self.inner.reader(path, offset)
    }

    fn writer(&self, path: &DriverPath, append: bool) -> Result<Box<dyn FileWriter>, StorageError> {
        let inner = self.inner.writer(path, append)?;
        Ok(Box::new(FaultyWriter {
            inner,
            driver: self.clone(),
            path: path.clone(),
        }))
    }

    fn listings_may_lag(&self) -> bool {
        let rules = self.rules.lock().unwrap();
        rules.iter().any(|r| r.fault == Fault::Missing)
    }

    fn stat(&self, path: &DriverPath) -> Result<FileInfo, StorageError> {
        self.check(Op::Stat, path)?;
        self.inner.stat(path)
    }

    fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
        self.inner.list(path)
    }

    fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError> {
        self.check(Op::Move, dest)?;
        self.inner.move_to(source, dest)
    }

    fn delete(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.check(Op::Delete, path)?;
        self.inner.delete(path)
    }

    fn touch(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.check(Op::PutContent, path)?;
        self.inner.touch(path)
    }

    fn file(&self, path: &DriverPath) -> Option<Result<std::fs::File, StorageError>> {
        // A read fault must reach the reader: no local-file shortcut around it.
        if self.fault(Op::Read, path).is_some() {
            return None;
        }
        self.inner.file(path)
    }

    fn walk(
        &self,
        path: &DriverPath,
        visit: &mut dyn FnMut(&FileInfo) -> Result<WalkControl, StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.walk(path, visit)
    }
}

struct FaultyWriter {
    inner: Box<dyn FileWriter>,
    driver: FaultyDriver,
    path: DriverPath,
}

impl std::fmt::Debug for FaultyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyWriter({})", self.path)
    }
}

impl Write for FaultyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.driver.fault(Op::Write, &self.path) {
            Some(Fault::NoSpace) => Err(no_space()),
            Some(Fault::Io) => Err(eio()),
            Some(Fault::Missing) => Err(io::Error::from(io::ErrorKind::NotFound)),
            Some(Fault::ShortWrite(max)) => self.inner.write(&buf[..buf.len().min(max.max(1))]),
            None => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FileWriter for FaultyWriter {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.driver.check(Op::Sync, &self.path)?;
        self.inner.sync()
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        self.driver.check(Op::Sync, &self.path)?;
        self.inner.commit()
    }

    fn commit_before_move(self: Box<Self>) -> Result<(), StorageError> {
        self.driver.check(Op::Sync, &self.path)?;
        self.inner.commit_before_move()
    }

    fn cancel(self: Box<Self>) -> Result<(), StorageError> {
        self.inner.cancel()
    }
}
