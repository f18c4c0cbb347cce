//! zab-thin on real OpenZFS, snapshot-only mode: it destroys exactly what the
//! schedule no longer wants, with one listing and one channel program (or,
//! with [`THIN_NO_PROGRAM`] set, one destroy per dataset),
//! never foreign or held snapshots, never the newest, and nothing at all on
//! --test, --no-thinning, or incomplete input.

use std::collections::BTreeMap;

use zab_core::host::quote_argv;
use zab_core::record::Dataset;
use zab_tests::{Lab, Ns, Out, ALIAS, THIN_NO_PROGRAM};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("thin_destroys_exactly_the_plan", destroys_exactly_the_plan),
    ("thin_keeps_newest_and_held", keeps_newest_and_held),
    (
        "thin_test_and_no_thinning_change_nothing",
        test_and_no_thinning_change_nothing,
    ),
    ("thin_refuses_incomplete_input", refuses_incomplete_input),
    ("thin_over_ssh", over_ssh),
    (
        "thin_target_keeps_common_and_unsent",
        target_keeps_common_and_unsent,
    ),
    ("thin_destroy_missing_cases", destroy_missing_cases),
    (
        "thin_missing_after_a_filter_is_not_missing",
        missing_after_a_filter_is_not_missing,
    ),
    (
        "thin_refuses_a_target_over_its_sources",
        refuses_a_target_over_its_sources,
    ),
    (
        "thin_now_is_the_time_thinned_at",
        now_is_the_time_thinned_at,
    ),
    (
        "thin_a_snapshot_held_meanwhile_fails_alone",
        a_snapshot_held_meanwhile_fails_alone,
    ),
];

/// Whether this run destroys by channel program (else one `zfs destroy`
/// per dataset: [`THIN_NO_PROGRAM`] set).
fn by_program() -> bool {
    std::env::var_os(THIN_NO_PROGRAM).is_none()
}

/// Makes, oldest first and one command each (so createtxg follows time),
/// our snapshots of `ds` (UTC names) `d` days and one hour ago for each
/// `d` in `days` (descending), and a foreign snapshot `manual-D` after each
/// day D in `foreign`.
fn daily(lab: &Lab, ns: &Ns, ds: &str, days: std::ops::RangeInclusive<u32>, foreign: &[u32]) {
    let foreign: Vec<String> = foreign.iter().map(u32::to_string).collect();
    lab.sh(&format!(
        "set -e; now=$(date +%s)
        for d in $(seq {last} -1 {first}); do
            zfs snapshot '{ds}@{b}-'$(date -u -d @$((now - d * 86400 - 3600)) +%Y%m%d%H%M%S)
            case \" {foreign} \" in *\" $d \"*) zfs snapshot '{ds}@manual-'$d;; esac
        done",
        first = days.start(),
        last = days.end(),
        b = ns.backup(),
        foreign = foreign.join(" ")
    ));
}

/// The test's dataset on zab-a, marked for its backup, and a child `b`
/// that inherits the mark.
fn marked_and_child(lab: &Lab, ns: &Ns) -> (String, String) {
    let (a, b) = (ns.ds("zab-a", ""), ns.ds("zab-a", "b"));
    lab.sh(&format!(
        "zfs create -o {}=true {a}; zfs create {b}",
        ns.prop()
    ));
    (a, b)
}

/// The snapshot names (after `@`) of `ds`, oldest first.
fn names(lab: &Lab, ds: &str) -> Vec<String> {
    lab.sh(&format!(
        "zfs list -H -t snapshot -o name -s createtxg -d 1 {}",
        quote_argv(&[ds])
    ))
    .lines()
    .map(|l| l.split_once('@').unwrap().1.to_string())
    .collect()
}

/// `zab-select B | zab-thin --utc B ARGS…` in the guest.
pub(crate) fn thin(lab: &Lab, ns: &Ns, args: &[&str]) -> Out {
    let mut argv = vec!["zab-thin", "--utc", ns.backup()];
    argv.extend_from_slice(args);
    lab.ssh(&format!(
        "zab-select {} | {}",
        ns.backup(),
        quote_argv(&argv)
    ))
}

fn record<'a>(ds: &'a [Dataset], name: &str) -> &'a Dataset {
    ds.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no record for {name}"))
}

fn destroys_exactly_the_plan(lab: &Lab) {
    let ns = Ns::new("thin_plan");
    let (a, b) = marked_and_child(lab, &ns);
    daily(lab, &ns, &a, 0..=19, &[15, 3]);
    daily(lab, &ns, &b, 0..=2, &[]);
    let before_a = names(lab, &a);
    let before_b = names(lab, &b);
    // 3,1d1w: the last three, and one per day while younger than a week.
    // The dailies are d days and an hour old, so days 0 to 6 stay.
    let out = thin(lab, &ns, &["--keep-source", "3,1d1w", "--debug"]).ok();
    let ours = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|n| !n.starts_with("manual"))
            .cloned()
            .collect()
    };
    let want_a: Vec<String> = before_a
        .iter()
        .filter(|n| n.starts_with("manual"))
        .cloned()
        .chain(ours(&before_a)[13..].iter().cloned())
        .collect();
    let mut got_a = names(lab, &a);
    let mut want_sorted = want_a.clone();
    got_a.sort();
    want_sorted.sort();
    assert_eq!(got_a, want_sorted, "foreign kept, ours for days 0..=6 kept");
    assert_eq!(
        names(lab, &b),
        before_b,
        "three snapshots: all are the last three"
    );

    let ds = out.datasets();
    let t = record(&ds, &a).thin.clone().unwrap().source;
    assert_eq!(t.destroy, ours(&before_a)[..13].to_vec());
    assert!(t.destroyed);
    assert_eq!(t.kept, 7);
    let tb = record(&ds, &b).thin.clone().unwrap().source;
    assert_eq!((tb.destroy.len(), tb.kept), (0, 3));
    assert_eq!(out.end().extra["destroyed"], 13);

    // One listing for both datasets in the fast columns, one holds query
    // for the obsolete snapshots, and one destroy for the one that loses
    // snapshots: a channel program (after a read-only one that checks that
    // the host runs them), or one `zfs destroy` for the dataset.
    let calls: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("zfs "))
        .collect();
    assert_eq!(calls.len(), 3 + usize::from(by_program()), "{calls:#?}");
    assert!(
        calls[0].starts_with("zfs list -H -p -t snapshot,bookmark -o name,createtxg,guid "),
        "{calls:#?}"
    );
    assert!(
        calls[1].starts_with("zfs holds ")
            && calls[1].contains(&format!("{a}@{}", ours(&before_a)[0])),
        "{calls:#?}"
    );
    if by_program() {
        assert_eq!(calls[2], "zfs program -j -n zab-a /dev/stdin", "{calls:#?}");
        let want = format!("zfs program -j zab-a /dev/stdin {a}@");
        assert!(calls[3].starts_with(&want), "{}", calls[3]);
        assert_eq!(calls[3].matches(" zab-a/").count(), 13, "{}", calls[3]);
    } else {
        assert!(
            calls[2].starts_with(&format!("zfs destroy {a}@")),
            "{}",
            calls[2]
        );
    }

    // Thinning again changes nothing; --explain (stderr) and --svg show the
    // same decisions, kept snapshots only now.
    let svg = format!("/tmp/{}.svg", ns.name);
    let out = thin(
        lab,
        &ns,
        &["--keep-source", "3,1d1w", "--explain", "--svg", &svg],
    )
    .ok();
    assert_eq!(out.end().extra["destroyed"], 0);
    assert!(
        out.stderr.contains(&format!("[Source] {a}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1d1w"), "{}", out.stderr);
    let picture = lab.sh(&format!("cat {svg}; rm -f {svg}"));
    assert!(
        picture.starts_with("<svg") || picture.starts_with("<?xml"),
        "{picture:.80}"
    );
    assert!(
        picture.contains(&ours(&before_a)[19]),
        "the newest is drawn"
    );
    let mut again = names(lab, &a);
    again.sort();
    assert_eq!(again, want_sorted);
}

fn keeps_newest_and_held(lab: &Lab) {
    let ns = Ns::new("thin_held");
    let a = ns.ds("zab-b", "");
    lab.sh(&format!("zfs create -o {}=true {a}", ns.prop()));
    daily(lab, &ns, &a, 0..=5, &[]);
    let before = names(lab, &a);
    let tag = format!("zfs_autobackup:{}", ns.backup());
    lab.sh(&format!(
        "set -e; zfs hold keep {a}@{} ; zfs hold {tag} {a}@{}",
        before[1], before[3]
    ));
    // Keep nothing: all but the newest are obsolete, and the held are spared.
    let out = thin(lab, &ns, &["--keep-source", "0", "--verbose", "--debug"]).ok();
    assert_eq!(
        names(lab, &a),
        vec![before[1].clone(), before[3].clone(), before[5].clone()]
    );
    let t = record(&out.datasets(), &a).thin.clone().unwrap().source;
    assert_eq!(
        t.destroy,
        vec![before[0].clone(), before[2].clone(), before[4].clone()]
    );
    let spared: Vec<(String, String)> = t
        .spared
        .iter()
        .map(|s| (s.name.clone(), s.why.clone()))
        .collect();
    assert_eq!(
        spared,
        vec![
            (before[1].clone(), "held by keep".to_string()),
            (
                before[3].clone(),
                format!("the common snapshot (held by {tag})")
            ),
        ]
    );
    // The holds were asked once, for all obsolete snapshots.
    let holds: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("zfs holds"))
        .collect();
    assert_eq!(holds.len(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{a}@{}: Keeping (held by keep)", before[1])),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("{a}@{}: Destroying", before[0])),
        "{}",
        out.stderr
    );
    lab.sh(&format!(
        "zfs release keep {a}@{}; zfs release {tag} {a}@{}",
        before[1], before[3]
    ));
}

fn test_and_no_thinning_change_nothing(lab: &Lab) {
    let ns = Ns::new("thin_testmode");
    let a = ns.ds("zab-a", "");
    lab.sh(&format!("zfs create -o {}=true {a}", ns.prop()));
    daily(lab, &ns, &a, 0..=4, &[2]);
    let state = || {
        lab.sh(&format!(
            "zfs list -H -p -t snapshot -o name,guid,createtxg -r {a}; zpool history zab-a | grep -c -e 'destroy {a}' || true"
        ))
    };
    let before = state();
    for flag in ["--test", "--no-thinning"] {
        let out = thin(lab, &ns, &["--keep-source", "1", flag]).ok();
        let t = record(&out.datasets(), &a).thin.clone().unwrap().source;
        assert_eq!(t.destroy.len(), 4, "{flag}");
        assert!(!t.destroyed, "{flag}");
        assert_eq!(out.end().extra["would_destroy"], 4);
        assert_eq!(out.end().extra["destroyed"], 0);
        assert_eq!(state(), before, "{flag} changed the pool");
    }
}

fn refuses_incomplete_input(lab: &Lab) {
    let ns = Ns::new("thin_refuse");
    let p = ns.prop();
    let a = ns.ds("zab-b", "");
    lab.sh(&format!("zfs create -o {p}=true {a}; zfs create {a}/x"));
    daily(lab, &ns, &a, 0..=3, &[]);
    daily(lab, &ns, &format!("{a}/x"), 0..=3, &[]);
    let before = (names(lab, &a), names(lab, &format!("{a}/x")));
    let b = ns.backup();
    let cases = [
        // zab-select cut short: no end record.
        format!("zab-select {b} | head -n 1 | zab-thin --keep-source 0 {b}"),
        // A dataset that failed upstream.
        format!("zab-select {b} | jq -c 'if .name == \"{a}/x\" then .error = \"boom\" else . end' | zab-thin --keep-source 0 {b}"),
        // Failures counted in the end record, their records filtered out.
        format!("zab-select {b} | jq -c 'if .kind == \"end\" then .failed = 1 else . end' | zab-thin --keep-source 0 {b}"),
        // A crashed stage: nothing at all.
        format!("true | zab-thin --keep-source 0 {b}"),
    ];
    for case in &cases {
        let out = lab.ssh(case);
        assert_eq!(out.code, 3, "{case}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{case}");
        assert_eq!(out.stderr.lines().count(), 1, "{case}: {}", out.stderr);
        assert!(out.stderr.starts_with("zab-thin: "), "{}", out.stderr);
    }
    assert_eq!((names(lab, &a), names(lab, &format!("{a}/x"))), before);
}

fn over_ssh(lab: &Lab) {
    let ns = Ns::new("thin_ssh");
    let a = ns.ds("zab-a", "sp ace");
    let root = ns.ds("zab-a", "");
    lab.sh(&format!(
        "zfs create {root}; zfs create -o {}=true '{a}'",
        ns.prop()
    ));
    daily(lab, &ns, &a, 0..=3, &[]);
    let before = names(lab, &a);
    let b = ns.backup();
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source {ALIAS} --ssh-config \"$CFG\" {b} | zab-thin --utc --keep-source 2 --ssh-config \"$CFG\" {b}"
    ));
    let out = out.ok();
    let d = record(&out.datasets(), &a).clone();
    assert_eq!(d.host.as_deref(), Some(ALIAS));
    assert_eq!(d.thin.unwrap().source.destroy, before[..2].to_vec());
    assert_eq!(names(lab, &a), before[2..].to_vec());

    // Pulled source, target reached with --ssh-target: the target keeps only
    // its newest, which is also the common snapshot.
    let tpath = ns.ds("zab-t", "");
    let tgt = format!("{tpath}/{a}");
    lab.sh(&format!(
        "set -e; zfs create -p '{tpath}/{root}'; zfs send -R '{a}@{}' | zfs recv -u '{tgt}'",
        before[3]
    ));
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source {ALIAS} --ssh-target {ALIAS} --ssh-config \"$CFG\" {b} {tpath} | \
         zab-thin --utc --keep-target 0 --ssh-target {ALIAS} --ssh-config \"$CFG\" {b} {tpath}"
    ));
    let out = out.ok();
    let t = record(&out.datasets(), &a).thin.clone().unwrap();
    assert_eq!(t.target.unwrap().destroy, vec![before[2].clone()]);
    assert_eq!(names(lab, &tgt), vec![before[3].clone()]);
    assert_eq!(
        names(lab, &a),
        before[2..].to_vec(),
        "the source keeps both"
    );
}

/// Source and target thinned together: the common snapshot stays on both
/// sides, a source snapshot not sent yet stays while the target's schedule
/// wants it, and a target dataset no longer selected is thinned too.
fn target_keeps_common_and_unsent(lab: &Lab) {
    let ns = Ns::new("thin_target");
    let src = ns.ds("zab-a", "src");
    let tpath = ns.ds("zab-t", "");
    let tgt = format!("{tpath}/{src}");
    let gone = format!("{tpath}/zab-a/old");
    lab.sh(&format!(
        "set -e; zfs create {root}; zfs create -o {p}=true {src}
        zfs create -p {tpath}/zab-a/{n}; zfs create {gone}",
        root = ns.ds("zab-a", ""),
        p = ns.prop(),
        n = ns.name
    ));
    // Eight dailies, all sent (same guids); then two more, not sent.
    daily(lab, &ns, &src, 2..=9, &[5]);
    let sent = names(lab, &src);
    lab.sh(&format!(
        "set -e; zfs send -R {src}@{last} | zfs recv -u {tgt}",
        last = sent.last().unwrap()
    ));
    daily(lab, &ns, &src, 0..=1, &[]);
    daily(lab, &ns, &gone, 0..=4, &[]);
    let all = names(lab, &src);
    let ours: Vec<String> = all
        .iter()
        .filter(|n| !n.starts_with("manual"))
        .cloned()
        .collect();
    let gone_before = names(lab, &gone);
    // Our hold on an old target snapshot (a common snapshot long ago) is
    // released, and the snapshot destroyed.
    let tag = format!("zfs_autobackup:{}", ns.backup());
    lab.sh(&format!("zfs hold {tag} {tgt}@{}", ours[0]));
    // ours: d9..d2 (sent, d2 is the common), d1, d0 (not sent).
    let out = thin(
        lab,
        &ns,
        &[
            "--keep-source",
            "1",
            "--keep-target",
            "3",
            &tpath,
            "--debug",
        ],
    )
    .ok();
    // One listing per side, one selection (a target dataset has no
    // record: is its source still selected?), one holds query, one
    // release, and one destroy per dataset that loses snapshots (source,
    // target, the missing one), or one check that channel programs run and
    // one program per pool (the source's, the target's).
    let calls: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("zfs "))
        .collect();
    let count = |p: &str| calls.iter().filter(|c| c.starts_with(p)).count();
    assert_eq!(count("zfs list "), 2, "{calls:#?}");
    assert_eq!(count("zfs get "), 1, "{calls:#?}");
    assert_eq!(count("zfs holds "), 1, "{calls:#?}");
    assert_eq!(count("zfs release "), 1, "{calls:#?}");
    if by_program() {
        assert_eq!(count("zfs program -j -n zab-a "), 1, "{calls:#?}");
        assert_eq!(count("zfs program -j zab-a "), 1, "{calls:#?}");
        assert_eq!(count("zfs program -j zab-t "), 1, "{calls:#?}");
    } else {
        assert_eq!(count("zfs destroy "), 3, "{calls:#?}");
    }
    assert_eq!(calls.len(), 8, "{calls:#?}");

    // Source: the newest (d0), the common (d2) and d1 (not sent; a target
    // keeping the last 3 wants it), and the foreign snapshot.
    assert_eq!(
        names(lab, &src),
        vec![
            "manual-5".to_string(),
            ours[7].clone(),
            ours[8].clone(),
            ours[9].clone()
        ]
    );
    // Target: the last three it has (d4, d3, d2 = the common) and the
    // foreign snapshot, which was sent with -R.
    assert_eq!(
        names(lab, &tgt),
        vec![
            "manual-5".to_string(),
            ours[5].clone(),
            ours[6].clone(),
            ours[7].clone()
        ]
    );
    let rec = record(&out.datasets(), &src).thin.clone().unwrap();
    assert_eq!(rec.source.destroy, ours[..7].to_vec());
    assert_eq!(rec.source.spared.len(), 1);
    assert_eq!(rec.source.spared[0].name, ours[8]);
    let t = rec.target.unwrap();
    assert_eq!(
        (t.dataset.as_str(), t.destroy.clone()),
        (tgt.as_str(), ours[..5].to_vec())
    );
    // The dataset no longer selected: thinned by the target schedule.
    assert_eq!(names(lab, &gone), gone_before[2..].to_vec());
    let missing = out.end().extra["missing"].clone();
    let m: Vec<&str> = missing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dataset"].as_str().unwrap())
        .collect();
    // The containers above the target are not used either (and have nothing
    // of ours); the target path itself is never "missing".
    let containers = (
        format!("{tpath}/zab-a"),
        format!("{tpath}/zab-a/{}", ns.name),
    );
    assert_eq!(
        m,
        vec![containers.0.as_str(), gone.as_str(), containers.1.as_str()]
    );
}

/// `--destroy-missing`, each case of the reference's §3.5.
fn destroy_missing_cases(lab: &Lab) {
    let ns = Ns::new("thin_missing");
    let src = ns.ds("zab-b", "src");
    let tpath = ns.ds("zab-t", "");
    let t = |r: &str| format!("{tpath}/{r}");
    lab.sh(&format!(
        "set -e; zfs create {root}; zfs create -o {p}=true {src}
        zfs create {tpath}; zfs create {a}; zfs create {b}; zfs create {c}; zfs create {c}/kid; zfs create {d}; zfs create {e}",
        root = ns.ds("zab-b", ""),
        p = ns.prop(),
        a = t("only-ours"),
        b = t("foreign-too"),
        c = t("with-children"),
        d = t("recent"),
        e = t("no-snapshots"),
    ));
    daily(lab, &ns, &src, 0..=1, &[]);
    daily(lab, &ns, &t("only-ours"), 3..=5, &[]);
    daily(lab, &ns, &t("foreign-too"), 3..=5, &[4]);
    daily(lab, &ns, &t("with-children"), 3..=5, &[]);
    daily(lab, &ns, &t("recent"), 0..=2, &[]);
    // Our hold on the newest (the old common snapshot) does not stop it.
    let newest = names(lab, &t("only-ours")).pop().unwrap();
    let foreign_before = names(lab, &t("foreign-too"));
    lab.sh(&format!(
        "zfs hold zfs_autobackup:{} {}@{newest}",
        ns.backup(),
        t("only-ours")
    ));

    let out = thin(
        lab,
        &ns,
        &[
            "--destroy-missing",
            "2d",
            "--keep-target",
            "10",
            &tpath,
            "-v",
        ],
    )
    .ok();
    let exists = |d: &str| lab.ssh(&format!("zfs list -H -o name {d}")).code == 0;
    assert!(!exists(&t("only-ours")), "all ours, no children: destroyed");
    // d5, d4, manual-4, d3: ours but the newest go, the foreign one stays.
    assert_eq!(names(lab, &t("foreign-too")), foreign_before[2..].to_vec());
    assert_eq!(names(lab, &t("with-children")).len(), 1, "the newest stays");
    assert!(exists(&format!("{}/kid", t("with-children"))));
    assert_eq!(
        names(lab, &t("recent")).len(),
        3,
        "newest is a day old: waiting"
    );
    assert!(exists(&t("no-snapshots")));
    let notes: BTreeMap<String, String> = out.end().extra["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["dataset"].as_str().unwrap().to_string(),
                m["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(notes[&t("only-ours")], "Destroying");
    assert_eq!(notes[&t("foreign-too")], "Still in use by other snapshots");
    assert_eq!(notes[&t("with-children")], "Still has children here.");
    assert_eq!(notes[&t("recent")], "Waiting for deadline");
    assert_eq!(
        notes[&t("no-snapshots")],
        "has no snapshots made by us (please destroy manually)"
    );
    assert!(
        out.stderr.contains("Still has children here."),
        "{}",
        out.stderr
    );
    // The source is untouched (two dailies, within the default schedule).
    assert_eq!(names(lab, &src).len(), 2);
}

/// A filter between the stages drops a selected dataset's record: its
/// backup is not "missing" (zab-thin asks the source's selection), so
/// `--destroy-missing 0s` leaves it alone and says why. The backup of a
/// dataset whose property was removed, and of one that is gone, are
/// still destroyed.
fn missing_after_a_filter_is_not_missing(lab: &Lab) {
    let ns = Ns::new("thin_filtered");
    let src = |r: &str| ns.ds("zab-b", r);
    let tpath = ns.ds("zab-t", "");
    let t = |r: &str| format!("{tpath}/{}", src(r));
    lab.sh(&format!(
        "set -e; zfs create {root}
        for d in stay filtered deselected; do zfs create -o {p}=true {root}/$d; done
        zfs inherit {p} {root}/deselected
        zfs create {tpath}
        for d in stay filtered deselected deleted; do zfs create -p {tpath}/{root}/$d; done",
        root = src(""),
        p = ns.prop(),
    ));
    for r in ["stay", "filtered", "deselected", "deleted"] {
        daily(lab, &ns, &t(r), 3..=5, &[]);
    }
    let filtered_before = names(lab, &t("filtered"));
    // grep -v: the guest has no jq; the end record stays.
    let out = lab.ssh(&format!(
        "zab-select {b} | grep -v '\"name\":\"{f}\"' | \
         zab-thin --utc {b} --destroy-missing 0s {tpath} -v",
        b = ns.backup(),
        f = src("filtered"),
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let exists = |d: &str| lab.ssh(&format!("zfs list -H -o name {d}")).code == 0;
    assert_eq!(
        names(lab, &t("filtered")),
        filtered_before,
        "filtered out, still selected: untouched"
    );
    assert!(!exists(&t("deselected")), "property removed: missing");
    assert!(!exists(&t("deleted")), "source gone: missing");
    assert_eq!(names(lab, &t("stay")).len(), 3, "in the input: thinned");
    let ds = out.datasets();
    assert_eq!(ds.len(), 1, "only stay is in the input");
    let end = out.end();
    let note = |d: &str| -> String {
        end.extra["missing"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["dataset"] == d)
            .and_then(|m| m["note"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        note(&t("filtered")).contains("source still selected, but not in the input"),
        "{}",
        note(&t("filtered"))
    );
    assert_eq!(note(&t("deselected")), "Destroying");
    assert_eq!(note(&t("deleted")), "Destroying");
    assert!(
        out.stderr.contains(&format!(
            "[Target] {}: Kept: source still selected, but not in the input",
            t("filtered")
        )),
        "{}",
        out.stderr
    );
}

/// A TARGET-PATH above the selected sources on the same host (here their
/// parent): zab-thin refuses before anything runs, and nothing is
/// destroyed. So do an option where a dataset name should be, and the
/// target equal to or below a source.
fn refuses_a_target_over_its_sources(lab: &Lab) {
    let ns = Ns::new("thin_overlap");
    let (parent, a) = (ns.ds("zab-b", ""), ns.ds("zab-b", "a"));
    lab.sh(&format!(
        "zfs create {parent}; zfs create -o {}=true {a}",
        ns.prop()
    ));
    daily(lab, &ns, &a, 3..=5, &[]);
    let before = names(lab, &a);
    let below = format!("{a}/backup");
    for target in [parent.as_str(), &a, &below, "zab-b"] {
        let out = thin(
            lab,
            &ns,
            &["--destroy-missing", "1d", "--keep-target", "0", target],
        );
        assert_eq!(out.code, 2, "{target}: {}", out.stderr);
        assert!(
            out.stderr.contains("the selected source dataset") && out.stderr.lines().count() == 1,
            "{target}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{target}: {}", out.stdout);
        assert_eq!(names(lab, &a), before, "{target}: nothing destroyed");
    }
    let out = thin(lab, &ns, &["--destroy-missing", "1d", "--", "-r"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("invalid TARGET-PATH: \"-r\" is not a dataset name"),
        "{}",
        out.stderr
    );
    assert_eq!(names(lab, &a), before);
}

/// The hidden `--now SECONDS` is "now" for thinning with ZFS too: four
/// snapshots a day apart, all kept by one a day for a week at the clock's
/// now, are a month old at `--now` a month later, and only the newest stays.
fn now_is_the_time_thinned_at(lab: &Lab) {
    let ns = Ns::new("thin_now");
    let a = ns.ds("zab-a", "");
    lab.sh(&format!("zfs create -o {}=true {a}", ns.prop()));
    daily(lab, &ns, &a, 0..=3, &[]);
    let before = names(lab, &a);
    assert_eq!(before.len(), 4);
    let keep = ["--keep-source", "1,1d1w"];
    let out = thin(lab, &ns, &[&keep[..], &["--test"]].concat()).ok();
    assert_eq!(out.end().extra["would_destroy"], 0, "at the clock's now");
    let later = (lab.sh("date +%s").trim().parse::<i64>().unwrap() + 30 * 86400).to_string();
    let out = thin(lab, &ns, &[&keep[..], &["--now", &later]].concat()).ok();
    let t = record(&out.datasets(), &a).thin.clone().unwrap().source;
    assert_eq!(t.destroy, before[..3].to_vec(), "a month later");
    assert!(t.destroyed);
    assert_eq!(names(lab, &a), before[3..].to_vec());
}

/// Someone holds one of the snapshots zab-thin will destroy after it read
/// the holds (a `zfs` ahead of the real one in PATH takes the hold just
/// before the destroying command runs). A channel program destroys the
/// others and reports that one (EBUSY) on its dataset's record; one `zfs
/// destroy` per dataset destroys none of that dataset's. Either way a
/// second dataset in the same batch is thinned, the exit status is 1 and
/// the end record counts only what is gone.
fn a_snapshot_held_meanwhile_fails_alone(lab: &Lab) {
    let ns = Ns::new("thin_racehold");
    let (a, b) = marked_and_child(lab, &ns);
    daily(lab, &ns, &a, 0..=4, &[]);
    daily(lab, &ns, &b, 0..=2, &[]);
    let (before_a, before_b) = (names(lab, &a), names(lab, &b));
    let held = format!("{a}@{}", before_a[1]);
    let bin = format!("/root/{}-bin", ns.name);
    lab.sh(&format!(
        "set -e; mkdir -p {bin}; cat > {bin}/zfs <<'EOF'
#!/bin/sh
case \"$1 $2 $3\" in
\"program -j zab-a\" | destroy*) /usr/sbin/zfs hold racer {held} ;;
esac
exec /usr/sbin/zfs \"$@\"
EOF
chmod 755 {bin}/zfs"
    ));
    let out = lab.ssh(&format!(
        "PATH={bin}:$PATH; zab-select {bk} | zab-thin --utc {bk} --keep-source 0 --debug",
        bk = ns.backup()
    ));
    lab.sh(&format!("zfs release racer {held}; rm -r {bin}"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let ds = out.datasets();
    let (ra, rb) = (record(&ds, &a), record(&ds, &b));
    let err = ra.error.clone().unwrap_or_default();
    let ta = ra.thin.clone().unwrap().source;
    assert_eq!(ta.destroy, before_a[..4].to_vec(), "all but the newest");
    assert!(!ta.destroyed);
    assert_eq!(names(lab, &b), before_b[2..].to_vec());
    assert!(rb.error.is_none() && rb.thin.clone().unwrap().source.destroyed);
    if by_program() {
        let busy = format!("{held}: Device or resource busy");
        assert!(err.contains(&busy), "{err}");
        let counts = "destroying 1 of 4 snapshot(s) failed (3 destroyed)";
        assert!(err.starts_with(counts), "{err}");
        let left = vec![before_a[1].clone(), before_a[4].clone()];
        assert_eq!(names(lab, &a), left);
        assert_eq!(out.end().extra["destroyed"], 5);
        let programs = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("zfs program -j zab-a"))
            .count();
        assert_eq!(programs, 1, "both datasets in one program: {}", out.stderr);
    } else {
        assert!(err.starts_with("destroying 4 snapshot(s): "), "{err}");
        assert_eq!(names(lab, &a), before_a);
        assert_eq!(out.end().extra["destroyed"], 2);
    }
    let said = format!("zab-thin: [Source] {a}: destroying");
    assert!(out.stderr.contains(&said), "{}", out.stderr);
}
