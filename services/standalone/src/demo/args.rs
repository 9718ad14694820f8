//! The flags of `iee demo` and the parsing of its `--duration` (`20s`, `2m`, `1h`).

use std::{path::PathBuf, time::Duration};

/// Flags of `iee demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of simulated customers.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(20..=20_000))]
    pub customers: u32,
    /// How long to simulate, e.g. `20s`, `2m` (the KPI catch-up and the report come after).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the simulation: the same seed gives the same population and the same draws.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Directory the report (`index.html`, plots, `summary.json`) is written to.
    #[arg(long, value_name = "DIR", default_value = "iee-demo-report")]
    pub report: PathBuf,
}

/// Parses `<n>s`, `<n>m` or `<n>h` with a whole number `n ≥ 1`; at most one day.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let help = "use a whole number with a unit: `20s`, `2m` or `1h`";
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: {help}"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "" => return Err(format!("duration {text:?} has no unit: {help}")),
        other => return Err(format!("unknown unit {other:?} in {text:?}: {help}")),
    };
    if !(1..=86_400).contains(&seconds) {
        return Err(format!(
            "duration {text:?} is out of range: between 1s and 24h"
        ));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn durations_without_a_known_unit_or_out_of_range_are_refused() {
        for bad in ["20", "s", "2d", "-1s", "0s", "25h", "1.5m", ""] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(
                err.contains("duration") || err.contains("unit"),
                "{bad}: {err}"
            );
        }
    }
}
