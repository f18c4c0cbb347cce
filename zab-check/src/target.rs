//! What TARGET is read through: a path as it is, or a snapshot's content.
//! A filesystem snapshot: its `.zfs/snapshot/NAME` directory when the
//! filesystem is mounted, else a temporary read-only mount in the private
//! runtime directory (never in /tmp). A volume snapshot: the device of a
//! temporary read-only clone. [`Prepared`] removes what it made when it is
//! dropped, so an error or Ctrl-C (which makes the run return) never
//! leaves it behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::zfs::{self, check as args, DatasetType};
use zab_core::Host;

/// What was made to read a snapshot, to remove afterwards.
#[derive(Debug)]
enum Made {
    Nothing,
    /// A read-only mount and its directory.
    Mount(PathBuf),
    /// A read-only clone of a volume snapshot; `created` once `zfs clone`
    /// succeeded (before, it is destroyed only if it exists).
    Clone {
        name: String,
        created: bool,
    },
}

/// TARGET, ready to be read at `path`.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    made: Made,
    host: Host,
    log: Log,
}

/// How long a volume clone's device node may take to appear.
const DEVICE_WAIT: Duration = Duration::from_secs(10);

/// Prepares `target` (a path, or `snapshot` when it names one).
pub fn prepare(
    target: &str,
    snapshot: Option<&str>,
    host: &Host,
    log: Log,
    stop: &AtomicBool,
) -> Result<Prepared, Error> {
    let mut prepared = Prepared {
        path: PathBuf::from(target),
        made: Made::Nothing,
        host: host.clone(),
        log,
    };
    let Some(snapshot) = snapshot else {
        return Ok(prepared);
    };
    let (dataset, name) = snapshot
        .split_once('@')
        .ok_or_else(|| Error::Usage(format!("{snapshot} is not a snapshot")))?;
    let rows = zfs::query(host, &args::snapshot_props_args(snapshot), zfs::parse_get)?;
    let prop = |p: &str| {
        rows.iter()
            .find(|r| r.name == dataset && r.property == p)
            .map(|r| r.value.as_str())
    };
    match prop("type").and_then(DatasetType::parse) {
        Some(DatasetType::Filesystem) => {
            let mountpoint = prop("mountpoint").unwrap_or("-");
            if prop("mounted") == Some("yes") && mountpoint.starts_with('/') {
                let dir = Path::new(mountpoint).join(".zfs/snapshot").join(name);
                // Looking at it mounts it (ZFS's automount), when visible.
                if dir.is_dir() {
                    log.verbose(format!("Reading {snapshot} through {}", dir.display()));
                    prepared.path = dir;
                    return Ok(prepared);
                }
            }
            let dir =
                zab_core::private::runtime_dir()?.join(format!("check-{}", std::process::id()));
            std::fs::create_dir(&dir)
                .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
            let dir_s = dir.to_string_lossy().into_owned();
            if let Err(e) = host.output(&args::mount_args(snapshot, &dir_s)) {
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
            log.verbose(format!("Mounted {snapshot} read-only on {dir_s}"));
            prepared.made = Made::Mount(dir.clone());
            prepared.path = dir;
            Ok(prepared)
        }
        Some(DatasetType::Volume) => {
            let clone = args::clone_name(snapshot, std::process::id());
            prepared.made = Made::Clone {
                name: clone.clone(),
                created: false,
            };
            host.output(&args::clone_args(snapshot, &clone))?;
            prepared.made = Made::Clone {
                name: clone.clone(),
                created: true,
            };
            log.verbose(format!("Cloned {snapshot} read-only as {clone}"));
            let device = PathBuf::from(args::zvol_device(&clone));
            let start = Instant::now();
            while !device.exists() {
                if stop.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted("stopped by a signal".into()));
                }
                if start.elapsed() > DEVICE_WAIT {
                    return Err(Error::Io(format!(
                        "{} did not appear within {} s (is the encryption key loaded?)",
                        device.display(),
                        DEVICE_WAIT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            prepared.path = device;
            Ok(prepared)
        }
        _ => Err(Error::Usage(format!(
            "{snapshot} is not a snapshot of a filesystem or volume"
        ))),
    }
}

impl Prepared {
    /// Removes what was made (idempotent): unmounts and removes the
    /// directory, or destroys the clone. Retries a few times while the
    /// kernel still holds it (udev probes new devices).
    pub fn cleanup(&mut self) -> Result<(), Error> {
        let made = std::mem::replace(&mut self.made, Made::Nothing);
        match made {
            Made::Nothing => Ok(()),
            Made::Mount(dir) => {
                let dir_s = dir.to_string_lossy().into_owned();
                retry(|| self.host.output(&args::umount_args(&dir_s)).map(drop))?;
                std::fs::remove_dir(&dir)
                    .map_err(|e| Error::Io(format!("cannot remove {dir_s}: {e}")))?;
                self.log.verbose(format!("Unmounted {dir_s}"));
                Ok(())
            }
            Made::Clone { name, created } => {
                let destroy = zfs::destroy::dataset_args(&name);
                if !created {
                    // `zfs clone` failed or was interrupted: it may exist.
                    let _ = self.host.output(&destroy);
                    return Ok(());
                }
                retry(|| self.host.output(&destroy).map(drop))?;
                self.log
                    .verbose(format!("Destroyed the temporary clone {name}"));
                Ok(())
            }
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            self.log.error(e.to_string());
        }
    }
}

/// Runs `f` up to 10 times, half a second apart, until it succeeds.
fn retry(mut f: impl FnMut() -> Result<(), Error>) -> Result<(), Error> {
    let mut last = Ok(());
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        last = f();
        if last.is_ok() {
            break;
        }
    }
    last
}
