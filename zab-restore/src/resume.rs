//! Going on inside an object: a `zfs recv -s` cut short left a
//! `receive_resume_token` on the target, and `zfs recv -s` goes on only
//! with a *resuming* stream, the one `zfs send -t TOKEN` makes from the
//! source. The source may be gone; the stored stream is here. This
//! module makes the resuming stream from the stored one, pure and on
//! bytes:
//!
//! - [`Token::decode`]: the token (`1-CHECKSUM-LENGTH-ZLIB`, all hex; the
//!   zlib stream inflates to a native-encoded nvlist: `object`, `offset`,
//!   `bytes`, `toguid`, `fromguid`, `toname`, and booleans such as
//!   `embedok`, `compressok`, `largeblockok`, `rawok`).
//! - [`Resumer`]: a writer that takes the stored stream from its first
//!   byte and writes the resuming stream on: its BEGIN record with the
//!   RESUMING feature and a payload nvlist with `resume_object` and
//!   `resume_offset` added (before a raw stream's `crypt_keydata`, as
//!   `dmu_send_impl` adds them), then the records at or after the token's
//!   (object, offset), as `zfs send -t` sends them (an object's OBJECT
//!   record, its FREE ranges that reach past the offset, its writes from
//!   the offset on, and everything of later objects), every record's
//!   running fletcher-4 checksum computed again, and the END record's.
//!   [`Resumer::from_checkpoint`] starts it from a checkpoint
//!   (checkpoint.rs) instead of from the first byte, fed the stored
//!   stream from the checkpoint's download piece on.
//!
//! Every record of the stored stream is checked against the stream's own
//! running fletcher-4 as it is read (unless its field is zeros, which `zfs
//! recv` takes as no checksum), and the snapshot's END record's total too (a
//! mismatch is [`Corrupt`]): the checksums written out are computed again,
//! so without this a changed byte would pass into the receive unseen (a
//! zfs3backup object has no SHA-256 in a manifest to catch it).
//!
//! What it does not know it refuses ([`Unsupported`]), and the caller
//! receives the object whole instead: a byte-swapped stream, a compound
//! one with more than one snapshot, a redacted one, more than one stream
//! in the object (`zfs send -I`), a record type it does not know.
//!
//! The layouts are OpenZFS's `include/sys/zfs_ioctl.h` (struct
//! dmu_replay_record, 312 bytes, little-endian as written on x86), the
//! checksum rule is `dump_record` in `module/zfs/dmu_send.c` (checked by
//! `receive_read_payload_and_next_header` in `dmu_recv.c`), and the
//! nvlist encoding is `module/nvpair/nvpair.c`'s native one. The unit
//! tests check the result byte for byte against `zfs send -t` streams
//! recorded in the lab (`fixtures/resume`).

use std::io::{self, Write};

use crate::checkpoint::Checkpoint;

/// A record header's size.
pub const RECORD: usize = 312;
/// Where a record's checksum is (its last 32 bytes).
pub(crate) const CKSUM_AT: usize = RECORD - 32;
/// BEGIN's magic number.
const MAGIC: u64 = 0x2_f5ba_cbac;
/// `DMU_SUBSTREAM`: one snapshot's stream (2 is a compound stream).
const SUBSTREAM: u64 = 1;
pub(crate) const COMPOUND: u64 = 2;
const EMBED_DATA: u64 = 1 << 16;
const LARGE_BLOCKS: u64 = 1 << 19;
const RESUMING: u64 = 1 << 20;
const COMPRESSED: u64 = 1 << 22;
const REDACTED: u64 = 1 << 21;
const RAW: u64 = 1 << 24;
/// The largest payload taken (a 16 MiB block, with room).
const MAX_PAYLOAD: usize = 32 << 20;

pub(crate) const BEGIN: u32 = 0;
const OBJECT: u32 = 1;
const FREEOBJECTS: u32 = 2;
pub(crate) const WRITE: u32 = 3;
const FREE: u32 = 4;
pub(crate) const END: u32 = 5;
const WRITE_BYREF: u32 = 6;
const SPILL: u32 = 7;
const WRITE_EMBEDDED: u32 = 8;
const OBJECT_RANGE: u32 = 9;

/// A decoded `receive_resume_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Where the receive got to: the object and offset of its last write
    /// saved, and the stream's bytes read by then.
    pub object: u64,
    pub offset: u64,
    pub bytes: u64,
    pub toguid: u64,
    /// 0 for a full stream.
    pub fromguid: u64,
    pub toname: String,
    /// The booleans it carries (`embedok`, `compressok`, `rawok`, ...).
    pub flags: Vec<String>,
}

/// A stream this module does not rewrite, and why (one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

/// The stored stream fails its own checksums: it is corrupt (one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Corrupt {}

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

impl Token {
    /// Decodes a token as `zfs get receive_resume_token` shows it.
    pub fn decode(s: &str) -> Result<Token, String> {
        let mut parts = s.trim().splitn(4, '-');
        let (Some(version), Some(cksum), Some(len), Some(hex)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a resume token is VERSION-CHECKSUM-LENGTH-DATA".into());
        };
        if version != "1" {
            return Err(format!("resume token version {version:?}, not 1"));
        }
        let num = |h: &str, what: &str| {
            u64::from_str_radix(h, 16).map_err(|_| format!("resume token: {what} {h:?} is not hex"))
        };
        let (cksum, len) = (num(cksum, "checksum")?, num(len, "length")?);
        let zipped = unhex(hex).ok_or("resume token: its data is not hex")?;
        let mut c = Fletcher4::default();
        c.update(&zipped[..zipped.len() / 4 * 4]);
        if c.words()[0] != cksum {
            return Err("resume token is corrupt (checksum mismatch)".into());
        }
        let packed = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&zipped, 1 << 20)
            .map_err(|e| format!("resume token: its data does not inflate ({:?})", e.status))?;
        if packed.len() as u64 != len {
            return Err(format!(
                "resume token: {} bytes inflated, the token says {len}",
                packed.len()
            ));
        }
        let pairs = nvlist(&packed).map_err(|e| format!("resume token: {e}"))?;
        let u = |name: &str| {
            pairs.iter().find_map(|(n, v)| match v {
                Value::U64(x) if n == name => Some(*x),
                _ => None,
            })
        };
        let need = |name: &str| u(name).ok_or(format!("resume token: no {name}"));
        Ok(Token {
            object: need("object")?,
            offset: need("offset")?,
            bytes: need("bytes")?,
            toguid: need("toguid")?,
            fromguid: u("fromguid").unwrap_or(0),
            toname: pairs
                .iter()
                .find_map(|(n, v)| match v {
                    Value::Str(s) if n == "toname" => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            flags: pairs
                .iter()
                .filter(|(_, v)| matches!(v, Value::Bool))
                .map(|(n, _)| n.clone())
                .collect(),
        })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The running fletcher-4 of OpenZFS (`fletcher_4_incremental_native`):
/// four 64-bit sums over the little-endian 32-bit words.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fletcher4 {
    a: u64,
    b: u64,
    c: u64,
    d: u64,
}

impl Fletcher4 {
    /// Adds `buf` (a whole number of 32-bit words; records and payloads are).
    pub fn update(&mut self, buf: &[u8]) {
        let (mut a, mut b, mut c, mut d) = (self.a, self.b, self.c, self.d);
        for w in buf.chunks_exact(4) {
            a = a.wrapping_add(u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
            b = b.wrapping_add(a);
            c = c.wrapping_add(b);
            d = d.wrapping_add(c);
        }
        (self.a, self.b, self.c, self.d) = (a, b, c, d);
    }

    pub fn words(&self) -> [u64; 4] {
        [self.a, self.b, self.c, self.d]
    }

    pub fn from_words([a, b, c, d]: [u64; 4]) -> Self {
        Fletcher4 { a, b, c, d }
    }

    /// The sums before `buf` was added, from those after it
    /// ([`Fletcher4::update`] taken back, word by word from the last).
    pub fn undo(&mut self, buf: &[u8]) {
        let (mut a, mut b, mut c, mut d) = (self.a, self.b, self.c, self.d);
        for w in buf.chunks_exact(4).rev() {
            d = d.wrapping_sub(c);
            c = c.wrapping_sub(b);
            b = b.wrapping_sub(a);
            a = a.wrapping_sub(u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
        }
        (self.a, self.b, self.c, self.d) = (a, b, c, d);
    }

    pub(crate) fn bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, w) in self.words().iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// A value of a native nvlist, as far as this module reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    U64(u64),
    Str(String),
    /// DATA_TYPE_BOOLEAN: the name alone.
    Bool,
    /// Anything else, by its data type.
    Other(i32),
}

const DATA_TYPE_BOOLEAN: i32 = 1;
const DATA_TYPE_UINT64: i32 = 8;
const DATA_TYPE_STRING: i32 = 9;
const DATA_TYPE_NVLIST: i32 = 19;
const DATA_TYPE_NVLIST_ARRAY: i32 = 20;

pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The pairs of a packed nvlist in native little-endian encoding (the
/// 4-byte header, version and flags, then each pair: its size, name
/// size, element count, type, name padded to 8, value; a zero size ends
/// it). An embedded nvlist's pairs follow its pair, with their own end
/// (`nvs_embedded` in nvpair.c); they are skipped. Also where the top
/// list's pairs start and where its end mark is.
fn nvlist(b: &[u8]) -> Result<Vec<(String, Value)>, String> {
    nvlist_at(b).map(|(pairs, _)| pairs)
}

/// [`nvlist`], with the offset of the top list's end mark.
fn nvlist_at(b: &[u8]) -> Result<(Vec<(String, Value)>, usize), String> {
    if b.get(..2) != Some(&[0, 1]) {
        return Err("not a little-endian native nvlist".into());
    }
    let mut out = Vec::new();
    let end = pairs(b, 12, 0, &mut |name, value| out.push((name, value)))?;
    Ok((out, end))
}

/// Walks the pairs from `at` to their end mark (returned), calling `each`
/// with those of this level; embedded lists (`depth` at most 8) skipped.
fn pairs(
    b: &[u8],
    mut at: usize,
    depth: u32,
    each: &mut dyn FnMut(String, Value),
) -> Result<usize, String> {
    let bad = || "a truncated nvlist".to_string();
    if depth > 8 {
        return Err("nvlists embedded too deep".into());
    }
    loop {
        let size = le32(b, at).ok_or_else(bad)? as usize;
        if size == 0 {
            return Ok(at);
        }
        let pair = b.get(at..at + size).ok_or_else(bad)?;
        let name_sz = usize::from(u16::from_le_bytes([pair[4], pair[5]]));
        let ty = le32(pair, 12).ok_or_else(bad)? as i32;
        let name = pair.get(16..16 + name_sz).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name.strip_suffix(&[0]).unwrap_or(name)).into_owned();
        let value_at = (16 + name_sz).next_multiple_of(8);
        let value = match ty {
            DATA_TYPE_UINT64 => Value::U64(le64(pair, value_at).ok_or_else(bad)?),
            DATA_TYPE_STRING => {
                let v = pair.get(value_at..).ok_or_else(bad)?;
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                Value::Str(String::from_utf8_lossy(&v[..end]).into_owned())
            }
            DATA_TYPE_BOOLEAN => Value::Bool,
            DATA_TYPE_NVLIST_ARRAY => return Err(format!("{name}: an nvlist array")),
            t => Value::Other(t),
        };
        at += size;
        if ty == DATA_TYPE_NVLIST {
            at = pairs(b, at, depth + 1, &mut |_, _| {})? + 4;
        }
        each(name, value);
    }
}

/// One uint64 pair in native encoding.
fn nvpair_u64(name: &str, v: u64) -> Vec<u8> {
    let name_sz = name.len() + 1;
    let value_at = (16 + name_sz).next_multiple_of(8);
    let size = value_at + 8;
    let mut p = Vec::with_capacity(size);
    p.extend_from_slice(&(size as u32).to_le_bytes());
    p.extend_from_slice(&(name_sz as u16).to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    p.extend_from_slice(&(DATA_TYPE_UINT64 as u32).to_le_bytes());
    p.extend_from_slice(name.as_bytes());
    p.resize(value_at, 0);
    p.extend_from_slice(&v.to_le_bytes());
    p
}

/// BEGIN's payload with `resume_object` and `resume_offset` added, as
/// `zfs send -t` makes it (`dmu_send_impl`: the resume point, then a raw
/// stream's `crypt_keydata`, which is the snapshot's and so the stored
/// one): the two pairs first, before the stored ones, or in a new nvlist.
/// A stored pair other than `crypt_keydata` (a redacted stream's, which
/// come before the resume point) is refused.
fn resume_payload(stored: &[u8], t: &Token) -> Result<Vec<u8>, Unsupported> {
    let mut out = if stored.is_empty() {
        // Native, little-endian; version 0; NV_UNIQUE_NAME; the end mark.
        vec![0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    } else {
        let (pairs, end) = nvlist_at(stored)
            .map_err(|e| Unsupported(format!("the BEGIN record's payload: {e}")))?;
        if pairs.iter().any(|(n, _)| n.starts_with("resume_")) {
            return unsupported("the stored stream is itself a resuming one");
        }
        if let Some((n, _)) = pairs.iter().find(|(n, _)| n != "crypt_keydata") {
            return unsupported(format!("the BEGIN record's payload has {n:?}"));
        }
        if end + 4 != stored.len() {
            return unsupported("the BEGIN record's payload does not end as a native nvlist");
        }
        stored.to_vec()
    };
    let mut pairs = nvpair_u64("resume_object", t.object);
    pairs.extend(nvpair_u64("resume_offset", t.offset));
    out.splice(12..12, pairs);
    Ok(out)
}

/// The payload that follows a record (`receive_read_record`'s sizes).
pub(crate) fn payload_len(h: &[u8; RECORD]) -> Result<usize, Unsupported> {
    let ty = le32(h, 0).unwrap_or(u32::MAX);
    let u32_at = |at| le32(h, at).unwrap_or(0) as u64;
    let u64_at = |at| le64(h, at).unwrap_or(0);
    let len = match ty {
        BEGIN => u32_at(4),
        // drr_raw_bonuslen when raw, else drr_bonuslen rounded up to 8.
        OBJECT => match u32_at(36) {
            0 => u32_at(28).next_multiple_of(8),
            raw => raw,
        },
        FREEOBJECTS | FREE | END | WRITE_BYREF | OBJECT_RANGE => 0,
        // drr_compressed_size when drr_compressiontype is set, else
        // drr_logical_size.
        WRITE => match h[50] {
            0 => u64_at(32),
            _ => u64_at(96),
        },
        // drr_psize rounded up to 8.
        WRITE_EMBEDDED => u32_at(52).next_multiple_of(8),
        // drr_compressed_size when set (raw), else drr_length.
        SPILL => match u64_at(40) {
            0 => u64_at(16),
            n => n,
        },
        t => return unsupported(format!("a record of type {t}, which zab does not know")),
    };
    match usize::try_from(len) {
        Ok(n) if n <= MAX_PAYLOAD => Ok(n),
        _ => unsupported(format!(
            "a record of type {ty} with a payload of {len} bytes"
        )),
    }
}

/// A record's header and its payload.
pub(crate) type Rec<'a> = ([u8; RECORD], &'a [u8]);

/// The whole records of `b` (headers and payloads), as checkpoint.rs
/// keeps them.
pub(crate) fn split_records(b: &[u8]) -> Result<Vec<Rec<'_>>, Unsupported> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let h: [u8; RECORD] = match b.get(at..at + RECORD).map(<[u8; RECORD]>::try_from) {
            Some(Ok(h)) => h,
            _ => return unsupported("a checkpoint's records are cut short"),
        };
        let n = payload_len(&h)?;
        let Some(p) = b.get(at + RECORD..at + RECORD + n) else {
            return unsupported("a checkpoint's records are cut short");
        };
        out.push((h, p));
        at += RECORD + n;
    }
    Ok(out)
}

/// Whether `zfs send -t` sends the record: what is at or after the
/// token's (object, offset).
fn wanted(h: &[u8; RECORD], t: &Token) -> bool {
    wanted_at(h, (t.object, t.offset))
}

/// [`wanted`] for a resume point (object, offset). Monotone: a record
/// wanted for a point is wanted for every earlier one.
pub(crate) fn wanted_at(h: &[u8; RECORD], (ro, roff): (u64, u64)) -> bool {
    let u = |at| le64(h, at).unwrap_or(0);
    match le32(h, 0).unwrap_or(0) {
        OBJECT | SPILL => u(8) >= ro,
        // drr_firstobj and drr_numobjs, drr_numslots.
        FREEOBJECTS | OBJECT_RANGE => u(8).saturating_add(u(16)) > ro,
        WRITE => u(8) > ro || (u(8) == ro && u(24) >= roff),
        WRITE_BYREF | WRITE_EMBEDDED => u(8) > ro || (u(8) == ro && u(16) >= roff),
        // A free range that reaches past the offset.
        FREE => u(8) > ro || (u(8) == ro && u(16).saturating_add(u(24)) > roff),
        _ => true,
    }
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first BEGIN.
    Begin,
    /// In a compound stream's header (`zfs send -p`: its BEGIN, the
    /// properties, its END), dropped as `zfs send -t` drops it.
    Header,
    /// Before the snapshot's own BEGIN, after a compound header.
    SubBegin,
    Records,
    /// After the snapshot's END: only a compound stream's END may come.
    Ended,
    /// After that END: nothing more may come.
    Done,
}

/// Writes the resuming stream for token `t` to `out` as the stored stream
/// is written to it, from its first byte. A write that meets what it does
/// not rewrite fails with an [`io::Error`] whose inner error is
/// [`Unsupported`] (see [`unsupported_in`]).
#[derive(Debug)]
pub struct Resumer<W> {
    out: W,
    token: Token,
    buf: Vec<u8>,
    state: State,
    /// A compound stream's header was dropped.
    saw_header: bool,
    cksum: Fletcher4,
    /// The stored stream's running checksum, to check its records by.
    incksum: Fletcher4,
    /// Records of the stored stream taken, and their bytes.
    records: u64,
    taken: u64,
    /// Stored stream bytes taken, and resuming stream bytes written.
    pub read: u64,
    pub written: u64,
    /// Bytes to drop before the next record (from a checkpoint's piece
    /// to the checkpoint).
    skip: u64,
}

impl<W: Write> Resumer<W> {
    pub fn new(out: W, token: Token) -> Self {
        Resumer {
            out,
            token,
            buf: Vec::with_capacity(1 << 20),
            state: State::Begin,
            saw_header: false,
            cksum: Fletcher4::default(),
            incksum: Fletcher4::default(),
            records: 0,
            taken: 0,
            read: 0,
            written: 0,
            skip: 0,
        }
    }

    /// A resumer that goes on from checkpoint `cp` (checkpoint.rs), to be
    /// written the stored stream from the checkpoint's piece on: the new
    /// BEGIN made from the saved one, the saved records before the
    /// checkpoint that `zfs send -t` sends for the token (not checked
    /// against the running checksum: they are before it), the running
    /// checksum set to the saved one, the bytes from the piece to the
    /// checkpoint dropped; then on as from byte 0.
    pub fn from_checkpoint(out: W, token: Token, cp: &Checkpoint) -> io::Result<Self> {
        if (cp.object, cp.offset) > (token.object, token.offset) || cp.piece > cp.at {
            return Err(into_io(Unsupported(
                "the checkpoint is past the resume point".into(),
            )));
        }
        let mut r = Resumer::new(out, token);
        r.state = State::Records;
        r.saw_header = cp.header;
        r.incksum = Fletcher4::from_words(cp.fletcher);
        (r.records, r.taken) = (cp.records, cp.at);
        (r.read, r.skip) = (cp.piece, cp.at - cp.piece);
        let begin = split_records(&cp.begin).map_err(into_io)?;
        let [(h, p)] = begin[..] else {
            return Err(into_io(Unsupported(
                "a checkpoint's BEGIN is not one record".into(),
            )));
        };
        if le32(&h, 0) != Some(BEGIN) {
            return Err(into_io(Unsupported(
                "a checkpoint's BEGIN is not one".into(),
            )));
        }
        r.begin(h, p)?;
        for (h, p) in split_records(&cp.context).map_err(into_io)? {
            if wanted(&h, &r.token) {
                r.emit_record(h, p)?;
            }
        }
        Ok(r)
    }

    #[cfg(test)]
    /// Whether the whole stream went through (the snapshot's END, and a
    /// compound stream's own END after it).
    pub fn ended(&self) -> bool {
        match self.saw_header {
            true => self.state == State::Done,
            false => self.state == State::Ended,
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.cksum.update(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// A record (not BEGIN) with its checksum computed again.
    fn emit_record(&mut self, mut h: [u8; RECORD], payload: &[u8]) -> io::Result<()> {
        if le32(&h, 0) == Some(END) {
            h[8..40].copy_from_slice(&self.cksum.bytes());
        }
        self.cksum.update(&h[..CKSUM_AT]);
        let sum = self.cksum.bytes();
        h[CKSUM_AT..].copy_from_slice(&sum);
        self.cksum.update(&sum);
        self.written += RECORD as u64;
        self.out.write_all(&h)?;
        self.emit(payload)
    }

    /// The new BEGIN, from the stored one and its payload.
    fn begin(&mut self, mut h: [u8; RECORD], payload: &[u8]) -> Result<(), io::Error> {
        let check = || -> Result<Vec<u8>, Unsupported> {
            match le64(&h, 8) {
                Some(MAGIC) => {}
                Some(m) if m.swap_bytes() == MAGIC => {
                    return unsupported("a stream of the other byte order")
                }
                _ => return unsupported("the object is not a zfs send stream (no BEGIN magic)"),
            }
            let vi = le64(&h, 16).unwrap_or(0);
            let features = (vi >> 2) & ((1 << 30) - 1);
            if vi & 3 != SUBSTREAM {
                return unsupported("a compound stream with more in it than one snapshot");
            }
            if features & (REDACTED | RESUMING) != 0 {
                return unsupported("a redacted or resuming stream");
            }
            let (to, from) = (le64(&h, 40).unwrap_or(0), le64(&h, 48).unwrap_or(0));
            if to != self.token.toguid || from != self.token.fromguid {
                return unsupported(format!(
                    "the stream goes from guid {from} to {to}, the token from {} to {}",
                    self.token.fromguid, self.token.toguid
                ));
            }
            // The partial receive's flags are its stream's features: a
            // stream sent with others would not go on with the same blocks.
            for (flag, feature) in [
                ("embedok", EMBED_DATA),
                ("compressok", COMPRESSED),
                ("largeblockok", LARGE_BLOCKS),
                ("rawok", RAW),
            ] {
                let has = self.token.flags.iter().any(|f| f == flag);
                if has != (features & feature != 0) {
                    return unsupported(format!(
                        "the partial receive came from a stream sent with other flags ({flag} {})",
                        if has {
                            "in the token, not in the object"
                        } else {
                            "in the object, not in the token"
                        }
                    ));
                }
            }
            resume_payload(payload, &self.token)
        };
        let new = check().map_err(into_io)?;
        let vi = le64(&h, 16).unwrap_or(0) | (RESUMING << 2);
        h[16..24].copy_from_slice(&vi.to_le_bytes());
        h[4..8].copy_from_slice(&(new.len() as u32).to_le_bytes());
        self.emit(&h)?;
        self.emit(&new)
    }

    /// Takes the whole records in `buf`.
    fn drain(&mut self) -> io::Result<()> {
        let mut at = 0;
        while self.buf.len() - at >= RECORD {
            let mut h = [0u8; RECORD];
            h.copy_from_slice(&self.buf[at..at + RECORD]);
            let ty = le32(&h, 0);
            let no = |why: &str| Err(into_io(Unsupported(why.to_string())));
            match (self.state, ty) {
                (State::Begin | State::SubBegin, Some(BEGIN)) => {}
                (State::Begin | State::SubBegin, _) => {
                    return no("the object does not begin with a BEGIN record")
                }
                (State::Header, Some(END)) => {}
                (State::Header, _) => return no("a compound stream's header without its END"),
                (State::Records, Some(BEGIN)) => {
                    return no("a second BEGIN record inside the stream")
                }
                (State::Records, _) => {}
                (State::Ended, Some(END)) if self.compound() => {}
                (State::Ended | State::Done, _) => {
                    return no("more than one stream in the object (zfs send -I)")
                }
            }
            let n = payload_len(&h).map_err(into_io)?;
            if self.buf.len() - at < RECORD + n {
                break;
            }
            let payload = std::mem::take(&mut self.buf);
            let p = &payload[at + RECORD..at + RECORD + n];
            if let Err(c) = self.check_in(&h, p) {
                self.buf = payload;
                return Err(io::Error::new(io::ErrorKind::InvalidData, c));
            }
            let vi = le64(&h, 16).unwrap_or(0);
            let r = match self.state {
                State::Begin if vi & 3 == COMPOUND => {
                    self.state = State::Header;
                    self.saw_header = true;
                    Ok(())
                }
                State::Begin | State::SubBegin => {
                    self.state = State::Records;
                    self.begin(h, p)
                }
                State::Header => {
                    self.state = State::SubBegin;
                    Ok(())
                }
                State::Ended => {
                    self.state = State::Done;
                    Ok(())
                }
                _ if ty == Some(END) => {
                    self.state = State::Ended;
                    self.emit_record(h, p)
                }
                _ if wanted(&h, &self.token) => self.emit_record(h, p),
                _ => Ok(()),
            };
            self.buf = payload;
            r?;
            at += RECORD + n;
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// Checks a stored record against the stored stream's running
    /// checksum (`dump_record`'s rule: every record but BEGIN carries the
    /// checksum of the stream up to its checksum field, which starts again
    /// at each BEGIN; END also carries the one before it), and adds it.
    fn check_in(&mut self, h: &[u8; RECORD], payload: &[u8]) -> Result<(), Corrupt> {
        let ty = le32(h, 0);
        if ty == Some(BEGIN) {
            self.incksum = Fletcher4::default();
        }
        let before = self.incksum;
        self.incksum.update(&h[..CKSUM_AT]);
        // A field of zeros is no checksum (a compound stream's header
        // END has none), as `zfs recv` reads it; the snapshot's END always
        // carries the total (the compound stream's own last END does not).
        let field = &h[CKSUM_AT..];
        let total = &h[8..40];
        let bad = (ty != Some(BEGIN) && field != [0; 32] && field != self.incksum.bytes())
            || (ty == Some(END)
                && total != before.bytes()
                && (self.state == State::Records || total != [0; 32]));
        if bad {
            return Err(Corrupt(format!(
                "record {} of the stored stream (at byte {}) fails its checksum",
                self.records, self.taken
            )));
        }
        self.incksum.update(&h[CKSUM_AT..]);
        self.incksum.update(payload);
        self.records += 1;
        self.taken += (RECORD + payload.len()) as u64;
        Ok(())
    }

    /// Whether the stored stream is a compound one (its header dropped).
    fn compound(&self) -> bool {
        self.saw_header
    }
}

impl<W: Write> Write for Resumer<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.read += b.len() as u64;
        let drop = usize::try_from(self.skip)
            .unwrap_or(usize::MAX)
            .min(b.len());
        self.skip -= drop as u64;
        self.buf.extend_from_slice(&b[drop..]);
        self.drain()?;
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn into_io(u: Unsupported) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, u)
}

/// The [`Unsupported`] inside an error of [`Resumer`]'s writes, if that
/// is what it is.
pub fn unsupported_in(e: &io::Error) -> Option<&Unsupported> {
    e.get_ref().and_then(|i| i.downcast_ref::<Unsupported>())
}

/// The [`Corrupt`] inside an error of [`Resumer`]'s writes, if that is
/// what it is.
pub fn corrupt_in(e: &io::Error) -> Option<&Corrupt> {
    e.get_ref().and_then(|i| i.downcast_ref::<Corrupt>())
}

/// The streams recorded in the lab (zab-restore/fixtures/resume): each a
/// stored stream, `zfs send -t`'s resuming stream and the token.
#[cfg(test)]
pub(crate) mod fixtures {
    pub const FULL: &[u8] = include_bytes!("../fixtures/resume/full.zs");
    pub const RESUMED: &[u8] = include_bytes!("../fixtures/resume/resumed.zs");
    pub const TOKEN: &str = include_str!("../fixtures/resume/token");
    pub const FULL2: &[u8] = include_bytes!("../fixtures/resume/full2.zs");
    pub const RESUMED2: &[u8] = include_bytes!("../fixtures/resume/resumed2.zs");
    pub const TOKEN2: &str = include_str!("../fixtures/resume/token2");
    pub const FULL3: &[u8] = include_bytes!("../fixtures/resume/full3.zs");
    pub const RESUMED3: &[u8] = include_bytes!("../fixtures/resume/resumed3.zs");
    pub const TOKEN3: &str = include_str!("../fixtures/resume/token3");
    // Raw (zfs send -L -e -w -p of an encrypted dataset): record-raw.
    pub const FULL4: &[u8] = include_bytes!("../fixtures/resume/full4.zs");
    pub const RESUMED4: &[u8] = include_bytes!("../fixtures/resume/resumed4.zs");
    pub const TOKEN4: &str = include_str!("../fixtures/resume/token4");
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::fixtures::*;

    fn resume(stream: &[u8], token: &str, chunk: usize) -> Result<Vec<u8>, io::Error> {
        let mut r = Resumer::new(Vec::new(), Token::decode(token).unwrap());
        for c in stream.chunks(chunk) {
            r.write_all(c)?;
        }
        assert!(r.ended());
        assert_eq!(r.read, stream.len() as u64);
        assert_eq!(r.written, r.out.len() as u64);
        Ok(r.into_inner())
    }

    /// Each record's type and where its checksum is right, as zfs recv
    /// checks it: the running fletcher-4 before the checksum field.
    fn check_stream(s: &[u8]) -> Vec<u32> {
        let mut c = Fletcher4::default();
        let mut at = 0;
        let mut types = Vec::new();
        while at < s.len() {
            let h: [u8; RECORD] = s[at..at + RECORD].try_into().unwrap();
            let ty = le32(&h, 0).unwrap();
            c.update(&h[..CKSUM_AT]);
            if ty != BEGIN {
                assert_eq!(&h[CKSUM_AT..], &c.bytes(), "record {} at {at}", types.len());
            }
            if ty == END {
                assert_ne!(&h[8..40], &[0; 32]);
            }
            c.update(&h[CKSUM_AT..]);
            let n = payload_len(&h).unwrap();
            c.update(&s[at + RECORD..at + RECORD + n]);
            at += RECORD + n;
            types.push(ty);
        }
        assert_eq!(at, s.len());
        types
    }

    #[test]
    fn tokens_recorded_in_the_lab_decode() {
        let t = Token::decode(TOKEN).unwrap();
        assert_eq!(
            t,
            Token {
                object: 3,
                offset: 0,
                bytes: 0x40c8,
                toguid: 0x9c9f_8022_2989_7776,
                fromguid: 0,
                toname: "zabr-resfix/src@s1".into(),
                flags: Vec::new(),
            }
        );
        let t = Token::decode(TOKEN2).unwrap();
        assert_eq!((t.object, t.offset, t.bytes), (2, 0x8000, 0xaba8));
        assert_eq!(t.toguid, 0x5b8c_6449_4a1c_eb31);
        assert_eq!(t.toname, "zabr-resfix/src2@s1");
        assert_eq!(t.flags, ["embedok", "compressok"]);
    }

    #[test]
    fn a_bad_token_is_one_line_of_error() {
        let t = TOKEN.trim();
        for (bad, says) in [
            ("", "VERSION-CHECKSUM"),
            (&t.replacen("1-", "2-", 1), "version"),
            (&t.replacen("789c63", "789c64", 1), "checksum mismatch"),
            (&format!("{t}0"), "not hex"),
        ] {
            let e = Token::decode(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_recorded_streams_checksums_are_ours() {
        assert_eq!(check_stream(FULL).last(), Some(&END));
        assert_eq!(check_stream(RESUMED)[0], BEGIN);
        check_stream(FULL2);
        check_stream(RESUMED2);
    }

    #[test]
    fn the_resuming_stream_is_zfs_send_t_byte_for_byte() {
        for chunk in [1 << 20, 4096, 7] {
            assert!(resume(FULL, TOKEN, chunk).unwrap() == RESUMED, "{chunk}");
        }
        // Compressed (-c) and embedded (-e) writes, inside an object.
        let out = resume(FULL2, TOKEN2, 65536).unwrap();
        check_stream(&out);
        assert!(out == RESUMED2);
        // zab-send's own kind (-L -e -p): a compound stream, whose header
        // (the properties, received with the first part) goes.
        assert!(resume(FULL3, TOKEN3, 5000).unwrap() == RESUMED3);
    }

    #[test]
    fn a_raw_resuming_stream_is_zfs_send_t_byte_for_byte() {
        let t = Token::decode(TOKEN4).unwrap();
        assert!(t.flags.iter().any(|f| f == "rawok"), "{t:?}");
        // (FULL4 is a compound stream, whose header has no checksums.)
        check_stream(RESUMED4);
        for chunk in [1 << 20, 4096, 13] {
            let out = resume(FULL4, TOKEN4, chunk).unwrap();
            assert!(
                out == RESUMED4,
                "{chunk}: {} bytes against {}",
                out.len(),
                RESUMED4.len()
            );
        }
    }

    #[test]
    fn what_it_does_not_rewrite_it_refuses() {
        let refused = |s: &[u8]| {
            let e = resume(s, TOKEN, 4096).unwrap_err();
            unsupported_in(&e).unwrap().to_string()
        };
        // Another snapshot's stream.
        assert!(refused(FULL2).contains("the token from"));
        // Raw, where the partial receive was not.
        let mut s = FULL.to_vec();
        let vi = le64(&s, 16).unwrap() | (RAW << 2);
        s[16..24].copy_from_slice(&vi.to_le_bytes());
        assert!(
            refused(&s).contains("rawok in the object"),
            "{}",
            refused(&s)
        );
        // Two streams in one object.
        let mut s = FULL.to_vec();
        s.extend_from_slice(FULL);
        let mut r = Resumer::new(Vec::new(), Token::decode(TOKEN).unwrap());
        let e = r.write_all(&s).unwrap_err();
        assert!(unsupported_in(&e).unwrap().0.contains("more than one"));
        // A partial receive of a stream sent with other flags (here -e).
        let mut t = Token::decode(TOKEN3).unwrap();
        t.flags.clear();
        let mut r = Resumer::new(Vec::new(), t);
        let e = r.write_all(FULL3).unwrap_err();
        assert!(unsupported_in(&e).unwrap().0.contains("embedok"), "{e}");
        // An unknown record type.
        let mut s = FULL.to_vec();
        s[RECORD] = 42;
        assert!(refused(&s).contains("type 42"));
        // Not a stream at all.
        assert!(refused(&[7u8; 4096]).contains("BEGIN"));
    }

    /// Where each record of `s` starts, and its payload's length.
    fn records_of(s: &[u8]) -> Vec<(usize, u32, usize)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < s.len() {
            let h: [u8; RECORD] = s[at..at + RECORD].try_into().unwrap();
            let n = payload_len(&h).unwrap();
            out.push((at, le32(&h, 0).unwrap(), n));
            at += RECORD + n;
        }
        out
    }

    #[test]
    fn a_changed_byte_of_the_stored_stream_is_corrupt_wherever_it_is() {
        let recs = records_of(FULL);
        let writes: Vec<_> = recs.iter().filter(|r| r.1 == WRITE && r.2 > 0).collect();
        let end = recs.last().unwrap();
        assert_eq!(end.1, END);
        for (what, at) in [
            // A write before the token's point (not sent on), and the last.
            ("first write's payload", writes[0].0 + RECORD + 10),
            (
                "last write's payload",
                writes.last().unwrap().0 + RECORD + 5,
            ),
            ("a record's checksum", writes[1].0 + CKSUM_AT + 3),
            ("END's total", end.0 + 8),
        ] {
            let mut s = FULL.to_vec();
            s[at] ^= 0x10;
            let mut r = Resumer::new(Vec::new(), Token::decode(TOKEN).unwrap());
            let e = r.write_all(&s).unwrap_err();
            let c = corrupt_in(&e).unwrap_or_else(|| panic!("{what}: {e}"));
            assert!(c.0.contains("fails its checksum"), "{what}: {c}");
        }
        // The compound stream's header is checked too.
        let mut s = FULL3.to_vec();
        let header_end = records_of(FULL3)[1].0;
        s[header_end + 8] ^= 1;
        let mut r = Resumer::new(Vec::new(), Token::decode(TOKEN3).unwrap());
        assert!(corrupt_in(&r.write_all(&s).unwrap_err()).is_some());
    }

    #[test]
    fn a_stored_payload_keeps_its_pairs_and_gets_the_resume_point_first() {
        let t = Token::decode(TOKEN2).unwrap();
        let first = resume_payload(&[], &t).unwrap();
        let with_more = resume_payload(&first[..first.len()], &t);
        assert!(with_more.unwrap_err().0.contains("itself a resuming"));
        // A raw stream's payload: crypt_keydata, an embedded nvlist (its
        // pairs after its own pair, with their own end mark).
        let mut stored = vec![0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let name = b"crypt_keydata\0";
        let size = (16 + name.len()).next_multiple_of(8) + 24;
        stored.extend((size as u32).to_le_bytes());
        stored.extend((name.len() as u16).to_le_bytes());
        stored.extend([0, 0]);
        stored.extend(1u32.to_le_bytes());
        stored.extend((DATA_TYPE_NVLIST as u32).to_le_bytes());
        stored.extend(name);
        stored.resize(12 + size, 0);
        stored.extend(nvpair_u64("mdn_nlevels", 6));
        stored.extend([0; 4]);
        stored.extend([0; 4]);
        let out = resume_payload(&stored, &t).unwrap();
        let p = nvlist(&out).unwrap();
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["resume_object", "resume_offset", "crypt_keydata"]);
        assert_eq!(p[1].1, Value::U64(0x8000));
        assert_eq!(&out[out.len() - stored.len() + 12..], &stored[12..]);
        // Any other stored pair (a redacted stream's) is refused.
        let mut other = vec![0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        other.extend(nvpair_u64("redact_snaps", 9));
        other.extend([0; 4]);
        assert!(resume_payload(&other, &t)
            .unwrap_err()
            .0
            .contains("redact_snaps"));
        // Cut short.
        assert!(resume_payload(&stored[..stored.len() - 4], &t).is_err());
    }
}
