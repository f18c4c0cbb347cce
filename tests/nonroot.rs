//! zab run by a user other than root, with only the permissions that
//! docs/permissions.md lists, delegated with `zfs allow`: the wrapper's
//! whole job (select, snapshot, send, thin) on the source and the target.

use zab_core::host::quote_argv;
use zab_tests::{Lab, Ns};

use crate::Test;

pub const TESTS: &[Test] = &[("nonroot_backup_with_zfs_allow", backup_with_zfs_allow)];

/// The user the test runs zab as (made once, kept between runs).
const USER: &str = "zab-nonroot";

/// docs/permissions.md: what the source needs (zab-snap, zab-send, zab-thin).
const SOURCE: &str = "snapshot,send,hold,release,destroy,mount";

/// docs/permissions.md: what the target needs (zab-send, zab-thin).
const TARGET: &str = "receive,create,mount,canmount,hold,release,destroy";

/// Snapshot names have one-second resolution.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Our holds on the snapshots below `ds`, released, then `ds` destroyed.
fn remove(lab: &Lab, ds: &str) {
    lab.sh(&format!(
        "if zfs list {d} >/dev/null 2>&1; then
            zfs list -H -o name -t snapshot -r {d} | while read -r s; do
                zfs holds -H \"$s\" | cut -f2 | while read -r t; do zfs release \"$t\" \"$s\"; done
            done
            zfs destroy -r {d}
        fi",
        d = quote_argv(&[ds])
    ));
}

/// The wrapper as [`USER`], in a login shell (its own HOME, so its own
/// private directory for ssh sockets and locks).
fn run_as_user(lab: &Lab, args: &[&str]) -> zab_tests::Out {
    let mut argv = vec![zab_tests::WRAPPER];
    argv.extend_from_slice(args);
    lab.ssh(&format!(
        "su - {USER} -s /bin/sh -c {}",
        quote_argv(&[&quote_argv(&argv)])
    ))
}

fn backup_with_zfs_allow(lab: &Lab) {
    let ns = Ns::new("nonroot");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    remove(lab, &a);
    remove(lab, &tp);
    lab.sh(&format!(
        "set -e
        id {USER} >/dev/null 2>&1 || useradd -m -s /bin/sh {USER}
        zfs create -o {prop}=true {a}
        zfs create {a}/child
        zfs create {tp}
        zfs allow -u {USER} {SOURCE} {a}
        zfs allow -u {USER} {TARGET} {tp}",
        prop = ns.prop()
    ));
    lab.fill(&a, 10);

    // The first run: full transfers, holds on both sides.
    let args = ["--utc", "--keep-source", "1", "--keep-target", "1", b, &tp];
    let out = run_as_user(lab, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = lab.snapshot_names(&a);
    assert_eq!(first.len(), 1, "{first:?}");
    let ta = format!("{tp}/{a}");
    assert_eq!(lab.snapshot_names(&ta), first);
    assert_eq!(lab.snapshot_names(&format!("{ta}/child")), first);

    // The second: incremental, then the first snapshot thinned away on
    // both sides (destroy and release as the user).
    next_second();
    lab.fill(&a, 10);
    let out = run_as_user(lab, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let second = lab.snapshot_names(&a);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    assert_eq!(lab.snapshot_names(&ta), second);
    lab.same_files(&a, &ta);

    // Without `send` on the source, the transfer fails, in one line each.
    lab.sh(&format!("zfs unallow -u {USER} send {a}"));
    next_second();
    lab.fill(&a, 10);
    let out = run_as_user(lab, &args);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    remove(lab, &a);
    remove(lab, &tp);
}
