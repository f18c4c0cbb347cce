//! The run lock: one run of a backup to a target at a time.
//!
//! A slow run that overlaps the next cron run would transfer and destroy
//! twice over. zab-send and zab-thin therefore hold a lock per backup name
//! and target while they work, an exclusive `flock(2)` on
//! `<runtime dir>/<KEY>.lock` ([`crate::private::runtime_dir`]: `/run/zab`
//! for root), where KEY ([`key`]) is
//!
//! * `NAME@HOST:PATH` for a run with a TARGET-PATH: HOST is the target's ssh
//!   destination as given (`--ssh-target`), or `local`; PATH is the
//!   TARGET-PATH with every `/` replaced by `%`
//!   (`offsite1@root@backup1:tank%host1`);
//! * `NAME` for a run without one (source-only thinning).
//!
//! A wrapper that runs several stages takes the same lock itself for the
//! whole run (`flock -n 9`) and exports `ZAB_LOCK_FD=9`: a tool then takes
//! no lock of its own, but checks that this fd is open on the same file and
//! that it holds (or can take) its lock; anything else is an error, never
//! ignored. The lock goes when the process ends, also when it is killed.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use crate::error::Error;

/// The environment variable that hands a tool the lock its caller holds.
pub const LOCK_FD_VAR: &str = "ZAB_LOCK_FD";

/// How often a waiting tool tries the lock again.
const POLL: Duration = Duration::from_millis(100);

/// The lock's key: `NAME@HOST:PATH` with a target (`target` = the target's
/// ssh destination or None for this machine, and the TARGET-PATH), else
/// `NAME`. Refuses what would not make one plain file name.
pub fn key(backup: &str, target: Option<(Option<&str>, &str)>) -> Result<String, Error> {
    let key = match target {
        None => backup.to_string(),
        Some((host, path)) => format!(
            "{backup}@{}:{}",
            host.unwrap_or("local"),
            path.replace('/', "%")
        ),
    };
    if backup.is_empty() || key.contains(['/', '\0']) || key.starts_with('.') {
        return Err(Error::Usage(format!(
            "cannot make a lock file name of backup {backup:?}"
        )));
    }
    Ok(key)
}

/// The lock file of `key` in `dir`: `DIR/KEY.lock`.
pub fn lock_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.lock"))
}

/// What a lock is for, in messages: `backup NAME to HOST:PATH`.
fn what(backup: &str, target: Option<(Option<&str>, &str)>) -> String {
    match target {
        None => format!("backup {backup}"),
        Some((host, path)) => format!("backup {backup} to {}:{path}", host.unwrap_or("local")),
    }
}

/// A run lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    _held: Held,
}

#[derive(Debug)]
enum Held {
    /// Our own open file, locked; unlocked when dropped (kept only for that).
    #[allow(dead_code)]
    Own(Flock<File>),
    /// The caller's descriptor (ZAB_LOCK_FD), locked by the caller or us;
    /// it stays locked until the last process that has it ends.
    Inherited,
}

impl RunLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the run lock of `backup` to `target` in this process's runtime
/// directory, or checks the one `ZAB_LOCK_FD` names. When another run holds
/// it, tries again for up to `wait`, then fails with [`Error::Locked`].
pub fn acquire(
    backup: &str,
    target: Option<(Option<&str>, &str)>,
    wait: Duration,
) -> Result<RunLock, Error> {
    let dir = crate::private::runtime_dir()?;
    let inherited = std::env::var(LOCK_FD_VAR).ok();
    acquire_in(&dir, backup, target, inherited.as_deref(), wait)
}

/// [`acquire`] in `dir`, with the value of `ZAB_LOCK_FD` (if any) given.
pub fn acquire_in(
    dir: &Path,
    backup: &str,
    target: Option<(Option<&str>, &str)>,
    inherited: Option<&str>,
    wait: Duration,
) -> Result<RunLock, Error> {
    let path = lock_path(dir, &key(backup, target)?);
    let busy = || {
        Error::Locked(format!(
            "another run of {} holds the lock {}",
            what(backup, target),
            path.display()
        ))
    };
    let deadline = Instant::now() + wait;
    let held = match inherited {
        Some(fd) => {
            check_inherited(fd, &path)?;
            let fd: i32 = fd.parse().map_err(|_| not_ours(fd, &path))?;
            loop {
                // The caller's open file description: flock(2) on it succeeds
                // when the caller holds the lock. nix's `flock` on a raw fd
                // is deprecated for Flock, which would need to own the fd.
                #[allow(deprecated)]
                match nix::fcntl::flock(fd, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                    Ok(()) => break Held::Inherited,
                    Err(Errno::EWOULDBLOCK) if Instant::now() < deadline => {
                        std::thread::sleep(POLL)
                    }
                    Err(Errno::EWOULDBLOCK) => return Err(busy()),
                    Err(e) => {
                        return Err(Error::Usage(format!(
                            "{LOCK_FD_VAR}={fd} is not the lock of this {} ({}): {e}",
                            what(backup, target),
                            path.display()
                        )))
                    }
                }
            }
        }
        None => {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
                .open(&path)
                .map_err(|e| Error::Io(format!("cannot open the lock {}: {e}", path.display())))?;
            loop {
                match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                    Ok(l) => break Held::Own(l),
                    Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                        file = f;
                        std::thread::sleep(POLL);
                    }
                    Err((_, Errno::EWOULDBLOCK)) => return Err(busy()),
                    Err((_, e)) => {
                        return Err(Error::Io(format!("cannot lock {}: {e}", path.display())))
                    }
                }
            }
        }
    };
    Ok(RunLock { path, _held: held })
}

fn not_ours(fd: &str, path: &Path) -> Error {
    Error::Usage(format!(
        "{LOCK_FD_VAR}={fd} is not the lock of this backup ({})",
        path.display()
    ))
}

/// Checks that descriptor `fd` (a decimal number) is open on the file at
/// `path`: same device and inode.
fn check_inherited(fd: &str, path: &Path) -> Result<(), Error> {
    let n: u32 = fd.parse().map_err(|_| not_ours(fd, path))?;
    let open = std::fs::metadata(format!("/dev/fd/{n}")).map_err(|_| not_ours(fd, path))?;
    let file = std::fs::symlink_metadata(path).map_err(|_| not_ours(fd, path))?;
    if !file.is_file() || (open.dev(), open.ino()) != (file.dev(), file.ino()) {
        return Err(not_ours(fd, path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A fresh directory for one test, under the build's own target dir.
    fn scratch(test: &str) -> PathBuf {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/zab-core-tests/lock")
            .join(test);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_is_name_at_host_colon_path_with_slashes_as_percent() {
        assert_eq!(
            key("offsite1", Some((Some("root@backup1"), "tank/host1"))).unwrap(),
            "offsite1@root@backup1:tank%host1"
        );
        assert_eq!(
            key("offsite1", Some((None, "backup/nas/x"))).unwrap(),
            "offsite1@local:backup%nas%x"
        );
        assert_eq!(key("offsite1", None).unwrap(), "offsite1");
        assert_eq!(
            lock_path(Path::new("/run/zab"), "offsite1@local:backup%nas"),
            Path::new("/run/zab/offsite1@local:backup%nas.lock")
        );
        // Never a path out of the directory.
        assert!(key("a/../../etc", None).is_err());
        assert!(key("..", Some((None, "x"))).is_err());
        assert!(key("", None).is_err());
        assert!(key("b", Some((Some("h/x"), "t"))).is_err());
    }

    #[test]
    fn a_second_run_is_refused_with_exit_75_until_the_first_ends() {
        let dir = scratch("second");
        let t = Some((Some("root@b1"), "tank/h"));
        let first = acquire_in(&dir, "b", t, None, Duration::ZERO).unwrap();
        assert_eq!(first.path(), dir.join("b@root@b1:tank%h.lock"));
        let mode = std::fs::metadata(first.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = acquire_in(&dir, "b", t, None, Duration::ZERO).unwrap_err();
        assert_eq!(err.exit().code(), 75);
        assert_eq!(
            err.to_string(),
            format!(
                "another run of backup b to root@b1:tank/h holds the lock {}",
                first.path().display()
            )
        );
        // Another target, or another backup, is another lock.
        acquire_in(&dir, "b", Some((None, "tank/h")), None, Duration::ZERO).unwrap();
        acquire_in(&dir, "c", t, None, Duration::ZERO).unwrap();
        drop(first);
        acquire_in(&dir, "b", t, None, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_waiting_run_gets_the_lock_when_the_stage_before_it_ends() {
        let dir = scratch("wait");
        let first = acquire_in(&dir, "b", None, None, Duration::ZERO).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        acquire_in(&dir, "b", None, None, Duration::from_secs(20)).unwrap();
        releaser.join().unwrap();
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_not_followed() {
        let dir = scratch("symlink");
        std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("b.lock")).unwrap();
        let err = acquire_in(&dir, "b", None, None, Duration::ZERO).unwrap_err();
        assert!(err.to_string().starts_with("cannot open the lock"), "{err}");
        assert!(!dir.join("elsewhere").exists());
    }

    #[test]
    fn the_callers_fd_is_used_when_it_is_this_lock() {
        let dir = scratch("inherited");
        let path = lock_path(&dir, "b@local:t");
        let caller = Flock::lock(
            File::create(&path).unwrap(),
            FlockArg::LockExclusiveNonblock,
        )
        .unwrap();
        let fd = caller.as_raw_fd().to_string();
        let held = acquire_in(&dir, "b", Some((None, "t")), Some(&fd), Duration::ZERO).unwrap();
        assert_eq!(held.path(), path);
        // It is really held: a run of its own is refused.
        let err = acquire_in(&dir, "b", Some((None, "t")), None, Duration::ZERO).unwrap_err();
        assert_eq!(err.exit().code(), 75);
    }

    #[test]
    fn a_wrong_fd_is_refused() {
        let dir = scratch("wrongfd");
        let path = lock_path(&dir, "b@local:t");
        std::fs::write(&path, "").unwrap();
        let other = File::create(dir.join("other.lock")).unwrap();
        let t = Some((None, "t"));
        let other_fd = other.as_raw_fd().to_string();
        for fd in [other_fd.as_str(), "987654", "x", "-1", ""] {
            let err = acquire_in(&dir, "b", t, Some(fd), Duration::ZERO).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "ZAB_LOCK_FD={fd} is not the lock of this backup ({})",
                    path.display()
                ),
            );
            assert_eq!(err.exit().code(), 2);
        }
        // The right file, but another run holds it: busy, not ours to take.
        let _theirs =
            Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        let mine = File::open(&path).unwrap();
        let fd = mine.as_raw_fd().to_string();
        let err = acquire_in(&dir, "b", t, Some(&fd), Duration::ZERO).unwrap_err();
        assert_eq!(err.exit().code(), 75);
    }
}
