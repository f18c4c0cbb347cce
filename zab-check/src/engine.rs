//! Hashes chunks with several threads, and hands the results over in
//! order, so the output streams as it is made and never depends on which
//! thread was first. Each thread reads its chunk with `pread` in pieces of
//! [`PIECE`] bytes (never a whole chunk in memory); reads of different
//! chunks, and of different files, overlap.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use zab_core::error::Error;

use crate::hash::{Algorithm, Hasher};
use crate::plan::Chunk;

/// The most each read asks for.
pub const PIECE: usize = 1 << 20;

/// Where results go, in chunk order.
pub trait Sink {
    /// The hash of chunk `index` (or why it could not be read).
    fn result(&mut self, index: usize, hash: Result<String, String>) -> Result<(), Error>;
    /// Nothing is ready for a while: a good moment to flush.
    fn idle(&mut self) -> Result<(), Error>;
}

/// Hashes `chunks` of `files` with `jobs` threads, results to `sink` in
/// order. Stops early when `stop` is set (Ctrl-C) or the sink fails.
pub fn run(
    files: &[PathBuf],
    chunks: &[Chunk],
    algorithm: Algorithm,
    jobs: usize,
    stop: &AtomicBool,
    sink: &mut dyn Sink,
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Result<String, String>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let tx = tx.clone();
            let (next, failed) = (&next, &failed);
            let work = Work {
                files,
                chunks,
                algorithm,
                stop,
            };
            scope.spawn(move || work.hash(next, failed, &tx));
        }
        drop(tx);
        let outcome = deliver(&rx, sink);
        if outcome.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        drop(rx);
        outcome
    })?;
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Interrupted("stopped by a signal".into()));
    }
    sink.idle()
}

/// What one hashing thread reads.
#[derive(Clone, Copy)]
struct Work<'a> {
    files: &'a [PathBuf],
    chunks: &'a [Chunk],
    algorithm: Algorithm,
    stop: &'a AtomicBool,
}

impl Work<'_> {
    /// Takes the next chunk (`next`) and sends its hash, until there is no
    /// chunk left, a stop or a failure (`failed`), or no receiver.
    fn hash(
        &self,
        next: &AtomicUsize,
        failed: &AtomicBool,
        tx: &mpsc::Sender<(usize, Result<String, String>)>,
    ) {
        let mut buf = vec![0u8; PIECE];
        let mut open: Option<(usize, Result<File, String>)> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
                return;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = self.chunks.get(i) else {
                return;
            };
            if open.as_ref().map(|(f, _)| *f) != Some(chunk.file) {
                let path = &self.files[chunk.file];
                let file = File::open(path).map_err(|e| format!("cannot open: {e}"));
                open = Some((chunk.file, file));
            }
            let hash = match &open {
                Some((_, Ok(f))) => hash_chunk(f, chunk, self.algorithm, &mut buf, self.stop),
                Some((_, Err(e))) => Err(e.clone()),
                None => Err("not opened".into()),
            };
            if tx.send((i, hash)).is_err() {
                return;
            }
        }
    }
}

/// Hands the results received on `rx` to `sink` in chunk order, until
/// every sender is gone or the sink fails; idle moments go to
/// [`Sink::idle`].
fn deliver(
    rx: &mpsc::Receiver<(usize, Result<String, String>)>,
    sink: &mut dyn Sink,
) -> Result<(), Error> {
    let mut pending = BTreeMap::new();
    let mut want = 0usize;
    loop {
        let received = match rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Empty) => {
                sink.idle()?;
                rx.recv().ok()
            }
            Err(mpsc::TryRecvError::Disconnected) => None,
        };
        let Some((i, hash)) = received else {
            return Ok(());
        };
        pending.insert(i, hash);
        while let Some(hash) = pending.remove(&want) {
            sink.result(want, hash)?;
            want += 1;
        }
    }
}

/// The hash of one chunk of `file`: its bytes from `offset`, `len` of them
/// or up to the end of the file if it is shorter now.
pub fn hash_chunk(
    file: &File,
    chunk: &Chunk,
    algorithm: Algorithm,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> Result<String, String> {
    let mut hasher = Hasher::new(algorithm);
    let mut offset = chunk.offset;
    let end = chunk.offset.saturating_add(chunk.len);
    while offset < end {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let want = buf
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read at byte {offset}: {e}")),
        };
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hasher.hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::chunks;

    #[derive(Default)]
    struct Collect(Vec<(usize, Result<String, String>)>);

    impl Sink for Collect {
        fn result(&mut self, index: usize, hash: Result<String, String>) -> Result<(), Error> {
            self.0.push((index, hash));
            Ok(())
        }
        fn idle(&mut self) -> Result<(), Error> {
            Ok(())
        }
    }

    fn one_hash(data: &[u8]) -> String {
        let mut h = Hasher::new(Algorithm::Sha1);
        h.update(data);
        h.hex()
    }

    #[test]
    fn results_come_in_order_whatever_the_threads() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/zab-check-tests/engine-order");
        std::fs::create_dir_all(&dir).expect("dir");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.join("f");
        std::fs::write(&path, &data).expect("write");
        let missing = dir.join("missing");
        let mut all = chunks(&[data.len() as u64], 1000, 0);
        all.push(Chunk {
            file: 1,
            number: 0,
            offset: 0,
            len: 1,
        });
        let stop = AtomicBool::new(false);
        for jobs in [1, 4] {
            let mut sink = Collect::default();
            run(
                &[path.clone(), missing.clone()],
                &all,
                Algorithm::Sha1,
                jobs,
                &stop,
                &mut sink,
            )
            .expect("run");
            let indexes: Vec<usize> = sink.0.iter().map(|r| r.0).collect();
            assert_eq!(indexes, (0..11).collect::<Vec<_>>());
            assert_eq!(sink.0[3].1, Ok(one_hash(&data[3000..4000])));
            let missing = sink.0[10].1.clone().expect_err("missing file");
            assert!(missing.starts_with("cannot open: "), "{missing}");
        }
    }
}
