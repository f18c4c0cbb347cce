//! The read-only modes on real OpenZFS: every tool's test mode (zab-snap
//! --test, zab-send --test and --plan, zab-thin --test and --no-thinning,
//! zab-select always, the wrapper's --test) leaves the pools exactly as they
//! were, down to `zpool history`, where each of them would have work to do
//! in a real run: snapshots to take, transfers to make and resume, snapshots
//! and holds to destroy and release, a missing dataset to destroy.
//!
//! The test has pools of its own (file-backed, in the guest), since the
//! shared pools' history changes with every other test running.

use zab_core::host::quote_argv;
use zab_tests::{Lab, Out, ALIAS, WRAPPER};

use crate::Test;

pub const TESTS: &[Test] = &[(
    "readonly_test_modes_change_nothing",
    test_modes_change_nothing,
)];

const SRC: &str = "zabro-src";
const TGT: &str = "zabro-tgt";
const BACKUP: &str = "zabro";

/// Creates the two pools afresh from files under /var/tmp (left over ones
/// from an earlier run first destroyed).
fn create_pools(lab: &Lab) {
    destroy_pools(lab);
    lab.sh(&format!(
        "set -e
        for p in {SRC} {TGT}; do
            truncate -s 256M /var/tmp/$p.img
            zpool create -O mountpoint=/$p $p /var/tmp/$p.img
        done"
    ));
}

fn destroy_pools(lab: &Lab) {
    lab.ssh(&format!(
        "for p in {SRC} {TGT}; do
            zpool destroy -f $p 2>/dev/null; rm -f /var/tmp/$p.img
        done"
    ));
}

/// Destroys the pools when the test ends, failed or not.
struct Pools<'a>(&'a Lab);

impl Drop for Pools<'_> {
    fn drop(&mut self) {
        destroy_pools(self.0);
    }
}

/// Everything a mutating command could change: every dataset and snapshot
/// with its guid, holds count, `written`, resume token and mount state;
/// every hold; every property; and both pools' history with the internal
/// events (each `zfs snapshot`, `destroy`, `hold`, `release`, `set`,
/// `receive`, ... that ever succeeded).
fn state(lab: &Lab) -> String {
    lab.sh(&format!(
        "set -e
        echo '# list'
        zfs list -H -p -t all -s name -r \
            -o name,guid,createtxg,userrefs,written,receive_resume_token,mounted {SRC} {TGT}
        echo '# holds'
        zfs list -H -t snapshot -o name -r {SRC} {TGT} | xargs -r zfs holds -H -p
        echo '# properties'
        zfs get -H -p -o name,property,value,source all -r {SRC} {TGT} | sort
        echo '# history'
        zpool history -il {SRC} {TGT}"
    ))
}

/// A pipeline run in the guest; it must succeed.
#[track_caller]
fn guest_ok(lab: &Lab, script: &str) -> Out {
    let out = lab.ssh(&format!("set -o pipefail; set -e; {script}"));
    assert_eq!(
        out.code, 0,
        "in the lab: {script}\nstderr:\n{}\nstdout:\n{}",
        out.stderr, out.stdout
    );
    out
}

fn test_modes_change_nothing(lab: &Lab) {
    create_pools(lab);
    let pools = Pools(lab);
    let data = format!("{SRC}/data");
    let target = format!("{TGT}/backup");
    // data (selected) with children a, b and gone; ten daily snapshots of
    // ours in the past, so that the schedules below have plenty to thin.
    lab.sh(&format!(
        "set -e
        zfs create -o autobackup:{BACKUP}=true {data}
        zfs create {data}/a; zfs create {data}/b; zfs create {data}/gone
        zfs create {target}
        now=$(date +%s)
        for d in $(seq 10 -1 1); do
            zfs snapshot -r {data}@{BACKUP}-$(date -u -d @$((now - d * 86400)) +%Y%m%d%H%M%S)
        done"
    ));
    lab.fill(&format!("{data}/a"), 256);
    // A real run first: every snapshot sent, the common ones held.
    let first = guest_ok(
        lab,
        &format!(
            "zab-select {BACKUP} | zab-snap --utc {BACKUP} | zab-send --utc {BACKUP} {target}"
        ),
    );
    assert_eq!(first.end().failed, 0, "{}", first.stdout);
    // Work for the next run: `gone` is no longer selected (its target is
    // missing on the source), `a` has changed, and `c` is new, with an
    // interrupted receive on the target (a resume token).
    let c = format!("{data}/c");
    let c_target = format!("{target}/{c}");
    lab.sh(&format!(
        "zfs set autobackup:{BACKUP}=false {data}/gone; zfs create {c}"
    ));
    lab.fill(&c, 2048);
    lab.fill(&format!("{data}/a"), 64);
    lab.sh(&format!(
        "zfs snapshot {c}@{BACKUP}-$(date -u -d @$(($(date +%s) - 3600)) +%Y%m%d%H%M%S)
        zfs send {c}@$(zfs list -H -o name -t snapshot -d 1 {c} | cut -d@ -f2) |
            head -c 400000 | zfs recv -s -u {c_target} 2>/dev/null
        zpool sync {SRC} {TGT}; true"
    ));
    assert_ne!(
        lab.prop(&c_target, "receive_resume_token"),
        "-",
        "the interrupted receive left a resume token"
    );
    // --destroy-missing 1s: `gone`'s newest snapshot is a second old.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = state(lab);
    // After each tool's runs: the pools are as they were.
    let unchanged = |what: &str| {
        let after = state(lab);
        if after != before {
            let diff = diff_lines(&before, &after);
            panic!("{what} changed the pools:\n{}", diff.join("\n"));
        }
    };

    let thin_args = "--keep-source 1 --keep-target 2 --destroy-missing 1s";
    let select = format!("zab-select {BACKUP}");
    // A hook that would leave a file in the source pool if it ran.
    let hook = format!("touch /{SRC}/hook-ran");
    let snap = format!(
        "zab-snap --test --utc --pre-snapshot-cmd {} {BACKUP}",
        quote_argv(&[&hook])
    );
    // zab-select | zab-snap --test | zab-send --test | zab-thin --test,
    // with every command shown (--debug) and the records between the
    // stages on stderr: each would have work to do.
    let out = guest_ok(
        lab,
        &format!(
            "{select} | {snap} | tee /dev/stderr |
            zab-send --test --debug --utc --destroy-incompatible {BACKUP} {target} |
            tee /dev/stderr | zab-thin --test --debug --utc {thin_args} {BACKUP} {target}"
        ),
    );
    let end = out.end();
    assert!(
        end.extra["would_destroy"].as_u64().unwrap_or(0) > 0,
        "zab-thin --test has snapshots to destroy: {}",
        out.stdout
    );
    let missing = end.extra["missing"].to_string();
    assert!(
        missing.contains(&format!("{target}/{data}/gone")),
        "{missing}"
    );
    assert!(
        out.stderr.contains("\"would_create\":") && !out.stderr.contains("\"would_create\":0"),
        "zab-snap --test would snapshot: {}",
        out.stderr
    );
    unchanged("zab-select | zab-snap --test | zab-send --test | zab-thin --test");
    for want in [
        "\"status\":\"planned\"",
        "\"kind\":\"resumed\"",
        "zfs send -nv -t ",
    ] {
        assert!(out.stderr.contains(want), "{want} in:\n{}", out.stderr);
    }

    // zab-send --plan; zab-thin --no-thinning, with a target and without.
    guest_ok(
        lab,
        &format!(
            "{select} | {snap} | zab-send --plan --utc {BACKUP} {target} >/dev/null
            {select} | zab-thin --no-thinning --utc {thin_args} {BACKUP} {target} >/dev/null
            {select} | zab-thin --no-thinning --utc --keep-source 1 {BACKUP} >/dev/null
            {select} | zab-thin --test --utc --keep-source 1 {BACKUP} >/dev/null"
        ),
    );
    unchanged("zab-send --plan, zab-thin --no-thinning or zab-thin --test");
    // The same tools here, reaching the lab over ssh. zab-select is told
    // that the target is that host too, so that it leaves out the received
    // backups as zfs-autobackup does (else zab-send refuses a target above
    // selected datasets on its own host).
    let ssh = "--ssh-config \"$CFG\"";
    let script = format!(
        "zab-select --ssh-source {ALIAS} --ssh-target {ALIAS} {ssh} {BACKUP} |
        zab-snap --test --utc {ssh} {BACKUP} |
        zab-send --test --utc --ssh-target {ALIAS} {ssh} {BACKUP} {target} |
        zab-thin --test --utc --ssh-target {ALIAS} {ssh} {thin_args} {BACKUP} {target}"
    );
    let out = lab.local_sh(&format!(
        "exec bash -o pipefail -c {}",
        quote_argv(&[&script])
    ));
    assert_eq!(out.code, 0, "over ssh: {}", out.stderr);
    unchanged("the test modes over ssh");
    assert!(out.end().extra["would_destroy"].as_u64().unwrap_or(0) > 0);
    // The wrapper's --test, with everything that acts in a real run.
    let out = lab.guest(
        WRAPPER,
        &[
            "--test",
            "--utc",
            "--keep-source",
            "1",
            "--keep-target",
            "2",
            "--destroy-missing",
            "1s",
            "--destroy-incompatible",
            "--pre-snapshot-cmd",
            &hook,
            BACKUP,
            &target,
        ],
    );
    assert_eq!(out.code, 0, "{WRAPPER} --test: {}", out.stderr);
    unchanged(&format!("{WRAPPER} --test"));
    assert_ne!(
        lab.ssh(&format!("test -e /{SRC}/hook-ran")).code,
        0,
        "a pre-snapshot command ran in a test mode"
    );
    drop(pools);
}

/// The lines only in `a` (`-`) or only in `b` (`+`).
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let only = |x: &str, y: &str, sign: char| -> Vec<String> {
        x.lines()
            .filter(|l| !y.lines().any(|m| m == *l))
            .map(|l| format!("{sign} {l}"))
            .collect()
    };
    let mut out = only(a, b, '-');
    out.extend(only(b, a, '+'));
    out
}
