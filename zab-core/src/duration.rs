//! Durations: the one grammar of every zab option that takes a time.
//!
//! The units are zfs-autobackup's thinner units (reference §3.1), the ones
//! its users already write in `--keep-source 10,1d1w,1w1m` and
//! `--destroy-missing 30d`:
//!
//! | unit | meaning |
//! |---|---|
//! | `s` | second |
//! | `min` | minute |
//! | `h` | hour |
//! | `d` | day |
//! | `w` | week |
//! | `m` | month: 30 days (**not** a minute) |
//! | `y` | year: 365.25 days |
//!
//! Units are case-insensitive. A duration is a number and one unit: `30d`,
//! `90min`, `1.5h`. Options that stand in for mbuffer's and pv's (`zab-buffer
//! -W`, `zab-ratelimit -i`) also take a bare number of seconds, as those
//! tools do: `600`, `0.5` ([`parse_seconds`]). Schedules use the same units
//! with whole numbers (`1d1w`, [`crate::schedule`]).
//!
//! `humantime` is not used: its `m` is a minute and its month 30.44 days, so
//! `--destroy-missing 1m` would destroy after a minute instead of 30 days.

use std::time::Duration;

/// The units: name, seconds, word. Longest name first, so `min` is not
/// read as `m`.
pub const UNITS: &[(&str, u64, &str)] = &[
    ("min", 60, "minute"),
    ("s", 1, "second"),
    ("h", 3600, "hour"),
    ("d", 86400, "day"),
    ("w", 604800, "week"),
    ("m", 2592000, "month"),
    ("y", 31557600, "year"),
];

/// The units in words, for messages and help.
pub const UNITS_HELP: &str = "s, min, h, d, w, m = 30 days, y = 365.25 days";

/// The longest duration accepted: 1,000 years, far beyond any use and far
/// from overflowing.
const MAX_SECS: f64 = 1000.0 * 31557600.0;

/// Reads a unit from the front of `s`: (name, seconds, word, the rest).
pub fn unit(s: &str) -> Option<(&'static str, u64, &'static str, &str)> {
    // Compared as bytes: the units are ASCII, and a byte index into `s`
    // could fall inside a multibyte character.
    UNITS
        .iter()
        .find(|(u, _, _)| {
            s.as_bytes()
                .get(..u.len())
                .is_some_and(|b| b.eq_ignore_ascii_case(u.as_bytes()))
        })
        .map(|&(u, secs, word)| (u, secs, word, &s[u.len()..]))
}

/// Splits `s` into its leading number (`30`, `1.5`) and the rest; None
/// without a digit in front.
fn number(s: &str) -> Option<(f64, &str)> {
    let int = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if int == 0 {
        return None;
    }
    let mut end = int;
    if let Some(frac) = s[int..].strip_prefix('.') {
        let digits = frac.len() - frac.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        end = int + 1 + digits;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// The duration of `secs` seconds, refused when too long.
fn seconds(s: &str, secs: f64) -> Result<Duration, String> {
    if !(0.0..=MAX_SECS).contains(&secs) {
        return Err(format!("duration {s:?} is too large (at most 1000y)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a number and a unit: `30d`, `90min`, `1.5h`, `0s`.
pub fn parse(s: &str) -> Result<Duration, String> {
    parse_as(s, "give a number and a unit")
}

/// [`parse`], or a bare number of seconds (`600`, `0.5`), as mbuffer's
/// `-W` and pv's `-i` take them. These options are short times, where a
/// user of mbuffer or pv would read `10m` as ten minutes: the month unit
/// `m` is refused here with a pointer to `min`, never read as 30 days.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    match number(s.trim()) {
        Some((n, "")) => seconds(s, n),
        Some((_, rest)) if rest.eq_ignore_ascii_case("m") => Err(format!(
            "invalid duration {s:?}: m is a month in zab (as in schedules); write min for minutes"
        )),
        _ => parse_as(s, "give seconds (600, 0.5) or a number and a unit"),
    }
}

/// [`parse`], `what` saying what is expected when `s` is not understood.
fn parse_as(s: &str, what: &str) -> Result<Duration, String> {
    let t = s.trim();
    let help = || format!("invalid duration {s:?}: {what} ({UNITS_HELP}), e.g. 30d or 10min");
    let (n, rest) = number(t).ok_or_else(help)?;
    if rest.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: no unit ({UNITS_HELP}), e.g. {t}d"
        ));
    }
    let (_, secs, _, rest) = unit(rest).ok_or_else(help)?;
    if !rest.is_empty() {
        return Err(format!("invalid duration {s:?}: {rest:?} left over"));
    }
    seconds(s, n * secs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<f64, String> {
        parse(s).map(|d| d.as_secs_f64())
    }

    #[test]
    fn numbers_and_units() {
        assert_eq!(secs("30d"), Ok(30.0 * 86400.0));
        assert_eq!(secs("0s"), Ok(0.0));
        assert_eq!(secs("90min"), Ok(5400.0));
        assert_eq!(secs("90MIN"), Ok(5400.0));
        assert_eq!(secs("1m"), Ok(2592000.0));
        assert_eq!(secs("1M"), Ok(2592000.0));
        assert_eq!(secs("1y"), Ok(31557600.0));
        assert_eq!(secs("2w"), Ok(1209600.0));
        assert_eq!(secs("1.5h"), Ok(5400.0));
        assert_eq!(secs(" 12h "), Ok(43200.0));
        assert_eq!(secs("1000y"), Ok(MAX_SECS));
    }

    #[test]
    fn refusals_say_why() {
        for (bad, why) in [
            ("30", "no unit"),
            ("", "give a number and a unit"),
            ("d", "give a number and a unit"),
            ("-1d", "give a number and a unit"),
            ("1x", "give a number and a unit"),
            ("30d1", "left over"),
            ("1d1w", "left over"),
            ("1.d", "give a number and a unit"),
            (".5h", "give a number and a unit"),
            ("1e3s", "give a number and a unit"),
            ("inf", "give a number and a unit"),
            ("1001y", "too large"),
            ("99999999999999999999999y", "too large"),
            ("1é", "give a number and a unit"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn bare_seconds_where_mbuffer_and_pv_take_them() {
        let s = |t| parse_seconds(t).map(|d| d.as_secs_f64());
        assert_eq!(s("600"), Ok(600.0));
        assert_eq!(s("0.5"), Ok(0.5));
        assert_eq!(s("10min"), Ok(600.0));
        assert!(s("10m").unwrap_err().contains("write min for minutes"));
        assert!(s("10M").unwrap_err().contains("write min for minutes"));
        assert!(s("1e10")
            .unwrap_err()
            .contains("give seconds (600, 0.5) or"));
        assert!(s("NaN").is_err());
        assert!(s("99999999999").unwrap_err().contains("too large"));
    }

    /// No string of a small alphabet with multibyte characters panics.
    #[test]
    fn never_panics() {
        let alphabet = ['1', '.', 'm', 'i', 'n', 's', ' ', 'é', '€'];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for s in &level {
                let _ = parse(s);
                let _ = parse_seconds(s);
            }
        }
    }

    mod properties {
        use super::*;
        use crate::fuzz::{assert_plain_line, config, noise};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config(256))]

            /// `--destroy-missing`, `zab-buffer -W`, `zab-ratelimit -i`.
            #[test]
            fn any_text_is_a_duration_or_one_line(s in prop_oneof![noise(), "[0-9.]{0,6}[a-zA-Z]{0,4}[0-9]{0,2}", "\\PC{0,10}"]) {
                for parsed in [parse(&s), parse_seconds(&s)] {
                    match parsed {
                        Ok(d) => prop_assert!(d.as_secs_f64() <= MAX_SECS),
                        Err(e) => assert_plain_line(&e, &s),
                    }
                }
            }

            #[test]
            fn a_number_and_a_unit_is_their_product(n in 0u32..1000, u in 0..UNITS.len(), upper in any::<bool>()) {
                let (name, secs, _) = UNITS[u];
                let name = if upper { name.to_uppercase() } else { name.to_string() };
                let d = parse(&format!("{n}{name}")).unwrap();
                prop_assert_eq!(d.as_secs(), u64::from(n) * secs);
            }
        }
    }
}
