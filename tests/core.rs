//! zab-core against real OpenZFS: what the tools build on.

use zab_core::host::{Host, HOSTILE_ARGS};
use zab_core::zfs::list_snapshots;
use zab_core::Error;
use zab_tests::{Lab, Ns, ALIAS};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("host_quoting_round_trip", host_quoting_round_trip),
    ("zfs_list_snapshots_one_call", list_snapshots_one_call),
    ("host_long_command_over_ssh", long_command_over_ssh),
];

fn ssh_host(lab: &Lab) -> Host {
    Host::ssh(ALIAS)
        .unwrap()
        .with_ssh_config(Some(&lab.ssh_config))
}

/// What zab-core's Host sends through ssh arrives unchanged and never runs.
fn host_quoting_round_trip(lab: &Lab) {
    let host = Host::ssh(ALIAS)
        .unwrap()
        .with_ssh_config(Some(&lab.ssh_config));
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend_from_slice(HOSTILE_ARGS);
    let out = host.output(&argv).unwrap();
    let got: Vec<&str> = out.split_terminator('\0').collect();
    assert_eq!(got, HOSTILE_ARGS);
    lab.sh("test ! -e /tmp/zab-pwned");
}

fn list_snapshots_one_call(lab: &Lab) {
    let ns = Ns::new("snapshots");
    let a = ns.ds("zab-a", "a");
    let b = ns.ds("zab-a", "b c");
    let none = ns.ds("zab-a", "none");
    lab.sh(&format!(
        "set -e
        zfs create {root}
        zfs create {a}
        zfs create '{b}'
        zfs create {none}
        zfs create {a}/child
        zfs snapshot {a}@one '{b}@one' {a}/child@one
        zfs snapshot {a}@two",
        root = ns.ds("zab-a", ""),
    ));
    let host = ssh_host(lab);
    let map = list_snapshots(&host, &[&a, &b, &none]).unwrap();
    let names = |d: &str| -> Vec<String> { map[d].iter().map(|s| s.name.clone()).collect() };
    assert_eq!(names(&a), vec!["one", "two"]);
    assert_eq!(names(&b), vec!["one"]);
    assert!(map[&none].is_empty());
    assert_eq!(map.len(), 3, "children are not listed");
    assert_eq!(
        map[&a][0].createtxg, map[&b][0].createtxg,
        "one command, one txg"
    );
    // A missing dataset fails the listing; it never reads as "no snapshots".
    let gone = ns.ds("zab-a", "gone");
    match list_snapshots(&host, &[&a, &gone]) {
        Err(Error::Command(e)) => {
            assert_eq!(e.host, ALIAS);
            assert!(e.stderr.contains("dataset does not exist"), "{}", e.stderr);
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    // Locally in the guest the same holds (the fixture's listing, live).
    let out = lab.sh(&format!(
        "zfs list -H -p -t snapshot -o name,createtxg,guid -s createtxg -d 1 {a} '{b}'"
    ));
    let parsed = zab_core::zfs::parse_snapshots(&out, &[&a, &b]).unwrap();
    assert_eq!(parsed[&a], map[&a]);
}

/// A remote command longer than one argument may be (128 KiB on Linux), such
/// as a `zfs snapshot` of thousands of datasets, still arrives whole.
fn long_command_over_ssh(lab: &Lab) {
    let args: Vec<String> = (0..6000)
        .map(|i| format!("pool/data/subvol-{i:05}-disk-0 it's $x"))
        .collect();
    let mut argv = vec!["printf", "%s\\n"];
    argv.extend(args.iter().map(String::as_str));
    assert!(zab_core::host::quote_argv(&argv).len() > 200 * 1024);
    let out = ssh_host(lab).output(&argv).unwrap();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), args.len());
    assert!(got.iter().zip(&args).all(|(a, b)| a == b));
    // The same as one argument for the remote shell fails: the limit is real
    // (here it is even our own exec of ssh that refuses it).
    let direct = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&lab.ssh_config)
        .arg(ALIAS)
        .arg(zab_core::host::quote_argv(&argv))
        .output();
    assert!(
        direct.map_or(true, |o| !o.status.success()),
        "one argument of over 128 KiB went through"
    );
}
