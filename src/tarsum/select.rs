//! Per-version header field selection: the exact bytes each TarSum version hashes before an
//! entry's data (spec §4).
//!
//! Each field is its ASCII key immediately followed by its value, with no separator. v0 hashes
//! mtime and no xattrs; v1 and dev drop mtime and append the xattrs sorted bytewise by key.
//! uname and gname are hashed empty (the 2018 "Fix tarsum for go 1.10" behaviour), or with
//! their values in the legacy dialect of earlier Docker releases.

use super::entry::Entry;
use crate::digest::TarsumVersion;

/// Appends the selected header fields of `entry` for `version` to `out`; `legacy_names`
/// hashes uname and gname with their values (Docker before 2018-03).
pub fn encode_header(version: TarsumVersion, legacy_names: bool, entry: &Entry, out: &mut Vec<u8>) {
    field(out, b"name", &entry.name);
    decimal(out, b"mode", entry.mode);
    decimal(out, b"uid", entry.uid);
    decimal(out, b"gid", entry.gid);
    decimal(out, b"size", entry.size);
    if version == TarsumVersion::V0 {
        decimal(out, b"mtime", entry.mtime);
    }
    field(out, b"typeflag", &[entry.typeflag]);
    field(out, b"linkname", &entry.linkname);
    let (uname, gname): (&[u8], &[u8]) = if legacy_names {
        (&entry.uname, &entry.gname)
    } else {
        (b"", b"")
    };
    field(out, b"uname", uname);
    field(out, b"gname", gname);
    decimal(out, b"devmajor", entry.devmajor);
    decimal(out, b"devminor", entry.devminor);
    if version != TarsumVersion::V0 {
        for (key, value) in &entry.xattrs {
            field(out, key, value);
        }
    }
}

fn field(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

fn decimal(out: &mut Vec<u8>, key: &[u8], value: i64) {
    out.extend_from_slice(key);
    out.extend_from_slice(value.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The worked example of spec §4.
    #[test]
    fn matches_the_spec_example() {
        let entry = Entry {
            name: b"hello.txt".to_vec(),
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            size: 12,
            mtime: 1_700_000_000,
            typeflag: b'0',
            linkname: Vec::new(),
            uname: b"alice".to_vec(),
            gname: b"staff".to_vec(),
            devmajor: 0,
            devminor: 0,
            xattrs: BTreeMap::new(),
        };
        let mut v0 = Vec::new();
        encode_header(TarsumVersion::V0, false, &entry, &mut v0);
        assert_eq!(
            v0,
            b"namehello.txtmode420uid1000gid1000size12mtime1700000000typeflag0linkname\
              unamegnamedevmajor0devminor0"
        );
        let mut v1 = Vec::new();
        encode_header(TarsumVersion::V1, false, &entry, &mut v1);
        assert_eq!(
            v1,
            b"namehello.txtmode420uid1000gid1000size12typeflag0linknameunamegnamedevmajor0devminor0"
        );
        let mut legacy = Vec::new();
        encode_header(TarsumVersion::V1, true, &entry, &mut legacy);
        assert!(legacy.ends_with(b"linknameunamealicegnamestaffdevmajor0devminor0"));
    }

    #[test]
    fn xattrs_sort_bytewise_and_only_for_v1() {
        let mut xattrs = BTreeMap::new();
        xattrs.insert(b"user.alpha".to_vec(), b"1".to_vec());
        xattrs.insert(b"user.Beta".to_vec(), b"2".to_vec());
        let entry = Entry {
            name: b"f".to_vec(),
            mode: 0,
            uid: -1,
            gid: 0,
            size: 0,
            mtime: -2,
            typeflag: b'0',
            linkname: Vec::new(),
            uname: Vec::new(),
            gname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            xattrs,
        };
        let mut v1 = Vec::new();
        encode_header(TarsumVersion::Dev, false, &entry, &mut v1);
        assert!(v1.ends_with(b"devminor0user.Beta2user.alpha1"));
        assert!(v1.starts_with(b"namefmode0uid-1gid0"));
        let mut v0 = Vec::new();
        encode_header(TarsumVersion::V0, false, &entry, &mut v0);
        assert!(v0.ends_with(b"devminor0"));
        assert!(v0.windows(8).any(|w| w == b"mtime-2t"));
    }
}
