//! Writing the client's small files (auth files, `index.json`) so readers never see half of one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file beside `path` (created with `mode`), syncs it, renames
/// it over `path` and syncs the directory: a reader sees the old file or the new one, never a
/// mix, and after a power cut the new one is there once this returned (the rename is only
/// durable with its directory). Parent directories are created as needed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".tmp.{}", std::process::id()));
    let temp = PathBuf::from(temp_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}
