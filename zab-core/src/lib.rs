//! zab-core: what every zab tool needs.
//!
//! * [`host`]: run commands locally or through the system `ssh`, quoted
//!   argument by argument, with `--debug` lines an admin can paste.
//! * [`zfs`]: `zfs` argv builders (always `-H -p`, explicit columns) and pure
//!   parsers of their output; [`zfs::replicate`] the verbs of replication.
//! * [`zpool`]: `zpool` argv builders.
//! * [`record`] and [`ndjson`]: the NDJSON records passed between tools
//!   (specified in `docs/records.md`), read with line numbers in errors.
//! * [`name`]: ZFS's dataset and snapshot name grammar; the TARGET-PATH check.
//! * [`naming`]: snapshot names, and which snapshots are ours.
//! * [`schedule`]: thinning schedules and the pure thinner.
//! * [`select`]: zfs-autobackup's selection rules (zab-select, and zab-thin's
//!   check before it treats a target dataset as missing).
//! * [`size`]: how large a memory buffer may be (zab-buffer, zab-send).
//! * [`duration`]: the one grammar of durations (zfs-autobackup's units).
//! * [`error`]: one error type and the one exit-code scheme.
//! * [`compress`]: the `--compress` types and their decompressors.
//! * [`cli`]: the flags every tool shares, and the parsing every `main` calls.
//! * [`progress`]: the progress meter of the byte streams and its lines,
//!   fitted to the terminal's width.
//! * [`screen`]: the progress lines at the bottom of a terminal, kept apart
//!   from the log lines printed while they are drawn.
//! * [`private`]: the directory only the invoking user can write (ssh
//!   control sockets, run locks).
//! * [`lock`]: the run lock, one run per backup name and target.
//! * [`man`]: man pages rendered from each tool's clap command.
//! * [`state`]: what zab-send remembers of its runs (last success, bytes),
//!   for zab-status; [`metrics`]: the Prometheus file of `--metrics`.

pub mod cli;
pub mod compress;
pub mod duration;
pub mod error;
pub mod host;
pub mod lock;
pub mod man;
pub mod metrics;
pub mod name;
pub mod naming;
pub mod ndjson;
pub mod private;
pub mod progress;
pub mod quiet;
pub mod record;
pub mod schedule;
pub mod screen;
pub mod select;
pub mod size;
pub mod state;
pub mod zfs;
pub mod zpool;

#[cfg(test)]
mod fuzz;

pub use error::{Error, Exit};

/// A fresh, empty directory for one unit test (`group/test`), under the
/// build's own target dir: never in a world-writable place.
#[cfg(test)]
pub(crate) fn scratch(group: &str, test: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/zab-core-tests")
        .join(group)
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch directory");
    d
}
pub use host::Host;
