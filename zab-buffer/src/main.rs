//! zab-buffer: a large in-memory buffer between stdin and stdout.
//!
//! It does mbuffer's job in zab's pipelines: `zfs send` writes in bursts and
//! `zfs recv` (or ssh) reads in bursts; with a buffer between them, each side
//! runs at its own pace and the slower side never waits on the other's
//! pauses. A reader thread fills preallocated blocks from stdin, a writer
//! thread empties them to stdout (`pool.rs`); `run.rs` watches both, and
//! fails loudly, with the byte count, if the stream cannot be passed on whole.

mod cli;
mod pool;
mod run;
mod xxh64;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-buffer");
    let args = zab_core::cli::parse::<cli::Args>();
    let checked = args.config().and_then(|cfg| {
        cfg.check_memory(zab_core::size::available_memory())?;
        Ok(cfg)
    });
    match checked.and_then(|cfg| run::run(&cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-buffer", &e),
    }
}
