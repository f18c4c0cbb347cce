//! Downloading ahead, for zab-restore: the objects of a chain are read in
//! ranges ([`RANGE`] bytes), `jobs` ranges in flight at once across
//! objects (the next object's first ranges are requested while the
//! current one's last are received), and handed to the caller in order.
//!
//! Three stages run at once: the requests on the store's runtime
//! ([`crate::Store::download`]), which receive the bytes and cut them
//! into pieces; a thread of its own that computes each object's SHA-256
//! over its pieces, in order ([`hash`]); and the caller, who writes the
//! pieces out. So the hash runs beside the download and beside the
//! caller's writing, not between them (SHA-256 costs the most of the
//! three: about 0.6 s of CPU a GiB with the SHA instructions).
//!
//! Memory is bounded: at most `jobs` ranges in flight, one waiting for
//! the hashing thread and one being hashed, and [`QUEUED`] pieces hashed
//! and waiting for the caller, so about `(jobs + QUEUED + 3) × RANGE`
//! (4 jobs: 72 MiB). The splitting is a pure function ([`ranges`]); the
//! requests run on the store's runtime.
//!
//! The piece buffers are used again ([`Pool`]): a piece the caller has
//! written and dropped goes back to the download, which fills it anew.
//! A fresh 8 MiB allocation for each piece cost more CPU in the kernel
//! (mapping, zeroing and unmapping its pages: 15 % of a restore's samples)
//! than copying the bytes into it. The pool only hands out buffers that
//! were dropped, so it adds nothing to the bound above.
//!
//! With one job there is no point in ranges: each object is one GET,
//! streamed and cut into pieces of the same size, still ahead of the
//! caller. It is also the way for a server that pays for each range
//! with the whole object (moto, the tests' server, reads all of it for
//! every ranged GET).

use std::ops::Range;

use bytes::Bytes;

use crate::sha::Sha256;
use crate::store::StoreError;

/// The size of one ranged request.
pub const RANGE: u64 = 8 << 20;

/// Ranges received and waiting for the caller, beyond those in flight.
pub const QUEUED: usize = 2;

/// An object to download: its key and size, and where to start (0, or a
/// multiple of 64 whose SHA-256 midstate is `state`: the hash of the
/// whole object is still made, from there on; [`crate::sha`]).
#[derive(Debug, Clone)]
pub struct Wanted {
    pub key: String,
    pub size: u64,
    pub from: u64,
    pub state: [u32; 8],
}

impl Wanted {
    /// All of object `key`, of `size` bytes.
    pub fn whole(key: &str, size: u64) -> Wanted {
        Wanted {
            key: key.to_string(),
            size,
            from: 0,
            state: crate::sha::INIT,
        }
    }
}

/// One piece of an object, in order.
#[derive(Debug)]
pub struct Piece {
    /// The object's index in the list given to [`crate::Store::download`].
    pub object: usize,
    pub bytes: Bytes,
    /// Where its first byte is in the object.
    pub at: u64,
    /// The SHA-256 midstate of the object's bytes before it (set by the
    /// hashing thread), when `at` is a multiple of 64 ([`crate::sha`]).
    pub midstate: Option<[u32; 8]>,
    /// Whether it is the object's last piece.
    pub last: bool,
    /// On the last piece: the SHA-256 (hex) of all the object's pieces,
    /// in order, computed as they were handed on (on the download's
    /// hashing thread, not the caller's, so that hashing and writing
    /// overlap).
    pub sha256: Option<String>,
}

/// Piece buffers of one download, used again: [`Pool::take`] gives one
/// that a dropped piece gave back (or a new one), [`Pool::freeze`] makes a
/// filled one a piece's bytes that go back to the pool when dropped. At
/// most `keep` wait in the pool; once the pool is gone (the download
/// over), a dropped piece frees its buffer.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    free: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    size: usize,
    keep: usize,
}

/// A piece's buffer, on its way back to its pool when dropped.
struct Pooled {
    buf: Vec<u8>,
    home: std::sync::Weak<std::sync::Mutex<Vec<Vec<u8>>>>,
    size: usize,
    keep: usize,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Only a buffer of the pool's size (one that grew is let go).
        if self.buf.capacity() != self.size {
            return;
        }
        if let Some(home) = self.home.upgrade() {
            if let Ok(mut free) = home.lock() {
                if free.len() < self.keep {
                    let mut buf = std::mem::take(&mut self.buf);
                    buf.clear();
                    free.push(buf);
                }
            }
        }
    }
}

impl Pool {
    /// A pool of buffers of `size` bytes, at most `keep` of them idle.
    pub(crate) fn new(size: usize, keep: usize) -> Pool {
        Pool {
            free: std::sync::Arc::default(),
            size,
            keep,
        }
    }

    /// An empty buffer of the pool's size.
    pub(crate) fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        reused.unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// `buf` as a piece's bytes, back to the pool when dropped.
    pub(crate) fn freeze(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            home: std::sync::Arc::downgrade(&self.free),
            size: self.size,
            keep: self.keep,
        })
    }

    /// Buffers idle in the pool.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// The hashing thread: hashes each piece of `rx` in order (each object
/// from its `starts` entry: where its download starts, and the midstate
/// there), sets the midstate before each piece and the hash on each
/// object's last piece, and hands the pieces to `tx`, until `rx` ends, an
/// error is handed on, or the caller is gone.
pub(crate) fn hash(
    mut rx: tokio::sync::mpsc::Receiver<Result<Piece, StoreError>>,
    tx: &tokio::sync::mpsc::Sender<Result<Piece, StoreError>>,
    starts: &[(u64, [u32; 8])],
) {
    let at = |object: usize| {
        let (from, state) = starts.get(object).copied().unwrap_or((0, crate::sha::INIT));
        Sha256::at(from, state)
    };
    let mut current = None;
    let mut hash = at(0);
    while let Some(mut p) = rx.blocking_recv() {
        let failed = p.is_err();
        if let Ok(p) = &mut p {
            if current != Some(p.object) {
                current = Some(p.object);
                hash = at(p.object);
            }
            p.midstate = hash.midstate().filter(|_| hash.len() == p.at);
            hash.update(&p.bytes);
            if p.last {
                let done = std::mem::take(&mut hash);
                current = None;
                p.sha256 = Some(done.hex());
            }
        }
        if tx.blocking_send(p).is_err() || failed {
            return;
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
    use sha2::Digest;

    fn hex(data: &[u8]) -> String {
        sha2::Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Hands `pieces` through [`hash`] on its own thread; what it hands on.
    fn through(pieces: Vec<Result<Piece, StoreError>>) -> Vec<Result<Piece, StoreError>> {
        through_from(pieces, Vec::new())
    }

    /// [`through`], each object's hash from its `starts` entry.
    fn through_from(
        pieces: Vec<Result<Piece, StoreError>>,
        starts: Vec<(u64, [u32; 8])>,
    ) -> Vec<Result<Piece, StoreError>> {
        let (feed_tx, feed_rx) = tokio::sync::mpsc::channel(1);
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let t = std::thread::spawn(move || hash(feed_rx, &tx, &starts));
        let feeder = std::thread::spawn(move || {
            for p in pieces {
                if feed_tx.blocking_send(p).is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        while let Some(p) = rx.blocking_recv() {
            out.push(p);
        }
        feeder.join().unwrap();
        t.join().unwrap();
        out
    }

    fn piece(object: usize, data: &[u8], last: bool) -> Result<Piece, StoreError> {
        piece_at(object, 0, data, last)
    }

    fn piece_at(object: usize, at: u64, data: &[u8], last: bool) -> Result<Piece, StoreError> {
        let bytes = Bytes::copy_from_slice(data);
        Ok(Piece {
            object,
            bytes,
            at,
            midstate: None,
            last,
            sha256: None,
        })
    }

    #[test]
    fn each_objects_hash_is_on_its_last_piece() {
        let a: Vec<u8> = (0..25_000u32).map(|i| (i % 251) as u8).collect();
        let pieces = vec![
            piece(0, &a[..10_000], false),
            piece(0, &a[10_000..20_000], false),
            piece(0, &a[20_000..], true),
            piece(1, b"second", true),
            piece(2, b"", true),
        ];
        let out: Vec<Piece> = through(pieces).into_iter().map(Result::unwrap).collect();
        let shape: Vec<_> = out
            .iter()
            .map(|p| (p.object, p.bytes.len(), p.last))
            .collect();
        assert_eq!(
            shape,
            [
                (0, 10_000, false),
                (0, 10_000, false),
                (0, 5_000, true),
                (1, 6, true),
                (2, 0, true)
            ]
        );
        assert_eq!(out[0].sha256, None);
        assert_eq!(out[1].sha256, None);
        assert_eq!(out[2].sha256.as_deref(), Some(&*hex(&a)));
        assert_eq!(out[3].sha256.as_deref(), Some(&*hex(b"second")));
        assert_eq!(out[4].sha256.as_deref(), Some(&*hex(b"")));
    }

    #[test]
    fn each_piece_has_the_midstate_before_it_and_a_hash_goes_on_from_one() {
        let a: Vec<u8> = (0..1000u32).map(|i| (i % 241) as u8).collect();
        let mid = |n: usize| {
            let mut h = Sha256::default();
            h.update(&a[..n]);
            h.midstate().unwrap()
        };
        // Object 0 whole in pieces of 256; object 1 downloaded from 512.
        let pieces = vec![
            piece_at(0, 0, &a[..256], false),
            piece_at(0, 256, &a[256..512], false),
            piece_at(0, 512, &a[512..], true),
            piece_at(1, 512, &a[512..768], false),
            piece_at(1, 768, &a[768..], true),
        ];
        let starts = vec![(0, crate::sha::INIT), (512, mid(512))];
        let out: Vec<Piece> = through_from(pieces, starts)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mids: Vec<_> = out.iter().map(|p| p.midstate).collect();
        let want = [0, 256, 512, 512, 768].map(|n| Some(mid(n)));
        assert_eq!(mids, want);
        assert_eq!(out[2].sha256.as_deref(), Some(&*hex(&a)));
        assert_eq!(out[4].sha256.as_deref(), Some(&*hex(&a)));
        // A piece not where the hash is has no midstate.
        let out = through(vec![piece_at(0, 64, &a[..64], true)]);
        assert_eq!(out[0].as_ref().unwrap().midstate, None);
    }

    #[test]
    fn an_error_is_handed_on_and_ends_the_thread() {
        let pieces = vec![
            piece(0, b"first ", false),
            piece(0, b"object", true),
            piece(1, b"second", false),
            Err(StoreError("s3://b/k: connection reset".into())),
            piece(1, b"never", true),
        ];
        let out = through(pieces);
        assert_eq!(out.len(), 4, "{out:?}");
        let p = out[1].as_ref().unwrap();
        assert_eq!(p.sha256.as_deref(), Some(&*hex(b"first object")));
        assert_eq!(out[2].as_ref().unwrap().sha256, None);
        assert_eq!(
            out[3].as_ref().unwrap_err().to_string(),
            "s3://b/k: connection reset"
        );
    }

    #[test]
    fn piece_buffers_go_back_to_the_pool() {
        let pool = Pool::new(16, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"first");
        let at = a.as_ptr();
        let a = pool.freeze(a);
        let b = pool.freeze(pool.take());
        assert_eq!((&a[..], pool.idle()), (&b"first"[..], 0));
        let a2 = a.clone();
        drop(a);
        assert_eq!(pool.idle(), 0, "a clone still holds it");
        drop(a2);
        assert_eq!(pool.idle(), 1);
        let again = pool.take();
        assert_eq!((again.as_ptr(), again.len(), pool.idle()), (at, 0, 0));
        // At most `keep` idle; a buffer that grew is let go.
        let c = pool.freeze(pool.take());
        let mut big = pool.take();
        big.extend_from_slice(&[7; 40]);
        let big = pool.freeze(big);
        drop((b, c, big));
        assert_eq!(pool.idle(), 2, "b and c, not big");
        let (d, e, f) = (pool.take(), pool.take(), pool.take());
        drop((pool.freeze(d), pool.freeze(e), pool.freeze(f)));
        assert_eq!(pool.idle(), 2);
        // The pool gone, a piece still frees its buffer.
        let g = pool.freeze(pool.take());
        drop(pool);
        assert!(g.is_empty());
        drop(g);
    }

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
