//! The `startedat` timestamps: RFC 3339 in UTC with whole seconds (`2024-01-02T03:04:05Z`),
//! exactly Go's `time.RFC3339` output for a UTC time, which distribution writes.
//!
//! Pure calendar arithmetic (days from the civil date, proleptic Gregorian) so the store needs no
//! date crate. Parsing also accepts fractions and numeric offsets, since any RFC 3339 writer
//! may have started an upload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats `time` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, fraction dropped).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use layerstore::store::rfc3339;
/// let t = UNIX_EPOCH + Duration::from_secs(1_704_164_645);
/// assert_eq!(rfc3339::format(t), "2024-01-02T03:04:05Z");
/// assert_eq!(rfc3339::parse("2024-01-02T03:04:05Z"), Some(t));
/// ```
pub fn format(time: SystemTime) -> String {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 timestamp (`Z` or `±HH:MM`, optional fraction). `None` if malformed.
pub fn parse(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let (hour, minute, second) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        for (i, c) in frac[..len].bytes().take(9).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &frac[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => parse_offset(rest)?,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))?
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?
    };
    base.checked_add(Duration::from_nanos(u64::from(nanos)))
}

fn parse_offset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = (digits(s, 1, 2)?, digits(s, 4, 2)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn digits(s: &str, at: usize, len: usize) -> Option<i64> {
    let part = s.get(at..at + len)?;
    if !part.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_instants() {
        assert_eq!(format(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(
            format(at(1_704_164_645) + Duration::from_millis(900)),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(parse("2000-02-29T00:00:00Z"), Some(at(951_782_400)));
        assert_eq!(parse("2024-01-02T04:04:05+01:00"), Some(at(1_704_164_645)));
        assert_eq!(
            parse("2024-01-02T03:04:05.5Z"),
            Some(at(1_704_164_645) + Duration::from_millis(500))
        );
    }

    #[test]
    fn malformed_is_none() {
        for s in [
            "",
            "2024-01-02",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05Z\n",
            "2024-13-02T03:04:05Z",
            "2023-02-29T03:04:05Z",
            "2024-01-02T24:04:05Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+0100",
            "２０２4-01-02T03:04:05Z",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(secs in 0u64..253_402_300_799) {
            proptest::prop_assert_eq!(parse(&format(at(secs))), Some(at(secs)));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
