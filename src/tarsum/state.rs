//! The saved form of a TarSum computation: versioned, length-checked and CRC-protected.
//!
//! ```text
//! "LSTS"  magic                     u8  format version (1)
//! u8      tarsum version (0,1,2)    u8  hash (1 sha256, 2 sha512)
//! u8      flags (bit 0: legacy uname/gname hashing)
//! u64     tar offset                bytes extra
//! phase   u8 tag + fields           bytes partial header block (< 512)
//! bytes   partial meta payload      pending: PAX records?, long name?, long link?
//! open?   (bytes name, bytes hash state in layerstore's own hash format)
//! u64     number of sums N          N x (bytes name, raw digest of the hash's length)
//! u32     CRC-32 (IEEE) of everything before it
//! ```
//!
//! Integers are big-endian; `bytes` is a u32 length then the bytes; `x?` is a u8 flag (0/1)
//! then x. Every length is checked against its limit and against the bytes actually left
//! before anything is allocated, so a hostile state costs at most its own size.

use super::entry::Pending;
use super::error::TarsumStateError as E;
use super::header::BLOCK_LEN;
use super::parser::{MetaKind, OpenEntry, Parser, Phase};
use super::pax::{Records, MAX_SPECIAL_LEN};
use super::sums::FileSum;
use crate::digest::{HashAlgorithm, TarsumVersion};
use crate::hash::Hasher;

const MAGIC: &[u8; 4] = b"LSTS";
const FORMAT_VERSION: u8 = 1;
/// Longest name or link kept in a state: a PAX path can be as long as a PAX payload.
const MAX_NAME: u64 = MAX_SPECIAL_LEN;
/// Largest "extra" accepted from a state (Docker's extra is an image JSON of a few KiB).
pub const MAX_EXTRA: u64 = 64 << 20;

/// Encodes `parser` and `extra`.
pub fn encode(parser: &Parser, extra: &[u8]) -> Vec<u8> {
    finish_encode(encode_core(parser, extra), &parser.sums)
}

/// Everything but the per-file sums and the CRC: small (bounded by the pending meta data),
/// so a gzip checkpoint can take it often.
pub fn encode_core(parser: &Parser, extra: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(128 + extra.len() + parser.meta.len());
    w.extend_from_slice(MAGIC);
    w.push(FORMAT_VERSION);
    w.push(version_code(parser.version));
    w.push(hash_code(parser.hash));
    w.push(u8::from(parser.legacy_names));
    put_u64(&mut w, parser.offset);
    put_bytes(&mut w, extra);
    put_phase(&mut w, &parser.phase);
    put_bytes(&mut w, &parser.block);
    put_bytes(&mut w, &parser.meta);
    put_pending(&mut w, &parser.pending);
    match &parser.open {
        None => w.push(0),
        Some(open) => {
            w.push(1);
            put_bytes(&mut w, &open.name);
            put_bytes(&mut w, &open.hasher.encode());
        }
    }
    w
}

/// Appends `sums` and the CRC to a core from [`encode_core`].
pub fn finish_encode(mut w: Vec<u8>, sums: &[FileSum]) -> Vec<u8> {
    w.reserve(12 + sums.len() * 80);
    put_u64(&mut w, sums.len() as u64);
    for sum in sums {
        put_bytes(&mut w, &sum.name);
        w.extend_from_slice(&sum.sum);
    }
    let crc = crc32fast::hash(&w);
    w.extend_from_slice(&crc.to_be_bytes());
    w
}

/// Decodes a state into a parser and its extra bytes.
pub fn decode(bytes: &[u8]) -> Result<(Parser, Vec<u8>), E> {
    let body = check_frame(bytes)?;
    let mut r = Reader { rest: body };
    let version = version_from(r.u8()?)?;
    let hash = hash_from(r.u8()?)?;
    let legacy_names = r.flag()?;
    let offset = r.u64()?;
    let extra = r.bytes("extra", MAX_EXTRA)?.to_vec();
    let phase = get_phase(&mut r)?;
    let block = r.bytes("block", BLOCK_LEN as u64 - 1)?.to_vec();
    let meta = r.bytes("meta", MAX_SPECIAL_LEN)?.to_vec();
    let pending = get_pending(&mut r)?;
    let open = match r.flag()? {
        false => None,
        true => {
            let name = r.bytes("open name", MAX_NAME)?.to_vec();
            let hasher = Hasher::decode(r.bytes("hash state", 1024)?)?;
            Some(OpenEntry { name, hasher })
        }
    };
    let count = r.u64()?;
    let sum_len = hash.output_len();
    // Each sum takes at least its length field and digest: bounds the allocation by the input.
    if count > (r.rest.len() / (4 + sum_len)) as u64 {
        return Err(E::TooLong {
            field: "sums",
            len: count,
        });
    }
    let mut sums = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = r.bytes("sum name", MAX_NAME)?.to_vec();
        let sum = r.take(sum_len)?.to_vec();
        sums.push(FileSum { name, sum });
    }
    if !r.rest.is_empty() {
        return Err(E::TrailingBytes(r.rest.len()));
    }
    let parser = Parser {
        version,
        hash,
        legacy_names,
        phase,
        block,
        meta,
        pending,
        open,
        sums,
        offset,
    };
    check_consistent(&parser)?;
    Ok((parser, extra))
}

/// Magic, version and CRC; returns the body between the version byte and the CRC.
fn check_frame(bytes: &[u8]) -> Result<&[u8], E> {
    if bytes.len() < MAGIC.len() + 1 + 4 {
        return Err(E::Truncated);
    }
    if &bytes[..4] != MAGIC {
        return Err(E::BadMagic);
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(E::UnsupportedVersion(bytes[4]));
    }
    let (framed, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(framed) != stored {
        return Err(E::ChecksumMismatch);
    }
    Ok(&framed[5..])
}

/// Rejects field combinations the machine can never be in, so a decoded state cannot make
/// it misbehave.
fn check_consistent(p: &Parser) -> Result<(), E> {
    let collecting_block = matches!(p.phase, Phase::Header | Phase::SecondZero);
    if !collecting_block && !p.block.is_empty() {
        return Err(E::Invalid("block"));
    }
    match &p.phase {
        Phase::Meta { remaining, .. }
            if (p.meta.len() as u64).saturating_add(*remaining) > MAX_SPECIAL_LEN =>
        {
            return Err(E::Invalid("meta"));
        }
        Phase::Meta { .. } => {}
        _ if !p.meta.is_empty() => return Err(E::Invalid("meta")),
        _ => {}
    }
    let in_data = matches!(p.phase, Phase::Data { .. });
    if in_data != p.open.is_some() {
        return Err(E::Invalid("open entry"));
    }
    if let Some(open) = &p.open {
        if open.hasher.algorithm() != p.hash {
            return Err(E::Invalid("hash state algorithm"));
        }
    }
    match p.phase {
        Phase::Data { remaining: 0, .. } | Phase::Padding { remaining: 0 } => {
            Err(E::Invalid("phase"))
        }
        Phase::Data { padding, .. } | Phase::Padding { remaining: padding } if padding >= 512 => {
            Err(E::Invalid("padding"))
        }
        Phase::Meta { padding, .. } if padding >= 512 => Err(E::Invalid("padding")),
        _ => Ok(()),
    }
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    // Every field is bounded far below 4 GiB except `extra`, which the caller controls.
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    w.extend_from_slice(&len.to_be_bytes());
    w.extend_from_slice(&b[..len as usize]);
}

fn put_opt(w: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => w.push(0),
        Some(b) => {
            w.push(1);
            put_bytes(w, b);
        }
    }
}

fn put_phase(w: &mut Vec<u8>, phase: &Phase) {
    match phase {
        Phase::Header => w.push(0),
        Phase::SecondZero => w.push(1),
        Phase::Meta {
            kind,
            remaining,
            padding,
            header_name,
        } => {
            w.push(2);
            w.push(match kind {
                MetaKind::Pax => 0,
                MetaKind::Global => 1,
                MetaKind::LongName => 2,
                MetaKind::LongLink => 3,
            });
            put_u64(w, *remaining);
            put_u64(w, *padding);
            put_bytes(w, header_name);
        }
        Phase::Data { remaining, padding } => {
            w.push(3);
            put_u64(w, *remaining);
            put_u64(w, *padding);
        }
        Phase::Padding { remaining } => {
            w.push(4);
            put_u64(w, *remaining);
        }
        Phase::End => w.push(5),
        Phase::Failed => w.push(6),
    }
}

fn get_phase(r: &mut Reader<'_>) -> Result<Phase, E> {
    Ok(match r.u8()? {
        0 => Phase::Header,
        1 => Phase::SecondZero,
        2 => {
            let kind = match r.u8()? {
                0 => MetaKind::Pax,
                1 => MetaKind::Global,
                2 => MetaKind::LongName,
                3 => MetaKind::LongLink,
                _ => return Err(E::Invalid("meta kind")),
            };
            Phase::Meta {
                kind,
                remaining: r.u64()?,
                padding: r.u64()?,
                header_name: r.bytes("header name", 256)?.to_vec(),
            }
        }
        3 => Phase::Data {
            remaining: r.u64()?,
            padding: r.u64()?,
        },
        4 => Phase::Padding {
            remaining: r.u64()?,
        },
        5 => Phase::End,
        6 => Phase::Failed,
        _ => return Err(E::Invalid("phase")),
    })
}

fn put_pending(w: &mut Vec<u8>, pending: &Pending) {
    match &pending.pax {
        None => w.push(0),
        Some(records) => {
            w.push(1);
            put_u64(w, records.len() as u64);
            for (key, value) in records {
                put_bytes(w, key);
                put_bytes(w, value);
            }
        }
    }
    put_opt(w, pending.long_name.as_deref());
    put_opt(w, pending.long_link.as_deref());
}

fn get_pending(r: &mut Reader<'_>) -> Result<Pending, E> {
    let pax = match r.flag()? {
        false => None,
        true => {
            let count = r.u64()?;
            // A record needs two length fields: bounds the loop by the input size.
            if count > (r.rest.len() / 8) as u64 {
                return Err(E::TooLong {
                    field: "pax records",
                    len: count,
                });
            }
            let mut records = Records::new();
            let mut total = 0u64;
            for _ in 0..count {
                let key = r.bytes("pax key", MAX_SPECIAL_LEN)?.to_vec();
                let value = r.bytes("pax value", MAX_SPECIAL_LEN)?.to_vec();
                total += (key.len() + value.len()) as u64;
                if total > MAX_SPECIAL_LEN {
                    return Err(E::TooLong {
                        field: "pax records",
                        len: total,
                    });
                }
                records.insert(key, value);
            }
            Some(records)
        }
    };
    let long_name = r.opt_bytes("long name")?;
    let long_link = r.opt_bytes("long link")?;
    Ok(Pending {
        pax,
        long_name,
        long_link,
    })
}

fn version_code(v: TarsumVersion) -> u8 {
    match v {
        TarsumVersion::V0 => 0,
        TarsumVersion::V1 => 1,
        TarsumVersion::Dev => 2,
    }
}

fn version_from(code: u8) -> Result<TarsumVersion, E> {
    match code {
        0 => Ok(TarsumVersion::V0),
        1 => Ok(TarsumVersion::V1),
        2 => Ok(TarsumVersion::Dev),
        _ => Err(E::Invalid("tarsum version")),
    }
}

fn hash_code(h: HashAlgorithm) -> u8 {
    match h {
        HashAlgorithm::Sha256 => 1,
        HashAlgorithm::Sha512 => 2,
    }
}

fn hash_from(code: u8) -> Result<HashAlgorithm, E> {
    match code {
        1 => Ok(HashAlgorithm::Sha256),
        2 => Ok(HashAlgorithm::Sha512),
        _ => Err(E::Invalid("hash")),
    }
}

/// A cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], E> {
        if n > self.rest.len() {
            return Err(E::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, E> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn flag(&mut self) -> Result<bool, E> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::Invalid("flag")),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, E> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, E> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A length-prefixed field of at most `max` bytes.
    pub(crate) fn bytes(&mut self, field: &'static str, max: u64) -> Result<&'a [u8], E> {
        let len = u64::from(self.u32()?);
        if len > max {
            return Err(E::TooLong { field, len });
        }
        // len <= u32::MAX fits usize on every supported target.
        self.take(len as usize)
    }

    fn opt_bytes(&mut self, field: &'static str) -> Result<Option<Vec<u8>>, E> {
        match self.flag()? {
            false => Ok(None),
            true => Ok(Some(self.bytes(field, MAX_NAME)?.to_vec())),
        }
    }
}

/// Appends a length-prefixed field (shared with the stream checkpoint format).
pub(crate) fn write_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_bytes(w, b);
}

#[cfg(test)]
mod tests {
    use crate::digest::{HashAlgorithm, TarsumVersion};
    use crate::tarsum::{TarSum, TarsumStateError};

    /// A state in the middle of a PAX payload, with one completed entry.
    fn sample() -> Vec<u8> {
        let mut block = [0u8; 512];
        block[..1].copy_from_slice(b"f");
        block[100..108].copy_from_slice(b"0000644\0");
        block[124..136].copy_from_slice(b"00000000003\0");
        block[156] = b'0';
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut t = TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256).with_extra(&b"x"[..]);
        t.update(&block).unwrap();
        t.update(b"ab").unwrap(); // inside the data
        t.encode()
    }

    #[test]
    fn truncations_and_bit_flips_are_errors() {
        let bytes = sample();
        assert!(TarSum::decode(&bytes).is_ok());
        for cut in 0..bytes.len() {
            assert!(TarSum::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(TarSum::decode(&bad).is_err(), "bit {bit}");
        }
    }

    /// A hostile state with a valid CRC but absurd lengths is rejected without allocating.
    #[test]
    fn hostile_lengths_are_capped() {
        let mut bytes = b"LSTS\x01\x01\x01\x00".to_vec();
        bytes.extend_from_slice(&0u64.to_be_bytes());
        bytes.extend_from_slice(&u32::MAX.to_be_bytes()); // extra length
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            TarSum::decode(&bytes),
            Err(TarsumStateError::TooLong { field: "extra", .. })
        ));
    }
}
