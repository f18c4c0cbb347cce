//! The block pool: preallocated blocks that go round between the reader and
//! the writer through two bounded channels, with the two watermarks.
//!
//! mbuffer keeps its blocks in a ring guarded by two semaphores; here the
//! semaphores are two `sync_channel`s as deep as the pool, one carrying free
//! blocks to the reader ([`Filler`]) and one carrying full blocks to the
//! writer ([`Drainer`]). Every block is allocated once, in [`pool`]; after
//! that only ownership moves, so the steady state allocates nothing. Unlike
//! mbuffer's ring, the reader reuses the block freed last, so a buffer that
//! never fills keeps only a few blocks in use (and in the cache).
//!
//! The watermarks are hysteresis, as in mbuffer:
//! - high (`start_writing`): when the writer finds no full block, it takes
//!   full blocks into its own hand, without writing, until it holds that many
//!   or the input has ended; then it writes them all and carries on.
//! - low (`resume_reading`): when the reader finds no free block (the buffer
//!   is full), it gathers free blocks until it holds that many, then reads
//!   into them.
//!
//! While one side waits, the other side hands it every block it frees, so
//! the two waits can never hold each other up.

use std::collections::{TryReserveError, VecDeque};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

/// One block of the buffer: its memory and how much of it holds data.
#[derive(Debug)]
pub struct Block {
    buf: &'static mut [u8],
    len: usize,
}

impl Block {
    /// The bytes of the block that hold data.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The free part of the block, to read into; then [`Block::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Records that `n` more bytes of [`Block::spare`] hold data.
    pub fn filled(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.buf.len());
    }

    /// True when no spare room is left.
    pub fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// True when it holds no data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Makes `blocks` blocks of `size` bytes, all free, and the two ends.
///
/// The blocks are cut from one allocation, zeroed by the allocator (calloc,
/// one mmap), so the kernel maps pages only when data is first read into
/// them: an idle buffer costs no RSS. One allocation rather than one per
/// block, because glibc gives each allocation of 128 KiB or more its own
/// mmap with a header page: 4 MiB more for 1024 blocks. The allocation is
/// leaked on purpose, so each block can own its part (`&'static mut`)
/// without unsafe code: a process makes one pool, which lives as long as
/// the process.
///
/// An allocation the system refuses is an error, not an abort: std has no
/// fallible zeroed allocation (and this crate has no unsafe code), so the
/// same amount is first asked for with `try_reserve_exact` and given back
/// untouched; the zeroed allocation that follows asks for what was just
/// granted. (main checks the size against MemAvailable before this.)
pub fn pool(
    blocks: usize,
    size: usize,
    start_writing: usize,
    resume_reading: usize,
) -> Result<(Filler, Drainer), TryReserveError> {
    // An overflow asks for usize::MAX, which try_reserve_exact refuses.
    let bytes = blocks.saturating_mul(size);
    let mut probe = Vec::<u8>::new();
    probe.try_reserve_exact(bytes)?;
    // Kept opaque, so the optimizer cannot drop the probe as unused.
    drop(std::hint::black_box(probe));
    let (free_tx, free_rx) = sync_channel(blocks);
    let (full_tx, full_rx) = sync_channel(blocks);
    let slab: &'static mut [u8] = Box::leak(vec![0u8; bytes].into_boxed_slice());
    for buf in slab.chunks_exact_mut(size) {
        let block = Block { buf, len: 0 };
        // Cannot fail: the receiver is alive and the channel holds them all.
        let _ = free_tx.send(block);
    }
    let filler = Filler {
        free: free_rx,
        full: full_tx,
        stash: Vec::with_capacity(blocks),
        resume_reading: resume_reading.clamp(1, blocks),
        waited: Duration::ZERO,
        last_wait: None,
    };
    let drainer = Drainer {
        full: full_rx,
        free: free_tx,
        held: VecDeque::with_capacity(blocks),
        start_writing: start_writing.min(blocks),
        ran_empty: true,
        waited: Duration::ZERO,
        last_wait: None,
    };
    Ok((filler, drainer))
}

/// The reader's end: takes free blocks, hands over full ones. Dropping it
/// tells the writer that the input has ended.
#[derive(Debug)]
pub struct Filler {
    free: Receiver<Block>,
    full: SyncSender<Block>,
    /// Free blocks, newest last.
    stash: Vec<Block>,
    resume_reading: usize,
    waited: Duration,
    last_wait: Option<Duration>,
}

impl Filler {
    /// A free block to read into. When the buffer is full, waits until the
    /// low watermark allows reading again. None when the writer is gone.
    ///
    /// Free blocks are stacked: the block written last is read into first.
    /// It is still in the CPU cache, and when the writer keeps up, a few
    /// blocks go round while the rest are never touched (so cost no RSS).
    pub fn free_block(&mut self) -> Option<Block> {
        loop {
            match self.free.try_recv() {
                Ok(b) => self.stash.push(b),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        if self.stash.is_empty() {
            // The buffer is full.
            let t = Instant::now();
            self.gather();
            self.waited += t.elapsed();
            self.last_wait = Some(t.elapsed());
        }
        self.stash.pop()
    }

    /// Waits for free blocks until it holds as many as the low watermark
    /// asks for, or the writer is gone.
    fn gather(&mut self) {
        while self.stash.len() < self.resume_reading {
            match self.free.recv() {
                Ok(b) => self.stash.push(b),
                Err(_) => return,
            }
        }
    }

    /// Hands a block with data to the writer. Gives it back when the writer
    /// is gone.
    pub fn send(&mut self, block: Block) -> Result<(), Block> {
        self.full.send(block).map_err(|e| e.0)
    }

    /// How long the reader waited for room, in all.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How long the last [`Filler::free_block`] waited, if it had to.
    pub fn take_wait(&mut self) -> Option<Duration> {
        self.last_wait.take()
    }
}

/// The writer's end: takes full blocks, hands back empty ones.
#[derive(Debug)]
pub struct Drainer {
    full: Receiver<Block>,
    free: SyncSender<Block>,
    held: VecDeque<Block>,
    start_writing: usize,
    /// The buffer was found empty (as it is at the start): the next block
    /// waits for the high watermark.
    ran_empty: bool,
    waited: Duration,
    last_wait: Option<Duration>,
}

impl Drainer {
    /// The next block to write, in order. When the buffer has run empty,
    /// waits until the high watermark is reached or the input ended. None
    /// once the input ended and every block was taken.
    pub fn full_block(&mut self) -> Option<Block> {
        if let Some(b) = self.held.pop_front() {
            return Some(b);
        }
        if !self.ran_empty {
            match self.full.try_recv() {
                Ok(b) => return Some(b),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => self.ran_empty = true,
            }
        }
        // Gather full blocks up to the high watermark.
        let t = Instant::now();
        while self.held.len() < self.start_writing.max(1) {
            match self.full.recv() {
                Ok(b) => self.held.push_back(b),
                Err(_) => break, // the input ended: write what there is
            }
        }
        self.waited += t.elapsed();
        self.last_wait = Some(t.elapsed());
        self.ran_empty = false;
        self.held.pop_front()
    }

    /// Gives a written block back to the reader, emptied.
    pub fn recycle(&mut self, mut block: Block) {
        block.len = 0;
        // The reader may be gone (input ended); the block is then dropped.
        let _ = self.free.send(block);
    }

    /// How long the writer waited for data, in all.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How long the last [`Drainer::full_block`] waited, if it had to.
    pub fn take_wait(&mut self) -> Option<Duration> {
        self.last_wait.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block holding `fill` bytes of value `tag`, taken from the filler.
    fn full(f: &mut Filler, tag: u8, fill: usize) -> Block {
        let mut b = f.free_block().expect("a free block");
        b.spare()[..fill].fill(tag);
        b.filled(fill);
        b
    }

    #[test]
    fn blocks_go_round_in_order_and_are_reused() {
        let (mut f, mut d) = pool(2, 4, 0, 1).unwrap();
        for round in 0..5u8 {
            let b = full(&mut f, round, 3);
            f.send(b).unwrap();
            let b = d.full_block().unwrap();
            assert_eq!(b.data(), &[round; 3]);
            d.recycle(b);
        }
        // Exactly the two blocks exist: both free, nothing buffered.
        let a = f.free_block().unwrap();
        let b = f.free_block().unwrap();
        assert!(a.is_empty() && b.is_empty());
        assert!(matches!(f.free.try_recv(), Err(TryRecvError::Empty)));
        drop(f);
        assert!(d.full_block().is_none());
    }

    #[test]
    fn the_block_written_last_is_read_into_first() {
        let (mut f, mut d) = pool(8, 16, 0, 1).unwrap();
        let mut used = Vec::new();
        for round in 0..20u8 {
            let b = full(&mut f, round, 16);
            used.push(b.data().as_ptr());
            f.send(b).unwrap();
            let b = d.full_block().unwrap();
            d.recycle(b);
        }
        // One block went round twenty times; seven were never touched.
        assert!(used.iter().all(|&p| p == used[0]));
    }

    #[test]
    fn block_bookkeeping() {
        let (mut f, _d) = pool(2, 4, 0, 1).unwrap();
        let mut b = f.free_block().unwrap();
        assert_eq!(b.spare().len(), 4);
        b.filled(3);
        assert_eq!(b.spare().len(), 1);
        assert!(!b.is_full());
        b.filled(1);
        assert!(b.is_full());
        assert_eq!(b.data().len(), 4);
    }

    #[test]
    fn high_watermark_gathers_before_the_first_write() {
        // 4 blocks, start writing at 3: after running empty, the writer takes
        // three blocks into its hand before it returns the first.
        let (mut f, mut d) = pool(4, 1, 3, 1).unwrap();
        for tag in 1..=3 {
            let b = full(&mut f, tag, 1);
            f.send(b).unwrap();
        }
        let b = d.full_block().unwrap();
        assert_eq!(b.data(), &[1]);
        assert_eq!(d.held.len(), 2);
        assert!(d.take_wait().is_some());
        assert!(d.take_wait().is_none());
        assert_eq!(d.full_block().unwrap().data(), &[2]);
        assert_eq!(d.full_block().unwrap().data(), &[3]);
    }

    #[test]
    fn without_high_watermark_the_writer_takes_one_block_at_a_time() {
        let (mut f, mut d) = pool(4, 1, 0, 1).unwrap();
        for tag in 1..=3 {
            let b = full(&mut f, tag, 1);
            f.send(b).unwrap();
        }
        assert_eq!(d.full_block().unwrap().data(), &[1]);
        assert_eq!(d.held.len(), 0);
    }

    #[test]
    fn high_watermark_is_used_again_only_after_running_empty() {
        let (mut f, mut d) = pool(4, 1, 2, 1).unwrap();
        for tag in 1..=2 {
            let b = full(&mut f, tag, 1);
            f.send(b).unwrap();
        }
        // Written blocks go back to the reader.
        let written = |d: &mut Drainer, tag: u8| {
            let b = d.full_block().unwrap();
            assert_eq!(b.data(), &[tag]);
            d.recycle(b);
        };
        written(&mut d, 1); // gathered 1 and 2 first
        for tag in 3..=4 {
            let b = full(&mut f, tag, 1);
            f.send(b).unwrap();
        }
        // While full blocks are waiting, the writer takes them one by one.
        written(&mut d, 2); // from its hand
        written(&mut d, 3); // from the channel
        assert_eq!(d.held.len(), 0);
        written(&mut d, 4);
        // Empty is what the writer sees when it asks, not what it missed:
        // blocks that arrive before it asks again are taken one by one.
        let b = full(&mut f, 5, 1);
        f.send(b).unwrap();
        written(&mut d, 5);
        assert_eq!(d.held.len(), 0);
        assert!(!d.ran_empty);
    }

    #[test]
    fn end_of_input_releases_a_partial_high_watermark() {
        let (mut f, mut d) = pool(4, 1, 4, 1).unwrap();
        let b = full(&mut f, 7, 1);
        f.send(b).unwrap();
        drop(f); // input ended with one block, below the watermark
        assert_eq!(d.full_block().unwrap().data(), &[7]);
        assert!(d.full_block().is_none());
    }

    #[test]
    fn low_watermark_gathers_free_blocks_once_full() {
        // 4 blocks, read again when 3 are free (at most 25 % full).
        let (mut f, mut d) = pool(4, 1, 0, 3).unwrap();
        for tag in 1..=4 {
            let b = full(&mut f, tag, 1);
            f.send(b).unwrap();
        }
        // Full: the reader would now wait in gather(). The writer frees
        // three blocks; gather() takes all three before reading resumes.
        for _ in 0..3 {
            let b = d.full_block().unwrap();
            d.recycle(b);
        }
        f.gather();
        assert_eq!(f.stash.len(), 3);
        assert_eq!(f.take_wait(), None); // gather() alone is not a wait of free_block()
        assert!(f.free_block().unwrap().is_empty());
        assert_eq!(f.stash.len(), 2);
    }

    #[test]
    fn without_low_watermark_the_reader_takes_one_block_at_a_time() {
        let (mut f, mut d) = pool(2, 1, 0, 1).unwrap();
        for tag in 1..=2 {
            let b = full(&mut f, tag, 1);
            f.send(b).unwrap();
        }
        let b = d.full_block().unwrap();
        d.recycle(b);
        assert!(f.free_block().is_some());
        assert_eq!(f.stash.len(), 0);
    }

    #[test]
    fn a_gone_writer_stops_the_reader() {
        let (mut f, d) = pool(2, 1, 0, 1).unwrap();
        let a = f.free_block().unwrap();
        let _b = f.free_block().unwrap();
        drop(d);
        assert!(f.free_block().is_none());
        assert!(f.send(a).is_err());
    }

    #[test]
    fn a_pool_too_large_to_allocate_is_an_error() {
        // blocks × size overflows: asked for as usize::MAX, refused.
        assert!(pool(usize::MAX / 2, 4, 0, 1).is_err());
    }

    #[test]
    fn watermarks_are_clamped_to_the_pool() {
        let (f, d) = pool(4, 1, 9, 0).unwrap();
        assert_eq!(d.start_writing, 4);
        assert_eq!(f.resume_reading, 1);
    }
}
