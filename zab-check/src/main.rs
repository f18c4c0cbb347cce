//! zab-check: hashes a file, a block device, a directory tree or a ZFS
//! snapshot in chunks, or checks it against such hashes: zfs-check's job,
//! its output byte for byte with `--hash sha1` (trees sorted by path), in
//! parallel.
//!
//! Where each decision is made: `cli.rs` checks every option once
//! (`Args::config`); `remote.rs` runs zab-check on `--ssh-source`;
//! otherwise `run.rs` goes through `target.rs` (a snapshot made readable,
//! and cleaned up), `walk.rs` (a tree's files), `plan.rs` (which chunks,
//! and the output lines; pure), `expect.rs` (`--check`'s input; pure),
//! `engine.rs` (the threads that read and hash) and `hash.rs`.

mod cli;
mod engine;
mod expect;
mod hash;
mod plan;
mod remote;
mod run;
mod target;
mod walk;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic(cli::TOOL);
    let args = zab_core::cli::parse::<cli::Args>();
    let result = args.config().and_then(|config| match config.remote {
        true => remote::run(&config),
        false => run::run(&config).map(|n| u8::try_from(n.min(255)).unwrap_or(255)),
    });
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => zab_core::error::report(cli::TOOL, &e),
    }
}
