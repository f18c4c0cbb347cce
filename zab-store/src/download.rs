//! Downloading ahead, for zab-restore: the objects of a chain are read in
//! ranges ([`RANGE`] bytes), `jobs` ranges in flight at once across
//! objects (the next object's first ranges are requested while the
//! current one's last are received), and handed to the caller in order.
//!
//! Memory is bounded: at most `jobs` ranges in flight plus [`QUEUED`]
//! ranges received and waiting for the caller, so about
//! `(jobs + QUEUED + 1) × RANGE` (4 jobs: 56 MiB). The splitting is a pure
//! function ([`ranges`]); the requests run on the store's runtime
//! ([`crate::Store::download`]).
//!
//! With one job there is no point in ranges: each object is one GET,
//! streamed and cut into pieces of the same size, still ahead of the
//! caller. It is also the way for a server that pays for each range
//! with the whole object (moto, the tests' server, reads all of it for
//! every ranged GET).

use std::ops::Range;

use bytes::Bytes;

use crate::store::StoreError;

/// The size of one ranged request.
pub const RANGE: u64 = 8 << 20;

/// Ranges received and waiting for the caller, beyond those in flight.
pub const QUEUED: usize = 2;

/// One piece of an object, in order.
#[derive(Debug)]
pub struct Piece {
    /// The object's index in the list given to [`crate::Store::download`].
    pub object: usize,
    pub bytes: Bytes,
    /// Whether it is the object's last piece.
    pub last: bool,
    /// On the last piece: the SHA-256 (hex) of all the object's pieces,
    /// in order, computed as they were handed on (on the download's
    /// thread, not the caller's, so that hashing and writing overlap).
    pub sha256: Option<String>,
}

/// The hash of an object's pieces, in order.
#[derive(Debug, Default)]
pub(crate) struct Hash(sha2::Sha256);

impl Hash {
    /// Hashes `p`; on its object's last piece, sets `p.sha256` and starts
    /// again for the next object.
    pub(crate) fn piece(&mut self, p: &mut Piece) {
        use sha2::Digest;
        self.0.update(&p.bytes);
        if p.last {
            let sum = std::mem::take(&mut self.0).finalize();
            p.sha256 = Some(sum.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
}

/// The ranges that cover an object of `size` bytes, `range` bytes each
/// (the last shorter); one empty range for an empty object, so that every
/// object yields a last piece.
pub fn ranges(size: u64, range: u64) -> Vec<Range<u64>> {
    let range = range.max(1);
    if size == 0 {
        return std::iter::once(0..0).collect();
    }
    (0..size.div_ceil(range))
        .map(|i| i * range..((i + 1) * range).min(size))
        .collect()
}

/// The pieces of a download, in order; the requests stop when it is
/// dropped.
#[derive(Debug)]
pub struct Download {
    pub(crate) rx: tokio::sync::mpsc::Receiver<Result<Piece, StoreError>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Download {
    /// The next piece, waiting for it; None after the last object's last
    /// piece (or after an error, which is returned once).
    pub fn next_piece(&mut self) -> Option<Result<Piece, StoreError>> {
        self.rx.blocking_recv()
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_object_exactly() {
        let ends = |v: Vec<Range<u64>>| v.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>();
        assert_eq!(ends(ranges(0, 8)), [(0, 0)]);
        assert_eq!(ends(ranges(5, 8)), [(0, 5)]);
        assert_eq!(ends(ranges(8, 8)), [(0, 8)]);
        assert_eq!(ends(ranges(17, 8)), [(0, 8), (8, 16), (16, 17)]);
        for size in [1u64, 7, 8, 9, 100, 1000] {
            let r = ranges(size, 7);
            assert_eq!(r.first().map(|r| r.start), Some(0));
            assert_eq!(r.last().map(|r| r.end), Some(size));
            assert!(r.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
