//! zab-ratelimit: pass a byte stream through, at most at a given rate, and
//! show how it goes.
//!
//! It does pv's job in zab's pipelines: the token bucket in `bucket.rs`
//! limits the rate exactly, `zab_core::progress` turns byte counts into rates, a
//! percentage and an ETA, and `run.rs` moves the data (with splice(2) when a
//! pipe allows it) while a second thread draws the progress.

mod bucket;
mod cli;
mod run;

use std::io::IsTerminal;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-ratelimit");
    let args = zab_core::cli::parse::<cli::Args>();
    let cfg = args.config(std::io::stderr().is_terminal());
    match run::run(&cfg) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-ratelimit", &e),
    }
}
