//! `zab-store check`'s pure parts: what reading an object back tells
//! ([`Reader`]: its size, its SHA-256, and, for a stream stored as sent,
//! the guids of its BEGIN record and whether it ends with its END record),
//! and which objects a `--sample` reads.
//!
//! A `zfs send` stream is a sequence of 312-byte records (with payloads),
//! in the sender's byte order: it opens with a BEGIN record (type 0:
//! magic `0x2F5BACBAC`, version info, creation time, type, flags, then the
//! snapshot's guid and the incremental base's guid, 0 for a full stream)
//! and ends with an END record (type 5). A compound stream (`zfs send -p`,
//! `-I`, `-R`: zab-send's are, with `-p`) opens with a BEGIN record that
//! carries no guid, followed by its payload (the properties, a packed
//! nvlist of `drr_payloadlen` bytes) and an END record; its substreams
//! follow, the first one's BEGIN record naming the first snapshot it
//! carries and the incremental base.

use sha2::{Digest, Sha256};

/// The size of a stream record.
pub const RECORD: usize = 312;
const MAGIC: u64 = 0x2_F5BA_CBAC;
const DRR_BEGIN: u32 = 0;
/// `dmu_replay_record` types: BEGIN 0, OBJECT 1, FREEOBJECTS 2, WRITE 3, FREE 4, END 5.
const DRR_END: u32 = 5;
/// `DMU_GET_STREAM_HDRTYPE`: 1 a single snapshot, 2 a compound stream.
const SUBSTREAM: u64 = 1;

/// The bytes of a stream's start kept to read its first substream's BEGIN
/// record behind a compound header (whose properties may be long).
pub const HEAD: usize = 1 << 20;

/// What a stream's first records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Not a `zfs send` stream (no BEGIN record with the magic).
    NotAStream,
    /// A compound stream whose first substream is not within [`HEAD`].
    Compound,
    /// The first substream's snapshot guid (the first snapshot the stream
    /// carries), and its base's (0 for a full stream); `compound` when
    /// behind a compound header.
    Single {
        toguid: u64,
        fromguid: u64,
        compound: bool,
    },
}

fn u32_at(b: &[u8], at: usize, le: bool) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

fn u64_at(b: &[u8], at: usize, le: bool) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    if le {
        u64::from_le_bytes(a)
    } else {
        u64::from_be_bytes(a)
    }
}

/// The byte order of a stream whose first record is `head` (true: little
/// endian), None when it is no stream.
fn order(head: &[u8]) -> Option<bool> {
    if head.len() < RECORD {
        return None;
    }
    [true, false]
        .into_iter()
        .find(|&le| u32_at(head, 0, le) == DRR_BEGIN && u64_at(head, 8, le) == MAGIC)
}

/// Parses a stream's first records (`head`: its first bytes).
pub fn begin(head: &[u8]) -> Begin {
    let Some(le) = order(head) else {
        return Begin::NotAStream;
    };
    if u64_at(head, 16, le) & 3 == SUBSTREAM {
        return Begin::Single {
            toguid: u64_at(head, 40, le),
            fromguid: u64_at(head, 48, le),
            compound: false,
        };
    }
    // The header's payload, then its END record, then the first substream.
    let payload = usize::try_from(u32_at(head, 4, le)).unwrap_or(usize::MAX);
    let at = RECORD.saturating_add(payload).saturating_add(RECORD);
    let sub = match head.get(at..at.saturating_add(RECORD)) {
        Some(sub) if order(sub) == Some(le) => sub,
        _ => return Begin::Compound,
    };
    if u32_at(head, at - RECORD, le) != DRR_END || u64_at(sub, 16, le) & 3 != SUBSTREAM {
        return Begin::Compound;
    }
    Begin::Single {
        toguid: u64_at(sub, 40, le),
        fromguid: u64_at(sub, 48, le),
        compound: true,
    }
}

/// Whether `tail`, a stream's last record, is its END record (the stream
/// was not cut short); `head` gives the byte order.
pub fn ends(head: &[u8], tail: &[u8]) -> bool {
    match order(head) {
        Some(le) if tail.len() == RECORD => u32_at(tail, 0, le) == DRR_END,
        _ => false,
    }
}

/// A writer that reads an object back: counts and hashes it, and keeps its
/// first [`HEAD`] bytes and its last record.
#[derive(Debug, Default)]
pub struct Reader {
    hasher: Sha256,
    pub bytes: u64,
    pub head: Vec<u8>,
    tail: Vec<u8>,
}

impl Reader {
    /// The SHA-256 of what was read, hex.
    pub fn sha256(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The last [`RECORD`] bytes (fewer when the object is shorter).
    pub fn tail(&self) -> &[u8] {
        let from = self.tail.len().saturating_sub(RECORD);
        &self.tail[from..]
    }
}

impl std::io::Write for Reader {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        if self.head.len() < HEAD {
            let n = (HEAD - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..n]);
        }
        self.tail.extend_from_slice(buf);
        if self.tail.len() > 4 * RECORD {
            self.tail.drain(..self.tail.len() - RECORD);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses `--sample`: a share of the objects in percent, `10%` or `10`,
/// more than 0 and at most 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
    if n.is_finite() && n > 0.0 && n <= 100.0 {
        Ok(n)
    } else {
        Err(format!(
            "{s:?}: a percentage is more than 0 and at most 100"
        ))
    }
}

/// splitmix64: a small, well-mixed generator for the sample.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which of `n` objects a `percent` sample reads: ceil(n × percent / 100)
/// of them (at least one when there is any), drawn at random from `seed`
/// (another seed, another sample: successive runs cover the store).
pub fn sample(n: usize, percent: f64, seed: u64) -> Vec<bool> {
    let want = ((n as f64) * percent / 100.0).ceil() as usize;
    let want = want.clamp(usize::from(n > 0), n);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in 0..want {
        let span = (n - i) as u64;
        let j = i + usize::try_from(next(&mut state) % span).unwrap_or(0);
        idx.swap(i, j);
    }
    let mut out = vec![false; n];
    for &i in &idx[..want] {
        out[i] = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A BEGIN record as OpenZFS writes it on a little-endian machine.
    fn begin_record(version: u64, to: u64, from: u64, le: bool) -> Vec<u8> {
        let mut r = vec![0u8; RECORD];
        let put = |r: &mut Vec<u8>, at: usize, v: u64| {
            let b = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            r[at..at + 8].copy_from_slice(&b);
        };
        put(&mut r, 8, MAGIC);
        put(&mut r, 16, version);
        put(&mut r, 40, to);
        put(&mut r, 48, from);
        r
    }

    fn end_record(le: bool) -> Vec<u8> {
        let mut r = vec![0u8; RECORD];
        let b = if le {
            DRR_END.to_le_bytes()
        } else {
            DRR_END.to_be_bytes()
        };
        r[..4].copy_from_slice(&b);
        r
    }

    #[test]
    fn the_guids_of_a_begin_record_in_either_byte_order() {
        for le in [true, false] {
            let h = begin_record((0x11 << 2) | 1, 77, 66, le);
            assert_eq!(
                begin(&h),
                Begin::Single {
                    toguid: 77,
                    fromguid: 66,
                    compound: false
                }
            );
            assert!(ends(&h, &end_record(le)));
            assert!(!ends(&h, &h));
            // zfs send -p: a compound header (its payload, its END), then
            // the substream.
            let mut c = begin_record(2, 0, 0, le);
            let len = if le {
                100u32.to_le_bytes()
            } else {
                100u32.to_be_bytes()
            };
            c[4..8].copy_from_slice(&len);
            c.extend([7u8; 100]);
            c.extend(end_record(le));
            c.extend(begin_record(1, 88, 55, le));
            assert_eq!(
                begin(&c),
                Begin::Single {
                    toguid: 88,
                    fromguid: 55,
                    compound: true
                }
            );
            // Its first substream not within the bytes kept.
            assert_eq!(begin(&c[..c.len() - 1]), Begin::Compound);
        }
        assert_eq!(begin(b"\x1f\x8b gzip"), Begin::NotAStream);
        assert_eq!(begin(&[0u8; RECORD]), Begin::NotAStream);
    }

    #[test]
    fn the_reader_keeps_the_first_and_the_last_record() {
        let mut data = begin_record(1, 5, 0, true);
        data.extend((0..10_000u32).map(|i| (i % 253) as u8));
        data.extend(end_record(true));
        let mut r = Reader::default();
        for c in data.chunks(97) {
            r.write_all(c).unwrap();
        }
        assert_eq!(r.bytes, data.len() as u64);
        assert_eq!(r.head, data[..]);
        assert_eq!(r.tail(), &data[data.len() - RECORD..]);
        assert!(ends(&r.head, r.tail()));
        let want: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(r.sha256(), want);
        // Cut short: no END record at the end.
        let mut r = Reader::default();
        r.write_all(&data[..data.len() - 100]).unwrap();
        assert!(!ends(&r.head, r.tail()));
    }

    #[test]
    fn a_sample_reads_that_share_of_the_objects() {
        for (n, pct, want) in [
            (1000, 10.0, 100),
            (1000, 100.0, 1000),
            (7, 50.0, 4),
            (5, 0.1, 1),
            (0, 10.0, 0),
        ] {
            let s = sample(n, pct, 42);
            assert_eq!(s.len(), n);
            assert_eq!(s.iter().filter(|&&b| b).count(), want, "{n} {pct}");
        }
        // Another seed, another sample; over runs, every object is read.
        assert_ne!(sample(100, 10.0, 1), sample(100, 10.0, 2));
        let mut seen = [false; 20];
        for seed in 0..40 {
            for (i, b) in sample(20, 25.0, seed).into_iter().enumerate() {
                seen[i] |= b;
            }
        }
        assert!(seen.iter().all(|&b| b), "{seen:?}");
        // The share is spread: in 10 samples of 10% of 1000, each half of
        // the objects gets 35% to 65% of the reads.
        let mut low = 0;
        for seed in 0..10 {
            low += sample(1000, 10.0, seed)[..500]
                .iter()
                .filter(|&&b| b)
                .count();
        }
        assert!((350..=650).contains(&low), "{low}");
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Ok(10.0));
        assert_eq!(parse_percent("2.5"), Ok(2.5));
        assert_eq!(parse_percent("100%"), Ok(100.0));
        for bad in ["0", "0%", "101%", "-5", "ten", "", "nan"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }
}
