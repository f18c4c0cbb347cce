//! scripts/zfs-autobackup on real OpenZFS: zfs-autobackup's command line on
//! zab's tools. Snapshot-only mode (the --verbose sections, a quiet run that
//! prints nothing), taking over a backup made by zfs-autobackup 3.3 with the
//! same arguments and handing it back, locally and over ssh, without a full
//! re-send; an encrypted source (sent raw); the exit status monitoring
//! reads (a failing pre-snapshot command: 255, as upstream); SIGTERM in the
//! middle of a transfer (passed on at once, upstream's words when the
//! resume token is aborted next time); and the run lock. zfs-autobackup
//! itself is installed in the guest as `zfs-autobackup`, the wrapper as
//! [`WRAPPER`].

use zab_core::host::quote_argv;
use zab_tests::{Lab, Ns, Out, WRAPPER};

use crate::Test;

pub const TESTS: &[Test] = &[
    ("wrapper_snapshot_only", snapshot_only),
    ("wrapper_migration_local", migration_local),
    ("wrapper_migration_over_ssh", migration_over_ssh),
    ("wrapper_encrypted_source", encrypted_source),
    ("wrapper_exit_status", exit_status),
    (
        "wrapper_pre_snapshot_cmd_is_fatal",
        pre_snapshot_cmd_is_fatal,
    ),
    (
        "wrapper_sigterm_stops_the_transfer",
        sigterm_stops_the_transfer,
    ),
    ("wrapper_run_lock", run_lock),
];

/// The wrapper in the guest, as cron runs it.
fn wrapper(lab: &Lab, args: &[&str]) -> Out {
    lab.guest(WRAPPER, args)
}

/// zfs-autobackup 3.3 itself, in the guest.
fn upstream(lab: &Lab, args: &[&str]) -> Out {
    lab.guest("zfs-autobackup", args)
}

/// Snapshot names have one-second resolution (upstream's and ours): wait
/// for the next second before another run.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// The snapshots of `ds` (after `@`) that carry the hold `tag`, sorted.
fn held(lab: &Lab, ds: &str, tag: &str) -> Vec<String> {
    let mut v: Vec<String> = lab
        .sh(&format!(
            "zfs list -H -t snapshot -o name -d 1 {} | xargs -r zfs holds -H",
            quote_argv(&[ds])
        ))
        .lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.get(1) == Some(&tag)).then(|| c[0].split_once('@').unwrap().1.to_string())
        })
        .collect();
    v.sort();
    v
}

/// Whether `name` is one of backup `b`'s snapshots in the default format
/// (`b-YYYYmmddHHMMSS`).
fn is_ours(b: &str, name: &str) -> bool {
    name.strip_prefix(&format!("{b}-"))
        .is_some_and(|t| t.len() == 14 && t.bytes().all(|c| c.is_ascii_digit()))
}

/// The position of a line in `text`, which must be there.
#[track_caller]
fn line_at(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in:\n{text}"))
}

fn snapshot_only(lab: &Lab) {
    let ns = Ns::new("wrap_snaponly");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let c = ns.ds("zab-a", "c");
    lab.sh(&format!(
        "set -e; zfs create -o {}=true {a}; zfs create {c}",
        ns.prop()
    ));
    lab.fill(&a, 50);

    // --verbose: the settings with the schedule in words, the sections an
    // admin knows, in order, and upstream's last line. Nothing on stdout.
    let out = wrapper(lab, &["--verbose", "--utc", b]).ok();
    assert_eq!(out.stdout, "");
    let err = out.stderr.as_str();
    let sections = [
        "#### Source settings",
        "#### Selecting",
        "#### Snapshotting",
        "#### Thinning source",
    ];
    let at: Vec<usize> = sections.iter().map(|s| line_at(err, s)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "sections in order:\n{err}"
    );
    for want in [
        format!("Selecting dataset property : {}", ns.prop()),
        format!("Snapshot format            : {b}-%Y%m%d%H%M%S"),
        "Timezone                   : UTC".to_string(),
        format!("Hold name                  : zfs_autobackup:{b}"),
        "[Source] Datasets are local".into(),
        "[Source] Keep the last 10 snapshots.".into(),
        "[Source] Keep every 1 day, delete after 1 week.".into(),
        "[Source] Keep every 1 week, delete after 1 month.".into(),
        "[Source] Keep every 1 month, delete after 1 year.".into(),
    ] {
        assert!(line_at(err, &want) < at[1], "{want:?} is a setting");
    }
    assert!(line_at(err, &format!("[Source] {a}: Selected")) > at[1]);
    assert!(line_at(err, &format!("[Source] {c}: Selected")) < at[2]);
    assert!(
        err.lines().any(
            |l| l.starts_with(&format!("[Source] Creating snapshots {b}-"))
                && l.ends_with("in pool zab-a")
        ),
        "{err}"
    );
    assert_eq!(
        err.lines().last(),
        Some("#### All operations completed successfully")
    );
    let first = lab.snapshot_names(&a);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(is_ours(b, &first[0]), "{}", first[0]);
    assert_eq!(
        lab.snapshot_names(&c),
        first,
        "one snapshot name for the run"
    );

    // A quiet run, as from cron: nothing at all on stdout or stderr.
    next_second();
    lab.fill(&a, 10);
    let out = wrapper(lab, &["--utc", b]).ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    let second = lab.snapshot_names(&a);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(
        lab.snapshot_names(&c),
        first,
        "c did not change (--min-change 1)"
    );

    // --test changes nothing, and says so last.
    next_second();
    lab.fill(&a, 10);
    let out = wrapper(
        lab,
        &["--test", "--allow-empty", "--keep-source", "0", "--utc", b],
    )
    .ok();
    assert_eq!(lab.snapshot_names(&a), second);
    assert_eq!(lab.snapshot_names(&c), first);
    line_at(&out.stderr, "#### All tests successful.");
    assert_eq!(
        out.stderr.lines().last(),
        Some("TEST MODE - DID NOT MAKE ANY CHANGES!")
    );

    // Thinning by --keep-source: only the newest stays, on both datasets
    // (--allow-empty snapshotted c too).
    next_second();
    let out = wrapper(lab, &["--allow-empty", "--keep-source", "1", "--utc", b]).ok();
    assert_eq!(out.stderr, "");
    let third = lab.snapshot_names(&a);
    assert_eq!(third.len(), 1, "{third:?}");
    assert!(!second.contains(&third[0]), "the new snapshot is kept");
    assert_eq!(lab.snapshot_names(&c), third);
}

fn migration_local(lab: &Lab) {
    migration(lab, "wrap_migrate", &[]);
}

/// Pushed over ssh to the guest itself. Source and target are then
/// different hosts to both tools, so the received copies (their
/// autobackup property is received) would be selected too: excluded with
/// --exclude-received, as an admin backing up into the same machine does.
fn migration_over_ssh(lab: &Lab) {
    migration(
        lab,
        "wrap_migrate_ssh",
        &["--ssh-target", "self", "--exclude-received"],
    );
}

/// zfs-autobackup backs up three times; the wrapper takes over with the
/// same arguments and goes on incrementally twice; zfs-autobackup goes on
/// twice more. After every run: the target has exactly the source's
/// snapshots (names and guids), all named as upstream names them, the
/// oldest target snapshot is still the first one received (no full
/// re-send), and only the newest snapshot carries the hold, on both sides.
fn migration(lab: &Lab, test: &str, extra: &[&str]) {
    let ns = Ns::new(test);
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let c = ns.ds("zab-a", "c");
    let tp = ns.ds("zab-t", "");
    lab.sh(&format!(
        "set -e; zfs create -o {}=true {a}; zfs create {c}; zfs create {tp}",
        ns.prop()
    ));
    let tag = format!("zfs_autobackup:{b}");
    let mut args: Vec<&str> = vec!["--utc"];
    args.extend_from_slice(extra);
    args.extend([b, tp.as_str()]);
    let pairs = [
        (a.clone(), format!("{tp}/{a}")),
        (c.clone(), format!("{tp}/{c}")),
    ];

    let mut first: Vec<(String, String)> = Vec::new();
    let mut runs = 0;
    for who in [
        "zfs-autobackup",
        "zfs-autobackup",
        "zfs-autobackup",
        WRAPPER,
        WRAPPER,
        "zfs-autobackup",
        "zfs-autobackup",
    ] {
        lab.fill(&a, 20);
        lab.fill(&c, 10);
        let out = if who == WRAPPER {
            wrapper(lab, &args)
        } else {
            upstream(lab, &args)
        };
        assert_eq!(out.code, 0, "{who}: {}\n{}", out.stdout, out.stderr);
        if who == WRAPPER {
            assert_eq!(out.stderr, "", "the wrapper is quiet");
            assert_eq!(out.stdout, "");
        }
        runs += 1;
        for (i, (src, tgt)) in pairs.iter().enumerate() {
            let s = lab.snaps(src);
            let t = lab.snaps(tgt);
            assert_eq!(s.len(), runs, "{who}: one snapshot per run on {src}");
            assert_eq!(t, s, "{who}: {tgt} has the snapshots of {src}");
            for (n, _) in &s {
                assert!(
                    is_ours(b, n),
                    "{who}: {src}@{n} is not named as upstream names it"
                );
            }
            if runs == 1 {
                first.push(t[0].clone());
            }
            assert_eq!(
                t[0], first[i],
                "{who}: the oldest snapshot of {tgt} changed: a full re-send"
            );
            let newest = vec![s[s.len() - 1].0.clone()];
            assert_eq!(held(lab, src, &tag), newest, "{who}: holds on {src}");
            assert_eq!(held(lab, tgt, &tag), newest, "{who}: holds on {tgt}");
            lab.same_files(src, tgt);
        }
        next_second();
    }
}

fn encrypted_source(lab: &Lab) {
    let ns = Ns::new("wrap_crypt");
    let b = ns.backup();
    let (key, enc, tp) = lab.encrypted_source(&ns);
    let tag = format!("zfs_autobackup:{b}");
    lab.fill(&enc, 100);
    wrapper(lab, &["--utc", b, &tp]).ok();
    // Raw: the target holds the ciphertext, its key not loaded.
    let t = format!("{tp}/{enc}");
    assert_eq!(lab.prop(&t, "encryption"), "aes-256-gcm");
    assert_eq!(lab.prop(&t, "keystatus"), "unavailable");
    assert_eq!(lab.prop(&t, "encryptionroot"), t);

    // Incremental, raw too.
    next_second();
    lab.fill(&enc, 30);
    let out = wrapper(lab, &["--verbose", "--utc", b, &tp]).ok();
    let at = line_at(&out.stderr, "#### Sending and thinning");
    assert!(
        out.stderr
            .lines()
            .skip(at)
            .any(|l| l.starts_with(&format!("[Target] {t}@")) && l.contains("incremental")),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.lines().last(),
        Some("#### All operations completed successfully")
    );
    let s = lab.snaps(&enc);
    assert_eq!(s.len(), 2);
    assert_eq!(lab.snaps(&t), s);
    let newest = vec![s[1].0.clone()];
    assert_eq!(held(lab, &enc, &tag), newest);
    assert_eq!(held(lab, &t, &tag), newest);
    lab.sh(&format!("zfs load-key -L file://{key} {t}"));
    lab.same_files(&enc, &t);
}

fn exit_status(lab: &Lab) {
    let ns = Ns::new("wrap_exit");
    let b = ns.backup();
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    let (a, f) = (ns.ds("zab-a", "a"), ns.ds("zab-a", "f"));
    let tp = ns.ds("zab-t", "");
    // f's target exists already, with a snapshot that is not common: its
    // transfer fails ("no common snapshot"); a's goes on.
    lab.sh(&format!(
        "set -e; zfs create -p {root}; zfs create -o {p}=true {a}; zfs create -o {p}=true {f}; \
         zfs create -p {tp}/{f}; zfs snapshot {tp}/{f}@foreign"
    ));
    lab.fill(&a, 20);
    lab.fill(&f, 20);

    // One failed dataset: exit 1, upstream's last line, the other one done.
    let out = wrapper(lab, &["--utc", b, &tp]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.lines().last(),
        Some("! 1 dataset(s) failed!"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("{tp}/{f}")), "{}", out.stderr);
    assert_eq!(lab.snaps(&format!("{tp}/{a}")), lab.snaps(&a));
    assert_eq!(lab.snapshot_names(&format!("{tp}/{f}")), vec!["foreign"]);

    // --debug stops at the first stage with a failure: zab-thin does not run.
    next_second();
    lab.fill(&a, 10);
    let out = wrapper(lab, &["--debug", "--utc", b, &tp]);
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--debug: stopping after the first failure"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("# zab-thin "), "{}", out.stderr);

    // A missing target path: fatal, 255.
    let out = wrapper(lab, &["--utc", b, &format!("{tp}/nonexistent")]);
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);

    // Nothing selected: fatal, 255.
    let none = format!("{b}-none");
    let out = wrapper(lab, &["--utc", &none, &tp]);
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert!(
        out.stderr.contains("no source datasets selected"),
        "{}",
        out.stderr
    );

    // A bad schedule: fatal before anything is done (no snapshot taken).
    next_second();
    lab.fill(&a, 10);
    let before = lab.snapshot_names(&a);
    let out = wrapper(lab, &["--keep-source", "1d1w2", "--utc", b, &tp]);
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("zfs-autobackup: --keep-source 1d1w2: invalid schedule"),
        "{}",
        out.stderr
    );
    assert_eq!(lab.snapshot_names(&a), before);

    // An unknown option: argparse's usage error, 2.
    let out = wrapper(lab, &["--no-such-option", b]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: unrecognized arguments: --no-such-option"),
        "{}",
        out.stderr
    );
}

/// A failing pre-snapshot command is fatal, as upstream: exit 255, no
/// snapshot, nothing sent (not even a snapshot taken before that waits to
/// be sent), and the post-snapshot commands still ran. zfs-autobackup and
/// the wrapper side by side, with the same arguments.
fn pre_snapshot_cmd_is_fatal(lab: &Lab) {
    let ns = Ns::new("wrap_precmd");
    let b = ns.backup();
    let p = ns.prop();
    let root = ns.ds("zab-a", "");
    let (a, c) = (ns.ds("zab-a", "a"), ns.ds("zab-a", "c"));
    let tp = ns.ds("zab-t", "");
    let post = format!("/tmp/{}.post", ns.name);
    lab.sh(&format!(
        "set -e; rm -f {post}; zfs create -p {root}; zfs create -o {p}=true {a}; \
         zfs create -o {p}=true {c}; zfs create -p {tp}"
    ));
    lab.fill(&a, 20);
    lab.fill(&c, 20);
    // Snapshots taken, not sent: the next run would send them.
    wrapper(lab, &["--no-send", "--utc", b, &tp]).ok();
    let taken = lab.snapshot_names(&a);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(lab.snapshot_names(&c), taken);

    for who in ["zfs-autobackup", WRAPPER] {
        next_second();
        // a changed (it needs a snapshot), c did not.
        lab.fill(&a, 10);
        let args = [
            "--utc",
            "--pre-snapshot-cmd",
            "false",
            "--post-snapshot-cmd",
            &format!("touch {post}"),
            b,
            &tp,
        ];
        let out = if who == WRAPPER {
            wrapper(lab, &args)
        } else {
            upstream(lab, &args)
        };
        assert_eq!(out.code, 255, "{who}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(lab.snapshot_names(&a), taken, "{who}: no new snapshot");
        assert_eq!(lab.snapshot_names(&c), taken, "{who}: no new snapshot");
        assert_eq!(
            lab.sh(&format!("zfs list -H -o name -r {tp}")),
            format!("{tp}\n"),
            "{who}: nothing was sent"
        );
        lab.sh(&format!("rm {post}"));
        if who == WRAPPER {
            assert!(
                out.stderr.lines().last().is_some_and(|l| l.starts_with(
                    "zfs-autobackup: a pre-snapshot command failed (1 dataset(s) not snapshotted)"
                )),
                "{}",
                out.stderr
            );
        }
    }
}

/// SIGTERM to the wrapper in the middle of a slow transfer is passed on at
/// once: the transfer stops (the target keeps what it received, as a resume
/// token), the wrapper ends with upstream's "Aborted" and 255, and no
/// process of the run is left. The snapshot the token leads to then goes
/// away on the source, and the next run aborts the token in upstream's
/// words.
fn sigterm_stops_the_transfer(lab: &Lab) {
    let ns = Ns::new("wrap_sigterm");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    let ta = format!("{tp}/{a}");
    lab.sh(&format!(
        "set -e; zfs create -o {}=true -o compression=off {a}; zfs create {tp}",
        ns.prop()
    ));
    lab.fill(&a, 100);
    wrapper(lab, &["--utc", b, &tp]).ok();
    let first = lab.snapshot_names(&a);
    assert_eq!(lab.snapshot_names(&ta), first);

    // 16 MiB at 1 MB/s: the transfer needs about 16 s; SIGTERM comes a
    // second after it started (its progress line).
    next_second();
    lab.fill(&a, 16 * 1024);
    let out = lab.ssh(&format!(
        "err=$(mktemp); {WRAPPER} --utc --rate 1M --progress {b} {tp} >/dev/null 2>$err & pid=$!; \
         i=0; until grep -q ' ETA ' $err || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done; \
         sleep 1; kill -TERM $pid; wait $pid; s=$?; tr '\\r' '\\n' < $err | tail -n 4 >&2; \
         if grep -q ' ETA ' $err; then echo 'progress: an ETA was drawn' >&2; fi; rm -f $err; \
         pgrep -af '[w]rap-sigterm' | grep -v \"^$$ \"; exit $s"
    ));
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert!(
        out.stderr.contains("progress: an ETA was drawn"),
        "the transfer ran: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("! Aborted (SIGTERM): zab-send stopped")),
        "{}",
        out.stderr
    );
    // Nothing of the run is still running (zab-send, zfs send, zfs recv
    // and their shells all name the backup or its datasets).
    assert_eq!(out.stdout, "", "processes left running");
    // The transfer did not finish: the new snapshot is not on the target,
    // what was received waits as a resume token.
    let s = lab.snapshot_names(&a);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(lab.snapshot_names(&ta), first, "the transfer was stopped");
    assert!(lab.prop(&ta, "receive_resume_token").len() > 10);

    // The token leads to a snapshot that is gone: the next run aborts it,
    // in upstream's words, and sends the newest snapshot.
    lab.sh(&format!("zfs destroy {a}@{}", s[1]));
    next_second();
    lab.fill(&a, 50);
    let out = wrapper(lab, &["--verbose", "--utc", b, &tp]).ok();
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&format!(
            "[Target] {ta}: Aborting resume, its no longer valid."
        ))),
        "{}",
        out.stderr
    );
    assert_eq!(lab.prop(&ta, "receive_resume_token"), "-");
    assert_eq!(lab.snaps(&ta), lab.snaps(&a));
    lab.same_files(&a, &ta);
}

/// One run per backup and target at a time: while another process holds
/// the lock file the tools lock too, the wrapper exits at once with 75 and
/// changes nothing; once it is free, the run goes on, with ZAB_LOCK_FD=9
/// for zab-send and zab-thin (not for the hooks). A snapshot-only run has its own lock, named after the
/// backup only.
fn run_lock(lab: &Lab) {
    let ns = Ns::new("wrap_lock");
    let b = ns.backup();
    let a = ns.ds("zab-a", "");
    let tp = ns.ds("zab-t", "");
    let fd = format!("/tmp/{}.fd", ns.name);
    lab.sh(&format!(
        "set -e; rm -f {fd}; zfs create -o {}=true {a}; zfs create {tp}",
        ns.prop()
    ));
    lab.fill(&a, 20);
    let lock = format!("/run/zab/{b}@local:{}.lock", tp.replace('/', "%"));
    let only = format!("/run/zab/{b}.lock");
    for (file, target) in [(&lock, Some(tp.as_str())), (&only, None)] {
        let mut argv = vec!["flock", "-o", file.as_str(), WRAPPER, "--utc", b];
        argv.extend(target);
        let out = lab.ssh(&format!(
            "mkdir -p -m 700 /run/zab && {}",
            quote_argv(&argv)
        ));
        assert_eq!(out.code, 75, "{}", out.stderr);
        assert_eq!(
            out.stderr,
            format!("zfs-autobackup: another run of backup {b} holds the lock {file}\n")
        );
        assert_eq!(lab.snapshot_names(&a), Vec::<String>::new());
    }

    // Free: the run goes on, the stages told that they run under the lock
    // (the file made anew: flock(1) made it above, with its own mode).
    lab.sh(&format!("rm {}", quote_argv(&[&lock])));
    // zab-send and zab-thin run under it (they check ZAB_LOCK_FD and fail
    // with 2 when it is not the lock); a hook neither sees nor holds it.
    let hook = format!(
        "echo \"${{ZAB_LOCK_FD:-unset}} $(if [ -e /dev/fd/9 ]; then echo open; else echo closed; fi)\" > {fd}"
    );
    wrapper(lab, &["--utc", "--pre-snapshot-cmd", &hook, b, &tp]).ok();
    assert_eq!(lab.sh(&format!("cat {fd}; rm {fd}")), "unset closed\n");
    assert_eq!(lab.snapshot_names(&a).len(), 1);
    assert_eq!(lab.snaps(&format!("{tp}/{a}")), lab.snaps(&a));
    assert_eq!(lab.sh("stat -c %a /run/zab"), "700\n");
    assert_eq!(
        lab.sh(&format!("stat -c %a {}", quote_argv(&[&lock]))),
        "600\n"
    );

    // A lock directory others may enter is refused before anything runs
    // (as a user other than root: $XDG_RUNTIME_DIR/zab).
    let xdg = format!("/var/tmp/{}", ns.name);
    let out = lab.ssh(&format!(
        "rm -rf {xdg}; mkdir -m 755 {xdg} {xdg}/zab; chown nobody {xdg} {xdg}/zab; \
         setpriv --reuid=nobody --regid=nogroup --clear-groups \
           env XDG_RUNTIME_DIR={xdg} {WRAPPER} --utc {b} {tp}; s=$?; rm -rf {xdg}; exit $s"
    ));
    assert_eq!(out.code, 255, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "zfs-autobackup: lock directory {xdg}/zab has owner uid "
        )) && out.stderr.contains("mode 0755: it must be owned by uid"),
        "{}",
        out.stderr
    );
}
