//! Thinning schedules (`10,1d1w,1w1m,1m1y`) and the pure thinner.
//!
//! The decisions are zfs-autobackup's, exactly (reference §3): blocks are
//! counted from the Unix epoch; in each block of each rule the oldest
//! snapshot still within that rule's TTL is kept; rules with the same
//! interval share their blocks; the last N and the protected snapshots are
//! kept in addition. Unlike upstream, the parser refuses anything outside the
//! grammar (upstream reads `1d1w2` as `1d1w`).

use std::collections::{HashMap, HashSet};

use crate::duration::UNITS_HELP;

/// One rule: keep one snapshot every `period` seconds for `ttl` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub period: i64,
    pub ttl: i64,
    text: String,
    human: String,
}

impl Rule {
    /// "Keep every 1 day, delete after 1 week."
    pub fn describe(&self) -> &str {
        &self.human
    }
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Keep the last N snapshots (0: none).
    pub keep_last: usize,
    pub rules: Vec<Rule>,
}

/// Reads `<digits><unit>` from the front of `s`, in the units of
/// [`crate::duration`].
fn amount_unit(s: &str) -> Option<(i64, &'static str, i64, &'static str, &str)> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let n: i64 = s[..digits].parse().ok()?;
    let (name, secs, desc, rest) = crate::duration::unit(&s[digits..])?;
    Some((
        n,
        name,
        i64::try_from(secs).ok()?.checked_mul(n)?,
        desc,
        rest,
    ))
}

/// `--destroy-missing DURATION` in whole seconds: [`crate::duration::parse`],
/// the grammar of every duration (`30d`, `1y`, `0s`, `12h`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let d = crate::duration::parse(s)?;
    i64::try_from(d.as_secs()).map_err(|_| format!("duration {s:?} is too long"))
}

fn plural(n: i64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

impl Schedule {
    /// Parses `ITEM(,ITEM)*`, ITEM being a count (keep the last N) or a rule
    /// `<n><unit><n><unit>` (units s, min, h, d, w, m = 30 days,
    /// y = 365.25 days; any case).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut sched = Schedule::default();
        let mut count_seen: Option<&str> = None;
        if text.trim().is_empty() {
            return Err("empty schedule (use 0 to keep nothing but the newest)".into());
        }
        for item in text.split(',') {
            let bad = |why: &str| format!("invalid schedule {text:?}: {item:?} {why}");
            if item.is_empty() {
                return Err(bad("is empty (two commas, or a comma at an end?)"));
            }
            if item.starts_with('-') {
                return Err(bad(
                    "is negative: the number of snapshots to keep cannot be",
                ));
            }
            if item.chars().all(|c| c.is_ascii_digit()) {
                if let Some(prev) = count_seen {
                    return Err(bad(&format!(
                        "is a second count after {prev:?}: give one number of snapshots to keep"
                    )));
                }
                sched.keep_last = item.parse().map_err(|_| bad("is too large"))?;
                count_seen = Some(item);
                continue;
            }
            let unit_help =
                &format!("expected <number><unit><number><unit> such as 1d1w (units {UNITS_HELP})");
            let (pn, pu, period, pdesc, rest) = amount_unit(item).ok_or_else(|| bad(unit_help))?;
            let (tn, tu, ttl, tdesc, rest) = amount_unit(rest).ok_or_else(|| bad(unit_help))?;
            if !rest.is_empty() {
                return Err(bad(&format!("has {rest:?} left over: {unit_help}")));
            }
            if period == 0 {
                return Err(bad("has an interval of 0"));
            }
            if period > ttl {
                return Err(bad(&format!(
                    "keeps one every {} but deletes after {}: the interval cannot be longer than the time to keep",
                    plural(pn, pdesc),
                    plural(tn, tdesc)
                )));
            }
            sched.rules.push(Rule {
                period,
                ttl,
                text: format!("{pn}{pu}{tn}{tu}"),
                human: format!(
                    "Keep every {}, delete after {}.",
                    plural(pn, pdesc),
                    plural(tn, tdesc)
                ),
            });
        }
        Ok(sched)
    }

    /// The schedule in words, one sentence per item, as upstream prints it.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.keep_last > 0 {
            out.push(format!(
                "Keep the last {} snapshot{}.",
                self.keep_last,
                if self.keep_last == 1 { "" } else { "s" }
            ));
        }
        out.extend(self.rules.iter().map(|r| r.human.clone()));
        out
    }

    /// Decides which snapshots to keep. `times` are the snapshots' times
    /// (seconds since the epoch), oldest first as `zfs list` gives them;
    /// `protected[i]` keeps snapshot i whatever the schedule says. Returns
    /// one flag per snapshot: true = keep, false = destroy.
    pub fn thin(&self, times: &[i64], protected: &[bool], now: i64) -> Vec<bool> {
        self.explain(times, protected, now)
            .iter()
            .map(|v| v.keep)
            .collect()
    }

    /// [`Schedule::thin`] with the reasons: for each snapshot, the rule
    /// blocks it holds, whether it is in the last-N tail, protected, or past
    /// every rule's TTL.
    pub fn explain(&self, times: &[i64], protected: &[bool], now: i64) -> Vec<Verdict> {
        assert_eq!(
            times.len(),
            protected.len(),
            "one protected flag per snapshot"
        );
        let n = times.len();
        let all_kept = self.keep_last > 0 && n <= self.keep_last;
        let tail_from = n - self.keep_last.min(n);
        let mut claimed: HashMap<i64, HashSet<i64>> = HashMap::new();
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let age = now - t;
                let mut holds = Vec::new();
                let mut expired = true;
                if !all_kept {
                    for (r, rule) in self.rules.iter().enumerate() {
                        if age <= rule.ttl {
                            expired = false;
                            // Python's int(t / period): truncation toward zero.
                            let block = t / rule.period;
                            if claimed.entry(rule.period).or_default().insert(block) {
                                holds.push((r, block));
                            }
                        }
                    }
                }
                let tail = all_kept || (self.keep_last > 0 && i >= tail_from);
                Verdict {
                    keep: !holds.is_empty() || protected[i] || tail,
                    holds,
                    tail,
                    protected: protected[i],
                    expired: expired && !all_kept,
                }
            })
            .collect()
    }
}

/// Why the thinner keeps or destroys one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Keep it (else destroy it).
    pub keep: bool,
    /// The blocks it holds: (index into `rules`, block number counted from
    /// the epoch). A block of a period shared by several rules is held once.
    pub holds: Vec<(usize, i64)>,
    /// One of the last N (or there are no more than N in all).
    pub tail: bool,
    /// Protected by the caller (the newest, the common snapshot, held).
    pub protected: bool,
    /// Older than every rule's TTL (and not kept whole by the last N).
    pub expired: bool,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut items: Vec<String> = Vec::new();
        if self.keep_last > 0 || self.rules.is_empty() {
            items.push(self.keep_last.to_string());
        }
        items.extend(self.rules.iter().map(|r| r.text.clone()));
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        s.parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp()
    }

    #[test]
    fn parses_the_default_and_describes_it() {
        let s = Schedule::parse("10,1d1w,1w1m,1m1y").unwrap();
        assert_eq!(s.keep_last, 10);
        let rules: Vec<(i64, i64)> = s.rules.iter().map(|r| (r.period, r.ttl)).collect();
        assert_eq!(
            rules,
            vec![(86400, 604800), (604800, 2592000), (2592000, 31557600)]
        );
        assert_eq!(
            s.describe(),
            vec![
                "Keep the last 10 snapshots.",
                "Keep every 1 day, delete after 1 week.",
                "Keep every 1 week, delete after 1 month.",
                "Keep every 1 month, delete after 1 year.",
            ]
        );
        assert_eq!(s.to_string(), "10,1d1w,1w1m,1m1y");
    }

    #[test]
    fn units_and_case() {
        let r = &Schedule::parse("5min1h").unwrap().rules[0];
        assert_eq!((r.period, r.ttl), (300, 3600));
        assert_eq!(r.describe(), "Keep every 5 minutes, delete after 1 hour.");
        assert_eq!(
            Schedule::parse("1M1Y").unwrap(),
            Schedule::parse("1m1y").unwrap()
        );
        let s = Schedule::parse("1d1w,3,1w1m").unwrap();
        assert_eq!((s.keep_last, s.rules.len()), (3, 2));
        assert_eq!(Schedule::parse("0").unwrap(), Schedule::default());
        assert_eq!(Schedule::parse("1s1s").unwrap().rules[0].period, 1);
    }

    #[test]
    fn refuses_what_the_grammar_does_not_allow() {
        for (bad, why) in [
            ("1d1w2", "left over"),
            ("1d", "expected <number><unit>"),
            ("d1w", "expected <number><unit>"),
            ("1x1w", "expected <number><unit>"),
            ("1w1d", "cannot be longer"),
            ("-1", "negative"),
            ("10,", "is empty"),
            (",10", "is empty"),
            ("3,5", "second count"),
            ("0d1w", "interval of 0"),
            ("", "empty schedule"),
            ("1d 1w", "expected"),
            ("99999999999999999999", "too large"),
        ] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    /// `1é` panicked (exit 70): a byte index cut the `é` in two.
    #[test]
    fn non_ascii_after_a_number_is_an_error_not_a_panic() {
        for bad in ["1é", "1d1é", "5,1é1w", "1dé", "1ß1w", "1\u{1F600}"] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("invalid schedule"), "{bad:?}: {err}");
        }
        assert!(parse_duration("1é").is_err());
        assert!(parse_duration("é").is_err());
    }

    /// Every string of up to 4 characters over an alphabet of digits, unit
    /// letters, commas and multibyte characters: an answer, never a panic.
    #[test]
    fn no_string_of_a_small_alphabet_panics() {
        let alphabet = ['1', '0', 'd', 'm', 'i', 'n', ',', '-', ' ', 'é', 'ß', '€'];
        let mut level = vec![String::new()];
        let mut strings = level.clone();
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(level.iter().cloned());
        }
        assert!(strings.len() > 20_000);
        for s in &strings {
            let _ = Schedule::parse(s);
            let _ = parse_duration(s);
        }
    }

    /// The worked example of the reference (§3.3), verified against upstream.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86400));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("1Y"), Ok(31557600));
        assert_eq!(parse_duration("90min"), Ok(5400));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("30d1").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn worked_example() {
        let s = Schedule::parse("2,1d1w,1w1m").unwrap();
        let now = t("2024-01-10T12:00:00Z");
        // The reference's worked example (§3.3), verified against upstream's
        // class: schedule 2,1d1w,1w1m, now 2024-01-10T12:00:00Z.
        let rows: Vec<(&str, bool)> = include_str!("../tests/fixtures/worked-example.txt")
            .lines()
            .map(|l| {
                let (t, action) = l.split_once(' ').unwrap();
                (t, action == "keep")
            })
            .collect();
        assert_eq!(rows.len(), 12);
        let times: Vec<i64> = rows.iter().map(|(s, _)| t(s)).collect();
        let mut protected = vec![false; times.len()];
        *protected.last_mut().unwrap() = true;
        let want: Vec<bool> = rows.iter().map(|(_, k)| *k).collect();
        assert_eq!(s.thin(&times, &protected, now), want);
    }

    /// A snapshot exactly TTL old is still kept; one second older is not.
    #[test]
    fn ttl_is_inclusive() {
        let s = Schedule::parse("1d1w").unwrap();
        let now = t("2024-01-10T12:00:00Z");
        let times = [now - 604801, now - 604800];
        assert_eq!(s.thin(&times, &[false, false], now), vec![false, true]);
        assert_eq!(s.thin(&times[1..], &[false], now + 1), vec![false]);
    }

    #[test]
    fn zero_keeps_only_the_protected() {
        let s = Schedule::parse("0").unwrap();
        assert_eq!(
            s.thin(&[1, 2, 3], &[false, false, true], 10),
            vec![false, false, true]
        );
        // Few enough for the tail: all kept.
        let s = Schedule::parse("5,1d1w").unwrap();
        assert_eq!(
            s.thin(&[1, 2, 3], &[false; 3], 1_000_000_000),
            vec![true; 3]
        );
    }

    /// A small deterministic generator for the invariant tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn invariants_on_random_timelines() {
        let schedules = [
            "10,1d1w,1w1m,1m1y",
            "2,1h1d,1d1w",
            "0",
            "1",
            "1s1min,1min1h,1h1d",
            "3,1d1w,1d2w",
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..400 {
            let s = Schedule::parse(schedules[round % schedules.len()]).unwrap();
            let n = rng.below(60) as usize;
            let mut now = 1_700_000_000 + rng.below(10_000_000) as i64;
            let mut times = Vec::with_capacity(n);
            let mut t = now - rng.below(40_000_000) as i64;
            for _ in 0..n {
                t += rng.below(400_000) as i64;
                times.push(t);
            }
            now = now.max(t);
            let mut protected = vec![false; n];
            if n > 0 {
                protected[n - 1] = true;
            }
            let keep = s.thin(&times, &protected, now);
            // Every snapshot is decided, the newest is kept, the tail is kept.
            assert_eq!(keep.len(), n);
            if n > 0 {
                assert!(keep[n - 1]);
            }
            for (i, k) in keep.iter().enumerate() {
                if i + s.keep_last >= n {
                    assert!(k, "tail snapshot {i} of {n} dropped by {s}");
                }
            }
            // Same-interval rules share blocks: at most one kept by rules per
            // block of each interval (beyond the tail and protected).
            for rule in &s.rules {
                let mut seen = HashSet::new();
                for (i, &t) in times.iter().enumerate() {
                    let by_rule = keep[i] && !protected[i] && i + s.keep_last < n;
                    if by_rule
                        && now - t <= rule.ttl
                        && s.rules
                            .iter()
                            .all(|r| r.period == rule.period || now - t > r.ttl)
                    {
                        assert!(seen.insert(t / rule.period), "two kept in one block");
                    }
                }
            }
            // Deterministic: the same input gives the same decisions.
            assert_eq!(keep, s.thin(&times, &protected, now));
            // The reasons account for each decision: a kept snapshot holds a
            // block, is in the tail or protected; a held block is within its
            // rule's TTL and is the snapshot's own block.
            for (i, v) in s.explain(&times, &protected, now).iter().enumerate() {
                assert_eq!(v.keep, !v.holds.is_empty() || v.tail || v.protected);
                for &(r, block) in &v.holds {
                    let rule = &s.rules[r];
                    assert!(now - times[i] <= rule.ttl);
                    assert_eq!(block, times[i] / rule.period);
                }
                if v.expired {
                    assert!(v.holds.is_empty());
                    assert!(s.rules.iter().all(|r| now - times[i] > r.ttl));
                }
            }
        }
    }

    mod properties {
        use super::*;
        use crate::fuzz::{assert_plain_line, config, damaged, noise};
        use proptest::prelude::*;

        /// An item: a count, or a rule from the units (the TTL may be
        /// shorter than the interval: that is refused, not a panic).
        fn item() -> impl Strategy<Value = String> {
            let unit =
                proptest::sample::select(vec!["s", "min", "h", "d", "w", "m", "y", "D", "MIN"]);
            prop_oneof![
                (0u64..100).prop_map(|n| n.to_string()),
                (0u64..400, unit.clone(), 0u64..400, unit)
                    .prop_map(|(a, u, b, v)| format!("{a}{u}{b}{v}")),
            ]
        }

        proptest! {
            #![proptest_config(config(256))]

            /// `--keep-source`, `--keep-target`, `--keep`, `--describe`.
            #[test]
            fn any_text_is_a_schedule_or_one_line(
                s in prop_oneof![
                    noise(),
                    damaged("10,1d1w,1w1m,1m1y"),
                    proptest::collection::vec(item(), 0..5).prop_map(|v| v.join(",")),
                    "\\PC{0,16}",
                ]
            ) {
                match Schedule::parse(&s) {
                    // What it says is what it reads back.
                    Ok(sched) => {
                        prop_assert_eq!(Schedule::parse(&sched.to_string()), Ok(sched.clone()));
                        for line in sched.describe() {
                            prop_assert!(!line.contains('\n'));
                        }
                    }
                    Err(e) => assert_plain_line(&e, &s),
                }
            }

            /// The thinner on a parsed schedule and any times (some in the
            /// future): one verdict each, every protected one kept, no panic.
            #[test]
            fn the_thinner_never_panics(
                items in proptest::collection::vec(item(), 1..4),
                times in proptest::collection::vec((0i64..4_000_000_000, any::<bool>()), 0..40),
                now in 0i64..4_000_000_000,
            ) {
                let Ok(sched) = Schedule::parse(&items.join(",")) else { return Ok(()) };
                let mut times = times;
                times.sort_unstable();
                let (times, protected): (Vec<i64>, Vec<bool>) = times.into_iter().unzip();
                let keep = sched.thin(&times, &protected, now);
                prop_assert_eq!(keep.len(), times.len());
                for (k, p) in keep.iter().zip(&protected) {
                    prop_assert!(*k || !*p, "a protected snapshot destroyed");
                }
            }
        }
    }
}
