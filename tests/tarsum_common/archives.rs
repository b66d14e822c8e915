//! Random tar archives built with the `tar` crate, for property tests.

use proptest::prelude::*;

/// One entry of a generated archive.
#[derive(Debug, Clone)]
pub enum Item {
    /// A regular file with this many pseudo-random bytes.
    File(String, usize),
    /// A directory.
    Dir(String),
    /// A symlink to a target.
    Symlink(String, String),
    /// A file with a PAX xattr record.
    Xattr(String, String, Vec<u8>),
    /// A file whose name needs a GNU long-name entry.
    LongName(usize),
}

fn name() -> impl Strategy<Value = String> {
    "[a-z]{1,12}(/[a-z]{1,8})?"
}

/// A strategy for a list of entries.
pub fn items() -> impl Strategy<Value = Vec<Item>> {
    let item = prop_oneof![
        4 => (name(), 0usize..6000).prop_map(|(n, s)| Item::File(n, s)),
        1 => name().prop_map(Item::Dir),
        1 => (name(), name()).prop_map(|(n, t)| Item::Symlink(n, t)),
        1 => (name(), "[a-z]{1,6}", proptest::collection::vec(any::<u8>(), 1..20))
            .prop_map(|(n, k, v)| Item::Xattr(n, k, v)),
        1 => (101usize..300).prop_map(Item::LongName),
    ];
    proptest::collection::vec(item, 0..8)
}

/// Deterministic compressible content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"abcdefgh \n"[(x % 10) as usize]
        })
        .collect()
}

/// The archive bytes for `items`.
pub fn build(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, item) in items.iter().enumerate() {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000 + i as u64);
        h.set_uid(1000);
        h.set_gid(1000);
        match item {
            Item::File(n, size) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size as u64);
                b.append_data(&mut h, n, &content(*size, i as u64 + 1)[..])
                    .unwrap();
            }
            Item::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{n}/"), &[][..]).unwrap();
            }
            Item::Symlink(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, n, t).unwrap();
            }
            Item::Xattr(n, k, v) => {
                let key = format!("SCHILY.xattr.user.{k}");
                b.append_pax_extensions([(key.as_str(), v.as_slice())])
                    .unwrap();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(3);
                b.append_data(&mut h, n, &b"abc"[..]).unwrap();
            }
            Item::LongName(len) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(5);
                b.append_data(&mut h, "l".repeat(*len), &b"hello"[..])
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}
