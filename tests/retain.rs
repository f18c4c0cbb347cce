//! Retention on an object store, on real OpenZFS: zab-send with
//! `--full-every` starts new chains, zab-thin with the store's URL as
//! TARGET-PATH deletes the old chains and keeps what the schedule's chains
//! need (`--test` deletes nothing), a chain broken by hand is reported and
//! not made worse, `--destroy-missing` deletes a dataset whose source is
//! gone, and zab-restore still restores the newest snapshot afterwards.
//! The sources are in the lab; zab-send, zab-thin and zab-restore run here
//! against a directory (file://) or the local S3 server (s3://). Snapshot
//! names are crafted a day apart, and `--now` puts every run at its day.

use zab_core::record::TransferKind;
use zab_tests::{json, objects, Lab, Ns, Out};

use crate::store::{bucket, dir, s3_env, send};
use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "store_thin_dir_full_every_old_chains_and_a_broken_chain",
        dir_full_every_old_chains_and_a_broken_chain,
    ),
    (
        "store_thin_s3_full_every_destroy_missing_and_restore",
        s3_full_every_destroy_missing_and_restore,
    ),
];

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600;
const DAY: i64 = 86400;

/// Snapshots `dss` with backup `b`'s name of day `d` (UTC).
fn snap_day(lab: &Lab, b: &str, d: i64, dss: &[&str]) -> String {
    let t = chrono::DateTime::from_timestamp(START + d * DAY, 0).unwrap();
    let name = format!("{b}-{}", t.format("%Y%m%d%H%M%S"));
    let argv: Vec<String> = dss.iter().map(|ds| format!("{ds}@{name}")).collect();
    lab.sh(&format!(
        "zfs snapshot {}",
        zab_core::host::quote_argv(&argv)
    ));
    name
}

/// zab-select in the lab, then zab-thin here on `url`.
pub fn thin(lab: &Lab, env: &str, b: &str, url: &str, args: &[&str]) -> Out {
    let extra = zab_core::host::quote_argv(args);
    lab.local_sh(&format!(
        "{env}zab-select --ssh-source zfs-lab --ssh-config \"$CFG\" {b} | \
         zab-thin --utc --ssh-source zfs-lab --ssh-config \"$CFG\" {b} {url} {extra}"
    ))
}

/// The transfer kinds of `ds`'s record.
#[track_caller]
fn kinds(out: &Out, ds: &str) -> Vec<TransferKind> {
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let d = out
        .datasets()
        .into_iter()
        .find(|d| d.name == ds)
        .unwrap_or_else(|| panic!("no record of {ds}: {}", out.stdout));
    d.send
        .map(|s| s.transfers.iter().map(|t| t.kind).collect())
        .unwrap_or_default()
}

/// The record of `ds` (as JSON) and the end record of a zab-thin run.
#[track_caller]
fn thinned(out: &Out, ds: &str) -> (serde_json::Value, serde_json::Value) {
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(json).collect();
    let end = lines.last().cloned().unwrap_or_default();
    assert_eq!(end["kind"], "end", "{}\n{}", out.stdout, out.stderr);
    assert_eq!(end["tool"], "zab-thin");
    let rec = lines
        .iter()
        .find(|l| l["name"] == ds)
        .cloned()
        .unwrap_or_else(|| panic!("no record of {ds}: {}", out.stdout));
    (rec, end)
}

/// `zab-store ls`'s chain record of `ds` (None when the store has none).
fn chain(lab: &Lab, env: &str, url: &str, ds: &str) -> Option<serde_json::Value> {
    let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
    assert_eq!(out.code, 0, "zab-store ls: {}", out.stderr);
    out.stdout
        .lines()
        .map(json)
        .find(|c| c["kind"] == "chain" && c["dataset"] == ds)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn now(d: i64) -> String {
    (START + d * DAY + 3600).to_string()
}

fn dir_full_every_old_chains_and_a_broken_chain(lab: &Lab) {
    let ns = Ns::new("store_thin_dir");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    let back = ns.ds("zab-t", "");
    lab.fresh_sources(&ns, &[&a]);
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());

    // Days 0..=4, one send a day, a full every 2 incrementals: chains
    // [0 1 2] [3 4].
    let mut names = Vec::new();
    let mut seen = Vec::new();
    for day in 0..5 {
        lab.fill(&a, 50);
        names.push(snap_day(lab, b, day, &[&a]));
        let args = ["--full-every", "2", "--now", &now(day), "--verbose"];
        let out = send(lab, "", b, &url, &args);
        seen.extend(kinds(&out, &a));
        // --verbose says when and why a new chain starts, and only then.
        let said = format!(
            "[Target] {a}: starting a new chain (--full-every 2: the chain from @{} has 2 incrementals)",
            names[0]
        );
        assert_eq!(
            out.stderr.contains(&said),
            day == 3,
            "day {day}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.contains("new chain"),
            day == 3,
            "day {day}: {}",
            out.stderr
        );
    }
    use TransferKind::{Full, Incremental as Inc};
    assert_eq!(seen, [Full, Inc, Inc, Full, Inc]);
    let c = chain(lab, "", &url, &a).expect("a chain");
    assert_eq!(objects(&c, "snapshot"), names);

    // --test --verbose: says what goes and why, deletes nothing.
    let keep = [
        "--keep-target",
        "1",
        "--keep-source",
        "100",
        "--now",
        &now(5),
    ];
    let mut args = keep.to_vec();
    args.extend(["--test", "--verbose"]);
    let out = thin(lab, "", b, &url, &args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for n in &names[..3] {
        assert!(
            out.stderr.contains(&format!(
                "{url}/{a}@{n}: Deleting (carries @{n}, which no kept"
            )),
            "{n}: {}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains(&format!(
            "{url}/{a}@{}: Keeping (kept: parent of @{})",
            names[3], names[4]
        )),
        "{}",
        out.stderr
    );
    let (rec, end) = thinned(&out, &a);
    assert_eq!(strings(&rec["thin"]["target"]["destroy"]), names[..3]);
    assert_eq!(rec["thin"]["target"]["destroyed"], false);
    assert_eq!(end["would_destroy"], 3, "{end}");
    assert_eq!(
        objects(&chain(lab, "", &url, &a).unwrap(), "snapshot"),
        names,
        "--test deleted nothing"
    );
    for n in &names {
        assert!(d.join(format!("{a}@{n}")).is_file(), "{n}");
    }

    // For real: the old chain goes whole, the kept one stays whole.
    let out = thin(lab, "", b, &url, &keep);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, end) = thinned(&out, &a);
    assert_eq!(rec["thin"]["target"]["destroyed"], true, "{rec}");
    assert_eq!(rec["thin"]["target"]["dataset"], a.as_str());
    assert_eq!(end["destroyed"], 3, "{end}");
    let c = chain(lab, "", &url, &a).unwrap();
    assert_eq!(objects(&c, "snapshot"), names[3..]);
    assert_eq!(c["status"], "healthy", "{c}");
    for n in &names[..3] {
        assert!(!d.join(format!("{a}@{n}")).exists(), "{n} deleted");
    }
    // The source keeps its snapshots (--keep-source 100).
    let src = lab.sh(&format!("zfs list -H -o name -t snapshot -d 1 {a} | wc -l"));
    assert_eq!(src.trim(), "5");

    // zab-restore still restores the newest snapshot.
    let r = format!("{back}/r");
    let out = lab.restore("", &[&url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let guid = |ds: &str| lab.sh(&format!("zfs get -H -p -o value guid {ds}@{}", names[4]));
    assert_eq!(guid(&r), guid(&a));

    // Two more days, then a middle object deleted by hand: reported, and
    // nothing the chain needs is deleted.
    for day in 5..7 {
        lab.fill(&a, 50);
        names.push(snap_day(lab, b, day, &[&a]));
        let out = send(lab, "", b, &url, &["--full-every", "5", "--now", &now(day)]);
        assert_eq!(kinds(&out, &a), [Inc]);
    }
    std::fs::remove_file(d.join(format!("{a}@{}", names[5]))).unwrap();
    let keep = [
        "--keep-target",
        "1",
        "--keep-source",
        "100",
        "--now",
        &now(7),
    ];
    let out = thin(lab, "", b, &url, &keep);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let warned: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("chain broken"))
        .collect();
    assert_eq!(warned.len(), 1, "one line: {}", out.stderr);
    assert!(
        warned[0].starts_with("zab-thin: ")
            && warned[0].contains(&format!("object {a}@{} is missing", names[5]))
            && warned[0].contains("nothing it needs is deleted"),
        "{}",
        warned[0]
    );
    let (rec, _) = thinned(&out, &a);
    assert_eq!(
        strings(&rec["thin"]["target"]["destroy"]),
        Vec::<String>::new()
    );
    let spared = rec["thin"]["target"]["spared"].to_string();
    assert!(spared.contains("the chain is broken"), "{spared}");
    let c = chain(lab, "", &url, &a).unwrap();
    assert_eq!(objects(&c, "snapshot"), names[3..]);
    assert_eq!(c["status"], "broken", "still said: {c}");
    for n in [&names[3], &names[4], &names[6]] {
        assert!(d.join(format!("{a}@{n}")).is_file(), "{n} kept");
    }

    lab.sh(&format!(
        "zfs destroy -r {} ; zfs destroy -r {back}",
        ns.ds("zab-a", "")
    ));
    let _ = std::fs::remove_dir_all(&d);
}

fn s3_full_every_destroy_missing_and_restore(lab: &Lab) {
    let ns = Ns::new("store_thin_s3");
    let b = ns.backup();
    let (a, gone) = (ns.ds("zab-a", "a"), ns.ds("zab-a", "gone"));
    let back = ns.ds("zab-t", "");
    lab.fresh(
        &ns,
        &format!(
            "zfs create -p -o autobackup:{b}=true {a}; zfs create -o autobackup:{b}=true {gone}; \
         zfs create {back}"
        ),
    );
    let env = s3_env();
    let bkt = bucket(lab, "zab-thin-s3");
    let url = format!("s3://{bkt}/host1");

    // Days 0, 1, 3 with a full every 2 days: [0 1] [3].
    let mut names = Vec::new();
    let mut seen = Vec::new();
    for day in [0, 1, 3] {
        lab.fill(&a, 50);
        names.push(snap_day(lab, b, day, &[&a, &gone]));
        let out = send(
            lab,
            &env,
            b,
            &url,
            &["--full-every", "2d", "--now", &now(day)],
        );
        seen.extend(kinds(&out, &a));
    }
    use TransferKind::{Full, Incremental as Inc};
    assert_eq!(seen, [Full, Inc, Full]);

    // The old chains go.
    let keep = ["--keep-target", "1", "--keep-source", "100"];
    let d4 = now(4);
    let out = thin(lab, &env, b, &url, &[&keep[..], &["--now", &d4]].concat());
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for ds in [&a, &gone] {
        let (rec, _) = thinned(&out, ds);
        assert_eq!(
            strings(&rec["thin"]["target"]["destroy"]),
            names[..2],
            "{ds}"
        );
        let c = chain(lab, &env, &url, ds).unwrap();
        assert_eq!(objects(&c, "snapshot"), names[2..], "{ds}");
        assert_eq!(c["status"], "healthy");
    }

    // The source of `gone` is no longer selected: missing. Before the
    // deadline (its newest is a day old, --destroy-missing 2d) it waits;
    // --test deletes nothing; after it, its objects and manifest go.
    lab.sh(&format!("zfs inherit autobackup:{b} {gone}"));
    let missing = |end: &serde_json::Value| -> serde_json::Value {
        end["missing"]
            .as_array()
            .and_then(|v| v.iter().find(|m| m["dataset"] == gone.as_str()).cloned())
            .unwrap_or_else(|| panic!("{gone} not missing: {end}"))
    };
    let out = thin(
        lab,
        &env,
        b,
        &url,
        &[&keep[..], &["--now", &now(4), "--destroy-missing", "2d"]].concat(),
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (_, end) = thinned(&out, &a);
    assert_eq!(missing(&end)["note"], "Waiting for deadline", "{end}");
    assert!(chain(lab, &env, &url, &gone).is_some());
    let late = now(6);
    let out = thin(
        lab,
        &env,
        b,
        &url,
        &[
            &keep[..],
            &["--now", &late, "--destroy-missing", "2d", "--test"],
        ]
        .concat(),
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (_, end) = thinned(&out, &a);
    assert_eq!(
        missing(&end)["destroy"],
        serde_json::json!([names[2]]),
        "{end}"
    );
    assert_eq!(missing(&end)["dataset_destroyed"], false, "{end}");
    assert!(
        chain(lab, &env, &url, &gone).is_some(),
        "--test deleted nothing"
    );
    let out = thin(
        lab,
        &env,
        b,
        &url,
        &[&keep[..], &["--now", &late, "--destroy-missing", "2d"]].concat(),
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (_, end) = thinned(&out, &a);
    assert_eq!(missing(&end)["dataset_destroyed"], true, "{end}");
    assert!(chain(lab, &env, &url, &gone).is_none(), "{gone}: deleted");
    assert_eq!(
        objects(&chain(lab, &env, &url, &a).unwrap(), "snapshot"),
        names[2..]
    );

    // zab-restore still restores the newest snapshot of `a`.
    let r = format!("{back}/r");
    let out = lab.restore(&env, &[&url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let guid = |ds: &str| lab.sh(&format!("zfs get -H -p -o value guid {ds}@{}", names[2]));
    assert_eq!(guid(&r), guid(&a));
    assert!(
        !out.stdout.contains(super::store::SECRET) && !out.stderr.contains(super::store::SECRET)
    );

    lab.sh(&format!(
        "zfs destroy -r {} ; zfs destroy -r {back}",
        ns.ds("zab-a", "")
    ));
}
