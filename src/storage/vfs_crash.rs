//! Crash states: what a power cut at a point of a [`Trace`] may leave on the disk.
//!
//! The model is POSIX's minimum, which ext4 and xfs may show in parts:
//! - a file's bytes (writes, truncations) are kept only if an fsync of that file followed them
//!   before the cut;
//! - a directory entry (create, mkdir, rename, unlink, rmdir) is kept only if an fsync of its
//!   directory followed it before the cut. A rename is atomic (the name moves, or it does
//!   not), and an fsync of either directory makes it durable, as on a journaling filesystem
//!   (ext4, xfs), where it is one transaction;
//! - what is not durable may still have reached the disk. In a [`Reorder::Sample`], each such
//!   entry change is kept or dropped independently, and each file keeps a random prefix of its
//!   unsynced writes: ext4 (`data=ordered`) and xfs move the on-disk size only over data that
//!   was written, so an append is never seen as zeros there. [`Reorder::Weak`] also allows
//!   that: each unsynced write is kept, dropped, or kept as zeros (the size grew, the data
//!   never came), independently, so a later write may land while an earlier one does not.
//!
//! Entry changes are replayed in order, so one whose directory or source is missing in the
//! crash state is skipped, as the filesystem would leave it unreachable. Files are tracked by
//! [`FileId`], so a file renamed into place keeps its bytes whatever became of its first name.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::vfs_record::{FileId, FsOp};

/// The mutations of one traced operation, and the state they started from.
#[derive(Debug, Clone)]
pub struct Trace {
    /// A copy of the tree before the first mutation.
    pub baseline: PathBuf,
    /// The baseline's files by id, with their paths in the baseline.
    pub base_files: HashMap<FileId, PathBuf>,
    /// The mutations, in order.
    pub ops: Vec<FsOp>,
}

/// Which crash state to build at a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reorder {
    /// Only what was made durable.
    Strict,
    /// What was made durable, plus a random part of the rest (seeded): entry changes in any
    /// subset, each file's unsynced writes as a prefix.
    Sample(u64),
    /// As `Sample`, but each unsynced write is kept, dropped or zero-filled on its own.
    Weak(u64),
}

/// What became of one non-durable mutation in a crash state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Dropped,
    /// A write whose size change reached the disk but not its data.
    Zeroed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(FileId),
}

/// The crash state being built: names and file contents.
#[derive(Debug, Default)]
struct State {
    names: BTreeMap<PathBuf, Node>,
    contents: HashMap<FileId, Vec<u8>>,
}

impl Trace {
    /// Number of mutations: the cut points are `0..=len()`.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the operation changed nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Writes into the empty directory `dest` the disk as a power cut before mutation `cut`
    /// may leave it, and returns the indexes of the non-durable mutations it left out.
    pub fn materialize(&self, cut: usize, reorder: Reorder, dest: &Path) -> io::Result<Vec<usize>> {
        let cut = cut.min(self.ops.len());
        let mut state = self.load_baseline()?;
        let fates = self.fates(cut, reorder);
        let mut dropped = Vec::new();
        for (i, (op, &fate)) in self.ops[..cut].iter().zip(&fates).enumerate() {
            if fate != Fate::Kept {
                dropped.push(i);
            }
            if fate != Fate::Dropped {
                state.apply(op, fate == Fate::Zeroed);
            }
        }
        state.write_to(dest)?;
        Ok(dropped)
    }

    /// What becomes of each mutation before `cut`.
    fn fates(&self, cut: usize, reorder: Reorder) -> Vec<Fate> {
        let (mut rng, weak) = match reorder {
            Reorder::Strict => (None, false),
            Reorder::Sample(seed) => (Some(SplitMix(seed)), false),
            Reorder::Weak(seed) => (Some(SplitMix(seed)), true),
        };
        // Unsynced writes per file, in order, for the prefix rule.
        let mut unsynced: HashMap<FileId, Vec<usize>> = HashMap::new();
        let mut fates = Vec::with_capacity(cut);
        for (i, op) in self.ops[..cut].iter().enumerate() {
            let fate = match (&mut rng, content_file(op)) {
                _ if !changes_state(op) || self.durable(i, cut) => Fate::Kept,
                (None, _) => Fate::Dropped,
                (Some(rng), Some(_)) if weak => {
                    [Fate::Kept, Fate::Dropped, Fate::Zeroed][rng.below(3)]
                }
                (Some(_), Some(file)) => {
                    unsynced.entry(file).or_default().push(i);
                    Fate::Dropped
                }
                (Some(rng), None) => [Fate::Kept, Fate::Dropped][rng.below(2)],
            };
            fates.push(fate);
        }
        if let Some(rng) = &mut rng {
            let mut files: Vec<_> = unsynced.into_values().collect();
            files.sort();
            for writes in files {
                let kept = rng.below(writes.len() + 1);
                for &i in &writes[..kept] {
                    fates[i] = Fate::Kept;
                }
            }
        }
        fates
    }

    /// True when an fsync covering mutation `i` came after it and before `cut`.
    pub fn durable(&self, i: usize, cut: usize) -> bool {
        let covers = |sync: &FsOp| match (&self.ops[i], sync) {
            (FsOp::Write { file, .. } | FsOp::SetLen { file, .. }, FsOp::SyncFile { file: f }) => {
                file == f
            }
            (op, FsOp::SyncDir { path }) => entry_dirs(op).contains(&Some(path.as_path())),
            _ => false,
        };
        self.ops[i + 1..cut.max(i + 1)].iter().any(covers)
    }

    /// One line per mutation, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, op) in self.ops.iter().enumerate() {
            let line = match op {
                FsOp::Write { file, offset, data } => {
                    format!("write #{file} @{offset} {} bytes", data.len())
                }
                other => format!("{other:?}"),
            };
            out.push_str(&format!("  {i:3}: {line}\n"));
        }
        out
    }

    fn load_baseline(&self) -> io::Result<State> {
        let mut state = State::default();
        let by_path: HashMap<&PathBuf, FileId> =
            self.base_files.iter().map(|(id, p)| (p, *id)).collect();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for entry in fs::read_dir(self.baseline.join(&rel))? {
                let entry = entry?;
                let path = rel.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    state.names.insert(path.clone(), Node::Dir);
                    stack.push(path);
                } else if let Some(&id) = by_path.get(&path) {
                    state.contents.insert(id, fs::read(entry.path())?);
                    state.names.insert(path, Node::File(id));
                }
            }
        }
        Ok(state)
    }
}

/// The directories whose fsync makes an entry change durable (either one, for a rename).
fn entry_dirs(op: &FsOp) -> [Option<&Path>; 2] {
    match op {
        FsOp::Create { path, .. }
        | FsOp::Mkdir { path }
        | FsOp::Unlink { path, .. }
        | FsOp::Rmdir { path } => [path.parent(), None],
        FsOp::Rename { from, to, .. } => [to.parent(), from.parent()],
        _ => [None, None],
    }
}

/// False for what leaves no trace after a crash of its own: fsyncs, and modification times
/// (not modelled: nothing relies on them for safety).
fn changes_state(op: &FsOp) -> bool {
    !matches!(
        op,
        FsOp::SyncFile { .. } | FsOp::SyncDir { .. } | FsOp::SetTimes { .. }
    )
}

/// The file whose bytes a mutation changes.
fn content_file(op: &FsOp) -> Option<FileId> {
    match op {
        FsOp::Write { file, .. } | FsOp::SetLen { file, .. } => Some(*file),
        _ => None,
    }
}

impl State {
    fn apply(&mut self, op: &FsOp, zeroed: bool) {
        match op {
            FsOp::Create { path, file } => {
                if self.has_parent(path) && !self.names.contains_key(path) {
                    self.names.insert(path.clone(), Node::File(*file));
                }
            }
            FsOp::Mkdir { path } => {
                if self.has_parent(path) && !self.names.contains_key(path) {
                    self.names.insert(path.clone(), Node::Dir);
                }
            }
            FsOp::Write { file, offset, data } => {
                let content = self.contents.entry(*file).or_default();
                write_at(content, *offset, data, zeroed);
            }
            FsOp::SetLen { file, len } => {
                let content = self.contents.entry(*file).or_default();
                content.resize(*len as usize, 0);
            }
            FsOp::Rename { from, to, file } => self.rename(from, to, *file),
            FsOp::Unlink { path, file } => {
                if self.names.get(path) == Some(&Node::File(*file)) {
                    self.names.remove(path);
                }
            }
            FsOp::Rmdir { path } => {
                if self.names.get(path) == Some(&Node::Dir) {
                    self.remove_tree(path);
                }
            }
            FsOp::SyncFile { .. } | FsOp::SyncDir { .. } | FsOp::SetTimes { .. } => {}
        }
    }

    fn has_parent(&self, path: &Path) -> bool {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.names.get(p) == Some(&Node::Dir),
            _ => true,
        }
    }

    /// Moves `from` (the file `file`, or a directory tree) to `to`. Into a directory the crash
    /// state lacks, it is unreachable: gone.
    fn rename(&mut self, from: &Path, to: &Path, file: Option<FileId>) {
        match file {
            Some(id) => {
                if self.names.get(from) == Some(&Node::File(id)) {
                    self.names.remove(from);
                }
                if self.has_parent(to) {
                    self.remove_tree(to);
                    self.names.insert(to.to_path_buf(), Node::File(id));
                }
            }
            None => {
                let moved = self.remove_tree(from);
                if moved.is_empty() || !self.has_parent(to) {
                    return;
                }
                self.remove_tree(to);
                for (path, node) in moved {
                    let rest = path.strip_prefix(from).unwrap_or(Path::new(""));
                    self.names.insert(to.join(rest), node);
                }
            }
        }
    }

    /// Removes `path` and everything below it, returning what was there.
    fn remove_tree(&mut self, path: &Path) -> Vec<(PathBuf, Node)> {
        let below: Vec<PathBuf> = self
            .names
            .range(path.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .collect();
        below
            .into_iter()
            .filter_map(|p| self.names.remove(&p).map(|node| (p, node)))
            .collect()
    }

    fn write_to(&self, dest: &Path) -> io::Result<()> {
        for (path, node) in &self.names {
            let target = dest.join(path);
            match node {
                Node::Dir => fs::create_dir_all(&target)?,
                Node::File(id) => {
                    let empty = Vec::new();
                    fs::write(&target, self.contents.get(id).unwrap_or(&empty))?;
                }
            }
        }
        Ok(())
    }
}

/// Writes `data` at `offset`, zero-filling any hole; `zeroed`: only the size change landed.
fn write_at(content: &mut Vec<u8>, offset: u64, data: &[u8], zeroed: bool) {
    let (start, end) = (offset as usize, offset as usize + data.len());
    if content.len() < end {
        content.resize(end, 0);
    }
    if !zeroed {
        content[start..end].copy_from_slice(data);
    }
}

/// SplitMix64: a small seeded generator, so a failing state can be rebuilt from its seed.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn trace(ops: Vec<FsOp>) -> (tempfile::TempDir, Trace) {
        let base = tempfile::tempdir().unwrap();
        fs::create_dir(base.path().join("d")).unwrap();
        let trace = Trace {
            baseline: base.path().to_path_buf(),
            base_files: HashMap::new(),
            ops,
        };
        (base, trace)
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn temp_then_rename() -> Vec<FsOp> {
        vec![
            FsOp::Mkdir { path: p("tmp") },
            FsOp::Create {
                path: p("tmp/t"),
                file: 1,
            },
            FsOp::Write {
                file: 1,
                offset: 0,
                data: b"new".to_vec(),
            },
            FsOp::SyncFile { file: 1 },
            FsOp::Rename {
                from: p("tmp/t"),
                to: p("d/f"),
                file: Some(1),
            },
            FsOp::SyncDir { path: p("d") },
        ]
    }

    #[test]
    fn a_renamed_file_keeps_its_bytes_once_its_directory_is_synced() {
        let (_base, trace) = trace(temp_then_rename());
        let dest = tempfile::tempdir().unwrap();
        let dropped = trace.materialize(6, Reorder::Strict, dest.path()).unwrap();
        // The temporary directory and name were never made durable; the rename was.
        assert_eq!(dropped, vec![0, 1]);
        assert_eq!(fs::read(dest.path().join("d/f")).unwrap(), b"new");
        assert!(!dest.path().join("tmp").exists());
    }

    #[test]
    fn before_the_directory_fsync_the_rename_is_lost() {
        let (_base, trace) = trace(temp_then_rename());
        let dest = tempfile::tempdir().unwrap();
        trace.materialize(5, Reorder::Strict, dest.path()).unwrap();
        assert!(!dest.path().join("d/f").exists());
        assert!(dest.path().join("d").is_dir());
    }

    /// The contents `d/f` takes over 64 seeds of `reorder`, after two unsynced appends.
    fn outcomes(reorder: fn(u64) -> Reorder) -> HashSet<Vec<u8>> {
        let mut ops = temp_then_rename();
        for (offset, data) in [(3, b"ab"), (5, b"cd")] {
            ops.push(FsOp::Write {
                file: 1,
                offset,
                data: data.to_vec(),
            });
        }
        let (_base, trace) = trace(ops);
        let mut seen = HashSet::new();
        for seed in 0..64 {
            let dest = tempfile::tempdir().unwrap();
            trace.materialize(8, reorder(seed), dest.path()).unwrap();
            seen.insert(fs::read(dest.path().join("d/f")).unwrap());
        }
        seen
    }

    fn set(contents: &[&[u8]]) -> HashSet<Vec<u8>> {
        contents.iter().map(|c| c.to_vec()).collect()
    }

    #[test]
    fn samples_keep_a_prefix_of_the_unsynced_writes() {
        let expected = set(&[b"new", b"newab", b"newabcd"]);
        assert_eq!(outcomes(Reorder::Sample), expected);
    }

    #[test]
    fn weak_samples_also_keep_later_writes_alone_and_zero_filled_ones() {
        let seen = outcomes(Reorder::Weak);
        for expected in set(&[b"new", b"newab", b"new\0\0cd", b"newab\0\0", b"new\0\0\0\0"]) {
            assert!(
                seen.contains(&expected),
                "{expected:?} never seen: {seen:?}"
            );
        }
    }
}
