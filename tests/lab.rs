//! The real-ZFS lab as the end-to-end tests see it.
//!
//! `scripts/testvm start` boots a VM with OpenZFS and writes an ssh config
//! with the host alias `zfs-lab`; `ZAB_LAB_SSH_CONFIG` names that file. The
//! tests reach the lab exactly as an admin reaches a server: through `ssh -F`.
//! Two ways of running a tool are tested:
//!
//! * [`Lab::guest`]: the tool runs inside the VM (local mode, no ssh in zab),
//!   from the release binaries that [`Lab::setup`] copies in;
//! * [`Lab::host`]: the tool runs here and reaches the VM with
//!   `--ssh-source zfs-lab --ssh-config FILE`.
//!
//! [`Lab::setup`] runs once per suite: it copies the binaries and
//! scripts/zfs-autobackup (as [`WRAPPER`]) in, and creates fresh pools
//! `zab-a` and `zab-b` (sources) and `zab-t` (targets) on the VM's blank
//! disks. Each test then works in its own namespace ([`Ns`]) with its own
//! backup name, so tests run in parallel without seeing each other's
//! selection.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use zab_core::host::quote_argv;
use zab_core::record::{Dataset, End, Record};

/// The ssh alias of the VM in the lab's ssh config.
pub const ALIAS: &str = "zfs-lab";

/// Set (to anything) in the tests' environment, zab-thin destroys one
/// dataset at a time instead of by a channel program, in the guest as here:
/// the thin_ tests run once each way. For tests only (zab-thin's
/// `execute::NO_PROGRAM_ENV`).
pub const THIN_NO_PROGRAM: &str = "ZAB_THIN_NO_PROGRAM";

/// Ahead of every script run in the guest: the scripts' own `zfs create`
/// (a shell function; the tools they start run the real `zfs`) mounts once
/// more, after a pause, what it created but could not mount. On a loaded
/// lab `zfs create` has failed now and then with "cannot mount …:
/// mountpoint or dataset is busy" and "filesystem successfully created,
/// but not mounted" (exit 1), failing a test's set-up, not its subject.
/// Any other failure is `zfs create`'s own, with its message and status.
pub const CREATE_MOUNTED: &str = r#"zfs() {
  if [ "$1" != create ]; then command zfs "$@"; return; fi
  # Its stderr read, its stdout left alone.
  if { _zc_out=$(command zfs "$@" 2>&1 1>&3 3>&-); } 3>&1; then
    [ -z "$_zc_out" ] || printf '%s\n' "$_zc_out" >&2; return 0
  else
    _zc_rc=$?
  fi
  case $_zc_out in
    *"successfully created, but not mounted"*) ;;
    *) printf '%s\n' "$_zc_out" >&2; return "$_zc_rc" ;;
  esac
  # The dataset is the last argument; with -p, the parents it made may
  # be unmounted too: parents first.
  _zc_p='' _zc_m=''
  for _zc_ds in "$@"; do case $_zc_ds in -*p*) _zc_p=1 ;; esac; done
  sleep 2
  _zc_d=$_zc_ds
  while :; do
    if [ "$(command zfs get -H -o value canmount,mounted "$_zc_d" | paste -sd,)" = on,no ]; then
      _zc_m="$_zc_d $_zc_m"
    fi
    [ -n "$_zc_p" ] || break
    case $_zc_d in */*) _zc_d=${_zc_d%/*} ;; *) break ;; esac
  done
  for _zc_d in $_zc_m; do
    command zfs mount "$_zc_d" || { printf '%s\n' "$_zc_out" >&2; return 1; }
  done
  echo "zfs create $_zc_ds: mounted once more after: $_zc_out" >&2
}"#;

/// The pools every suite run creates fresh, with the disk each lives on.
pub const POOLS: &[(&str, &str)] = &[
    ("zab-a", "/dev/disk/by-id/virtio-zab-d0"),
    ("zab-b", "/dev/disk/by-id/virtio-zab-d1"),
    ("zab-t", "/dev/disk/by-id/virtio-zab-d2"),
];

/// The zab binaries copied into the guest.
pub const TOOLS: &[&str] = &[
    "zab-select",
    "zab-snap",
    "zab-thin",
    "zab-send",
    "zab-buffer",
    "zab-ratelimit",
    "zab-check",
    "zab-verify",
    "zab-status",
    "zab-store",
    "zab-restore",
];

/// The suite's private directory in the guest (mode 700, made by the
/// tests that need it with [`GUEST_DIR_MAKE`]): file-backed pools live
/// there, not at a predictable name in a world-writable one (the fault
/// suite's is /var/lib/zab-faults).
pub const GUEST_DIR: &str = "/var/lib/zab-tests";

/// The shell line that makes [`GUEST_DIR`], private, if it is not there.
pub const GUEST_DIR_MAKE: &str =
    "mkdir -p -m 700 /var/lib/zab-tests && chmod 700 /var/lib/zab-tests";

/// The name `scripts/zfs-autobackup` has in the guest's /usr/local/bin.
/// Not `zfs-autobackup`: that is zfs-autobackup itself (installed there by
/// pip), which the wrapper's tests run side by side with the wrapper. The
/// wrapper finds the zab tools next to it either way.
pub const WRAPPER: &str = "zab-autobackup";

/// A running lab.
#[derive(Debug, Clone)]
pub struct Lab {
    pub ssh_config: PathBuf,
    pub bin_dir: PathBuf,
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The zfs commands a `--debug` run printed on stderr (a tool's own
    /// lines: `zfs …`).
    pub fn zfs_calls(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("zfs "))
            .map(str::to_string)
            .collect()
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {}", self.stderr);
        self
    }

    /// Every stdout line as a record, parsed strictly: each must be a known
    /// kind, and the dataset records must have no fields beyond the spec.
    #[track_caller]
    pub fn records(&self) -> Vec<Record> {
        self.stdout
            .lines()
            .map(|l| {
                let rec: Record =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l}: {e}"));
                if let Record::Dataset(d) = &rec {
                    assert!(d.extra.is_empty(), "unexpected fields in {l}");
                }
                rec
            })
            .collect()
    }

    /// The dataset records, checking that the stream ends with its end record.
    #[track_caller]
    pub fn datasets(&self) -> Vec<Dataset> {
        let recs = self.records();
        let end = self.end();
        let ds: Vec<Dataset> = recs
            .into_iter()
            .filter_map(|r| match r {
                Record::Dataset(d) => Some(d),
                Record::End(_) => None,
            })
            .collect();
        assert_eq!(end.datasets, ds.len(), "end record count");
        ds
    }

    /// The end record, which must be the last line.
    #[track_caller]
    pub fn end(&self) -> End {
        match self.records().pop() {
            Some(Record::End(e)) => e,
            other => panic!(
                "stream does not end with an end record: {other:?}\n{}",
                self.stdout
            ),
        }
    }
}

impl Lab {
    /// The lab named by `ZAB_LAB_SSH_CONFIG`, or why there is none.
    pub fn from_env() -> Result<Lab, String> {
        let cfg = std::env::var_os("ZAB_LAB_SSH_CONFIG")
            .ok_or("ZAB_LAB_SSH_CONFIG is not set (scripts/test boots the lab and sets it)")?;
        let ssh_config = PathBuf::from(cfg);
        if !ssh_config.is_file() {
            return Err(format!(
                "ZAB_LAB_SSH_CONFIG={} is not a file",
                ssh_config.display()
            ));
        }
        let bin_dir = match std::env::var_os("ZAB_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
        };
        let lab = Lab {
            ssh_config,
            bin_dir,
        };
        let probe = lab.ssh("zfs version");
        if probe.code != 0 {
            return Err(format!("the lab does not answer: {}", probe.stderr.trim()));
        }
        Ok(lab)
    }

    /// `--ssh-config FILE`, for tools run on this side.
    pub fn ssh_config_args(&self) -> Vec<String> {
        vec!["--ssh-config".into(), self.ssh_config.display().to_string()]
    }

    /// Runs a shell script in the guest.
    pub fn ssh(&self, script: &str) -> Out {
        // The test-only switch of zab-thin's fallback goes into the guest
        // too (tools run here inherit it).
        let script = match std::env::var_os(THIN_NO_PROGRAM) {
            Some(_) => format!("export {THIN_NO_PROGRAM}=1\n{CREATE_MOUNTED}\n{script}"),
            None => format!("{CREATE_MOUNTED}\n{script}"),
        };
        run(Command::new("ssh")
            .arg("-F")
            .arg(&self.ssh_config)
            .arg(ALIAS)
            .arg(script))
    }

    /// Runs a shell script in the guest; it must succeed. Returns stdout.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        let out = self.ssh(script);
        assert_eq!(out.code, 0, "in the lab: {script}\n{}", out.stderr);
        out.stdout
    }

    /// Runs a zab tool inside the guest (local mode).
    pub fn guest(&self, tool: &str, args: &[&str]) -> Out {
        let mut argv = vec![tool];
        argv.extend_from_slice(args);
        self.ssh(&quote_argv(&argv))
    }

    /// Runs a zab tool here, reaching the guest through ssh: `--ssh-source
    /// zfs-lab --ssh-config FILE` are appended.
    pub fn host(&self, tool: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(self.bin_dir.join(tool));
        cmd.args(args)
            .args(["--ssh-source", ALIAS])
            .args(self.ssh_config_args());
        run(&mut cmd)
    }

    /// Runs a zab tool here with exactly these arguments.
    pub fn host_raw(&self, tool: &str, args: &[&str]) -> Out {
        run(Command::new(self.bin_dir.join(tool)).args(args))
    }

    /// Runs a shell script here, with the zab binaries first in PATH and
    /// `$CFG` set to the lab's ssh config: for pipelines such as
    /// `zab-select --ssh-source zfs-lab --ssh-config "$CFG" B | zab-snap B --ssh-config "$CFG"`.
    pub fn local_sh(&self, script: &str) -> Out {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin_dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(dirs).unwrap_or(path);
        run(Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .env("CFG", &self.ssh_config))
    }

    /// Runs any program here (not a zab tool).
    pub fn here(&self, program: &str, args: &[&str]) -> Out {
        run(Command::new(program).args(args))
    }

    /// Writes `kib` KiB of random data into a new file of a mounted
    /// filesystem, then syncs its pool, so that `written` counts it.
    pub fn fill(&self, ds: &str, kib: u32) {
        self.sh(&format!(
            "set -e; d={d}; mp=$(zfs get -H -o value mountpoint $d); \
             dd if=/dev/urandom of=\"$mp/f-$(date +%s%N)\" bs=1024 count={kib} status=none; \
             zpool sync {pool}",
            d = quote_argv(&[ds]),
            pool = quote_argv(&[ds.split('/').next().unwrap_or(ds)])
        ));
    }

    /// (name after `@`, guid) of `ds`'s snapshots, oldest first.
    pub fn snaps(&self, ds: &str) -> Vec<(String, String)> {
        self.sh(&format!(
            "zfs list -H -t snapshot -o name,guid -s createtxg -d 1 {}",
            quote_argv(&[ds])
        ))
        .lines()
        .filter_map(|l| {
            let (n, g) = l.split_once('\t')?;
            Some((n.split_once('@')?.1.to_string(), g.to_string()))
        })
        .collect()
    }

    /// An encrypted dataset `zab-a/NAME/enc` selected for backup NAME (its
    /// passphrase in /root/NAME.key), and the target path `zab-t/NAME`:
    /// (key file, dataset, target path).
    pub fn encrypted_source(&self, ns: &Ns) -> (String, String, String) {
        let key = format!("/root/{}.key", ns.name);
        let root = ns.ds("zab-a", "");
        let enc = ns.ds("zab-a", "enc");
        let tp = ns.ds("zab-t", "");
        self.sh(&format!(
            "set -e; printf 'zab lab passphrase' > {key}; zfs create -p {root}; \
             zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} \
             -o {}=true {enc}; zfs create -p {tp}",
            ns.prop()
        ));
        (key, enc, tp)
    }

    /// The names (after `@`) of `ds`'s snapshots, oldest first.
    pub fn snapshot_names(&self, ds: &str) -> Vec<String> {
        self.snaps(ds).into_iter().map(|s| s.0).collect()
    }

    /// One property's value.
    pub fn prop(&self, ds: &str, p: &str) -> String {
        self.sh(&format!("zfs get -H -o value {p} {}", quote_argv(&[ds])))
            .trim()
            .to_string()
    }

    /// The checksums of the files in a snapshot (mounting its filesystem
    /// if needed), by path relative to the snapshot, children excluded.
    /// Reading a snapshot never changes its filesystem (reading the live
    /// files would, by their access times, and the next receive would
    /// refuse it as modified). An empty listing is read again twice, a
    /// second apart: under load the snapshot's automount has been seen to
    /// show an empty directory once (a full run of 2026-12-03, on a
    /// snapshot whose guid matched its non-empty source's).
    pub fn sums(&self, snapshot: &str) -> String {
        let (ds, name) = snapshot.split_once('@').unwrap_or((snapshot, ""));
        self.sh(&format!(
            "set -e; d={d}; [ \"$(zfs get -H -o value mounted $d)\" = yes ] || zfs mount $d; \
             cd \"$(zfs get -H -o value mountpoint $d)/.zfs/snapshot/\"{n}; \
             for try in 1 2 3; do \
               out=$(find . -xdev -type f | sort | xargs -r sha256sum); \
               if [ -n \"$out\" ] || [ $try = 3 ]; then break; fi; sleep 1; cd /; cd - >/dev/null; \
             done; \
             if [ -n \"$out\" ]; then printf '%s\\n' \"$out\"; fi",
            d = quote_argv(&[ds]),
            n = quote_argv(&[name])
        ))
    }

    /// Asserts that the newest snapshot of `tgt` is a snapshot of `src`
    /// (same name and guid) with the same files.
    #[track_caller]
    pub fn same_files(&self, src: &str, tgt: &str) {
        let (newest, guid) = self
            .snaps(tgt)
            .pop()
            .unwrap_or_else(|| panic!("{tgt} has no snapshot"));
        assert!(
            self.snaps(src).contains(&(newest.clone(), guid)),
            "{tgt}@{newest} is a snapshot of {src}"
        );
        let a = self.sums(&format!("{src}@{newest}"));
        let b = self.sums(&format!("{tgt}@{newest}"));
        assert!(!a.is_empty(), "{src}@{newest} has files");
        assert_eq!(a, b, "files of {tgt}@{newest} against {src}");
    }

    /// Once per suite: copy the binaries and the wrapper in, create fresh
    /// pools.
    pub fn setup(&self) -> Result<(), String> {
        let t = Instant::now();
        let mut files = Vec::new();
        for tool in TOOLS {
            let p = self.bin_dir.join(tool);
            if !p.is_file() {
                return Err(format!(
                    "{} is missing: run cargo build --release first (or set ZAB_BIN_DIR)",
                    p.display()
                ));
            }
            files.push(p);
        }
        // Copied beside, then renamed over the old ones: a binary that
        // another suite is running (ETXTBSY) cannot be written in place,
        // but it can be replaced.
        let incoming = format!("/usr/local/bin/.zab-incoming-{}", std::process::id());
        let out = self.ssh(&format!("rm -rf {incoming} && mkdir -m 700 {incoming}"));
        if out.code != 0 {
            return Err(format!(
                "preparing {incoming} in the lab failed: {}",
                out.stderr
            ));
        }
        let out = run(Command::new("scp")
            .arg("-q")
            .arg("-F")
            .arg(&self.ssh_config)
            .args(&files)
            .arg(format!("{ALIAS}:{incoming}/")));
        let moved = self.ssh(&format!(
            "mv -f {incoming}/* /usr/local/bin/ && rmdir {incoming}"
        ));
        if out.code != 0 || moved.code != 0 {
            let _ = self.ssh(&format!("rm -rf {incoming}"));
            return Err(format!(
                "copying the binaries into the lab failed: {}{}",
                out.stderr, moved.stderr
            ));
        }
        let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zfs-autobackup");
        let out = run(Command::new("scp")
            .arg("-q")
            .arg("-F")
            .arg(&self.ssh_config)
            .arg(&wrapper)
            .arg(format!("{ALIAS}:/usr/local/bin/{WRAPPER}")));
        if out.code != 0 {
            return Err(format!(
                "copying scripts/zfs-autobackup into the lab failed: {}",
                out.stderr
            ));
        }
        let mut script = String::from("set -e\n");
        for (pool, _) in POOLS {
            script += &format!("zpool destroy -f {pool} 2>/dev/null || true\n");
        }
        for (pool, disk) in POOLS {
            script += &format!("zpool create -f -O mountpoint=/{pool} {pool} {disk}\n");
        }
        let out = self.ssh(&script);
        if out.code != 0 {
            return Err(format!("creating the pools failed: {}", out.stderr));
        }
        eprintln!(
            "lab ready in {:.1}s (binaries and {WRAPPER} copied, fresh pools {:?})",
            t.elapsed().as_secs_f64(),
            POOLS.iter().map(|p| p.0).collect::<Vec<_>>()
        );
        Ok(())
    }
}

/// A test's own corner of the lab: `zab-a/NAME`, `zab-b/NAME`, `zab-t/NAME`,
/// and the backup name `NAME`, whose property `autobackup:NAME` no other
/// test uses.
#[derive(Debug, Clone)]
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(test: &str) -> Ns {
        Ns {
            name: test.replace('_', "-"),
        }
    }

    /// The backup name.
    pub fn backup(&self) -> &str {
        &self.name
    }

    /// The selection property.
    pub fn prop(&self) -> String {
        format!("autobackup:{}", self.name)
    }

    /// `POOL/NAME/rest` (rest may be empty).
    pub fn ds(&self, pool: &str, rest: &str) -> String {
        if rest.is_empty() {
            format!("{pool}/{}", self.name)
        } else {
            format!("{pool}/{}/{rest}", self.name)
        }
    }
}

impl Lab {
    /// The test's datasets on zab-a and zab-t destroyed, then `setup` (a
    /// shell script, `set -e`) run in the lab.
    pub fn fresh(&self, ns: &Ns, setup: &str) {
        self.sh(&format!(
            "set -e; zfs destroy -r {} 2>/dev/null || true; zfs destroy -r {} 2>/dev/null || true; {setup}",
            ns.ds("zab-a", ""),
            ns.ds("zab-t", "")
        ));
    }

    /// [`Lab::fresh`], then each of `sources` created, selected for the
    /// test's backup, and an empty `zab-t/NAME` to send or restore into.
    pub fn fresh_sources(&self, ns: &Ns, sources: &[&str]) {
        let create: Vec<String> = sources
            .iter()
            .map(|d| format!("zfs create -p -o autobackup:{}=true {d}; ", ns.backup()))
            .collect();
        self.fresh(
            ns,
            &format!("{}zfs create {}", create.concat(), ns.ds("zab-t", "")),
        );
    }

    /// zab-restore here (with `env`, a shell prefix), receiving in the lab.
    pub fn restore(&self, env: &str, args: &[&str]) -> Out {
        self.local_sh(&format!(
            "{env}zab-restore --ssh-target {ALIAS} --ssh-config \"$CFG\" {}",
            quote_argv(args)
        ))
    }
}

/// Field `field` of each object of a record (a zab-restore `restore`
/// record, a zab-store `chain` record), in order.
pub fn objects(rec: &Value, field: &str) -> Vec<String> {
    rec["objects"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|o| o[field].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Out {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses a JSON line (for tests that look at raw fields).
pub fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line}: {e}"))
}
