//! Calendar days for transaction exports and timestamp versions: proleptic Gregorian dates as
//! days since 1970-01-01 (H. Hinnant's civil-date algorithms), without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Parses the date part of `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD`, optionally followed by a
/// time (`T…` or ` …`, ignored: purchases are counted per calendar day, as the reference
/// implementation does with daily periods). Returns days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let date = text.split(['T', ' ']).next()?;
    let (y, m, d) = if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        (&date[0..4], &date[4..6], &date[6..8])
    } else {
        let mut parts = date.split(['-', '/']);
        let parsed = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || parsed.0.len() != 4 {
            return None;
        }
        parsed
    };
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A version string from the current time, `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC):
/// sorts in time order and is safe in file names. Also returns the time in Unix milliseconds.
pub fn version_now() -> (String, i64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (
        format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
            s / 3600,
            s % 3600 / 60,
            s % 60
        ),
        ms,
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_export_formats() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1997-01-01"), Some(9862));
        assert_eq!(parse_date("19970101"), Some(9862));
        assert_eq!(parse_date("1997/01/01"), Some(9862));
        assert_eq!(parse_date("1997-01-01 13:45:00"), Some(9862));
        assert_eq!(parse_date("1997-01-01T23:59:59Z"), Some(9862));
        assert_eq!(parse_date("2024-02-29"), Some(19782));
        for bad in ["2023-02-29", "1997-13-01", "01/02/1997", "yesterday", ""] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for days in [-1000, 0, 9862, 19782, 30000] {
            assert_eq!(parse_date(&format_date(days)), Some(days));
        }
        let (version, ms) = version_now();
        assert_eq!(version.len(), 16);
        assert!(ms > 1_600_000_000_000);
    }
}
