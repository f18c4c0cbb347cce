//! SHA-256 whose state can be saved between blocks: the 8 state words
//! after a multiple of 64 bytes (the *midstate*) are all there is to it,
//! so a hash can go on from a saved midstate over the rest of the bytes
//! and still be the whole object's. zab-restore keeps the midstate at
//! the start of a download piece in its checkpoints, and a resumed
//! restore downloads the object from there only (docs/store.md, "Going
//! on inside an object").
//!
//! A small streaming SHA-256 (FIPS 180-4: the state, the length, the
//! pending block, the final padding) over `sha2::compress256` (sha2's
//! `compress` feature), so it runs on the same SHA instructions as
//! `sha2::Sha256`; a test checks it against `sha2::Sha256::digest`.

use sha2::digest::generic_array::typenum::U64;
use sha2::digest::generic_array::GenericArray;

/// Blocks compressed in one call.
const BATCH: usize = 64;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
pub const INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A running SHA-256.
#[derive(Debug, Clone)]
pub struct Sha256 {
    state: [u32; 8],
    /// Bytes hashed (including those pending).
    len: u64,
    pending: [u8; 64],
    used: usize,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::at(0, INIT)
    }
}

impl Sha256 {
    /// A hash that goes on after `len` bytes (a multiple of 64) whose
    /// midstate is `state`.
    pub fn at(len: u64, state: [u32; 8]) -> Sha256 {
        debug_assert!(len % 64 == 0);
        Sha256 {
            state,
            len,
            pending: [0; 64],
            used: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The midstate, when the bytes hashed are a multiple of 64 (none
    /// pending).
    pub fn midstate(&self) -> Option<[u32; 8]> {
        (self.used == 0).then_some(self.state)
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.used > 0 {
            let n = (64 - self.used).min(data.len());
            self.pending[self.used..self.used + n].copy_from_slice(&data[..n]);
            self.used += n;
            data = &data[n..];
            if self.used < 64 {
                return;
            }
            let block = self.pending;
            self.compress(&block);
            self.used = 0;
        }
        // Many blocks a call, copied into a batch (the per-call cost of
        // one block a call was 13 % of the hash).
        let mut batch = [GenericArray::<u8, U64>::default(); BATCH];
        let mut blocks = data.chunks_exact(64);
        loop {
            let mut n = 0;
            for (slot, b) in batch.iter_mut().zip(&mut blocks) {
                slot.copy_from_slice(b);
                n += 1;
            }
            if n == 0 {
                break;
            }
            sha2::compress256(&mut self.state, &batch[..n]);
        }
        let rest = blocks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.used = rest.len();
    }

    fn compress(&mut self, block: &[u8]) {
        sha2::compress256(
            &mut self.state,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
    }

    /// The digest: the padding (0x80, zeros, the length in bits).
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = vec![0x80u8];
        let pad = (64 + 56 - (self.used + 1) % 64) % 64;
        tail.resize(1 + pad, 0);
        tail.extend_from_slice(&bits.to_be_bytes());
        self.update(&tail);
        debug_assert_eq!(self.used, 0);
        let mut out = [0u8; 32];
        for (i, w) in self.state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// [`Sha256::finalize`] in lower-case hex.
    pub fn hex(self) -> String {
        self.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(61).wrapping_add((i >> 9) as u8))
            .collect()
    }

    fn theirs(b: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(b).into()
    }

    #[test]
    fn it_is_sha256_on_every_length() {
        let big = data((8 << 20) + 200);
        for n in 0..=200 {
            let mut h = Sha256::default();
            h.update(&big[..n]);
            assert_eq!(h.finalize(), theirs(&big[..n]), "{n} bytes");
        }
        // Around 64 KiB and 8 MiB: both hashes of the common prefix taken
        // once (a debug build hashes slowly), then each length's rest.
        for around in [64usize << 10, 8 << 20] {
            let from = around - 70;
            let (mut ours, mut sha) = (Sha256::default(), sha2::Sha256::new());
            ours.update(&big[..from]);
            sha.update(&big[..from]);
            for n in from..around + 70 {
                let (mut o, mut t) = (ours.clone(), sha.clone());
                o.update(&big[from..n]);
                t.update(&big[from..n]);
                let t: [u8; 32] = t.finalize().into();
                assert_eq!(o.finalize(), t, "{n} bytes");
            }
        }
        // Fed in odd pieces.
        let mut h = Sha256::default();
        for c in big[..100_003].chunks(77) {
            h.update(c);
        }
        assert_eq!(h.finalize(), theirs(&big[..100_003]));
    }

    #[test]
    fn it_goes_on_from_a_midstate() {
        let b = data(300_001);
        for at in [0usize, 64, 4096, 65_536, 299_968] {
            let mut first = Sha256::default();
            first.update(&b[..at]);
            let mid = first.midstate().unwrap();
            let mut rest = Sha256::at(at as u64, mid);
            rest.update(&b[at..]);
            assert_eq!(rest.len(), b.len() as u64);
            assert_eq!(rest.finalize(), theirs(&b), "from {at}");
            // A wrong midstate is another hash.
            let mut bad = mid;
            bad[3] ^= 1;
            let mut wrong = Sha256::at(at as u64, bad);
            wrong.update(&b[at..]);
            assert_ne!(wrong.finalize(), theirs(&b));
        }
        let mut h = Sha256::default();
        h.update(&b[..65]);
        assert_eq!(h.midstate(), None);
    }
}
