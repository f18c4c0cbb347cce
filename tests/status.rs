//! zab-status and the metrics on real OpenZFS: after a backup the check is
//! OK; the same datasets seen from later (`--now`) are a WARNING, then
//! CRITICAL; a target that cannot be listed is UNKNOWN. The records carry
//! the ages, the bytes of zab-send's last run and its last success (from
//! its state file). zab-send's `--metrics` and the wrapper's `--metrics`
//! and `--summary` after real runs, the file checked by the strict parser
//! of the text format.

use zab_core::metrics::{parse, Sample};
use zab_core::record::Health;
use zab_tests::{Lab, Ns, Out, WRAPPER};

use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "status_nagios_fresh_stale_unknown",
        nagios_fresh_stale_unknown,
    ),
    (
        "status_wrapper_metrics_and_summary",
        wrapper_metrics_and_summary,
    ),
];

const HOUR: i64 = 3600;

/// A fresh namespace with `zab-a/NAME` (selected) and its children `a`
/// and `b`, `zab-t/NAME` empty, and no state file of the backup.
fn fresh(lab: &Lab, test: &str) -> Ns {
    let ns = Ns::new(test);
    lab.sh(&format!(
        "set -e; for d in {a} {t}; do zfs destroy -r $d 2>/dev/null || true; done; \
         zfs create -p -o {p}=true {a}; zfs create {a}/a; zfs create {a}/b; zfs create -p {t}; \
         rm -f /var/lib/zab/{b}@*.last-run.json",
        a = ns.ds("zab-a", ""),
        t = ns.ds("zab-t", ""),
        p = ns.prop(),
        b = ns.backup(),
    ));
    lab.fill(&ns.ds("zab-a", "a"), 64);
    ns
}

/// The guest's clock.
fn guest_now(lab: &Lab) -> i64 {
    lab.sh("date +%s").trim().parse().unwrap()
}

/// The metrics file at `path` in the guest, parsed strictly.
fn metrics(lab: &Lab, path: &str) -> Vec<Sample> {
    let text = lab.sh(&format!("cat {path}"));
    parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// The value of metric `name`, which must be there once with `backup="B"`.
#[track_caller]
fn value(samples: &[Sample], name: &str, b: &str) -> f64 {
    let found: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "{name}: {samples:?}");
    assert_eq!(found[0].labels, [("backup".to_string(), b.to_string())]);
    found[0].value
}

fn nagios_fresh_stale_unknown(lab: &Lab) {
    let ns = fresh(lab, "status_nagios");
    let b = ns.backup();
    let t = ns.ds("zab-t", "");
    let prom = format!("/root/{b}.prom");
    lab.sh(&format!(
        "set -e; zab-select {b} | zab-snap {b} | zab-send --metrics {prom} {b} {t} >/dev/null"
    ));
    let now = guest_now(lab);

    // zab-send's own metrics: what it knows.
    let m = metrics(lab, &prom);
    assert_eq!(value(&m, "zab_run_success", b), 1.0);
    assert_eq!(value(&m, "zab_run_datasets_selected", b), 3.0);
    assert_eq!(value(&m, "zab_run_datasets_sent", b), 3.0);
    assert_eq!(value(&m, "zab_run_datasets_failed", b), 0.0);
    assert!(value(&m, "zab_run_sent_bytes", b) > 64.0 * 1024.0);
    let end = value(&m, "zab_run_end_timestamp_seconds", b);
    assert_eq!(value(&m, "zab_last_success_timestamp_seconds", b), end);
    assert!(!m.iter().any(|s| s.name == "zab_run_snapshots_created"));
    lab.sh(&format!("rm -f {prom}"));

    let check =
        |args: &str| -> Out { lab.ssh(&format!("zab-select {b} | zab-status {args} {b} {t}")) };
    let first_line = |o: &Out| o.stdout.lines().next().unwrap_or_default().to_string();

    // Fresh: OK (0), one line.
    let o = check("--warn 1d --crit 2d");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
    let line = first_line(&o);
    assert!(
        line.starts_with("ZAB OK - 3 datasets, newest target snapshot "),
        "{line}"
    );
    assert!(
        line.contains(" | datasets=3 warning=0 critical=0 unknown=0 target_age="),
        "{line}"
    );

    // Seen 30 hours later: WARNING (1); 3 days later: CRITICAL (2), naming
    // the datasets.
    let o = check(&format!("--warn 1d --crit 2d --now {}", now + 30 * HOUR));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        first_line(&o).starts_with("ZAB WARNING - 3 datasets"),
        "{o:?}"
    );
    let o = check(&format!("--warn 1d --crit 2d --now {}", now + 72 * HOUR));
    assert_eq!(o.code, 2, "{o:?}");
    let line = first_line(&o);
    assert!(line.starts_with("ZAB CRITICAL - 3 datasets"), "{line}");
    assert!(
        line.contains(&format!(
            "{t}/{}/a: newest target snapshot 3d ago (critical after 2d)",
            ns.ds("zab-a", "")
        )),
        "{line}"
    );

    // One stale dataset among fresh ones: a new snapshot of b only, sent;
    // at 30 hours later a is stale (WARNING with --warn 1d) and b is not.
    let a = ns.ds("zab-a", "a");
    lab.sh(&format!(
        "set -e; zfs set {p}=false {a}; \
         zab-select {b} | zab-snap --allow-empty --now {later} {b} | zab-send --now {later} {b} {t} >/dev/null; \
         zfs inherit {p} {a}",
        p = ns.prop(),
        later = now + 30 * HOUR - 60,
    ));
    let o = check(&format!("--now {}", now + 30 * HOUR));
    assert_eq!(o.code, 0, "{o:?}");
    let ds = o.datasets();
    let health: Vec<(String, Health)> = ds
        .iter()
        .map(|d| (d.name.clone(), d.status.as_ref().unwrap().health))
        .collect();
    // Without thresholds only a missing backup or a pending token counts.
    assert!(health.iter().all(|(_, h)| *h == Health::Ok), "{health:?}");
    let sa = ds
        .iter()
        .find(|d| d.name == a)
        .unwrap()
        .status
        .clone()
        .unwrap();
    assert_eq!(sa.target, format!("{t}/{a}"));
    assert!(
        (30 * HOUR..30 * HOUR + 600).contains(&sa.target_age.unwrap()),
        "{sa:?}"
    );
    assert_eq!(sa.source_snapshot, sa.target_snapshot);
    assert!(sa.last_run_bytes.unwrap() > 64 * 1024, "{sa:?}");
    assert!(sa.last_success_age.unwrap() >= 30 * HOUR - 600, "{sa:?}");
    assert!(!sa.resume_token);
    let sb = ds
        .iter()
        .find(|d| d.name.ends_with("/b"))
        .unwrap()
        .status
        .clone()
        .unwrap();
    assert_eq!(sb.target_age, Some(60), "{sb:?}");
    // zab-send's run ends at its --now plus the seconds it took (the
    // snapshot's time is --now too): 60 s before, less the run's length.
    assert!((0..=60).contains(&sb.last_success_age.unwrap()), "{sb:?}");
    let o = check(&format!("--warn 1d --now {}", now + 30 * HOUR));
    assert_eq!(o.code, 1, "{o:?}");
    let line = first_line(&o);
    assert!(
        line.contains(&format!("{t}/{a}: newest target snapshot 30h ago")),
        "{line}"
    );
    assert!(
        !line.contains(&format!("{t}/{}: ", ns.ds("zab-a", "b"))),
        "{line}"
    );

    // The table, one line per dataset after the heading.
    let o = check("--human");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("DATASET"), "{}", o.stdout);
    assert_eq!(o.stdout.lines().count(), 4, "{}", o.stdout);

    // A target that cannot be listed: UNKNOWN (3), said on stdout.
    let o = lab.ssh(&format!(
        "zab-select {b} | zab-status --crit 2d {b} {t}/no-such-dataset"
    ));
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        first_line(&o).starts_with("ZAB UNKNOWN - zab-status: "),
        "{o:?}"
    );
    // A bad option in a check is UNKNOWN too; without the pipe as well.
    let o = lab.ssh(&format!("zab-status --crit 2x {b} {t} </dev/null"));
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        first_line(&o).starts_with("ZAB UNKNOWN - zab-status: "),
        "{o:?}"
    );
    let o = lab.ssh(&format!("zab-status --crit 2d {b} {t} </dev/null"));
    assert_eq!(o.code, 3, "{o:?}");
    assert!(o.stderr.contains("no records on stdin"), "{o:?}");
}

fn wrapper_metrics_and_summary(lab: &Lab) {
    let ns = fresh(lab, "status_wrapper");
    let b = ns.backup();
    let t = ns.ds("zab-t", "");
    let prom = format!("/root/{b}.prom");
    lab.sh(&format!("rm -f {prom}"));
    let o = lab.ssh(&format!(
        "{WRAPPER} --metrics {prom} --summary --allow-empty --keep-source 1 {b} {t}"
    ));
    assert_eq!(o.code, 0, "{o:?}");
    let summary: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("Summary: "))
        .collect();
    assert_eq!(summary.len(), 1, "{}", o.stderr);
    assert!(
        summary[0].starts_with("Summary: 3 datasets (0 failed), 3 transfers, "),
        "{}",
        summary[0]
    );
    assert!(
        summary[0].contains(" bytes, 3 snapshots created, 0 destroyed, "),
        "{}",
        summary[0]
    );
    let m = metrics(lab, &prom);
    assert_eq!(value(&m, "zab_run_snapshots_created", b), 3.0);
    assert_eq!(value(&m, "zab_run_snapshots_destroyed", b), 0.0);
    assert_eq!(value(&m, "zab_run_transfers", b), 3.0);
    assert!(value(&m, "zab_run_sent_bytes", b) > 64.0 * 1024.0);
    let first = value(&m, "zab_last_success_timestamp_seconds", b);

    // The next run thins the source to one snapshot per dataset: 3 destroyed.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = lab.ssh(&format!(
        "{WRAPPER} --metrics {prom} --allow-empty --keep-source 1 {b} {t}"
    ));
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (0, ""),
        "quiet without --summary"
    );
    let m = metrics(lab, &prom);
    assert_eq!(value(&m, "zab_run_snapshots_destroyed", b), 3.0);
    assert!(value(&m, "zab_last_success_timestamp_seconds", b) > first);
    // The guest's own temporary files are not left behind.
    assert_eq!(
        lab.sh(&format!("ls -a /root | grep -c '^[.]{b}[.]prom' || true"))
            .trim(),
        "0"
    );
    lab.sh(&format!("rm -f {prom}"));
}
