//! Running from cron (issue 21): cron's PATH (`/usr/bin:/bin`) has no
//! `zfs`, which Debian puts in /usr/sbin; neither has a non-root ssh
//! session's. The tools and the wrapper work under such a PATH, locally in
//! the guest and over ssh. (The lab's image also has /usr/bin/zfs and
//! /usr/bin/zpool, links a plain Debian does not have: so the tests use a
//! PATH of links to everything in /usr/bin but those two, [`no_zfs_path`].)
//! Also: ssh gets a connect timeout where the ssh config
//! sets none, so an unreachable host fails in one line; a bad option value
//! stops the wrapper before anything runs; the wrapper's --records and
//! --syslog leave something to read in the morning.

use zab_core::host::quote_argv;
use zab_tests::{Lab, Ns, Out, ALIAS, WRAPPER};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("cron_path_tools_in_the_guest", tools_in_the_guest),
    ("cron_path_over_ssh_as_non_root", over_ssh_as_non_root),
    ("cron_path_wrapper", wrapper_under_cron),
    ("cron_ssh_unreachable_host_one_line", unreachable_host),
];

/// Makes `dir` in the guest (afresh) with a link to every program of
/// /usr/bin and /bin except zfs and zpool: cron's PATH on a Debian without
/// the lab image's /usr/bin/zfs. Returns `dir`.
fn no_zfs_path(lab: &Lab, dir: &str) -> String {
    lab.sh(&format!(
        "set -e; d={d}; rm -rf \"$d\"; mkdir -m 755 \"$d\"
        for f in /usr/bin/* /bin/*; do
            n=${{f##*/}}
            case $n in zfs | zpool) continue ;; esac
            [ -e \"$d/$n\" ] || [ -L \"$d/$n\" ] || ln -s \"$f\" \"$d/$n\"
        done",
        d = quote_argv(&[dir])
    ));
    dir.to_string()
}

/// A non-root user of the guest whose ssh sessions get Debian's PATH for
/// users (/usr/local/bin:/usr/bin:/bin:/usr/games): no sbin.
const USER: &str = "zabcron";

/// Runs `argv` in the guest with PATH=`path` (the zab tools by their full
/// path: /usr/local/bin is not on cron's PATH either).
fn cron(lab: &Lab, path: &str, argv: &[&str]) -> Out {
    lab.ssh(&format!(
        "env PATH={} {}",
        quote_argv(&[path]),
        quote_argv(argv)
    ))
}

/// One selected dataset and a target path in a fresh namespace: (ns,
/// dataset, target path).
fn setup(lab: &Lab, name: &str) -> (Ns, String, String) {
    let ns = Ns::new(name);
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    lab.sh(&format!(
        "set -e
        zfs destroy -r {a} 2>/dev/null || true
        zfs destroy -r {tp} 2>/dev/null || true
        zfs create -o {p}=true {a}
        zfs create {tp}",
        p = ns.prop()
    ));
    lab.fill(&a, 64);
    (ns, a, tp)
}

/// The lines of `stderr` that are not --debug's or --verbose's.
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("ssh ") && !l.starts_with('['))
        .collect()
}

/// Every tool, run by cron's PATH in the guest: zab-select finds zfs in
/// /usr/sbin (and --debug shows it there), and the whole pipeline snapshots,
/// sends (`sh -c 'zfs send ...'`, whose zfs is found through the PATH the
/// tools pass on) and thins.
fn tools_in_the_guest(lab: &Lab) {
    let (ns, a, tp) = setup(lab, "cron_local");
    let b = ns.backup();
    let path = no_zfs_path(lab, &format!("/root/zab-nozfs-{}", ns.name));
    // What makes this test mean something: zfs is not on that PATH.
    let probe = cron(lab, &path, &["sh", "-c", "command -v zfs"]);
    assert_ne!(probe.code, 0, "zfs is on {path}: {}", probe.stdout);

    let out = cron(lab, &path, &["/usr/local/bin/zab-select", "--debug", b]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.datasets().len(), 1);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("/usr/sbin/zfs get ")),
        "--debug shows the zfs used: {}",
        out.stderr
    );

    let bin = "/usr/local/bin";
    let pipeline = format!(
        "set -e; {bin}/zab-select {b} | {bin}/zab-snap {b} | {bin}/zab-send {b} {tp} | {bin}/zab-thin {b} {tp}",
        b = quote_argv(&[b]),
        tp = quote_argv(&[&tp])
    );
    let out = cron(lab, &path, &["sh", "-c", &pipeline]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.end().failed, 0, "{}", out.stdout);
    assert_eq!(lab.snapshot_names(&a).len(), 1);
    lab.same_files(&a, &format!("{tp}/{a}"));
    lab.sh(&format!("rm -rf {}", quote_argv(&[&path])));
}

/// Over ssh as a user whose session's PATH has no zfs (Debian gives a
/// non-root session /usr/local/bin:/usr/bin:/bin:/usr/games; its ~/.bashrc,
/// which bash reads for an ssh command, puts [`no_zfs_path`] in its place
/// here, as on a Debian without the lab's /usr/bin/zfs): the remote
/// command is `env PATH="$PATH:/usr/sbin:/sbin" zfs ...`, in the one ssh
/// call. The lab's ssh config sets ConnectTimeout and ServerAliveInterval,
/// so zab adds neither.
fn over_ssh_as_non_root(lab: &Lab) {
    let (ns, a, _tp) = setup(lab, "cron_ssh");
    lab.sh(&format!(
        "set -e
        id {USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {USER}
        h=$(getent passwd {USER} | cut -d: -f6)
        install -d -m 700 -o {USER} -g {USER} \"$h/.ssh\"
        install -m 600 -o {USER} -g {USER} /root/.ssh/authorized_keys \"$h/.ssh/authorized_keys\"
        printf 'PATH=%s\\n' \"$h/nozfs\" >\"$h/.bashrc\""
    ));
    let home = lab.sh(&format!("getent passwd {USER} | cut -d: -f6"));
    no_zfs_path(lab, &format!("{}/nozfs", home.trim()));
    let dest = format!("{USER}@{ALIAS}");
    let cfg = lab.ssh_config.display().to_string();
    // What makes this test mean something: that session's PATH has no zfs
    // (-S none: not through the lab's shared connection, which is root's).
    let probe = lab.here(
        "ssh",
        &[
            "-F",
            &cfg,
            "-S",
            "none",
            &dest,
            "echo \"$PATH\"; command -v zfs",
        ],
    );
    assert_ne!(probe.code, 0, "zfs is on {USER}'s PATH: {}", probe.stdout);
    assert!(!probe.stdout.contains("sbin"), "{}", probe.stdout);

    let out = lab.host_raw(
        "zab-select",
        &[
            "--debug",
            "--ssh-config",
            &cfg,
            "--ssh-source",
            &dest,
            ns.backup(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ds = out.datasets();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].name, a);
    let ssh: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ssh "))
        .collect();
    assert_eq!(ssh.len(), 1, "{}", out.stderr);
    assert!(
        ssh[0].contains(&format!(
            " -- {dest} 'env PATH=\"$PATH:/usr/sbin:/sbin\" zfs get "
        )),
        "{}",
        ssh[0]
    );
    assert!(
        !ssh[0].contains("ConnectTimeout") && !ssh[0].contains("ServerAliveInterval"),
        "the lab's ssh config sets them: {}",
        ssh[0]
    );
}

/// The wrapper under cron's PATH: a bad option value stops it before
/// anything runs (no snapshot); a good run backs up, keeps its records
/// below --records DIR and ends in the journal with --syslog.
fn wrapper_under_cron(lab: &Lab) {
    let (ns, a, tp) = setup(lab, "cron_wrapper");
    let b = ns.backup();
    let wrapper = format!("/usr/local/bin/{WRAPPER}");
    let path = no_zfs_path(lab, &format!("/root/zab-nozfs-{}", ns.name));
    for bad in [
        &["--rate", "20Q"][..],
        &["--buffer", "1X"],
        &["--set-properties", "readonly"],
        &["--exclude-snapshot-pattern", "("],
        &["--destroy-missing", "30"],
    ] {
        let mut argv = vec![wrapper.as_str()];
        argv.extend_from_slice(bad);
        argv.extend_from_slice(&[b, &tp]);
        let out = cron(lab, &path, &argv);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{bad:?}: {}", out.stderr);
        assert!(
            lines[1].starts_with("zfs-autobackup: error: ") && lines[1].contains(bad[0]),
            "{bad:?}: {}",
            out.stderr
        );
        assert_eq!(lab.snapshot_names(&a), Vec::<String>::new(), "{bad:?}");
    }

    let records = format!("/root/zab-records-{}", ns.name);
    lab.sh(&format!("rm -rf {records} && mkdir -m 700 {records}"));
    let out = cron(
        lab,
        &path,
        &[
            &wrapper,
            "--verbose",
            "--syslog",
            "--records",
            &records,
            b,
            &tp,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(lab.snapshot_names(&a).len(), 1);
    lab.same_files(&a, &format!("{tp}/{a}"));
    let kept = lab.sh(&format!(
        "cd {records} && ls -d {b}-*/ | wc -l && cat {b}-*/thinned.ndjson"
    ));
    let mut kept = kept.lines();
    assert_eq!(kept.next(), Some("1"));
    let thinned = Out {
        code: 0,
        stdout: kept.map(|l| format!("{l}\n")).collect(),
        stderr: String::new(),
    };
    assert_eq!(thinned.datasets().len(), 1);
    // The outcome line reaches the journal (journald reads /dev/log on its
    // own time: look again until it is there, or give up).
    let want = format!("backup {b} to local:{tp} (records in {records}/{b}-");
    let journal = lab.ssh(&format!(
        "for i in $(seq 100); do
            journalctl -q --no-pager -o cat -t zfs-autobackup | grep -F {w} && exit 0
            sleep 0.1
        done; exit 1",
        w = quote_argv(&[&want])
    ));
    assert_eq!(journal.code, 0, "not in the journal: {want}");
    assert!(
        journal.stdout.trim_end().ends_with(": exit 0"),
        "{}",
        journal.stdout
    );
    lab.sh(&format!("rm -rf {records} {}", quote_argv(&[&path])));
}

/// An unreachable host (TEST-NET-1, never routed) with an ssh config that
/// sets no timeout: zab adds ConnectTimeout (and ServerAliveInterval), and
/// the failure is one line.
fn unreachable_host(lab: &Lab) {
    let out = lab.host_raw(
        "zab-select",
        &[
            "--debug",
            "--ssh-config",
            "/dev/null",
            "--ssh-source",
            "root@192.0.2.1",
            "cron-unreachable",
        ],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    let ssh: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ssh "))
        .collect();
    assert_eq!(ssh.len(), 1, "{}", out.stderr);
    assert!(
        ssh[0].contains(" -o ConnectTimeout=10 -o ServerAliveInterval=15 -- root@192.0.2.1 "),
        "{}",
        ssh[0]
    );
    let errors = errors(&out.stderr);
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].starts_with("zab-select: "), "{}", errors[0]);
    assert!(errors[0].contains("192.0.2.1"), "{}", errors[0]);
}
