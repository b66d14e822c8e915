//! [`MeteredDriver`]: any driver, with every call timed and every failure counted in
//! [`Metrics`].
//!
//! Every trait method is delegated, the defaulted ones too, so the wrapped driver's own
//! versions (S3's one-call `file_size`, its `walk` by listing, the filesystem's `map`) still
//! run. The operation label is the method's name; writers are wrapped so that their `sync`,
//! `commit` and `cancel` (an S3 part upload, a multipart completion) are timed as
//! `writer_sync`, `writer_commit` and `writer_cancel`. Plain `write` calls and reads from a
//! reader are not timed one by one: they are the hot loop, and their time is the request's.
//!
//! "Not found" is an answer, not a failure, for every operation: it is counted with outcome
//! `not_found` and not in `layerstore_storage_errors_total`.
//!
//! The cost is two clock reads and a few atomic additions per call, against calls that are
//! system calls or network round trips (`docs/operations.md` has the measurement).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{
    DeferredSync, DriverPath, FileInfo, FileWriter, StorageDriver, StorageError, WalkControl,
};
use crate::metrics::{DriverOutcome, Metrics};

/// A driver that reports each call to [`Metrics`].
///
/// ```
/// use std::sync::Arc;
/// use layerstore::metrics::Metrics;
/// use layerstore::storage::{DriverPath, InMemoryDriver, MeteredDriver, StorageDriver};
///
/// let metrics = Arc::new(Metrics::new());
/// let driver = MeteredDriver::new(Arc::new(InMemoryDriver::new()), Arc::clone(&metrics));
/// let path = DriverPath::parse("/a").unwrap();
/// driver.put_content(&path, b"x").unwrap();
/// assert!(driver.stat(&DriverPath::parse("/b").unwrap()).is_err());
/// let text = metrics.encode();
/// assert!(text.contains(r#"layerstore_storage_operations_total{op="put_content",outcome="ok"} 1"#));
/// assert!(text.contains(r#"layerstore_storage_operations_total{op="stat",outcome="not_found"} 1"#));
/// ```
#[derive(Debug, Clone)]
pub struct MeteredDriver {
    inner: Arc<dyn StorageDriver>,
    metrics: Arc<Metrics>,
}

impl MeteredDriver {
    /// Wraps `inner`, reporting to `metrics`.
    pub fn new(inner: Arc<dyn StorageDriver>, metrics: Arc<Metrics>) -> Self {
        MeteredDriver { inner, metrics }
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &Arc<dyn StorageDriver> {
        &self.inner
    }

    /// Runs `call` as operation `op`, timing it and recording its outcome.
    fn timed<T>(
        &self,
        op: &'static str,
        call: impl FnOnce() -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        observe(&self.metrics, op, call)
    }
}

fn observe<T>(
    metrics: &Metrics,
    op: &'static str,
    call: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let started = Instant::now();
    let result = call();
    let outcome = match &result {
        Ok(_) => DriverOutcome::Ok,
        Err(e) => outcome_of(e),
    };
    metrics.observe_driver(op, started.elapsed(), outcome);
    result
}

/// The outcome label of an error: not found, or a failure of some kind.
fn outcome_of(error: &StorageError) -> DriverOutcome {
    DriverOutcome::Error(match error {
        StorageError::NotFound(_) => return DriverOutcome::NotFound,
        StorageError::InvalidPath(_) => "invalid_path",
        StorageError::InvalidOffset { .. } => "invalid_offset",
        StorageError::TooLarge { .. } => "too_large",
        StorageError::IsDirectory(_) => "is_directory",
        StorageError::NotADirectory(_) => "not_a_directory",
        StorageError::Io { .. } => "io",
        StorageError::Unavailable { .. } => "unavailable",
        StorageError::Backend { .. } => "backend",
    })
}

impl StorageDriver for MeteredDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get_content(&self, path: &DriverPath) -> Result<Vec<u8>, StorageError> {
        self.timed("get_content", || self.inner.get_content(path))
    }

    fn put_content(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        self.timed("put_content", || self.inner.put_content(path, content))
    }

    fn put_new_unsynced(&self, path: &DriverPath, content: &[u8]) -> Result<(), StorageError> {
        self.timed("put_content", || self.inner.put_new_unsynced(path, content))
    }

    fn sync_new(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.timed("sync_new", || self.inner.sync_new(path))
    }

    fn reader(&self, path: &DriverPath, offset: u64) -> Result<Box<dyn Read + Send>, StorageError> {
        self.timed("reader", || self.inner.reader(path, offset))
    }

    fn reader_range(
        &self,
        path: &DriverPath,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        self.timed("reader", || self.inner.reader_range(path, offset, len))
    }

    fn writer(&self, path: &DriverPath, append: bool) -> Result<Box<dyn FileWriter>, StorageError> {
        self.timed("writer", || self.inner.writer(path, append))
            .map(|inner| self.wrap_writer(inner))
    }

    fn stat(&self, path: &DriverPath) -> Result<FileInfo, StorageError> {
        self.timed("stat", || self.inner.stat(path))
    }

    fn file_size(&self, path: &DriverPath) -> Result<Option<u64>, StorageError> {
        self.timed("file_size", || self.inner.file_size(path))
    }

    fn open_append(&self, path: &DriverPath) -> Result<Option<Box<dyn FileWriter>>, StorageError> {
        self.timed("open_append", || self.inner.open_append(path))
            .map(|opened| opened.map(|inner| self.wrap_writer(inner)))
    }

    fn append_size(&self, path: &DriverPath) -> Result<u64, StorageError> {
        self.timed("append_size", || self.inner.append_size(path))
    }

    fn start_appendable(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.timed("start_appendable", || self.inner.start_appendable(path))
    }

    fn finish_appends(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.timed("finish_appends", || self.inner.finish_appends(path))
    }

    fn written_before_boot(&self, path: &DriverPath) -> Result<bool, StorageError> {
        self.timed("stat", || self.inner.written_before_boot(path))
    }

    fn listings_may_lag(&self) -> bool {
        self.inner.listings_may_lag()
    }

    fn truncate(&self, path: &DriverPath, len: u64) -> Result<(), StorageError> {
        self.timed("truncate", || self.inner.truncate(path, len))
    }

    fn list(&self, path: &DriverPath) -> Result<Vec<DriverPath>, StorageError> {
        self.timed("list", || self.inner.list(path))
    }

    fn move_to(&self, source: &DriverPath, dest: &DriverPath) -> Result<(), StorageError> {
        self.timed("move_to", || self.inner.move_to(source, dest))
    }

    fn delete(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.timed("delete", || self.inner.delete(path))
    }

    fn discard(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.timed("delete", || self.inner.discard(path))
    }

    fn delete_files(&self, paths: &[DriverPath]) -> Result<(), StorageError> {
        self.timed("delete_files", || self.inner.delete_files(paths))
    }

    fn touch(&self, path: &DriverPath) -> Result<(), StorageError> {
        self.timed("touch", || self.inner.touch(path))
    }

    fn sweep_temp_files(&self, cutoff: SystemTime) -> Result<u64, StorageError> {
        self.timed("sweep_temp_files", || self.inner.sweep_temp_files(cutoff))
    }

    fn file(&self, path: &DriverPath) -> Option<Result<std::fs::File, StorageError>> {
        let started = Instant::now();
        let result = self.inner.file(path)?;
        let outcome = result.as_ref().err().map_or(DriverOutcome::Ok, outcome_of);
        self.metrics
            .observe_driver("open", started.elapsed(), outcome);
        Some(result)
    }

    fn redirect_url(&self, path: &DriverPath) -> Option<Result<String, StorageError>> {
        let started = Instant::now();
        let result = self.inner.redirect_url(path)?;
        let outcome = result.as_ref().err().map_or(DriverOutcome::Ok, outcome_of);
        self.metrics
            .observe_driver("redirect_url", started.elapsed(), outcome);
        Some(result)
    }

    /// One `walk` operation for the whole walk (the wrapped driver's own listing calls inside it
    /// are not counted one by one).
    fn walk(
        &self,
        path: &DriverPath,
        visit: &mut dyn FnMut(&FileInfo) -> Result<WalkControl, StorageError>,
    ) -> Result<(), StorageError> {
        self.timed("walk", || self.inner.walk(path, visit))
    }
}

impl MeteredDriver {
    fn wrap_writer(&self, inner: Box<dyn FileWriter>) -> Box<dyn FileWriter> {
        Box::new(MeteredWriter {
            inner,
            metrics: Arc::clone(&self.metrics),
        })
    }
}

/// A writer whose durability calls are timed.
#[derive(Debug)]
struct MeteredWriter {
    inner: Box<dyn FileWriter>,
    metrics: Arc<Metrics>,
}

impl Write for MeteredWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FileWriter for MeteredWriter {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let inner = &mut self.inner;
        observe(&self.metrics, "writer_sync", || inner.sync())
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let MeteredWriter { inner, metrics } = *self;
        observe(&metrics, "writer_commit", || inner.commit())
    }

    fn commit_before_move(self: Box<Self>) -> Result<(), StorageError> {
        let MeteredWriter { inner, metrics } = *self;
        observe(&metrics, "writer_commit", || inner.commit_before_move())
    }

    fn cancel(self: Box<Self>) -> Result<(), StorageError> {
        let MeteredWriter { inner, metrics } = *self;
        observe(&metrics, "writer_cancel", || inner.cancel())
    }

    fn durable_len(&mut self) -> u64 {
        self.inner.durable_len()
    }

    fn part_boundary(&self) -> Option<u64> {
        self.inner.part_boundary()
    }

    fn deferred_sync(&mut self) -> Option<Box<dyn DeferredSync>> {
        let inner = self.inner.deferred_sync()?;
        Some(Box::new(MeteredSync {
            inner,
            metrics: Arc::clone(&self.metrics),
        }))
    }
}

/// A deferred sync, timed as a writer's sync.
struct MeteredSync {
    inner: Box<dyn DeferredSync>,
    metrics: Arc<Metrics>,
}

impl DeferredSync for MeteredSync {
    fn run(self: Box<Self>) -> Result<(), StorageError> {
        let MeteredSync { inner, metrics } = *self;
        observe(&metrics, "writer_sync", || inner.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::InMemoryDriver;

    fn metered() -> (MeteredDriver, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let driver = MeteredDriver::new(Arc::new(InMemoryDriver::new()), Arc::clone(&metrics));
        (driver, metrics)
    }

    fn count(metrics: &Metrics, series: &str) -> u64 {
        let text = metrics.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn writers_are_timed_and_errors_counted_by_kind() {
        let (driver, metrics) = metered();
        let path = DriverPath::parse("/dir/file").unwrap();
        let mut writer = driver.writer(&path, false).unwrap();
        writer.write_all(b"hello").unwrap();
        writer.sync().unwrap();
        writer.commit().unwrap();
        assert_eq!(driver.stat(&path).unwrap().size, 5);
        let dir = DriverPath::parse("/dir").unwrap();
        assert!(driver.get_content(&dir).is_err());
        let ops = "layerstore_storage_operations_total";
        assert_eq!(
            count(
                &metrics,
                &format!("{ops}{{op=\"writer_sync\",outcome=\"ok\"}}")
            ),
            1
        );
        assert_eq!(
            count(
                &metrics,
                &format!("{ops}{{op=\"writer_commit\",outcome=\"ok\"}}")
            ),
            1
        );
        assert_eq!(
            count(
                &metrics,
                r#"layerstore_storage_errors_total{kind="is_directory",op="get_content"}"#
            ),
            1
        );
    }

    #[test]
    fn defaulted_methods_are_delegated() {
        let (driver, metrics) = metered();
        let path = DriverPath::parse("/a/b").unwrap();
        driver.put_content(&path, b"xyz").unwrap();
        assert_eq!(driver.file_size(&path).unwrap(), Some(3));
        assert_eq!(driver.append_size(&path).unwrap(), 3);
        assert!(driver.open_append(&path).unwrap().is_some());
        let mut seen = Vec::new();
        driver
            .walk(&DriverPath::root(), &mut |info| {
                seen.push(info.path.to_string());
                Ok(WalkControl::Continue)
            })
            .unwrap();
        assert_eq!(seen, ["/a", "/a/b"]);
        assert_eq!(driver.name(), "inmemory");
        for op in ["file_size", "append_size", "open_append", "walk"] {
            let series =
                format!("layerstore_storage_operations_total{{op=\"{op}\",outcome=\"ok\"}}");
            assert_eq!(count(&metrics, &series), 1, "{op}");
        }
    }
}
