//! zab-core against real OpenZFS: what the tools build on (hosts and
//! quoting, listings, ssh connection sharing, the run lock).

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zab_core::host::{quote_argv, Host, HOSTILE_ARGS};
use zab_core::zfs::list_snapshots;
use zab_core::Error;
use zab_tests::{Lab, Ns, Out, ALIAS};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("host_quoting_round_trip", host_quoting_round_trip),
    ("zfs_list_snapshots_one_call", list_snapshots_one_call),
    ("host_long_command_over_ssh", long_command_over_ssh),
    (
        "ssh_socket_in_tmp_is_never_used",
        ssh_socket_in_tmp_is_never_used,
    ),
    (
        "lock_held_send_and_thin_exit_75",
        lock_held_send_and_thin_exit_75,
    ),
    ("lock_send_pipe_thin_runs", lock_send_pipe_thin_runs),
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

/// A listening unix socket that someone else made at a path root's ssh
/// would compute, as a local user could before a cron run: it counts the
/// clients that connect (and closes on them at once). Removed when dropped.
struct FakeMaster {
    path: PathBuf,
    connects: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeMaster {
    fn new(path: PathBuf) -> FakeMaster {
        let listener = UnixListener::bind(&path).unwrap();
        // Owned by nobody, open to all: what an unprivileged user leaves.
        std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let connects = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (connects.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FakeMaster {
            path,
            connects,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening; how many clients connected.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.connects.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The ControlPath zab used to give ssh, `/tmp/zab-ssh-%C`, as ssh expands
/// it for the lab's host (anyone can compute it with `ssh -G`).
fn old_control_path(lab: &Lab) -> PathBuf {
    let out = lab.here(
        "ssh",
        &[
            "-G",
            "-F",
            &lab.ssh_config.display().to_string(),
            "-o",
            "ControlPath=/tmp/zab-ssh-%C",
            ALIAS,
        ],
    );
    let line = out
        .ok()
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("controlpath ").map(str::to_string))
        .unwrap();
    assert!(
        line.starts_with("/tmp/zab-ssh-") && line.len() == 13 + 40,
        "{line}"
    );
    PathBuf::from(line)
}

/// A socket another user made at zab's old ControlPath in /tmp is never
/// used: the tool works and never connects to it (before the fix, ssh's
/// mux client connected to it and would have handed it root's commands).
fn ssh_socket_in_tmp_is_never_used(lab: &Lab) {
    let ns = Ns::new("ssh_socket");
    lab.sh(&format!(
        "zfs create -o {}=true {}",
        ns.prop(),
        ns.ds("zab-a", "")
    ));
    let path = old_control_path(lab);
    if std::fs::symlink_metadata(&path).is_ok() {
        // A master left by an older zab (ControlPersist=60): ask it to go.
        let cfg = lab.ssh_config.display().to_string();
        let cp = format!("ControlPath={}", path.display());
        lab.here("ssh", &["-F", &cfg, "-o", &cp, "-O", "exit", ALIAS]);
        let _ = std::fs::remove_file(&path);
    }
    let fake = FakeMaster::new(path.clone());
    let out = lab.host("zab-select", &[ns.backup()]);
    let connects = fake.finish();
    assert_eq!(connects, 0, "ssh connected to {}", path.display());
    let out = out.ok();
    assert_eq!(
        out.datasets()
            .iter()
            .filter(|d| d.selected)
            .map(|d| d.name.clone())
            .collect::<Vec<_>>(),
        vec![ns.ds("zab-a", "")]
    );
    assert!(std::fs::symlink_metadata(&path).is_err(), "fake removed");
}

/// One snapshot of `ds` for backup `b`, named `minutes` minutes ago (UTC).
fn snap_ago(lab: &Lab, b: &str, ds: &str, minutes: u32) -> String {
    lab.sh(&format!(
        "set -e; n={b}-$(date -u -d @$(($(date +%s) - {minutes} * 60)) +%Y%m%d%H%M%S); \
         zfs snapshot {ds}@$n; echo $n"
    ))
    .trim()
    .to_string()
}

/// While another run holds the lock of a backup and target, zab-send and
/// zab-thin exit 75 with a clear line and change nothing; a wrong
/// ZAB_LOCK_FD is refused.
fn lock_held_send_and_thin_exit_75(lab: &Lab) {
    let ns = Ns::new("lock_held");
    let b = ns.backup();
    let (src, tp) = (ns.ds("zab-a", ""), ns.ds("zab-t", ""));
    lab.sh(&format!(
        "zfs create -o {}=true {src}; zfs create {tp}",
        ns.prop()
    ));
    snap_ago(lab, b, &src, 300);
    lab.ssh(&format!("zab-select {b} | zab-send --utc {b} {tp}"))
        .ok();
    let tgt = format!("{tp}/{src}");
    let before = (lab.snapshot_names(&src), lab.snapshot_names(&tgt));
    assert_eq!(before.1.len(), 1);
    // Two more on the source: a run would send them, and --keep-source 1
    // would thin the older ones.
    snap_ago(lab, b, &src, 200);
    let before = (lab.snapshot_names(&src), before.1);
    let key = format!("{b}@local:{}", tp.replace('/', "%"));
    let lock = format!("/run/zab/{key}.lock");
    // `flock -o`: the lock is held by flock itself while the command runs.
    let held = |cmd: &str, lock: &str| -> (Out, f64) {
        let t = Instant::now();
        let out = lab.ssh(&format!(
            "mkdir -p -m 0700 /run/zab; flock -n -o {lock} sh -c {}",
            quote_argv(&[&format!("{cmd}; echo exit=$?")])
        ));
        (out, t.elapsed().as_secs_f64())
    };
    let (out, secs) = held(&format!("zab-select {b} | zab-send --utc {b} {tp}"), &lock);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.ends_with("exit=75\n"), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "zab-send: another run of backup {b} to local:{tp} holds the lock {lock}"
        )),
        "{}",
        out.stderr
    );
    assert!(secs < 8.0, "zab-send waited {secs:.1}s");
    let thin = format!("zab-select {b} | zab-thin --utc --keep-source 1 --keep-target 1 {b} {tp}");
    let (out, _) = held(&thin, &lock);
    assert!(out.stdout.ends_with("exit=75\n"), "{out:?}");
    assert!(
        out.stderr.contains("zab-thin: another run of backup"),
        "{}",
        out.stderr
    );
    // Source-only thinning: the lock of the name alone.
    let only = format!("zab-select {b} | zab-thin --utc --keep-source 1 {b}");
    let (out, _) = held(&only, &format!("/run/zab/{b}.lock"));
    assert!(out.stdout.ends_with("exit=75\n"), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "zab-thin: another run of backup {b} holds the lock /run/zab/{b}.lock"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        (lab.snapshot_names(&src), lab.snapshot_names(&tgt)),
        before,
        "nothing sent, nothing destroyed"
    );
    // A descriptor that is not this lock is refused, not ignored.
    let out = lab.ssh(&format!(
        "exec 9>/run/zab/other.lock; zab-select {b} | ZAB_LOCK_FD=9 zab-send --utc {b} {tp}; \
         echo exit=$?; rm -f /run/zab/other.lock"
    ));
    assert!(out.stdout.ends_with("exit=2\n"), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "zab-send: ZAB_LOCK_FD=9 is not the lock of this backup ({lock})"
        )),
        "{}",
        out.stderr
    );
    assert_eq!((lab.snapshot_names(&src), lab.snapshot_names(&tgt)), before);
}

/// `zab-send | zab-thin` of one backup and target runs: zab-thin takes the
/// lock once zab-send has let it go. And the wrapper's way, one lock for
/// the whole run handed down as ZAB_LOCK_FD, runs too.
fn lock_send_pipe_thin_runs(lab: &Lab) {
    let ns = Ns::new("lock_pipe");
    let b = ns.backup();
    let (src, tp) = (ns.ds("zab-a", ""), ns.ds("zab-t", ""));
    lab.sh(&format!(
        "zfs create -o {}=true {src}; zfs create {tp}",
        ns.prop()
    ));
    let tgt = format!("{tp}/{src}");
    let first = snap_ago(lab, b, &src, 300);
    let pipe = format!(
        "zab-select {b} | zab-send --utc {b} {tp} | \
         zab-thin --utc --keep-source 1 --keep-target 1 {b} {tp}"
    );
    let out = lab.ssh(&pipe).ok();
    assert_eq!(out.end().datasets, 1);
    assert_eq!(lab.snapshot_names(&tgt), vec![first.clone()]);
    let second = snap_ago(lab, b, &src, 200);
    lab.ssh(&pipe).ok();
    assert_eq!(lab.snapshot_names(&tgt), vec![second.clone()]);
    assert_eq!(lab.snapshot_names(&src), vec![second]);
    let lock = format!("/run/zab/{b}@local:{}.lock", tp.replace('/', "%"));
    assert_eq!(
        lab.sh(&format!("stat -c '%U %a' /run/zab {lock}")),
        "root 700\nroot 600\n"
    );
    // The wrapper's way.
    let third = snap_ago(lab, b, &src, 100);
    let out = lab.ssh(&format!(
        "exec 9>{lock}; flock -n 9 || exit 99; export ZAB_LOCK_FD=9; {pipe}"
    ));
    out.ok();
    assert_eq!(lab.snapshot_names(&tgt), vec![third.clone()]);
    assert_eq!(lab.snapshot_names(&src), vec![third]);
}
