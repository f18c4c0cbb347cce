//! The Debian package (scripts/package) in the lab: installed with
//! `dpkg -i`, a backup configured in /etc/zab/NAME.conf and run by
//! `systemctl start zab-autobackup@NAME.service` (what its timer starts),
//! the snapshot checked on source and target, then `dpkg -r` and
//! `dpkg -P`, which must leave exactly the files there were before.
//!
//! The .deb is `$ZAB_DEB` (scripts/test builds it from the release build),
//! or else one that this test builds with scripts/package from the
//! binaries the suite copies in (`ZAB_BIN_DIR`). The package installs to
//! /usr/bin; the suite's own binaries are in /usr/local/bin, and the test
//! checks that installing and removing the package leaves them alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zab_tests::{Lab, Ns, ALIAS, TOOLS, WRAPPER};

use crate::Test;

pub const TESTS: &[Test] = &[(
    "package_runs_from_systemd_and_purges_clean",
    runs_from_systemd_and_purges_clean,
)];

/// The directories compared before installing and after purging. Not
/// /etc/zfs (zpool.cache follows the pools that other tests create), nor
/// /var/lib/zab (zab's state directory, where the zab-snap runs of other
/// tests keep their quiet-run caches; the purge removes it), nor dpkg's
/// own `*-old` backups.
const LISTED: &str = "find /etc /lib /usr /var/lib /opt -xdev \
    -path /etc/zfs -prune -o -path /var/lib/zab -prune -o \
    -path '/var/lib/dpkg/*-old' -prune -o -print | sort";

/// The .deb to install: `$ZAB_DEB`, or one built here from the suite's
/// binaries.
fn deb(lab: &Lab) -> PathBuf {
    if let Some(deb) = std::env::var_os("ZAB_DEB") {
        // Relative to the workspace, not to tests/ where the suite runs.
        let deb = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(deb);
        assert!(deb.is_file(), "ZAB_DEB={} is not a file", deb.display());
        return deb;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
    let out = Command::new(root.join("scripts/package"))
        .arg(&out_dir)
        .env("ZAB_BIN_DIR", &lab.bin_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/package failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default());
    assert!(deb.is_file(), "scripts/package printed no .deb: {stdout}");
    deb
}

fn runs_from_systemd_and_purges_clean(lab: &Lab) {
    let ns = Ns::new("pkg_systemd");
    let b = ns.backup();
    let src = ns.ds("zab-a", "");
    let child = ns.ds("zab-a", "child");
    let tgt = ns.ds("zab-t", "");
    let dir = format!("/root/{b}");
    let conf = format!("/etc/zab/{b}.conf");
    let unit = format!("zab-autobackup@{b}.service");
    let deb = deb(lab);

    // A clean start: no package, no config, no copy left by an earlier run.
    lab.sh(&format!(
        "dpkg -P zab >/dev/null 2>&1 || true; rm -f {conf}; rmdir /etc/zab 2>/dev/null || true; \
         rm -rf {dir} && mkdir -m 700 {dir}"
    ));
    let out = lab.here(
        "scp",
        &[
            "-q",
            "-F",
            &lab.ssh_config.display().to_string(),
            &deb.display().to_string(),
            &format!("{ALIAS}:{dir}/zab.deb"),
        ],
    );
    assert_eq!(out.code, 0, "copying the .deb: {}", out.stderr);
    let before = lab.sh(LISTED);
    let ours = TOOLS
        .iter()
        .chain([&WRAPPER])
        .map(|t| format!("/usr/local/bin/{t}"))
        .collect::<Vec<_>>()
        .join(" ");
    let suite_bins = lab.sh(&format!("sha256sum {ours}"));

    // Installed: the tools, the wrapper, man pages, completions, docs and
    // the units, none of them enabled.
    lab.sh(&format!("dpkg -i {dir}/zab.deb >/dev/null"));
    for path in [
        "/usr/bin/zab-select",
        "/usr/bin/zab-autobackup",
        "/usr/share/man/man1/zab-send.1.gz",
        "/usr/share/man/man1/zab-autobackup.1.gz",
        "/usr/share/bash-completion/completions/zab-thin",
        "/usr/share/zsh/vendor-completions/_zab-snap",
        "/usr/share/fish/vendor_completions.d/zab-select.fish",
        "/usr/share/doc/zab/records.md",
        "/usr/share/doc/zab/install.md",
        "/lib/systemd/system/zab-autobackup@.service",
        "/lib/systemd/system/zab-autobackup@.timer",
    ] {
        lab.sh(&format!("test -f {path}"));
    }
    // The package's own binaries run there (the wrapper in /usr/bin runs
    // the tools next to it, not the suite's in /usr/local/bin).
    for tool in TOOLS {
        assert!(lab
            .sh(&format!("/usr/bin/{tool} --version"))
            .starts_with(tool));
    }
    assert_eq!(
        lab.sh("zcat /usr/share/man/man1/zab-send.1.gz | sed -n '/^.SH \"NAME\"/{n;p}'")
            .trim(),
        "zab\\-send \\- Replicate datasets to a target: full, incremental, resumed"
    );
    assert_eq!(
        lab.ssh(&format!("systemctl is-enabled zab-autobackup@{b}.timer"))
            .stdout
            .trim(),
        "disabled"
    );
    let verify = lab.ssh(&format!(
        "systemd-analyze verify --man=no zab-autobackup@{b}.timer zab-autobackup@{b}.service 2>&1"
    ));
    assert!(
        !verify.stdout.contains("zab-autobackup"),
        "systemd-analyze verify: {}",
        verify.stdout
    );

    // A backup, configured as the admin does, run as the timer runs it.
    lab.sh(&format!(
        "set -e; zfs create -o {p}=true {src}; zfs create {child}; zfs create -p {tgt}; \
         printf 'ZAB_ARGS=\"--verbose {b} {tgt}\"\\n' > {conf}",
        p = ns.prop()
    ));
    lab.fill(&src, 64);
    lab.fill(&child, 16);
    let run = lab.ssh(&format!("systemctl start {unit}"));
    let journal = lab.sh(&format!("journalctl -q -o cat -u {unit} --no-pager"));
    assert_eq!(run.code, 0, "{}\n{journal}", run.stderr);
    assert_eq!(
        lab.sh(&format!("systemctl show -p Result --value {unit}"))
            .trim(),
        "success"
    );
    assert!(
        journal.contains("#### All operations completed successfully"),
        "{journal}"
    );
    let snaps = lab.snapshot_names(&src);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(snaps[0].starts_with(&format!("{b}-")), "{snaps:?}");
    lab.same_files(&src, &format!("{tgt}/{src}"));
    lab.same_files(&child, &format!("{tgt}/{child}"));

    // Removed, then purged: nothing of the package is left, and the
    // suite's binaries in /usr/local/bin are untouched.
    lab.sh(&format!("rm -f {conf}; dpkg -r zab >/dev/null"));
    lab.sh(
        "test ! -e /usr/bin/zab-select && test ! -e /lib/systemd/system/zab-autobackup@.service",
    );
    lab.sh("dpkg -P zab >/dev/null");
    assert_eq!(
        lab.ssh("dpkg -s zab").code,
        1,
        "dpkg knows nothing of zab after the purge"
    );
    let after = lab.sh(LISTED);
    if before != after {
        let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
        let left: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
        let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
        panic!("the purge left {left:?} and took {gone:?}");
    }
    assert_eq!(lab.sh(&format!("sha256sum {ours}")), suite_bins);
    lab.sh(&format!("rm -rf {dir}"));
}
