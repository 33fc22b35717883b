//! Time and duration helpers: kubeadm's date format, apimachinery's `ShortHumanDuration`,
//! and parsing of the duration strings users type (`720h`, `30d`, `1h30m`).

use jiff::Timestamp;

/// Formats a Unix timestamp the way kubeadm prints `EXPIRES`: Go layout
/// `Jan 02, 2006 15:04 MST` in UTC.
pub fn kubeadm_date(unix: i64) -> String {
    match Timestamp::from_second(unix) {
        Ok(ts) => ts.strftime("%b %d, %Y %H:%M UTC").to_string(),
        Err(_) => format!("@{unix}"),
    }
}

/// RFC 3339 UTC with second precision (`2025-12-30T23:36:00Z`), as metav1.Time marshals.
pub fn rfc3339(unix: i64) -> String {
    match Timestamp::from_second(unix) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("@{unix}"),
    }
}

/// A time or duration a user typed that does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Not an RFC 3339 timestamp.
    #[error("invalid RFC 3339 time {input:?}")]
    Rfc3339 {
        /// What was given.
        input: String,
        /// jiff's reason.
        #[source]
        source: jiff::Error,
    },
    /// An empty duration.
    #[error("empty duration")]
    EmptyDuration,
    /// A negative duration (every duration kubecert takes is a length of time).
    #[error("invalid duration {0:?}: negative durations are not allowed")]
    NegativeDuration(String),
    /// A number without a unit.
    #[error("invalid duration {0:?}: missing unit")]
    MissingUnit(String),
    /// A unit kubecert does not know.
    #[error("invalid duration {input:?}: unknown unit {unit:?}")]
    UnknownUnit {
        /// What was given.
        input: String,
        /// The unit.
        unit: String,
    },
    /// A number that does not fit.
    #[error("invalid duration {0:?}: number too large")]
    NumberTooLarge(String),
    /// A total that does not fit.
    #[error("invalid duration {0:?}: too large")]
    DurationTooLarge(String),
    /// Not a duration at all.
    #[error("invalid duration {0:?}")]
    InvalidDuration(String),
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    s.parse::<Timestamp>()
        .map(|t| t.as_second())
        .map_err(|source| TimeError::Rfc3339 {
            input: s.to_string(),
            source,
        })
}

/// The current time: Unix seconds and the nanoseconds past them (kubeadm's clock is
/// sub-second; see [`residual_seconds`]).
pub fn now_precise() -> (i64, u32) {
    let t = Timestamp::now();
    (t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

/// Seconds from `now` (+ `now_nanos`) until `not_after`, truncated toward zero as Go's
/// `int(d.Seconds())` does: 365 days after a certificate issued at second S, checked at
/// S + 0.4 s, leaves 364d 23h 59m 59 s (kubeadm's `364d`), not 365 days (`1y`).
pub fn residual_seconds(not_after: i64, now: i64, now_nanos: u32) -> i64 {
    let whole = not_after - now;
    if now_nanos > 0 && whole > 0 {
        whole - 1
    } else {
        whole
    }
}

/// The current time in Unix seconds.
pub fn now_unix() -> i64 {
    Timestamp::now().as_second()
}

/// apimachinery `duration.ShortHumanDuration` on whole seconds (kubeadm's RESIDUAL TIME).
pub fn short_human_duration(seconds: i64) -> String {
    let s = seconds;
    if s < -1 {
        return "<invalid>".to_string();
    } else if s < 0 {
        return "0s".to_string();
    } else if s < 60 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// Parses a duration: Go syntax (`8760h`, `1h30m`, `90s`, `500ms` is rejected as sub-second)
/// plus `d` for days and `w` for weeks. Returns whole seconds, never negative: every
/// duration kubecert takes (thresholds, validity, timeouts) is a length of time, so `-5d` is
/// refused rather than read as "never" or "after expiry".
pub fn parse_duration(input: &str) -> Result<i64, TimeError> {
    // Kept by hand (issue 14 crate trial, golden `tests::DURATION_GOLDEN`): jiff's
    // `SignedDuration` parser (already a dependency) refuses `30d`, `2w`, `1w2d3h` (calendar
    // units), `0` and ` 5m `, and accepts `1.5h` and `1h 30m`, which kubecert refuses
    // (`tests::jiff_does_not_match_the_golden_durations`). Go's syntax alone
    // (go-parse-duration) has no `d`/`w` and takes `300ms`/`1.5h`; not tried further.
    let s = input.trim();
    if s.is_empty() {
        return Err(TimeError::EmptyDuration);
    }
    if s.starts_with('-') {
        return Err(TimeError::NegativeDuration(input.to_string()));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    if body == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let mut rest = body;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| TimeError::MissingUnit(input.to_string()))?;
        if digits == 0 {
            return Err(TimeError::InvalidDuration(input.to_string()));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| TimeError::NumberTooLarge(input.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => {
                return Err(TimeError::UnknownUnit {
                    input: input.to_string(),
                    unit: unit.to_string(),
                })
            }
        };
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| TimeError::DurationTooLarge(input.to_string()))?;
        any = true;
    }
    if !any {
        return Err(TimeError::InvalidDuration(input.to_string()));
    }
    Ok(total)
}

/// Formats seconds as a Go-style duration (`720h0m0s` is what Go prints; we print `720h`).
pub fn format_duration(seconds: i64) -> String {
    if seconds % 86400 == 0 && seconds != 0 {
        return format!("{}d", seconds / 86400);
    }
    let h = seconds / 3600;
    let m = (seconds % 3600) / 60;
    let s = seconds % 60;
    let mut out = String::new();
    if h != 0 {
        out.push_str(&format!("{h}h"));
    }
    if m != 0 {
        out.push_str(&format!("{m}m"));
    }
    if s != 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_truncates_toward_zero_like_go() {
        let year = 365 * 86400;
        assert_eq!(residual_seconds(year, 0, 0), year);
        assert_eq!(residual_seconds(year, 0, 400_000_000), year - 1);
        assert_eq!(short_human_duration(residual_seconds(year, 0, 1)), "364d");
        // At or past NotAfter: -0.4 s truncates to 0, -5.4 s to -5.
        assert_eq!(residual_seconds(10, 10, 400_000_000), 0);
        assert_eq!(residual_seconds(10, 15, 400_000_000), -5);
    }

    #[test]
    fn short_human_duration_matches_apimachinery() {
        assert_eq!(short_human_duration(-2), "<invalid>");
        assert_eq!(short_human_duration(-1), "0s");
        assert_eq!(short_human_duration(0), "0s");
        assert_eq!(short_human_duration(59), "59s");
        assert_eq!(short_human_duration(60), "1m");
        assert_eq!(short_human_duration(3599), "59m");
        assert_eq!(short_human_duration(3600), "1h");
        assert_eq!(short_human_duration(86399), "23h");
        assert_eq!(short_human_duration(86400), "1d");
        // A fresh one-year cert renewed 5 minutes ago is just under 365d.
        assert_eq!(short_human_duration(365 * 86400 - 1), "364d");
        assert_eq!(short_human_duration(365 * 86400), "1y");
        assert_eq!(short_human_duration(10 * 365 * 86400 - 600), "9y");
    }

    #[test]
    fn kubeadm_date_layout() {
        // 2020-12-30T23:36:00Z
        assert_eq!(kubeadm_date(1609371360), "Dec 30, 2020 23:36 UTC");
        assert_eq!(kubeadm_date(1578009600), "Jan 03, 2020 00:00 UTC");
        assert_eq!(rfc3339(1609371360), "2020-12-30T23:36:00Z");
    }

    /// The duration syntax kubecert documents, input → whole seconds or the error message:
    /// Go's `time.ParseDuration` units `h`, `m`, `s` in any sequence, plus `d` and `w`; no
    /// fractions and no sub-second units (every duration is whole seconds), no sign but `+`,
    /// no spaces inside. The golden test of the crate trial (see [`parse_duration`]).
    pub(crate) const DURATION_GOLDEN: &[(&str, Result<i64, &str>)] = &[
        ("8760h", Ok(8760 * 3600)),
        ("1h30m", Ok(5400)),
        ("90s", Ok(90)),
        ("1h0m0s", Ok(3600)),
        ("720h0m0s", Ok(720 * 3600)),
        ("30d", Ok(30 * 86400)),
        ("2w", Ok(14 * 86400)),
        ("1w2d3h", Ok(9 * 86400 + 3 * 3600)),
        ("0", Ok(0)),
        ("+1h", Ok(3600)),
        (" 5m ", Ok(300)),
        ("", Err("empty duration")),
        ("10", Err("invalid duration \"10\": missing unit")),
        ("h", Err("invalid duration \"h\"")),
        ("1.5h", Err("invalid duration \"1.5h\": unknown unit \".\"")),
        (
            "300ms",
            Err("invalid duration \"300ms\": unknown unit \"ms\""),
        ),
        ("5y", Err("invalid duration \"5y\": unknown unit \"y\"")),
        (
            "1h 30m",
            Err("invalid duration \"1h 30m\": unknown unit \"h \""),
        ),
        (
            "-5d",
            Err("invalid duration \"-5d\": negative durations are not allowed"),
        ),
        (
            "-",
            Err("invalid duration \"-\": negative durations are not allowed"),
        ),
        (
            "99999999999999999999h",
            Err("invalid duration \"99999999999999999999h\": number too large"),
        ),
        (
            "9999999999999999w",
            Err("invalid duration \"9999999999999999w\": too large"),
        ),
    ];

    /// Seconds, or why not.
    pub(crate) type Parsed = Result<i64, String>;

    /// The golden cases `parse` gets wrong, as `(input, want, got)`.
    pub(crate) fn duration_golden_misses(
        parse: impl Fn(&str) -> Result<i64, String>,
    ) -> Vec<(&'static str, Parsed, Parsed)> {
        DURATION_GOLDEN
            .iter()
            .filter_map(|(input, want)| {
                let want = want.map_err(str::to_string);
                let got = parse(input);
                // A crate's own rejection text cannot be ours: for errors only the verdict counts.
                let same = match (&want, &got) {
                    (Ok(a), Ok(b)) => a == b,
                    (Err(_), Err(_)) => true,
                    _ => false,
                };
                (!same).then_some((*input, want, got))
            })
            .collect()
    }

    #[test]
    fn duration_golden() {
        for (input, want) in DURATION_GOLDEN {
            let got = parse_duration(input).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{input:?}");
        }
        assert!(
            duration_golden_misses(|s| parse_duration(s).map_err(|e| e.to_string())).is_empty()
        );
    }

    /// The crate trial (issue 14): jiff (already a dependency) parses Go-like durations too.
    #[test]
    fn jiff_does_not_match_the_golden_durations() {
        let jiff_parse = |s: &str| -> Result<i64, String> {
            let d: jiff::SignedDuration = s.parse().map_err(|e: jiff::Error| e.to_string())?;
            if d.subsec_nanos() != 0 {
                return Err("sub-second".into());
            }
            Ok(d.as_secs())
        };
        let misses = duration_golden_misses(jiff_parse);
        let inputs: Vec<&str> = misses.iter().map(|m| m.0).collect();
        assert!(!inputs.is_empty(), "jiff matches now: use it");
        eprintln!("jiff misses: {misses:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8760h").ok(), Some(8760 * 3600));
        assert_eq!(parse_duration("30d").ok(), Some(30 * 86400));
        assert_eq!(parse_duration("1h30m").ok(), Some(5400));
        assert_eq!(parse_duration("0").ok(), Some(0));
        assert_eq!(parse_duration("2w").ok(), Some(14 * 86400));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        for neg in ["-5d", "-1h", "-0", "-1h30m", " -30d"] {
            assert_eq!(
                parse_duration(neg).map_err(|e| e.to_string()),
                Err(format!(
                    "invalid duration {neg:?}: negative durations are not allowed"
                ))
            );
        }
        assert_eq!(parse_duration("+1h").ok(), Some(3600));
        assert_eq!(format_duration(30 * 86400), "30d");
        assert_eq!(format_duration(5400), "1h30m");
    }
}
