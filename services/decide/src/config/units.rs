//! Parsers for the scalar formats of the configuration: durations (`7d`), RFC 3339 times and
//! `HH:MM` clock times. Each error message says what was expected.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `<n>ms|s|m|h|d` with an integer `n >= 1`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected =
        || format!("invalid duration '{text}': expected <n>ms, <n>s, <n>m, <n>h or <n>d");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(expected());
    }
    let n: u64 = digits.parse().map_err(|_| expected())?;
    if n == 0 {
        return Err(format!(
            "invalid duration '{text}': must be at least 1{unit}"
        ));
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration '{text}': too long"))
}

/// Checks that `duration` lies within `min..=max`, both given as written in the docs.
pub(super) fn check_range(
    duration: Duration,
    text: &str,
    (min, min_text): (Duration, &str),
    (max, max_text): (Duration, &str),
) -> Result<Duration, String> {
    if duration < min || duration > max {
        return Err(format!(
            "duration '{text}' is out of range {min_text}..{max_text}"
        ));
    }
    Ok(duration)
}

/// Parses an RFC 3339 time such as `2026-01-01T00:00:00Z` or `2026-01-01T01:00:00.5+01:00`.
pub(super) fn parse_time(text: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| {
        format!("invalid time '{text}': {why} (expected RFC 3339, e.g. 2026-01-01T00:00:00Z)")
    };
    let b = text.as_bytes();
    let num = |range| digits(text, range);
    let sep_ok = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !sep_ok {
        return Err(bad("malformed"));
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(bad("malformed"));
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("no such time of day"));
    }
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad("fraction of a second must have 1-9 digits"));
        }
        let value: u32 = fraction[..digits].parse().map_err(|_| bad("malformed"))?;
        nanos = value * 10u32.pow(9 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad("missing time zone (Z or +HH:MM)")),
            };
            let (Some(oh), Some(om)) = (digits(rest, 1..3), digits(rest, 4..6)) else {
                return Err(bad("malformed time zone offset"));
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' || oh > 23 || om > 59 {
                return Err(bad("malformed time zone offset"));
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    let magnitude = Duration::new(secs.unsigned_abs(), 0);
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    at.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .ok_or_else(|| bad("out of range"))
}

/// Parses `HH:MM` (00:00-23:59) into minutes after midnight.
pub(super) fn parse_clock(text: &str) -> Result<u32, String> {
    let bad = || format!("invalid time of day '{text}': expected HH:MM between 00:00 and 23:59");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (hours, minutes): (u32, u32) =
        (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

/// The number written with ASCII digits only at `range` of `text`.
fn digits(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    if part.bytes().all(|c| c.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
