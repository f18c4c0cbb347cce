//! zab-thin's quiet-run cache on real OpenZFS (issue 19): in a quiet
//! pipeline run zab-thin runs no zfs process and ends as a listing run
//! does; a thinning that becomes due, and a snapshot made or destroyed by
//! hand on either side, make it list.

use zab_core::host::quote_argv;
use zab_core::record::Dataset;
use zab_tests::{Lab, Ns, Out};

use crate::send::holds;
use crate::Test;

pub const TESTS: &[Test] = &[("thin_quiet_cache", quiet_cache)];

/// The schedule of both sides: the newest, and one a day for a week.
const KEEP: &str = "1,1d1w";

/// The three quiet-run caches of backup `b` to target `tp`, in the guest.
fn cache_files(b: &str, tp: &str) -> String {
    use zab_core::quiet;
    [
        quiet::file_name(b, None),
        quiet::send::file_name(b, None, None, tp),
        quiet::thin::file_name(b, None, None, Some(tp)),
    ]
    .map(|f| format!("/var/lib/zab/{f}"))
    .join(" ")
}

/// `zab-select | zab-snap | zab-send | zab-thin --debug ARGS…` (the
/// wrapper's pipeline, zab-thin's commands on stderr).
fn pipeline(lab: &Lab, b: &str, tp: &str, args: &[&str]) -> Out {
    let mut thin = vec!["zab-thin", "--utc", "--debug", b, tp, "--keep-source", KEEP];
    thin.extend(["--keep-target", KEEP]);
    thin.extend_from_slice(args);
    lab.ssh(&format!(
        "zab-select {b} | zab-snap --utc {b} | zab-send --utc {b} {tp} | {}",
        quote_argv(&thin)
    ))
    .ok()
}

/// Whether zab-thin answered from its cache.
fn from_cache(out: &Out) -> bool {
    out.stderr.contains("quiet-run cache: nothing changed")
}

fn record<'a>(ds: &'a [Dataset], name: &str) -> &'a Dataset {
    ds.iter().find(|d| d.name == name).unwrap()
}

/// Waits out the cache's maturity rule (whole seconds: an entry is kept
/// only when `snapshots_changed` is 5 s older than the listing).
fn mature() {
    std::thread::sleep(std::time::Duration::from_secs(
        zab_core::quiet::MATURITY_SECS as u64 + 1,
    ));
}

/// After a change: once it is old enough, a listing run writes the
/// cache again and the next run is answered from it.
fn settle(lab: &Lab, b: &str, tp: &str) {
    mature();
    pipeline(lab, b, tp, &[]);
    let out = pipeline(lab, b, tp, &[]);
    assert!(from_cache(&out), "{}", out.stderr);
}

/// Each dataset record's `send` and `thin` fields.
fn outcomes(out: &Out) -> Vec<String> {
    out.datasets()
        .iter()
        .map(|d| format!("{} {:?} {:?}", d.name, d.send, d.thin))
        .collect()
}

/// A quiet run (nothing changed, nothing due) runs no zfs process in
/// zab-thin and writes what a listing run writes, ending with the same
/// snapshots and holds as a run without the cache. Eight days later (with
/// --now) the schedule drops the older snapshots: zab-thin lists and
/// destroys exactly what --test (never cached) plans. A snapshot destroyed
/// by hand on the target, or made by hand on the source, makes it list.
fn quiet_cache(lab: &Lab) {
    let ns = Ns::new("thin_quiet");
    let b = ns.backup();
    let (a, x) = (ns.ds("zab-a", ""), ns.ds("zab-a", "x"));
    let tp = ns.ds("zab-t", "");
    let (ta, tx) = (format!("{tp}/{a}"), format!("{tp}/{x}"));
    lab.fresh(
        &ns,
        &format!(
            "rm -f {}; zfs create -o {}=true {a}; zfs create {x}; zfs create {tp}",
            cache_files(b, &tp),
            ns.prop()
        ),
    );
    // Ours, 3, 2 and 1 days old (one command each: createtxg follows time).
    lab.sh(&format!(
        "set -e; now=$(date +%s); for d in 3 2 1; do
            n={b}-$(date -u -d @$((now - d * 86400 - 3600)) +%Y%m%d%H%M%S)
            zfs snapshot {a}@$n {x}@$n
        done"
    ));
    crate::send::send(lab, b, &tp, &[]).ok();
    let all = [a.as_str(), x.as_str(), ta.as_str(), tx.as_str()];
    let state = || {
        let snaps = lab.sh(&format!(
            "zfs list -H -p -t snapshot -o name,guid -s name -r {a} {tp}"
        ));
        let h: Vec<Vec<String>> = all.iter().map(|d| holds(lab, d)).collect();
        (snaps, h)
    };
    mature();
    // The first run lists (no cache yet) and writes the cache.
    let listed = pipeline(lab, b, &tp, &[]);
    assert!(!listed.zfs_calls().is_empty(), "{}", listed.stderr);
    assert!(!from_cache(&listed));
    lab.sh(&format!(
        "test -s /var/lib/zab/{}",
        zab_core::quiet::thin::file_name(b, None, None, Some(&tp))
    ));
    let before = state();
    // (a) Nothing changed, nothing due: no zfs process, the same records.
    let quiet = pipeline(lab, b, &tp, &[]);
    assert_eq!(quiet.zfs_calls(), Vec::<String>::new(), "{}", quiet.stderr);
    assert!(from_cache(&quiet), "{}", quiet.stderr);
    assert_eq!(outcomes(&quiet), outcomes(&listed));
    assert_eq!(quiet.end(), listed.end());
    assert_eq!(state(), before);
    // The same as a run without the cache.
    lab.sh(&format!("rm -f {}", cache_files(b, &tp)));
    let uncached = pipeline(lab, b, &tp, &[]);
    assert!(!from_cache(&uncached));
    assert_eq!(outcomes(&uncached), outcomes(&listed));
    assert_eq!(state(), before);

    // (c) A target snapshot destroyed by hand (the oldest, not the
    // common one): listed.
    assert!(from_cache(&pipeline(lab, b, &tp, &[])));
    let oldest = lab.snapshot_names(&tx)[0].clone();
    lab.sh(&format!("zfs destroy {tx}@{oldest}"));
    let out = pipeline(lab, b, &tp, &[]);
    assert!(
        !from_cache(&out) && !out.zfs_calls().is_empty(),
        "{}",
        out.stderr
    );
    // A snapshot made by hand on the source (not ours): listed.
    settle(lab, b, &tp);
    lab.sh(&format!("zfs snapshot {a}@manual"));
    let out = pipeline(lab, b, &tp, &[]);
    assert!(
        !from_cache(&out) && !out.zfs_calls().is_empty(),
        "{}",
        out.stderr
    );

    // (b) Eight days later the daily snapshots are due: listed, and
    // destroyed exactly as a run without the cache plans it.
    settle(lab, b, &tp);
    let later = (lab.sh("date +%s").trim().parse::<i64>().unwrap() + 8 * 86400).to_string();
    let planned = pipeline(lab, b, &tp, &["--test", "--now", &later]);
    let done = pipeline(lab, b, &tp, &["--now", &later]);
    assert!(!from_cache(&done), "{}", done.stderr);
    assert!(
        done.stderr.contains("quiet-run cache: a snapshot is due"),
        "{}",
        done.stderr
    );
    let destroys = |out: &Out| -> Vec<(String, Vec<String>)> {
        let ds = out.datasets();
        [a.as_str(), x.as_str()]
            .iter()
            .flat_map(|d| {
                let t = record(&ds, d).thin.clone().unwrap();
                let tgt = t.target.unwrap();
                [
                    (t.source.dataset, t.source.destroy),
                    (tgt.dataset, tgt.destroy),
                ]
            })
            .collect()
    };
    let want = destroys(&planned);
    assert_eq!(destroys(&done), want);
    assert!(want.iter().all(|(_, d)| !d.is_empty()), "{want:?}");
    for (ds, gone) in &want {
        let left = lab.snapshot_names(ds);
        assert!(gone.iter().all(|g| !left.contains(g)), "{ds}: {left:?}");
    }
    assert_eq!(
        done.end().extra["destroyed"],
        planned.end().extra["would_destroy"]
    );
}
