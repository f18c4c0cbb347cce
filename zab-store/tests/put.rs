//! Store::put against the local S3 server (scripts/s3-server; skipped
//! without `ZAB_TEST_S3_ENDPOINT`, which `scripts/s3-server env` sets,
//! unless `ZAB_LAB_REQUIRED=1`, as in scripts/test, which makes it a
//! failure):
//! an upload whose CompleteMultipartUpload answer is lost
//! (`ZAB_TEST_LOSE_COMPLETE=1`, a debug build's test hook: the upload is
//! completed, and the success answered is replaced by an error, as when
//! the answer came after the client's timeout and the retries failed) is
//! no failure when the object at the key is the one it made: its size and
//! ETag as the server gives them.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use zab_store::store::Upload;
use zab_store::{Location, Settings, Store};

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

#[test]
fn a_lost_complete_answer_is_no_failure() {
    let Ok(ep) = std::env::var("ZAB_TEST_S3_ENDPOINT") else {
        // scripts/test sets both: there, a missing server is a failure.
        assert!(
            !std::env::var("ZAB_LAB_REQUIRED").is_ok_and(|v| v == "1"),
            "ZAB_LAB_REQUIRED=1 but no ZAB_TEST_S3_ENDPOINT: run scripts/s3-server start, then eval \"$(scripts/s3-server env)\""
        );
        eprintln!("skipped: no ZAB_TEST_S3_ENDPOINT (eval \"$(scripts/s3-server env)\")");
        return;
    };
    let bucket = format!("zab-put-{}", std::process::id());
    let made = Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("{ep}/{bucket}")])
        .status()
        .unwrap();
    assert!(made.success(), "creating bucket {bucket}");
    // Only this test in this binary: the environment is its own.
    std::env::set_var("AWS_ACCESS_KEY_ID", "zabtest");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "zabtest-secret");
    std::env::set_var("AWS_ENDPOINT_URL", &ep);
    std::env::remove_var("ZAB_TEST_LOSE_COMPLETE");
    let loc = Location::parse(&format!("s3://{bucket}/p")).unwrap();
    let store = Store::open(&loc, &Settings::default()).unwrap();
    let estimate = || 0u64;
    let up = Upload {
        estimate: &estimate,
        metadata: vec![("zab-snapshot".into(), "s1".into())],
        jobs: 2,
    };
    // Two parts: 8 MiB and a few bytes.
    let bytes = data((8 << 20) + 5, 1);
    let ok = store
        .put("tank@a", &mut &bytes[..], &up, &mut || Ok(()))
        .unwrap();
    assert_eq!(
        (ok.bytes, ok.parts, ok.recovered),
        (bytes.len() as u64, 2, false)
    );
    let meta = store.metadata("tank@a").unwrap();
    assert!(
        meta.contains(&("zab-snapshot".into(), "s1".into())),
        "{meta:?}"
    );

    std::env::set_var("ZAB_TEST_LOSE_COMPLETE", "1");
    let other = data((8 << 20) + 7, 2);
    let lost = store.put("tank@b", &mut &other[..], &up, &mut || Ok(()));
    std::env::remove_var("ZAB_TEST_LOSE_COMPLETE");
    let lost = lost.unwrap();
    assert!(lost.recovered, "{lost:?}");
    assert_eq!((lost.bytes, lost.parts), (other.len() as u64, 2));
    let mut back = Vec::new();
    store.get("tank@b", &mut back).unwrap();
    assert!(back == other, "the object read back differs");
    assert!(store.unfinished().unwrap().is_empty());

    // A stream that is not whole is never completed, hook or not.
    std::env::set_var("ZAB_TEST_LOSE_COMPLETE", "1");
    let cut = store.put("tank@c", &mut &other[..], &up, &mut || {
        Err("zfs send failed".into())
    });
    std::env::remove_var("ZAB_TEST_LOSE_COMPLETE");
    assert_eq!(cut.unwrap_err().to_string(), "zfs send failed");
    assert!(store.get("tank@c", &mut Vec::new()).is_err());
    assert!(store.unfinished().unwrap().is_empty());
}
