//! Log offsets: Redis stream ids `<ms>-<seq>` (the in-memory log uses `0-<n>`), ordered
//! numerically, never as strings (`0-10` comes after `0-9`).

use std::cmp::Ordering;

/// The `(ms, seq)` pair of an offset, `None` if it is not of the form `<u64>-<u64>`.
pub fn parse(offset: &str) -> Option<(u64, u64)> {
    let (ms, seq) = offset.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Whether offset `a` lies after offset `b`. Every offset lies after the empty offset (nothing
/// applied yet). Offsets that do not parse are ordered as byte strings, which keeps the
/// comparison total; the logs never produce them.
pub fn is_after(a: &str, b: &str) -> bool {
    compare(a, b) == Ordering::Greater
}

/// Total order of offsets: the empty offset first, then numerically.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_ids() {
        assert_eq!(parse("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(parse("0-12"), Some((0, 12)));
        for bad in ["", "12", "-1", "1-", "a-1", "1-2-3", "1 -2", "+1-2"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn compares_numerically_not_lexically() {
        assert!(is_after("0-10", "0-9"));
        assert!(!is_after("0-9", "0-10"));
        assert!(is_after("2-0", "1-99"));
        assert!(!is_after("5-5", "5-5"));
        assert!(is_after("0-0", ""));
        assert!(!is_after("", "0-0"));
    }
}
