//! XXH64, the 64-bit xxHash, streaming: the hash that `--hash` prints.
//!
//! Chosen because it runs at memory speed (several GB/s on one core, far
//! above any disk or link it checks), is specified
//! (github.com/Cyan4973/xxHash, `doc/xxhash_spec.md`) and is what
//! `xxhsum -H1` prints, so a stream can be checked against a file with a
//! stock tool. It detects accidental damage (a lost, repeated or reordered
//! block), not tampering: it is not a cryptographic hash.
//!
//! The state keeps a 32-byte stripe buffer, so data may be fed in pieces of
//! any size and the result is the same as for one piece.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// A running XXH64 hash (seed 0).
#[derive(Debug, Clone)]
pub struct Xxh64 {
    acc: [u64; 4],
    buf: [u8; 32],
    buf_len: usize,
    total: u64,
}

impl Default for Xxh64 {
    fn default() -> Self {
        Self::new()
    }
}

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(h: u64, acc: u64) -> u64 {
    (h ^ round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

fn lane(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl Xxh64 {
    pub fn new() -> Self {
        Xxh64 {
            acc: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            buf: [0; 32],
            buf_len: 0,
            total: 0,
        }
    }

    fn stripe(acc: &mut [u64; 4], s: &[u8]) {
        acc[0] = round(acc[0], lane(&s[0..]));
        acc[1] = round(acc[1], lane(&s[8..]));
        acc[2] = round(acc[2], lane(&s[16..]));
        acc[3] = round(acc[3], lane(&s[24..]));
    }

    /// Feeds more bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let n = (32 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + n].copy_from_slice(&data[..n]);
            self.buf_len += n;
            data = &data[n..];
            if self.buf_len < 32 {
                return;
            }
            let buf = self.buf;
            Self::stripe(&mut self.acc, &buf);
            self.buf_len = 0;
        }
        let mut stripes = data.chunks_exact(32);
        for s in &mut stripes {
            Self::stripe(&mut self.acc, s);
        }
        let rest = stripes.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// The hash of everything fed so far.
    pub fn digest(&self) -> u64 {
        let [a, b, c, d] = self.acc;
        let mut h = if self.total >= 32 {
            let h = a
                .rotate_left(1)
                .wrapping_add(b.rotate_left(7))
                .wrapping_add(c.rotate_left(12))
                .wrapping_add(d.rotate_left(18));
            merge(merge(merge(merge(h, a), b), c), d)
        } else {
            P5 // the seed (0) plus P5
        };
        h = h.wrapping_add(self.total);
        let mut rest = &self.buf[..self.buf_len];
        while rest.len() >= 8 {
            h ^= round(0, lane(rest));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            let mut w = [0u8; 4];
            w.copy_from_slice(&rest[..4]);
            h ^= u64::from(u32::from_le_bytes(w)).wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = &rest[4..];
        }
        for &byte in rest {
            h ^= u64::from(byte).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xxh64(data: &[u8]) -> u64 {
        let mut h = Xxh64::new();
        h.update(data);
        h.digest()
    }

    /// Published values (xxHash's sanity checks, python-xxhash's docs) and
    /// `xxhsum -H1` output.
    #[test]
    fn known_values() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
        assert_eq!(xxh64(b"xxhash"), 0x32DD_3895_2C4B_C720);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    fn bytes(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn pieces_of_any_size_give_the_same_hash() {
        let data = bytes(1000);
        for n in [0, 1, 31, 32, 33, 63, 64, 65, 999, 1000] {
            let whole = xxh64(&data[..n]);
            for piece in [1, 3, 7, 8, 31, 32, 33, 100] {
                let mut h = Xxh64::new();
                for c in data[..n].chunks(piece) {
                    h.update(c);
                }
                h.update(&[]);
                assert_eq!(h.digest(), whole, "{n} bytes in pieces of {piece}");
            }
        }
    }

    #[test]
    fn any_change_changes_the_hash() {
        let data = bytes(300);
        let h = xxh64(&data);
        let mut flipped = data.clone();
        flipped[150] ^= 1;
        assert_ne!(xxh64(&flipped), h);
        assert_ne!(xxh64(&data[..299]), h);
        let mut swapped = data.clone();
        swapped[..100].rotate_left(50);
        assert_ne!(xxh64(&swapped), h);
    }
}
