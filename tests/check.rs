//! zab-check and zab-verify on real OpenZFS: zab-check's output against
//! zfs-check's (the real one, installed in the lab by pip) on the same
//! snapshots, locally and over ssh; the temporary mount and clone gone
//! afterwards, also after an error and a signal; zab-verify's verdicts.

use zab_core::host::quote_argv;
use zab_core::record::{Dataset, Difference, VerifyStatus};
use zab_tests::{Lab, Ns};

use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "check_filesystem_snapshot_as_zfs_check",
        filesystem_snapshot_as_zfs_check,
    ),
    (
        "check_volume_snapshot_as_zfs_check",
        volume_snapshot_as_zfs_check,
    ),
    ("check_over_ssh_finds_mismatches", over_ssh_finds_mismatches),
    (
        "check_cleans_up_after_error_and_signal",
        cleans_up_after_error_and_signal,
    ),
    (
        "verify_after_send_then_mismatch_and_no_common",
        verify_after_send_then_mismatch_and_no_common,
    ),
];

/// Chunks of 4 blocks of 4 KiB: several chunks per file with little data.
const SMALL: &[&str] = &["--block-size", "4096", "--count", "4"];

/// A fresh namespace: `zab-a/NAME` and `zab-t/NAME`, empty.
fn fresh(lab: &Lab, test: &str) -> Ns {
    let ns = Ns::new(test);
    lab.sh(&format!(
        "set -e; for d in {a} {t}; do zfs destroy -r $d 2>/dev/null || true; zfs create -p $d; done",
        a = ns.ds("zab-a", ""),
        t = ns.ds("zab-t", ""),
    ));
    ns
}

/// A filesystem `ds` holding every kind of entry zfs-check meets: files of
/// several chunks (one of 13, so that chunk 10 sorts after 9), one of
/// exactly one chunk, an empty file, names with spaces, nested and empty
/// directories, symbolic links (to a file, to a directory), a FIFO and a
/// device node; then its snapshot `@s1`.
fn make_tree(lab: &Lab, ds: &str) {
    lab.sh(&format!(
        "set -e; zfs create {d}; cd \"$(zfs get -H -o value mountpoint {d})\"; \
         mkdir -p 'sub dir/deeper' empty-dir; \
         head -c 200000 /dev/urandom > big; head -c 16384 /dev/urandom > exact; \
         head -c 100 /dev/urandom > 'sub dir/small'; \
         head -c 40000 /dev/urandom > 'sub dir/deeper/f'; : > empty; \
         for i in $(seq 1 12); do echo $i > \"many-$i\"; done; \
         ln -s big link; ln -s 'sub dir' dirlink; mkfifo fifo; mknod dev c 1 3; \
         zfs snapshot {d}@s1",
        d = quote_argv(&[ds])
    ));
}

/// zfs-check's output of `target` with `args`, its tree lines sorted as
/// zab-check sorts them (by path bytewise, then chunk number).
fn zfs_check_sorted(lab: &Lab, args: &[&str], target: &str) -> String {
    let mut argv = vec!["zfs-check"];
    argv.extend_from_slice(args);
    argv.push(target);
    lab.sh(&format!(
        "set -o pipefail; {} | LC_ALL=C sort -t \"$(printf '\\t')\" -k1,1 -k2,2n",
        quote_argv(&argv)
    ))
}

/// zab-check's temporary mounts and clones under `root`, and mount
/// directories of zab-checks no longer running: none expected. (ZFS's own
/// automounts under `.zfs/snapshot` expire by themselves; other tests'
/// zab-checks run at the same time.)
fn leftovers(lab: &Lab, root: &str) -> String {
    lab.sh(&format!(
        "zfs list -H -o name -r {r} | grep _zab-check- || true; \
         grep -F {r} /proc/mounts | grep '@' | grep -v '/[.]zfs/snapshot/' || true; \
         for d in /run/zab/check-*; do [ -e \"$d\" ] || continue; \
           kill -0 \"${{d##*-}}\" 2>/dev/null || echo \"$d\"; done",
        r = quote_argv(&[root])
    ))
}

fn filesystem_snapshot_as_zfs_check(lab: &Lab) {
    let ns = fresh(lab, "check_fs");
    let fs = ns.ds("zab-a", "fs");
    let snap = format!("{fs}@s1");
    make_tree(lab, &fs);
    let theirs = zfs_check_sorted(lab, SMALL, &snap);
    let mut args = vec!["--hash", "sha1"];
    args.extend_from_slice(SMALL);
    args.push(&snap);

    // Mounted: read through .zfs/snapshot.
    let ours = lab.guest("zab-check", &args).ok().stdout;
    assert_eq!(
        ours, theirs,
        "zab-check --hash sha1 against sorted zfs-check"
    );
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(lines.len(), 13 + 1 + 1 + 3 + 12, "{ours}");
    assert!(lines[0].starts_with("big\t0\t"), "{ours}");
    assert!(lines[12].starts_with("big\t12\t"), "{ours}");
    for absent in ["empty", "link", "dirlink", "fifo", "dev"] {
        assert!(
            !lines.iter().any(|l| l.starts_with(&format!("{absent}\t"))),
            "{absent} is not hashed: {ours}"
        );
    }

    // Not mounted: a temporary read-only mount, gone afterwards.
    lab.sh(&format!("zfs unmount {fs}"));
    let unmounted = lab.guest("zab-check", &args).ok().stdout;
    assert_eq!(unmounted, theirs, "through a temporary mount");
    assert_eq!(leftovers(lab, &ns.ds("zab-a", "")), "");
    assert_eq!(
        lab.prop(&fs, "mounted"),
        "no",
        "the filesystem stays as it was"
    );

    // Over ssh, from this side: the same bytes.
    let over_ssh = lab.host("zab-check", &args).ok().stdout;
    assert_eq!(over_ssh, theirs, "over ssh");
    assert_eq!(leftovers(lab, &ns.ds("zab-a", "")), "");
}

fn volume_snapshot_as_zfs_check(lab: &Lab) {
    let ns = fresh(lab, "check_vol");
    let vol = ns.ds("zab-a", "vol");
    let snap = format!("{vol}@s1");
    lab.sh(&format!(
        "set -e; zfs create -V 8M -o volmode=dev {v}; udevadm settle; \
         i=0; until [ -e /dev/zvol/{v} ]; do sleep 0.2; i=$((i+1)); [ $i -lt 100 ]; done; \
         dd if=/dev/urandom of=/dev/zvol/{v} bs=64K count=100 conv=fsync status=none; \
         zfs snapshot {v}@s1",
        v = quote_argv(&[&vol])
    ));
    let args = ["--block-size", "4096", "--count", "64"];
    let theirs = lab.sh(&format!("zfs-check {} {snap}", quote_argv(&args)));
    let mut ours_args = vec!["--hash", "sha1"];
    ours_args.extend_from_slice(&args);
    ours_args.push(&snap);
    let ours = lab.guest("zab-check", &ours_args).ok().stdout;
    assert_eq!(ours, theirs, "byte for byte, unsorted");
    assert_eq!(ours.lines().count(), 32, "8 MiB in chunks of 256 KiB");
    assert_eq!(leftovers(lab, &ns.ds("zab-a", "")), "", "the clone is gone");

    let over_ssh = lab.host("zab-check", &ours_args).ok().stdout;
    assert_eq!(over_ssh, theirs, "over ssh");
    assert_eq!(leftovers(lab, &ns.ds("zab-a", "")), "");

    // --skip samples the same chunks as zfs-check (8 MiB is a multiple of
    // the chunk size, so zfs-check's extra line past the end is dropped).
    let theirs = lab.sh(&format!(
        "set -o pipefail; zfs-check --skip 4 {} {snap} | awk -F '\\t' '$1 < 32'",
        quote_argv(&args)
    ));
    let mut skip_args = vec!["--skip", "4"];
    skip_args.extend_from_slice(&ours_args);
    let ours = lab.guest("zab-check", &skip_args).ok().stdout;
    assert_eq!(ours, theirs, "--skip 4");
    assert_eq!(ours.lines().count(), 7, "chunks 0, 5, …, 30");
}

fn over_ssh_finds_mismatches(lab: &Lab) {
    let ns = fresh(lab, "check_ssh");
    let fs = ns.ds("zab-a", "fs");
    make_tree(lab, &fs);
    // A received copy (the same snapshot), and a copy changed in one chunk
    // whose snapshot has the same name.
    let same = ns.ds("zab-t", "same");
    let changed = ns.ds("zab-t", "changed");
    lab.sh(&format!(
        "set -e; zfs send {fs}@s1 | zfs recv {same}; \
         zfs create {changed}; cp -a \"$(zfs get -H -o value mountpoint {fs})/.\" \
         \"$(zfs get -H -o value mountpoint {changed})/\"; \
         printf X | dd of=\"$(zfs get -H -o value mountpoint {changed})/big\" bs=1 seek=100000 conv=notrunc status=none; \
         zfs snapshot {changed}@s1"
    ));
    let pipe = |target: &str| {
        lab.local_sh(&format!(
            "zab-check --ssh-source zfs-lab --ssh-config \"$CFG\" {small} {fs}@s1 | \
             zab-check --ssh-source zfs-lab --ssh-config \"$CFG\" {small} --check {target}@s1",
            small = quote_argv(SMALL)
        ))
    };
    let out = pipe(&same);
    assert_eq!(out.code, 0, "the received copy matches: {}", out.stderr);
    assert_eq!(out.stdout, "");

    let out = pipe(&changed);
    assert_eq!(
        out.code, 1,
        "one chunk differs: {} {}",
        out.stdout, out.stderr
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with("big: Chunk 6 failed: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("1 of 30 chunks differ"),
        "{}",
        out.stderr
    );

    // --check=FILE here, fed to the remote; sha1 as zfs-check reads it.
    let out = lab.local_sh(&format!(
        "set -e; f=$(mktemp); trap 'rm -f $f' EXIT; \
         ssh -F \"$CFG\" zfs-lab zfs-check {small} {fs}@s1 > $f; \
         zab-check --ssh-source zfs-lab --ssh-config \"$CFG\" --hash sha1 {small} --check=$f {changed}@s1",
        small = quote_argv(SMALL)
    ));
    assert_eq!(
        out.code, 1,
        "zfs-check's hashes, checked: {} {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.starts_with("big: Chunk 6 failed: "),
        "{}",
        out.stdout
    );
    assert_eq!(leftovers(lab, &ns.ds("zab-a", "")), "");
    assert_eq!(leftovers(lab, &ns.ds("zab-t", "")), "");
}

fn cleans_up_after_error_and_signal(lab: &Lab) {
    let ns = fresh(lab, "check_cleanup");
    let vol = ns.ds("zab-a", "vol");
    let fs = ns.ds("zab-a", "fs");
    lab.sh(&format!(
        "set -e; zfs create -V 8M -o volmode=dev {vol}; zfs snapshot {vol}@s1; \
         zfs create {fs}; head -c 4000000 /dev/urandom > \"$(zfs get -H -o value mountpoint {fs})/f\"; \
         zfs snapshot {fs}@s1; zfs unmount {fs}"
    ));

    // An error after the clone is made: the clone is destroyed.
    let out = lab.ssh(&format!(
        "printf 'a\\t0\\t%s\\n' $(printf x | sha1sum | cut -c1-40) | zab-check --hash sha1 --check {vol}@s1"
    ));
    assert_eq!(out.code, 3, "bad input for a volume: {}", out.stderr);
    assert!(
        out.stderr.contains("line 1: expected CHUNK<TAB>HASH"),
        "{}",
        out.stderr
    );
    assert_eq!(leftovers(lab, &ns.ds("zab-a", "")), "", "after an error");

    // SIGTERM while the output is stuck (a reader that never reads): the
    // clone, and the temporary mount, are removed and the status is 130.
    for (target, made) in [
        (
            format!("{vol}@s1"),
            format!("zfs list {vol}_zab-check-$pid"),
        ),
        (
            format!("{fs}@s1"),
            "test -d /run/zab/check-$pid".to_string(),
        ),
    ] {
        let out = lab.ssh(&format!(
            "set -u; f=/run/zab-test-{name}.fifo; rm -f $f; mkfifo $f; exec 3<>$f; \
             zab-check --block-size 512 --count 1 {target} >$f 2>/dev/null & pid=$!; \
             i=0; until {made} >/dev/null 2>&1; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || exit 9; done; \
             kill -TERM $pid; rc=0; wait $pid || rc=$?; rm -f $f; echo $rc",
            name = ns.name,
        ));
        assert_eq!(out.code, 0, "{target}: {}", out.stderr);
        assert_eq!(
            out.stdout.trim(),
            "130",
            "{target}: the status after SIGTERM"
        );
        assert_eq!(
            leftovers(lab, &ns.ds("zab-a", "")),
            "",
            "{target}: after SIGTERM"
        );
    }
}

/// Each record's (name, verify status).
fn verdicts(ds: &[Dataset]) -> Vec<(String, VerifyStatus)> {
    ds.iter()
        .map(|d| {
            let v = d
                .verify
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no verify", d.name));
            (d.name.clone(), v.status)
        })
        .collect()
}

fn verify_after_send_then_mismatch_and_no_common(lab: &Lab) {
    let ns = fresh(lab, "verify_send");
    let b = ns.backup().to_string();
    let root = ns.ds("zab-a", "");
    let fs = ns.ds("zab-a", "fs");
    let vol = ns.ds("zab-a", "vol");
    let target = ns.ds("zab-t", "");
    lab.sh(&format!("zfs set {}=true {root}", ns.prop()));
    make_tree(lab, &fs);
    lab.sh(&format!(
        "set -e; zfs create -V 4M -o volmode=dev {vol}; udevadm settle; \
         i=0; until [ -e /dev/zvol/{vol} ]; do sleep 0.2; i=$((i+1)); [ $i -lt 100 ]; done; \
         dd if=/dev/urandom of=/dev/zvol/{vol} bs=64K count=40 conv=fsync status=none; \
         zab-select {b} | zab-snap {b} | zab-send {b} {target} >/dev/null"
    ));
    let verify = |args: &str| {
        lab.ssh(&format!(
            "zab-select {b} | zab-verify {small} {args} {b} {target}",
            small = quote_argv(SMALL)
        ))
    };
    let tfs = format!("{target}/{fs}");
    let status = |name: &str, v: VerifyStatus| (name.to_string(), v);

    // Right after the send: everything verified.
    let out = verify("");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ds = out.datasets();
    assert_eq!(
        verdicts(&ds),
        [
            status(&root, VerifyStatus::Verified),
            status(&fs, VerifyStatus::Verified),
            status(&vol, VerifyStatus::Verified),
        ]
    );
    let fsv = ds[1].verify.clone().unwrap();
    assert_eq!(fsv.target, tfs);
    assert_eq!(fsv.chunks, Some(30));
    let snap = fsv.snapshot.clone().unwrap();
    assert_eq!(
        ds[2].verify.as_ref().unwrap().chunks,
        Some(256),
        "4 MiB in 16 KiB chunks"
    );
    assert_eq!(out.end().extra["verified"], 3);

    // Both sides over ssh, from this side: the same verdicts.
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source zfs-lab --ssh-target zfs-lab --ssh-config \"$CFG\" {b} {target} | \
         zab-verify --ssh-source zfs-lab --ssh-target zfs-lab --ssh-config \"$CFG\" {small} {b} {target}",
        small = quote_argv(SMALL)
    ));
    assert_eq!(out.code, 0, "over ssh: {}", out.stderr);
    assert!(verdicts(&out.datasets())
        .iter()
        .all(|v| v.1 == VerifyStatus::Verified));

    // The target's snapshot replaced by one of the same name over changed
    // content: a mismatch by name (--no-guid-check), no common snapshot by
    // guid.
    lab.sh(&format!(
        "set -e; zfs set readonly=off {tfs}; \
         [ \"$(zfs get -H -o value mounted {tfs})\" = yes ] || zfs mount {tfs}; \
         printf X | dd of=\"$(zfs get -H -o value mountpoint {tfs})/big\" bs=1 seek=100000 conv=notrunc status=none; \
         for t in $(zfs holds -H {tfs}@{snap} | cut -f2); do zfs release \"$t\" {tfs}@{snap}; done; \
         zfs destroy {tfs}@{snap}; zfs snapshot {tfs}@{snap}"
    ));
    let out = verify("--no-guid-check");
    assert_eq!(
        out.code, 1,
        "a mismatch is a failed dataset: {}",
        out.stderr
    );
    let ds = out.datasets();
    assert_eq!(
        verdicts(&ds),
        [
            status(&root, VerifyStatus::Verified),
            status(&fs, VerifyStatus::Mismatch),
            status(&vol, VerifyStatus::Verified),
        ]
    );
    let fsv = ds[1].verify.clone().unwrap();
    assert_eq!(
        fsv.differences,
        [Difference {
            path: Some("big".into()),
            chunk: 6,
            only: None
        }]
    );
    assert!(ds[1]
        .error
        .as_deref()
        .unwrap()
        .contains("1 of 30 chunks differ"));
    assert_eq!(out.end().failed, 1);

    let out = verify("");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        verdicts(&out.datasets())[1],
        status(&fs, VerifyStatus::NoCommonSnapshot)
    );
    assert_eq!(leftovers(lab, &root), "");
    assert_eq!(leftovers(lab, &target), "");
}
