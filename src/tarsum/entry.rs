//! One archive entry as Go's `tar.Reader.Next` returns it: a decoded header merged with the
//! pending PAX records and GNU long name/link, with the typeflag-NUL rule applied (spec §3.4,
//! §3.5, §3.7, §3.8). Also the checks that make the reference fail on an entry: negative sizes,
//! sparse files (rejected here, see docs/tarsum.md) and the re-encoding refusal of §3.9.

use std::collections::BTreeMap;

use super::header::{c_string, RawHeader};
use super::pax::{parse_go_int, parse_pax_seconds, Records};

/// Go's zero `time.Time` in Unix seconds: the mtime of a PAX global-header entry.
pub const GO_ZERO_TIME: i64 = -62_135_596_800;

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// The fields TarSum may hash, after all merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Final name (not normalised).
    pub name: Vec<u8>,
    /// Full mode.
    pub mode: i64,
    /// Owner id.
    pub uid: i64,
    /// Group id.
    pub gid: i64,
    /// Size as hashed (header or PAX value, also for header-only types).
    pub size: i64,
    /// Whole Unix seconds.
    pub mtime: i64,
    /// Final typeflag byte.
    pub typeflag: u8,
    /// Link target.
    pub linkname: Vec<u8>,
    /// Owner name (hashed only in the legacy dialect).
    pub uname: Vec<u8>,
    /// Group name (hashed only in the legacy dialect).
    pub gname: Vec<u8>,
    /// Device major.
    pub devmajor: i64,
    /// Device minor.
    pub devminor: i64,
    /// Extended attributes with non-empty values, sorted bytewise by key.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Why an entry cannot be built (the reference fails on all of these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryFault {
    /// A PAX uid, gid, size, mtime, atime or ctime value that does not parse.
    PaxValue(&'static str),
    /// A data-bearing entry with a negative size.
    NegativeSize,
    /// GNU or PAX sparse file (not supported by layerstore).
    Sparse,
    /// A '0', '3', '4', '6' or 'S' entry whose name (given) ends in '/': Go's writer
    /// refuses it.
    TrailingSlash(Vec<u8>),
}

/// PAX records and GNU long names waiting for the next real entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Records of the last 'x' header (a second one replaces the first).
    pub pax: Option<Records>,
    /// Payload of the last 'L' header, cut at its first NUL.
    pub long_name: Option<Vec<u8>>,
    /// Payload of the last 'K' header, cut at its first NUL.
    pub long_link: Option<Vec<u8>>,
}

/// True for the types whose data Go never reads.
pub fn is_header_only(typeflag: u8) -> bool {
    matches!(typeflag, b'1'..=b'6')
}

/// Bytes of zero padding after `size` data bytes.
pub fn padding(size: u64) -> u64 {
    size.wrapping_neg() % 512
}

/// Builds a real entry (not a meta header and not a global header) from its header and the
/// pending meta state. Returns the entry and the number of data bytes that follow.
pub fn merge(raw: RawHeader, pending: &Pending) -> Result<(Entry, u64), EntryFault> {
    let mut entry = Entry {
        name: raw.name,
        mode: raw.mode,
        uid: raw.uid,
        gid: raw.gid,
        size: raw.size,
        mtime: raw.mtime,
        typeflag: raw.typeflag,
        linkname: raw.linkname,
        uname: raw.uname,
        gname: raw.gname,
        devmajor: raw.devmajor,
        devminor: raw.devminor,
        xattrs: BTreeMap::new(),
    };
    if let Some(records) = &pending.pax {
        apply_records(&mut entry, records)?;
    }
    if let Some(name) = pending.long_name.as_ref().filter(|n| !n.is_empty()) {
        entry.name.clone_from(name);
    }
    if let Some(link) = pending.long_link.as_ref().filter(|l| !l.is_empty()) {
        entry.linkname.clone_from(link);
    }
    if entry.typeflag == 0 {
        entry.typeflag = if entry.name.ends_with(b"/") {
            b'5'
        } else {
            b'0'
        };
    }
    let data_len = if is_header_only(entry.typeflag) {
        0
    } else {
        u64::try_from(entry.size).map_err(|_| EntryFault::NegativeSize)?
    };
    if entry.typeflag == b'S' || pending.pax.as_ref().is_some_and(is_pax_sparse) {
        return Err(EntryFault::Sparse);
    }
    if matches!(entry.typeflag, b'0' | b'3' | b'4' | b'6' | b'S') && entry.name.ends_with(b"/") {
        return Err(EntryFault::TrailingSlash(entry.name));
    }
    Ok((entry, data_len))
}

/// The entry Go returns for a PAX global header ('g'): its name (or `path`), its xattrs, and
/// zero everything else. Go ignores merge errors here, so invalid numbers are skipped.
pub fn global(raw_name: Vec<u8>, records: &Records) -> Entry {
    let mut name = raw_name;
    if let Some(path) = records.get(&b"path"[..]).filter(|p| !p.is_empty()) {
        name.clone_from(path);
    }
    Entry {
        name,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: GO_ZERO_TIME,
        typeflag: b'g',
        linkname: Vec::new(),
        uname: Vec::new(),
        gname: Vec::new(),
        devmajor: 0,
        devminor: 0,
        xattrs: xattrs(records),
    }
}

/// Go's `mergePAX`: records with an empty value are skipped entirely.
fn apply_records(entry: &mut Entry, records: &Records) -> Result<(), EntryFault> {
    for (key, value) in records.iter().filter(|(_, v)| !v.is_empty()) {
        let int = |name| parse_go_int(value).ok_or(EntryFault::PaxValue(name));
        let time = |name| parse_pax_seconds(value).ok_or(EntryFault::PaxValue(name));
        match key.as_slice() {
            b"path" => entry.name.clone_from(value),
            b"linkpath" => entry.linkname.clone_from(value),
            b"uname" => entry.uname.clone_from(value),
            b"gname" => entry.gname.clone_from(value),
            b"uid" => entry.uid = int("uid")?,
            b"gid" => entry.gid = int("gid")?,
            b"size" => entry.size = int("size")?,
            b"mtime" => entry.mtime = time("mtime")?,
            b"atime" => drop(time("atime")?),
            b"ctime" => drop(time("ctime")?),
            _ => {}
        }
    }
    entry.xattrs = xattrs(records);
    Ok(())
}

/// `SCHILY.xattr.<key>` records with non-empty values.
fn xattrs(records: &Records) -> BTreeMap<Vec<u8>, Vec<u8>> {
    records
        .iter()
        .filter(|(k, v)| k.starts_with(XATTR_PREFIX) && !v.is_empty())
        .map(|(k, v)| (k[XATTR_PREFIX.len()..].to_vec(), v.clone()))
        .collect()
}

/// Go's `readGNUSparsePAXHeaders` test for a PAX-format sparse file.
fn is_pax_sparse(records: &Records) -> bool {
    let get = |k: &[u8]| records.get(k).map_or(&[][..], Vec::as_slice);
    let (major, minor) = (get(b"GNU.sparse.major"), get(b"GNU.sparse.minor"));
    match (major, minor) {
        (b"0", b"0" | b"1") | (b"1", b"0") => true,
        _ if !major.is_empty() || !minor.is_empty() => false,
        _ => !get(b"GNU.sparse.map").is_empty(),
    }
}

/// A GNU long name or link payload: everything before the first NUL.
pub fn long_name(payload: &[u8]) -> Vec<u8> {
    c_string(payload).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &[u8], typeflag: u8, size: i64) -> RawHeader {
        RawHeader {
            name: name.to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            typeflag,
            linkname: Vec::new(),
            uname: b"user".to_vec(),
            gname: b"group".to_vec(),
            devmajor: 0,
            devminor: 0,
        }
    }

    #[test]
    fn typeflag_nul_becomes_file_or_dir() {
        let pending = Pending::default();
        let (e, n) = merge(raw(b"a", 0, 3), &pending).unwrap();
        assert_eq!((e.typeflag, n), (b'0', 3));
        let (e, n) = merge(raw(b"d/", 0, 3), &pending).unwrap();
        assert_eq!((e.typeflag, n, e.size), (b'5', 0, 3));
    }

    #[test]
    fn refusals() {
        let pending = Pending::default();
        assert_eq!(
            merge(raw(b"f/", b'0', 0), &pending),
            Err(EntryFault::TrailingSlash(b"f/".to_vec()))
        );
        assert_eq!(
            merge(raw(b"f", b'0', -1), &pending),
            Err(EntryFault::NegativeSize)
        );
        assert!(merge(raw(b"l", b'2', -1), &pending).is_ok());
        assert_eq!(merge(raw(b"s", b'S', 0), &pending), Err(EntryFault::Sparse));
    }

    #[test]
    fn pax_and_long_names_merge_in_go_order() {
        let mut records = Records::new();
        records.insert(b"path".to_vec(), b"from-pax".to_vec());
        records.insert(b"uname".to_vec(), Vec::new());
        records.insert(b"SCHILY.xattr.user.e".to_vec(), Vec::new());
        records.insert(b"SCHILY.xattr.user.k".to_vec(), b"v".to_vec());
        records.insert(b"mtime".to_vec(), b"-1.5".to_vec());
        let mut pending = Pending {
            pax: Some(records),
            ..Pending::default()
        };
        let (e, _) = merge(raw(b"orig", b'0', 0), &pending).unwrap();
        assert_eq!(e.name, b"from-pax");
        assert_eq!(e.mtime, -2);
        assert_eq!(e.xattrs.len(), 1);
        pending.long_name = Some(b"from-gnu".to_vec());
        let (e, _) = merge(raw(b"orig", b'0', 0), &pending).unwrap();
        assert_eq!(e.name, b"from-gnu");
    }
}
