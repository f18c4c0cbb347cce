//! zab-restore on real OpenZFS: backups made by zab-send (sources in the
//! lab) to a directory here (file://) or to the local S3 server, restored
//! by zab-restore running here into the lab over ssh (--ssh-target), and
//! compared with their sources: the same snapshots and guids, the same
//! files.

use zab_tests::{json, objects, Lab, Ns, Out, GUEST_DIR, GUEST_DIR_MAKE};

use crate::store::{bucket, dir, s3_env, send, snap, SECRET};
use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "restore_dir_chain_goes_on_and_stops_on_a_corrupt_object",
        dir_chain_goes_on_and_stops_on_a_corrupt_object,
    ),
    (
        "restore_s3_compressed_and_raw_encrypted",
        s3_compressed_and_raw_encrypted,
    ),
    (
        "restore_killed_midway_goes_on_next_run",
        killed_midway_goes_on_next_run,
    ),
    (
        "restore_s3_killed_in_a_full_stream_goes_on_inside_it",
        s3_killed_in_a_full_stream_goes_on_inside_it,
    ),
    (
        "restore_s3_compressed_killed_in_a_full_stream_goes_on_inside_it",
        s3_compressed_killed_in_a_full_stream_goes_on_inside_it,
    ),
    (
        "restore_s3_raw_killed_in_a_full_stream_goes_on_inside_it",
        s3_raw_killed_in_a_full_stream_goes_on_inside_it,
    ),
    (
        "restore_all_after_loss_from_s3_and_a_directory",
        all_after_loss_from_s3_and_a_directory,
    ),
];

/// Every record of a run (the `restore` records, then the `end` record).
#[track_caller]
fn all_records(out: &Out) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut lines: Vec<serde_json::Value> = out.stdout.lines().map(json).collect();
    let end = lines
        .pop()
        .unwrap_or_else(|| panic!("no records:\n{}", out.stderr));
    assert_eq!(end["kind"], "end", "{}", out.stdout);
    assert_eq!(end["tool"], "zab-restore");
    assert!(
        lines.iter().all(|l| l["kind"] == "restore"),
        "{}",
        out.stdout
    );
    (lines, end)
}

/// The `restore` record and the `end` record of a run.
#[track_caller]
fn records(out: &Out) -> (serde_json::Value, serde_json::Value) {
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(json).collect();
    assert_eq!(
        lines.len(),
        2,
        "one record and the end:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(lines[0]["kind"], "restore", "{}", out.stdout);
    assert_eq!(lines[1]["kind"], "end", "{}", out.stdout);
    assert_eq!(lines[1]["tool"], "zab-restore");
    (lines[0].clone(), lines[1].clone())
}

fn exists(lab: &Lab, ds: &str) -> bool {
    lab.ssh(&format!("zfs list -H -o name {ds}")).code == 0
}

fn dir_chain_goes_on_and_stops_on_a_corrupt_object(lab: &Lab) {
    let ns = Ns::new("restore_dir");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    let back = ns.ds("zab-t", "");
    lab.fresh_sources(&ns, &[&a]);
    // More than the MiB held back, so that most of each stream goes
    // through before the hash is known.
    lab.fill(&a, 3000);
    let s1 = snap(lab, b, 1, &[&a]);
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());
    let sent = send(lab, "", b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&a, 2000);
    let s2 = snap(lab, b, 2, &[&a]);
    let sent = send(lab, "", b, &url, &["--compress", "zstd-fast"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&a, 2000);
    let s3 = snap(lab, b, 3, &[&a]);
    let sent = send(lab, "", b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);

    // --test: the plan and the commands; nothing is received.
    let r = ns.ds("zab-t", "a");
    let out = lab.restore("", &["--test", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, end) = records(&out);
    assert_eq!(rec["status"], "planned", "{rec}");
    assert_eq!(
        objects(&rec, "snapshot"),
        [&s1, &s2, &s3].map(|s| s.as_str())
    );
    assert_eq!(rec["objects"][1]["compressor"], "zstd-fast", "{rec}");
    assert!(out.stderr.contains("would stream"), "{}", out.stderr);
    assert!(
        out.stderr.contains("zstdmt -dc | zfs recv -u"),
        "{}",
        out.stderr
    );
    assert_eq!(end["failed"], 0);
    assert!(!exists(lab, &r), "--test created {r}");

    // To @s2 (the full stream, then the compressed incremental).
    let out = lab.restore("", &[&url, &format!("{a}@{s2}"), &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, end) = records(&out);
    assert_eq!(rec["status"], "restored", "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s1, &s2].map(|s| s.as_str()));
    assert_eq!(end["objects"], 2, "{end}");
    assert_eq!(lab.snaps(&r), lab.snaps(&a)[..2].to_vec());
    assert_eq!(lab.prop(&r, "mounted"), "no", "received with -u");

    // Again, to the newest: only what comes after @s2 is received.
    let out = lab.restore("", &[&url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, _) = records(&out);
    assert_eq!(rec["status"], "restored", "{rec}");
    assert_eq!(rec["from"], s2.as_str(), "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s3].map(|s| s.as_str()));
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);

    // Nothing new: up to date.
    let out = lab.restore("", &[&url, &a, &r]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(records(&out).0["status"], "up-to-date");

    // A corrupt object: one line that names it, exit 1, no new snapshot.
    lab.fill(&a, 3000);
    let s4 = snap(lab, b, 4, &[&a]);
    let sent = send(lab, "", b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let file = d.join(format!("{a}@{s4}"));
    let good = std::fs::read(&file).unwrap();
    assert!(good.len() > 2 << 20, "{} bytes", good.len());
    let mut bad = good.clone();
    let at = bad.len() - 2000;
    bad[at] ^= 0x55;
    std::fs::write(&file, &bad).unwrap();
    let before = lab.snaps(&r);
    let out = lab.restore("", &[&url, &a, &r]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let object_url = format!("{url}/{a}@{s4}");
    assert!(
        out.stderr.starts_with("zab-restore: ")
            && out.stderr.contains(&object_url)
            && out.stderr.contains("corrupt"),
        "{}",
        out.stderr
    );
    let (rec, end) = records(&out);
    assert_eq!(rec["status"], "failed", "{rec}");
    assert!(
        rec["error"].as_str().unwrap().contains(&object_url),
        "{rec}"
    );
    assert_eq!(end["failed"], 1);
    assert_eq!(
        lab.snaps(&r),
        before,
        "nothing of the corrupt object was committed"
    );

    // Mended, the next run goes on from there.
    std::fs::write(&file, &good).unwrap();
    let out = lab.restore("", &[&url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        objects(&records(&out).0, "snapshot"),
        [&s4].map(|s| s.as_str())
    );
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);

    // A target that exists without any snapshot of the chain is refused.
    let other = ns.ds("zab-t", "other");
    lab.sh(&format!("zfs create {other}"));
    let out = lab.restore("", &[&url, &a, &other]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("no snapshot of the chain"),
        "{}",
        out.stderr
    );
    assert!(lab.snaps(&other).is_empty());
    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}",
        ns.ds("zab-a", "")
    ));
}

fn s3_compressed_and_raw_encrypted(lab: &Lab) {
    let ns = Ns::new("restore_s3");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-restore-s3");
    let a = ns.ds("zab-a", "a");
    let enc = ns.ds("zab-a", "enc");
    let key = format!("/root/{}.key", ns.name);
    let back = ns.ds("zab-t", "");
    lab.fresh(
        &ns,
        &format!(
            "printf 'zab lab passphrase' > {key}; zfs create -p -o autobackup:{b}=true {a}; \
         zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} \
         -o autobackup:{b}=true {enc}; zfs create {back}"
        ),
    );
    lab.fill(&a, 2500);
    lab.fill(&enc, 1500);
    let s1 = snap(lab, b, 1, &[&a, &enc]);
    let url = format!("s3://{bkt}/backups");
    let sent = send(lab, &env, b, &url, &["--compress", "zstd-fast"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&a, 500);
    lab.fill(&enc, 500);
    let s2 = snap(lab, b, 2, &[&a, &enc]);
    let sent = send(lab, &env, b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);

    // Compressed full, plain incremental, from S3.
    let r = ns.ds("zab-t", "a");
    let out = lab.restore(&env, &["--debug", "--verbose", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, _) = records(&out);
    assert_eq!(objects(&rec, "snapshot"), [&s1, &s2].map(|s| s.as_str()));
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));

    // Raw: received as it is, the key not loaded; zfs load-key, then the
    // same files.
    let re = ns.ds("zab-t", "enc");
    let out = lab.restore(&env, &[&url, &enc, &re]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, _) = records(&out);
    assert_eq!(rec["objects"][0]["raw"], true, "{rec}");
    assert_eq!(lab.snaps(&re), lab.snaps(&enc));
    assert_eq!(lab.prop(&re, "keystatus"), "unavailable");
    assert_eq!(lab.prop(&re, "encryption"), lab.prop(&enc, "encryption"));
    lab.sh(&format!("zfs load-key -L file://{key} {re}"));
    lab.same_files(&enc, &re);
    let _ = s2;
    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}; rm -f {key}",
        ns.ds("zab-a", "")
    ));
}

fn killed_midway_goes_on_next_run(lab: &Lab) {
    let ns = Ns::new("restore_kill");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    let back = ns.ds("zab-t", "");
    lab.fresh_sources(&ns, &[&a]);
    lab.fill(&a, 1000);
    let s1 = snap(lab, b, 1, &[&a]);
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());
    assert_eq!(send(lab, "", b, &url, &[]).code, 0);
    // Large enough that its receive is still running when the kill comes.
    lab.fill(&a, 120 * 1024);
    let s2 = snap(lab, b, 2, &[&a]);
    assert_eq!(send(lab, "", b, &url, &[]).code, 0);
    lab.fill(&a, 1000);
    let s3 = snap(lab, b, 3, &[&a]);
    assert_eq!(send(lab, "", b, &url, &[]).code, 0);

    // SIGTERM while the second object streams: exit 130, the first
    // snapshot kept, nothing of the second.
    let r = ns.ds("zab-t", "a");
    let log = d.join("restore.log");
    let out = lab.local_sh(&format!(
        "zab-restore --verbose --ssh-target zfs-lab --ssh-config \"$CFG\" {url} {a} {r} 2>{log} & pid=$!; \
         i=0; until grep -q '@{s2} (' {log}; do i=$((i+1)); [ $i -lt 3000 ] || break; sleep 0.01; done; \
         i=0; until [ \"$(ssh -F \"$CFG\" zfs-lab \"cat /proc/\\$(pgrep -n -f '^zfs recv .*{r}$')/io\" 2>/dev/null \
           | sed -n 's/^rchar: //p')\" -gt 30000000 ] 2>/dev/null; do \
           i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.2; done; \
         kill -TERM $pid; wait $pid; echo \"rc=$?\" >&2; cat {log} >&2",
        log = log.display()
    ));
    // The kill comes once the second object's zfs recv has read 30 MB (its
    // /proc/PID/io in the lab: before 4 MB, no partial receive may be kept;
    // a fixed wait raced with a loaded lab), past its checkpoints at 8 and
    // 16 MiB.
    assert!(
        out.stderr.contains("rc=130"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    let (rec, _) = records(&out);
    assert_eq!(rec["status"], "failed", "{rec}");
    assert_eq!(rec["objects"][0]["received"], true, "{rec}");
    assert_eq!(rec["objects"][1]["received"], false, "{rec}");
    assert_eq!(lab.snapshot_names(&r), std::slice::from_ref(&s1));

    // zab-restore's own receive is zfs recv -s: the kill left a partial
    // receive, and the next run goes on with it inside the object.
    let token = |ds: &str| lab.prop(ds, "receive_resume_token");
    wait_for_token(lab, &r);
    assert_ne!(token(&r), "-", "the kill left no resume token on {r}");
    let out = lab.restore("", &["--verbose", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("going on with the partial receive of")
            && !out.stderr.contains("aborting a partial receive"),
        "{}",
        out.stderr
    );
    assert_eq!(token(&r), "-");
    let (rec, _) = records(&out);
    assert_eq!(rec["resumed_partial"], true, "{rec}");
    assert!(rec.get("aborted_partial").is_none(), "{rec}");
    assert_eq!(rec["from"], s1.as_str(), "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s2, &s3].map(|s| s.as_str()));
    // The incremental went on from a checkpoint: read from the directory
    // from its piece on.
    went_on_from_a_checkpoint(&out, &rec);
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);

    // A new dataset's full receive of another snapshot than the chain's
    // first, cut short with -s: it cannot go on, so the partial dataset
    // goes with zfs recv -A (--test says so and changes nothing), then the
    // whole chain is received.
    let r2 = ns.ds("zab-t", "a2");
    lab.ssh(&format!(
        "zfs send {a}@{s2} | head -c 300000 | zfs recv -s -u {r2}"
    ));
    assert_ne!(token(&r2), "-", "zfs recv -s left no resume token on {r2}");
    let out = lab.restore("", &["--test", &url, &a, &r2]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("would abort the partial receive") && out.stderr.contains("recv -A"),
        "{}",
        out.stderr
    );
    assert_eq!(records(&out).0["status"], "planned");
    assert_ne!(token(&r2), "-", "--test aborted the partial receive");
    let out = lab.restore("", &[&url, &a, &r2]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (rec, _) = records(&out);
    assert_eq!(rec["aborted_partial"], true, "{rec}");
    assert_eq!(
        objects(&rec, "snapshot"),
        [&s1, &s2, &s3].map(|s| s.as_str())
    );
    assert_eq!(lab.snaps(&r2), lab.snaps(&a));
    lab.same_files(&a, &r2);
    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}",
        ns.ds("zab-a", "")
    ));
}

/// The `bytes` of the resume token on `ds` (the stream's bytes its
/// receive had read), as `zfs send -nv -t` shows it (the source is in
/// the lab too).
fn token_bytes(lab: &Lab, ds: &str) -> u64 {
    let out = lab.sh(&format!(
        "zfs send -nv -t \"$(zfs get -H -o value receive_resume_token {ds})\" 2>&1"
    ));
    let hex = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("bytes = 0x"))
        .unwrap_or_else(|| panic!("no bytes in the token of {ds}:\n{out}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// A restore of `a` from `url` into `r`, killed (SIGTERM) while its first
/// object (a full stream) streams: exit 130, its partial receive left
/// with a token part of the way in. The object's stored size and the
/// token's bytes.
/// Waits (up to 30 s) for `r`'s resume token after a kill: the ssh to the
/// receiving side is stopped; the zfs recv it ran ends when it reads the
/// end of its input, and saves its state then.
fn wait_for_token(lab: &Lab, r: &str) {
    lab.sh(&format!(
        "i=0; until [ \"$(zfs get -H -o value receive_resume_token {r} 2>/dev/null)\" != '' ] && \
         [ \"$(zfs get -H -o value receive_resume_token {r})\" != - ]; do \
         i=$((i+1)); [ $i -lt 150 ] || break; sleep 0.2; done"
    ));
}

fn kill_inside_the_first_object(
    lab: &Lab,
    env: &str,
    ns: &Ns,
    (url, read): (&str, u64),
    a: &str,
    r: &str,
) -> (u64, u64, String) {
    let d = dir(&ns.name);
    let log = d.join("restore.log");
    let out = lab.local_sh(&format!(
        "{env}zab-restore --verbose --ssh-target zfs-lab --ssh-config \"$CFG\" {url} {a} {r} 2>{log} & pid=$!; \
         i=0; until [ \"$(ssh -F \"$CFG\" zfs-lab \"cat /proc/\\$(pgrep -f '^zfs recv -u -s {r}$')/io\" 2>/dev/null \
           | sed -n 's/^rchar: //p')\" -gt {read} ] 2>/dev/null; do \
           i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.2; done; \
         kill -TERM $pid; wait $pid; echo \"rc=$?\" >&2; cat {log} >&2",
        log = log.display()
    ));
    // The kill comes once zfs recv has read `read` bytes (its
    // /proc/PID/io in the lab; before 4 MB, its partial receive may not
    // be kept); the object is larger and its last MiB is held back, so
    // the receive cannot end first.
    assert!(
        out.stderr.contains("rc=130"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let (rec, _) = records(&out);
    let size = rec["objects"][0]["stored_bytes"].as_u64().unwrap();
    wait_for_token(lab, r);
    assert_ne!(
        lab.prop(r, "receive_resume_token"),
        "-",
        "the kill left no resume token on {r}:\n{}",
        out.stderr
    );
    let bytes = token_bytes(lab, r);
    assert!(
        bytes > 0 && bytes < size,
        "the kill landed at byte {bytes} of {size}"
    );
    (size, bytes, out.stderr)
}

/// A run that went on from a checkpoint: `--verbose` said from which
/// byte, its record's `bytes` are all its objects' stored bytes, and its
/// `downloaded_bytes` at least one range (8 MiB) less. Where the
/// checkpoint is.
#[track_caller]
fn went_on_from_a_checkpoint(out: &Out, rec: &serde_json::Value) -> u64 {
    assert!(
        out.stderr.contains("downloading from byte "),
        "{}",
        out.stderr
    );
    let stored: u64 = rec["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["stored_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(rec["bytes"], stored, "{rec}");
    let downloaded = rec["downloaded_bytes"].as_u64().unwrap_or(stored);
    assert!(downloaded + (8 << 20) <= stored, "{rec}");
    checkpoint_at(&out.stderr)
}

/// Where the checkpoint a run went on from is (its `--verbose` line
/// `... (checkpoint at byte S)`).
#[track_caller]
fn checkpoint_at(stderr: &str) -> u64 {
    let at = stderr
        .split("(checkpoint at byte ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|n| n.parse().ok());
    at.unwrap_or_else(|| panic!("no checkpoint said:\n{stderr}"))
}

/// A restore from S3 killed in the middle of a full stream (once zfs recv
/// has read 20 MB of its 64 MiB) leaves its partial receive (zfs recv -s)
/// and the checkpoints taken on the way; --test says where it would go on
/// and from which byte it would download; the next run, killed too, goes
/// on from a checkpoint and takes later ones; the run after goes on
/// inside the object (no zfs recv -A, the resuming stream made from the object
/// downloaded from the last checkpoint before the token's point, at least
/// one range less than all of it, its hash still the whole object's), and
/// the files are the source's. A partial receive of a stream sent with other
/// flags cannot go on: it falls back to zfs recv -A and the whole object.
fn s3_killed_in_a_full_stream_goes_on_inside_it(lab: &Lab) {
    let ns = Ns::new("restore_resume");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-restore-resume");
    let a = ns.ds("zab-a", "a");
    let back = ns.ds("zab-t", "");
    lab.fresh_sources(&ns, &[&a]);
    for _ in 0..2 {
        lab.fill(&a, 32 * 1024);
    }
    let s1 = snap(lab, b, 1, &[&a]);
    let url = format!("s3://{bkt}/resume");
    let sent = send(lab, &env, b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&a, 1000);
    let s2 = snap(lab, b, 2, &[&a]);
    let sent = send(lab, &env, b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);

    let r = ns.ds("zab-t", "a");
    let (size, bytes, _) = kill_inside_the_first_object(lab, &env, &ns, (&url, 20_000_000), &a, &r);
    let token = |ds: &str| lab.prop(ds, "receive_resume_token");

    // --test: where it would go on; nothing changes.
    let out = lab.restore(&env, &["--test", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let want = format!(
        "would go on with the partial receive on {r}: resume {url}/{a}@{s1} at byte {bytes} of {size}"
    );
    assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);
    assert!(
        out.stderr.contains("would download from byte "),
        "{}",
        out.stderr
    );
    let (rec, _) = records(&out);
    assert_eq!(rec["status"], "planned", "{rec}");
    assert_eq!(rec["resumed_partial"], true, "{rec}");
    assert_eq!(
        token_bytes(lab, &r),
        bytes,
        "--test changed the partial receive"
    );

    // Killed again while it goes on from a checkpoint, once its zfs recv
    // has read 16 MB (the first kill at 20 MB leaves more than twice that
    // to go, so that this run cannot end before the kill, whatever the
    // lab's speed): the run after goes on from a later checkpoint, one
    // that this run's walk (from the first checkpoint) took.
    let (_, bytes2, said) =
        kill_inside_the_first_object(lab, &env, &ns, (&url, 16_000_000), &a, &r);
    assert!(said.contains("downloading from byte "), "{said}");
    let first = checkpoint_at(&said);
    assert!(bytes2 > bytes, "the token went from {bytes} to {bytes2}");

    // The next run goes on inside the object: every command shown
    // (--debug), and none is zfs recv -A.
    let out = lab.restore(&env, &["--verbose", "--debug", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("going on with the partial receive of")
            && out.stderr.contains("recv -u -s")
            && !out.stderr.contains("recv -A"),
        "{}",
        out.stderr
    );
    let (rec, end) = records(&out);
    assert_eq!(rec["status"], "restored", "{rec}");
    assert_eq!(rec["resumed_partial"], true, "{rec}");
    assert!(rec.get("aborted_partial").is_none(), "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s1, &s2].map(|s| s.as_str()));
    assert_eq!(end["objects"], 2, "{end}");
    let second = went_on_from_a_checkpoint(&out, &rec);
    assert!(
        second > first,
        "went on from byte {second}, the killed run from {first}"
    );
    assert_eq!(token(&r), "-");
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));

    // A partial receive of the same snapshot sent with other flags (-c):
    // its blocks would not match, so it falls back to zfs recv -A and the
    // whole object.
    let r3 = ns.ds("zab-t", "a3");
    lab.ssh(&format!(
        "zfs send -c {a}@{s1} | head -c 3000000 | zfs recv -s -u {r3}"
    ));
    assert_ne!(token(&r3), "-", "zfs recv -s left no resume token on {r3}");
    let out = lab.restore(&env, &["--verbose", &url, &a, &r3]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the partial receive cannot go on")
            && out.stderr.contains("aborting a partial receive"),
        "{}",
        out.stderr
    );
    let (rec, _) = records(&out);
    assert_eq!(rec["aborted_partial"], true, "{rec}");
    assert!(rec.get("resumed_partial").is_none(), "{rec}");
    assert_eq!(lab.snaps(&r3), lab.snaps(&a));
    lab.same_files(&a, &r3);
    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}",
        ns.ds("zab-a", "")
    ));
}

/// The same with a compressed object (`zab-send --compress zstd-fast`):
/// the partial receive goes on inside it, the object decompressed here
/// (zstdmt -dc) and the resuming stream made from that into `zfs recv -s`
/// alone; no zfs recv -A, and the files are the source's.
fn s3_compressed_killed_in_a_full_stream_goes_on_inside_it(lab: &Lab) {
    let ns = Ns::new("restore_zresume");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-restore-zresume");
    let a = ns.ds("zab-a", "a");
    let back = ns.ds("zab-t", "");
    lab.fresh_sources(&ns, &[&a]);
    // Random data: the compressed object is about the stream's size, so
    // the kill (after 4 MB read by zfs recv) lands well inside it.
    for _ in 0..2 {
        lab.fill(&a, 32 * 1024);
    }
    let s1 = snap(lab, b, 1, &[&a]);
    let url = format!("s3://{bkt}/zresume");
    let zst = ["--compress", "zstd-fast"];
    let sent = send(lab, &env, b, &url, &zst);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&a, 1000);
    let s2 = snap(lab, b, 2, &[&a]);
    let sent = send(lab, &env, b, &url, &zst);
    assert_eq!(sent.code, 0, "{}", sent.stderr);

    let r = ns.ds("zab-t", "a");
    let (_, bytes, _) = kill_inside_the_first_object(lab, &env, &ns, (&url, 4_000_000), &a, &r);

    // --test: it would go on, inside the stream (its size in the message),
    // decompressed here.
    let out = lab.restore(&env, &["--test", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let want = format!(
        "would go on with the partial receive on {r}: resume {url}/{a}@{s1} at byte {bytes} of "
    );
    let stream: u64 = out
        .stderr
        .split(&want)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{want}\n{}", out.stderr));
    assert!(
        bytes < stream,
        "the kill landed at byte {bytes} of {stream}"
    );
    assert!(
        out.stderr
            .contains("would stream the resuming stream, decompressed here (zstdmt -dc) into:"),
        "{}",
        out.stderr
    );

    // The next run goes on inside the object: no zfs recv -A.
    let out = lab.restore(&env, &["--verbose", "--debug", &url, &a, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("going on with the partial receive of")
            && out.stderr.contains("decompressed here (zstdmt -dc)")
            && out.stderr.contains("recv -u -s")
            && !out.stderr.contains("recv -A")
            && !out.stderr.contains("cannot go on"),
        "{}",
        out.stderr
    );
    let (rec, end) = records(&out);
    assert_eq!(rec["status"], "restored", "{rec}");
    assert_eq!(rec["resumed_partial"], true, "{rec}");
    assert!(rec.get("aborted_partial").is_none(), "{rec}");
    assert_eq!(rec["objects"][0]["compressor"], "zstd-fast", "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s1, &s2].map(|s| s.as_str()));
    assert_eq!(end["objects"], 2, "{end}");
    assert_eq!(lab.prop(&r, "receive_resume_token"), "-");
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}",
        ns.ds("zab-a", "")
    ));
}

/// The same with an encrypted dataset, backed up raw (zfs send -w): the
/// partial receive goes on inside the raw stream (its BEGIN payload's
/// keys kept, after the resume point), no zfs recv -A; the key is not
/// loaded by the restore; zfs load-key, then the source's files.
fn s3_raw_killed_in_a_full_stream_goes_on_inside_it(lab: &Lab) {
    let ns = Ns::new("restore_wresume");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-restore-wresume");
    let enc = ns.ds("zab-a", "enc");
    let key = format!("/root/{}.key", ns.name);
    let back = ns.ds("zab-t", "");
    lab.fresh(
        &ns,
        &format!(
            "printf 'zab lab passphrase' > {key}; zfs create -p {}; \
             zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} \
             -o autobackup:{b}=true {enc}; zfs create {back}",
            ns.ds("zab-a", "")
        ),
    );
    for _ in 0..2 {
        lab.fill(&enc, 32 * 1024);
    }
    let s1 = snap(lab, b, 1, &[&enc]);
    let url = format!("s3://{bkt}/wresume");
    let sent = send(lab, &env, b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&enc, 1000);
    let s2 = snap(lab, b, 2, &[&enc]);
    let sent = send(lab, &env, b, &url, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);

    let r = ns.ds("zab-t", "enc");
    let (size, bytes, _) =
        kill_inside_the_first_object(lab, &env, &ns, (&url, 4_000_000), &enc, &r);
    let out = lab.restore(&env, &["--test", &url, &enc, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let want = format!(
        "would go on with the partial receive on {r}: resume {url}/{enc}@{s1} at byte {bytes} of {size}"
    );
    assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);

    let out = lab.restore(&env, &["--verbose", "--debug", &url, &enc, &r]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("going on with the partial receive of")
            && out.stderr.contains("recv -u -s")
            && !out.stderr.contains("recv -A")
            && !out.stderr.contains("cannot go on"),
        "{}",
        out.stderr
    );
    let (rec, end) = records(&out);
    assert_eq!(rec["status"], "restored", "{rec}");
    assert_eq!(rec["resumed_partial"], true, "{rec}");
    assert!(rec.get("aborted_partial").is_none(), "{rec}");
    assert_eq!(rec["objects"][0]["raw"], true, "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s1, &s2].map(|s| s.as_str()));
    assert_eq!(end["objects"], 2, "{end}");
    assert_eq!(lab.prop(&r, "receive_resume_token"), "-");
    assert_eq!(lab.snaps(&r), lab.snaps(&enc));
    assert_eq!(lab.prop(&r, "keystatus"), "unavailable");
    lab.sh(&format!("zfs load-key -L file://{key} {r}"));
    lab.same_files(&enc, &r);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}; rm -f {key}",
        ns.ds("zab-a", "")
    ));
}

/// The sha256 of a volume's device (waiting for udev to make it).
fn volume_sum(lab: &Lab, vol: &str) -> String {
    lab.sh(&format!(
        "udevadm settle 2>/dev/null || true; i=0; until [ -e /dev/zvol/{vol} ]; do \
         sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || break; done; \
         sha256sum < /dev/zvol/{vol} | cut -d' ' -f1"
    ))
    .trim()
    .to_string()
}

/// The cycle: back up a tree (a filesystem, its child, a volume)
/// to a directory and to S3, lose the sources, restore everything with
/// --all into a new pool (from the directory) and into a fresh dataset
/// (from S3), and compare snapshots, guids, every file's checksum and the
/// volume's blocks with what the sources had.
fn all_after_loss_from_s3_and_a_directory(lab: &Lab) {
    let ns = Ns::new("restore_all");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-restore-all");
    let root = ns.ds("zab-a", "");
    let a = ns.ds("zab-a", "a");
    let c = ns.ds("zab-a", "a/c");
    let v = ns.ds("zab-a", "vol");
    let back = ns.ds("zab-t", "");
    let pool = "zabr-all";
    let drop_pool = format!(
        "zpool destroy -f {pool} 2>/dev/null; rm -f {GUEST_DIR}/{pool}.img; \
         mountpoint -q /{pool} || rm -rf /{pool}"
    );
    lab.ssh(&drop_pool);
    lab.sh(&format!(
        "set -e; zfs destroy -r {root} 2>/dev/null || true; zfs destroy -r {back} 2>/dev/null || true; \
         zfs create -p -o autobackup:{b}=true {root}; zfs create -p {c}; \
         zfs create -V 8M -o volmode=dev {v}; zfs create -p {back}/s3; \
         udevadm settle 2>/dev/null || true; \
         i=0; until [ -e /dev/zvol/{v} ]; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ]; done; \
         dd if=/dev/urandom of=/dev/zvol/{v} bs=64K count=128 conv=fsync status=none"
    ));
    lab.fill(&a, 2000);
    lab.fill(&c, 700);
    let all = [root.as_str(), &a, &c, &v];
    let s1 = snap(lab, b, 1, &all);
    let d = dir(&ns.name);
    let url_d = format!("file://{}", d.display());
    let url_s = format!("s3://{bkt}/all");
    let sent = send(lab, "", b, &url_d, &[]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let sent = send(lab, &env, b, &url_s, &["--compress", "zstd-fast"]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    lab.fill(&a, 500);
    lab.fill(&c, 300);
    lab.sh(&format!(
        "dd if=/dev/urandom of=/dev/zvol/{v} bs=64K count=16 seek=40 conv=fsync,notrunc status=none"
    ));
    let s2 = snap(lab, b, 2, &all);
    for (env, url) in [("", &url_d), (env.as_str(), &url_s)] {
        let sent = send(lab, env, b, url, &[]);
        assert_eq!(sent.code, 0, "{}", sent.stderr);
    }

    // What the sources had, then the loss.
    let snaps: Vec<_> = all.iter().map(|ds| lab.snaps(ds)).collect();
    assert!(snaps.iter().all(|s| s.len() == 2), "{snaps:?}");
    let files_a = lab.sums(&format!("{a}@{s2}"));
    let files_c = lab.sums(&format!("{c}@{s2}"));
    assert!(!files_a.is_empty() && !files_c.is_empty());
    let blocks = volume_sum(lab, &v);
    assert_eq!(blocks.len(), 64, "{blocks}");
    lab.sh(&format!("zfs destroy -r {root}"));
    let _ = s1;

    let check = |out: &Out, base: &str| {
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let (recs, end) = all_records(out);
        let names: Vec<&str> = recs
            .iter()
            .map(|r| r["dataset"].as_str().unwrap())
            .collect();
        assert_eq!(names, all, "parents first");
        assert!(
            recs.iter().all(|r| r["status"] == "restored"),
            "{}",
            out.stdout
        );
        assert_eq!(end["restored"], 4, "{end}");
        assert_eq!(end["failed"], 0, "{end}");
        for (ds, want) in all.iter().zip(&snaps) {
            assert_eq!(&lab.snaps(&format!("{base}/{ds}")), want, "{base}/{ds}");
        }
        assert_eq!(lab.sums(&format!("{base}/{a}@{s2}")), files_a);
        assert_eq!(lab.sums(&format!("{base}/{c}@{s2}")), files_c);
        assert_eq!(volume_sum(lab, &format!("{base}/{v}")), blocks);
    };

    // From the directory into a new pool: TARGET-PATH is the pool; the
    // store's zab-a becomes a parent created with canmount=off.
    lab.sh(&format!(
        "set -e; {GUEST_DIR_MAKE}; truncate -s 512M {GUEST_DIR}/{pool}.img; \
         zpool create {pool} {GUEST_DIR}/{pool}.img"
    ));
    let out = lab.restore("", &["--all", "--verbose", &url_d, pool]);
    check(&out, pool);
    assert_eq!(lab.prop(&format!("{pool}/zab-a"), "canmount"), "off");

    // From S3, DATASET and everything below it into a fresh dataset,
    // two ranged requests at a time: first --test, which creates nothing.
    let t = format!("{back}/s3");
    let out = lab.restore(&env, &["--all", "--test", &url_s, &root, &t]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (recs, _) = all_records(&out);
    assert_eq!(recs.len(), 4, "{}", out.stdout);
    assert!(
        recs.iter().all(|r| r["status"] == "planned"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("would create"), "{}", out.stderr);
    assert!(
        !exists(lab, &format!("{t}/zab-a")),
        "--test created a parent"
    );
    let out = lab.restore(&env, &["--all", "--download-jobs", "2", &url_s, &root, &t]);
    check(&out, &t);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));

    // Again: every dataset up to date.
    let out = lab.restore(&env, &["--all", &url_s, &root, &t]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (recs, end) = all_records(&out);
    assert!(
        recs.iter().all(|r| r["status"] == "up-to-date"),
        "{}",
        out.stdout
    );
    assert_eq!(end["up_to_date"], 4, "{end}");

    // Nothing in the store below a dataset it does not have: exit 5.
    let out = lab.restore("", &["--all", &url_d, "zab-a/none", pool]);
    assert_eq!(out.code, 5, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("no dataset in"), "{}", out.stderr);

    lab.ssh(&drop_pool);
    lab.sh(&format!("zfs destroy -r {back}"));
}
