//! What TARGET is read through: a path as it is, or a snapshot's content.
//! A filesystem snapshot: its `.zfs/snapshot/NAME` directory when the
//! filesystem is mounted, else a temporary read-only mount in the private
//! runtime directory (never in /tmp). A volume snapshot: the device of a
//! temporary read-only clone. What was made is registered in one place
//! ([`PENDING`]) and removed once, by whoever comes first: the run when it
//! ends ([`Prepared::cleanup`], also on drop, so after any error), or the
//! signal handler ([`cleanup_pending`]) when the run is stuck (a write to a
//! reader that does not read).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::zfs::{self, check as args, DatasetType};
use zab_core::Host;

/// What was made to read a snapshot, to remove afterwards.
#[derive(Debug)]
enum Made {
    /// A read-only mount and its directory.
    Mount(PathBuf),
    /// A read-only clone of a volume snapshot; `created` once `zfs clone`
    /// succeeded (before, it is destroyed only if it exists).
    Clone { name: String, created: bool },
}

/// What was made and is not removed yet, with what removes it.
#[derive(Debug)]
struct Pending {
    made: Made,
    host: Host,
    log: Log,
}

/// The one registry of what was made (a run prepares one target).
static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

/// Registers (replaces) what was made.
fn register(made: Made, host: &Host, log: Log) {
    let pending = Pending {
        made,
        host: host.clone(),
        log,
    };
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = Some(pending);
}

/// Removes what was made, if it was not removed yet. Returns whether there
/// was something (for the signal handler).
pub fn cleanup_pending() -> (bool, Result<(), Error>) {
    let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
    match pending {
        None => (false, Ok(())),
        Some(p) => (true, p.remove()),
    }
}

/// TARGET, ready to be read at `path`; what was made to read it is removed
/// by [`Prepared::cleanup`] or on drop.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
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
    // Made first: an error below drops it, which removes what was made.
    let mut prepared = Prepared {
        path: PathBuf::from(target),
    };
    let Some(snapshot) = snapshot else {
        return Ok(prepared);
    };
    let (dataset, _) = snapshot
        .split_once('@')
        .ok_or_else(|| Error::Usage(format!("{snapshot} is not a snapshot")))?;
    let rows = zfs::query(host, &args::snapshot_props_args(snapshot), zfs::parse_get)?;
    let prop = |p: &str| {
        rows.iter()
            .find(|r| r.name == dataset && r.property == p)
            .map(|r| r.value.as_str())
    };
    prepared.path = match prop("type").and_then(DatasetType::parse) {
        Some(DatasetType::Filesystem) => {
            let mounted = prop("mounted") == Some("yes");
            let mountpoint = prop("mountpoint").filter(|m| mounted && m.starts_with('/'));
            filesystem(snapshot, mountpoint, host, log)?
        }
        Some(DatasetType::Volume) => volume(snapshot, host, log, stop)?,
        _ => {
            return Err(Error::Usage(format!(
                "{snapshot} is not a snapshot of a filesystem or volume"
            )))
        }
    };
    Ok(prepared)
}

/// Where a filesystem snapshot is read: its `.zfs/snapshot` directory
/// under `mountpoint` (its filesystem's, when mounted), else a temporary
/// read-only mount.
fn filesystem(
    snapshot: &str,
    mountpoint: Option<&str>,
    host: &Host,
    log: Log,
) -> Result<PathBuf, Error> {
    if let (Some(mountpoint), Some((_, name))) = (mountpoint, snapshot.split_once('@')) {
        let dir = Path::new(mountpoint).join(".zfs/snapshot").join(name);
        // Looking at it mounts it (ZFS's automount), when visible.
        if dir.is_dir() {
            log.verbose(format!("Reading {snapshot} through {}", dir.display()));
            return Ok(dir);
        }
    }
    let dir = zab_core::private::runtime_dir()?.join(format!("check-{}", std::process::id()));
    std::fs::create_dir(&dir)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
    let dir_s = dir.to_string_lossy().into_owned();
    if let Err(e) = host.output(&args::mount_args(snapshot, &dir_s)) {
        let _ = std::fs::remove_dir(&dir);
        return Err(e);
    }
    log.verbose(format!("Mounted {snapshot} read-only on {dir_s}"));
    register(Made::Mount(dir.clone()), host, log);
    Ok(dir)
}

/// Where a volume snapshot is read: the device node of a temporary
/// read-only clone, once it appears.
fn volume(snapshot: &str, host: &Host, log: Log, stop: &AtomicBool) -> Result<PathBuf, Error> {
    let clone = args::clone_name(snapshot, std::process::id());
    let made = |created| Made::Clone {
        name: clone.clone(),
        created,
    };
    register(made(false), host, log);
    host.output(&args::clone_args(snapshot, &clone))?;
    register(made(true), host, log);
    log.verbose(format!("Cloned {snapshot} read-only as {clone}"));
    // udev makes /dev/zvol/NAME a link to the kernel's /dev/zdN, and
    // may make it again while it probes: read the node itself.
    let link = PathBuf::from(args::zvol_device(&clone));
    let start = Instant::now();
    let device = loop {
        if let Ok(node) = std::fs::canonicalize(&link) {
            if std::fs::File::open(&node).is_ok() {
                break node;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Interrupted("stopped by a signal".into()));
        }
        if start.elapsed() > DEVICE_WAIT {
            return Err(Error::Io(format!(
                "{} did not appear within {} s (is the encryption key loaded?)",
                link.display(),
                DEVICE_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    log.verbose(format!("Reading {clone} through {}", device.display()));
    Ok(device)
}

impl Prepared {
    /// Removes what was made, once.
    pub fn cleanup(&mut self) -> Result<(), Error> {
        cleanup_pending().1
    }
}

impl Pending {
    /// Unmounts and removes the directory, or destroys the clone. Retries
    /// a few times while the kernel still holds it (udev probes new
    /// devices).
    fn remove(self) -> Result<(), Error> {
        match self.made {
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
        if let (_, Err(e)) = cleanup_pending() {
            eprintln!("{}: {e}", crate::cli::TOOL);
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
