//! zab-send to an object store, and zab-store, on real OpenZFS: the
//! sources are in the lab, zab-send and zab-store run here, and the store
//! is a directory here (file://) or the local S3 server that
//! scripts/s3-server starts on 127.0.0.1 (s3://, `ZAB_TEST_S3_ENDPOINT`).
//! Each stored object is received back into the lab, so a backup is
//! checked by restoring it, not by its size.

use std::path::PathBuf;

use zab_core::record::{SendOutcome, SendStatus, TransferKind};
use zab_tests::{json, Lab, Ns, Out};

use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "store_dir_full_incremental_compress_and_raw",
        dir_full_incremental_compress_and_raw,
    ),
    (
        "store_s3_jobs_secrets_and_a_broken_chain",
        s3_jobs_secrets_and_a_broken_chain,
    ),
    (
        "store_killed_mid_stream_leaves_no_object",
        killed_mid_stream_leaves_no_object,
    ),
    (
        "store_missing_bucket_and_directory",
        missing_bucket_and_directory,
    ),
    ("store_parts_failing_are_retried", parts_failing_are_retried),
    ("store_wrapper_accepts_a_url", wrapper_accepts_a_url),
    (
        "store_clean_removes_unfinished_uploads",
        clean_removes_unfinished_uploads,
    ),
    (
        "store_wrong_credentials_are_refused",
        wrong_credentials_are_refused,
    ),
    (
        "store_unwritable_directory_is_refused",
        unwritable_directory_is_refused,
    ),
];

/// A secret no output may show.
pub(crate) const SECRET: &str = "zab-test-secret-7f3a9c";

/// The local S3 server, which must be running (scripts/s3-server start).
pub(crate) fn endpoint() -> String {
    std::env::var("ZAB_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("ZAB_TEST_S3_ENDPOINT is not set: run scripts/s3-server start, then eval \"$(scripts/s3-server env)\"")
    })
}

/// The environment of every command that reaches the S3 server.
pub(crate) fn s3_env() -> String {
    format!(
        "export AWS_ACCESS_KEY_ID=zabtest AWS_SECRET_ACCESS_KEY={SECRET} AWS_ENDPOINT_URL={}; ",
        endpoint()
    )
}

/// A fresh bucket on the local server (a new name each run: S3 deletes no
/// bucket that has objects).
pub(crate) fn bucket(lab: &Lab, name: &str) -> String {
    let ep = endpoint();
    let name = &format!("{name}-{}", chrono::Utc::now().timestamp_micros());
    let out = lab.local_sh(&format!(
        "curl -sf -X DELETE {ep}/{name} >/dev/null; curl -sf -X PUT {ep}/{name} >/dev/null || \
         curl -sf -X PUT {ep}/{name}"
    ));
    assert_eq!(out.code, 0, "creating bucket {name}: {}", out.stderr);
    name.clone()
}

/// A fresh directory here, private to the test.
pub(crate) fn dir(name: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp"));
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::canonicalize(&d).unwrap()
}

/// zab-select in the lab, then zab-send here to `url`.
pub(crate) fn send(lab: &Lab, env: &str, b: &str, url: &str, args: &[&str]) -> Out {
    let extra = zab_core::host::quote_argv(args);
    lab.local_sh(&format!(
        "{env}zab-select --ssh-source zfs-lab --ssh-config \"$CFG\" {b} | \
         zab-send --utc --ssh-source zfs-lab --ssh-config \"$CFG\" {b} {url} {extra}"
    ))
}

#[track_caller]
fn outcome(out: &Out, name: &str) -> SendOutcome {
    out.datasets()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no record for {name}:\n{}\n{}", out.stdout, out.stderr))
        .send
        .unwrap_or_else(|| panic!("no send in the record of {name}"))
}

/// Snapshots `dss` with one new name of backup `b`.
pub(crate) fn snap(lab: &Lab, b: &str, n: u32, dss: &[&str]) -> String {
    let name = format!("{b}-2026010100{n:04}");
    let argv: Vec<String> = dss.iter().map(|d| format!("{d}@{name}")).collect();
    lab.sh(&format!(
        "zfs snapshot {}",
        zab_core::host::quote_argv(&argv)
    ));
    name
}

/// Receives object `url` (through `decompress`, a shell stage in the lab)
/// into `target` in the lab.
fn restore(lab: &Lab, env: &str, url: &str, decompress: &str, target: &str) {
    let out = lab.local_sh(&format!(
        "{env}zab-store get {url} | ssh -F \"$CFG\" zfs-lab '{decompress} zfs recv -u {target}'"
    ));
    assert_eq!(out.code, 0, "restoring {url}: {}", out.stderr);
}

fn ls(lab: &Lab, env: &str, url: &str) -> Vec<serde_json::Value> {
    let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
    assert_eq!(out.code, 0, "zab-store ls: {}", out.stderr);
    out.stdout.lines().map(json).collect()
}

fn dir_full_incremental_compress_and_raw(lab: &Lab) {
    let ns = Ns::new("store_dir");
    let b = ns.backup();
    let (a, c) = (ns.ds("zab-a", "a"), ns.ds("zab-a", "a/child"));
    let key = format!("/root/{}.key", ns.name);
    let enc = ns.ds("zab-a", "enc");
    let back = ns.ds("zab-t", "");
    lab.fresh(
        &ns,
        &format!(
            "printf 'zab lab passphrase' > {key}; zfs create -p -o autobackup:{b}=true {a}; zfs create {c}; \
         zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} \
         -o autobackup:{b}=true {enc}; zfs create {back}"
        ),
    );
    lab.fill(&a, 300);
    lab.fill(&c, 100);
    lab.fill(&enc, 100);
    let s1 = snap(lab, b, 1, &[&a, &c, &enc]);
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());

    // Full: one object per dataset, named as zfs3backup names them.
    let out = send(lab, "", b, &url, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let o = outcome(&out, &a);
    assert_eq!(o.status, SendStatus::Sent);
    assert_eq!(o.target, a);
    let t = &o.transfers[0];
    assert_eq!((t.kind, t.done), (TransferKind::Full, true));
    let obj = t.object.clone().expect("the object in the record");
    assert_eq!(obj.key, format!("{url}/{a}@{s1}"));
    assert!(d.join(format!("{a}@{s1}")).is_file());
    assert_eq!(
        obj.stored_bytes,
        std::fs::metadata(d.join(format!("{a}@{s1}")))
            .unwrap()
            .len()
    );
    assert_eq!(obj.sha256.len(), 64);
    assert!(d.join(format!(".zab/{a}.json")).is_file());

    // Two more snapshots: one incremental object carries both.
    lab.fill(&a, 100);
    let s2 = snap(lab, b, 2, &[&a, &c, &enc]);
    lab.fill(&a, 100);
    let s3 = snap(lab, b, 3, &[&a, &c, &enc]);
    let out = send(lab, "", b, &url, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let o = outcome(&out, &a);
    assert_eq!(o.common.as_deref(), Some(s1.as_str()));
    let t = &o.transfers[0];
    assert_eq!(
        (t.kind, t.from.as_deref(), t.snapshot.as_str(), t.snapshots),
        (TransferKind::Incremental, Some(s1.as_str()), s3.as_str(), 2)
    );
    // Nothing new: up to date, from the manifests alone.
    let out = send(lab, "", b, &url, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcome(&out, &a).status, SendStatus::UpToDate);

    // Compressed.
    lab.fill(&a, 100);
    let s4 = snap(lab, b, 4, &[&a, &c, &enc]);
    let out = send(lab, "", b, &url, &["--compress", "zstd-fast"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Every chain is healthy.
    let chains = ls(lab, "", &url);
    let names: Vec<&str> = chains
        .iter()
        .filter_map(|c| c["dataset"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{chains:?}");
    for c in &chains {
        assert_eq!(c["status"], "healthy", "{c}");
    }

    // Restored from the objects alone: the same snapshots, guids and files.
    let r = ns.ds("zab-t", "a");
    restore(lab, "", &format!("{url}/{a}@{s1}"), "", &r);
    restore(lab, "", &format!("{url}/{a}@{s3}"), "", &r);
    restore(lab, "", &format!("{url}/{a}@{s4}"), "zstdmt -dc |", &r);
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);

    // The encrypted dataset was sent raw: restored, its key is not loaded.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join(format!(".zab/{enc}.json"))).unwrap())
            .unwrap();
    assert_eq!(m["objects"][0]["raw"], true, "{m}");
    let re = ns.ds("zab-t", "enc");
    restore(lab, "", &format!("{url}/{enc}@{s1}"), "", &re);
    assert_eq!(lab.prop(&re, "keystatus"), "unavailable");
    assert_eq!(lab.prop(&re, "encryption"), lab.prop(&enc, "encryption"));
    let _ = (s2, c);
    lab.sh(&format!("zfs destroy -r {back}; rm -f {key}"));
}

fn s3_jobs_secrets_and_a_broken_chain(lab: &Lab) {
    let ns = Ns::new("store_s3");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-store-s3");
    let root = ns.ds("zab-a", "");
    let dss: Vec<String> = (1..=5).map(|i| ns.ds("zab-a", &format!("d{i}"))).collect();
    lab.sh(&format!(
        "set -e; zfs destroy -r {root} 2>/dev/null || true; zfs create -p -o autobackup:{b}=true {root}; {}",
        dss.iter().map(|d| format!("zfs create {d};")).collect::<String>()
    ));
    // One dataset larger than a part: a multipart upload of several parts.
    lab.fill(&dss[0], 20 * 1024);
    for d in &dss[1..] {
        lab.fill(d, 100);
    }
    let mut all: Vec<&str> = dss.iter().map(String::as_str).collect();
    all.push(&root);
    let s1 = snap(lab, b, 1, &all);
    let url = format!("s3://{bkt}/backups");
    let out = send(lab, &env, b, &url, &["--jobs", "4", "--debug", "--verbose"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for d in &dss {
        assert_eq!(outcome(&out, d).status, SendStatus::Sent, "{d}");
    }
    lab.fill(&dss[1], 100);
    let s2 = snap(lab, b, 2, &all);
    lab.fill(&dss[1], 100);
    let s3 = snap(lab, b, 3, &all);
    // One object per snapshot here (a gap skipped by the planner would also
    // make a -i stream): send s2, then s3.
    let out = send(lab, &env, b, &url, &["--exclude-snapshot-pattern", &s3]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out2 = send(lab, &env, b, &url, &["--debug"]);
    assert_eq!(out2.code, 0, "{}", out2.stderr);
    let chains = ls(lab, &env, &url);
    assert_eq!(chains.len(), 6, "{chains:?}");
    assert!(
        chains.iter().all(|c| c["status"] == "healthy"),
        "{chains:?}"
    );

    // Restore the big one from S3.
    let r = ns.ds("zab-t", "big");
    lab.sh(&format!(
        "zfs destroy -r {r} 2>/dev/null || true; zfs create -p {}",
        ns.ds("zab-t", "")
    ));
    restore(lab, &env, &format!("{url}/{}@{s1}", dss[0]), "", &r);
    lab.same_files(&dss[0], &r);

    // No output shows the secret.
    for o in [&out, &out2] {
        assert!(!o.stdout.contains(SECRET) && !o.stderr.contains(SECRET));
    }

    // Deleting a middle object by hand breaks the chain, and says why.
    let middle = format!("backups/{}@{s2}", dss[1]);
    let del = lab.local_sh(&format!("curl -sf -X DELETE {}/{bkt}/{middle}", endpoint()));
    assert_eq!(del.code, 0, "{}", del.stderr);
    let chains = ls(lab, &env, &url);
    let c = chains
        .iter()
        .find(|c| c["dataset"] == dss[1].as_str())
        .unwrap();
    assert_eq!(c["status"], "broken", "{c}");
    let why = c["why"].as_str().unwrap();
    assert!(why.contains("missing") && why.contains(&s2), "{why}");
    let others = chains.iter().filter(|c| c["status"] == "healthy").count();
    assert_eq!(others, 5);
    lab.sh(&format!(
        "zfs destroy -r {root}; zfs destroy -r {}",
        ns.ds("zab-t", "")
    ));
}

fn killed_mid_stream_leaves_no_object(lab: &Lab) {
    let ns = Ns::new("store_kill");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    lab.sh(&format!(
        "set -e; zfs destroy -r {r} 2>/dev/null || true; zfs create -p -o autobackup:{b}=true {a}",
        r = ns.ds("zab-a", "")
    ));
    lab.fill(&a, 24 * 1024);
    let s1 = snap(lab, b, 1, &[&a]);
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());
    let env = s3_env();
    let bkt = bucket(lab, "zab-store-kill");
    let s3url = format!("s3://{bkt}");

    // SIGTERM mid-stream (2 MiB/s for 24 MiB), once its progress shows the
    // upload flowing (however slow the machine is today): the upload is
    // aborted. The stderr file is removed first: the previous round's
    // lines, read before the background job's redirection truncated it,
    // once sent the signal before the upload had started.
    let err = dir(&format!("{}-err", ns.name)).join("stderr");
    for u in [&url, &s3url] {
        let out = lab.local_sh(&format!(
            "rm -f {e}; {env}zab-select --ssh-source zfs-lab --ssh-config \"$CFG\" {b} | \
             zab-send --progress --ssh-source zfs-lab --ssh-config \"$CFG\" --rate 2M {b} {u} \
               >/dev/null 2>{e} & pid=$!; i=0; \
             until grep -q '@{s1}: ' {e} || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done; \
             sleep 3; kill -TERM $pid; wait $pid; s=$?; cat {e} >&2; exit $s",
            e = err.display()
        ));
        assert_eq!(out.code, 130, "{u}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(&format!("@{s1}: ")),
            "{u}: {}",
            out.stderr
        );
    }
    assert!(!d.join(format!("{a}@{s1}")).exists());
    let chains = ls(lab, "", &url);
    assert!(chains.is_empty(), "{chains:?}");
    let listed = lab.local_sh(&format!("curl -sf '{}/{bkt}?list-type=2'", endpoint()));
    assert!(
        !listed.stdout.contains("@"),
        "an object in S3: {}",
        listed.stdout
    );

    // SIGKILL: no object either; the staging file is listed as incomplete.
    // (Once ls shows the staging file: a second after the progress showed,
    // a loaded lab had not written it yet.)
    let out = lab.local_sh(&format!(
        "zab-select --ssh-source zfs-lab --ssh-config \"$CFG\" {b} | \
         zab-send --progress --ssh-source zfs-lab --ssh-config \"$CFG\" --rate 2M {b} {url} \
           >/dev/null 2>{e} & pid=$!; i=0; \
         until zab-store ls {url} | grep -q '\"incomplete\"' || [ $i -ge 600 ]; do \
           sleep 0.1; i=$((i + 1)); done; \
         sleep 1; kill -KILL $pid; wait $pid; s=$?; cat {e} >&2; exit $s",
        e = err.display()
    ));
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert!(!d.join(format!("{a}@{s1}")).exists());
    let listed = ls(lab, "", &url);
    assert!(
        listed.iter().any(|r| r["kind"] == "incomplete"),
        "{listed:?}"
    );

    // The next run completes it.
    for u in [&url, &s3url] {
        let out = send(lab, &env, b, u, &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(outcome(&out, &a).status, SendStatus::Sent);
    }
    assert!(d.join(format!("{a}@{s1}")).is_file());
    let chains = ls(lab, &env, &s3url);
    assert_eq!(chains[0]["status"], "healthy");
    lab.sh(&format!("zfs destroy -r {}", ns.ds("zab-a", "")));
}

fn missing_bucket_and_directory(lab: &Lab) {
    let ns = Ns::new("store_missing");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    lab.sh(&format!(
        "set -e; zfs destroy -r {r} 2>/dev/null || true; zfs create -p -o autobackup:{b}=true {a}",
        r = ns.ds("zab-a", "")
    ));
    snap(lab, b, 1, &[&a]);
    let env = s3_env();
    for url in ["s3://zab-no-such-bucket/x", "file:///nonexistent/zab-store"] {
        let out = send(lab, &env, b, url, &[]);
        assert_eq!(out.code, 4, "{url}: {}\n{}", out.stdout, out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{url}: {}", out.stderr);
        assert!(lines[0].starts_with("zab-send: "), "{}", lines[0]);
        assert!(!out.stderr.contains(SECRET));
    }
    assert!(!std::path::Path::new("/nonexistent").exists());
    // --test to a store plans, and writes nothing there.
    let d = dir(&ns.name);
    let out = send(lab, "", b, &format!("file://{}", d.display()), &["--test"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcome(&out, &a).status, SendStatus::Planned);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    lab.sh(&format!("zfs destroy -r {}", ns.ds("zab-a", "")));
}

/// A proxy to the S3 server that answers 500 to the first `fail` part
/// uploads (`PUT …?partNumber=…`), and forwards every other request.
/// Returns its endpoint and the count of parts it failed.
fn faulty_proxy(
    upstream: &str,
    fail: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let up = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    let count = failed.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (up, count) = (up.clone(), count.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut client = client;
                loop {
                    // One request: its head, then Content-Length bytes.
                    let mut head = Vec::new();
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("connection:") {
                            continue;
                        }
                        if line == "\r\n" {
                            head.extend_from_slice(b"Connection: close\r\n\r\n");
                            break;
                        }
                        head.extend_from_slice(line.as_bytes());
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let first = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    if first.starts_with("PUT ")
                        && first.contains("partNumber=")
                        && count.fetch_add(1, Ordering::SeqCst) < fail
                    {
                        let _ = client.write_all(
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&up) else {
                        return;
                    };
                    let _ = server.write_all(&head);
                    let _ = server.write_all(&body);
                    let mut answer = Vec::new();
                    let _ = server.read_to_end(&mut answer);
                    if client.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), failed)
}

fn parts_failing_are_retried(lab: &Lab) {
    let bkt = bucket(lab, "zab-store-faults");
    let (proxy, count) = faulty_proxy(&endpoint(), 3);
    let d = dir("store-faults");
    let file = d.join("stream");
    // 40 MB: five parts of 8 MiB, the first three of which fail once.
    let data: Vec<u8> = (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let env = format!(
        "export AWS_ACCESS_KEY_ID=zabtest AWS_SECRET_ACCESS_KEY={SECRET} AWS_ENDPOINT_URL={proxy}; "
    );
    let url = format!("s3://{bkt}/x/stream@s1");
    let out = lab.local_sh(&format!("{env}zab-store put {url} < {}", file.display()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rec = json(out.stdout.trim());
    assert_eq!(rec["bytes"], 40_000_000);
    assert!(rec["parts"].as_u64().unwrap() >= 5, "{rec}");
    assert!(
        count.load(std::sync::atomic::Ordering::SeqCst) >= 6,
        "parts were failed and retried"
    );
    let back = d.join("back");
    let out = lab.local_sh(&format!("{env}zab-store get {url} > {}", back.display()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the object is the stream"
    );
    assert!(!out.stderr.contains(SECRET));
}

fn wrapper_accepts_a_url(lab: &Lab) {
    let ns = Ns::new("store_wrap");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    lab.sh(&format!(
        "set -e; zfs destroy -r {r} 2>/dev/null || true; zfs create -p -o autobackup:{b}=true {a}",
        r = ns.ds("zab-a", "")
    ));
    lab.fill(&a, 100);
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());
    let wrapper = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/zfs-autobackup");
    let out = lab.local_sh(&format!(
        "ZAB_BIN_DIR=\"{}\" {} --ssh-source zfs-lab --ssh-config \"$CFG\" --verbose {b} {url}",
        lab.bin_dir.display(),
        wrapper.display()
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let snaps = lab.snapshot_names(&a);
    assert_eq!(snaps.len(), 1, "the wrapper made one snapshot");
    assert!(
        d.join(format!("{a}@{}", snaps[0])).is_file(),
        "{}",
        out.stderr
    );
    let chains = ls(lab, "", &url);
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert_eq!(chains[0]["status"], "healthy");
    lab.sh(&format!("zfs destroy -r {}", ns.ds("zab-a", "")));
}

/// An upload killed outright (SIGKILL) leaves an S3 multipart upload, or a
/// directory's staging file: `zab-store ls` lists it, `clean --test` only
/// lists it, `clean` (old enough) removes it, and complete objects stay.
fn clean_removes_unfinished_uploads(lab: &Lab) {
    let env = s3_env();
    let bkt = bucket(lab, "zab-store-clean");
    let d = dir("store-clean");
    let err = dir("store-clean-err").join("stderr");
    std::fs::create_dir(d.join("tank")).unwrap();
    for store in [format!("s3://{bkt}/pre"), format!("file://{}", d.display())] {
        let is_s3 = store.starts_with("s3://");
        // A complete object, which clean never touches.
        let out = lab.local_sh(&format!("{env}echo whole | zab-store put {store}/done@s1"));
        assert_eq!(out.code, 0, "{store}: {}", out.stderr);
        // 24 MB at 2 MiB/s, killed once ls shows the upload under way.
        let out = lab.local_sh(&format!(
            "{env}head -c 24000000 /dev/urandom | zab-ratelimit -L 2M 2>/dev/null | \
             zab-store put {store}/tank/fs@s2 >/dev/null 2>{e} & pid=$!; i=0; \
             until zab-store ls {store} | grep -q '\"incomplete\"' || [ $i -ge 300 ]; do \
               sleep 0.1; i=$((i + 1)); done; \
             sleep 1; kill -KILL $pid; wait $pid; s=$?; cat {e} >&2; exit $s",
            e = err.display()
        ));
        assert_eq!(out.code, 137, "{store}: {}\n{}", out.stdout, out.stderr);
        let listed = ls(lab, &env, &store);
        let unfinished: Vec<&serde_json::Value> = listed
            .iter()
            .filter(|r| r["kind"] == "incomplete")
            .collect();
        assert_eq!(unfinished.len(), 1, "{store}: {listed:?}");
        let u = unfinished[0];
        assert_eq!(u["key"], "tank/fs@s2", "{u}");
        assert!(!u["upload"].as_str().unwrap_or("").is_empty(), "{u}");
        if !is_s3 {
            assert_eq!(u["upload"], "tank/fs@s2#1", "{u}");
            assert!(u["bytes"].is_u64(), "{u}");
            assert!(d.join("tank/fs@s2#1").is_file());
            // Written to a second ago: younger than the default age (1d).
            let out = lab.local_sh(&format!("zab-store clean {store}"));
            assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
            assert!(d.join("tank/fs@s2#1").is_file());
        }
        // --test lists it and removes nothing.
        let out = lab.local_sh(&format!(
            "{env}zab-store clean --test --older-than 0s {store}"
        ));
        assert_eq!(out.code, 0, "{store}: {}", out.stderr);
        let recs: Vec<serde_json::Value> = out.stdout.lines().map(json).collect();
        assert_eq!(recs.len(), 1, "{store}: {}", out.stdout);
        assert_eq!(
            (&recs[0]["kind"], &recs[0]["key"], &recs[0]["done"]),
            (&"cleaned".into(), &"tank/fs@s2".into(), &false.into())
        );
        assert_eq!(recs[0]["upload"], u["upload"]);
        let again = ls(lab, &env, &store);
        assert!(again.iter().any(|r| r["kind"] == "incomplete"), "{again:?}");
        // Cleaned: aborted on S3, the staging file deleted.
        let out = lab.local_sh(&format!("{env}zab-store clean --older-than 0s {store}"));
        assert_eq!(out.code, 0, "{store}: {}", out.stderr);
        let recs: Vec<serde_json::Value> = out.stdout.lines().map(json).collect();
        assert_eq!(recs.len(), 1, "{store}: {}", out.stdout);
        assert_eq!(recs[0]["done"], true, "{}", recs[0]);
        let after = ls(lab, &env, &store);
        assert!(
            after.iter().all(|r| r["kind"] != "incomplete"),
            "{store}: {after:?}"
        );
        if is_s3 {
            // The server agrees: no multipart upload is left in the bucket.
            let raw = lab.local_sh(&format!("curl -sf '{}/{bkt}?uploads'", endpoint()));
            assert_eq!(raw.code, 0, "{}", raw.stderr);
            assert!(
                raw.stdout.contains("<ListMultipartUploadsResult"),
                "{}",
                raw.stdout
            );
            assert!(!raw.stdout.contains("<Upload>"), "{}", raw.stdout);
        } else {
            assert!(!d.join("tank/fs@s2#1").exists());
        }
        // The complete object is still there, whole.
        let out = lab.local_sh(&format!("{env}zab-store get {store}/done@s1"));
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "whole\n"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains(SECRET));
    }
}

/// The second local S3 server, which checks keys and signatures
/// (scripts/s3-server start, `ZAB_TEST_S3_AUTH_ENDPOINT`).
fn auth_endpoint() -> String {
    std::env::var("ZAB_TEST_S3_AUTH_ENDPOINT").unwrap_or_else(|_| {
        panic!("ZAB_TEST_S3_AUTH_ENDPOINT is not set: run scripts/s3-server start, then eval \"$(scripts/s3-server env)\"")
    })
}

/// Turns the checking server's checks on or off (moto's reset-auth: the
/// number of requests let through unchecked from now on).
fn checks(lab: &Lab, ep: &str, on: bool) {
    let n = if on { "0" } else { "inf" };
    let out = lab.local_sh(&format!(
        "curl -sf -H 'Content-Type: text/plain' --data-binary {n} {ep}/moto-api/reset-auth"
    ));
    assert_eq!(out.code, 0, "moto reset-auth {n}: {}", out.stderr);
}

/// One IAM call to the checking server (checks off): its answer.
fn iam(lab: &Lab, ep: &str, params: &[(&str, &str)]) -> String {
    // moto routes a request by the service in its credential scope.
    let mut cmd = String::from(
        "curl -sf -H 'Authorization: AWS4-HMAC-SHA256 Credential=AKIAX/20260101/us-east-1/iam/aws4_request, \
         SignedHeaders=host, Signature=0' -d Version=2010-05-08"
    );
    for (k, v) in params {
        cmd.push_str(&format!(
            " --data-urlencode {}",
            zab_core::host::quote_argv(&[format!("{k}={v}")])
        ));
    }
    cmd.push_str(&format!(" {ep}/"));
    let out = lab.local_sh(&cmd);
    assert_eq!(out.code, 0, "IAM {params:?}: {}", out.stderr);
    out.stdout
}

fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml.find(&open).map(|i| i + open.len());
    let start = start.unwrap_or_else(|| panic!("no {name} in {xml}"));
    let len = xml[start..].find('<').unwrap_or(0);
    xml[start..start + len].to_string()
}

/// A server that checks signatures: an unknown key and a known key with a
/// wrong secret are refused with one line and exit 4 (by zab-send,
/// zab-store ls and check, zab-thin on the URL and zab-restore --all, with
/// --debug where a tool has it), nothing is written and the secret is
/// never shown; the right keys then work (zab-send, and
/// zab-store ls and clean, whose ListMultipartUploads is signed apart).
fn wrong_credentials_are_refused(lab: &Lab) {
    let ep = auth_endpoint();
    let ns = Ns::new("store_creds");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    lab.sh(&format!(
        "set -e; zfs destroy -r {r} 2>/dev/null || true; zfs create -p -o autobackup:{b}=true {a}",
        r = ns.ds("zab-a", "")
    ));
    lab.fill(&a, 100);
    let s1 = snap(lab, b, 1, &[&a]);

    // Checks off: a bucket, and a user whose keys may use S3.
    checks(lab, &ep, false);
    let bkt = format!("zab-creds-{}", chrono::Utc::now().timestamp_micros());
    let out = lab.local_sh(&format!("curl -sf -X PUT {ep}/{bkt}"));
    assert_eq!(out.code, 0, "creating bucket {bkt}: {}", out.stderr);
    let user = bkt.clone();
    iam(lab, &ep, &[("Action", "CreateUser"), ("UserName", &user)]);
    let keys = iam(
        lab,
        &ep,
        &[("Action", "CreateAccessKey"), ("UserName", &user)],
    );
    let (key_id, secret) = (
        xml_field(&keys, "AccessKeyId"),
        xml_field(&keys, "SecretAccessKey"),
    );
    iam(
        lab,
        &ep,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", &user),
            ("PolicyName", "s3"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            ),
        ],
    );
    checks(lab, &ep, true);

    let url = format!("s3://{bkt}/backups");
    let with = |id: &str, secret: &str| {
        format!(
            "export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_ENDPOINT_URL={ep}; "
        )
    };
    for (id, wrong, code) in [
        ("AKIAZABUNKNOWN000000", SECRET, "InvalidAccessKeyId"),
        (key_id.as_str(), SECRET, "SignatureDoesNotMatch"),
    ] {
        let env = with(id, wrong);
        let out = send(lab, &env, b, &url, &[]);
        assert_eq!(out.code, 4, "{code}: {}\n{}", out.stdout, out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{code}: {}", out.stderr);
        assert!(
            lines[0].starts_with("zab-send: ") && lines[0].contains(code),
            "{}",
            lines[0]
        );
        assert!(!out.stdout.contains(wrong) && !out.stderr.contains(wrong));
        let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
        assert_eq!(out.code, 4, "{code}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with("zab-store: ") && out.stderr.contains(code));
        assert!(!out.stderr.contains(wrong));
        // The other tools that read a store: zab-store check, zab-thin on
        // the URL and zab-restore --all, the last two with --debug.
        let check = lab.local_sh(&format!("{env}zab-store check {url}"));
        let thin = lab.local_sh(&format!(
            "{env}zab-select --ssh-source zfs-lab --ssh-config \"$CFG\" {b} | \
             zab-thin --debug --utc --ssh-source zfs-lab --ssh-config \"$CFG\" {b} {url}"
        ));
        let restore = lab.restore(&env, &["--all", "--debug", &url, &ns.ds("zab-t", "")]);
        for (tool, out) in [
            ("zab-store", check),
            ("zab-thin", thin),
            ("zab-restore", restore),
        ] {
            assert_eq!(out.code, 4, "{tool} {code}: {}\n{}", out.stdout, out.stderr);
            // --debug's and --verbose's lines (zab-thin names its
            // schedules first), then the error: one line.
            let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains(code)).collect();
            assert_eq!(errors.len(), 1, "{tool} {code}: {}", out.stderr);
            assert_eq!(out.stderr.lines().last(), Some(errors[0]), "{}", out.stderr);
            assert!(errors[0].starts_with(&format!("{tool}: ")), "{}", errors[0]);
            assert!(
                !out.stdout.contains(wrong) && !out.stderr.contains(wrong),
                "{tool} showed the secret: {}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }

    // Nothing was written: no object, no multipart upload.
    checks(lab, &ep, false);
    let objects = lab.local_sh(&format!("curl -sf '{ep}/{bkt}?list-type=2'"));
    let uploads = lab.local_sh(&format!("curl -sf '{ep}/{bkt}?uploads'"));
    checks(lab, &ep, true);
    assert!(
        objects.stdout.contains("<KeyCount>0</KeyCount>"),
        "{}",
        objects.stdout
    );
    assert!(
        uploads.stdout.contains("<ListMultipartUploadsResult")
            && !uploads.stdout.contains("<Upload>"),
        "{}",
        uploads.stdout
    );

    // The right keys: the server checked them and let them through.
    let env = with(&key_id, &secret);
    let out = send(lab, &env, b, &url, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(outcome(&out, &a).status, SendStatus::Sent);
    let chains = ls(lab, &env, &url);
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert_eq!(chains[0]["status"], "healthy");
    let out = lab.local_sh(&format!(
        "{env}zab-store clean --test --older-than 0s {url}"
    ));
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    assert!(!out.stderr.contains(&secret));
    assert_eq!(chains[0]["objects"][0]["snapshot"], s1.as_str());
    lab.sh(&format!("zfs destroy -r {}", ns.ds("zab-a", "")));
}

/// A directory that cannot be written: root writes into a 0555 directory,
/// so the store is the mountpoint of a dataset with readonly=on, and the
/// tools run in the lab (as root). One line, exit 4, nothing written.
fn unwritable_directory_is_refused(lab: &Lab) {
    let ns = Ns::new("store_ro");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    let ro = ns.ds("zab-t", "ro");
    lab.sh(&format!(
        "set -e; zfs destroy -r {r} 2>/dev/null || true; zfs destroy -r {t} 2>/dev/null || true; \
         zfs create -p -o autobackup:{b}=true {a}; zfs create -p -o readonly=on {ro}",
        r = ns.ds("zab-a", ""),
        t = ns.ds("zab-t", "")
    ));
    lab.fill(&a, 100);
    snap(lab, b, 1, &[&a]);
    let mp = lab.prop(&ro, "mountpoint");
    assert_eq!(lab.prop(&ro, "readonly"), "on");
    let url = format!("file://{mp}");
    let out = lab.ssh(&format!(
        "zab-select {b} | zab-send {b} {}",
        zab_core::host::quote_argv(&[&url])
    ));
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("zab-send: ") && lines[0].contains("Read-only file system"),
        "{}",
        lines[0]
    );
    // zab-store put, the same.
    let out = lab.ssh(&format!(
        "echo data | zab-store put {}",
        zab_core::host::quote_argv(&[&format!("{url}/obj")])
    ));
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("zab-store: "), "{}", out.stderr);
    // Nothing written: the filesystem is as created.
    let files = lab.sh(&format!(
        "find {} -mindepth 1 | wc -l",
        zab_core::host::quote_argv(&[&mp])
    ));
    assert_eq!(files.trim(), "0", "files in {mp}");
    lab.sh(&format!(
        "zfs destroy -r {}; zfs destroy -r {}",
        ns.ds("zab-a", ""),
        ns.ds("zab-t", "")
    ));
}
