//! The end-to-end suite: zab's tools against real OpenZFS in the lab.
//!
//! A small runner instead of libtest, so that a missing lab is said out loud
//! (libtest hides the output of passing tests) and the tests, which mostly
//! wait on ssh, run several at a time. `cargo test -p zab-tests -- WORD` runs
//! the tests whose name contains WORD.
//!
//! Without a lab every test is reported as skipped, and the run passes,
//! unless `ZAB_LAB_REQUIRED=1` (set by scripts/test), which makes it a failure.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod bookmarks;
mod check;
mod core;
mod cron;
mod nonroot;
mod package;
mod readonly;
mod restore;
mod retain;
mod select;
mod send;
mod snap;
mod status;
mod store;
mod thin;
mod thin_quiet;
mod wrapper;
mod zfs3backup;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use zab_tests::Lab;

/// A test: its name and body.
pub type Test = (&'static str, fn(&Lab));

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all: Vec<Test> = [
        core::TESTS,
        select::TESTS,
        snap::TESTS,
        thin::TESTS,
        thin_quiet::TESTS,
        send::TESTS,
        store::TESTS,
        restore::TESTS,
        retain::TESTS,
        wrapper::TESTS,
        readonly::TESTS,
        nonroot::TESTS,
        package::TESTS,
        cron::TESTS,
        check::TESTS,
        status::TESTS,
        zfs3backup::TESTS,
        bookmarks::TESTS,
    ]
    .concat();
    let total = all.len();
    let tests: Vec<Test> = all
        .into_iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    let filtered_out = total - tests.len();
    let required = std::env::var("ZAB_LAB_REQUIRED").is_ok_and(|v| v == "1");

    let lab = match Lab::from_env() {
        Ok(lab) => lab,
        Err(why) => {
            println!();
            println!("ZFS tests SKIPPED: no lab: {why}");
            println!("Run scripts/test to build and boot the lab and run every test.");
            if required {
                println!("test result: FAILED. 0 passed; 0 failed; {} ignored; 0 measured; {filtered_out} filtered out", tests.len());
                println!("ZAB_LAB_REQUIRED=1: a missing lab is a failure.");
                std::process::exit(1);
            }
            println!("test result: ok. 0 passed; 0 failed; {} ignored; 0 measured; {filtered_out} filtered out", tests.len());
            return;
        }
    };
    if let Err(e) = lab.setup() {
        println!("lab setup failed: {e}");
        std::process::exit(1);
    }

    let start = Instant::now();
    println!("\nrunning {} ZFS tests in the lab", tests.len());
    let threads: usize = std::env::var("ZAB_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, body)) = tests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(|| body(&lab)));
                let secs = t.elapsed().as_secs_f64();
                match result {
                    Ok(()) => println!("test {name} ... ok ({secs:.1}s)"),
                    Err(e) => {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        println!("test {name} ... FAILED ({secs:.1}s)");
                        failures.lock().unwrap().push((*name, msg));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    for (name, msg) in &failures {
        println!("\n---- {name} ----\n{msg}");
    }
    let passed = tests.len() - failures.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.1}s",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
