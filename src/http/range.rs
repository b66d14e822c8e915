//! `Range` and `Content-Range` headers, parsed without I/O.
//!
//! Blob reads follow RFC 9110 section 14 with the choices of Go's `http.ServeContent`, which
//! the distribution registry uses: the unit must be `bytes`; each spec is `a-b` (inclusive),
//! `a-` or `-n` (the last n bytes); an end past the blob is clamped; `start > end` or a
//! malformed spec makes the whole header unsatisfiable (416); specs that start at or after the
//! end are dropped, and if none is left the answer is 416. Several ranges that together ask for
//! more bytes than the blob has, or more than [`MAX_RANGES`] of them, are ignored and the whole
//! blob is sent (200), so a hostile header cannot multiply the work.
//!
//! Upload chunks use the OCI form `Content-Range: <start>-<end>` (no unit); layerstore also
//! accepts `bytes <start>-<end>/<total or *>` and `bytes=<start>-<end>`, which some clients send.

/// The most ranges one request may ask for before the header is ignored.
pub const MAX_RANGES: usize = 64;

pub use crate::store::ByteRange;

/// What a blob GET should answer, given its `Range` header and the blob size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole blob (no header, or a header to ignore).
    Full,
    /// 206 with one range and `Content-Range`.
    Single(ByteRange),
    /// 206 `multipart/byteranges` with these ranges, in request order.
    Multiple(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// Decides the answer to a blob GET with `header` (the `Range` value, if any) on a blob of
/// `size` bytes.
///
/// ```
/// use layerstore::http::range::{resolve, ByteRange, RangeAnswer};
/// assert_eq!(resolve(Some("bytes=500-1499"), 2048), RangeAnswer::Single(ByteRange { start: 500, end: 1499 }));
/// assert_eq!(resolve(Some("bytes=-500"), 2048), RangeAnswer::Single(ByteRange { start: 1548, end: 2047 }));
/// assert_eq!(resolve(Some("bytes=2000-5000"), 2048), RangeAnswer::Single(ByteRange { start: 2000, end: 2047 }));
/// assert_eq!(resolve(Some("bytes=500-0"), 2048), RangeAnswer::Unsatisfiable);
/// assert_eq!(resolve(Some("bytes=5000-10000"), 2048), RangeAnswer::Unsatisfiable);
/// assert_eq!(resolve(None, 2048), RangeAnswer::Full);
/// ```
pub fn resolve(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(header) = header else {
        return RangeAnswer::Full;
    };
    let Some(specs) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Unsatisfiable;
    };
    let mut ranges = Vec::new();
    for (count, spec) in specs.split(',').enumerate() {
        if count >= MAX_RANGES {
            return RangeAnswer::Full;
        }
        match parse_spec(spec.trim(), size) {
            Spec::Range(range) => ranges.push(range),
            Spec::NoOverlap => {}
            Spec::Invalid => return RangeAnswer::Unsatisfiable,
        }
    }
    match ranges.len() {
        0 => RangeAnswer::Unsatisfiable,
        1 => RangeAnswer::Single(ranges[0]),
        // In u128: the lengths of ranges of a huge blob could overflow a u64 sum.
        _ if ranges.iter().map(|r| u128::from(r.len())).sum::<u128>() > u128::from(size) => {
            RangeAnswer::Full
        }
        _ => RangeAnswer::Multiple(ranges),
    }
}

enum Spec {
    Range(ByteRange),
    NoOverlap,
    Invalid,
}

fn parse_spec(spec: &str, size: u64) -> Spec {
    let Some((first, last)) = spec.split_once('-') else {
        return Spec::Invalid;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last n bytes.
        return match parse_number(last) {
            None => Spec::Invalid,
            Some(0) => Spec::NoOverlap,
            Some(_) if size == 0 => Spec::NoOverlap,
            Some(n) => Spec::Range(ByteRange {
                start: size - n.min(size),
                end: size - 1,
            }),
        };
    }
    let Some(start) = parse_number(first) else {
        return Spec::Invalid;
    };
    let end = if last.is_empty() {
        None
    } else {
        match parse_number(last) {
            Some(end) if end >= start => Some(end),
            _ => return Spec::Invalid,
        }
    };
    if start >= size {
        return Spec::NoOverlap;
    }
    let end = end.map_or(size - 1, |end| end.min(size - 1));
    Spec::Range(ByteRange { start, end })
}

/// A non-empty run of ASCII digits that fits a u64.
fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Why an upload's `Content-Range` header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentRangeError {
    /// Not `<start>-<end>` (optionally with a `bytes` unit and a total).
    #[error("malformed Content-Range {0:?}")]
    Malformed(String),
    /// `start` is after `end`.
    #[error("Content-Range start {start} is after its end {end}")]
    Backwards {
        /// First byte.
        start: u64,
        /// Last byte.
        end: u64,
    },
}

/// Parses an upload chunk's `Content-Range` into its inclusive range.
///
/// ```
/// use layerstore::http::range::{parse_content_range, ByteRange};
/// assert_eq!(parse_content_range("0-1023").unwrap(), ByteRange { start: 0, end: 1023 });
/// assert_eq!(parse_content_range("bytes 10-19/*").unwrap(), ByteRange { start: 10, end: 19 });
/// assert!(parse_content_range("5-1").is_err());
/// ```
pub fn parse_content_range(value: &str) -> Result<ByteRange, ContentRangeError> {
    let malformed = || ContentRangeError::Malformed(value.chars().take(64).collect());
    let mut text = value.trim();
    for unit in ["bytes=", "bytes "] {
        if let Some(rest) = text.strip_prefix(unit) {
            text = rest.trim_start();
        }
    }
    let span = match text.split_once('/') {
        Some((span, total)) if total == "*" || parse_number(total).is_some() => span,
        Some(_) => return Err(malformed()),
        None => text,
    };
    let (start, end) = span.split_once('-').ok_or_else(malformed)?;
    let start = parse_number(start).ok_or_else(malformed)?;
    let end = parse_number(end).ok_or_else(malformed)?;
    if start > end {
        return Err(ContentRangeError::Backwards { start, end });
    }
    Ok(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn conformance_cases_on_a_2048_byte_blob() {
        let cases = [
            ("bytes=500-1499", RangeAnswer::Single(r(500, 1499))),
            ("bytes=500-", RangeAnswer::Single(r(500, 2047))),
            ("bytes=-500", RangeAnswer::Single(r(1548, 2047))),
            ("bytes=2000-5000", RangeAnswer::Single(r(2000, 2047))),
            ("bytes=500-0", RangeAnswer::Unsatisfiable),
            ("bytes=5000-10000", RangeAnswer::Unsatisfiable),
            ("bytes=-5000", RangeAnswer::Single(r(0, 2047))),
            ("bytes=0-0", RangeAnswer::Single(r(0, 0))),
            ("bytes=-0", RangeAnswer::Unsatisfiable),
        ];
        for (header, expected) in cases {
            assert_eq!(resolve(Some(header), 2048), expected, "{header}");
        }
    }

    #[test]
    fn multiple_ranges() {
        assert_eq!(
            resolve(Some("bytes=0-9, 100-109,5000-"), 2048),
            RangeAnswer::Multiple(vec![r(0, 9), r(100, 109)])
        );
        // Overlapping ranges that add up to more than the blob: serve it whole.
        assert_eq!(
            resolve(Some("bytes=0-2000,1-2000"), 2048),
            RangeAnswer::Full
        );
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(resolve(Some(&many), 2048), RangeAnswer::Full);
    }

    #[test]
    fn range_lengths_of_a_huge_blob_do_not_overflow() {
        // Found by the range_header fuzz target: the sum of the lengths overflowed.
        assert_eq!(resolve(Some("bytes=5-9,0-"), u64::MAX), RangeAnswer::Full);
    }

    #[test]
    fn malformed_headers_are_unsatisfiable() {
        for header in [
            "items=0-1",
            "bytes=",
            "bytes=a-b",
            "bytes=1",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(
                resolve(Some(header), 100),
                RangeAnswer::Unsatisfiable,
                "{header}"
            );
        }
    }

    #[test]
    fn empty_blob_satisfies_no_range() {
        assert_eq!(resolve(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-1"), 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(parse_content_range("0-0").unwrap(), r(0, 0));
        assert_eq!(parse_content_range("bytes=3-4").unwrap(), r(3, 4));
        assert_eq!(parse_content_range("bytes 3-4/100").unwrap(), r(3, 4));
        for bad in ["", "-", "1-", "-1", "a-b", "1-2/x", "1-2-3", "0x1-2"] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }
}
