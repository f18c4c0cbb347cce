//! zab-select on real OpenZFS: every selection rule, locally in the guest and
//! over ssh, asserting the exact selected set and order.

use zab_core::record::{Dataset, PropSource, Reason};
use zab_tests::{Lab, Ns, Out, ALIAS};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("select_true_child_parent_false", true_child_parent_false),
    ("select_spans_pools_and_volumes", spans_pools_and_volumes),
    (
        "select_invalid_value_fails_that_dataset",
        invalid_value_fails_that_dataset,
    ),
    ("select_received_rules", received_rules),
    (
        "select_target_path_same_host_only",
        target_path_same_host_only,
    ),
    ("select_exclude_unchanged", exclude_unchanged),
    ("select_one_zfs_call_per_host", one_zfs_call_per_host),
    ("select_verbose_lines", verbose_lines),
    ("select_nothing_selected", nothing_selected),
    (
        "select_unreachable_host_and_missing_zfs",
        unreachable_host_and_missing_zfs,
    ),
    (
        "select_names_with_spaces_over_ssh",
        names_with_spaces_over_ssh,
    ),
];

/// The names of the selected datasets under the test's namespace, in order.
fn names(out: &Out, ns: &Ns) -> Vec<String> {
    out.datasets()
        .into_iter()
        .filter(|d| d.name.contains(&format!("/{}", ns.name)))
        .map(|d| d.name)
        .collect()
}

fn in_ns<'a>(ds: &'a [Dataset], ns: &Ns) -> Vec<&'a Dataset> {
    ds.iter()
        .filter(|d| d.name.split('/').nth(1) == Some(ns.name.as_str()))
        .collect()
}

/// Prefixes every name in `rest` with the namespace in pool `pool`.
fn full(ns: &Ns, pool: &str, rest: &[&str]) -> Vec<String> {
    rest.iter().map(|r| ns.ds(pool, r)).collect()
}

fn true_child_parent_false(lab: &Lab) {
    let ns = Ns::new("tree");
    let p = ns.prop();
    let d = |r: &str| ns.ds("zab-a", r);
    lab.sh(&format!(
        "set -e
        zfs create {root}
        zfs create -o {p}=true {all}
        zfs create {all}/a
        zfs create {all}/a/deep
        zfs create -o {p}=false {all}/off
        zfs create {all}/off/below
        zfs create -o {p}=child {kids}
        zfs create {kids}/a
        zfs create {kids}/b
        zfs create -o {p}=parent {only}
        zfs create {only}/a
        zfs create {root}/plain",
        root = d(""),
        all = d("all"),
        kids = d("kids"),
        only = d("only"),
    ));
    let expect = full(
        &ns,
        "zab-a",
        &["all", "all/a", "all/a/deep", "kids/a", "kids/b", "only"],
    );

    let local = lab.guest("zab-select", &[ns.backup()]).ok();
    assert_eq!(names(&local, &ns), expect);
    assert!(local.datasets().iter().all(|d| d.host.is_none()));

    let remote = lab.host("zab-select", &[ns.backup()]).ok();
    assert_eq!(names(&remote, &ns), expect);
    assert!(remote
        .datasets()
        .iter()
        .all(|d| d.host.as_deref() == Some(ALIAS)));

    // The same decisions either way, field for field, but the host.
    let strip = |o: &Out| -> Vec<Dataset> {
        o.datasets()
            .into_iter()
            .map(|mut d| {
                d.host = None;
                d
            })
            .collect()
    };
    assert_eq!(strip(&local), strip(&remote));

    // --all: every dataset, with its reason.
    let all = lab.guest("zab-select", &["--all", ns.backup()]).ok();
    let all = all.datasets();
    let got: Vec<(String, Reason)> = in_ns(&all, &ns)
        .into_iter()
        .map(|d| (d.name.clone(), d.reason))
        .collect();
    let want: Vec<(String, Reason)> = [
        ("", Reason::Unset),
        ("all", Reason::Selected),
        ("all/a", Reason::Selected),
        ("all/a/deep", Reason::Selected),
        ("all/off", Reason::Disabled),
        ("all/off/below", Reason::Disabled),
        ("kids", Reason::ChildOnly),
        ("kids/a", Reason::Selected),
        ("kids/b", Reason::Selected),
        ("only", Reason::Selected),
        ("only/a", Reason::ParentOnly),
        ("plain", Reason::Unset),
    ]
    .iter()
    .map(|(r, why)| (d(r), *why))
    .collect();
    assert_eq!(got, want);
    let deep = all.iter().find(|x| x.name == d("all/a/deep")).unwrap();
    assert_eq!(deep.inherited_from.as_deref(), Some(d("all").as_str()));
    assert_eq!(deep.source, PropSource::Local);
    assert_eq!(deep.value.as_deref(), Some("true"));
}

fn spans_pools_and_volumes(lab: &Lab) {
    let ns = Ns::new("pools");
    let p = ns.prop();
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {a}
        zfs create -V 8M {a}/vol
        zfs create -o {p}=true {b}
        zfs create {b}/fs
        zfs create -s -V 64M {b}/fs/sparse",
        a = ns.ds("zab-a", ""),
        b = ns.ds("zab-b", ""),
    ));
    let out = lab.guest("zab-select", &[ns.backup()]).ok();
    let mut got = names(&out, &ns);
    got.sort();
    let mut want = full(&ns, "zab-a", &["", "vol"]);
    want.extend(full(&ns, "zab-b", &["", "fs", "fs/sparse"]));
    want.sort();
    assert_eq!(got, want);
    let vols: Vec<String> = out
        .datasets()
        .into_iter()
        .filter(|d| d.kind == zab_core::zfs::DatasetType::Volume)
        .map(|d| d.name)
        .collect();
    assert_eq!(
        vols,
        vec![ns.ds("zab-a", "vol"), ns.ds("zab-b", "fs/sparse")]
    );
}

fn invalid_value_fails_that_dataset(lab: &Lab) {
    let ns = Ns::new("invalid");
    let p = ns.prop();
    // Not mounted (-u): the selection reads properties only, and a
    // `zfs create` on a loaded lab has failed to mount ("mountpoint or
    // dataset is busy") with the dataset made, failing the set-up.
    lab.sh(&format!(
        "set -e
        zfs create -u {root}
        zfs create -u -o {p}=yes {root}/bad
        zfs create -u {root}/bad/kid
        zfs create -u -o {p}=true {root}/good",
        root = ns.ds("zab-a", ""),
    ));
    for out in [
        lab.guest("zab-select", &[ns.backup()]),
        lab.host("zab-select", &[ns.backup()]),
    ] {
        assert_eq!(out.code, 1, "{}", out.stderr);
        let ds = out.datasets();
        let selected: Vec<&str> = ds
            .iter()
            .filter(|d| d.selected)
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(selected, vec![ns.ds("zab-a", "good")]);
        let bad: Vec<&Dataset> = ds.iter().filter(|d| d.error.is_some()).collect();
        assert_eq!(bad.len(), 2);
        assert!(bad
            .iter()
            .all(|d| d.reason == Reason::Invalid && !d.selected));
        assert_eq!(out.end().failed, 2);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines,
            vec![
                format!("zab-select: [Source] {}: {p} has illegal value 'yes' (expected true, false, child or parent)", ns.ds("zab-a", "bad")),
                format!("zab-select: [Source] {}: {p} has illegal value 'yes' (expected true, false, child or parent)", ns.ds("zab-a", "bad/kid")),
            ]
        );
    }
}

fn received_rules(lab: &Lab) {
    let ns = Ns::new("received");
    let p = ns.prop();
    let src = ns.ds("zab-a", "src");
    let recv = ns.ds("zab-t", "recv");
    lab.sh(&format!(
        "set -e
        zfs create {a}
        zfs create -o {p}=true {src}
        zfs snapshot {src}@s1
        zfs create {t}
        zfs send -p {src}@s1 | zfs recv -u {recv}
        zfs create {recv}/child
        test \"$(zfs get -H -o source {p} {recv})\" = received",
        a = ns.ds("zab-a", ""),
        t = ns.ds("zab-t", ""),
    ));
    let b = ns.backup();
    let every = vec![src.clone(), recv.clone(), format!("{recv}/child")];

    // Snapshot-only mode on one host: received datasets are left out.
    let out = lab.guest("zab-select", &[b]).ok();
    assert_eq!(names(&out, &ns), vec![src.clone()]);
    let all = lab.guest("zab-select", &["--all", b]).ok().datasets();
    let r = all
        .iter()
        .find(|d| d.name == format!("{recv}/child"))
        .unwrap();
    assert_eq!(
        (r.reason, r.source),
        (Reason::Received, PropSource::Received)
    );
    assert_eq!(r.inherited_from.as_deref(), Some(recv.as_str()));
    // --include-received turns that off.
    let out = lab.guest("zab-select", &["--include-received", b]).ok();
    assert_eq!(names(&out, &ns), every);
    // With a target path the automatic exclusion does not apply...
    let out = lab.guest("zab-select", &[b, "zab-t/elsewhere"]).ok();
    assert_eq!(names(&out, &ns), every);
    // ...but --exclude-received does.
    let out = lab
        .guest("zab-select", &["--exclude-received", b, "zab-t/elsewhere"])
        .ok();
    assert_eq!(names(&out, &ns), vec![src.clone()]);
    // Pulled over ssh (source != target), no automatic exclusion, as upstream.
    let out = lab.host("zab-select", &[b]).ok();
    assert_eq!(names(&out, &ns), every);
    let out = lab.host("zab-select", &["--exclude-received", b]).ok();
    assert_eq!(names(&out, &ns), vec![src]);
}

fn target_path_same_host_only(lab: &Lab) {
    let ns = Ns::new("target");
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {root}
        zfs create {root}/backup
        zfs create {root}/backup/host1
        zfs create {root}/backupx"
    ));
    let target = ns.ds("zab-a", "backup");
    let b = ns.backup();
    let kept = full(&ns, "zab-a", &["", "backupx"]);
    let every = full(&ns, "zab-a", &["", "backup", "backup/host1", "backupx"]);

    let out = lab.guest("zab-select", &[b, &target]).ok();
    assert_eq!(names(&out, &ns), kept);
    let all = lab
        .guest("zab-select", &["--all", b, &target])
        .ok()
        .datasets();
    let t = all
        .iter()
        .find(|d| d.name == format!("{target}/host1"))
        .unwrap();
    assert_eq!(t.reason, Reason::TargetPath);
    // Pull mode: the target is on another host, nothing is excluded.
    let out = lab.host("zab-select", &[b, &target]).ok();
    assert_eq!(names(&out, &ns), every);
    // Source and target both on the lab: the same host again.
    let out = lab
        .host("zab-select", &["--ssh-target", ALIAS, b, &target])
        .ok();
    assert_eq!(names(&out, &ns), kept);
}

fn exclude_unchanged(lab: &Lab) {
    let ns = Ns::new("unchanged");
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {root}
        zfs create {root}/quiet
        zfs create {root}/busy
        zfs snapshot {root}@s {root}/quiet@s {root}/busy@s
        dd if=/dev/urandom of=/zab-a/{n}/busy/f bs=64k count=16 2>/dev/null
        zpool sync zab-a",
        n = ns.name
    ));
    let b = ns.backup();
    let out = lab
        .guest("zab-select", &["--exclude-unchanged", "512K", b])
        .ok();
    assert_eq!(names(&out, &ns), full(&ns, "zab-a", &["busy"]));
    let all = lab.guest("zab-select", &["--all", b]).ok().datasets();
    let busy = all
        .iter()
        .find(|d| d.name == ns.ds("zab-a", "busy"))
        .unwrap();
    assert!(busy.written >= 1 << 20, "written {}", busy.written);
    let quiet = all
        .iter()
        .find(|d| d.name == ns.ds("zab-a", "quiet"))
        .unwrap();
    assert!(quiet.written < 512 << 10, "written {}", quiet.written);
    // The threshold is exact: written == threshold is kept, one more byte is not.
    let w = busy.written.to_string();
    let w1 = (busy.written + 1).to_string();
    let out = lab.host("zab-select", &["--exclude-unchanged", &w, b]).ok();
    assert_eq!(names(&out, &ns), full(&ns, "zab-a", &["busy"]));
    let out = lab
        .host("zab-select", &["--all", "--exclude-unchanged", &w1, b])
        .ok();
    let ds = out.datasets();
    assert!(in_ns(&ds, &ns)
        .iter()
        .all(|d| d.reason == Reason::Unchanged));
    // 0 turns it off.
    let out = lab
        .guest("zab-select", &["--exclude-unchanged", "0", b])
        .ok();
    assert_eq!(names(&out, &ns), full(&ns, "zab-a", &["", "quiet", "busy"]));
}

fn one_zfs_call_per_host(lab: &Lab) {
    let ns = Ns::new("calls");
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {root}
        for i in $(seq 1 40); do echo {root}/d$i; done | xargs -n 20 sh -c 'for d; do zfs create $d; done' sh"
    ));
    let out = lab.guest("zab-select", &["--debug", ns.backup()]).ok();
    assert_eq!(names(&out, &ns).len(), 41);
    // --debug also shows the verbose lines; the commands are the rest.
    let commands = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| !l.starts_with('[') && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let cmds = commands(&out.stderr);
    assert_eq!(
        cmds,
        vec![format!("zfs get -H -p -o name,property,value,source -t filesystem,volume {p},type,createtxg,written,snapshots_changed")]
    );
    let out = lab.host("zab-select", &["--debug", ns.backup()]).ok();
    let cmds = commands(&out.stderr);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert!(cmds[0].starts_with("ssh -F "), "{}", cmds[0]);
    assert!(cmds[0].ends_with(&format!(
        " -- zfs-lab 'env PATH=\"$PATH:/usr/sbin:/sbin\" zfs get -H -p -o name,property,value,source -t filesystem,volume {p},type,createtxg,written,snapshots_changed'"
    )), "{}", cmds[0]);
    // The debug line is a working command: paste it into a shell.
    let pasted = lab.here("sh", &["-c", &cmds[0]]);
    assert_eq!(pasted.code, 0, "{}", pasted.stderr);
    assert!(pasted
        .stdout
        .contains(&format!("{root}/d40\t{p}\ttrue\tinherited from {root}")));
}

fn verbose_lines(lab: &Lab) {
    let ns = Ns::new("verbose");
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {root}
        zfs create -o {p}=false {root}/swap"
    ));
    let out = lab.guest("zab-select", &["--verbose", ns.backup()]).ok();
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        vec![
            format!("[Source] {root}: Selected"),
            format!("[Source] {root}/swap: Excluded"),
        ]
    );
    // Quiet by default: nothing on stderr when all is well.
    let out = lab.guest("zab-select", &[ns.backup()]).ok();
    assert_eq!(out.stderr, "");
}

fn nothing_selected(lab: &Lab) {
    let ns = Ns::new("nothing");
    let out = lab.guest("zab-select", &[ns.backup()]);
    assert_eq!(out.code, 5);
    assert_eq!(
        out.stderr,
        format!(
            "zab-select: no source datasets selected: none has {p} set on local (set it with: zfs set {p}=true POOL/DATASET)\n",
            p = ns.prop()
        )
    );
    assert_eq!(out.end().datasets, 0);
    // Everything excluded is not "nothing selected" (upstream #190).
    let p = ns.prop();
    lab.sh(&format!("zfs create -o {p}=false {}", ns.ds("zab-a", "")));
    let out = lab.guest("zab-select", &[ns.backup()]).ok();
    assert_eq!(out.datasets().len(), 0);
}

fn unreachable_host_and_missing_zfs(lab: &Lab) {
    // A host that refuses connections, from our own ssh config.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("zab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("ssh_config");
    std::fs::write(
        &cfg,
        "Host deadhost\n  HostName 127.0.0.1\n  Port 1\n  BatchMode yes\n  ConnectTimeout 5\n",
    )
    .unwrap();
    let out = lab.host_raw(
        "zab-select",
        &[
            "x",
            "--ssh-source",
            "deadhost",
            "--ssh-config",
            cfg.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 4);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("zab-select: cannot reach deadhost over ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "", "no records, not even an end record");

    // zfs missing on the host that runs it: not on PATH, nor in /usr/sbin
    // and /sbin, where the tools look too (an empty /usr/sbin, in a mount
    // namespace of its own; /sbin is a link to it on Debian 12).
    let out = lab.ssh(
        "unshare -m sh -c 'mount -t tmpfs none /usr/sbin && PATH=/nonexistent exec /usr/local/bin/zab-select x'",
    );
    assert_eq!(out.code, 4);
    assert_eq!(
        out.stderr,
        "zab-select: zfs not found on local (is it installed and in PATH?)\n"
    );
    assert_eq!(out.stdout, "");
    std::fs::remove_dir_all(&dir).ok();
}

fn names_with_spaces_over_ssh(lab: &Lab) {
    let ns = Ns::new("spaces");
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    let odd = format!("{root}/my data");
    lab.sh(&format!(
        "set -e
        zfs create -o {p}=true {root}
        zfs create '{odd}'"
    ));
    let out = lab.host("zab-select", &[ns.backup()]).ok();
    assert_eq!(names(&out, &ns), vec![root.clone(), odd.clone()]);
    // The target path with a space is excluded exactly.
    let out = lab
        .host("zab-select", &["--ssh-target", ALIAS, ns.backup(), &odd])
        .ok();
    assert_eq!(names(&out, &ns), vec![root]);
}
