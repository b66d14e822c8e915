//! The per-file sums of an archive and how they combine into the final TarSum (spec §7).
//!
//! The list only grows (one item per entry, in archive order), which is what lets gzip
//! checkpoints refer to a prefix of it instead of copying it.

use std::collections::HashSet;

use super::gosort;
use crate::digest::to_hex;
use crate::hash::Hasher;

/// One entry's sum: its normalised name and raw digest bytes. Its position is its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    /// Normalised name (duplicate detection only).
    pub name: Vec<u8>,
    /// Raw digest bytes of the entry's header fields and data.
    pub sum: Vec<u8>,
}

/// Hashes `extra`, then every per-file hex digest in TarSum's order; returns the raw digest.
pub fn combine(mut hasher: Hasher, extra: &[u8], sums: &[FileSum]) -> Vec<u8> {
    hasher.update(extra);
    let mut hex = String::new();
    for index in order(sums) {
        hex.clear();
        hex.push_str(&to_hex(&sums[index].sum));
        hasher.update(hex.as_bytes());
    }
    match hasher {
        Hasher::Sha256(h) => h.finalize(),
        Hasher::Sha512(h) => h.finalize(),
    }
}

/// Indices of `sums` in TarSum's order.
///
/// Comparing raw digest bytes orders exactly like comparing their lowercase hex strings.
/// Without duplicate names that order is total, so any sort agrees with Go's; with duplicates
/// the rule is not transitive and only Go's own algorithm reproduces the reference.
pub fn order(sums: &[FileSum]) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..sums.len()).collect();
    if has_duplicate_names(sums) {
        gosort::sort(&mut indices, |&i, &j| {
            if sums[i].name == sums[j].name {
                i < j
            } else {
                sums[i].sum < sums[j].sum
            }
        });
    } else {
        indices.sort_by(|&i, &j| sums[i].sum.cmp(&sums[j].sum));
    }
    indices
}

fn has_duplicate_names(sums: &[FileSum]) -> bool {
    let mut seen = HashSet::with_capacity(sums.len());
    sums.iter().any(|s| !seen.insert(s.name.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, first: u8) -> FileSum {
        FileSum {
            name: name.as_bytes().to_vec(),
            sum: vec![first; 32],
        }
    }

    #[test]
    fn without_duplicates_orders_by_digest() {
        let sums = [item("a", 9), item("b", 1), item("c", 5)];
        assert_eq!(order(&sums), vec![1, 2, 0]);
    }

    #[test]
    fn duplicates_keep_archive_order_among_themselves() {
        // Spec §7.2 example: A(x, 9), B(y, 5), C(x, 1).
        let sums = [item("x", 9), item("y", 5), item("x", 1)];
        assert_eq!(order(&sums), vec![1, 0, 2]);
    }
}
