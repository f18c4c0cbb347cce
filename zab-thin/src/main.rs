//! zab-thin: destroys what the schedule no longer wants, never more.
//!
//! With ZFS (the default), it reads zab-select's or zab-snap's records,
//! lists the snapshots of every dataset with one `zfs list` per host, thins
//! our snapshots by `--keep-source` (and, with a TARGET-PATH, the target's by
//! `--keep-target`), and destroys with one ZFS channel program per pool as
//! root (else one `zfs destroy ds@a,b,c` per dataset: `execute.rs`).
//! With `--offline` it thins a list of snapshot records without touching ZFS;
//! `--describe SCHEDULE` says a schedule in words.
//!
//! Where each decision is made: `cli.rs` checks every option once
//! (`Args::config`); with ZFS, `run.rs` then goes through `input.rs` (the
//! records and the run lock), `gather.rs` (the listings and the selection),
//! `plan.rs` (what the schedules and `--destroy-missing` destroy or keep,
//! and why; pure), `holds.rs` (the holds of what that would destroy, and
//! the hold rule), `show.rs` (`--explain`, `--svg`), `execute.rs` (carries the
//! plan out, decides nothing) and `report.rs` (the records). `offline.rs`
//! is `--offline`; `picture.rs` draws timelines for both. `bookmarks.rs`
//! destroys our stale bookmarks on the source (with a TARGET-PATH).
//! `cache.rs` is the quiet-run cache: the listings of a run in which
//! nothing changed, from the last listing run that destroyed nothing. With an object
//! store as TARGET-PATH, `store.rs` thins its objects (`retain.rs` decides,
//! pure) and the source as without one.

mod bookmarks;
mod cache;
mod cli;
mod execute;
mod gather;
mod holds;
mod input;
mod offline;
mod picture;
mod plan;
mod report;
mod retain;
mod run;
mod show;
mod store;

use cli::Config;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic(cli::TOOL);
    let args = zab_core::cli::parse::<cli::Args>();
    if args.common.check_options {
        return zab_core::cli::check_options(cli::TOOL, args.config());
    }
    let result = args.config().and_then(|config| match config {
        Config::Describe(lines) => {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            // A reader that went away is not an error (the record tools' policy).
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            Ok(())
        }
        Config::Offline(config) => offline::run(&config),
        Config::Zfs(config) => run::run(&config),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report(cli::TOOL, &e),
    }
}
