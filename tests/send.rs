//! zab-send on real OpenZFS: full, incremental and resumed transfers, the
//! common snapshot and what blocks a receive, properties, encryption, the
//! byte stream's options, holds, the four topologies, --test and --jobs.
//! After each scenario the files on the target equal those on the source.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

use zab_core::host::quote_argv;
use zab_core::record::{Dataset, SendOutcome, SendStatus, TransferKind};
use zab_tests::{Lab, Ns, Out, ALIAS};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("send_full_then_incremental", full_then_incremental),
    ("send_resumes_after_a_kill", resumes_after_a_kill),
    ("send_aborts_an_obsolete_token", aborts_an_obsolete_token),
    ("send_guid_mismatch_fails_alone", guid_mismatch_fails_alone),
    ("send_incompatible_snapshots", incompatible_snapshots),
    ("send_rollback", rollback),
    ("send_strip_path", strip_path),
    ("send_properties_and_mounting", properties_and_mounting),
    ("send_encryption", encryption),
    (
        "send_every_compression_and_pipe",
        every_compression_and_pipe,
    ),
    ("send_four_topologies", four_topologies),
    (
        "send_other_snapshots_and_exclude",
        other_snapshots_and_exclude,
    ),
    (
        "send_skips_what_the_target_thins",
        skips_what_the_target_thins,
    ),
    ("send_test_changes_nothing", test_changes_nothing),
    ("send_jobs_equal_serial", jobs_equal_serial),
    (
        "send_pool_roots_mount_in_tree_order_and_hold_exactly",
        pool_roots_mount_in_tree_order_and_hold_exactly,
    ),
    (
        "send_decrypt_into_an_encrypted_parent",
        decrypt_into_an_encrypted_parent,
    ),
    (
        "send_bad_input_leaves_no_listing_running",
        bad_input_leaves_no_listing_running,
    ),
    ("send_quiet_cache", quiet_cache),
];

/// Snapshot names for the whole suite, a minute apart, starting six hours
/// ago (UTC), so that each new one is the newest and the default target
/// schedule keeps them.
fn stamp() -> String {
    static CLOCK: OnceLock<AtomicI64> = OnceLock::new();
    let clock = CLOCK.get_or_init(|| AtomicI64::new(chrono::Utc::now().timestamp() - 6 * 3600));
    let t = clock.fetch_add(60, Ordering::SeqCst);
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// Snapshots every dataset in `dss` with one new name of backup `b`; returns
/// the name (after `@`).
pub(crate) fn snap(lab: &Lab, b: &str, dss: &[&str]) -> String {
    let name = format!("{b}-{}", stamp());
    let argv: Vec<String> = dss.iter().map(|d| format!("{d}@{name}")).collect();
    lab.sh(&format!("zfs snapshot {}", quote_argv(&argv)));
    name
}

/// "snapshot tag" for each hold on `ds`'s snapshots, sorted.
pub(crate) fn holds(lab: &Lab, ds: &str) -> Vec<String> {
    let mut v: Vec<String> = lab
        .sh(&format!(
            "zfs list -H -t snapshot -o name -d 1 {} | xargs -r zfs holds -H",
            quote_argv(&[ds])
        ))
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            format!("{} {}", c[0].split_once('@').unwrap().1, c[1])
        })
        .collect();
    v.sort();
    v
}

fn exists(lab: &Lab, ds: &str) -> bool {
    lab.ssh(&format!("zfs list -H -o name {}", quote_argv(&[ds])))
        .code
        == 0
}

/// `zab-select B | zab-send --rate 1M --progress B TARGET` in the guest,
/// stopped by SIGNAL once its progress shows the stream flowing for three
/// seconds (of the 8 that 8 MiB take at 1 MiB/s; with one second, a loaded
/// lab had received nothing yet and left no token). Returns zab-send's
/// exit status and stderr.
fn interrupted(lab: &Lab, b: &str, target: &str, signal: &str) -> Out {
    lab.ssh(&format!(
        "err=$(mktemp); zab-select {b} | zab-send --utc --rate 1M --progress {b} {target} \
           >/dev/null 2>$err & pid=$!; i=0; \
         until grep -q ' ETA ' $err || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done; \
         sleep 3; kill -{signal} $pid; wait $pid; s=$?; sleep 1; cat $err >&2; rm -f $err; exit $s"
    ))
}

/// `zab-select B | zab-send --utc B TARGET ARGS…` in the guest.
pub(crate) fn send(lab: &Lab, b: &str, target: &str, args: &[&str]) -> Out {
    let mut argv = vec!["zab-send", "--utc", b, target];
    argv.extend_from_slice(args);
    lab.ssh(&format!("zab-select {b} | {}", quote_argv(&argv)))
}

#[track_caller]
pub(crate) fn outcome(out: &Out, name: &str) -> SendOutcome {
    let ds: Vec<Dataset> = out.datasets();
    ds.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no record for {name}:\n{}", out.stdout))
        .send
        .clone()
        .unwrap_or_else(|| panic!("no send in the record of {name}"))
}

pub(crate) fn error_of(out: &Out, name: &str) -> String {
    out.datasets()
        .into_iter()
        .find(|d| d.name == name)
        .and_then(|d| d.error)
        .unwrap_or_default()
}

/// `(kind, from, snapshot, snapshots)` of each transfer done.
fn transfers(o: &SendOutcome) -> Vec<(TransferKind, Option<String>, String, usize)> {
    o.transfers
        .iter()
        .filter(|t| t.done)
        .map(|t| (t.kind, t.from.clone(), t.snapshot.clone(), t.snapshots))
        .collect()
}

/// Creates the source tree (the first one gets the backup's property) and
/// the target path.
pub(crate) fn tree(lab: &Lab, ns: &Ns, b: &str, dss: &[&str], target: &str) {
    let mut script = String::from("set -e\n");
    for (i, d) in dss.iter().enumerate() {
        if i == 0 {
            script += &format!("zfs create -p -o autobackup:{b}=true {d}\n");
        } else {
            script += &format!("zfs create -p {d}\n");
        }
    }
    script += &format!("zfs create -p {target}\n");
    lab.sh(&script);
    let _ = ns;
}

fn full_then_incremental(lab: &Lab) {
    let ns = Ns::new("send_incr");
    let b = ns.backup();
    let (a, c) = (ns.ds("zab-a", ""), ns.ds("zab-a", "child"));
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a, &c], &tp);
    lab.fill(&a, 300);
    lab.fill(&c, 200);
    let s1 = snap(lab, b, &[&a, &c]);
    let out = send(lab, b, &tp, &["--debug"]).ok();
    let (ta, tc) = (format!("{tp}/{a}"), format!("{tp}/{c}"));
    let o = outcome(&out, &a);
    assert_eq!(o.target, ta);
    assert_eq!(o.status, SendStatus::Sent);
    assert_eq!(o.common, None);
    assert_eq!(
        transfers(&o),
        vec![(TransferKind::Full, None, s1.clone(), 1)]
    );
    assert!(o.transfers[0].bytes.unwrap() > 300 * 1024);
    assert_eq!(lab.snaps(&ta), lab.snaps(&a), "same names and guids");
    assert_eq!(lab.snaps(&tc), lab.snaps(&c));
    // Parents were created with canmount=off; the received ones are mounted,
    // with one `zfs mount -R` (both are new, and nothing else is below).
    assert_eq!(lab.prop(&format!("{tp}/zab-a"), "canmount"), "off");
    assert_eq!(lab.prop(&ta, "mounted"), "yes");
    assert_eq!(lab.prop(&tc, "mounted"), "yes");
    let mounts: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("zfs mount"))
        .collect();
    assert_eq!(mounts, [format!("zfs mount -R {ta}")], "{}", out.stderr);
    lab.same_files(&a, &ta);
    lab.same_files(&c, &tc);
    let tag = format!("zfs_autobackup:{b}");
    assert_eq!(holds(lab, &a), vec![format!("{s1} {tag}")]);
    assert_eq!(holds(lab, &ta), vec![format!("{s1} {tag}")]);

    // Two more snapshots: one -I stream carries both; the holds move on.
    lab.fill(&a, 100);
    let s2 = snap(lab, b, &[&a, &c]);
    lab.fill(&a, 100);
    lab.fill(&c, 50);
    let s3 = snap(lab, b, &[&a, &c]);
    let out = send(lab, b, &tp, &["--debug"]).ok();
    // One `zfs hold -r` and one `zfs release -r` do each side's subtree (one
    // sync task each, where holding by name takes one per snapshot): on the
    // target, whose whole tree zab-send lists, and on the source after
    // listing what -r would touch there.
    let debug: Vec<&str> = out.stderr.lines().collect();
    for want in [
        format!("zfs hold -r {tag} {ta}@{s3}"),
        format!("zfs release -r {tag} {ta}@{s1}"),
        format!("zfs list -H -p -t snapshot -o name,userrefs -r {a}"),
        format!("zfs hold -r {tag} {a}@{s3}"),
        format!("zfs release -r {tag} {a}@{s1}"),
    ] {
        assert!(debug.contains(&want.as_str()), "{want}:\n{}", out.stderr);
    }
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Sent);
    assert_eq!(o.common.as_deref(), Some(s1.as_str()));
    assert_eq!(
        transfers(&o),
        vec![(TransferKind::Incremental, Some(s1.clone()), s3.clone(), 2)]
    );
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    assert_eq!(lab.snapshot_names(&ta), vec![s1.clone(), s2, s3.clone()]);
    assert_eq!(lab.snaps(&tc), lab.snaps(&c));
    lab.same_files(&a, &ta);
    lab.same_files(&c, &tc);
    assert_eq!(holds(lab, &a), vec![format!("{s3} {tag}")]);
    assert_eq!(holds(lab, &ta), vec![format!("{s3} {tag}")]);
    assert_eq!(holds(lab, &tc), vec![format!("{s3} {tag}")]);

    // Nothing new: up to date, and nothing is run but the two listings (no
    // pool features, no `zfs holds`: the common snapshots carry a hold).
    let out = send(lab, b, &tp, &["--debug"]).ok();
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::UpToDate);
    assert!(o.transfers.is_empty());
    assert_eq!(o.common.as_deref(), Some(s3.as_str()));
    // (Besides, the quiet-run cache may read the target's facts after the
    // run, when the source's snapshot is 5 s old: send_quiet_cache.)
    let cache_read = "zfs get -H -p -o name,property,value snapshots_changed,";
    let listed: Vec<String> = commands(&Out {
        stderr: out
            .stderr
            .lines()
            .filter(|l| !l.starts_with(cache_read))
            .collect::<Vec<_>>()
            .join("\n"),
        ..out.clone()
    });
    assert_eq!(listed, ["zfs list", "zfs list"], "{}", out.stderr);

    // --no-holds: the transfer takes no hold (and leaves the old one).
    lab.fill(&a, 10);
    let s4 = snap(lab, b, &[&a, &c]);
    send(lab, b, &tp, &["--no-holds"]).ok();
    assert_eq!(lab.snapshot_names(&ta).last(), Some(&s4));
    assert_eq!(holds(lab, &ta), vec![format!("{s3} {tag}")]);
    // The next run has nothing to send. It holds the target's common
    // snapshots, which carry no hold at all (userrefs 0 in the target tree),
    // and releases ours on s3, which --no-holds left behind: only the
    // newest common snapshot keeps our hold, on both sides (the older one
    // is found by the target's listing and asked about with `zfs holds`).
    // A dataset below the target that is no backup has a snapshot of the
    // same name (made by hand): `zfs hold -r` would hold it too, so they
    // are held by name, and it is left alone.
    // (Not mounted: a mountpoint made in ta would block the next receive.)
    let extra = format!("{ta}/extra");
    lab.sh(&format!(
        "zfs create -o canmount=off -o {}=false {extra} && zfs snapshot {extra}@{s4}",
        ns.prop()
    ));
    let out = send(lab, b, &tp, &["--debug"]).ok();
    let want = format!("zfs hold {tag} {ta}@{s4} {tc}@{s4}");
    assert!(out.stderr.contains(&want), "{want}:\n{}", out.stderr);
    assert_eq!(holds(lab, &extra), Vec::<String>::new());
    assert_eq!(outcome(&out, &a).status, SendStatus::UpToDate);
    for d in [&ta, &tc, &a, &c] {
        assert_eq!(holds(lab, d), vec![format!("{s4} {tag}")], "{d}");
    }

    // A transfer: the same on the source, where the dataset that is no
    // backup is found by the listing of the subtree.
    lab.fill(&a, 10);
    let s5 = snap(lab, b, &[&a, &c]);
    let extra = format!("{a}/extra");
    lab.sh(&format!(
        "zfs create -o {}=false {extra} && zfs snapshot {extra}@{s5}",
        ns.prop()
    ));
    let out = send(lab, b, &tp, &["--debug"]).ok();
    for want in [
        format!("zfs list -H -p -t snapshot -o name,userrefs -r {a}"),
        format!("zfs hold {tag} {a}@{s5} {c}@{s5}"),
        format!("zfs hold -r {tag} {ta}@{s5}"),
        format!("zfs release -r {tag} {ta}@{s4}"),
    ] {
        assert!(out.stderr.contains(&want), "{want}:\n{}", out.stderr);
    }
    assert_eq!(holds(lab, &extra), Vec::<String>::new());
    assert_eq!(outcome(&out, &a).status, SendStatus::Sent);
    for d in [&a, &ta] {
        assert_eq!(holds(lab, d), vec![format!("{s5} {tag}")], "{d}");
    }
}

/// The zfs and zpool commands a `--debug` run ran, by their first two words.
fn commands(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("zfs ") || l.starts_with("zpool "))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// One dataset with compression off (so that `fill` makes a transfer long
/// enough to interrupt) in a fresh namespace: (namespace, dataset, target
/// path, the dataset's target).
fn uncompressed(lab: &Lab, name: &str) -> (Ns, String, String, String) {
    let ns = Ns::new(name);
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, ns.backup(), &[&a], &tp);
    lab.sh(&format!("zfs set compression=off {a}"));
    let ta = format!("{tp}/{a}");
    (ns, a, tp, ta)
}

fn resumes_after_a_kill(lab: &Lab) {
    let (ns, a, tp, ta) = uncompressed(lab, "send_resume");
    let b = ns.backup();
    lab.fill(&a, 8 * 1024);
    let s1 = snap(lab, b, &[&a]);
    // A slow full transfer, stopped by SIGTERM (as Ctrl-C or a service
    // manager would) after a few seconds.
    let out = interrupted(lab, b, &tp, "TERM");
    assert_ne!(out.code, 0, "interrupted: {}", out.stderr);
    // --progress draws the transfer on stderr (forced: not a terminal here).
    assert!(
        out.stderr.contains(&format!("{ta}@{s1}: ")) && out.stderr.contains(" ETA "),
        "{}",
        out.stderr
    );
    let token = lab.prop(&ta, "receive_resume_token");
    assert!(token.len() > 10, "a resume token on {ta}: {token}");
    let out = send(lab, b, &tp, &[]).ok();
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Sent);
    assert_eq!(
        transfers(&o),
        vec![(TransferKind::Resumed, None, s1.clone(), 1)]
    );
    assert_eq!(lab.prop(&ta, "receive_resume_token"), "-");
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    lab.same_files(&a, &ta);

    // An incremental one, and zab-send killed outright (SIGKILL: no clean
    // up at all, as when the machine or the connection goes).
    lab.fill(&a, 8 * 1024);
    let s2 = snap(lab, b, &[&a]);
    let out = interrupted(lab, b, &tp, "KILL");
    assert_ne!(out.code, 0);
    let token = lab.prop(&ta, "receive_resume_token");
    assert!(token.len() > 10, "a resume token on {ta}: {token}");
    let out = send(lab, b, &tp, &[]).ok();
    let o = outcome(&out, &a);
    assert_eq!(
        transfers(&o),
        vec![(TransferKind::Resumed, Some(s1.clone()), s2.clone(), 1)]
    );
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    lab.same_files(&a, &ta);
    let tag = format!("zfs_autobackup:{b}");
    assert_eq!(holds(lab, &a), vec![format!("{s2} {tag}")]);
}

fn aborts_an_obsolete_token(lab: &Lab) {
    let (ns, a, tp, ta) = uncompressed(lab, "send_abort");
    let b = ns.backup();
    lab.fill(&a, 100);
    let s1 = snap(lab, b, &[&a]);
    send(lab, b, &tp, &[]).ok();
    lab.fill(&a, 8 * 1024);
    let s2 = snap(lab, b, &[&a]);
    let out = interrupted(lab, b, &tp, "TERM");
    assert_ne!(out.code, 0);
    let token = lab.prop(&ta, "receive_resume_token");
    assert!(
        token.len() > 10,
        "a resume token on {ta}: {token}\n{}",
        out.stderr
    );
    // The snapshot the token leads to is gone from the source.
    lab.sh(&format!("zfs destroy {a}@{s2}"));
    lab.fill(&a, 50);
    let s3 = snap(lab, b, &[&a]);
    let out = send(lab, b, &tp, &[]).ok();
    let o = outcome(&out, &a);
    assert!(
        o.notes.iter().any(|n| n.contains("abort")),
        "the abort is said: {:?}",
        o.notes
    );
    assert_eq!(
        transfers(&o),
        vec![(TransferKind::Incremental, Some(s1), s3, 1)]
    );
    assert_eq!(lab.prop(&ta, "receive_resume_token"), "-");
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    lab.same_files(&a, &ta);
}

fn guid_mismatch_fails_alone(lab: &Lab) {
    let ns = Ns::new("send_guid");
    let b = ns.backup();
    let (a, c) = (ns.ds("zab-a", ""), ns.ds("zab-a", "c"));
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a, &c], &tp);
    lab.fill(&a, 10);
    lab.fill(&c, 10);
    let s1 = snap(lab, b, &[&a, &c]);
    // The target of `a` already exists, with a snapshot of the same name
    // that is another snapshot (another guid).
    let ta = format!("{tp}/{a}");
    lab.sh(&format!("zfs create -p {ta}; zfs snapshot {ta}@{s1}"));
    let out = send(lab, b, &tp, &[]);
    assert_eq!(out.code, 1, "failed datasets: {}", out.stderr);
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Failed);
    let err = error_of(&out, &a);
    assert!(err.contains("common snapshot"), "{err}");
    assert!(out.stderr.contains(&a), "said on stderr: {}", out.stderr);
    // The child went on.
    assert_eq!(outcome(&out, &c).status, SendStatus::Sent);
    lab.same_files(&c, &format!("{tp}/{c}"));
    assert_eq!(lab.snapshot_names(&ta), vec![s1.clone()]);
    assert_ne!(lab.snaps(&ta), lab.snaps(&a));
}

fn incompatible_snapshots(lab: &Lab) {
    let ns = Ns::new("send_incompat");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    let ta = format!("{tp}/{a}");
    tree(lab, &ns, b, &[&a], &tp);
    lab.fill(&a, 50);
    let s1 = snap(lab, b, &[&a]);
    send(lab, b, &tp, &[]).ok();
    // On the target: a change, and a snapshot of it after the common one.
    lab.fill(&ta, 10);
    lab.sh(&format!("zfs snapshot {ta}@local"));
    lab.fill(&a, 20);
    let s2 = snap(lab, b, &[&a]);
    let out = send(lab, b, &tp, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Failed);
    assert_eq!(o.incompatible, vec!["local".to_string()]);
    assert_eq!(lab.snapshot_names(&ta), vec![s1.clone(), "local".into()]);

    let out = send(lab, b, &tp, &["--destroy-incompatible"]).ok();
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Sent);
    assert_eq!(o.incompatible, vec!["local".to_string()]);
    assert_eq!(lab.snapshot_names(&ta), vec![s1, s2]);
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    lab.same_files(&a, &ta);
}

fn rollback(lab: &Lab) {
    let ns = Ns::new("send_rollback");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    let ta = format!("{tp}/{a}");
    tree(lab, &ns, b, &[&a], &tp);
    lab.fill(&a, 50);
    snap(lab, b, &[&a]);
    send(lab, b, &tp, &[]).ok();
    // The target was changed after its last snapshot: a receive fails...
    lab.fill(&ta, 10);
    lab.fill(&a, 20);
    snap(lab, b, &[&a]);
    let out = send(lab, b, &tp, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(outcome(&out, &a).status, SendStatus::Failed);
    assert!(!error_of(&out, &a).is_empty());
    // ...and --rollback rolls it back first.
    let out = send(lab, b, &tp, &["--rollback"]).ok();
    assert_eq!(outcome(&out, &a).status, SendStatus::Sent);
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    lab.same_files(&a, &ta);
}

fn strip_path(lab: &Lab) {
    let ns = Ns::new("send_strip");
    let b = ns.backup();
    let x = ns.ds("zab-a", "x");
    let bx = ns.ds("zab-b", "x");
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&x], &tp);
    lab.sh(&format!("zfs create -p -o autobackup:{b}=true {bx}"));
    lab.fill(&x, 10);
    lab.fill(&bx, 10);
    snap(lab, b, &[&x]);
    snap(lab, b, &[&bx]);
    // Stripping the pool name maps zab-a/NS/x and zab-b/NS/x to one target.
    let out = send(lab, b, &tp, &["--strip-path", "1"]);
    assert_eq!(out.code, 2, "a usage error: {}", out.stderr);
    assert!(out.stderr.contains("map to"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{tp}/{}/x", ns.name)),
        "{}",
        out.stderr
    );
    // Stripping more than a name has.
    let out = send(lab, b, &tp, &["--strip-path", "4"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("strips too much"), "{}", out.stderr);
    // Neither changed anything on the target.
    assert_eq!(lab.sh(&format!("zfs list -H -r -o name {tp}")).trim(), tp);
    // Without the clash: zab-a/NS/x with --strip-path 2.
    lab.sh(&format!("zfs inherit autobackup:{b} {bx}"));
    let out = send(lab, b, &tp, &["--strip-path", "2"]).ok();
    assert_eq!(outcome(&out, &x).target, format!("{tp}/x"));
    lab.same_files(&x, &format!("{tp}/x"));
}

fn properties_and_mounting(lab: &Lab) {
    let ns = Ns::new("send_props");
    let b = ns.backup();
    let (a, n) = (ns.ds("zab-a", ""), ns.ds("zab-a", "noauto"));
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a], &tp);
    lab.sh(&format!(
        "set -e; zfs set compression=lz4 zab:note=kept atime=off {a}; \
         zfs set refreservation=1M {a}; zfs create {n}"
    ));
    lab.fill(&a, 10);
    lab.fill(&n, 10);
    snap(lab, b, &[&a, &n]);
    let out = send(
        lab,
        b,
        &tp,
        &[
            "--filter-properties",
            "atime",
            "--set-properties",
            "zab:set=yes,copies=2",
            "--clear-refreservation",
        ],
    )
    .ok();
    let ta = format!("{tp}/{a}");
    assert_eq!(outcome(&out, &a).status, SendStatus::Sent);
    assert_eq!(lab.prop(&ta, "compression"), "lz4", "received");
    assert_eq!(lab.prop(&ta, "zab:note"), "kept");
    assert_eq!(lab.prop(&ta, "atime"), "on", "filtered (the default)");
    assert_eq!(lab.prop(&ta, "refreservation"), "none", "cleared");
    assert_eq!(lab.prop(&ta, "zab:set"), "yes");
    assert_eq!(lab.prop(&ta, "copies"), "2");
    assert_eq!(
        lab.prop(&ta, "mounted"),
        "yes",
        "mounted after the first receive"
    );
    lab.same_files(&a, &ta);

    // --clear-mountpoint: received with canmount=noauto, and not mounted.
    let tp2 = format!("{tp}-2");
    lab.sh(&format!("zfs create {tp2}"));
    send(lab, b, &tp2, &["--clear-mountpoint"]).ok();
    let ta2 = format!("{tp2}/{a}");
    assert_eq!(lab.prop(&ta2, "canmount"), "noauto");
    assert_eq!(lab.prop(&ta2, "mounted"), "no");
    lab.same_files(&a, &ta2);
}

fn encryption(lab: &Lab) {
    let ns = Ns::new("send_crypt");
    let b = ns.backup();
    let key = format!("/root/{}.key", ns.name);
    let (enc, plain) = (ns.ds("zab-a", "enc"), ns.ds("zab-a", "plain"));
    let root = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    let tpe = ns.ds("zab-t", "encrypted");
    lab.sh(&format!(
        "set -e; printf 'zab lab passphrase' > {key}; zfs create -p {root}; \
         zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} {enc}; \
         zfs create {plain}; zfs create -p {tp}; \
         zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} {tpe}"
    ));
    lab.fill(&enc, 100);
    lab.fill(&plain, 100);
    // One backup name per way of sending, each on its own dataset.
    let raw = format!("{b}-raw");
    let dec = format!("{b}-dec");
    let both = format!("{b}-both");
    let encr = format!("{b}-encr");
    lab.sh(&format!(
        "set -e; zfs set autobackup:{raw}=true autobackup:{dec}=true autobackup:{both}=true {enc}; \
         zfs set autobackup:{encr}=true {plain}"
    ));
    for name in [&raw, &dec, &both, &encr] {
        snap(lab, name, &[&enc, &plain]);
    }

    // Raw by default: the target holds the ciphertext, its key not loaded.
    let t_raw = format!("{tp}/raw");
    lab.sh(&format!("zfs create {t_raw}"));
    send(lab, &raw, &t_raw, &[]).ok();
    let t = format!("{t_raw}/{enc}");
    assert_eq!(lab.prop(&t, "encryption"), "aes-256-gcm");
    assert_eq!(lab.prop(&t, "keystatus"), "unavailable");
    assert_eq!(lab.prop(&t, "encryptionroot"), t);
    // Incremental raw too.
    lab.fill(&enc, 30);
    snap(lab, &raw, &[&enc]);
    let out = send(lab, &raw, &t_raw, &[]).ok();
    assert_eq!(
        transfers(&outcome(&out, &enc))[0].0,
        TransferKind::Incremental
    );
    let ours: Vec<(String, String)> = lab
        .snaps(&enc)
        .into_iter()
        .filter(|s| s.0.starts_with(&format!("{raw}-")))
        .collect();
    assert_eq!(lab.snaps(&t), ours);
    lab.sh(&format!("zfs load-key -L file://{key} {t}"));
    lab.same_files(&enc, &t);

    // --decrypt: plain on the target.
    let t_dec = format!("{tp}/dec");
    lab.sh(&format!("zfs create {t_dec}"));
    send(lab, &dec, &t_dec, &["--decrypt"]).ok();
    let t = format!("{t_dec}/{enc}");
    assert_eq!(lab.prop(&t, "encryption"), "off");
    lab.same_files(&enc, &t);

    // --encrypt: a plain dataset is encrypted by the target's parent.
    send(lab, &encr, &tpe, &["--encrypt"]).ok();
    let t = format!("{tpe}/{plain}");
    assert_eq!(lab.prop(&t, "encryption"), "aes-256-gcm");
    assert_eq!(lab.prop(&t, "encryptionroot"), tpe);
    lab.same_files(&plain, &t);

    // Both: decrypted on the way, encrypted again with the target's key.
    send(lab, &both, &tpe, &["--decrypt", "--encrypt"]).ok();
    let t = format!("{tpe}/{enc}");
    assert_eq!(lab.prop(&t, "encryptionroot"), tpe);
    lab.same_files(&enc, &t);
}

fn every_compression_and_pipe(lab: &Lab) {
    let ns = Ns::new("send_compress");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a], &tp);
    lab.fill(&a, 500);
    lab.sh(&format!(
        "mp=$(zfs get -H -o value mountpoint {a}); yes zab | head -c 2000000 > $mp/text"
    ));
    snap(lab, b, &[&a]);
    let types = [
        "gzip",
        "pigz-fast",
        "pigz-slow",
        "zstd-fast",
        "zstd-slow",
        "zstd-adapt",
        "xz",
        "lzo",
        "lz4",
    ];
    for ty in types {
        let t = format!("{tp}/{ty}");
        lab.sh(&format!("zfs create {t}"));
        let out = send(lab, b, &t, &["--compress", ty]).ok();
        let o = outcome(&out, &a);
        assert_eq!(o.status, SendStatus::Sent, "{ty}");
        lab.same_files(&a, &format!("{t}/{a}"));
    }
    // Pipes on both sides (a shell command line each, quoted), the buffer on
    // both sides, the rate limit and zfs send -c.
    let t = format!("{tp}/piped");
    lab.sh(&format!("zfs create {t}"));
    let log = format!("/tmp/{}.pipes", ns.name);
    let out = send(
        lab,
        b,
        &t,
        &[
            "--send-pipe",
            &format!("tee /dev/null | cat; echo send >> {log}"),
            "--recv-pipe",
            "cat",
            "--recv-pipe",
            &format!("cat; echo 'recv ok' >> {log}"),
            "--compress",
            "--buffer",
            "4M",
            "--buffer-chunk-size",
            "64K",
            "--rate",
            "50M",
            "--zfs-compressed",
            "--debug",
        ],
    )
    .ok();
    lab.same_files(&a, &format!("{t}/{a}"));
    assert_eq!(
        lab.sh(&format!("cat {log}; rm -f {log}")),
        "send\nrecv ok\n"
    );
    assert!(
        out.stderr.contains("zab-buffer -q -m 4194304 -s 65536"),
        "{}",
        out.stderr
    );
    // Where zab-buffer is not installed, mbuffer takes its place, on the
    // remote side (probed over ssh) as on this one. No other test uses
    // --buffer, so hiding zab-buffer for one run is safe.
    let t = format!("{tp}/fallback");
    lab.sh(&format!("zfs create {t}"));
    let out = lab
        .ssh(&format!(
            "mv /usr/local/bin/zab-buffer /usr/local/bin/zab-buffer.hidden; \
             zab-select {b} | zab-send --utc --ssh-target self --buffer 1M --debug {b} {t}; s=$?; \
             mv /usr/local/bin/zab-buffer.hidden /usr/local/bin/zab-buffer; exit $s"
        ))
        .ok();
    assert!(
        out.stderr.contains("mbuffer -q -m 1024k -s 128k") && !out.stderr.contains("zab-buffer -q"),
        "{}",
        out.stderr
    );
    assert_eq!(outcome(&out, &a).status, SendStatus::Sent);
    lab.same_files(&a, &format!("{t}/{a}"));
    // A pipe that fails makes the transfer fail, even in the middle.
    let t = format!("{tp}/broken");
    lab.sh(&format!("zfs create {t}"));
    let out = send(
        lab,
        b,
        &t,
        &[
            "--send-pipe",
            "cat >/dev/null; exit 3",
            "--recv-pipe",
            "cat",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(outcome(&out, &a).status, SendStatus::Failed);
    assert!(error_of(&out, &a).contains("exit status 3") || error_of(&out, &a).contains("failed"));
}

fn four_topologies(lab: &Lab) {
    let ns = Ns::new("send_topo");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let c = ns.ds("zab-a", "c");
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a, &c], &tp);
    lab.fill(&a, 200);
    lab.fill(&c, 100);
    let cfgs = [
        ("local", "", ""),
        ("push", "", "--ssh-target self"),
        ("pull", "--ssh-source self", ""),
    ];
    for round in 0..2 {
        for (name, src, tgt) in cfgs {
            let t = format!("{tp}/{name}");
            if round == 0 {
                lab.sh(&format!("zfs create {t}"));
            }
            lab.fill(&a, 10);
            lab.fill(&c, 10);
            let out = lab.ssh(&format!(
                "set -e; zab-select --exclude-received {src} {b} | zab-snap --utc {b} | \
                 zab-send --utc {src} {tgt} {b} {t} | zab-thin --utc {src} {tgt} {b} {t}"
            ));
            let out = out.ok();
            let o = outcome(&out, &a);
            assert_eq!(o.status, SendStatus::Sent, "{name}: {}", out.stderr);
            assert_eq!(
                o.transfers[0].kind,
                if round == 0 {
                    TransferKind::Full
                } else {
                    TransferKind::Incremental
                },
                "{name}"
            );
            assert_eq!(lab.snaps(&format!("{t}/{a}")).last(), lab.snaps(&a).last());
            lab.same_files(&a, &format!("{t}/{a}"));
            assert_eq!(lab.snaps(&format!("{t}/{c}")).last(), lab.snaps(&c).last());
            lab.same_files(&c, &format!("{t}/{c}"));
            // zab-snap names snapshots by the second.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        // Relayed: pulled from the lab and pushed to it, from here.
        let t = format!("{tp}/relay");
        if round == 0 {
            lab.sh(&format!("zfs create {t}"));
        }
        lab.fill(&a, 10);
        let out = lab.local_sh(&format!(
            "set -e; s='--ssh-config '\"$CFG\"; \
             zab-select --exclude-received --ssh-source {ALIAS} $s {b} | zab-snap --utc $s {b} | \
             zab-send --utc --ssh-source {ALIAS} --ssh-target {ALIAS} $s {b} {t} | \
             zab-thin --utc --ssh-target {ALIAS} $s {b} {t}"
        ));
        let out = out.ok();
        let o = outcome(&out, &a);
        assert_eq!(o.status, SendStatus::Sent, "relay: {}", out.stderr);
        lab.same_files(&a, &format!("{t}/{a}"));
        lab.same_files(&c, &format!("{t}/{c}"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}

fn other_snapshots_and_exclude(lab: &Lab) {
    let ns = Ns::new("send_other");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a], &tp);
    lab.fill(&a, 10);
    let s1 = snap(lab, b, &[&a]);
    lab.sh(&format!("zfs snapshot {a}@manual1"));
    let s2 = snap(lab, b, &[&a]);
    lab.sh(&format!("zfs snapshot {a}@manual2"));
    let s3 = snap(lab, b, &[&a]);
    for (dir, args, want) in [
        ("ours", vec![], vec![s1.clone(), s2.clone(), s3.clone()]),
        (
            "all",
            vec!["--other-snapshots"],
            vec![
                s1.clone(),
                "manual1".into(),
                s2.clone(),
                "manual2".into(),
                s3.clone(),
            ],
        ),
        (
            "exclude",
            vec![
                "--other-snapshots",
                "--exclude-snapshot-pattern",
                "manual2$",
            ],
            vec![s1.clone(), "manual1".into(), s2.clone(), s3.clone()],
        ),
    ] {
        let t = format!("{tp}/{dir}");
        lab.sh(&format!("zfs create {t}"));
        send(lab, b, &t, &args).ok();
        assert_eq!(lab.snapshot_names(&format!("{t}/{a}")), want, "{dir}");
        lab.same_files(&a, &format!("{t}/{a}"));
    }
}

fn skips_what_the_target_thins(lab: &Lab) {
    let ns = Ns::new("send_thinned");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a], &tp);
    let mut all = Vec::new();
    for _ in 0..6 {
        lab.fill(&a, 5);
        all.push(snap(lab, b, &[&a]));
    }
    let out = send(lab, b, &tp, &["--keep-target", "2"]).ok();
    let o = outcome(&out, &a);
    let skipped: Vec<String> = o.skipped.iter().map(|s| s.name.clone()).collect();
    assert_eq!(skipped, all[..4].to_vec());
    assert_eq!(lab.snapshot_names(&format!("{tp}/{a}")), all[4..].to_vec());
    lab.same_files(&a, &format!("{tp}/{a}"));
}

/// Everything zab-send could change, on both pools: datasets, snapshots,
/// guids, holds, tokens, properties set locally, and the commands in the
/// pools' histories that name this test's datasets.
fn state(lab: &Lab, ns: &Ns) -> String {
    lab.sh(&format!(
        "set -e; for d in {a} {t}; do \
           zfs list -H -r -t all -o name,guid,userrefs,receive_resume_token,mounted $d; \
           zfs get -H -r -s local,received all $d; \
           zfs list -H -r -t snapshot -o name $d | xargs -r zfs holds -H; done; \
         zpool history zab-a zab-t | grep -c -e {a} -e {t}",
        a = ns.ds("zab-a", ""),
        t = ns.ds("zab-t", "")
    ))
}

fn test_changes_nothing(lab: &Lab) {
    let ns = Ns::new("send_test");
    let b = ns.backup();
    let (a, c) = (ns.ds("zab-a", ""), ns.ds("zab-a", "c"));
    let tp = ns.ds("zab-t", "");
    tree(lab, &ns, b, &[&a, &c], &tp);
    lab.fill(&a, 10);
    lab.fill(&c, 10);
    snap(lab, b, &[&a, &c]);
    // A first run would create parents and do full transfers.
    let before = state(lab, &ns);
    for flag in ["--test", "--plan"] {
        let out = send(lab, b, &tp, &[flag, "--debug"]).ok();
        let o = outcome(&out, &a);
        assert_eq!(o.status, SendStatus::Planned, "{flag}");
        assert_eq!(o.transfers.len(), 1);
        assert!(!o.transfers[0].done);
        assert_eq!(state(lab, &ns), before, "{flag} changed nothing");
        for l in out.stderr.lines().filter(|l| l.starts_with("zfs ")) {
            let verb = l.split_whitespace().nth(1).unwrap_or("");
            assert!(
                ["list", "get", "holds"].contains(&verb) || l.starts_with("zfs send -nv"),
                "{flag} ran a command that changes things: {l}"
            );
        }
    }
    // And on an incremental with an incompatible target snapshot and
    // --destroy-incompatible: still nothing.
    send(lab, b, &tp, &[]).ok();
    let ta = format!("{tp}/{a}");
    lab.fill(&ta, 5);
    lab.sh(&format!("zfs snapshot {ta}@local"));
    lab.fill(&a, 10);
    snap(lab, b, &[&a, &c]);
    let before = state(lab, &ns);
    let out = send(
        lab,
        b,
        &tp,
        &["--test", "--destroy-incompatible", "--rollback"],
    )
    .ok();
    assert_eq!(outcome(&out, &a).incompatible, vec!["local".to_string()]);
    assert_eq!(state(lab, &ns), before);
    // After `zab-snap --test`, the snapshot it would take is planned too.
    let out = lab
        .ssh(&format!(
            "zab-select {b} | zab-snap --utc --test --allow-empty {b} | \
             zab-send --utc --test --destroy-incompatible {b} {tp}"
        ))
        .ok();
    let would = out
        .datasets()
        .into_iter()
        .find(|d| d.name == a)
        .and_then(|d| d.snapshot)
        .unwrap()
        .name;
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Planned);
    assert_eq!(o.transfers.last().map(|t| t.snapshot.clone()), Some(would));
    assert_eq!(state(lab, &ns), before);
}

fn jobs_equal_serial(lab: &Lab) {
    let ns = Ns::new("send_jobs");
    let b = ns.backup();
    let root = ns.ds("zab-a", "");
    let mut dss = vec![root.clone()];
    for i in 0..4 {
        dss.push(format!("{root}/d{i}"));
        for j in 0..2 {
            dss.push(format!("{root}/d{i}/e{j}"));
        }
    }
    let tp = ns.ds("zab-t", "");
    let refs: Vec<&str> = dss.iter().map(String::as_str).collect();
    tree(lab, &ns, b, &refs, &tp);
    for d in &dss {
        lab.fill(d, 20);
    }
    snap(lab, b, &refs);
    let (serial, parallel) = (format!("{tp}/serial"), format!("{tp}/parallel"));
    lab.sh(&format!("zfs create {serial}; zfs create {parallel}"));
    send(lab, b, &serial, &[]).ok();
    send(lab, b, &parallel, &["--jobs", "4"]).ok();
    for d in &dss {
        lab.fill(d, 5);
    }
    snap(lab, b, &refs);
    send(lab, b, &serial, &[]).ok();
    let out = send(lab, b, &parallel, &["--jobs", "4"]).ok();
    assert_eq!(out.datasets().len(), dss.len());
    let listing = |t: &str| -> Vec<String> {
        lab.sh(&format!("zfs list -H -r -t all -o name,guid,canmount {t}"))
            .lines()
            .skip(1)
            .map(|l| l.replacen(t, "", 1))
            .map(|l| {
                // Filesystem guids differ; snapshot guids must be equal.
                let c: Vec<&str> = l.split('\t').collect();
                if c[0].contains('@') {
                    l.clone()
                } else {
                    format!("{}\t{}", c[0], c[2])
                }
            })
            .collect()
    };
    assert_eq!(listing(&parallel), listing(&serial));
    for d in &dss {
        lab.same_files(d, &format!("{parallel}/{d}"));
    }
    assert!(exists(lab, &format!("{parallel}/{root}/d3/e1")));
}

/// Pool roots replicated onto a pool root (`--strip-path 1 --force`), with
/// a second pool's datasets landing under the same target, one under a
/// parent zab-send creates: both pools snapshotted in the same second (one
/// zab-snap run), so `zfs hold -r` on the target root reaches the second
/// pool's dataset too. Its own pools: a pool root is shared by no test.
fn pool_roots_mount_in_tree_order_and_hold_exactly(lab: &Lab) {
    let ns = Ns::new("send_poolroots");
    let b = ns.backup();
    // "zabpr-a" (datasets selected one by one) sorts before "zabpr-b"
    // (its root selected), so its dataset comes first in the records.
    let pools = ["zabpr-a", "zabpr-b", "zabpr-t"];
    // Our mounts first, deepest first and lazily: a stacked mount (the bug
    // this test is about) keeps zpool destroy from unmounting.
    let cleanup =
        "awk '$1 ~ /^zabpr-/ {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l; "
            .to_string()
            + &pools
                .iter()
                .map(|p| {
                    format!(
                        "zpool destroy -f {p} 2>/dev/null; rm -f /var/tmp/{p}.img; \
                 mountpoint -q /{p} || rm -rf /{p}"
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
    let mut script = format!("{cleanup}; set -e\n");
    for p in pools {
        script +=
            &format!("truncate -s 256M /var/tmp/{p}.img; zpool create {p} /var/tmp/{p}.img\n");
    }
    // (A `zfs create` that could not mount on a loaded lab mounts once
    // more: lab.rs, CREATE_MOUNTED.)
    script += "zfs create zabpr-a/c; zfs create zabpr-b/a; zfs create -p zabpr-a/x/b\n";
    script += "for d in zabpr-a/c zabpr-a/x/b zabpr-b zabpr-b/a; do echo \"$d\" > /$d/f; done\n";
    lab.sh(&script);
    let pipeline = format!(
        "zab-select {b} | zab-snap --utc {b} | zab-send --utc --strip-path 1 --force {b} zabpr-t"
    );
    // A first run: zabpr-a/c alone, received and mounted under the pool root.
    lab.sh(&format!("zfs set autobackup:{b}=true zabpr-a/c"));
    lab.ssh(&pipeline).ok();
    assert_eq!(lab.prop("zabpr-t/c", "mounted"), "yes");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Then the second pool's root and the dataset under a missing parent.
    lab.sh(&format!(
        "zfs set autobackup:{b}=true zabpr-b zabpr-a/x/b; echo more > /zabpr-a/c/g"
    ));
    let out = lab.ssh(&pipeline);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, out.stdout);
    assert_eq!(out.end().failed, 0, "{}", out.stdout);
    for d in out.datasets() {
        assert_eq!(d.error, None, "{}", d.name);
    }

    // Every target filesystem that can be mounted is, where its mountpoint
    // says, and no mountpoint is used twice (nothing stacked).
    let rows = lab.sh("zfs list -H -r -t filesystem -o name,canmount,mounted,mountpoint zabpr-t");
    let mounts = lab.sh("cat /proc/mounts");
    let mut seen = std::collections::BTreeMap::new();
    for l in mounts.lines() {
        let c: Vec<&str> = l.split(' ').collect();
        if c.len() > 2 && c[1].starts_with("/zabpr-t") {
            *seen.entry(c[1].to_string()).or_insert(0) += 1;
            assert!(c[0].starts_with("zabpr-t"), "{l}");
        }
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "stacked mounts: {seen:?}\n{mounts}"
    );
    let mut mounted = 0;
    for l in rows.lines() {
        let c: Vec<&str> = l.split('\t').collect();
        let (name, canmount, is_mounted, mp) = (c[0], c[1], c[2], c[3]);
        if canmount == "on" {
            assert_eq!(is_mounted, "yes", "{name} is not mounted:\n{rows}");
            assert_eq!(seen.get(mp), Some(&1), "{name} on {mp}:\n{mounts}");
            mounted += 1;
        }
    }
    assert_eq!(mounted, 4, "{rows}");
    for (src, tgt) in [
        ("zabpr-a/c", "zabpr-t/c"),
        ("zabpr-a/x/b", "zabpr-t/x/b"),
        ("zabpr-b", "zabpr-t"),
        ("zabpr-b/a", "zabpr-t/a"),
    ] {
        // The files are visible at the mountpoint, not hidden under another mount.
        assert_eq!(
            lab.sh(&format!(
                "cat \"$(zfs get -H -o value mountpoint {tgt})/f\""
            ))
            .trim(),
            src
        );
        // The newest snapshot, and only it, carries the hold on both sides.
        let newest = lab.snapshot_names(tgt).pop().unwrap();
        let tag = format!("zfs_autobackup:{b}");
        for ds in [src, tgt] {
            assert_eq!(holds(lab, ds), vec![format!("{newest} {tag}")], "{ds}");
        }
    }
    // Nothing keeps the target pool busy.
    let out = lab.ssh("zpool export zabpr-t");
    assert_eq!(out.code, 0, "export: {}", out.stderr);
    lab.ssh(&cleanup);
}

/// --decrypt with an encrypted and a plain source under one encrypted
/// target parent: the plain one keeps `-p` (upstream drops it only for
/// encrypted sources) and arrives with its properties, unencrypted; the
/// encrypted one arrives decrypted and is encrypted by the target's parent;
/// neither stream carries `-e`, which an encrypted receive refuses.
fn decrypt_into_an_encrypted_parent(lab: &Lab) {
    let ns = Ns::new("send_decrypt_mixed");
    let b = ns.backup();
    let key = format!("/root/{}.key", ns.name);
    let root = ns.ds("zab-a", "");
    let (enc, plain) = (ns.ds("zab-a", "enc"), ns.ds("zab-a", "plain"));
    let tp = ns.ds("zab-t", "");
    let tpe = ns.ds("zab-t", "encrypted");
    lab.sh(&format!(
        "set -e; printf 'zab lab passphrase' > {key}; zfs create -p {root}; \
         zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} {enc}; \
         zfs create -o zab:note=kept {plain}; zfs create -p {tp}; \
         zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} {tpe}; \
         zfs set autobackup:{b}=true {enc} {plain}; \
         for d in {enc} {plain}; do echo small > \"$(zfs get -H -o value mountpoint $d)/small\"; done"
    ));
    lab.fill(&enc, 100);
    lab.fill(&plain, 100);
    snap(lab, b, &[&enc, &plain]);
    let out = send(lab, b, &tpe, &["--decrypt", "--debug"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sends: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("zfs send"))
        .collect();
    assert!(sends.len() >= 2, "{}", out.stderr);
    for l in &sends {
        assert!(!l.contains(" -e "), "no -e into an encrypted parent: {l}");
    }
    let (te, tpl) = (format!("{tpe}/{enc}"), format!("{tpe}/{plain}"));
    assert_eq!(lab.prop(&te, "encryptionroot"), tpe);
    assert_eq!(lab.prop(&tpl, "encryption"), "off");
    assert_eq!(
        lab.prop(&tpl, "zab:note"),
        "kept",
        "-p for the plain source"
    );
    lab.same_files(&enc, &te);
    lab.same_files(&plain, &tpl);
    // Incremental too. (The dataset encrypted by the target, once mounted,
    // shows as modified to the next receive on OpenZFS 2.3: --force.)
    lab.fill(&enc, 10);
    lab.fill(&plain, 10);
    snap(lab, b, &[&enc, &plain]);
    let out = send(lab, b, &tpe, &["--decrypt", "--force"]).ok();
    for d in [&enc, &plain] {
        assert_eq!(transfers(&outcome(&out, d))[0].0, TransferKind::Incremental);
    }
    lab.same_files(&enc, &te);
    lab.same_files(&plain, &tpl);
}

/// Bad input ends zab-send at once; the target listing it started before
/// reading (over ssh here, and slow: a few hundred snapshots) must not
/// outlive it.
fn bad_input_leaves_no_listing_running(lab: &Lab) {
    use std::io::Write;
    let ns = Ns::new("send_orphan");
    let b = ns.backup();
    let tp = ns.ds("zab-t", "");
    // 400 snapshots in one transaction group: a channel program.
    lab.sh(&format!(
        "set -e; zfs create -p {tp}; f=$(mktemp); \
         echo 'for i = 1, 400 do zfs.sync.snapshot(\"{tp}@s\" .. i) end' > $f; \
         zfs program zab-t $f; rm -f $f"
    ));
    let mut child = std::process::Command::new(lab.bin_dir.join("zab-send"))
        .args(["--ssh-target", ALIAS])
        .args(lab.ssh_config_args())
        .args([b, &tp])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The bad line comes a moment later, as from a stage before that takes
    // its time: the listing is running by then.
    std::thread::sleep(std::time::Duration::from_millis(500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"this is not a record\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // Right after it exits: no process of ours still lists the target.
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("zfs list") && cmd.contains(&tp) {
                left.push(cmd);
            }
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.starts_with("zab-send: line 1: "), "{stderr}");
    assert!(
        left.is_empty(),
        "still running after zab-send exited: {left:?}"
    );
}

/// zab-send's quiet-run cache file in the guest.
fn send_cache_file(b: &str, tp: &str) -> String {
    format!(
        "/var/lib/zab/{}",
        zab_core::quiet::send::file_name(b, None, None, tp)
    )
}

/// The quiet-run cache (issue 19): a listing run that found nothing to do
/// records both sides; the next run reads the target's facts in one `zfs
/// get`, lists nothing and writes the same records. Behind the cache's
/// back, a hold released by hand on the target, a target snapshot
/// destroyed by hand and a source snapshot made by hand are each noticed,
/// and the run does what a run that lists everything plans (`--test`,
/// which never uses the cache), ending with the same snapshots and holds.
fn quiet_cache(lab: &Lab) {
    let ns = Ns::new("send_quiet");
    let b = ns.backup();
    let (a, x, y) = (ns.ds("zab-a", ""), ns.ds("zab-a", "x"), ns.ds("zab-a", "y"));
    let tp = ns.ds("zab-t", "");
    lab.fresh(&ns, &format!("rm -f {}", send_cache_file(b, &tp)));
    tree(lab, &ns, b, &[&a, &x, &y], &tp);
    let all = [a.as_str(), x.as_str(), y.as_str()];
    let t = |d: &str| format!("{tp}/{d}");
    let s1 = snap(lab, b, &all);
    send(lab, b, &tp, &[]).ok();
    let s2 = snap(lab, b, &all);
    send(lab, b, &tp, &[]).ok();
    // snapshots_changed counts whole seconds: an entry is kept only when it
    // is 5 s older than the listing (zab_core::quiet::MATURITY_SECS).
    std::thread::sleep(std::time::Duration::from_secs(
        zab_core::quiet::MATURITY_SECS as u64 + 1,
    ));
    let snapshots_and_holds = || {
        let snaps = lab.sh(&format!(
            "zfs list -H -p -t snapshot -o name,guid -s name -r {a} {tp}"
        ));
        let holds: Vec<Vec<String>> = all
            .iter()
            .flat_map(|d| [holds(lab, d), holds(lab, &t(d))])
            .collect();
        (snaps, holds)
    };
    // Nothing to do, listed: the cache is written.
    let listed = send(lab, b, &tp, &["--debug"]).ok();
    let calls = listed.zfs_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("zfs list") && c.ends_with(&tp)),
        "{calls:#?}"
    );
    lab.sh(&format!("test -s {}", send_cache_file(b, &tp)));
    let before = snapshots_and_holds();
    // Nothing changed: one zfs process, the same records.
    let quiet = send(lab, b, &tp, &["--debug"]).ok();
    let calls = quiet.zfs_calls();
    assert_eq!(calls.len(), 1, "{}", quiet.stderr);
    assert!(
        calls[0].starts_with("zfs get -H -p -o name,property,value snapshots_changed,"),
        "{calls:#?}"
    );
    for d in all {
        let o = outcome(&quiet, d);
        assert_eq!(o, outcome(&listed, d), "{d}");
        assert_eq!(
            (o.status, o.common.as_deref()),
            (SendStatus::UpToDate, Some(s2.as_str()))
        );
    }
    assert_eq!(quiet.datasets().len(), listed.datasets().len());
    assert_eq!(quiet.end(), listed.end());
    assert_eq!(snapshots_and_holds(), before);

    // Our hold on x's target snapshot released by hand: listed, held again.
    let tag = format!("zfs_autobackup:{b}");
    lab.sh(&format!("zfs release {tag} {}@{s2}", t(&x)));
    let rehold = send(lab, b, &tp, &["--debug"]).ok();
    assert!(rehold.zfs_calls().len() > 1, "{}", rehold.stderr);
    assert_eq!(snapshots_and_holds(), before);
    // x was not held when listed: no entry for it; the next run lists x
    // again and records it, the run after is quiet.
    let again = send(lab, b, &tp, &["--debug"]).ok();
    assert!(again.zfs_calls().len() > 1, "{}", again.stderr);
    let quiet_again = send(lab, b, &tp, &["--debug"]).ok();
    assert_eq!(quiet_again.zfs_calls().len(), 1, "{}", quiet_again.stderr);
    assert_eq!(snapshots_and_holds(), before);

    // y's newest target snapshot destroyed by hand, a snapshot made by hand
    // on a: each is sent as a listing run plans it.
    lab.sh(&format!(
        "zfs release {tag} {y}@{s2}; zfs destroy {y}@{s2}",
        y = t(&y)
    ));
    let s3 = snap(lab, b, &[&a]);
    let planned = send(lab, b, &tp, &["--test"]).ok();
    let changed = send(lab, b, &tp, &["--debug"]).ok();
    assert!(changed.zfs_calls().len() > 1, "{}", changed.stderr);
    for d in all {
        let (p, c) = (outcome(&planned, d), outcome(&changed, d));
        let steps = |o: &SendOutcome| -> Vec<(Option<String>, String)> {
            o.transfers
                .iter()
                .map(|t| (t.from.clone(), t.snapshot.clone()))
                .collect()
        };
        assert_eq!(steps(&p), steps(&c), "{d}");
        assert!(c.transfers.iter().all(|t| t.done), "{d}");
    }
    assert_eq!(
        outcome(&changed, &y).transfers[0].from.as_deref(),
        Some(s1.as_str())
    );
    assert_eq!(outcome(&changed, &a).transfers[0].snapshot, s3);
    assert_eq!(outcome(&changed, &x).status, SendStatus::UpToDate);
    for d in all {
        assert_eq!(lab.snaps(d), lab.snaps(&t(d)), "{d}");
    }
    // And the same snapshots and holds as a run with no cache at all.
    let with_cache = snapshots_and_holds();
    lab.sh(&format!("rm -f {}", send_cache_file(b, &tp)));
    send(lab, b, &tp, &[]).ok();
    assert_eq!(snapshots_and_holds(), with_cache);
}
