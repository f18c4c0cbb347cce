//! scripts/zfs-autobackup without the lab: its option table and its exit
//! status, with stand-ins for zab's tools.
//!
//! Each test makes a private directory (0700, under cargo's
//! `CARGO_TARGET_TMPDIR`) with stand-ins for zab-select, zab-snap, zab-send
//! and zab-thin that append their argv (and whether they run under the run
//! lock) to a log, print canned records and exit with a chosen status; the
//! wrapper runs with `ZAB_BIN_DIR` pointing there. The stand-ins hand
//! `--end-record` and `--describe` to the real zab-thin, and
//! `--check-options` to the real tool (all built next to this test, as
//! `cargo test --workspace` does), so the end records are read by the real
//! reader and the options checked by the real tools; those calls are not
//! logged (they run no zfs). No zfs runs: this suite needs no lab and runs everywhere.
//! What the tools then do with their arguments is the lab's part
//! (tests/wrapper.rs).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const TOOLS: [&str; 4] = ["zab-select", "zab-snap", "zab-send", "zab-thin"];

/// The default end record of a stand-in.
fn end(tool: &str, failed: usize) -> String {
    format!(r#"{{"kind":"end","tool":"{tool}","version":"0.1.0","datasets":0,"failed":{failed}}}"#)
        + "\n"
}

/// The real zab-thin, for `--end-record` and `--describe`.
fn real_thin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/wrapper_args-HASH → target/debug/zab-thin
    let thin = exe.parent().unwrap().parent().unwrap().join("zab-thin");
    assert!(
        thin.is_file(),
        "{} is missing: build it first (cargo build -p zab-thin; cargo test --workspace does)",
        thin.display()
    );
    thin
}

/// One run's world: the stand-ins, their log, a private TMPDIR and HOME.
struct Sandbox {
    dir: PathBuf,
    /// The backup name, unique to this sandbox (the run lock is named after it).
    backup: String,
    root: bool,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    fn new() -> Sandbox {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let backup = format!("wrapargs-{}-{n}", std::process::id());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&backup);
        // Left over from an earlier run with the same pid: ours, remove it.
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        for sub in ["tmp", "home"] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir.join(sub))
                .unwrap();
        }
        let thin = real_thin();
        let thin = thin.to_str().unwrap();
        assert!(!thin.contains('\''), "{thin}");
        for tool in TOOLS {
            let real = Path::new(thin).with_file_name(tool);
            let real = real.to_str().unwrap();
            let script = format!(
                r#"#!/bin/bash
case ${{1:-}} in
    --end-record | --end-record=* | --describe | --describe=* | --write-metrics) exec '{thin}' "$@" ;;
    --check-options) exec '{real}' "$@" ;;
    --version) echo '{tool} 0.1.0'; exit 0 ;;
esac
here=${{0%/*}}
fd9=closed
if [[ -e /dev/fd/9 ]]; then fd9=open; fi
{{ printf '%s\0%s' '{tool}' "${{ZAB_LOCK_FD:-unset}}:$fd9"; printf '\0%s' "$@"; printf '\n'; }} >>"$here/calls"
cat "$here/{tool}.out"
exit "$(cat "$here/{tool}.code")"
"#
            );
            let path = dir.join(tool);
            fs::write(&path, script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        }
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let sandbox = Sandbox { dir, backup, root };
        for tool in TOOLS {
            sandbox.answer(tool, &end(tool, 0), 0);
        }
        sandbox
    }

    /// What `tool` prints on stdout and its exit status, from now on.
    fn answer(&self, tool: &str, stdout: &str, code: i32) {
        fs::write(self.dir.join(format!("{tool}.out")), stdout).unwrap();
        fs::write(self.dir.join(format!("{tool}.code")), format!("{code}\n")).unwrap();
    }

    /// The directory of the run lock, as the wrapper picks it: /run/zab for
    /// root, else (with our HOME and no XDG_RUNTIME_DIR) HOME/.cache/zab.
    fn lock_dir(&self) -> PathBuf {
        if self.root {
            PathBuf::from("/run/zab")
        } else {
            self.dir.join("home/.cache/zab")
        }
    }

    /// Runs the wrapper with `args` (BACKUP-NAME is [`Sandbox::backup`]):
    /// its status, stdout, stderr, and the calls of the stand-ins.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with_path(args, None)
    }

    /// [`Sandbox::run`] with `first` before the PATH (for a stand-in of a
    /// system program).
    fn run_with_path(&self, args: &[&str], first: Option<&Path>) -> Run {
        let _ = fs::remove_file(self.dir.join("calls"));
        let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zfs-autobackup");
        let mut cmd = Command::new(wrapper);
        if let Some(dir) = first {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![dir.to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        }
        let out = cmd
            .args(args)
            .env("ZAB_BIN_DIR", &self.dir)
            .env("TMPDIR", self.dir.join("tmp"))
            .env("HOME", self.dir.join("home"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("ZAB_LOCK_FD")
            .output()
            .unwrap();
        self.remove_locks();
        let calls = fs::read_to_string(self.dir.join("calls")).unwrap_or_default();
        let calls = calls
            .lines()
            .map(|l| {
                let mut f = l.split('\0').map(str::to_string);
                let tool = f.next().unwrap();
                let lock = f.next().unwrap();
                Call {
                    tool,
                    lock,
                    args: f.collect(),
                }
            })
            .collect();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        }
    }

    /// Removes the lock files of this sandbox's backup (named after it, so
    /// no one else's).
    fn remove_locks(&self) {
        let Ok(entries) = fs::read_dir(self.lock_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == format!("{}.lock", self.backup)
                || name.starts_with(&format!("{}@", self.backup))
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.remove_locks();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One call of a stand-in.
#[derive(Debug, Clone)]
struct Call {
    tool: String,
    /// `ZAB_LOCK_FD:fd9`, e.g. `9:open` or `unset:closed`.
    lock: String,
    args: Vec<String>,
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    calls: Vec<Call>,
}

impl Run {
    /// The tools run, in order.
    fn tools(&self) -> Vec<&str> {
        self.calls.iter().map(|c| c.tool.as_str()).collect()
    }

    /// The arguments `tool` got (it must have run once).
    #[track_caller]
    fn args(&self, tool: &str) -> Vec<&str> {
        let calls: Vec<&Call> = self.calls.iter().filter(|c| c.tool == tool).collect();
        assert_eq!(calls.len(), 1, "{tool}: {self:#?}");
        calls[0].args.iter().map(String::as_str).collect()
    }
}

/// The `--jobs` the wrapper gives zab-send by default: this host's CPUs
/// as `nproc` counts them, at least 2 and at most 8.
fn default_jobs() -> String {
    let out = Command::new("nproc").output().unwrap();
    let n: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    format!("--jobs={}", n.clamp(2, 8))
}

/// The arguments of `tool` with `args` that it does not get without
/// `extra`: `+ARG` for each one added, `-ARG` for each one gone, in order.
fn diff(base: &[&str], with: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut left: Vec<&str> = base.to_vec();
    for a in with {
        if let Some(i) = left.iter().position(|b| b == a) {
            left.remove(i);
        } else {
            out.push(format!("+{a}"));
        }
    }
    out.extend(left.iter().map(|a| format!("-{a}")));
    out
}

const T: &str = "backup/host1";

/// The arguments of every tool for the plain `BACKUP-NAME TARGET-PATH`:
/// the defaults, spelled out.
#[test]
fn default_arguments_of_every_tool() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""), "quiet");
    assert_eq!(r.tools(), TOOLS);
    assert_eq!(
        r.args("zab-select"),
        [b, T, "--property-format=autobackup:{}"]
    );
    assert_eq!(r.args("zab-snap"), [b, "--snapshot-format={}-%Y%m%d%H%M%S"]);
    let jobs = default_jobs();
    assert_eq!(
        r.args("zab-send"),
        [
            b,
            T,
            "--snapshot-format={}-%Y%m%d%H%M%S",
            "--hold-format=zfs_autobackup:{}",
            "--strip-path=0",
            &jobs,
            "--keep-target=10,1d1w,1w1m,1m1y",
        ]
    );
    assert_eq!(
        r.args("zab-thin"),
        [
            b,
            T,
            "--keep-target=10,1d1w,1w1m,1m1y",
            "--property-format=autobackup:{}",
            "--snapshot-format={}-%Y%m%d%H%M%S",
            "--hold-format=zfs_autobackup:{}",
            "--strip-path=0",
            "--keep-source=10,1d1w,1w1m,1m1y",
            "--skip-failed",
        ]
    );
}

/// Without a TARGET-PATH: select, snapshot, thin the source; no zab-send,
/// and zab-thin gets none of the target's options.
#[test]
fn snapshot_only_mode() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let r = s.run(&[
        "--ssh-target",
        "root@t",
        "--no-guid-check",
        "--destroy-missing",
        "30d",
        "--strip-path",
        "1",
        "--utc",
        b,
    ]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.tools(), ["zab-select", "zab-snap", "zab-thin"]);
    assert_eq!(
        r.args("zab-thin"),
        [
            b,
            "--utc",
            "--snapshot-format={}-%Y%m%d%H%M%S",
            "--hold-format=zfs_autobackup:{}",
            "--keep-source=10,1d1w,1w1m,1m1y",
            "--skip-failed",
        ]
    );
    assert_eq!(
        r.args("zab-select"),
        [b, "--ssh-target=root@t", "--property-format=autobackup:{}"]
    );
}

/// Every option of the table, with what each tool gets more (+) or no
/// more (-) than with the defaults; abbreviations, `--x=y`, repeats and
/// combined short flags included.
#[test]
fn every_option_goes_to_its_tools() {
    let all = |a: &str| -> Vec<(&'static str, Vec<String>)> {
        TOOLS.iter().map(|t| (*t, vec![a.to_string()])).collect()
    };
    let to = |tools: &[&'static str], changes: &[&str]| -> Vec<(&'static str, Vec<String>)> {
        tools
            .iter()
            .map(|t| (*t, changes.iter().map(|c| c.to_string()).collect()))
            .collect()
    };
    let send = |changes: &[&str]| to(&["zab-send"], changes);
    let snap = |changes: &[&str]| to(&["zab-snap"], changes);
    let verbose_and = |mut v: Vec<(&'static str, Vec<String>)>| {
        for t in TOOLS {
            match v.iter_mut().find(|(n, _)| *n == t) {
                Some((_, c)) => c.push("+--verbose".into()),
                None => v.push((t, vec!["+--verbose".into()])),
            }
        }
        v
    };
    let naming = ["zab-snap", "zab-send", "zab-thin"];
    let pair = ["zab-send", "zab-thin"];
    let dk = "--keep-target=10,1d1w,1w1m,1m1y";
    let dj = default_jobs();
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&[&str], Vec<(&'static str, Vec<String>)>)> = vec![
        (&[], vec![]),
        (&["--verbose"], all("+--verbose")),
        (&["-v"], all("+--verbose")),
        (&["--verb"], all("+--verbose")),
        (&["-v", "--verbose"], all("+--verbose")),
        (&["--debug"], verbose_and(to(&TOOLS, &["+--debug"]))),
        (&["--debug-output"], verbose_and(to(&TOOLS, &["+--debug"]))),
        (&["-d"], verbose_and(to(&TOOLS, &["+--debug"]))),
        (&["--test"], verbose_and(to(&naming, &["+--test"]))),
        (&["-n"], verbose_and(to(&naming, &["+--test"]))),
        (&["--dry-run"], verbose_and(to(&naming, &["+--test"]))),
        (&["--dry"], verbose_and(to(&naming, &["+--test"]))),
        (&["--progress"], send(&["+--progress"])),
        (&["--no-progress"], send(&["+--no-progress"])),
        (&["--progress", "--no-progress"], send(&["+--no-progress"])),
        (&["--no-progress", "--progress"], send(&["+--progress"])),
        (&["--utc"], to(&naming, &["+--utc"])),
        (&["--utc", "--utc"], to(&naming, &["+--utc"])),
        (
            &["--ssh-config", "my config"],
            all("+--ssh-config=my config"),
        ),
        (&["--ssh-c=f"], all("+--ssh-config=f")),
        (&["--ssh-source", "root@s"], all("+--ssh-source=root@s")),
        (
            &["--ssh-target", "root@t"],
            to(
                &["zab-select", "zab-send", "zab-thin"],
                &["+--ssh-target=root@t"],
            ),
        ),
        (
            &["--property-format", "x:{}"],
            to(
                &["zab-select", "zab-thin"],
                &[
                    "+--property-format=x:{}",
                    "---property-format=autobackup:{}",
                ],
            ),
        ),
        (
            &["--snapshot-format=s-{}-%Y%m%d%H%M%S"],
            to(
                &naming,
                &[
                    "+--snapshot-format=s-{}-%Y%m%d%H%M%S",
                    "---snapshot-format={}-%Y%m%d%H%M%S",
                ],
            ),
        ),
        (
            &["--hold-format", "h:{}"],
            to(
                &pair,
                &["+--hold-format=h:{}", "---hold-format=zfs_autobackup:{}"],
            ),
        ),
        (
            &["--strip-path", "2"],
            to(&pair, &["+--strip-path=2", "---strip-path=0"]),
        ),
        (
            &["--strip-path", "2", "--strip-path=3"],
            to(&pair, &["+--strip-path=3", "---strip-path=0"]),
        ),
        (
            &["--exclude-unchanged", "1M"],
            to(&["zab-select"], &["+--exclude-unchanged=1M"]),
        ),
        (
            &["--exclude-received"],
            to(&["zab-select"], &["+--exclude-received"]),
        ),
        (
            &["--include-received"],
            to(&["zab-select"], &["+--include-received"]),
        ),
        (
            &["--include-received", "--exclude-received"],
            to(&["zab-select"], &["+--exclude-received"]),
        ),
        (
            &["--ignore-replicated"],
            to(&["zab-select"], &["+--exclude-unchanged=1"]),
        ),
        (
            &[
                "--exclude-snapshot-pattern",
                "a",
                "--exclude-snapshot-pattern=b",
            ],
            send(&[
                "+--exclude-snapshot-pattern=a",
                "+--exclude-snapshot-pattern=b",
            ]),
        ),
        (
            &[
                "--pre-snapshot-cmd",
                "echo 'a b'",
                "--pre-snapshot-cmd=x",
                "--post-snapshot-cmd",
                "y",
            ],
            snap(&[
                "+--pre-snapshot-cmd=echo 'a b'",
                "+--pre-snapshot-cmd=x",
                "+--post-snapshot-cmd=y",
            ]),
        ),
        (
            &["--min-change", "1", "--min-change", "2K"],
            snap(&["+--min-change=2K"]),
        ),
        (&["--allow-empty"], snap(&["+--allow-empty"])),
        (
            &[
                "--set-snapshot-properties",
                "a=1",
                "--set-snapshot-properties",
                "b=2",
            ],
            snap(&[
                "+--set-snapshot-properties=a=1",
                "+--set-snapshot-properties=b=2",
            ]),
        ),
        (&["--other-snapshots"], send(&["+--other-snapshots"])),
        (&["--no-guid-check"], to(&pair, &["+--no-guid-check"])),
        (&["--no-holds"], send(&["+--no-holds"])),
        (&["--no-bookmarks"], send(&["+--no-bookmarks"])),
        (
            &["--clear-refreservation"],
            send(&["+--clear-refreservation"]),
        ),
        (&["--clear-mountpoint"], send(&["+--clear-mountpoint"])),
        (
            &["--filter-properties", "a,b", "--filter-properties", "c"],
            send(&["+--filter-properties=a,b", "+--filter-properties=c"]),
        ),
        (
            &["--set-properties=a=b=c"],
            send(&["+--set-properties=a=b=c"]),
        ),
        (&["--rollback"], send(&["+--rollback"])),
        (&["--force"], send(&["+--force"])),
        (&["-F"], send(&["+--force"])),
        (&["-F", "--force"], send(&["+--force"])),
        (&["-vF"], {
            let mut v = all("+--verbose");
            v[2].1.insert(0, "+--force".into());
            v
        }),
        (
            &["--destroy-incompatible"],
            send(&["+--rollback", "+--destroy-incompatible"]),
        ),
        (
            &["--ignore-transfer-errors"],
            send(&["+--ignore-transfer-errors"]),
        ),
        (&["--decrypt"], send(&["+--decrypt"])),
        (&["--encrypt"], send(&["+--encrypt"])),
        (&["--zfs-compressed"], send(&["+--zfs-compressed"])),
        (&["--jobs", "1"], send(&["+--jobs=1", &format!("-{dj}")])),
        (&["--jobs=12"], send(&["+--jobs=12", &format!("-{dj}")])),
        (&["--clones", "never"], vec![]),
        (&["--compress"], send(&["+--compress=zstd-fast"])),
        (&["--compress=xz"], send(&["+--compress=xz"])),
        (&["--compress", "lz4"], send(&["+--compress=lz4"])),
        (&["--rate", "1M"], send(&["+--rate=1M"])),
        (&["--rat=1M", "--rate", "2M"], send(&["+--rate=2M"])),
        (&["--buffer", "16M"], send(&["+--buffer=16M"])),
        (&["--buffer-c", "1M"], send(&["+--buffer-chunk-size=1M"])),
        (
            &[
                "--send-pipe",
                "cat",
                "--recv-pipe",
                "tee /dev/null",
                "--send-pipe",
                "cat -u",
            ],
            send(&[
                "+--send-pipe=cat",
                "+--send-pipe=cat -u",
                "+--recv-pipe=tee /dev/null",
            ]),
        ),
        (
            &["--keep-source", "5"],
            to(
                &["zab-thin"],
                &["+--keep-source=5", "---keep-source=10,1d1w,1w1m,1m1y"],
            ),
        ),
        (
            &["--keep-t", "5"],
            to(&pair, &["+--keep-target=5", &format!("-{dk}")]),
        ),
        (
            &["--destroy-missing", "30d"],
            to(&["zab-thin"], &["+--destroy-missing=30d"]),
        ),
        (&["--resume"], vec![]),
        (&["--raw"], vec![]),
        (&["--"], vec![]),
    ];
    let s = Sandbox::new();
    let b = s.backup.clone();
    let base = s.run(&[&b, T]);
    assert_eq!(base.code, 0, "{base:#?}");
    for (extra, want) in cases {
        let argv: Vec<&str> = extra.iter().copied().chain([b.as_str(), T]).collect();
        let r = s.run(&argv);
        assert_eq!(r.code, 0, "{extra:?}: {r:#?}");
        let mut got: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for tool in TOOLS {
            let mut d = diff(&base.args(tool), &r.args(tool));
            // In any order here (the order of repeated values: below).
            d.sort();
            if !d.is_empty() {
                got.insert(tool, d);
            }
        }
        let want: BTreeMap<&str, Vec<String>> = want
            .into_iter()
            .map(|(t, mut d)| {
                d.sort();
                (t, d)
            })
            .collect();
        assert_eq!(got, want, "{extra:?}");
    }
}

/// The options that leave a stage out, or change what it is asked.
#[test]
fn options_that_change_the_stages() {
    let s = Sandbox::new();
    let b = s.backup.as_str();

    let r = s.run(&["--no-snapshot", b, T]);
    assert_eq!(r.tools(), ["zab-select", "zab-send", "zab-thin"], "{r:#?}");

    // --no-thinning: no zab-thin, and zab-send keeps every snapshot.
    let r = s.run(&["--no-thinning", "--keep-target", "5", b, T]);
    assert_eq!(r.tools(), ["zab-select", "zab-snap", "zab-send"], "{r:#?}");
    assert!(r.args("zab-send").contains(&"--keep-target=2147483647"));
    assert!(!r.args("zab-send").contains(&"--keep-target=5"));

    // --no-send: zab-send only plans, without --verbose (its lines would
    // say what does not happen) but with --debug and --ssh-config.
    let r = s.run(&["--no-send", "-d", "--ssh-config", "f", b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    let send = r.args("zab-send");
    assert!(
        send.contains(&"--plan") && send.contains(&"--debug"),
        "{send:?}"
    );
    assert!(send.contains(&"--ssh-config=f"), "{send:?}");
    assert!(
        !send.contains(&"--verbose") && !send.contains(&"--test"),
        "{send:?}"
    );
    // --debug prints each stage's command line, quoted.
    assert!(
        r.stderr
            .contains(&format!("# zab-send '{b}' '{T}' '--ssh-config=f'")),
        "{}",
        r.stderr
    );

    // Repeated values reach the tool in the order given.
    let r = s.run(&[
        "--send-pipe",
        "b",
        "--recv-pipe",
        "r",
        "--send-pipe",
        "a",
        b,
        T,
    ]);
    let send = r.args("zab-send");
    let at = |a: &str| send.iter().position(|x| *x == a).unwrap();
    assert!(at("--send-pipe=b") < at("--send-pipe=a"), "{send:?}");

    // --compress does not take a word that is not a type.
    let r = s.run(&["--compress", b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.args("zab-send").contains(&"--compress=zstd-fast"));
}

/// Only zab-send and zab-thin run under the run lock (ZAB_LOCK_FD=9, fd 9
/// open); zab-select and zab-snap (and so the hooks) neither see nor hold it.
#[test]
fn only_send_and_thin_get_the_lock() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let r = s.run(&[b, T]);
    let locks: Vec<(&str, &str)> = r
        .calls
        .iter()
        .map(|c| (c.tool.as_str(), c.lock.as_str()))
        .collect();
    assert_eq!(
        locks,
        [
            ("zab-select", "unset:closed"),
            ("zab-snap", "unset:closed"),
            ("zab-send", "9:open"),
            ("zab-thin", "9:open"),
        ]
    );
}

/// To an object store, zab-thin gets the URL and the target's options, and
/// runs under the run's lock (of the URL, zab-send's); zab-select sees the
/// source only; --full-every goes to zab-send.
#[test]
fn a_store_is_thinned_under_the_run_lock() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let url = "s3://bkt/host1";
    let r = s.run(&[b, url, "--full-every", "1w", "--destroy-missing", "30d"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.args("zab-select"), [b, "--property-format=autobackup:{}"]);
    assert_eq!(
        r.args("zab-send"),
        [
            b,
            url,
            "--snapshot-format={}-%Y%m%d%H%M%S",
            "--hold-format=zfs_autobackup:{}",
            "--strip-path=0",
            &default_jobs(),
            "--full-every=1w",
            "--keep-target=10,1d1w,1w1m,1m1y",
        ]
    );
    assert_eq!(
        r.args("zab-thin"),
        [
            b,
            url,
            "--keep-target=10,1d1w,1w1m,1m1y",
            "--property-format=autobackup:{}",
            "--snapshot-format={}-%Y%m%d%H%M%S",
            "--hold-format=zfs_autobackup:{}",
            "--strip-path=0",
            "--keep-source=10,1d1w,1w1m,1m1y",
            "--destroy-missing=30d",
            "--skip-failed",
        ]
    );
    let locks: Vec<(&str, &str)> = r
        .calls
        .iter()
        .map(|c| (c.tool.as_str(), c.lock.as_str()))
        .collect();
    assert_eq!(
        locks,
        [
            ("zab-select", "unset:closed"),
            ("zab-snap", "unset:closed"),
            ("zab-send", "9:open"),
            ("zab-thin", "9:open"),
        ]
    );
    let r = s.run(&[b, url, "--full-every=30"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.args("zab-send").contains(&"--full-every=30"), "{r:#?}");
    // zab-send refuses it with a ZFS target (a usage error, before any stage).
    let r = s.run(&[b, T, "--full-every", "1w"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.calls.is_empty(), "{r:#?}");
    assert!(
        r.stderr
            .contains("--full-every is for an object store (s3://, file://), not a ZFS target"),
        "{r:#?}"
    );
}

/// The exit status: 0, the failed count (at most 254), 1 for failed
/// post-snapshot commands, 255 for a stage that crashed or a failed
/// pre-snapshot command, with upstream's last lines.
#[test]
fn exit_status_from_the_end_records() {
    let s = Sandbox::new();
    let b = s.backup.as_str();

    // N failed: zab-thin's end record has the last word.
    s.answer("zab-send", &end("zab-send", 2), 1);
    s.answer("zab-thin", &end("zab-thin", 3), 1);
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.stderr, "! 3 dataset(s) failed!\n");

    // More than 254: 254 (255 is "fatal").
    s.answer("zab-thin", &end("zab-thin", 300), 1);
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 254, "{r:#?}");
    assert_eq!(r.stderr, "! 300 dataset(s) failed!\n");

    // The end record is read as JSON: any field order, spaces, other
    // fields (the old wrapper grepped `{"kind":"end",` and `"failed":`).
    s.answer("zab-send", &end("zab-send", 0), 0);
    s.answer(
        "zab-thin",
        "{ \"note\": \"\\\"failed\\\":0\", \"failed\": 2, \"kind\": \"end\", \"tool\": \"zab-thin\", \"version\": \"0.1.0\", \"datasets\": 2 }\n",
        1,
    );
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert_eq!(r.stderr, "! 2 dataset(s) failed!\n");

    // A failed post-snapshot command: zab-snap's count stands when the
    // later end records do not carry it. Exit 1.
    s.answer(
        "zab-snap",
        &end("zab-snap", 0).replace(r#""failed":0"#, r#""failed":0,"hook_failures":2"#),
        1,
    );
    s.answer("zab-thin", &end("zab-thin", 0), 0);
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert_eq!(r.stderr, "! 2 post-snapshot command(s) failed!\n");
    assert_eq!(r.tools(), TOOLS);

    // A failed pre-snapshot command: fatal, nothing sent or thinned.
    s.answer(
        "zab-snap",
        &end("zab-snap", 1).replace(r#""failed":1"#, r#""failed":1,"pre_hook_failures":1"#),
        1,
    );
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 255, "{r:#?}");
    assert_eq!(r.tools(), ["zab-select", "zab-snap"]);
    assert!(
        r.stderr.starts_with(
            "zfs-autobackup: a pre-snapshot command failed (1 dataset(s) not snapshotted)"
        ),
        "{}",
        r.stderr
    );
    s.answer("zab-snap", &end("zab-snap", 0), 0);

    // All well again: 0.
    let r = s.run(&[b, T]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:#?}");
}

/// A stage that crashed, or ended without its end record, ends the run
/// with 255 and nothing after it runs.
#[test]
fn a_crashed_stage_is_fatal() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let fatal = |tool: &str, out: &str, code: i32, why: &str| {
        s.answer(tool, out, code);
        let r = s.run(&[b, T]);
        assert_eq!(r.code, 255, "{tool} {out:?} {code}: {r:#?}");
        let at = TOOLS.iter().position(|t| *t == tool).unwrap();
        assert_eq!(r.tools(), TOOLS[..=at], "{tool}: nothing after it runs");
        assert!(
            r.stderr
                .starts_with(&format!("zfs-autobackup: {tool} {why}")),
            "{tool}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        s.answer(tool, &end(tool, 0), 0);
    };
    // Exit 0 without an end record (killed before it, or a bug).
    fatal(
        "zab-send",
        "",
        0,
        "wrote no complete output, nothing after it was run: end of input: no records at all",
    );
    // The end record cut off.
    let cut = end("zab-snap", 0);
    fatal(
        "zab-snap",
        &cut[..cut.len() - 1],
        0,
        "wrote no complete output, nothing after it was run: line 1: the last line has no newline",
    );
    // A dataset record after it.
    fatal(
        "zab-select",
        &(end("zab-select", 0) + &end("zab-select", 0)),
        0,
        "wrote no complete output, nothing after it was run: line 2: record after the end record",
    );
    // Exit 1 (some failed) without an end record.
    fatal("zab-thin", "", 1, "wrote no complete output");
    // Any other status, end record or not.
    fatal(
        "zab-send",
        &end("zab-send", 0),
        4,
        "failed (exit 4): nothing after it was run",
    );
    fatal(
        "zab-snap",
        "",
        70,
        "failed (exit 70): nothing after it was run",
    );
    fatal(
        "zab-thin",
        "",
        130,
        "was interrupted: nothing after it was run",
    );

    // Nothing selected: zab-select said so (5), the wrapper ends with 255.
    s.answer("zab-select", "", 5);
    let r = s.run(&[b, T]);
    assert_eq!((r.code, r.tools()), (255, vec!["zab-select"]), "{r:#?}");
    assert_eq!(r.stderr, "");
    s.answer("zab-select", &end("zab-select", 0), 0);

    // --debug stops after the first stage with a failure.
    s.answer("zab-send", &end("zab-send", 1), 1);
    let r = s.run(&["--debug", b, T]);
    assert_eq!(r.code, 255, "{r:#?}");
    assert_eq!(r.tools(), ["zab-select", "zab-snap", "zab-send"]);
    assert!(
        r.stderr.ends_with(
            "zfs-autobackup: --debug: stopping after the first failure (zab-send: 1 dataset(s) failed)\n"
        ),
        "{}",
        r.stderr
    );
}

/// Another run holds the run lock: 75 at once, no tool run.
#[test]
fn lock_held_is_75() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let dir = s.lock_dir();
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap();
    }
    let file = dir.join(format!("{b}@local:{}.lock", T.replace('/', "%")));
    // flock(1) holds it until its stdin closes (File::lock is newer than
    // our rust-version); its first line says that it holds it.
    let mut held = Command::new("flock")
        .arg(&file)
        .args(["sh", "-c", "echo held; exec cat >/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(held.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    let r = s.run(&[b, T]);
    drop(held.stdin.take());
    held.wait().unwrap();
    assert_eq!(r.code, 75, "{r:#?}");
    assert_eq!(
        r.stderr,
        format!(
            "zfs-autobackup: another run of backup {b} holds the lock {}\n",
            file.display()
        )
    );
    assert_eq!(r.tools(), Vec::<&str>::new());
}

/// Usage errors are argparse's: exit 2, the usage line, one error line,
/// and no tool run.
#[test]
fn usage_errors_exit_2() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    for (argv, why) in [
        (
            &["--no-such-option", b][..],
            "unrecognized arguments: --no-such-option",
        ),
        (&["-x", b], "unrecognized arguments: -x"),
        (&["-vx", b], "unrecognized arguments: -vx"),
        (&[b, T, "extra"], "unrecognized arguments: extra"),
        (&[b, T, "--rate"], "argument --rate: expected one argument"),
        (
            &["--rate", "--verbose", b, T],
            "argument --rate: expected one argument",
        ),
        (
            &["--no-s", b],
            "ambiguous option: --no-s could match more than one option",
        ),
        (
            &["--verbose=yes", b],
            "argument --verbose: ignored explicit argument 'yes'",
        ),
        (
            &["--strip-path", "x", b],
            "argument --strip-path: invalid int value: 'x'",
        ),
        (
            &["--strip-path=-1", b],
            "argument --strip-path: invalid int value: '-1'",
        ),
        (
            &["--compress=zip", b],
            "argument --compress: invalid choice: 'zip'",
        ),
        (
            &["--clones", "all", b],
            "argument --clones: invalid choice: 'all'",
        ),
    ] {
        let r = s.run(argv);
        assert_eq!(r.code, 2, "{argv:?}: {r:#?}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{argv:?}: {}", r.stderr);
        assert_eq!(
            lines[0],
            "usage: zfs-autobackup [options] BACKUP-NAME [TARGET-PATH]"
        );
        assert!(
            lines[1].starts_with("zfs-autobackup: error: ") && lines[1].contains(why),
            "{argv:?}: {}",
            r.stderr
        );
        assert_eq!(r.tools(), Vec::<&str>::new(), "{argv:?}");
    }
    // A value may start with - when it is a number, or be - itself: -1
    // is taken as the value (which zab-select then refuses: no byte count).
    let r = s.run(&["--exclude-unchanged", "-1", b, T]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr
            .contains("error: invalid value '-1' for --exclude-unchanged: "),
        "{r:#?}"
    );
    assert_eq!(r.tools(), Vec::<&str>::new());
}

/// Issue 21: a bad value for a stage's option used to be found by that
/// stage, after zab-snap had taken the snapshot (so every cron run added a
/// snapshot and thinned nothing). Every stage now checks its options
/// (`--check-options`, by the real tools here) before the first one
/// starts: exit 2, argparse's two lines naming the wrapper's option, and
/// no stage run.
#[test]
fn bad_values_stop_the_run_before_any_stage() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    for (argv, why) in [
        (
            &["--rate", "20Q", b, T][..],
            r#"invalid value '20Q' for --rate: invalid byte count "20Q""#,
        ),
        (
            &["--buffer=1X", b, T],
            r#"invalid value '1X' for --buffer: invalid byte count "1X""#,
        ),
        (
            &["--set-properties", "readonly", b, T],
            r#"invalid value 'readonly' for --set-properties: "readonly" is not PROPERTY=VALUE"#,
        ),
        (
            &["--exclude-snapshot-pattern", "(", b, T],
            r#"--exclude-snapshot-pattern "(": unclosed group"#,
        ),
        (
            &["--destroy-missing", "30", b, T],
            r#"--destroy-missing: invalid duration "30": no unit"#,
        ),
        // An abbreviation is named by its full name, as argparse does.
        (
            &["--rat", "0", b, T],
            r#"invalid value '0' for --rate: rate "0" must be above 0"#,
        ),
        (
            &["--snapshot-format", "x", b],
            r#"invalid --snapshot-format "x": it needs {} for the backup name"#,
        ),
        (
            &["--min-change", "lots", b],
            r#"invalid value 'lots' for --min-change: "#,
        ),
        (&["--jobs", "0", b, T], r#"invalid value '0' for --jobs: "#),
        (
            &["--ssh-source=-oProxyCommand=x", "--no-snapshot", b, T],
            r#"invalid ssh destination "-oProxyCommand=x""#,
        ),
    ] {
        let r = s.run(argv);
        assert_eq!(r.code, 2, "{argv:?}: {r:#?}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{argv:?}: {}", r.stderr);
        assert_eq!(
            lines[0],
            "usage: zfs-autobackup [options] BACKUP-NAME [TARGET-PATH]"
        );
        assert!(
            lines[1].starts_with(&format!("zfs-autobackup: error: {why}")),
            "{argv:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("zab-"), "{argv:?}: {}", r.stderr);
        assert_eq!(r.tools(), Vec::<&str>::new(), "{argv:?}: a stage ran");
    }
    // Good values go through: every stage is run, once.
    let r = s.run(&[
        "--rate",
        "20M",
        "--buffer",
        "1M",
        "--destroy-missing",
        "30d",
        b,
        T,
    ]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.tools(), TOOLS.to_vec());
}

/// --help and --version exit 0; a missing BACKUP-NAME, a TARGET-PATH with
/// a leading /, --clones simple and a bad schedule are fatal (255), before
/// any tool runs.
#[test]
fn help_version_and_fatal_arguments() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let r = s.run(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(r
        .stdout
        .starts_with("usage: zfs-autobackup [options] BACKUP-NAME [TARGET-PATH]\n"));
    let r = s.run(&["-h", "--no-such-option-after"]);
    assert_eq!(r.code, 2, "argparse reads the whole line first");
    let r = s.run(&["--version"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "zfs-autobackup v3.3 command line, on zab 0.1.0\n")
    );
    for (argv, why) in [
        (&[][..], "zfs-autobackup: please specify BACKUP-NAME"),
        (
            &[b, "/backup"],
            "zfs-autobackup: target should not start with a /",
        ),
        (
            &["--clones", "simple", b, T],
            "zfs-autobackup: --clones simple is not supported yet",
        ),
        (
            &["--keep-source", "1d1w2", b, T],
            "zfs-autobackup: --keep-source 1d1w2: invalid schedule",
        ),
        (
            &["--keep-target=x", b, T],
            "zfs-autobackup: --keep-target x: ",
        ),
    ] {
        let r = s.run(argv);
        assert_eq!(r.code, 255, "{argv:?}: {r:#?}");
        assert!(
            r.stderr.lines().any(|l| l.starts_with(why)),
            "{argv:?}: {}",
            r.stderr
        );
        assert_eq!(r.tools(), Vec::<&str>::new(), "{argv:?}");
    }
}

/// --verbose: upstream's settings summary and sections, the notes, the
/// schedules in words (from zab-thin --describe).
#[test]
fn verbose_sections() {
    let s = Sandbox::new();
    let summary = "Summary: 0 datasets (0 failed), - transfers, - bytes, - snapshots created, - \
                   destroyed, S s";
    let b = s.backup.as_str();
    let r = s.run(&[
        "--verbose",
        "--compress",
        "--zfs-compressed",
        "--resume",
        "--keep-source",
        "5",
        "--no-thinning",
        "--destroy-missing",
        "1d",
        b,
        T,
    ]);
    assert_eq!(r.code, 0, "{r:#?}");
    let want = format!(
        "zfs-autobackup v3.3 command line, on zab 0.1.0

NOTE: --resume is not needed any more (resuming is automatic).
NOTE: Using compression, but transfer is local.
NOTE: Using --compress with --zfs-compressed, might be inefficient.
NOTE: --destroy-missing is not applied with --no-thinning: nothing is destroyed.
Selecting dataset property : autobackup:{b}
Snapshot format            : {b}-%Y%m%d%H%M%S
Timezone                   : Local
Hold name                  : zfs_autobackup:{b}

#### Source settings
[Source] Datasets are local

#### Selecting

#### Snapshotting

#### Target settings
[Target] Datasets are local
[Target] Receive datasets under: {T}

#### Sending and thinning

{summary}

#### All operations completed successfully
"
    );
    assert_eq!(seconds_out(&r.stderr), want);

    let r = s.run(&["--test", "--utc", "--no-holds", "--ssh-source", "root@s", b]);
    assert_eq!(r.code, 0, "{r:#?}");
    let want = format!(
        "TEST MODE - SIMULATING WITHOUT MAKING ANY CHANGES
zfs-autobackup v3.3 command line, on zab 0.1.0

Selecting dataset property : autobackup:{b}
Snapshot format            : {b}-%Y%m%d%H%M%S
Timezone                   : UTC
(No target_path specified: snapshot-only mode, thinning the source only.)

#### Source settings
[Source] Datasets on: root@s
[Source] Keep the last 10 snapshots.
[Source] Keep every 1 day, delete after 1 week.
[Source] Keep every 1 week, delete after 1 month.
[Source] Keep every 1 month, delete after 1 year.

#### Selecting

#### Snapshotting

#### Thinning source

{summary}

#### All tests successful.

TEST MODE - DID NOT MAKE ANY CHANGES!
"
    );
    assert_eq!(seconds_out(&r.stderr), want);
}

/// `text` with the seconds of its summary line (`…, 12 s`) as `S s`.
fn seconds_out(text: &str) -> String {
    text.lines()
        .map(
            |l| match (l.starts_with("Summary: "), l.rsplit_once(", ")) {
                (true, Some((head, secs)))
                    if secs
                        .strip_suffix(" s")
                        .is_some_and(|n| n.parse::<u64>().is_ok()) =>
                {
                    format!("{head}, S s\n")
                }
                _ => format!("{l}\n"),
            },
        )
        .collect()
}

/// --summary: the run's numbers from the end records on one line of
/// stderr, and nothing without it (cron); --metrics FILE: the same for
/// Prometheus, checked by zab's strict parser of the text format, with the
/// last success kept from the file it replaces after a failed run; never
/// with --test; a FILE in no directory is a usage error.
#[test]
fn summary_and_metrics_from_the_end_records() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let with = |tool: &str, fields: &str| {
        end(tool, 0).replace(r#""failed":0"#, &format!(r#""failed":0,{fields}"#))
    };
    s.answer(
        "zab-select",
        &end("zab-select", 0).replace(r#""datasets":0"#, r#""datasets":3"#),
        0,
    );
    s.answer(
        "zab-snap",
        &with("zab-snap", r#""snapshot":"s","created":3"#),
        0,
    );
    s.answer(
        "zab-send",
        &with(
            "zab-send",
            r#""target":"t","sent":2,"transfers":4,"bytes":123456"#,
        ),
        0,
    );
    s.answer("zab-thin", &with("zab-thin", r#""destroyed":5"#), 0);
    let r = s.run(&[b, T]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, ""),
        "quiet without --summary"
    );
    let r = s.run(&["--summary", b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(
        seconds_out(&r.stderr),
        "Summary: 3 datasets (0 failed), 4 transfers, 123456 bytes, 3 snapshots created, \
         5 destroyed, S s\n"
    );

    let prom = s.dir.join("zab.prom");
    let prom_arg = prom.to_str().unwrap();
    let r = s.run(&["--metrics", prom_arg, b, T]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:#?}");
    let text = fs::read_to_string(&prom).unwrap();
    let samples = zab_core::metrics::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let value = |name: &str| {
        let found: Vec<_> = samples.iter().filter(|x| x.name == name).collect();
        assert_eq!(found.len(), 1, "{name} once in:\n{text}");
        assert_eq!(found[0].labels, [("backup".to_string(), b.to_string())]);
        found[0].value
    };
    for (name, want) in [
        ("zab_run_success", 1.0),
        ("zab_run_datasets_selected", 3.0),
        ("zab_run_datasets_sent", 2.0),
        ("zab_run_datasets_failed", 0.0),
        ("zab_run_transfers", 4.0),
        ("zab_run_sent_bytes", 123456.0),
        ("zab_run_snapshots_created", 3.0),
        ("zab_run_snapshots_destroyed", 5.0),
    ] {
        assert_eq!(value(name), want, "{name}");
    }
    assert!(value("zab_run_duration_seconds") >= 0.0);
    let end_time = value("zab_run_end_timestamp_seconds");
    assert_eq!(value("zab_last_success_timestamp_seconds"), end_time);
    assert!(text.contains("# TYPE zab_run_sent_bytes gauge\n"), "{text}");
    let left: Vec<_> = fs::read_dir(&s.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "no temporary file left: {left:?}");

    // A failed run: success 0, the last success of the run before.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.answer("zab-thin", &end("zab-thin", 2), 1);
    let r = s.run(&["--metrics", prom_arg, b, T]);
    assert_eq!(r.code, 2, "{r:#?}");
    let text = fs::read_to_string(&prom).unwrap();
    let samples = zab_core::metrics::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let v = |name: &str| samples.iter().find(|x| x.name == name).map(|x| x.value);
    assert_eq!(v("zab_run_success"), Some(0.0));
    assert_eq!(v("zab_run_datasets_failed"), Some(2.0));
    assert_eq!(
        v("zab_run_snapshots_destroyed"),
        None,
        "not in the end record"
    );
    assert_eq!(v("zab_last_success_timestamp_seconds"), Some(end_time));
    assert!(v("zab_run_end_timestamp_seconds").unwrap() > end_time);

    // --test writes nothing; a file in no directory is a usage error.
    fs::remove_file(&prom).unwrap();
    s.answer("zab-thin", &end("zab-thin", 0), 0);
    let r = s.run(&["--test", "--metrics", prom_arg, b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!prom.exists());
    let nowhere = s.dir.join("no-such-dir/zab.prom");
    let r = s.run(&["--metrics", nowhere.to_str().unwrap(), b, T]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("argument --metrics: "), "{}", r.stderr);
    assert!(r.tools().is_empty(), "nothing ran");
}

/// docs/man/zab-autobackup.1 is what `scripts/man --wrapper` makes of the
/// wrapper's --help: a changed --help needs scripts/man.
#[test]
fn man_page_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts/man"))
        .arg("--wrapper")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = fs::read_to_string(root.join("docs/man/zab-autobackup.1")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/man/zab-autobackup.1 is out of date with scripts/zfs-autobackup --help; run scripts/man"
    );
}

/// --records DIR keeps each stage's output in a new directory of the run
/// below DIR (0700), also when a stage fails: a failed night can be read
/// in the morning. Without it, nothing is left behind.
#[test]
fn records_are_kept_with_records_dir() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let dir = s.dir.join("records");
    fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let runs = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let r = s.run(&["--records", d, b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    let kept = runs();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let run = &kept[0];
    let name = run.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("{b}-")), "{name}");
    let mode = fs::metadata(run).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    for (file, tool) in [
        ("selected.ndjson", "zab-select"),
        ("snapped.ndjson", "zab-snap"),
        ("sent.ndjson", "zab-send"),
        ("thinned.ndjson", "zab-thin"),
    ] {
        assert_eq!(
            fs::read_to_string(run.join(file)).unwrap(),
            end(tool, 0),
            "{file}"
        );
    }
    // A stage that crashes: what it wrote, and what came before, are kept.
    s.answer("zab-send", "{\"kind\":\"dataset\"", 70);
    let r = s.run(&["--records", d, b, T]);
    assert_eq!(r.code, 255, "{r:#?}");
    let kept = runs();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let new = kept.iter().find(|p| *p != run).unwrap();
    assert_eq!(
        fs::read_to_string(new.join("sent.ndjson")).unwrap(),
        "{\"kind\":\"dataset\""
    );
    assert!(new.join("snapped.ndjson").is_file());
    assert!(!new.join("thinned.ndjson").exists());
    // Without --records, the scratch directory is removed at exit.
    s.answer("zab-send", &end("zab-send", 0), 0);
    let r = s.run(&[b, T]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(fs::read_dir(s.dir.join("tmp")).unwrap().count(), 0);
    assert_eq!(runs().len(), 2);
}

/// --records DIR must be a directory of the user's that no one else can
/// write, checked before anything runs: else exit 2 and no stage run.
#[test]
fn records_dir_must_be_private() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let open = s.dir.join("open");
    fs::DirBuilder::new().mode(0o700).create(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o757)).unwrap();
    let group = s.dir.join("group");
    fs::DirBuilder::new().mode(0o700).create(&group).unwrap();
    fs::set_permissions(&group, fs::Permissions::from_mode(0o770)).unwrap();
    let file = s.dir.join("file");
    fs::write(&file, "").unwrap();
    let private = s.dir.join("private");
    fs::DirBuilder::new().mode(0o700).create(&private).unwrap();
    let link = s.dir.join("link");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    for (dir, why) in [
        (&open, "mode 0757: it must be yours"),
        (&group, "mode 0770: it must be yours"),
        (&file, "is not a directory (or is a symlink)"),
        (&link, "is not a directory (or is a symlink)"),
        (
            &s.dir.join("missing"),
            "is not a directory (or is a symlink)",
        ),
    ] {
        let d = dir.to_str().unwrap();
        let r = s.run(&["--records", d, b, T]);
        assert_eq!(r.code, 2, "{d}: {r:#?}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{d}: {}", r.stderr);
        assert!(
            lines[1].starts_with(&format!("zfs-autobackup: error: argument --records: {d} "))
                && lines[1].contains(why),
            "{d}: {}",
            r.stderr
        );
        assert_eq!(r.tools(), Vec::<&str>::new(), "{d}");
    }
    assert_eq!(fs::read_dir(&private).unwrap().count(), 0);
}

/// --syslog: every stderr line goes to `logger` too (a stand-in here that
/// writes down what it gets; the lab test reads the real journal), then
/// one line with the outcome, user.err unless it is 0.
#[test]
fn syslog_gets_every_message_and_the_outcome() {
    let s = Sandbox::new();
    let b = s.backup.as_str();
    let bin = s.dir.join("sysbin");
    fs::DirBuilder::new().mode(0o700).create(&bin).unwrap();
    let log = s.dir.join("syslog");
    let script = format!(
        r#"#!/bin/bash
prio=user.notice msg=''
while [[ $# -gt 0 ]]; do
    case $1 in
        -p) prio=$2; shift 2 ;;
        -t) tag=$2; shift 2 ;;
        --) shift; msg="$*"; break ;;
        *) shift ;;
    esac
done
if [[ -n $msg ]]; then
    printf '%s %s %s\n' "$tag" "$prio" "$msg" >>'{log}'
else
    while IFS= read -r line; do printf '%s %s %s\n' "$tag" "$prio" "$line" >>'{log}'; done
fi
"#,
        log = log.display()
    );
    fs::write(bin.join("logger"), script).unwrap();
    fs::set_permissions(bin.join("logger"), fs::Permissions::from_mode(0o700)).unwrap();
    let r = s.run_with_path(&["--syslog", "--rate", "20Q", b, T], Some(&bin));
    assert_eq!(r.code, 2, "{r:#?}");
    // The same lines on stderr as without --syslog.
    assert!(
        r.stderr
            .ends_with("for --rate: invalid byte count \"20Q\" (units: K, M, G, T)\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        format!(
            "zfs-autobackup user.notice usage: zfs-autobackup [options] BACKUP-NAME [TARGET-PATH]
zfs-autobackup user.notice zfs-autobackup: error: invalid value '20Q' for --rate: invalid byte count \"20Q\" (units: K, M, G, T)
zfs-autobackup user.err backup {b} to local:{T}: exit 2
"
        )
    );
    fs::remove_file(&log).unwrap();
    let r = s.run_with_path(&["--syslog", "--verbose", b], Some(&bin));
    assert_eq!(r.code, 0, "{r:#?}");
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        r.stderr.lines().count() + 1,
        "every stderr line, and the outcome: {text}"
    );
    assert!(
        text.contains("zfs-autobackup user.notice #### All operations completed successfully\n"),
        "{text}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("zfs-autobackup user.info backup {b}: exit 0").as_str())
    );
    assert_eq!(r.tools(), vec!["zab-select", "zab-snap", "zab-thin"]);
}
