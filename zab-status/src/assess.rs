//! Pure: how one dataset stands (its `status` object), and the whole
//! run's Nagios line. Every age is "now" minus a time: a snapshot's is
//! the one in its name (the time zab-thin thins by), the last success's
//! is zab-send's state.

use zab_core::naming::SnapshotFormat;
use zab_core::record::{Health, SendStatus, StatusOutcome};
use zab_core::state::DatasetState;
use zab_core::zfs::Snapshot;

/// The thresholds of a Nagios check, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub warn: Option<i64>,
    pub crit: Option<i64>,
}

/// What is known of one dataset.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The target dataset.
    pub target: &'a str,
    /// The source's snapshots, oldest first.
    pub source: &'a [Snapshot],
    /// The target's snapshots; None when there is no target dataset.
    pub on_target: Option<&'a [Snapshot]>,
    /// The target dataset holds a resume token.
    pub token: bool,
    /// zab-send's state of the target dataset.
    pub state: Option<&'a DatasetState>,
}

/// The newest of our snapshots in `snaps` (by the time in its name), and
/// that time.
fn newest<'a>(snaps: &'a [Snapshot], format: &SnapshotFormat) -> Option<(&'a str, i64)> {
    snaps
        .iter()
        .filter_map(|s| format.parse(&s.name).map(|t| (s.name.as_str(), t)))
        .max_by_key(|&(_, t)| t)
}

/// An age in words: `45s`, `12min`, `5h`, `3d`, `2d7h`.
pub fn words(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}min", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s if s % 86400 < 3600 => format!("{}d", s / 86400),
        s => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// `facts`' status at `now` under `t`.
pub fn assess(facts: &Facts, format: &SnapshotFormat, now: i64, t: Thresholds) -> StatusOutcome {
    let src = newest(facts.source, format);
    let tgt = facts.on_target.and_then(|s| newest(s, format));
    let age = |at: i64| now - at;
    let mut problems: Vec<(Health, String)> = Vec::new();
    match (facts.on_target, tgt) {
        (None, _) => problems.push((Health::Critical, "no target dataset".into())),
        (Some(_), None) => {
            problems.push((Health::Critical, "no snapshot of ours on the target".into()))
        }
        (Some(_), Some((_, at))) => {
            let a = age(at);
            let over = |limit: Option<i64>| limit.filter(|&l| a > l);
            if let Some(c) = over(t.crit) {
                problems.push((
                    Health::Critical,
                    format!(
                        "newest target snapshot {} ago (critical after {})",
                        words(a),
                        words(c)
                    ),
                ));
            } else if let Some(w) = over(t.warn) {
                problems.push((
                    Health::Warning,
                    format!(
                        "newest target snapshot {} ago (warning after {})",
                        words(a),
                        words(w)
                    ),
                ));
            }
        }
    }
    if facts.token {
        problems.push((
            Health::Warning,
            "an interrupted receive is pending (resume token)".into(),
        ));
    }
    if facts.state.is_some_and(|s| s.status == SendStatus::Failed) {
        problems.push((Health::Warning, "zab-send's last run failed it".into()));
    }
    StatusOutcome {
        target: facts.target.to_string(),
        health: problems.iter().map(|(h, _)| *h).max().unwrap_or(Health::Ok),
        source_snapshot: src.map(|(n, _)| n.to_string()),
        source_age: src.map(|(_, at)| age(at)),
        target_snapshot: tgt.map(|(n, _)| n.to_string()),
        target_age: tgt.map(|(_, at)| age(at)),
        last_success_age: facts.state.and_then(|s| s.last_success).map(age),
        last_transfer_age: facts.state.and_then(|s| s.last_transfer).map(age),
        last_run_bytes: facts.state.map(|s| s.bytes),
        resume_token: facts.token,
        problems: problems.into_iter().map(|(_, p)| p).collect(),
    }
}

/// The Nagios exit code of a health.
pub fn code(h: Health) -> u8 {
    match h {
        Health::Ok => 0,
        Health::Warning => 1,
        Health::Critical => 2,
        Health::Unknown => 3,
    }
}

/// The Nagios word of a health.
fn word(h: Health) -> &'static str {
    match h {
        Health::Ok => "OK",
        Health::Warning => "WARNING",
        Health::Critical => "CRITICAL",
        Health::Unknown => "UNKNOWN",
    }
}

/// The check's line and exit code, from each dataset's name and status
/// (None: it failed upstream, so it is unknown):
/// `ZAB OK - 2 datasets, newest target snapshot 1h ago | datasets=2 …`. The
/// age said is the largest of the datasets' target ages: the dataset whose
/// backup is oldest. Perfdata: the count of each health, the largest
/// target and source ages (with the thresholds), and the bytes of the last
/// run.
pub fn nagios(datasets: &[(&str, Option<&StatusOutcome>)], t: Thresholds) -> (String, u8) {
    let health = |s: Option<&StatusOutcome>| s.map_or(Health::Unknown, |s| s.health);
    let overall = datasets
        .iter()
        .map(|(_, s)| health(*s))
        .max()
        .unwrap_or(Health::Unknown);
    let count = |h: Health| datasets.iter().filter(|(_, s)| health(*s) == h).count();
    let max = |f: fn(&StatusOutcome) -> Option<i64>| {
        datasets.iter().filter_map(|(_, s)| s.and_then(f)).max()
    };
    let oldest = max(|s| s.target_age);
    let bytes: u64 = datasets
        .iter()
        .filter_map(|(_, s)| s.and_then(|s| s.last_run_bytes))
        .sum();
    let mut text = match datasets.len() {
        0 => "no dataset selected".to_string(),
        n => format!("{n} datasets"),
    };
    if let Some(a) = oldest {
        text.push_str(&format!(", newest target snapshot {} ago", words(a)));
    }
    let bad: Vec<String> = datasets
        .iter()
        .filter(|(_, s)| health(*s) != Health::Ok)
        .map(|(name, s)| match s {
            None => format!("{name}: failed upstream"),
            Some(s) => format!("{}: {}", s.target, s.problems.join(", ")),
        })
        .collect();
    if !bad.is_empty() {
        text.push_str(": ");
        text.push_str(&bad.join("; "));
    }
    let limit = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let perf = format!(
        "datasets={} warning={} critical={} unknown={} target_age={}s;{};{};0 source_age={}s bytes={}B",
        datasets.len(),
        count(Health::Warning),
        count(Health::Critical),
        count(Health::Unknown),
        limit(oldest),
        limit(t.warn),
        limit(t.crit),
        limit(max(|s| s.source_age)),
        bytes
    );
    (
        format!("ZAB {} - {text} | {perf}", word(overall)),
        code(overall),
    )
}

/// The line of a check that could not be made (exit 3).
pub fn unknown(why: &str) -> String {
    format!("ZAB UNKNOWN - {}", why.replace(['\n', '|'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;
    const NOW: i64 = 1_800_000_000;

    fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "b", true).expect("format")
    }

    /// Our snapshot taken `hours_ago`.
    fn ours(hours_ago: i64, txg: u64) -> Snapshot {
        let at = chrono::DateTime::from_timestamp(NOW - hours_ago * HOUR, 0).expect("time");
        Snapshot {
            name: fmt().name_at(at),
            createtxg: txg,
            guid: txg,
            userrefs: None,
        }
    }

    fn other(txg: u64) -> Snapshot {
        Snapshot {
            name: format!("manual{txg}"),
            createtxg: txg,
            guid: txg,
            userrefs: None,
        }
    }

    const T: Thresholds = Thresholds {
        warn: Some(24 * HOUR),
        crit: Some(48 * HOUR),
    };

    fn facts<'a>(src: &'a [Snapshot], tgt: Option<&'a [Snapshot]>) -> Facts<'a> {
        Facts {
            target: "t/p/a",
            source: src,
            on_target: tgt,
            token: false,
            state: None,
        }
    }

    #[test]
    fn ages_are_of_the_newest_of_ours_by_name() {
        // A newer snapshot not of ours (created later) does not count.
        let src = [ours(30, 1), ours(2, 2), other(3)];
        let tgt = [ours(30, 1), other(4)];
        let s = assess(&facts(&src, Some(&tgt)), &fmt(), NOW, T);
        assert_eq!(s.source_age, Some(2 * HOUR));
        assert_eq!(s.target_age, Some(30 * HOUR));
        assert_eq!(s.target_snapshot, Some(ours(30, 1).name));
        assert_eq!(s.health, Health::Warning);
        assert_eq!(
            s.problems,
            ["newest target snapshot 30h ago (warning after 24h)"]
        );
    }

    #[test]
    fn each_health() {
        let fresh = [ours(1, 1)];
        let stale = [ours(50, 1)];
        let h = |tgt: Option<&[Snapshot]>, t: Thresholds| {
            assess(&facts(&fresh, tgt), &fmt(), NOW, t).health
        };
        assert_eq!(h(Some(&fresh), T), Health::Ok);
        assert_eq!(h(Some(&stale), T), Health::Critical);
        assert_eq!(h(Some(&stale), Thresholds::default()), Health::Ok);
        assert_eq!(
            h(
                Some(&stale),
                Thresholds {
                    warn: Some(HOUR),
                    crit: None
                }
            ),
            Health::Warning
        );
        assert_eq!(h(Some(&[other(1)]), T), Health::Critical, "none of ours");
        assert_eq!(h(None, T), Health::Critical, "no target dataset");
        // Exactly at the limit is still within it.
        let at = [ours(24, 1)];
        assert_eq!(h(Some(&at), T), Health::Ok);
        let mut f = facts(&fresh, Some(&fresh));
        f.token = true;
        let s = assess(&f, &fmt(), NOW, T);
        assert_eq!((s.health, s.resume_token), (Health::Warning, true));
    }

    #[test]
    fn the_state_gives_the_last_success_and_bytes() {
        let fresh = [ours(1, 1)];
        let st = DatasetState {
            source: "p/a".into(),
            host: None,
            last_run: NOW - 60,
            status: SendStatus::Failed,
            bytes: 512,
            last_success: Some(NOW - 3 * HOUR),
            last_transfer: Some(NOW - 5 * HOUR),
        };
        let mut f = facts(&fresh, Some(&fresh));
        f.state = Some(&st);
        let s = assess(&f, &fmt(), NOW, T);
        assert_eq!(
            (s.last_success_age, s.last_transfer_age, s.last_run_bytes),
            (Some(3 * HOUR), Some(5 * HOUR), Some(512))
        );
        assert_eq!(s.health, Health::Warning);
        assert_eq!(s.problems, ["zab-send's last run failed it"]);
    }

    #[test]
    fn the_nagios_line_and_code() {
        let fresh = [ours(1, 1)];
        let stale = [ours(50, 1)];
        let ok = assess(&facts(&fresh, Some(&fresh)), &fmt(), NOW, T);
        let (line, code) = nagios(&[("p/a", Some(&ok)), ("p/b", Some(&ok))], T);
        assert_eq!(code, 0);
        assert_eq!(
            line,
            "ZAB OK - 2 datasets, newest target snapshot 60min ago | datasets=2 warning=0 \
             critical=0 unknown=0 target_age=3600s;86400;172800;0 source_age=3600s bytes=0B"
        );
        let crit = assess(&facts(&fresh, Some(&stale)), &fmt(), NOW, T);
        let (line, code) = nagios(&[("p/a", Some(&ok)), ("p/b", Some(&crit))], T);
        assert_eq!(code, 2);
        assert!(
            line.starts_with(
                "ZAB CRITICAL - 2 datasets, newest target snapshot 2d2h ago: t/p/a: newest \
                 target snapshot 2d2h ago (critical after 2d) | "
            ),
            "{line}"
        );
        let (line, code) = nagios(&[("p/a", Some(&ok)), ("p/c", None)], T);
        assert_eq!(code, 3);
        assert!(line.contains("p/c: failed upstream"), "{line}");
        let (line, code) = nagios(&[], T);
        assert_eq!(code, 3);
        assert!(
            line.starts_with("ZAB UNKNOWN - no dataset selected"),
            "{line}"
        );
        assert_eq!(unknown("a|b\nc"), "ZAB UNKNOWN - a b c");
    }
}
