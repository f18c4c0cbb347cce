//! Bookmarks on real OpenZFS (issue 20): zab-send bookmarks the newest
//! snapshot it sent on the source, and goes on from a bookmark when the
//! source's common snapshot is gone (plain and raw); a bookmark of another
//! snapshot is a clear failure that destroys nothing; zab-thin destroys our
//! bookmarks that match no target snapshot, and never anyone else's.
//! zab-send makes its bookmarks with one channel program per source pool,
//! in the guest as over ssh, or one `zfs bookmark` each with
//! [`SEND_NO_PROGRAM`] set: the same bookmarks either way.

use zab_core::host::quote_argv;
use zab_core::record::{SendStatus, TransferKind};
use zab_tests::{Lab, Ns, Out, ALIAS};

use crate::send::{error_of, holds, outcome, send, snap, tree};
use crate::thin::thin;
use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "bookmarks_go_on_when_the_common_snapshot_is_gone",
        go_on_when_the_common_snapshot_is_gone,
    ),
    ("bookmarks_raw_from_a_bookmark", raw_from_a_bookmark),
    (
        "bookmarks_of_another_snapshot_fail_and_destroy_nothing",
        of_another_snapshot_fail_and_destroy_nothing,
    ),
    ("bookmarks_thinned_ours_only", thinned_ours_only),
    (
        "bookmarks_one_program_per_pool_or_one_call_each",
        one_program_per_pool_or_one_call_each,
    ),
];

/// Test `name`'s dataset `zab-a/NAME` of backup NAME and its target path
/// `zab-t/NAME`: (namespace, dataset, target path, the target path's guid).
fn one(lab: &Lab, name: &str) -> (Ns, String, String, String) {
    let ns = Ns::new(name);
    let (a, tp) = (ns.ds("zab-a", ""), ns.ds("zab-t", ""));
    tree(lab, &ns, ns.backup(), &[&a], &tp);
    let guid = lab.prop(&tp, "guid");
    (ns, a, tp, guid)
}

/// The names (after `#`) of `ds`'s bookmarks, oldest first.
fn bookmarks(lab: &Lab, ds: &str) -> Vec<String> {
    lab.sh(&format!(
        "zfs list -H -t bookmark -o name -s createtxg -d 1 {ds}"
    ))
    .lines()
    .filter_map(|l| l.split_once('#').map(|(_, b)| b.to_string()))
    .collect()
}

/// The `zfs send` from bookmark `#bm` that zab-send --debug showed.
fn sent_from(out: &Out, bm: &str) -> String {
    out.stderr
        .lines()
        .find(|l| l.starts_with("# zfs send") && l.contains(&format!("#{bm}")))
        .unwrap_or_else(|| panic!("no zfs send from #{bm}:\n{}", out.stderr))
        .to_string()
}

/// Destroys `ds@name` on the source by hand, its hold released first.
fn destroy_by_hand(lab: &Lab, b: &str, ds: &str, name: &str) {
    lab.sh(&format!(
        "zfs release zfs_autobackup:{b} {ds}@{name} 2>/dev/null; zfs destroy {ds}@{name}"
    ));
}

/// `(from, from_bookmark, snapshot, snapshots)` of each transfer done.
fn shape(
    o: &zab_core::record::SendOutcome,
) -> Vec<(Option<String>, Option<String>, String, usize)> {
    o.transfers
        .iter()
        .filter(|t| t.done)
        .map(|t| {
            assert_eq!(t.kind, TransferKind::Incremental);
            (
                t.from.clone(),
                t.from_bookmark.clone(),
                t.snapshot.clone(),
                t.snapshots,
            )
        })
        .collect()
}

fn go_on_when_the_common_snapshot_is_gone(lab: &Lab) {
    let (ns, a, tp, guid) = one(lab, "bm_go_on");
    let (b, ta) = (ns.backup(), format!("{tp}/{a}"));
    lab.fill(&a, 100);
    let s1 = snap(lab, b, &[&a]);
    let out = send(lab, b, &tp, &[]).ok();
    // The newest snapshot sent is bookmarked, named as zfs-autobackup 4.0 does.
    let bm1 = format!("{s1}_{guid}");
    assert_eq!(bookmarks(lab, &a), vec![bm1.clone()]);
    let notes = outcome(&out, &a).notes;
    assert!(
        notes.contains(&format!("bookmarked as #{bm1}")),
        "{notes:?}"
    );
    // Two more; the common snapshot goes (by hand, as --keep-source 0 would).
    lab.fill(&a, 50);
    let s2 = snap(lab, b, &[&a]);
    lab.fill(&a, 50);
    let s3 = snap(lab, b, &[&a]);
    destroy_by_hand(lab, b, &a, &s1);
    let out = send(lab, b, &tp, &["--debug"]).ok();
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Sent);
    assert_eq!(o.common.as_deref(), Some(s1.as_str()));
    // -i from the bookmark to the next, then from it as usual.
    assert_eq!(
        shape(&o),
        vec![
            (Some(s1.clone()), Some(bm1.clone()), s2.clone(), 1),
            (Some(s2.clone()), None, s3.clone(), 1),
        ]
    );
    let want = format!("-i {} {a}@{s2}", quote_argv(&[format!("{a}#{bm1}")]));
    assert!(
        sent_from(&out, &bm1).contains(&want),
        "{want}:\n{}",
        out.stderr
    );
    assert_eq!(lab.snapshot_names(&ta), vec![s1.clone(), s2, s3.clone()]);
    lab.same_files(&a, &ta);
    // The new common snapshot is held on both sides, as after any transfer.
    let tag = format!("zfs_autobackup:{b}");
    assert_eq!(holds(lab, &a), vec![format!("{s3} {tag}")]);
    assert_eq!(holds(lab, &ta), vec![format!("{s3} {tag}")]);
    assert_eq!(
        bookmarks(lab, &a),
        vec![bm1.clone(), format!("{s3}_{guid}")]
    );
    // --no-bookmarks makes none.
    lab.fill(&a, 10);
    let s4 = snap(lab, b, &[&a]);
    send(lab, b, &tp, &["--no-bookmarks"]).ok();
    assert_eq!(lab.snapshot_names(&ta).last(), Some(&s4));
    assert_eq!(bookmarks(lab, &a), vec![bm1, format!("{s3}_{guid}")]);
}

fn raw_from_a_bookmark(lab: &Lab) {
    let ns = Ns::new("bm_raw");
    let b = ns.backup();
    let (key, enc, tp) = lab.encrypted_source(&ns);
    let guid = lab.prop(&tp, "guid");
    lab.fill(&enc, 100);
    let s1 = snap(lab, b, &[&enc]);
    send(lab, b, &tp, &[]).ok();
    let t = format!("{tp}/{enc}");
    assert_eq!(lab.prop(&t, "keystatus"), "unavailable");
    lab.fill(&enc, 30);
    let s2 = snap(lab, b, &[&enc]);
    destroy_by_hand(lab, b, &enc, &s1);
    let out = send(lab, b, &tp, &["--debug"]).ok();
    let bm1 = format!("{s1}_{guid}");
    assert_eq!(
        shape(&outcome(&out, &enc)),
        vec![(Some(s1), Some(bm1.clone()), s2.clone(), 1)]
    );
    let sent = sent_from(&out, &bm1);
    assert!(sent.contains(" -w "), "raw: {sent}");
    assert_eq!(lab.prop(&t, "keystatus"), "unavailable");
    assert_eq!(lab.prop(&t, "encryptionroot"), t);
    lab.sh(&format!("zfs load-key -L file://{key} {t}"));
    lab.same_files(&enc, &t);
    assert_eq!(lab.snapshot_names(&t).last(), Some(&s2));
}

fn of_another_snapshot_fail_and_destroy_nothing(lab: &Lab) {
    let (ns, a, tp, guid) = one(lab, "bm_wrong");
    let (b, ta) = (ns.backup(), format!("{tp}/{a}"));
    lab.fill(&a, 50);
    let s1 = snap(lab, b, &[&a]);
    send(lab, b, &tp, &[]).ok();
    // Our bookmark's name now marks another snapshot (made, bookmarked,
    // destroyed), and the common snapshot is gone.
    let bm1 = format!("{s1}_{guid}");
    lab.fill(&a, 10);
    lab.sh(&format!(
        "set -e; zfs destroy '{a}#{bm1}'; zfs snapshot {a}@wrong; \
         zfs bookmark {a}@wrong '{a}#{bm1}'; zfs destroy {a}@wrong"
    ));
    let s2 = snap(lab, b, &[&a]);
    destroy_by_hand(lab, b, &a, &s1);
    let target_before = lab.snaps(&ta);
    let source_before = (lab.snaps(&a), bookmarks(lab, &a));
    let out = send(lab, b, &tp, &[]);
    assert_eq!(out.code, 1, "one dataset failed: {}", out.stderr);
    assert_eq!(outcome(&out, &a).status, SendStatus::Failed);
    let err = error_of(&out, &a);
    assert!(err.contains("no common snapshot"), "{err}");
    assert!(out.stderr.contains(&err), "on stderr: {}", out.stderr);
    // Nothing destroyed, nothing received, no bookmark made.
    assert_eq!(lab.snaps(&ta), target_before);
    assert_eq!((lab.snaps(&a), bookmarks(lab, &a)), source_before);
    assert!(!lab.snapshot_names(&ta).contains(&s2));
}

fn thinned_ours_only(lab: &Lab) {
    let (ns, a, tp, guid) = one(lab, "bm_thin");
    let b = ns.backup();
    let mut sent = Vec::new();
    for _ in 0..3 {
        lab.fill(&a, 10);
        let s = snap(lab, b, &[&a]);
        send(lab, b, &tp, &[]).ok();
        sent.push(s);
    }
    let ours: Vec<String> = sent.iter().map(|s| format!("{s}_{guid}")).collect();
    assert_eq!(bookmarks(lab, &a), ours);
    // Someone else's: by hand, and another target's (another guid).
    let theirs = format!("{}_12345", sent[0]);
    lab.sh(&format!(
        "set -e; zfs bookmark {a}@{s} '{a}#manual'; zfs bookmark {a}@{s} '{a}#{theirs}'",
        s = sent[0]
    ));
    let all = |lab: &Lab| {
        let mut v = bookmarks(lab, &a);
        v.sort();
        v
    };
    let before = all(lab);
    // The target keeps only its newest: the bookmarks still matched what
    // was listed, so they stay this run.
    let keep = ["--keep-source", "10", "--keep-target", "1"];
    thin(lab, &ns, &[&keep[..], &[&tp]].concat()).ok();
    let ta = format!("{tp}/{a}");
    assert_eq!(lab.snapshot_names(&ta), vec![sent[2].clone()]);
    assert_eq!(all(lab), before);
    // --test: says which go, destroys nothing.
    let out = thin(lab, &ns, &[&keep[..], &["--test", &tp]].concat()).ok();
    let rec = out.datasets().into_iter().find(|d| d.name == a).unwrap();
    let side = rec.thin.unwrap().source;
    assert_eq!(side.bookmarks, ours[..2].to_vec());
    assert!(!side.destroyed);
    assert_eq!(all(lab), before);
    // Then ours go, the newest of ours and everyone else's stay.
    let out = thin(lab, &ns, &[&keep[..], &[&tp]].concat()).ok();
    let rec = out.datasets().into_iter().find(|d| d.name == a).unwrap();
    assert!(rec.thin.unwrap().source.destroyed);
    let mut left = vec![ours[2].clone(), theirs, "manual".to_string()];
    left.sort();
    assert_eq!(all(lab), left);
}

/// Set (to anything) in zab-send's environment, it makes one `zfs
/// bookmark` per dataset instead of one channel program per pool, as on a
/// host that cannot run one. For tests only (zab-send's
/// `bookmarks::NO_PROGRAM_ENV`).
const SEND_NO_PROGRAM: &str = "ZAB_SEND_NO_PROGRAM";

/// The lines of `out`'s stderr (zab-send --debug) that run `zfs VERB`,
/// here or over ssh.
fn zfs_calls<'a>(out: &'a Out, verb: &str) -> Vec<&'a str> {
    let word = format!("zfs {verb} ");
    out.stderr
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&word))
        .collect()
}

fn one_program_per_pool_or_one_call_each(lab: &Lab) {
    let ns = Ns::new("bm_program");
    let b = ns.backup();
    let (a, e, tp) = (ns.ds("zab-a", ""), ns.ds("zab-b", ""), ns.ds("zab-t", ""));
    let (c, d) = (ns.ds("zab-a", "c"), ns.ds("zab-a", "d"));
    lab.fresh(
        &ns,
        &format!(
            "zfs destroy -r {e} 2>/dev/null || true; \
             zfs create -o {p}=true {a}; zfs create {c}; zfs create {d}; \
             zfs create -o {p}=true {e}; zfs create {tp}",
            p = ns.prop()
        ),
    );
    let guid = lab.prop(&tp, "guid");
    let all = [a.as_str(), c.as_str(), d.as_str(), e.as_str()];
    let mut sent = Vec::new();
    // One zfs snapshot per pool: zfs takes no other.
    let snap_all = || {
        let s = snap(lab, b, &all[..3]);
        lab.sh(&format!("zfs snapshot {e}@{s}"));
        s
    };
    let check = |sent: &[String]| {
        let want: Vec<String> = sent.iter().map(|s| format!("{s}_{guid}")).collect();
        for ds in all {
            assert_eq!(bookmarks(lab, ds), want, "{ds}");
        }
    };

    // In the guest: one program per pool (three datasets on zab-a, one on
    // zab-b), no zfs bookmark, no read-only probe first.
    sent.push(snap_all());
    let out = send(lab, b, &tp, &["--debug"]).ok();
    let programs = zfs_calls(&out, "program");
    assert_eq!(programs.len(), 2, "{programs:#?}");
    assert!(programs[0].starts_with("zfs program -j zab-a /dev/stdin "));
    assert_eq!(
        programs[0].matches(&format!("#{}_{guid}", sent[0])).count(),
        3
    );
    assert!(programs[1].starts_with(&format!("zfs program -j zab-b /dev/stdin {e}@")));
    assert!(zfs_calls(&out, "bookmark").is_empty(), "{}", out.stderr);
    check(&sent);
    for ds in all {
        let notes = outcome(&out, ds).notes;
        let want = format!("bookmarked as #{}_{guid}", sent[0]);
        assert!(notes.contains(&want), "{ds}: {notes:?}");
    }

    // The fallback: one zfs bookmark per dataset, the same bookmarks.
    sent.push(snap_all());
    let out = lab
        .ssh(&format!(
            "zab-select {b} | {SEND_NO_PROGRAM}=1 zab-send --utc --debug {b} {tp}"
        ))
        .ok();
    assert!(zfs_calls(&out, "program").is_empty(), "{}", out.stderr);
    assert_eq!(zfs_calls(&out, "bookmark").len(), 4, "{}", out.stderr);
    check(&sent);
    assert!(outcome(&out, &e)
        .notes
        .contains(&format!("bookmarked as #{}_{guid}", sent[1])));

    // Pulled over ssh: the programs run on the source host.
    sent.push(snap_all());
    let out = lab
        .local_sh(&format!(
            "set -e; s='--ssh-config '\"$CFG\"; \
             zab-select --exclude-received --ssh-source {ALIAS} $s {b} | \
             zab-send --utc --debug --ssh-source {ALIAS} --ssh-target {ALIAS} $s {b} {tp}"
        ))
        .ok();
    let programs = zfs_calls(&out, "program");
    assert_eq!(programs.len(), 2, "{programs:#?}");
    assert!(programs[0].starts_with("ssh ") && programs[0].contains("zfs program -j zab-a "));
    assert!(zfs_calls(&out, "bookmark").is_empty(), "{}", out.stderr);
    check(&sent);
}
