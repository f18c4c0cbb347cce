//! Where a stream goes: a [`Sink`] receives "this stream as dataset D at
//! snapshot S". [`ZfsRecv`] is `zfs recv` on the target host (local or
//! over ssh); upload.rs's `StoreSink` uploads the stream as one object of
//! an object store. Both receive the same steps.

use zab_core::Host;

use crate::board::Board;
use crate::stream::{self, StreamSpec};
use crate::transfer::{self, Outcome, Running, Sides};

/// What a step receives.
#[derive(Debug, Clone, Copy)]
pub struct Receive<'a> {
    /// The target dataset.
    pub dataset: &'a str,
    /// The snapshot (after `@`) received last.
    pub snapshot: &'a str,
    /// The source dataset.
    pub source: &'a str,
    /// The incremental base (after `@`), none for a full stream.
    pub from: Option<&'a str>,
    /// A raw stream (`zfs send -w`).
    pub raw: bool,
}

/// A target that receives streams.
pub trait Sink: Sync {
    /// Receives the stream of `spec`, written on `source`, as `r`.
    fn receive(&self, source: &Host, spec: &StreamSpec, r: Receive, running: &Running) -> Outcome;

    /// Whether `r` is there (a receive that failed may have landed).
    fn has(&self, r: Receive) -> bool;
}

/// `zfs recv` on the target host: the target side of `spec` (its
/// `recv_argv`) runs there.
#[derive(Debug)]
pub struct ZfsRecv<'a> {
    pub host: &'a Host,
    /// `--rate`: the local zab-ratelimit and the rate.
    pub rate: Option<(String, u64)>,
    /// Show each transfer's progress on this board.
    pub progress: Option<&'a Board>,
}

impl Sink for ZfsRecv<'_> {
    fn receive(&self, source: &Host, spec: &StreamSpec, r: Receive, running: &Running) -> Outcome {
        let sides = Sides {
            source,
            source_line: stream::source_command(spec),
            target: self.host,
            target_line: stream::target_command(spec),
            rate: self.rate.clone(),
            progress: self
                .progress
                .map(|board| (board, format!("{}@{}", r.dataset, r.snapshot))),
        };
        transfer::run(&sides, running)
    }

    fn has(&self, r: Receive) -> bool {
        let name = format!("{}@{}", r.dataset, r.snapshot);
        self.host
            .output(&zab_core::zfs::replicate::exists_args(&name))
            .is_ok()
    }
}
