//! A bucket laid out exactly as zfs3backup writes it, and `zab-store
//! check`, on real OpenZFS. The zfs3backup objects are made as its backup
//! makes them: `zfs send` (`-i` from the previous snapshot) in the lab,
//! through `pigz -1` or `-4 --blocksize 4096` for some, uploaded here by a
//! boto3 multipart upload (as its `pput`) with its metadata (`size`, the
//! `zfs send -nvP` estimate; `isfull=true` or `parent=fs@snap`;
//! `compressor`) to the local S3 server. Then zab-store lists and checks
//! it, zab-restore restores it, zab-send goes on from it, zab-restore
//! restores the mixed chain, zab-thin thins the store without taking
//! zab's first object for a broken chain, and zab-send's `--full-every`
//! counts and dates the mixed chain from zfs3backup's full stream; each restore is compared with
//! its source (snapshots and guids, and every file).

use zab_tests::{json, objects, Lab, Ns, Out};

use crate::store::{bucket, dir, s3_env, send, snap, SECRET};
use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "z3b_bucket_listed_restored_continued_and_restored_mixed",
        bucket_listed_restored_continued_and_restored_mixed,
    ),
    (
        "z3b_check_finds_corrupt_objects_and_broken_chains",
        check_finds_corrupt_objects_and_broken_chains,
    ),
    (
        "z3b_send_reads_the_stream_guid_before_going_on",
        send_reads_the_stream_guid_before_going_on,
    ),
];

/// zfs3backup's pput, as far as the bucket can tell: one multipart upload
/// of stdin (5 MiB parts, each with its Content-MD5), with its user
/// metadata, storage class and ACL.
const PPUT: &str = r#"
import hashlib, base64, os, sys, boto3
bucket, key, meta = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
up = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta,
    StorageClass="STANDARD_IA", ACL="bucket-owner-full-control")["UploadId"]
parts, n = [], 0
while True:
    chunk = sys.stdin.buffer.read(5 << 20)
    if not chunk:
        break
    n += 1
    md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=chunk, ContentMD5=md5)
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
if n == 0:
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up)
    sys.exit("Can't upload zero bytes!")
s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
"#;

/// Where zfs3backup puts its objects: the bucket, its prefix, and the
/// pput script.
struct Z3<'a> {
    lab: &'a Lab,
    env: &'a str,
    script: &'a str,
    bkt: &'a str,
    prefix: &'a str,
}

impl Z3<'_> {
    /// Backs up `ds@snapshot` as zfs3backup's backup does: `zfs send [-i
    /// parent]` in the lab (its estimate from `zfs send -nvP` first),
    /// through `compressor` (`pigz1`, `pigz4` or none), put at
    /// `prefix/ds@snapshot`.
    fn put(&self, ds: &str, snapshot: &str, parent: Option<&str>, compressor: Option<&str>) {
        self.put_as(ds, ds, snapshot, parent, compressor);
    }

    /// [`Z3::put`], the stream of `ds` put under the name of `key_ds`.
    fn put_as(
        &self,
        key_ds: &str,
        ds: &str,
        snapshot: &str,
        parent: Option<&str>,
        compressor: Option<&str>,
    ) {
        let inc = parent.map_or(String::new(), |p| format!("-i {ds}@{p} "));
        let est = self.lab.sh(&format!(
            "zfs send -nvP {inc}{ds}@{snapshot} | awk 'NF {{ l = $0 }} END {{ split(l, f); print f[2] }}'"
        ));
        let est = est.trim();
        assert!(est.parse::<u64>().is_ok(), "estimate {est:?}");
        let mut meta = vec![format!("size={est}")];
        match parent {
            None => meta.push("isfull=true".into()),
            Some(p) => meta.push(format!("parent={key_ds}@{p}")),
        }
        let pipe = match compressor {
            Some("pigz1") => " | pigz -1 --blocksize 4096",
            Some("pigz4") => " | pigz -4 --blocksize 4096",
            _ => "",
        };
        if let Some(c) = compressor {
            meta.push(format!("compressor={c}"));
        }
        let out = self.lab.local_sh(&format!(
            "{env}ssh -F \"$CFG\" zfs-lab 'zfs send {inc}{ds}@{snapshot}{pipe}' | \
             \"${{XDG_CACHE_HOME:-$HOME/.cache}}/zab/s3-server/venv/bin/python\" {script} {bkt} {prefix}/{key_ds}@{snapshot} {meta}",
            env = self.env,
            script = self.script,
            bkt = self.bkt,
            prefix = self.prefix,
            meta = meta.join(" ")
        ));
        assert_eq!(
            out.code, 0,
            "zfs3backup's put of {ds}@{snapshot}: {}",
            out.stderr
        );
    }
}

/// 2026-01-01T00:00:00Z, the day of [`snap`]'s names.
const JAN_1_2026: i64 = 1_767_225_600;

fn records(out: &Out) -> Vec<serde_json::Value> {
    out.stdout.lines().map(json).collect()
}

/// zab-restore here, receiving in the lab; its `restore` record.
#[track_caller]
fn restore(lab: &Lab, env: &str, url: &str, ds: &str, target: &str) -> serde_json::Value {
    let out = lab.restore(env, &[url, ds, target]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    records(&out)[0].clone()
}

fn bucket_listed_restored_continued_and_restored_mixed(lab: &Lab) {
    let ns = Ns::new("z3b_bucket");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-z3b");
    let a = ns.ds("zab-a", "a");
    let back = ns.ds("zab-t", "");
    lab.fresh_sources(&ns, &[&a]);
    let d = dir(&ns.name);
    let script = d.join("pput.py");
    std::fs::write(&script, PPUT).unwrap();
    let script = script.display().to_string();

    // zfs3backup's chain: a full (pigz1, several parts), then one
    // incremental per snapshot pair (pigz4, then plain).
    lab.fill(&a, 12 * 1024);
    let s1 = snap(lab, b, 1, &[&a]);
    lab.fill(&a, 700);
    let s2 = snap(lab, b, 2, &[&a]);
    lab.fill(&a, 700);
    let s3 = snap(lab, b, 3, &[&a]);
    let z3 = Z3 {
        lab,
        env: &env,
        script: &script,
        bkt: &bkt,
        prefix: "z3b",
    };
    z3.put(&a, &s1, None, Some("pigz1"));
    z3.put(&a, &s2, Some(&s1), Some("pigz4"));
    z3.put(&a, &s3, Some(&s2), None);
    let url = format!("s3://{bkt}/z3b");

    // Listed: one healthy chain, read from the metadata (no manifest).
    let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{}", out.stdout);
    let c = &recs[0];
    assert_eq!(
        (c["kind"].as_str(), c["dataset"].as_str()),
        (Some("chain"), Some(a.as_str()))
    );
    assert_eq!(c["status"], "healthy", "{c}");
    let kinds: Vec<&str> = c["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["full", "incremental", "incremental"]);
    assert_eq!(objects(c, "snapshot"), [&s1, &s2, &s3].map(|s| s.as_str()));
    assert_eq!(c["objects"][2]["parent"], s2.as_str());
    assert!(c["objects"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["no_manifest"] == true));

    // Checked: each object read whole; the plain incremental's stream
    // gives @s3's guid.
    let out = lab.local_sh(&format!("{env}zab-store check {url}"));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let recs = records(&out);
    assert_eq!(recs[0]["status"], "healthy", "{}", out.stdout);
    assert_eq!(recs[0]["read"], 3, "{}", out.stdout);
    assert_eq!(recs[1]["kind"], "end", "{}", out.stdout);

    // Restored: every snapshot, same guids, same files.
    let r = ns.ds("zab-t", "a");
    let rec = restore(lab, &env, &url, &a, &r);
    assert_eq!(rec["status"], "restored", "{rec}");
    assert_eq!(
        objects(&rec, "snapshot"),
        [&s1, &s2, &s3].map(|s| s.as_str())
    );
    assert_eq!(rec["objects"][0]["compressor"], "pigz1", "{rec}");
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    lab.same_files(&a, &r);

    // zab-send goes on from zfs3backup's chain with an incremental.
    lab.fill(&a, 600);
    let s4 = snap(lab, b, 4, &[&a]);
    let out = send(lab, &env, b, &url, &["--verbose"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("zfs3backup"), "{}", out.stderr);
    let o = out
        .datasets()
        .into_iter()
        .find(|d| d.name == a)
        .and_then(|d| d.send)
        .expect("a send record");
    assert_eq!(o.common.as_deref(), Some(s3.as_str()), "{}", out.stdout);
    let t = &o.transfers[0];
    assert_eq!(
        (t.kind, t.from.as_deref(), t.snapshot.as_str()),
        (
            zab_core::record::TransferKind::Incremental,
            Some(s3.as_str()),
            s4.as_str()
        )
    );
    // One chain, zfs3backup's objects and then zab's.
    let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
    let c = &records(&out)[0];
    assert_eq!(c["status"], "healthy", "{c}");
    assert_eq!(
        objects(c, "snapshot"),
        [&s1, &s2, &s3, &s4].map(|s| s.as_str())
    );
    assert!(c["objects"][3].get("no_manifest").is_none(), "{c}");
    // The mixed chain checks end to end: zab's object of @s4 names its
    // parent's guid, which zfs3backup's plain stream of @s3 holds.
    let out = lab.local_sh(&format!("{env}zab-store check {url} {a}"));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(records(&out)[0]["read"], 4, "{}", out.stdout);

    // The restore of zfs3backup's chain goes on with zab's object...
    let rec = restore(lab, &env, &url, &a, &r);
    assert_eq!(rec["from"], s3.as_str(), "{rec}");
    assert_eq!(objects(&rec, "snapshot"), [&s4].map(|s| s.as_str()));
    assert_eq!(lab.snaps(&r), lab.snaps(&a));
    // ... and the mixed chain restores whole into a new dataset.
    let r2 = ns.ds("zab-t", "a2");
    let rec = restore(lab, &env, &url, &a, &r2);
    assert_eq!(
        objects(&rec, "snapshot"),
        [&s1, &s2, &s3, &s4].map(|s| s.as_str())
    );
    assert_eq!(lab.snaps(&r2), lab.snaps(&a));
    lab.same_files(&a, &r2);

    // zab-thin on the store: zab's incremental goes on from zfs3backup's
    // object of @s3, which no manifest lists. That is no broken chain;
    // --keep-target 1 keeps zab's object (the newest), and zfs3backup's
    // objects, in no manifest, are left alone.
    let out = crate::retain::thin(lab, &env, b, &url, &["--verbose", "--keep-target", "1"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("chain broken"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{url}/{a}@{s3}, which no manifest lists")),
        "{}",
        out.stderr
    );
    let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
    let c = &records(&out)[0];
    assert_eq!(c["status"], "healthy", "{c}");
    assert_eq!(
        objects(c, "snapshot"),
        [&s1, &s2, &s3, &s4].map(|s| s.as_str())
    );

    // --full-every after going on: the chain is zfs3backup's full of @s1,
    // its incrementals, then zab's, walked through zfs3backup's objects
    // (no manifest lists them). A day after @s1 (its name's time), a week
    // is not up: an incremental, not a full stream of the whole dataset.
    lab.fill(&a, 300);
    let s5 = snap(lab, b, 5, &[&a]);
    let a_day_on = (JAN_1_2026 + 86400).to_string();
    let every = |when: &str, more: &[&str]| {
        let mut args = vec!["--verbose", "--full-every", when, "--now", &a_day_on];
        args.extend(more);
        let out = send(lab, &env, b, &url, &args);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        out
    };
    let out = every("1w", &[]);
    assert!(!out.stderr.contains("new chain"), "{}", out.stderr);
    let o = out
        .datasets()
        .into_iter()
        .find(|d| d.name == a)
        .and_then(|d| d.send)
        .expect("a send record");
    let t = &o.transfers[0];
    assert_eq!(
        (t.kind, t.from.as_deref(), t.snapshot.as_str()),
        (
            zab_core::record::TransferKind::Incremental,
            Some(s4.as_str()),
            s5.as_str()
        )
    );
    // Its incrementals are counted from zfs3backup's full: 4 (@s2 to @s5),
    // so --full-every 4 would start a new chain (a dry run).
    lab.fill(&a, 100);
    snap(lab, b, 6, &[&a]);
    let out = every("4", &["--test"]);
    let said = format!(
        "[Target] {a}: starting a new chain (--full-every 4: the chain from @{s1} \
         (zfs3backup's) has 4 incrementals)"
    );
    assert!(out.stderr.contains(&said), "{}", out.stderr);

    lab.sh(&format!(
        "zfs destroy -r {back}; zfs destroy -r {}",
        ns.ds("zab-a", "")
    ));
}

/// zab-send goes on from zfs3backup's chain only when the stored stream of
/// the snapshot it goes on from is the source's snapshot of that name (its
/// guid, read from the object's first bytes, gunzipped): a chain of
/// another dataset made again under the same name is no snapshot in
/// common. And it never writes over an object of zfs3backup's.
fn send_reads_the_stream_guid_before_going_on(lab: &Lab) {
    let ns = Ns::new("z3b_guid");
    let b = ns.backup();
    let env = s3_env();
    let bkt = bucket(lab, "zab-z3g");
    let a = ns.ds("zab-a", "a");
    // Not selected: the stand-in for the dataset zfs3backup backed up
    // under a's name before a was made again.
    let x = ns.ds("zab-a", "x");
    lab.fresh_sources(&ns, &[&a]);
    lab.sh(&format!("zfs create {x}"));
    let d = dir(&ns.name);
    let script = d.join("pput.py");
    std::fs::write(&script, PPUT).unwrap();
    let script = script.display().to_string();
    lab.fill(&a, 600);
    lab.fill(&x, 600);
    let s1 = snap(lab, b, 1, &[&a, &x]);
    let z3 = |prefix| Z3 {
        lab,
        env: &env,
        script: &script,
        bkt: &bkt,
        prefix,
    };
    z3("good").put(&a, &s1, None, Some("pigz1"));
    z3("bad").put_as(&a, &x, &s1, None, Some("pigz4"));
    lab.fill(&a, 300);
    let s2 = snap(lab, b, 2, &[&a]);

    // a@s1's own stream: an incremental from it.
    let out = send(lab, &env, b, &format!("s3://{bkt}/good"), &["--verbose"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("its stream's guid checked"),
        "{}",
        out.stderr
    );
    let o = out
        .datasets()
        .into_iter()
        .find(|r| r.name == a)
        .and_then(|r| r.send);
    let o = o.expect("a send record");
    assert_eq!(o.common.as_deref(), Some(s1.as_str()), "{}", out.stdout);
    let t: Vec<_> = o
        .transfers
        .iter()
        .map(|t| (t.kind, t.from.clone()))
        .collect();
    assert_eq!(
        t,
        [(
            zab_core::record::TransferKind::Incremental,
            Some(s1.clone())
        )],
        "{}",
        out.stdout
    );
    assert_eq!(o.transfers[0].snapshot, s2);

    // zfs3backup still running beside zab: its object of the next
    // snapshot is not written over; that transfer fails.
    lab.fill(&a, 200);
    let s3 = snap(lab, b, 3, &[&a]);
    z3("good").put(&a, &s3, Some(&s2), None);
    let out = send(lab, &env, b, &format!("s3://{bkt}/good"), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("good/{a}@{s3} exists already")),
        "{}",
        out.stderr
    );
    let out = lab.local_sh(&format!("{env}zab-store ls s3://{bkt}/good"));
    let c = &records(&out)[0];
    assert_eq!(objects(c, "snapshot"), [&s1, &s2, &s3].map(|s| s.as_str()));
    assert_eq!(c["objects"][2]["no_manifest"], true, "{c}");

    // x@s1's stream under a's name: no snapshot in common, as with a ZFS
    // target of another dataset; a fails, and nothing is written over
    // zfs3backup's objects.
    let url = format!("s3://{bkt}/bad");
    let out = send(lab, &env, b, &url, &["--verbose"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("bad/{a}@{s1} is a stream of another snapshot")),
        "{}",
        out.stderr
    );
    let r = out
        .datasets()
        .into_iter()
        .find(|r| r.name == a)
        .expect("a's record");
    let o = r.send.expect("a send record");
    assert!(o.transfers.is_empty(), "{}", out.stdout);
    let err = r.error.unwrap_or_default();
    assert!(err.contains(&format!("@{s1} has another guid")), "{err}");
    let out = lab.local_sh(&format!("{env}zab-store ls {url}"));
    let c = &records(&out)[0];
    assert_eq!(objects(c, "snapshot"), [s1.as_str()], "{}", out.stdout);
    // With --no-guid-check, names alone: it goes on, as asked.
    let out = send(lab, &env, b, &url, &["--no-guid-check"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);

    lab.sh(&format!("zfs destroy -r {}", ns.ds("zab-a", "")));
}

/// `zab-store check URL [DATASET]`'s records and exit status.
fn check(lab: &Lab, args: &str) -> (i32, Vec<serde_json::Value>, String) {
    let out = lab.local_sh(&format!("zab-store check {args}"));
    (out.code, records(&out), out.stderr)
}

fn check_finds_corrupt_objects_and_broken_chains(lab: &Lab) {
    let ns = Ns::new("z3b_check");
    let b = ns.backup();
    let a = ns.ds("zab-a", "a");
    let c = ns.ds("zab-a", "c");
    lab.sh(&format!(
        "set -e; zfs destroy -r {root} 2>/dev/null || true; \
         zfs create -p -o autobackup:{b}=true {a}; zfs create -o autobackup:{b}=true {c}",
        root = ns.ds("zab-a", "")
    ));
    let d = dir(&ns.name);
    let url = format!("file://{}", d.display());
    let mut snaps = Vec::new();
    for n in 1..=4 {
        lab.fill(&a, 400);
        lab.fill(&c, 50);
        snaps.push(snap(lab, b, n, &[&a, &c]));
        let extra: &[&str] = if n == 3 {
            &["--compress", "zstd-fast"]
        } else {
            &[]
        };
        let out = send(lab, "", b, &url, extra);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    // Healthy: every object read, its hash and its stream's guids agree.
    let (code, recs, err) = check(lab, &url);
    assert_eq!(code, 0, "{recs:?} {err}");
    assert_eq!(recs.len(), 3, "{recs:?}");
    for r in &recs[..2] {
        assert_eq!(
            (r["kind"].as_str(), r["status"].as_str()),
            (Some("check"), Some("healthy")),
            "{r}"
        );
        assert_eq!(
            (r["objects"].as_u64(), r["read"].as_u64()),
            (Some(4), Some(4)),
            "{r}"
        );
    }
    assert_eq!(recs[2]["kind"], "end");
    assert_eq!(recs[2]["failed"], 0);

    // --sample 50%: two of each dataset's four objects.
    let (code, recs, _) = check(lab, &format!("--sample 50% {url}"));
    assert_eq!(code, 0);
    assert_eq!(
        (recs[0]["read"].as_u64(), recs[1]["read"].as_u64()),
        (Some(2), Some(2))
    );

    // A byte flipped in @s2's object: that dataset is corrupt, the object
    // named, exit 1; the other dataset is healthy.
    let file = d.join(format!("{a}@{}", snaps[1]));
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    std::fs::write(&file, &bad).unwrap();
    let (code, recs, err) = check(lab, &url);
    assert_eq!(code, 1, "{recs:?}");
    let ra = recs.iter().find(|r| r["dataset"] == a.as_str()).unwrap();
    assert_eq!(ra["status"], "corrupt", "{ra}");
    let name = format!("{url}/{a}@{}", snaps[1]);
    assert!(ra["problems"][0].as_str().unwrap().contains(&name), "{ra}");
    assert!(
        err.starts_with("zab-store: ") && err.contains(&name),
        "{err}"
    );
    let rc = recs.iter().find(|r| r["dataset"] == c.as_str()).unwrap();
    assert_eq!(rc["status"], "healthy", "{rc}");
    assert_eq!(recs.last().unwrap()["failed"], 1);
    // DATASET: that one alone.
    let (code, recs, _) = check(lab, &format!("{url} {c}"));
    assert_eq!((code, recs.len()), (0, 2), "{recs:?}");

    // The middle object gone: a broken chain.
    std::fs::remove_file(&file).unwrap();
    let (code, recs, _) = check(lab, &format!("{url} {a}"));
    assert_eq!(code, 1);
    assert_eq!(recs[0]["status"], "broken", "{:?}", recs[0]);
    let why = recs[0]["problems"][0].as_str().unwrap();
    assert!(
        why.contains(&format!("object {a}@{} is missing", snaps[1])),
        "{why}"
    );
    std::fs::write(&file, &good).unwrap();

    // A manifest whose guid says another parent than the stream: found
    // from the stream (end to end), and as the chain's guid mismatch.
    let mf = d.join(format!(".zab/{a}.json"));
    let text = std::fs::read_to_string(&mf).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["objects"][3]["parent_guid"] = serde_json::json!(12345);
    std::fs::write(&mf, serde_json::to_vec(&m).unwrap()).unwrap();
    let (code, recs, _) = check(lab, &format!("{url} {a}"));
    assert_eq!(code, 1);
    let all = recs[0]["problems"].to_string();
    assert!(
        all.contains("an incremental from guid") && all.contains("guid mismatch"),
        "{all}"
    );
    std::fs::write(&mf, text).unwrap();
    let (code, _, err) = check(lab, &url);
    assert_eq!(code, 0, "{err}");

    lab.sh(&format!("zfs destroy -r {}", ns.ds("zab-a", "")));
}
