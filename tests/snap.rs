//! zab-snap on real OpenZFS: atomic snapshots per pool, the --min-change
//! threshold, hooks, --test, failures, and local and ssh runs.

use zab_core::host::quote_argv;
use zab_core::record::{Dataset, SnapStatus};
use zab_tests::{Lab, Ns, Out, ALIAS};

use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "snap_atomic_per_pool_and_batched",
        atomic_per_pool_and_batched,
    ),
    ("snap_min_change_threshold", min_change_threshold),
    ("snap_allow_empty", allow_empty),
    ("snap_hook_order", hook_order),
    (
        "snap_pre_failure_skips_snapshot",
        pre_failure_skips_snapshot,
    ),
    ("snap_post_failure_is_an_error", post_failure_is_an_error),
    ("snap_failing_pool_others_go_on", failing_pool_others_go_on),
    ("snap_test_mode_changes_nothing", test_mode_changes_nothing),
    ("snap_over_ssh", over_ssh),
    ("snap_refuses_bad_input", refuses_bad_input),
    ("snap_quiet_cache", quiet_cache),
];

/// `zab-select B | zab-snap B ARGS…` inside the guest: zab-snap's status,
/// records and stderr.
fn snap(lab: &Lab, ns: &Ns, args: &[&str]) -> Out {
    let mut argv = vec!["zab-snap", ns.backup()];
    argv.extend_from_slice(args);
    lab.ssh(&format!(
        "zab-select {} | {}",
        ns.backup(),
        quote_argv(&argv)
    ))
}

/// Every snapshot under `roots`: (full name, createtxg), by name.
fn snapshots(lab: &Lab, roots: &[&str]) -> Vec<(String, u64)> {
    let out = lab.sh(&format!(
        "zfs list -H -p -t snapshot -o name,createtxg -r {}",
        quote_argv(roots)
    ));
    let mut v: Vec<(String, u64)> = out
        .lines()
        .map(|l| {
            let (n, t) = l.split_once('\t').unwrap();
            (n.to_string(), t.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn status_of(ds: &[Dataset], name: &str) -> SnapStatus {
    let d = ds
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no record for {name}"));
    d.snapshot
        .as_ref()
        .unwrap_or_else(|| panic!("{name} has no snapshot field"))
        .status
}

/// zab-snap names snapshots to the second. A run after the first of a test
/// passes `--now NOW+n` (hidden, for tests) rather than waiting for the next
/// second: 2100-01-01 00:00:00 UTC and after, never the clock's.
const NOW: u64 = 4_102_444_800;

/// `--now NOW+n`.
fn now(n: u64) -> String {
    format!("--now={}", NOW + n)
}

fn atomic_per_pool_and_batched(lab: &Lab) {
    let ns = Ns::new("snap_atomic");
    let p = ns.prop();
    let (a, b) = (ns.ds("zab-a", ""), ns.ds("zab-b", ""));
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {a}
        zfs create {a}/x
        zfs create {a}/x/y
        zfs create -V 8M {a}/vol
        zfs create -o {p}=true {b}
        zfs create {b}/z"
    ));
    let all = [
        a.clone(),
        format!("{a}/vol"),
        format!("{a}/x"),
        format!("{a}/x/y"),
        b.clone(),
        format!("{b}/z"),
    ];

    // First run: nothing of ours yet, so every dataset is snapshotted, with
    // one listing and one `zfs snapshot` per pool (no written@ query).
    let out = snap(
        lab,
        &ns,
        &[
            "--debug",
            "--set-snapshot-properties",
            "com.zab:why=lab run,com.zab:n=1",
        ],
    )
    .ok();
    let ds = out.datasets();
    assert_eq!(ds.len(), 6);
    let name = ds[0].snapshot.as_ref().unwrap().name.clone();
    assert!(name.starts_with(&format!("{}-", ns.backup())), "{name}");
    for d in &ds {
        let s = d.snapshot.as_ref().unwrap();
        assert_eq!(
            (s.status, &s.name),
            (SnapStatus::Created, &name),
            "{}",
            d.name
        );
        assert_eq!(s.previous, None);
    }
    let end = out.end();
    assert_eq!(end.extra["created"], 6);
    assert_eq!(end.extra["snapshot"], name.as_str());
    let calls = out.zfs_calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(calls[0].starts_with("zfs list "));
    assert!(calls[1..].iter().all(|c| c.starts_with("zfs snapshot ")));

    // --set-snapshot-properties: set on every new snapshot, in the same command.
    let props = lab.sh(&format!(
        "zfs get -H -o value com.zab:why,com.zab:n {a}/x/y@{name} {b}@{name}"
    ));
    assert_eq!(props, "lab run\n1\nlab run\n1\n");
    // Atomic: one createtxg per pool, shared by all of that pool's datasets.
    let snaps = snapshots(lab, &[&a, &b]);
    let want: Vec<String> = {
        let mut w: Vec<String> = all.iter().map(|d| format!("{d}@{name}")).collect();
        w.sort();
        w
    };
    assert_eq!(snaps.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), want);
    for pool in ["zab-a", "zab-b"] {
        let txgs: Vec<u64> = snaps
            .iter()
            .filter(|s| s.0.starts_with(&format!("{pool}/")))
            .map(|s| s.1)
            .collect();
        assert!(txgs.len() >= 2);
        assert!(txgs.iter().all(|&t| t == txgs[0]), "{pool}: {snaps:?}");
    }

    // Second run: only x changed. A foreign snapshot on y is newer than ours
    // and nothing was written before or after it. One listing in the fast
    // columns, one `zfs get` of written@<ours> on every dataset, one snapshot.
    // Named after --now, not the clock.
    lab.sh(&format!(
        "set -e; dd if=/dev/urandom of=/{a}/x/f bs=64k count=1 2>/dev/null
        zfs snapshot {a}/x/y@manual; zpool sync zab-a"
    ));
    let out = snap(lab, &ns, &["--debug", &now(0), "--utc"]).ok();
    let ds = out.datasets();
    let second = ds[0].snapshot.as_ref().unwrap().name.clone();
    assert_eq!(second, format!("{}-21000101000000", ns.backup()));
    assert_eq!(out.end().extra["snapshot"], second.as_str());
    for d in &all {
        let want = if d == &format!("{a}/x") {
            SnapStatus::Created
        } else {
            SnapStatus::Skipped
        };
        assert_eq!(status_of(&ds, d), want, "{d}");
    }
    let calls = out.zfs_calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls[0].starts_with(
            "zfs list -H -p -t snapshot,bookmark -o name,createtxg,guid -s createtxg -d 1 "
        ),
        "{calls:#?}"
    );
    // In the records' order: zab-select's, as `zfs get` walked the pools.
    let order = format!("{a} {a}/x {a}/x/y {a}/vol {b} {b}/z");
    assert_eq!(
        calls[1],
        format!("zfs get -H -p -o name,property,value,source written@{name} {order}")
    );
    assert_eq!(calls[2], format!("zfs snapshot {a}/x@{second}"));
    let x = ds.iter().find(|d| d.name == format!("{a}/x")).unwrap();
    let real: u64 = lab
        .sh(&format!(
            "zfs get -H -p -o value written@{name} {a}/x@{second}"
        ))
        .trim()
        .parse()
        .unwrap();
    assert!(real >= 65536, "{real}");
    assert_eq!(x.snapshot.as_ref().unwrap().written, Some(real));

    // Third run: x, y and z changed. On x and y the changes were caught by a
    // foreign snapshot after ours: written@<ours> still counts them. One
    // `zfs get` asks every dataset, with the two different newest snapshots
    // of ours (x's is the second run's, the others' the first's).
    lab.sh(&format!(
        "set -e; dd if=/dev/urandom of=/{a}/x/g bs=64k count=1 2>/dev/null
        dd if=/dev/urandom of=/{a}/x/y/g bs=64k count=1 2>/dev/null
        dd if=/dev/urandom of=/{b}/z/f bs=64k count=1 2>/dev/null
        zfs snapshot {a}/x@manual {a}/x/y@manual2
        zpool sync zab-a zab-b"
    ));
    // The listing path: no quiet-run cache (snap_quiet_cache has it).
    lab.sh(&format!("rm -f {}", cache_file(&ns)));
    let out = snap(lab, &ns, &["--debug", &now(1)]).ok();
    let calls = out.zfs_calls();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    let get = &calls[1];
    assert!(
        get.starts_with("zfs get -H -p -o name,property,value,source ")
            && get.contains(&format!("written@{name}"))
            && get.contains(&format!("written@{second}"))
            && get.ends_with(&format!(" {order}")),
        "{get}"
    );
    let ds = out.datasets();
    for d in [format!("{a}/x"), format!("{a}/x/y"), format!("{b}/z")] {
        assert_eq!(status_of(&ds, &d), SnapStatus::Created, "{d}");
    }
    assert_eq!(status_of(&ds, &b), SnapStatus::Skipped);
    let x = ds.iter().find(|d| d.name == format!("{a}/x")).unwrap();
    assert_eq!(
        x.snapshot.as_ref().unwrap().previous.as_deref(),
        Some(second.as_str())
    );
}

fn min_change_threshold(lab: &Lab) {
    let ns = Ns::new("snap_minchange");
    let d = ns.ds("zab-a", "");
    lab.sh(&format!(
        "zfs create -o atime=off -o {}=true {d}",
        ns.prop()
    ));
    let first = snap(lab, &ns, &[]).ok().datasets()[0]
        .snapshot
        .clone()
        .unwrap()
        .name;
    let w: u64 = lab
        .sh(&format!(
            "set -e; dd if=/dev/urandom of=/{d}/f bs=64k count=1 2>/dev/null
            zpool sync zab-a; zfs get -H -p -o value written@{first} {d}"
        ))
        .trim()
        .parse()
        .unwrap();
    assert!(w >= 65536, "{w}");
    let count = || snapshots(lab, &[&d]).len();

    // One byte short of the threshold: skipped, and said why.
    let above = (w + 1).to_string();
    let out = snap(lab, &ns, &["--verbose", "--min-change", &above]).ok();
    let s = out.datasets()[0].snapshot.clone().unwrap();
    assert_eq!(s.status, SnapStatus::Skipped);
    assert_eq!(s.written, Some(w));
    assert_eq!(s.previous.as_deref(), Some(first.as_str()));
    assert_eq!(
        s.reason.as_deref(),
        Some(format!("{w} bytes written since {first}, below --min-change {above}").as_str())
    );
    assert!(
        out.stderr
            .contains("No changes anywhere: not creating snapshots."),
        "{}",
        out.stderr
    );
    assert_eq!(count(), 1);

    // Exactly at the threshold: taken.
    let out = snap(lab, &ns, &["--min-change", &w.to_string(), &now(0)]).ok();
    let s = out.datasets()[0].snapshot.clone().unwrap();
    assert_eq!((s.status, s.written), (SnapStatus::Created, Some(w)));
    assert_eq!(count(), 2);

    // Nothing written since: the default (1 byte) skips it.
    let out = snap(lab, &ns, &["-v", &now(1)]).ok();
    let s2 = out.datasets()[0].snapshot.clone().unwrap();
    assert_eq!(s2.status, SnapStatus::Skipped);
    assert_eq!(s2.reason, Some(format!("no changes since {}", s.name)));
    assert!(
        out.stderr
            .contains(&format!("[Source] {d}: No changes since {}", s.name)),
        "{}",
        out.stderr
    );
    assert_eq!(count(), 2);
}

fn allow_empty(lab: &Lab) {
    let ns = Ns::new("snap_empty");
    let d = ns.ds("zab-b", "");
    lab.sh(&format!("zfs create -o {}=true {d}", ns.prop()));
    snap(lab, &ns, &[]).ok();
    assert_eq!(
        status_of(&snap(lab, &ns, &[]).ok().datasets(), &d),
        SnapStatus::Skipped
    );
    let out = snap(lab, &ns, &["--allow-empty", "--debug", &now(0)]).ok();
    let s = out.datasets()[0].snapshot.clone().unwrap();
    assert_eq!(s.status, SnapStatus::Created);
    // Neither a listing nor a written@ query is needed: one zfs snapshot.
    assert_eq!((s.previous, s.written), (None, None));
    let calls = out.zfs_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(calls[0].starts_with("zfs snapshot "), "{calls:#?}");
    assert_eq!(snapshots(lab, &[&d]).len(), 2);
}

/// A hook that appends a line to the test's log in the guest.
fn note(log: &str, text: &str) -> String {
    format!("echo {text} >> {log}")
}

fn hook_order(lab: &Lab) {
    let ns = Ns::new("snap_hooks");
    let d = ns.ds("zab-a", "");
    let log = format!("/tmp/{}.log", ns.name);
    lab.sh(&format!(
        "rm -f {log}; zfs create -o {}=true {d}",
        ns.prop()
    ));
    let count = format!("$(zfs list -H -t snapshot -d 1 {d} | wc -l)");
    let pre1 = format!("echo noise on stdout; {}", note(&log, "pre1"));
    let pre2 = note(&log, &format!("pre2 {count}"));
    let post1 = note(&log, &format!("post1 {count}"));
    let post2 = note(&log, "post2");
    let out = snap(
        lab,
        &ns,
        &[
            "--pre-snapshot-cmd",
            &pre1,
            "--pre-snapshot-cmd",
            &pre2,
            "--post-snapshot-cmd",
            &post1,
            "--post-snapshot-cmd",
            &post2,
        ],
    )
    .ok();
    // Hook output never reaches the records (Out::datasets parses strictly).
    assert_eq!(status_of(&out.datasets(), &d), SnapStatus::Created);
    assert_eq!(
        lab.sh(&format!("cat {log}")),
        "pre1\npre2 0\npost1 1\npost2\n"
    );
    assert_eq!(out.stderr, "", "a successful run is quiet");

    // Nothing changed: no snapshot, so no hooks either (as upstream).
    lab.sh(&format!("rm -f {log}"));
    let out = snap(
        lab,
        &ns,
        &[
            "--pre-snapshot-cmd",
            &pre2,
            "--post-snapshot-cmd",
            &post2,
            &now(0),
        ],
    )
    .ok();
    assert_eq!(status_of(&out.datasets(), &d), SnapStatus::Skipped);
    lab.sh(&format!("test ! -e {log}"));
}

fn pre_failure_skips_snapshot(lab: &Lab) {
    let ns = Ns::new("snap_prefail");
    let d = ns.ds("zab-a", "");
    let log = format!("/tmp/{}.log", ns.name);
    lab.sh(&format!(
        "rm -f {log}; zfs create -o {}=true {d}; zfs create {d}/kid",
        ns.prop()
    ));
    let out = snap(
        lab,
        &ns,
        &[
            "--pre-snapshot-cmd",
            &note(&log, "a"),
            "--pre-snapshot-cmd",
            "echo cannot lock >&2; exit 7",
            "--pre-snapshot-cmd",
            &note(&log, "c"),
            "--post-snapshot-cmd",
            &note(&log, "p1"),
            "--post-snapshot-cmd",
            &note(&log, "p2"),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(lab.sh(&format!("cat {log}")), "a\np1\np2\n");
    assert!(snapshots(lab, &[&d]).is_empty());
    let ds = out.datasets();
    assert_eq!(ds.len(), 2);
    for x in &ds {
        assert_eq!(x.snapshot.as_ref().unwrap().status, SnapStatus::Failed);
        let e = x.error.as_deref().unwrap();
        assert!(
            e.contains("pre-snapshot-cmd") && e.contains("exit 7") && e.contains("cannot lock"),
            "{e}"
        );
    }
    assert_eq!(out.end().failed, 2);
    assert!(out.stderr.starts_with("zab-snap: "), "{}", out.stderr);
    assert!(out.stderr.contains("exit 7"), "{}", out.stderr);
}

fn post_failure_is_an_error(lab: &Lab) {
    let ns = Ns::new("snap_postfail");
    let d = ns.ds("zab-b", "");
    let log = format!("/tmp/{}.log", ns.name);
    lab.sh(&format!(
        "rm -f {log}; zfs create -o {}=true {d}",
        ns.prop()
    ));
    let out = snap(
        lab,
        &ns,
        &[
            "--post-snapshot-cmd",
            "exit 5",
            "--post-snapshot-cmd",
            &note(&log, "p2"),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    // The snapshot stands, the other post command ran, the failure is said.
    assert_eq!(status_of(&out.datasets(), &d), SnapStatus::Created);
    assert_eq!(out.end().failed, 0);
    assert_eq!(out.end().extra["hook_failures"], 1);
    assert_eq!(lab.sh(&format!("cat {log}")), "p2\n");
    assert!(
        out.stderr
            .contains("post-snapshot-cmd \"exit 5\" failed on local: exit 5"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshots(lab, &[&d]).len(), 1);
}

fn failing_pool_others_go_on(lab: &Lab) {
    let ns = Ns::new("snap_poolfail");
    let p = ns.prop();
    let (a, b) = (ns.ds("zab-a", ""), ns.ds("zab-b", ""));
    let log = format!("/tmp/{}.log", ns.name);
    lab.sh(&format!(
        "set -e; rm -f {log}
        zfs create -o {p}=true {a}
        zfs create -o {p}=true {b}
        zfs create {b}/gone"
    ));
    // The dataset disappears after the listing: zab-b's snapshot fails as a
    // whole, and zab-a's is still taken.
    let out = snap(
        lab,
        &ns,
        &[
            "--pre-snapshot-cmd",
            &format!("zfs destroy {b}/gone"),
            "--post-snapshot-cmd",
            &note(&log, "post"),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let ds = out.datasets();
    assert_eq!(status_of(&ds, &a), SnapStatus::Created);
    for x in [&b, &format!("{b}/gone")] {
        assert_eq!(status_of(&ds, x), SnapStatus::Failed);
        let e = ds
            .iter()
            .find(|d| &d.name == x)
            .unwrap()
            .error
            .clone()
            .unwrap();
        assert!(
            e.starts_with("zfs snapshot in pool zab-b failed on local: exit "),
            "{e}"
        );
        assert!(e.contains("does not exist"), "{e}");
    }
    assert_eq!(out.end().failed, 2);
    assert_eq!(snapshots(lab, &[&a]).len(), 1);
    assert!(snapshots(lab, &[&b]).is_empty(), "zab-b is all or nothing");
    assert_eq!(lab.sh(&format!("cat {log}")), "post\n");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

fn test_mode_changes_nothing(lab: &Lab) {
    let ns = Ns::new("snap_testmode");
    let p = ns.prop();
    let (a, b) = (ns.ds("zab-a", ""), ns.ds("zab-b", ""));
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {a}
        zfs create {a}/c
        zfs create -o {p}=true {b}
        zfs snapshot {a}@{n}-20200101000000 {a}/c@{n}-20200101000000
        dd if=/dev/urandom of=/{a}/c/f bs=64k count=1 2>/dev/null
        zpool sync zab-a",
        n = ns.backup()
    ));
    let state = || {
        let list = lab.sh(&format!(
            "zfs list -H -p -t all -o name,guid,createtxg,written,used -r {a} {b}"
        ));
        let hist = lab.sh(&format!(
            "zpool history zab-a zab-b | grep -c -e /{n} || true",
            n = ns.name
        ));
        (list, hist)
    };
    let before = state();
    let flag = format!("/tmp/{}.ran", ns.name);
    let out = snap(
        lab,
        &ns,
        &[
            "--test",
            "--verbose",
            "--pre-snapshot-cmd",
            &format!("touch {flag}"),
            "--post-snapshot-cmd",
            &format!("touch {flag}"),
        ],
    )
    .ok();
    let ds = out.datasets();
    assert_eq!(status_of(&ds, &a), SnapStatus::Skipped);
    assert_eq!(status_of(&ds, &format!("{a}/c")), SnapStatus::WouldCreate);
    assert_eq!(status_of(&ds, &b), SnapStatus::WouldCreate);
    assert_eq!(out.end().extra["would_create"], 2);
    assert_eq!(out.end().extra["created"], 0);
    assert_eq!(state(), before);
    lab.sh(&format!("test ! -e {flag}"));
    assert!(out.stderr.contains("(--test: not run)"), "{}", out.stderr);
}

fn over_ssh(lab: &Lab) {
    let ns = Ns::new("snap_ssh");
    let root = ns.ds("zab-a", "");
    let spaced = ns.ds("zab-a", "sp ace");
    lab.sh(&format!(
        "set -e; zfs create -o {}=true {root}; zfs create '{spaced}'",
        ns.prop()
    ));
    let b = ns.backup();
    // Pulled: both tools run here; zab-snap finds the host in the records.
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source {ALIAS} --ssh-config \"$CFG\" {b} | zab-snap --ssh-config \"$CFG\" {b}"
    ));
    let out = out.ok();
    let ds = out.datasets();
    assert_eq!(ds.len(), 2);
    for d in &ds {
        assert_eq!(d.host.as_deref(), Some(ALIAS));
        assert_eq!(d.snapshot.as_ref().unwrap().status, SnapStatus::Created);
    }
    let name = ds[0].snapshot.as_ref().unwrap().name.clone();
    assert_eq!(
        snapshots(lab, &[&root])
            .into_iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        vec![format!("{root}/sp ace@{name}"), format!("{root}@{name}")]
    );

    // --ssh-source on zab-snap too, as the wrapper passes it; unchanged now.
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source {ALIAS} --ssh-config \"$CFG\" {b} | zab-snap --ssh-source {ALIAS} --ssh-config \"$CFG\" -v {} {b}",
        now(0)
    ));
    let out = out.ok();
    assert!(out
        .datasets()
        .iter()
        .all(|d| d.snapshot.as_ref().unwrap().status == SnapStatus::Skipped));
    assert!(out.stderr.contains("No changes anywhere"), "{}", out.stderr);

    // Records from one host, --ssh-source naming another: refused.
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source {ALIAS} --ssh-config \"$CFG\" {b} | zab-snap --ssh-source elsewhere --ssh-config \"$CFG\" {b}"
    ));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("zab-snap: line 1: "),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
}

fn refuses_bad_input(lab: &Lab) {
    let ns = Ns::new("snap_badinput");
    let p = ns.prop();
    let d = ns.ds("zab-b", "");
    lab.sh(&format!(
        "set -e; zfs create -o {p}=true {d}; zfs create {d}/x; zfs create {d}/y"
    ));
    let b = ns.backup();

    // zab-select's output cut short (no end record): nothing is done.
    let out = lab.ssh(&format!("zab-select {b} | head -n 2 | zab-snap {b}"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("no end record"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    // A line cut in the middle.
    let out = lab.ssh(&format!("zab-select {b} | head -c 100 | zab-snap {b}"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "zab-snap: line 1: the last line has no newline: the input was cut off"
    );
    // Another backup's records.
    let out = lab.ssh(&format!("zab-select {b} | zab-snap other"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(snapshots(lab, &[&d]).is_empty());

    // A dataset that failed upstream passes through untouched; the rest go on.
    let out = lab.ssh(&format!(
        "zab-select {b} | jq -c 'if .name == \"{d}/x\" then .error = \"boom\" else . end' | zab-snap {b}"
    ));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let ds = out.datasets();
    let x = ds.iter().find(|r| r.name == format!("{d}/x")).unwrap();
    assert_eq!((x.error.as_deref(), &x.snapshot), (Some("boom"), &None));
    assert_eq!(status_of(&ds, &d), SnapStatus::Created);
    assert_eq!(status_of(&ds, &format!("{d}/y")), SnapStatus::Created);
    assert_eq!(out.end().failed, 1);
    let names: Vec<String> = snapshots(lab, &[&d]).into_iter().map(|s| s.0).collect();
    assert_eq!(names.len(), 2);
    assert!(!names.iter().any(|n| n.starts_with(&format!("{d}/x@"))));
}

/// zab-snap's quiet-run cache file of `ns`'s backup in the guest (root,
/// this machine: zab_core::quiet::file_name).
fn cache_file(ns: &Ns) -> String {
    format!(
        "/var/lib/zab/{}",
        zab_core::quiet::file_name(ns.backup(), None)
    )
}

/// The quiet-run cache: a run that lists, then one that needs no zfs
/// process at all and decides the same; then changes behind the cache's
/// back (a snapshot made by hand, our snapshot destroyed by hand, data
/// written) are each noticed, and every decision is the one of a run that
/// lists everything (`--test`, which does not use the cache).
fn quiet_cache(lab: &Lab) {
    let ns = Ns::new("snap_quiet");
    let p = ns.prop();
    let a = ns.ds("zab-a", "");
    let (x, y, z) = (format!("{a}/x"), format!("{a}/y"), format!("{a}/z"));
    lab.sh(&format!(
        "set -e; rm -f {f}
        zfs create -o {p}=true {a}; zfs create {x}; zfs create {y}; zfs create {z}",
        f = cache_file(&ns)
    ));
    let all = [a.clone(), x.clone(), y.clone(), z.clone()];
    let first = snap(lab, &ns, &[&now(0)]).ok().datasets();
    for d in &all {
        assert_eq!(status_of(&first, d), SnapStatus::Created, "{d}");
    }
    // snapshots_changed counts whole seconds: an entry is kept only when it
    // is 5 s older than the listing (zab_core::quiet::MATURITY_SECS).
    std::thread::sleep(std::time::Duration::from_secs(
        zab_core::quiet::MATURITY_SECS as u64 + 1,
    ));
    // Second run: the cache is empty (the first run snapshotted all), so
    // it lists, and keeps what it found.
    let second = snap(lab, &ns, &["--debug", &now(1)]).ok();
    assert_eq!(second.zfs_calls().len(), 2, "{}", second.stderr);
    lab.sh(&format!("test -s {}", cache_file(&ns)));
    // Third run: nothing changed, no zfs process, the same records.
    let third = snap(lab, &ns, &["--debug", &now(2)]).ok();
    assert_eq!(third.zfs_calls(), Vec::<String>::new(), "{}", third.stderr);
    let outcome = |ds: &[Dataset], d: &str| {
        let mut s = ds
            .iter()
            .find(|r| r.name == d)
            .unwrap()
            .snapshot
            .clone()
            .unwrap();
        s.name.clear();
        s
    };
    for d in &all {
        assert_eq!(
            outcome(&third.datasets(), d),
            outcome(&second.datasets(), d),
            "{d}"
        );
        assert_eq!(status_of(&third.datasets(), d), SnapStatus::Skipped, "{d}");
    }

    // Behind the cache's back: a snapshot by hand on x (newest, not ours),
    // ours destroyed by hand on y, data written on z.
    let ours = first[0].snapshot.as_ref().unwrap().name.clone();
    lab.sh(&format!(
        "set -e; zfs snapshot {x}@manual; zfs destroy {y}@{ours}
        dd if=/dev/urandom of=/{z}/f bs=64k count=1 2>/dev/null; zpool sync zab-a"
    ));
    let listed = snap(lab, &ns, &["--test"]).ok().datasets();
    let cached = snap(lab, &ns, &["--debug", &now(3)]).ok();
    let calls = cached.zfs_calls();
    // Only the three changed datasets are listed; a is still vouched for.
    assert!(
        calls[0].starts_with(
            "zfs list -H -p -t snapshot,bookmark -o name,createtxg,guid -s createtxg -d 1 "
        ) && calls[0].ends_with(&format!(" {x} {y} {z}")),
        "{calls:#?}"
    );
    let ds = cached.datasets();
    for (d, want) in [
        (&a, SnapStatus::Skipped),
        (&x, SnapStatus::Skipped),
        (&y, SnapStatus::Created),
        (&z, SnapStatus::Created),
    ] {
        assert_eq!(status_of(&ds, d), want, "{d}");
        let without_cache = match status_of(&listed, d) {
            SnapStatus::WouldCreate => SnapStatus::Created,
            s => s,
        };
        assert_eq!(status_of(&ds, d), without_cache, "{d}");
        let (c, l) = (outcome(&ds, d), outcome(&listed, d));
        assert_eq!((c.previous, c.written), (l.previous, l.written), "{d}");
    }
}
