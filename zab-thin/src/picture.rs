//! Pictures of the thinner's decisions, for people: the one-line reason for
//! each snapshot, the `--explain` timeline in the terminal, and the `--svg`
//! drawing (in `picture/svg.rs`).
//!
//! Both modes call this: `--offline` with its groups of records, the ZFS mode
//! per dataset. Everything here is a pure function of a [`Timeline`], which
//! holds what [`Schedule::explain`] decided; nothing is decided again here,
//! only looked up. Times are shown in UTC because the thinner's blocks are
//! counted from the Unix epoch: day blocks begin at 00:00 UTC, so in UTC the
//! blocks line up with the dates shown.
//!
//! The one piece of I/O is [`write_svg`], which both modes use to write the
//! `--svg` file: never through a symbolic link, since zab-thin runs as root.

mod svg;

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use chrono::DateTime;
use zab_core::error::Error;
use zab_core::schedule::{Schedule, Verdict};

pub use svg::svg;

/// Writes the `--svg` picture to `path`. A symbolic link there is not
/// followed (O_NOFOLLOW): run as root, `--svg /tmp/x.svg` would otherwise
/// overwrite whatever file someone else's link at that name points to. The
/// error says so: `cannot write PATH: it is a symbolic link (not followed)`.
pub fn write_svg(path: &Path, svg: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;

    let cannot = |why: String| Error::Io(format!("cannot write {}: {why}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if e.raw_os_error() == Some(libc::ELOOP) && link {
                cannot("it is a symbolic link (not followed)".into())
            } else {
                cannot(e.to_string())
            }
        })?;
    file.write_all(svg.as_bytes())
        .map_err(|e| cannot(e.to_string()))
}

/// One dataset's thinning, as the pictures need it.
#[derive(Debug, Clone, Copy)]
pub struct Timeline<'a> {
    /// A label ("" in offline mode without a dataset field).
    pub dataset: &'a str,
    pub schedule: &'a Schedule,
    pub now: i64,
    /// Snapshot names, oldest first.
    pub names: &'a [String],
    /// Their times, same order.
    pub times: &'a [i64],
    pub verdicts: &'a [Verdict],
}

impl Timeline<'_> {
    /// How many snapshots are kept.
    pub fn kept(&self) -> usize {
        self.verdicts.iter().filter(|v| v.keep).count()
    }

    /// The schedule's rules as written (`1d1w`), one per rule.
    pub fn rule_labels(&self) -> Vec<String> {
        rule_labels(self.schedule)
    }

    /// The snapshot that holds `block` of `period`. The thinner gives each
    /// block to the oldest snapshot in it that is young enough for a rule of
    /// that period, so with times oldest first a binary search finds it;
    /// times out of order (a clock that went back) are searched one by one.
    fn holder(&self, period: i64, block: i64) -> Option<usize> {
        let max_ttl = self
            .schedule
            .rules
            .iter()
            .filter(|r| r.period == period)
            .map(|r| r.ttl)
            .max()?;
        let holds = |j: usize| {
            self.verdicts[j]
                .holds
                .iter()
                .any(|&(r, b)| b == block && self.schedule.rules[r].period == period)
        };
        let j = self
            .times
            .partition_point(|&t| t / period < block || self.now - t > max_ttl);
        if j < self.times.len() && holds(j) {
            return Some(j);
        }
        (0..self.times.len()).find(|&j| holds(j))
    }

    /// Every held block: (period, block) → (the snapshot that holds it, the
    /// rule it holds it for). Rules of one period share their blocks.
    fn held_blocks(&self) -> HashMap<(i64, i64), (usize, usize)> {
        let mut held = HashMap::new();
        for (i, v) in self.verdicts.iter().enumerate() {
            for &(r, b) in &v.holds {
                held.insert((self.schedule.rules[r].period, b), (i, r));
            }
        }
        held
    }

    /// True when snapshot `i` is the newest (the last: times are oldest
    /// first), which both modes protect.
    fn is_newest(&self, i: usize) -> bool {
        i + 1 == self.times.len()
    }
}

/// The rules of `s` as written (`1d1w`), in order. [`Schedule`]'s text is
/// the count (if any) and the rules, joined by commas.
pub fn rule_labels(s: &Schedule) -> Vec<String> {
    let text = s.to_string();
    let labels: Vec<String> = text
        .split(',')
        .filter(|item| !item.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    if labels.len() == s.rules.len() {
        labels
    } else {
        s.rules
            .iter()
            .map(|r| format!("{}s{}s", r.period, r.ttl))
            .collect()
    }
}

/// A duration in the largest schedule unit that divides it: "1 week",
/// "30 minutes", "1 year" (365.25 days), "90 seconds".
pub fn human_duration(secs: i64) -> String {
    const UNITS: &[(i64, &str)] = &[
        (31_557_600, "year"),
        (2_592_000, "month"),
        (604_800, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (u, word) = UNITS
        .iter()
        .find(|(u, _)| secs != 0 && secs % u == 0)
        .copied()
        .unwrap_or((1, "second"));
    let n = secs / u;
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// A time as `2024-01-10 12:00:00` (UTC).
pub fn utc(t: i64) -> String {
    match DateTime::from_timestamp(t, 0) {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => format!("@{t}"),
    }
}

/// One-line reason for snapshot `i`: "keep: holds block 20414 of 1d1w (Keep
/// every 1 day, delete after 1 week.)", "keep: one of the last 10", "keep:
/// protected (newest)", "destroy: block 20414 of 1d1w is held by
/// offsite1-20251122000000", "destroy: older than every rule's TTL".
pub fn reason(t: &Timeline, i: usize) -> String {
    reason_with(t, i, &t.rule_labels())
}

fn reason_with(t: &Timeline, i: usize, labels: &[String]) -> String {
    let mut o = String::with_capacity(80);
    reason_into(&mut o, t, i, labels);
    o
}

/// [`reason`] written into `o` (cleared first), with the rule labels of
/// [`Timeline::rule_labels`] made once: the offline output says a reason
/// for each of up to millions of snapshots, one buffer for them all.
pub fn reason_into(o: &mut String, t: &Timeline, i: usize, labels: &[String]) {
    o.clear();
    o.push_str(if t.verdicts[i].keep {
        "keep: "
    } else {
        "destroy: "
    });
    why(o, t, i, labels, true);
}

/// Writes the parts of snapshot `i`'s reason into `o`, separated by "; ";
/// `long` adds each rule's sentence. One buffer, no allocation per part:
/// this runs for every snapshot.
fn why(o: &mut String, t: &Timeline, i: usize, labels: &[String], long: bool) {
    let v = &t.verdicts[i];
    let s = t.schedule;
    let mut sep = "";
    let mut part = |o: &mut String| {
        o.push_str(sep);
        sep = "; ";
    };
    if v.keep {
        for &(r, b) in &v.holds {
            part(o);
            write!(o, "holds block {b} of {}", labels[r]).ok();
            if long {
                write!(o, " ({})", s.rules[r].describe()).ok();
            }
        }
        if v.tail {
            part(o);
            write!(o, "one of the last {}", s.keep_last).ok();
            let n = t.names.len();
            match n {
                1 => o.push_str(" (there is only 1)"),
                n if n < s.keep_last => {
                    write!(o, " (there are only {n})").ok();
                }
                _ => {}
            }
        }
        if v.protected {
            part(o);
            o.push_str("protected");
            if t.is_newest(i) {
                o.push_str(" (newest)");
            }
        }
        return;
    }
    if s.rules.is_empty() {
        match s.keep_last {
            0 => o.push_str("the schedule keeps only the protected"),
            n => {
                write!(o, "not one of the last {n}, and the schedule has no rules").ok();
            }
        }
        return;
    }
    if v.expired {
        o.push_str("older than every rule's TTL");
        return;
    }
    let age = t.now - t.times[i];
    let mut periods = Vec::with_capacity(s.rules.len());
    for (r, rule) in s.rules.iter().enumerate() {
        if age <= rule.ttl && !periods.contains(&rule.period) {
            periods.push(rule.period);
            let block = t.times[i] / rule.period;
            let by = match t.holder(rule.period, block) {
                Some(j) => t.names[j].as_str(),
                None => "an older snapshot",
            };
            let is = if long { "is " } else { "" };
            part(o);
            write!(o, "block {block} of {} {is}held by {by}", labels[r]).ok();
        }
    }
    let mut too_old = s.rules.iter().zip(labels).filter(|(r, _)| age > r.ttl);
    if let Some((_, first)) = too_old.next() {
        part(o);
        write!(o, "too old for {first}").ok();
        for (_, l) in too_old {
            write!(o, ", {l}").ok();
        }
    }
}

/// The terminal timeline: a summary, then per rule its blocks within the TTL
/// and the snapshot that holds each one, the last-N tail and the protected,
/// then every snapshot with its decision, oldest first.
pub fn explain(t: &Timeline) -> String {
    let mut o = String::new();
    let n = t.names.len();
    let kept = t.kept();
    let s = t.schedule;
    let title = if t.dataset.is_empty() {
        "snapshots"
    } else {
        t.dataset
    };
    let plural = if n == 1 { "" } else { "s" };
    writeln!(
        o,
        "{title}: {n} snapshot{plural}, keep {kept}, destroy {}",
        n - kept
    )
    .ok();
    writeln!(o, "  schedule {s}, now {} UTC ({})", utc(t.now), t.now).ok();
    for line in s.describe() {
        writeln!(o, "    {line}").ok();
    }
    if n == 0 {
        return o;
    }
    let labels = t.rule_labels();
    explain_blocks(&mut o, t, &labels);
    explain_tail(&mut o, t);
    writeln!(o, "\n  snapshots, oldest first:").ok();
    let width = t.names.iter().map(|s| s.len()).max().unwrap_or(0).min(40);
    for i in 0..n {
        let action = if t.verdicts[i].keep {
            "keep"
        } else {
            "destroy"
        };
        write!(
            o,
            "    {action:<7}  {}  {:<width$}  ",
            utc(t.times[i]),
            t.names[i]
        )
        .ok();
        why(&mut o, t, i, &labels, false);
        o.push('\n');
    }
    o
}

/// [`explain`]'s part per rule: its blocks within the TTL and the snapshot
/// that holds each one.
fn explain_blocks(o: &mut String, t: &Timeline, labels: &[String]) {
    let held = t.held_blocks();
    let newest = t.times.iter().copied().max().unwrap_or(t.now).max(t.now);
    for (r, rule) in t.schedule.rules.iter().enumerate() {
        let p = rule.period;
        let from = t.now - rule.ttl;
        writeln!(
            o,
            "\n  {}: blocks of {} (counted from 1970-01-01), kept for {}: since {}",
            labels[r],
            human_duration(p),
            human_duration(rule.ttl),
            utc(from)
        )
        .ok();
        // Snapshots young enough for this rule, per block.
        let mut young: HashMap<i64, usize> = HashMap::new();
        for &tm in t.times.iter().filter(|&&tm| t.now - tm <= rule.ttl) {
            *young.entry(tm / p).or_default() += 1;
        }
        let (first, last) = (from / p, newest / p);
        let mut blocks: Vec<i64> = held
            .keys()
            .filter(|&&(per, b)| per == p && (first..=last).contains(&b))
            .map(|&(_, b)| b)
            .collect();
        blocks.sort_unstable();
        let mut next = first;
        let gap = |o: &mut String, a: i64, b: i64| {
            match b - a {
                0 => Ok(()),
                1 => writeln!(o, "    block {a:<8} {}  -", utc(a * p)),
                k => writeln!(o, "    blocks {a}-{}: {k} blocks without a snapshot", b - 1),
            }
            .ok();
        };
        for b in blocks {
            gap(o, next, b);
            let (j, by) = held[&(p, b)];
            // A block shared with a longer rule of the same period may be
            // held by a snapshot too old for this one.
            let shared = if t.now - t.times[j] > rule.ttl {
                format!(" for {}", labels[by])
            } else {
                String::new()
            };
            let others = young.get(&b).copied().unwrap_or(0) - usize::from(shared.is_empty());
            let more = match others {
                0 => String::new(),
                1 => "; 1 other in the block".to_string(),
                k => format!("; {k} others in the block"),
            };
            writeln!(
                o,
                "    block {b:<8} {}  held by {} ({}){shared}{more}",
                utc(b * p),
                t.names[j],
                utc(t.times[j])
            )
            .ok();
            next = b + 1;
        }
        gap(o, next, last + 1);
    }
}

/// [`explain`]'s last-N tail and the protected snapshots.
fn explain_tail(o: &mut String, t: &Timeline) {
    let n = t.names.len();
    let tail: Vec<&str> = (0..n)
        .filter(|&i| t.verdicts[i].tail)
        .map(|i| t.names[i].as_str())
        .collect();
    if t.schedule.keep_last > 0 {
        writeln!(o, "\n  last {}: {}", t.schedule.keep_last, tail.join(", ")).ok();
    }
    let protected: Vec<String> = (0..n)
        .filter(|&i| t.verdicts[i].protected)
        .map(|i| {
            let newest = if t.is_newest(i) { " (newest)" } else { "" };
            format!("{}{newest}", t.names[i])
        })
        .collect();
    if !protected.is_empty() {
        writeln!(o, "  protected: {}", protected.join(", ")).ok();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The reference's worked example (§3.3): schedule `2,1d1w,1w1m`, now
    /// 2024-01-10 12:00 UTC, the newest protected. Returns (schedule, now,
    /// names, times, verdicts).
    pub(crate) fn worked_example() -> (Schedule, i64, Vec<String>, Vec<i64>, Vec<Verdict>) {
        let s = Schedule::parse("2,1d1w,1w1m").unwrap();
        let at = |d: &str| d.parse::<DateTime<chrono::Utc>>().unwrap().timestamp();
        let now = at("2024-01-10T12:00:00Z");
        let when = [
            "2023-12-20T10:00:00Z",
            "2023-12-28T09:00:00Z",
            "2023-12-28T21:00:00Z",
            "2024-01-03T08:00:00Z",
            "2024-01-05T02:00:00Z",
            "2024-01-05T23:00:00Z",
            "2024-01-08T06:00:00Z",
            "2024-01-09T10:00:00Z",
            "2024-01-09T18:00:00Z",
            "2024-01-10T00:30:00Z",
            "2024-01-10T06:00:00Z",
            "2024-01-10T11:00:00Z",
        ];
        let times: Vec<i64> = when.iter().map(|d| at(d)).collect();
        let names: Vec<String> = when
            .iter()
            .map(|d| format!("offsite1-{}", d.replace(['-', 'T', ':', 'Z'], "")))
            .collect();
        let mut protected = vec![false; times.len()];
        protected[times.len() - 1] = true;
        let verdicts = s.explain(&times, &protected, now);
        (s, now, names, times, verdicts)
    }

    fn timeline<'a>(
        s: &'a Schedule,
        now: i64,
        names: &'a [String],
        times: &'a [i64],
        verdicts: &'a [Verdict],
    ) -> Timeline<'a> {
        Timeline {
            dataset: "tank/a",
            schedule: s,
            now,
            names,
            times,
            verdicts,
        }
    }

    #[test]
    fn reasons_of_the_worked_example() {
        let (s, now, names, times, verdicts) = worked_example();
        let t = timeline(&s, now, &names, &times, &verdicts);
        let got: Vec<String> = (0..names.len()).map(|i| reason(&t, i)).collect();
        let day = "(Keep every 1 day, delete after 1 week.)";
        let week = "(Keep every 1 week, delete after 1 month.)";
        assert_eq!(
            got,
            vec![
                format!("keep: holds block 2815 of 1w1m {week}"),
                format!("keep: holds block 2817 of 1w1m {week}"),
                "destroy: block 2817 of 1w1m is held by offsite1-20231228090000; too old for 1d1w"
                    .to_string(),
                "destroy: block 2817 of 1w1m is held by offsite1-20231228090000; too old for 1d1w"
                    .to_string(),
                format!("keep: holds block 19727 of 1d1w {day}; holds block 2818 of 1w1m {week}"),
                "destroy: block 19727 of 1d1w is held by offsite1-20240105020000; \
                 block 2818 of 1w1m is held by offsite1-20240105020000"
                    .to_string(),
                format!("keep: holds block 19730 of 1d1w {day}"),
                format!("keep: holds block 19731 of 1d1w {day}"),
                "destroy: block 19731 of 1d1w is held by offsite1-20240109100000; \
                 block 2818 of 1w1m is held by offsite1-20240105020000"
                    .to_string(),
                format!("keep: holds block 19732 of 1d1w {day}"),
                "keep: one of the last 2".to_string(),
                "keep: one of the last 2; protected (newest)".to_string(),
            ]
        );
    }

    #[test]
    fn reasons_for_expired_no_rules_and_few_snapshots() {
        let s = Schedule::parse("1,1d1w").unwrap();
        let names: Vec<String> = ["old", "new", "newer"].map(String::from).to_vec();
        let now = 100 * 86400;
        let times = [now - 8 * 86400, now - 3600, now - 60];
        let v = s.explain(&times, &[false, false, true], now);
        let t = timeline(&s, now, &names, &times, &v);
        assert_eq!(reason(&t, 0), "destroy: older than every rule's TTL");
        assert_eq!(
            reason(&t, 1),
            "keep: holds block 99 of 1d1w (Keep every 1 day, delete after 1 week.)"
        );
        assert_eq!(reason(&t, 2), "keep: one of the last 1; protected (newest)");

        let s = Schedule::parse("1").unwrap();
        let v = s.explain(&times, &[false, false, true], now);
        let t = timeline(&s, now, &names, &times, &v);
        assert_eq!(
            reason(&t, 0),
            "destroy: not one of the last 1, and the schedule has no rules"
        );
        let s = Schedule::parse("0").unwrap();
        let v = s.explain(&times, &[false, true, false], now);
        let t = timeline(&s, now, &names, &times, &v);
        assert_eq!(
            reason(&t, 2),
            "destroy: the schedule keeps only the protected"
        );
        assert_eq!(reason(&t, 1), "keep: protected");

        let s = Schedule::parse("5,1d1w").unwrap();
        let v = s.explain(&times, &[false, false, true], now);
        let t = timeline(&s, now, &names, &times, &v);
        assert_eq!(reason(&t, 0), "keep: one of the last 5 (there are only 3)");
    }

    /// Times out of order (a clock that went back) still find the holder.
    #[test]
    fn holder_found_when_times_are_out_of_order() {
        let s = Schedule::parse("1d1w").unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let now = 100 * 86400;
        let times = [now - 3600, now - 7200, now - 60];
        let v = s.explain(&times, &[false, false, true], now);
        let t = timeline(&s, now, &names, &times, &v);
        assert_eq!(t.holder(86400, 99), Some(0));
        assert_eq!(reason(&t, 1), "destroy: block 99 of 1d1w is held by a");
        assert_eq!(t.holder(86400, 98), None);
        assert_eq!(t.holder(3600, 99), None, "no rule of that period");
    }

    #[test]
    fn labels_and_durations() {
        let s = Schedule::parse("10,1d1w,5min1h,1m1y").unwrap();
        assert_eq!(rule_labels(&s), vec!["1d1w", "5min1h", "1m1y"]);
        assert_eq!(
            rule_labels(&Schedule::parse("0").unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(human_duration(604_800), "1 week");
        assert_eq!(human_duration(31_557_600), "1 year");
        assert_eq!(human_duration(300), "5 minutes");
        assert_eq!(human_duration(90), "90 seconds");
        assert_eq!(human_duration(2 * 86_400), "2 days");
        assert_eq!(utc(1_704_888_000), "2024-01-10 12:00:00");
        assert_eq!(utc(i64::MAX), format!("@{}", i64::MAX));
    }

    /// The whole --explain text of the worked example: each rule's blocks in
    /// its TTL and their holders, as the reference's table has them.
    #[test]
    fn explain_of_the_worked_example() {
        let (s, now, names, times, verdicts) = worked_example();
        let t = timeline(&s, now, &names, &times, &verdicts);
        let want = "\
tank/a: 12 snapshots, keep 8, destroy 4
  schedule 2,1d1w,1w1m, now 2024-01-10 12:00:00 UTC (1704888000)
    Keep the last 2 snapshots.
    Keep every 1 day, delete after 1 week.
    Keep every 1 week, delete after 1 month.

  1d1w: blocks of 1 day (counted from 1970-01-01), kept for 1 week: since 2024-01-03 12:00:00
    blocks 19725-19726: 2 blocks without a snapshot
    block 19727    2024-01-05 00:00:00  held by offsite1-20240105020000 (2024-01-05 02:00:00); 1 other in the block
    blocks 19728-19729: 2 blocks without a snapshot
    block 19730    2024-01-08 00:00:00  held by offsite1-20240108060000 (2024-01-08 06:00:00)
    block 19731    2024-01-09 00:00:00  held by offsite1-20240109100000 (2024-01-09 10:00:00); 1 other in the block
    block 19732    2024-01-10 00:00:00  held by offsite1-20240110003000 (2024-01-10 00:30:00); 2 others in the block

  1w1m: blocks of 1 week (counted from 1970-01-01), kept for 1 month: since 2023-12-11 12:00:00
    block 2814     2023-12-07 00:00:00  -
    block 2815     2023-12-14 00:00:00  held by offsite1-20231220100000 (2023-12-20 10:00:00)
    block 2816     2023-12-21 00:00:00  -
    block 2817     2023-12-28 00:00:00  held by offsite1-20231228090000 (2023-12-28 09:00:00); 2 others in the block
    block 2818     2024-01-04 00:00:00  held by offsite1-20240105020000 (2024-01-05 02:00:00); 7 others in the block

  last 2: offsite1-20240110060000, offsite1-20240110110000
  protected: offsite1-20240110110000 (newest)

  snapshots, oldest first:
    keep     2023-12-20 10:00:00  offsite1-20231220100000  holds block 2815 of 1w1m
    keep     2023-12-28 09:00:00  offsite1-20231228090000  holds block 2817 of 1w1m
    destroy  2023-12-28 21:00:00  offsite1-20231228210000  block 2817 of 1w1m held by offsite1-20231228090000; too old for 1d1w
    destroy  2024-01-03 08:00:00  offsite1-20240103080000  block 2817 of 1w1m held by offsite1-20231228090000; too old for 1d1w
    keep     2024-01-05 02:00:00  offsite1-20240105020000  holds block 19727 of 1d1w; holds block 2818 of 1w1m
    destroy  2024-01-05 23:00:00  offsite1-20240105230000  block 19727 of 1d1w held by offsite1-20240105020000; block 2818 of 1w1m held by offsite1-20240105020000
    keep     2024-01-08 06:00:00  offsite1-20240108060000  holds block 19730 of 1d1w
    keep     2024-01-09 10:00:00  offsite1-20240109100000  holds block 19731 of 1d1w
    destroy  2024-01-09 18:00:00  offsite1-20240109180000  block 19731 of 1d1w held by offsite1-20240109100000; block 2818 of 1w1m held by offsite1-20240105020000
    keep     2024-01-10 00:30:00  offsite1-20240110003000  holds block 19732 of 1d1w
    keep     2024-01-10 06:00:00  offsite1-20240110060000  one of the last 2
    keep     2024-01-10 11:00:00  offsite1-20240110110000  one of the last 2; protected (newest)
";
        assert_eq!(explain(&t), want);
    }

    /// Rules of one period share their blocks: the shorter rule's lane says
    /// when its block is held for the longer one.
    #[test]
    fn explain_shows_shared_blocks() {
        let s = Schedule::parse("1d1w,1d2w").unwrap();
        let names: Vec<String> = ["old", "new"].map(String::from).to_vec();
        let now = 100 * 86400 + 43200;
        let times = [now - 7 * 86400 - 3600, now - 7 * 86400 + 3600];
        let v = s.explain(&times, &[false, true], now);
        let t = timeline(&s, now, &names, &times, &v);
        let text = explain(&t);
        assert!(
            text.contains("    block 93       1970-04-04 00:00:00  held by old (1970-04-04 11:00:00) for 1d2w; 1 other in the block\n"),
            "{text}"
        );
        // The newer one is young enough for 1d1w, but the block is taken.
        assert!(
            text.contains("    keep     1970-04-04 13:00:00  new  protected (newest)\n"),
            "{text}"
        );
    }

    #[test]
    fn explain_without_snapshots() {
        let s = Schedule::parse("10,1d1w").unwrap();
        let t = Timeline {
            dataset: "",
            schedule: &s,
            now: 0,
            names: &[],
            times: &[],
            verdicts: &[],
        };
        assert_eq!(
            explain(&t),
            "snapshots: 0 snapshots, keep 0, destroy 0\n  \
             schedule 10,1d1w, now 1970-01-01 00:00:00 UTC (0)\n    \
             Keep the last 10 snapshots.\n    \
             Keep every 1 day, delete after 1 week.\n"
        );
    }
}
