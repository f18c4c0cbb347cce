//! The checks at the top of scripts/test, scripts/demo and scripts/package
//! (scripts/toolchain), and scripts/package's refusal of a bin dir without
//! the tools, run with a PATH of stand-ins: no lab, no build.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A directory for one test: PATH holds the few programs the scripts need
/// (found on this PATH), and whatever stand-ins the test writes.
fn sandbox(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    for prog in ["env", "bash", "sed", "sort", "head", "dirname"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{prog} is not on the PATH"));
        symlink(found, dir.join(prog)).unwrap();
    }
    dir
}

/// A stand-in program that prints `out`.
fn stand_in(dir: &Path, prog: &str, out: &str) {
    let p = dir.join(prog);
    fs::write(&p, format!("#!/bin/sh\necho '{out}'\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs scripts/toolchain with only `dir` on the PATH and as HOME.
fn toolchain(dir: &Path, args: &[&str]) -> Output {
    Command::new(root().join("scripts/toolchain"))
        .args(args)
        .env_clear()
        .env("PATH", dir)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The rust-version of Cargo.toml.
fn rust_version() -> String {
    let toml = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap()
}

/// One line on stderr, prefixed with the calling script, exit 1.
#[track_caller]
fn one_line_failure(out: &Output, starts: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(starts), "{err}");
    assert!(err.contains("rustup"), "says how to fix it: {err}");
    err
}

#[test]
fn toolchain_names_a_missing_cargo() {
    let dir = sandbox("toolchain-no-cargo");
    stand_in(&dir, "rustc", "rustc 1.85.0 (4d91de4e4 2025-02-17)");
    let out = toolchain(&dir, &["scripts/demo"]);
    one_line_failure(&out, "scripts/demo: cargo is not installed");
}

#[test]
fn toolchain_names_an_old_rustc() {
    let dir = sandbox("toolchain-old");
    stand_in(&dir, "cargo", "cargo 1.65.0");
    stand_in(&dir, "rustc", "rustc 1.63.0");
    let out = toolchain(&dir, &["scripts/test"]);
    let err = one_line_failure(&out, "scripts/test: zab needs Rust ");
    assert!(err.contains(&rust_version()), "{err}");
    assert!(err.contains("this rustc is 1.63.0"), "{err}");
}

#[test]
fn toolchain_accepts_a_new_enough_rustc_and_asks_for_clippy_with_lint() {
    let dir = sandbox("toolchain-new");
    stand_in(&dir, "cargo", "cargo 1.96.0");
    stand_in(&dir, "rustc", "rustc 1.96.0 (debian)");
    let out = toolchain(&dir, &["scripts/package"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!((out.stdout.len(), out.stderr.len()), (0, 0));
    // The stand-in cargo answers `cargo fmt --version` and `cargo clippy
    // --version` too; one that fails them is missing rustfmt and clippy.
    fs::write(
        dir.join("cargo"),
        "#!/bin/sh\ncase $1 in fmt|clippy) exit 1;; esac\necho cargo 1.96.0\n",
    )
    .unwrap();
    let out = toolchain(&dir, &["--lint", "scripts/test"]);
    one_line_failure(&out, "scripts/test: cargo fmt is missing");
}

#[test]
fn package_refuses_a_bin_dir_without_the_tools() {
    let dir = sandbox("package-no-tools");
    let out = Command::new(root().join("scripts/package"))
        .arg(dir.join("out"))
        .env("ZAB_BIN_DIR", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "scripts/package: {}/zab-select is missing (cargo build --release, or set ZAB_BIN_DIR)",
            dir.display()
        )
    );
    assert!(!dir.join("out").exists(), "nothing half-done");
}
