//! PAX extended-header records (`"<len> <key>=<value>\n"`), parsed and validated as Go's
//! `archive/tar` does, plus the two Go number parsers the merge step needs.
//!
//! A record set is a map (the last occurrence of a key wins). GNU sparse 0.0 offset/numbytes
//! pairs are folded into one `GNU.sparse.map` record with Go's ordering check, because that
//! check can make an archive invalid.

use std::collections::BTreeMap;

/// Records of one PAX header: key to raw value bytes.
pub type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// Largest payload of a PAX or GNU long-name/long-link meta entry (Go's `maxSpecialFileSize`).
pub const MAX_SPECIAL_LEN: u64 = 1 << 20;

const SPARSE_OFFSET: &[u8] = b"GNU.sparse.offset";
const SPARSE_NUMBYTES: &[u8] = b"GNU.sparse.numbytes";
const SPARSE_MAP: &[u8] = b"GNU.sparse.map";

/// Parses a whole PAX payload. `None` means Go would report an invalid header.
pub fn parse_records(mut payload: &[u8]) -> Option<Records> {
    let mut records = Records::new();
    let mut sparse_map: Vec<&[u8]> = Vec::new();
    while !payload.is_empty() {
        let (key, value, rest) = parse_record(payload)?;
        payload = rest;
        if key == SPARSE_OFFSET || key == SPARSE_NUMBYTES {
            let expect_offset = sparse_map.len().is_multiple_of(2);
            if (key == SPARSE_OFFSET) != expect_offset || value.contains(&b',') {
                return None;
            }
            sparse_map.push(value);
        } else {
            records.insert(key.to_vec(), value.to_vec());
        }
    }
    if !sparse_map.is_empty() {
        records.insert(SPARSE_MAP.to_vec(), sparse_map.join(&b","[..]));
    }
    Some(records)
}

/// One record: `(key, value, rest)`.
fn parse_record(s: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let space = s.iter().position(|&b| b == b' ')?;
    let len = parse_go_int(&s[..space])?;
    let len = usize::try_from(len).ok()?;
    if len < 5 || len > s.len() || space + 2 >= len {
        return None;
    }
    let record = &s[space + 1..len - 1];
    if s[len - 1] != b'\n' {
        return None;
    }
    let eq = record.iter().position(|&b| b == b'=')?;
    let (key, value) = (&record[..eq], &record[eq + 1..]);
    valid_record(key, value).then_some((key, value, &s[len..]))
}

/// Go's `validPAXRecord`.
fn valid_record(key: &[u8], value: &[u8]) -> bool {
    if key.is_empty() || key.contains(&b'=') {
        return false;
    }
    match key {
        b"path" | b"linkpath" | b"uname" | b"gname" => !value.contains(&0),
        _ => !key.contains(&0),
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits, no overflow.
pub fn parse_go_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `parsePAXTime`, reduced to what TarSum hashes: the whole seconds of the resulting
/// time, i.e. the floor (`-1.5` gives -2).
pub fn parse_pax_seconds(s: &[u8]) -> Option<i64> {
    let (secs_text, fraction) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &[][..]),
    };
    let secs = parse_go_int(secs_text)?;
    if fraction.is_empty() {
        return Some(secs);
    }
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Only the first nine digits count (nanoseconds); a negative time borrows one second
    // when they are not all zero. Go's arithmetic wraps, and so does this.
    let nanos_nonzero = fraction.iter().take(9).any(|&d| d != b'0');
    if secs_text.first() == Some(&b'-') && nanos_nonzero {
        Some(secs.wrapping_sub(1))
    } else {
        Some(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_last_wins() {
        let payload = b"11 path=ab\n11 path=cd\n22 SCHILY.xattr.k=v\0w\n";
        let records = parse_records(payload).unwrap();
        assert_eq!(records[&b"path"[..]], b"cd");
        assert_eq!(records[&b"SCHILY.xattr.k"[..]], b"v\0w");
    }

    #[test]
    fn invalid_records_are_rejected() {
        for bad in [
            &b"10 path=ab"[..], // no newline, length past end
            b"4 a=\n",          // below 5
            b"9 =abcd\n",       // empty key
            b"11 path=a\0\n",   // NUL in path
            b"x path=ab\n",     // not a number
            b"12 keyvalue\n",   // no '='
            b"11 path=abc",     // length beyond input
        ] {
            assert!(parse_records(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sparse_pairs_must_alternate() {
        let ok = b"23 GNU.sparse.offset=0\n25 GNU.sparse.numbytes=5\n";
        assert_eq!(
            parse_records(ok).unwrap()[&b"GNU.sparse.map"[..]],
            b"0,5".to_vec()
        );
        assert!(parse_records(b"25 GNU.sparse.numbytes=5\n").is_none());
    }

    #[test]
    fn go_numbers() {
        assert_eq!(parse_go_int(b"+12"), Some(12));
        assert_eq!(parse_go_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_go_int(b"9223372036854775808"), None);
        assert_eq!(parse_go_int(b""), None);
        assert_eq!(parse_pax_seconds(b"1700000000.75"), Some(1700000000));
        assert_eq!(parse_pax_seconds(b"-1.5"), Some(-2));
        assert_eq!(parse_pax_seconds(b"-1.000"), Some(-1));
        assert_eq!(parse_pax_seconds(b"-0.5"), Some(-1));
        assert_eq!(parse_pax_seconds(b".5"), None);
        assert_eq!(parse_pax_seconds(b"1.x"), None);
    }
}
