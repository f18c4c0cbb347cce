//! Directories only the invoking user can write: where zab keeps its ssh
//! control sockets and its run locks ([`runtime_dir`]), and what outlives
//! a reboot ([`state_dir`]).
//!
//! Nothing of ours goes in a world-writable place: a socket or lock in
//! `/tmp` can be made in advance by any local user (an ssh mux client
//! connects to whatever socket sits at its ControlPath, and hands it root's
//! commands and streams). The directory is [`runtime_dir`]: `/run/zab` for
//! root, `$XDG_RUNTIME_DIR/zab` or else `$HOME/.cache/zab` for other users.
//! It is created with mode 0700 when missing, then checked without
//! following symlinks: a real directory, owned by the effective user, with
//! no group or other permission bits. Anything else is refused, never
//! repaired or used anyway.

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Error;

/// The runtime directory for a user: `/run/zab` for root, else
/// `$XDG_RUNTIME_DIR/zab` when that is set (and absolute), else
/// `$HOME/.cache/zab`.
pub fn runtime_dir_for(
    euid: u32,
    xdg_runtime_dir: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, Error> {
    user_dir(
        euid,
        ("/run/zab", "XDG_RUNTIME_DIR", xdg_runtime_dir),
        (home, &[".cache", "zab"]),
        "no private directory for ssh sockets and locks",
    )
}

/// Root's `root_dir`, else `$XDG/zab` when that variable is set to an
/// absolute path, else `$HOME/` + `below`: the rule both directories follow
/// (a relative value is not trusted: it would follow the cwd).
fn user_dir(
    euid: u32,
    (root_dir, xdg_name, xdg): (&str, &str, Option<OsString>),
    (home, below): (Option<OsString>, &[&str]),
    what: &str,
) -> Result<PathBuf, Error> {
    if euid == 0 {
        return Ok(PathBuf::from(root_dir));
    }
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute(xdg) {
        return Ok(xdg.join("zab"));
    }
    match absolute(home) {
        Some(home) => Ok(below.iter().fold(home, |p, part| p.join(part))),
        None => Err(Error::Io(format!(
            "{what}: neither {xdg_name} nor HOME is set to an absolute path"
        ))),
    }
}

/// Makes sure `dir` is private to `euid`: creates it with mode 0700 when it
/// is missing (its parent must exist), then checks, without following a
/// symlink, that it is a directory owned by `euid` with no group or other
/// permission bits. Refuses anything else with one line naming the path,
/// what it is, and what it must be.
pub fn ensure_private_dir(dir: &Path, euid: u32) -> Result<(), Error> {
    // create_dir never follows a symlink at the path itself: it fails with
    // AlreadyExists, and the check below refuses the symlink.
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::Io(format!(
                "cannot create the private directory {}: {e}",
                dir.display()
            )))
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        Error::Io(format!(
            "cannot check the private directory {}: {e}",
            dir.display()
        ))
    })?;
    let kind = if meta.file_type().is_symlink() {
        "a symlink"
    } else if !meta.is_dir() {
        "not a directory"
    } else {
        "a directory"
    };
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != euid || mode & 0o077 != 0 {
        return Err(Error::Io(format!(
            "unsafe private directory {}: {kind} owned by uid {} with mode {mode:04o}; \
             it must be a directory owned by uid {euid} with mode 0700 (no group or other access)",
            dir.display(),
            meta.uid(),
        )));
    }
    Ok(())
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// This process's private directory ([`runtime_dir_for`] of its effective
/// user and environment), created and checked by [`ensure_private_dir`]
/// once per process: every later call returns the first answer.
pub fn runtime_dir() -> Result<PathBuf, Error> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let euid = euid();
        let dir = runtime_dir_for(
            euid,
            std::env::var_os("XDG_RUNTIME_DIR"),
            std::env::var_os("HOME"),
        )
        .map_err(|e| e.to_string())?;
        if dir.as_os_str().len() > MAX_DIR_LEN {
            return Err(format!(
                "the private directory {} is too long for ssh control sockets \
                 (at most {MAX_DIR_LEN} bytes); set XDG_RUNTIME_DIR to a shorter path, \
                 or use --ssh-no-share",
                dir.display()
            ));
        }
        // `$HOME/.cache` may not exist yet; `/run` and XDG_RUNTIME_DIR do.
        if let Some(parent) = dir.parent().filter(|p| p.ends_with(".cache")) {
            if std::fs::symlink_metadata(parent).is_err() {
                DirBuilder::new()
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
        ensure_private_dir(&dir, euid).map_err(|e| e.to_string())?;
        Ok(dir)
    })
    .clone()
    .map_err(Error::Io)
}

/// The persistent state directory for a user: `/var/lib/zab` for root,
/// else `$XDG_STATE_HOME/zab` when that is set (and absolute), else
/// `$HOME/.local/state/zab`. What outlives a reboot goes here (the quiet-run
/// cache, the time of the last success); locks and sockets stay in
/// [`runtime_dir_for`].
pub fn state_dir_for(
    euid: u32,
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, Error> {
    user_dir(
        euid,
        ("/var/lib/zab", "XDG_STATE_HOME", xdg_state_home),
        (home, &[".local", "state", "zab"]),
        "no private state directory",
    )
}

/// This process's state directory ([`state_dir_for`] of its effective user
/// and environment), created (with its missing parents, for a user's
/// `~/.local/state`) and checked by [`ensure_private_dir`] once per process.
pub fn state_dir() -> Result<PathBuf, Error> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let euid = euid();
        let dir = state_dir_for(
            euid,
            std::env::var_os("XDG_STATE_HOME"),
            std::env::var_os("HOME"),
        )
        .map_err(|e| e.to_string())?;
        if let Some(parent) = dir.parent() {
            if std::fs::symlink_metadata(parent).is_err() {
                DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
        ensure_private_dir(&dir, euid).map_err(|e| e.to_string())?;
        Ok(dir)
    })
    .clone()
    .map_err(Error::Io)
}

/// The longest private directory that leaves room for an ssh control
/// socket in it: unix socket paths hold 104 bytes on the BSDs (108 on
/// Linux), and ssh binds `DIR/ssh-%C` (`%C` is 40 hex digits) plus a
/// temporary suffix of 17 bytes before renaming it: 104 - 1 - 62 = 41.
pub const MAX_DIR_LEN: usize = 41;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(test: &str) -> PathBuf {
        crate::scratch("private", test)
    }

    /// Where each directory is for root, for a user with the XDG variable
    /// set, and without it (a relative value is not trusted: it would
    /// follow the cwd).
    #[test]
    fn dirs_for_root_else_xdg_else_home() {
        type DirFor = fn(u32, Option<OsString>, Option<OsString>) -> Result<PathBuf, Error>;
        let cases: [(DirFor, &str, &str, &str); 2] = [
            (runtime_dir_for, "/run/zab", "/x/zab", "/home/a/.cache/zab"),
            (
                state_dir_for,
                "/var/lib/zab",
                "/x/zab",
                "/home/a/.local/state/zab",
            ),
        ];
        let some = |s: &str| Some(OsString::from(s));
        for (dir_for, root, xdg, home) in cases {
            let at = |euid, x: Option<OsString>, h: Option<OsString>| dir_for(euid, x, h).unwrap();
            assert_eq!(at(0, some("/x"), some("/root")), Path::new(root));
            assert_eq!(at(1000, some("/x"), some("/home/a")), Path::new(xdg));
            assert_eq!(at(1000, None, some("/home/a")), Path::new(home));
            assert_eq!(at(1000, some("x"), some("/home/a")), Path::new(home));
            assert!(dir_for(1000, None, None).is_err());
            assert!(dir_for(1000, None, some("")).is_err());
        }
    }

    #[test]
    fn a_fresh_dir_is_created_0700() {
        let d = scratch("fresh").join("zab");
        ensure_private_dir(&d, euid()).unwrap();
        let m = std::fs::symlink_metadata(&d).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o700);
        // And accepted again as it is.
        ensure_private_dir(&d, euid()).unwrap();
    }

    #[test]
    fn group_or_world_access_is_refused() {
        for mode in [0o755, 0o777, 0o710, 0o701] {
            let d = scratch(&format!("mode{mode:o}")).join("zab");
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = ensure_private_dir(&d, euid()).unwrap_err().to_string();
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains(&d.display().to_string()), "{err}");
            assert!(err.contains("mode 0700"), "{err}");
            // Never repaired.
            let m = std::fs::symlink_metadata(&d).unwrap();
            assert_eq!(m.mode() & 0o7777, mode);
        }
    }

    #[test]
    fn a_symlink_is_refused_even_to_a_good_dir() {
        let base = scratch("symlink");
        let real = base.join("real");
        ensure_private_dir(&real, euid()).unwrap();
        let link = base.join("zab");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ensure_private_dir(&link, euid()).unwrap_err().to_string();
        assert!(err.contains("a symlink"), "{err}");
    }

    #[test]
    fn a_file_is_refused() {
        let f = scratch("file").join("zab");
        std::fs::write(&f, "").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = ensure_private_dir(&f, euid()).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn another_owner_is_refused() {
        let d = scratch("owner").join("zab");
        ensure_private_dir(&d, euid()).unwrap();
        if euid() == 0 {
            // Root can give it away: then it is nobody's, not ours.
            std::os::unix::fs::lchown(&d, Some(65534), Some(65534)).unwrap();
            let err = ensure_private_dir(&d, 0).unwrap_err().to_string();
            assert!(err.contains("owned by uid 65534"), "{err}");
            assert!(err.contains("owned by uid 0 with mode 0700"), "{err}");
        }
        // Any user: the directory is not that of another uid.
        let other = euid().wrapping_add(1);
        let err = ensure_private_dir(&d, other).unwrap_err().to_string();
        assert!(err.contains(&format!("owned by uid {other}")), "{err}");
    }
}
