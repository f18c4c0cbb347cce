//! Store::download on a directory store: every object's bytes in order,
//! split in ranges with several requests in flight, across objects of all
//! sizes (an empty one, one smaller than a range, one of many ranges).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zab_store::download::{Piece, Wanted};
use zab_store::{Location, Settings, Store};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn objects_come_whole_and_in_order() {
    let d = scratch("download-in-order");
    let objects = [
        ("p/a@s1", data(10_000, 1)),
        ("p/a@s2", data(0, 2)),
        ("p/a@s3", data(333, 3)),
        ("p/a@s4", data(4_096, 4)),
    ];
    std::fs::create_dir_all(d.join("p")).unwrap();
    for (k, v) in &objects {
        std::fs::write(d.join(k), v).unwrap();
    }
    let store = Store::open(&Location::Dir { root: d }, &Settings::default()).unwrap();
    let list: Vec<(String, u64)> = objects
        .iter()
        .map(|(k, v)| (k.to_string(), v.len() as u64))
        .collect();
    for (jobs, range) in [(1, 1024), (1, 7), (3, 1000), (8, 7), (2, 1 << 20)] {
        let mut dl = store.download(&list, jobs, range);
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); objects.len()];
        let mut lasts = Vec::new();
        let mut at = 0;
        while let Some(p) = dl.next_piece() {
            let Piece {
                object,
                bytes,
                at: from,
                last,
                sha256,
                ..
            } = p.unwrap();
            assert_eq!(sha256.is_some(), last);
            assert_eq!(from, got[object].len() as u64);
            assert!(object >= at, "object {object} after {at}");
            assert!(bytes.len() as u64 <= range);
            at = object;
            got[object].extend_from_slice(&bytes);
            if last {
                lasts.push(object);
                let want: String = Sha256::digest(&got[object])
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(sha256.as_deref(), Some(want.as_str()), "object {object}");
            }
        }
        assert_eq!(lasts, [0, 1, 2, 3], "jobs {jobs}, range {range}");
        for (i, (_, v)) in objects.iter().enumerate() {
            assert_eq!(&got[i], v, "object {i}, jobs {jobs}, range {range}");
        }
    }
}

/// An object downloaded from a piece's start on, hashed from the
/// midstate there: the rest of its bytes only, and the whole object's
/// hash; a wrong midstate gives another hash.
#[test]
fn an_object_from_a_midstate_is_its_rest_and_its_whole_hash() {
    let d = scratch("download-from");
    let v = data(10_000, 5);
    std::fs::write(d.join("a@s1"), &v).unwrap();
    let store = Store::open(&Location::Dir { root: d }, &Settings::default()).unwrap();
    let whole: String = Sha256::digest(&v)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for (jobs, range, from) in [(1, 1024, 4096), (4, 1024, 8192), (3, 64, 64)] {
        let mut first = zab_store::sha::Sha256::default();
        first.update(&v[..from]);
        let mut state = first.midstate().unwrap();
        for good in [true, false] {
            if !good {
                state[0] ^= 1;
            }
            let w = Wanted {
                key: "a@s1".into(),
                size: v.len() as u64,
                from: from as u64,
                state,
            };
            let mut dl = store.download_at(&[w], jobs, range);
            let mut got = Vec::new();
            let mut sha = None;
            while let Some(p) = dl.next_piece() {
                let p = p.unwrap();
                assert_eq!(p.at, (from + got.len()) as u64);
                assert!(p.midstate.is_some());
                got.extend_from_slice(&p.bytes);
                sha = p.sha256;
            }
            assert!(got == v[from..], "jobs {jobs}, from {from}");
            assert_eq!(sha.unwrap() == whole, good, "jobs {jobs}, from {from}");
        }
    }
}

#[test]
fn a_missing_object_is_an_error_that_names_it() {
    let d = scratch("download-missing");
    std::fs::write(d.join("a@s1"), data(100, 1)).unwrap();
    let store = Store::open(&Location::Dir { root: d }, &Settings::default()).unwrap();
    let list = [("a@s1".to_string(), 100), ("a@s2".to_string(), 100)];
    for jobs in [1, 4] {
        missing_after_100_bytes(&store, &list, jobs);
    }
}

fn missing_after_100_bytes(store: &Store, list: &[(String, u64)], jobs: usize) {
    let mut dl = store.download(list, jobs, 64);
    let mut n = 0;
    let err = loop {
        match dl.next_piece() {
            Some(Ok(p)) => {
                assert_eq!(p.object, 0);
                n += p.bytes.len();
            }
            Some(Err(e)) => break e.to_string(),
            None => panic!("no error"),
        }
    };
    assert_eq!(n, 100);
    assert!(err.contains("a@s2"), "{err}");
    assert!(
        dl.next_piece().is_none(),
        "the download stops after an error"
    );
}
