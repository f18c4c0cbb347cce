//! Checkpoints: where a restore cut short can go on downloading from,
//! instead of from the object's first byte (issue 18).
//!
//! While an uncompressed object streams into `zfs recv`, a [`Walker`]
//! follows its record headers (it jumps over the payloads of writes: it
//! does not copy or checksum them) and takes a [`Checkpoint`] at the
//! boundary before a WRITE record, at most one per download piece and
//! no closer than the spacing to the last one. A checkpoint holds all
//! that [`Resumer::from_checkpoint`](crate::resume::Resumer::from_checkpoint)
//! needs to make the resuming stream from the stored bytes of its
//! piece on, without those before:
//!
//! - `at`, the record's place in the object (S), and its resume point
//!   (the WRITE's object and offset);
//! - `piece`, where S's download piece starts (P, a multiple of
//!   [`RANGE`] in a restore, of 64 in any case), and the SHA-256 midstate there (from the download's
//!   hashing thread), so that the object's whole hash is still checked;
//! - the stored stream's running fletcher-4 at S: the WRITE's checksum
//!   field is the running sum after its first 280 bytes, so the sum at
//!   S is that field with those bytes taken back ([`Fletcher4::undo`]);
//! - the snapshot's BEGIN record with its payload, and whether a compound
//!   stream's header went before it (zab-send's `-p` streams);
//! - the context: the records before S that `zfs send -t` would still
//!   send for a resume point at S (an OBJECT, FREE or OBJECT_RANGE of the
//!   current dnode block, mostly), kept as the walk goes and pruned at
//!   each WRITE. What `zfs send -t` sends for a later point is a subset
//!   ([`wanted_at`] is monotone). A WRITE before S that a point at S
//!   would still want (a stream not in object and offset order) means no
//!   checkpoint; so does a context over [`MAX_CONTEXT`].
//!
//! They are written to a file in the private state directory, one JSON
//! line each, appended (a run killed while writing leaves a torn last
//! line, which is no checkpoint), one file per target dataset: a fresh
//! receive of an object starts it anew, and it is removed when the
//! object is received whole or its partial receive aborted. Each line
//! names the object and the stream's toguid; a line that does not parse
//! or names another is no checkpoint, never an error. A checkpoint that
//! lies is caught by the object's SHA-256 (its midstate) or by the
//! stream's own checksums (its fletcher-4), before `zfs recv` may commit.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zab_store::download::RANGE;

use crate::resume::{
    le32, le64, payload_len, wanted_at, Fletcher4, Token, BEGIN, CKSUM_AT, COMPOUND, END, RECORD,
    WRITE,
};

/// The most context a checkpoint keeps (no checkpoint where it is more).
pub const MAX_CONTEXT: usize = 1 << 20;

/// Context held while walking past which the walk stops (a stream whose
/// records before a write are this many has no use for checkpoints).
const GIVE_UP: usize = 16 << 20;

/// Where a resumed restore can go on downloading from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The object's key in the store, its SHA-256 as the manifest says
    /// (an object stored again is another), and its stream's toguid.
    pub key: String,
    pub sha256: String,
    pub toguid: u64,
    /// S: where the WRITE record is in the stored object.
    pub at: u64,
    /// Its resume point: the WRITE's object and offset.
    pub object: u64,
    pub offset: u64,
    /// P: where S's download piece starts, and the SHA-256 midstate there.
    pub piece: u64,
    pub sha: [u32; 8],
    /// The stored stream's running fletcher-4 at S, and its records
    /// before S (for messages).
    pub fletcher: [u64; 4],
    pub records: u64,
    /// A compound stream's header went before the snapshot's BEGIN.
    pub header: bool,
    /// The snapshot's BEGIN record and its payload (hex).
    #[serde(with = "hex")]
    pub begin: Vec<u8>,
    /// The records before S that a resume point at S still wants (hex).
    #[serde(with = "hex")]
    pub context: Vec<u8>,
}

/// Bytes as lower-case hex in JSON.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("not hex");
        if s.len() % 2 != 0 {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(bad)
            })
            .collect()
    }
}

/// The checkpoints spacing for an object of `stored` bytes: at least a
/// download piece, at most 128 of them in the object.
pub fn spacing(stored: u64) -> u64 {
    RANGE.max(stored / 128)
}

/// Where the walk is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Begin,
    /// In a compound stream's header, up to its END.
    Header,
    SubBegin,
    Records,
    /// Nothing more to take (the END, a stream it does not follow, or the
    /// bytes not fed in order).
    Off,
}

/// Follows a stored stream's records as its pieces go by, and takes the
/// checkpoints.
#[derive(Debug)]
pub struct Walker {
    key: String,
    sha256: String,
    spacing: u64,
    phase: Phase,
    /// The next byte expected, and where the current record starts.
    pos: u64,
    rec_at: u64,
    /// The current record's header so far.
    head: Vec<u8>,
    /// Its payload's bytes still to come; whether they are kept.
    left: usize,
    keep: bool,
    /// The current record, header and payload, when kept.
    rec: Vec<u8>,
    /// The current piece (its start and midstate), and the one the
    /// current record starts in.
    cur: (u64, Option<[u32; 8]>),
    rec_piece: (u64, Option<[u32; 8]>),
    records: u64,
    header: bool,
    begin: Vec<u8>,
    toguid: u64,
    context: Vec<Vec<u8>>,
    /// The context's bytes.
    held: usize,
    /// The greatest (object, offset) of a WRITE so far.
    max_write: Option<(u64, u64)>,
    /// The last checkpoint's place and piece.
    last: Option<(u64, u64)>,
}

impl Walker {
    /// A walk of object `key` (whose SHA-256 the manifest says is
    /// `sha256`) from its first byte, checkpoints at least `spacing` bytes
    /// apart.
    pub fn new(key: &str, sha256: &str, spacing: u64) -> Walker {
        Walker {
            key: key.to_string(),
            sha256: sha256.to_string(),
            spacing,
            phase: Phase::Begin,
            pos: 0,
            rec_at: 0,
            head: Vec::with_capacity(RECORD),
            left: 0,
            keep: false,
            rec: Vec::new(),
            cur: (0, None),
            rec_piece: (0, None),
            records: 0,
            header: false,
            begin: Vec::new(),
            toguid: 0,
            context: Vec::new(),
            held: 0,
            max_write: None,
            last: None,
        }
    }

    /// A walk that goes on from checkpoint `cp` (fed from its piece on).
    pub fn from_checkpoint(cp: &Checkpoint, spacing: u64) -> Walker {
        let mut w = Walker::new(&cp.key, &cp.sha256, spacing);
        w.phase = Phase::Records;
        w.pos = cp.piece;
        w.rec_at = cp.at;
        w.header = cp.header;
        w.begin = cp.begin.clone();
        w.toguid = cp.toguid;
        w.records = cp.records;
        w.context = crate::resume::split_records(&cp.context)
            .map(|v| v.iter().map(|(h, p)| [&h[..], p].concat()).collect())
            .unwrap_or_default();
        w.held = cp.context.len();
        // Every WRITE before the checkpoint was before its point.
        w.last = Some((cp.at, cp.piece));
        // The bytes from the piece to the checkpoint are skipped as if
        // they were a payload.
        w.left = usize::try_from(cp.at - cp.piece).unwrap_or(usize::MAX);
        w
    }

    /// Takes the piece of the object at `at` (its midstate before it,
    /// when known); the checkpoints it gives.
    pub fn feed(&mut self, at: u64, midstate: Option<[u32; 8]>, mut b: &[u8]) -> Vec<Checkpoint> {
        let mut out = Vec::new();
        if at != self.pos {
            self.phase = Phase::Off;
        }
        self.cur = (at, midstate);
        while !b.is_empty() && self.phase != Phase::Off {
            let n = if self.left > 0 {
                let n = self.left.min(b.len());
                if self.keep {
                    self.rec.extend_from_slice(&b[..n]);
                }
                self.left -= n;
                if self.left == 0 {
                    self.record_done();
                }
                n
            } else {
                if self.head.is_empty() {
                    self.rec_at = self.pos;
                    self.rec_piece = self.cur;
                }
                let n = (RECORD - self.head.len()).min(b.len());
                self.head.extend_from_slice(&b[..n]);
                if self.head.len() == RECORD {
                    out.extend(self.header_done());
                }
                n
            };
            self.pos += n as u64;
            b = &b[n..];
        }
        out
    }

    /// A record's header is whole: what its kind means for the walk, and
    /// a checkpoint before it if it is one's place.
    fn header_done(&mut self) -> Option<Checkpoint> {
        let mut h = [0u8; RECORD];
        h.copy_from_slice(&self.head);
        self.head.clear();
        let ty = le32(&h, 0);
        let Ok(n) = payload_len(&h) else {
            self.phase = Phase::Off;
            return None;
        };
        let compound = le64(&h, 16).unwrap_or(0) & 3 == COMPOUND;
        let mut cp = None;
        (self.phase, self.keep) = match (self.phase, ty) {
            (Phase::Begin, Some(BEGIN)) if compound => {
                self.header = true;
                (Phase::Header, false)
            }
            (Phase::Begin | Phase::SubBegin, Some(BEGIN)) => {
                self.toguid = le64(&h, 40).unwrap_or(0);
                (Phase::Records, true)
            }
            (Phase::Header, Some(END)) => (Phase::SubBegin, false),
            (Phase::Header, _) => (Phase::Header, false),
            (Phase::Records, Some(WRITE)) => {
                cp = self.at_write(&h);
                (Phase::Records, false)
            }
            (Phase::Records, Some(BEGIN | END)) | (Phase::Begin | Phase::SubBegin, _) => {
                (Phase::Off, false)
            }
            (phase, _) => (phase, true),
        };
        self.records += 1;
        self.rec.clear();
        if self.keep {
            self.rec.extend_from_slice(&h);
        }
        self.left = n;
        if n == 0 {
            self.record_done();
        }
        cp
    }

    /// A kept record is whole: the snapshot's BEGIN, or context.
    fn record_done(&mut self) {
        if !self.keep {
            return;
        }
        let rec = std::mem::take(&mut self.rec);
        if self.begin.is_empty() {
            self.begin = rec;
        } else {
            self.held += rec.len();
            self.context.push(rec);
            if self.held > GIVE_UP {
                self.phase = Phase::Off;
            }
        }
        self.keep = false;
    }

    /// Before WRITE `h` (at `rec_at`): the context pruned for its point,
    /// and a checkpoint if this is the place for one.
    fn at_write(&mut self, h: &[u8; RECORD]) -> Option<Checkpoint> {
        let point = (le64(h, 8).unwrap_or(0), le64(h, 24).unwrap_or(0));
        let in_order = self.max_write.map_or(true, |m| m < point);
        self.max_write = self.max_write.max(Some(point));
        if !in_order {
            return None;
        }
        self.context.retain(|r| {
            let rh: Option<&[u8; RECORD]> = r.get(..RECORD).and_then(|x| x.try_into().ok());
            rh.is_some_and(|rh| wanted_at(rh, point))
        });
        self.held = self.context.iter().map(Vec::len).sum();
        let (piece, sha) = (self.rec_piece.0, self.rec_piece.1?);
        let far = self.last.map_or(true, |(at, p)| {
            p != piece && self.rec_at.saturating_sub(at) >= self.spacing.max(1)
        });
        let field = &h[CKSUM_AT..];
        // One in the first piece would save nothing.
        if !far || piece == 0 || field == [0; 32] || piece % 64 != 0 {
            return None;
        }
        let context: Vec<u8> = self.context.concat();
        if context.len() > MAX_CONTEXT {
            return None;
        }
        let mut sum = [0u64; 4];
        for (i, s) in sum.iter_mut().enumerate() {
            *s = le64(field, i * 8).unwrap_or(0);
        }
        let mut f = Fletcher4::from_words(sum);
        f.undo(&h[..CKSUM_AT]);
        self.last = Some((self.rec_at, piece));
        Some(Checkpoint {
            key: self.key.clone(),
            sha256: self.sha256.clone(),
            toguid: self.toguid,
            at: self.rec_at,
            object: point.0,
            offset: point.1,
            piece,
            sha,
            fletcher: f.words(),
            records: self.records,
            header: self.header,
            begin: self.begin.clone(),
            context,
        })
    }
}

/// The checkpoints of object `key` (its SHA-256 `sha256`) whose stream
/// is `toguid` in a checkpoint file's text; lines that do not parse (a
/// torn last one) or name another object are left out.
pub fn parse(text: &str, (key, sha256): (&str, &str), toguid: u64) -> Vec<Checkpoint> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Checkpoint>(l).ok())
        .filter(|c| c.key == key && c.sha256 == sha256 && c.toguid == toguid)
        .collect()
}

/// The checkpoint to go on from for token `t` in an object of `stored`
/// bytes: the last one whose resume point is not past the token's.
pub fn choose<'a>(cps: &'a [Checkpoint], t: &Token, stored: u64) -> Option<&'a Checkpoint> {
    cps.iter()
        .filter(|c| (c.object, c.offset) <= (t.object, t.offset))
        .filter(|c| c.piece <= c.at && c.at < stored && c.piece % 64 == 0)
        .max_by_key(|c| c.at)
}

/// One checkpoint as a line of the file.
pub fn line(cp: &Checkpoint) -> String {
    let mut l = serde_json::to_string(cp).unwrap_or_default();
    l.push('\n');
    l
}

/// The checkpoint file of target dataset `target` on host `host`, in the
/// private state directory (its name a hash of both).
pub fn path(host: &str, target: &str) -> Result<PathBuf, String> {
    let dir = zab_core::private::state_dir().map_err(|e| e.to_string())?;
    let mut h = zab_store::sha::Sha256::default();
    h.update(format!("{host}\0{target}").as_bytes());
    let name = h.hex();
    Ok(dir.join(format!("restore-{}.checkpoints", &name[..32])))
}

/// [`parse`] of the file at `path`; none when it cannot be read.
pub fn load(path: &Path, object: (&str, &str), toguid: u64) -> Vec<Checkpoint> {
    std::fs::read_to_string(path)
        .map(|t| parse(&t, object, toguid))
        .unwrap_or_default()
}

/// The checkpoint file, opened to append to (`fresh`: emptied first),
/// private (0600).
pub fn open(path: &Path, fresh: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.create(true).mode(0o600);
    match fresh {
        true => o.write(true).truncate(true),
        false => o.append(true),
    };
    let f = o.open(path)?;
    if !fresh {
        return Ok(f);
    }
    drop(f);
    std::fs::OpenOptions::new().append(true).open(path)
}

/// Appends checkpoints to the file, each line in one write.
pub fn append(f: &mut std::fs::File, cps: &[Checkpoint]) -> std::io::Result<()> {
    for cp in cps {
        f.write_all(line(cp).as_bytes())?;
    }
    Ok(())
}

/// Removes the checkpoint file (gone already is no error).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::{corrupt_in, Resumer};

    use crate::resume::fixtures::*;

    const FIXTURES: [(&[u8], &[u8], &str); 4] = [
        (FULL, RESUMED, TOKEN),
        (FULL2, RESUMED2, TOKEN2),
        (FULL3, RESUMED3, TOKEN3),
        (FULL4, RESUMED4, TOKEN4),
    ];

    /// The checkpoints of a walk of `s` fed in pieces of `piece` bytes
    /// (each with its midstate, as the download's hashing thread gives
    /// it), `spacing` apart, from `w`.
    fn walk_with(mut w: Walker, s: &[u8], from: usize, piece: usize) -> Vec<Checkpoint> {
        let mut sha = zab_store::sha::Sha256::default();
        sha.update(&s[..from]);
        let mut out = Vec::new();
        let mut at = from;
        for c in s[from..].chunks(piece) {
            out.extend(w.feed(at as u64, sha.midstate(), c));
            sha.update(c);
            at += c.len();
        }
        out
    }

    fn walk(s: &[u8], piece: usize, spacing: u64) -> Vec<Checkpoint> {
        walk_with(Walker::new("k", "h", spacing), s, 0, piece)
    }

    /// The resuming stream made from `cp` and the stored bytes from its
    /// piece on, fed `chunk` bytes at a time.
    fn resume_from(cp: &Checkpoint, s: &[u8], t: &Token, chunk: usize) -> std::io::Result<Vec<u8>> {
        let mut r = Resumer::from_checkpoint(Vec::new(), t.clone(), cp)?;
        for c in s[cp.piece as usize..].chunks(chunk) {
            r.write_all(c)?;
        }
        assert!(r.ended());
        assert_eq!(r.read, s.len() as u64);
        Ok(r.into_inner())
    }

    fn point(c: &Checkpoint) -> (u64, u64) {
        (c.object, c.offset)
    }

    /// The main proof: from every checkpoint of every write boundary not
    /// past the token, the resuming stream is `zfs send -t`'s, byte for
    /// byte, and the hash from the midstate is the whole object's.
    #[test]
    fn from_every_checkpoint_the_resuming_stream_is_zfs_send_ts() {
        use sha2::Digest;
        for (i, (full, resumed, token)) in FIXTURES.into_iter().enumerate() {
            let t = Token::decode(token).unwrap();
            let cps = walk(full, 64, 0);
            let writes = crate::resume::split_records(full)
                .unwrap()
                .iter()
                .filter(|(h, _)| le32(h, 0) == Some(WRITE))
                .count();
            // One at each WRITE but the few sharing a 64-byte piece.
            assert!(
                cps.len() * 2 > writes,
                "fixture {i}: {} of {writes}",
                cps.len()
            );
            let before: Vec<_> = cps
                .iter()
                .filter(|c| point(c) <= (t.object, t.offset))
                .collect();
            assert!(
                !before.is_empty(),
                "fixture {i}: no checkpoint before the token"
            );
            let whole: [u8; 32] = sha2::Sha256::digest(full).into();
            for cp in &before {
                let out = resume_from(cp, full, &t, 4096).unwrap();
                assert!(out == resumed, "fixture {i}, checkpoint at {}", cp.at);
                let mut h = zab_store::sha::Sha256::at(cp.piece, cp.sha);
                h.update(&full[cp.piece as usize..]);
                assert_eq!(h.finalize(), whole, "fixture {i}, checkpoint at {}", cp.at);
            }
            // Past the token: refused.
            if let Some(past) = cps.iter().find(|c| point(c) > (t.object, t.offset)) {
                assert!(Resumer::from_checkpoint(Vec::new(), t.clone(), past).is_err());
            }
            // Through its file line and back.
            let text: String = cps.iter().map(line).collect();
            assert_eq!(parse(&text, ("k", "h"), cps[0].toguid), cps);
        }
    }

    #[test]
    fn checkpoints_are_spaced_and_one_a_piece() {
        let all = walk(FULL2, 64, 0);
        let one_a_piece = walk(FULL2, 8192, 0);
        assert!(one_a_piece.len() < all.len());
        let pieces: Vec<u64> = one_a_piece.iter().map(|c| c.piece).collect();
        assert!(pieces.windows(2).all(|w| w[0] < w[1]), "{pieces:?}");
        let spaced = walk(FULL2, 64, 20_000);
        assert!(spaced.windows(2).all(|w| w[1].at - w[0].at >= 20_000));
        assert!(!spaced.is_empty() && spaced.len() < all.len());
        assert!(one_a_piece
            .iter()
            .all(|c| c.at - c.piece < 8192 && c.piece % 8192 == 0));
        // None in the first piece, which would save nothing.
        assert!(!one_a_piece.is_empty() && one_a_piece.iter().all(|c| c.piece > 0));
    }

    #[test]
    fn a_walk_from_a_checkpoint_takes_the_same_checkpoints_after_it() {
        for (full, _, _) in FIXTURES {
            let all = walk(full, 128, 0);
            let cp = &all[all.len() / 3];
            let again = walk_with(Walker::from_checkpoint(cp, 0), full, cp.piece as usize, 128);
            let after: Vec<_> = all.iter().filter(|c| c.at > cp.at).cloned().collect();
            assert_eq!(again, after);
        }
    }

    #[test]
    fn the_last_checkpoint_not_past_the_token_is_chosen() {
        let t = Token::decode(TOKEN2).unwrap();
        let cps = walk(FULL2, 64, 0);
        let size = FULL2.len() as u64;
        let c = choose(&cps, &t, size).unwrap();
        assert!(point(c) <= (t.object, t.offset));
        let later = cps.iter().filter(|x| x.at > c.at);
        assert!(later.clone().count() > 0);
        assert!(later.into_iter().all(|x| point(x) > (t.object, t.offset)));
        // None fits: a token before every checkpoint; none at all.
        let mut early = t.clone();
        (early.object, early.offset) = (0, 0);
        assert_eq!(choose(&cps, &early, size), None);
        assert_eq!(choose(&[], &t, size), None);
    }

    #[test]
    fn a_torn_or_bad_line_is_no_checkpoint() {
        let cps = walk(FULL2, 64, 0);
        let g = cps[0].toguid;
        let mut text: String = cps[..3].iter().map(line).collect();
        text.push_str("not json\n");
        let mut other = cps[3].clone();
        other.key = "another".into();
        text.push_str(&line(&other));
        let torn = line(&cps[4]);
        text.push_str(&torn[..torn.len() / 2]);
        assert_eq!(parse(&text, ("k", "h"), g), cps[..3]);
        assert_eq!(parse(&text, ("k", "h"), g + 1), []);
        assert_eq!(parse(&text, ("k", "another hash"), g), []);
        assert_eq!(parse("", ("k", "h"), g), []);
    }

    /// A checkpoint that lies: a wrong running checksum makes the stored
    /// stream fail its own checksums; a wrong midstate, the object's hash.
    #[test]
    fn a_tampered_checkpoint_is_caught() {
        use sha2::Digest;
        let t = Token::decode(TOKEN2).unwrap();
        let cps = walk(FULL2, 64, 0);
        let cp = choose(&cps, &t, FULL2.len() as u64).unwrap();
        let mut bad = cp.clone();
        bad.fletcher[1] ^= 4;
        let e = resume_from(&bad, FULL2, &t, 4096).unwrap_err();
        assert!(corrupt_in(&e).is_some(), "{e}");
        let mut bad = cp.clone();
        bad.sha[0] ^= 1;
        let mut h = zab_store::sha::Sha256::at(bad.piece, bad.sha);
        h.update(&FULL2[bad.piece as usize..]);
        let whole: [u8; 32] = sha2::Sha256::digest(FULL2).into();
        assert_ne!(h.finalize(), whole);
    }

    #[test]
    fn fletcher_taken_back_is_what_it_was() {
        let mut f = Fletcher4::default();
        f.update(&FULL[..1000]);
        let before = f;
        f.update(&FULL[1000..2000]);
        f.undo(&FULL[1000..2000]);
        assert_eq!(f, before);
    }
}
