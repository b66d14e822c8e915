//! Pure decoding of one 512-byte tar header block, exactly as Go's `archive/tar` reader does it.
//!
//! TarSum hashes header fields *as Go decodes them*, so every quirk of Go's reader matters here:
//! the checksum may be signed or unsigned, numeric fields are octal or base-256, V7 headers
//! carry no uname/gname/device fields, USTAR/PAX/STAR join a non-empty prefix to the name, and
//! GNU headers fall back to the prefix only when their atime/ctime fields do not parse
//! (spec §3.2-§3.3). No allocation depends on anything but the fixed block size.

/// Size of a tar block.
pub const BLOCK_LEN: usize = 512;

/// The container format a header block was written in (Go's `getFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Old Unix V7: no magic.
    V7,
    /// `ustar\0` magic: USTAR or PAX.
    Ustar,
    /// `ustar\0` magic with the `tar\0` trailer at offset 508.
    Star,
    /// `ustar ` magic with version ` \0`.
    Gnu,
}

/// Why a header block is rejected (all are Go's `ErrHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFault {
    /// The checksum field does not parse or does not match the block.
    Checksum,
    /// A numeric field is neither octal nor valid base-256.
    Numeric(&'static str),
}

/// The fields of one header block, decoded but not yet merged with PAX or GNU meta entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// Name, already joined with a non-empty prefix.
    pub name: Vec<u8>,
    /// Full mode value, file-type bits included.
    pub mode: i64,
    /// Owner id.
    pub uid: i64,
    /// Group id.
    pub gid: i64,
    /// Size field (may be negative with base-256).
    pub size: i64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// The raw typeflag byte.
    pub typeflag: u8,
    /// Link target.
    pub linkname: Vec<u8>,
    /// Owner name (empty for V7).
    pub uname: Vec<u8>,
    /// Group name (empty for V7).
    pub gname: Vec<u8>,
    /// Device major number (0 for V7).
    pub devmajor: i64,
    /// Device minor number (0 for V7).
    pub devminor: i64,
}

/// True when every byte of the block is zero (an end-of-archive marker block).
pub fn is_zero_block(block: &[u8; BLOCK_LEN]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Decodes a non-zero header block.
pub fn decode(block: &[u8; BLOCK_LEN]) -> Result<RawHeader, HeaderFault> {
    let format = detect_format(block).ok_or(HeaderFault::Checksum)?;
    let mut header = RawHeader {
        name: c_string(&block[0..100]).to_vec(),
        mode: numeric(&block[100..108], "mode")?,
        uid: numeric(&block[108..116], "uid")?,
        gid: numeric(&block[116..124], "gid")?,
        size: numeric(&block[124..136], "size")?,
        mtime: numeric(&block[136..148], "mtime")?,
        typeflag: block[156],
        linkname: c_string(&block[157..257]).to_vec(),
        uname: Vec::new(),
        gname: Vec::new(),
        devmajor: 0,
        devminor: 0,
    };
    if format == Format::V7 {
        return Ok(header);
    }
    header.uname = c_string(&block[265..297]).to_vec();
    header.gname = c_string(&block[297..329]).to_vec();
    header.devmajor = numeric(&block[329..337], "devmajor")?;
    header.devminor = numeric(&block[337..345], "devminor")?;
    let prefix = match format {
        Format::Ustar => c_string(&block[345..500]),
        Format::Star => {
            numeric(&block[476..488], "atime")?;
            numeric(&block[488..500], "ctime")?;
            c_string(&block[345..476])
        }
        _ => gnu_fallback_prefix(block),
    };
    if !prefix.is_empty() {
        let mut name = Vec::with_capacity(prefix.len() + 1 + header.name.len());
        name.extend_from_slice(prefix);
        name.push(b'/');
        name.extend_from_slice(&header.name);
        header.name = name;
    }
    Ok(header)
}

/// Go's `getFormat`: checksum first (None when it fails), then the magic.
pub fn detect_format(block: &[u8; BLOCK_LEN]) -> Option<Format> {
    let stored = parse_octal(&block[148..156])?;
    let (unsigned, signed) = checksums(block);
    if stored != unsigned && stored != signed {
        return None;
    }
    let magic = &block[257..263];
    let version = &block[263..265];
    let trailer = &block[508..512];
    Some(match (magic, version, trailer) {
        (b"ustar\0", _, b"tar\0") => Format::Star,
        (b"ustar\0", _, _) => Format::Ustar,
        (b"ustar ", b" \0", _) => Format::Gnu,
        _ => Format::V7,
    })
}

/// The GNU format has atime/ctime where USTAR has its prefix. Old Go writers put a prefix
/// there anyway; Go's reader uses it only when those fields fail to parse and it is ASCII.
fn gnu_fallback_prefix(block: &[u8; BLOCK_LEN]) -> &[u8] {
    let field_fails = |field: &[u8]| field[0] != 0 && parse_numeric(field).is_none();
    if field_fails(&block[345..357]) || field_fails(&block[357..369]) {
        let prefix = c_string(&block[345..500]);
        if prefix.is_ascii() {
            return prefix;
        }
    }
    &[]
}

/// Sums of the block with the checksum field read as eight spaces, bytes taken unsigned and
/// signed (old writers used signed chars).
fn checksums(block: &[u8; BLOCK_LEN]) -> (i64, i64) {
    let mut unsigned = 0i64;
    let mut signed = 0i64;
    for (i, &byte) in block.iter().enumerate() {
        let byte = if (148..156).contains(&i) { b' ' } else { byte };
        unsigned += i64::from(byte);
        signed += i64::from(byte as i8);
    }
    (unsigned, signed)
}

/// The bytes before the first NUL.
pub fn c_string(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// A numeric field tagged with its name for the error.
fn numeric(field: &[u8], name: &'static str) -> Result<i64, HeaderFault> {
    parse_numeric(field).ok_or(HeaderFault::Numeric(name))
}

/// Go's `parseNumeric`: base-256 when the top bit of the first byte is set, octal otherwise.
pub fn parse_numeric(field: &[u8]) -> Option<i64> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => parse_base256(field),
        _ => parse_octal(field),
    }
}

/// Big-endian two's complement; bit 0x40 of the first byte is the sign.
fn parse_base256(field: &[u8]) -> Option<i64> {
    let invert = if field.first().is_some_and(|&b| b & 0x40 != 0) {
        0xff
    } else {
        0x00
    };
    let mut x: u64 = 0;
    for (i, &byte) in field.iter().enumerate() {
        let mut c = byte ^ invert;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 > 0 {
            return None;
        }
        x = (x << 8) | u64::from(c);
    }
    if x >> 63 > 0 {
        return None;
    }
    // Lossless: the top bit is clear.
    let value = x as i64;
    Some(if invert == 0xff { !value } else { value })
}

/// Go's `parseOctal`: trim spaces and NULs, cut at a NUL, empty is 0, else unsigned octal.
pub fn parse_octal(field: &[u8]) -> Option<i64> {
    let trimmed = trim(field, |b| b == b' ' || b == 0);
    let text = c_string(trimmed);
    if trimmed.is_empty() {
        return Some(0);
    }
    if text.is_empty() || !text.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    let mut x: u64 = 0;
    for &digit in text {
        x = x
            .checked_mul(8)
            .and_then(|x| x.checked_add(u64::from(digit - b'0')))?;
    }
    // Go converts the uint64 with int64(x): wrapping, exactly like this cast.
    Some(x as i64)
}

/// Trims bytes matching `strip` from both ends.
fn trim(bytes: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|&b| !strip(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !strip(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_follows_go() {
        assert_eq!(parse_octal(b"0000644\0"), Some(0o644));
        assert_eq!(parse_octal(b"  755 \0\0"), Some(0o755));
        assert_eq!(parse_octal(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"12\0x"), Some(0o12)); // cut at the NUL after trimming
        assert!(parse_octal(b"0008").is_none());
        assert!(parse_octal(b"-1").is_none());
        assert!(parse_octal(b"1 2").is_none());
    }

    #[test]
    fn base256_handles_sign_and_overflow() {
        assert_eq!(parse_numeric(&[0x80, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_numeric(&[0xff; 8]), Some(-1));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[3] = 1; // needs more than 64 bits
        assert!(parse_numeric(&big).is_none());
    }

    #[test]
    fn checksum_accepts_signed_and_unsigned() {
        let mut block = [0u8; BLOCK_LEN];
        block[0] = 0xff;
        block[1..4].copy_from_slice(b"abc");
        let (unsigned, signed) = checksums(&block);
        for sum in [unsigned, signed] {
            let text = format!("{sum:06o}\0 ");
            let mut b = block;
            b[148..156].copy_from_slice(text.as_bytes());
            assert_eq!(detect_format(&b), Some(Format::V7));
        }
        block[148..156].copy_from_slice(b"0000000\0");
        assert_eq!(detect_format(&block), None);
    }
}
