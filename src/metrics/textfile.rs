//! Writing metrics for node_exporter's textfile collector, which reads every `*.prom` file of a
//! directory at each scrape: the file must change atomically, or a scrape may read half of it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Metrics;

/// Replaces the file at `path` with `text` atomically: written to a temporary file in the same
/// directory (named so the collector's `*.prom` pattern skips it), synced, then renamed over
/// `path`. On failure the temporary file is removed and `path` is untouched.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("layerstore.prom");
/// layerstore::metrics::write_textfile(&path, "a_metric 1\n").unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "a_metric 1\n");
/// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
/// ```
pub fn write_textfile(path: &Path, text: &str) -> io::Result<()> {
    let temp = temp_path(path)?;
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// `.NAME.PID.tmp` beside `path`.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", path.display()),
        )
    })?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.tmp", std::process::id()));
    Ok(path.with_file_name(temp))
}

impl Metrics {
    /// Writes [`Metrics::encode`] to `path` with [`write_textfile`].
    pub fn write_textfile(&self, path: &Path) -> io::Result<()> {
        write_textfile(path, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.prom");
        std::fs::write(&path, "old 1\n").unwrap();
        // A directory where the temporary file would go makes File::create fail.
        std::fs::create_dir(temp_path(&path).unwrap()).unwrap();
        assert!(write_textfile(&path, "new 1\n").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old 1\n");
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        assert!(write_textfile(Path::new("/"), "x 1\n").is_err());
    }
}
