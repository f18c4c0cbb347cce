//! `zab-thin --offline`: thins a list of snapshot records from stdin without
//! touching ZFS, for other backup scripts that want zfs-autobackup's
//! schedule (`--keep`) and its reasons.
//!
//! Input, one per line: `{"kind":"snapshot","name":…,"timestamp":…}` with
//! optional `dataset` (each dataset is thinned on its own) and `protected`,
//! any order, optionally ended by an `end` record. Output: the same records
//! in the same order with `action`, `reason` and `holds` added, then an `end`
//! record. The format is specified in docs/records.md (`## zab-thin
//! --offline`). The whole input is read and checked before anything is
//! written: a bad line gives one error line, exit 3 and no output.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Instant;

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zab_core::error::Error;
use zab_core::ndjson::{Reader, Writer};
use zab_core::schedule::{Schedule, Verdict};

use crate::cli::{Offline, TOOL};
use crate::picture::{self, Timeline};

/// The latest time accepted (9999-12-31 23:59:59 UTC).
const MAX_TIME: i64 = 253_402_300_799;

/// The fields zab-thin writes; ones that come in are replaced, so a list
/// thinned once can be thinned again with another schedule.
const OURS: [&str; 3] = ["action", "reason", "holds"];

/// A line of input, parsed in one pass: serde's internally tagged enums
/// buffer each line whole before they look at `kind`, which costs more than
/// the thinning; and a derived `#[serde(flatten)]` map of the other fields
/// buffers every field (its key a new `String`) before it looks at any.
/// So the fields are taken one by one, as they come ([`LineVisitor`]): a
/// known key costs no allocation.
#[derive(Debug)]
struct Line {
    kind: Kind,
    name: Option<String>,
    timestamp: Option<i64>,
    dataset: Option<String>,
    protected: Option<bool>,
    extra: Map<String, Value>,
}

/// A key of [`Line`]: known ones by name, without a copy.
enum Field {
    Kind,
    Name,
    Timestamp,
    Dataset,
    Protected,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "kind" => Field::Kind,
                    "name" => Field::Name,
                    "timestamp" => Field::Timestamp,
                    "dataset" => Field::Dataset,
                    "protected" => Field::Protected,
                    other => Field::Other(other.to_string()),
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Line {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(LineVisitor)
    }
}

/// Reads a [`Line`] field by field; the same errors as the derived reader
/// (`missing field "kind"`, `duplicate field "name"`, the types' own).
struct LineVisitor;

/// Sets `slot` from the map's next value, once.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Visitor<'de> for LineVisitor {
    type Value = Line;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct Line")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
        let mut kind = None;
        let (mut name, mut timestamp, mut dataset, mut protected) = (None, None, None, None);
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Kind => once(&mut map, &mut kind, "kind")?,
                Field::Name => once(&mut map, &mut name, "name")?,
                Field::Timestamp => once(&mut map, &mut timestamp, "timestamp")?,
                Field::Dataset => once(&mut map, &mut dataset, "dataset")?,
                Field::Protected => once(&mut map, &mut protected, "protected")?,
                Field::Other(k) => {
                    let v: Value = map.next_value()?;
                    extra.insert(k, v);
                }
            }
        }
        Ok(Line {
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            name: name.flatten(),
            timestamp: timestamp.flatten(),
            dataset: dataset.flatten(),
            protected: protected.flatten(),
            extra,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Snapshot,
    /// Ends the input; its fields are not used.
    End,
}

/// One snapshot to thin. Boxed strings and a boxed map, as a million of
/// these are held at once (56 bytes each, where `String`s and a `Map` made
/// 88).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Its name (unique within its dataset).
    pub name: Box<str>,
    /// Its time, in seconds since 1970-01-01 UTC.
    pub timestamp: i64,
    /// The dataset it belongs to; snapshots without one form one group.
    pub dataset: Option<Box<str>>,
    /// Keep it whatever the schedule says.
    pub protected: Option<bool>,
    /// Anything else: passed through unchanged (None: nothing).
    pub extra: Option<Box<Map<String, Value>>>,
}

/// A line of output before the end record.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Output<'a> {
    Snapshot(Decided<'a>),
}

/// The end record's own fields (docs/records.md).
#[derive(Debug, Serialize)]
struct EndFields {
    snapshots: usize,
    keep: usize,
    destroy: usize,
}

/// A snapshot with its decision.
#[derive(Debug, Serialize)]
struct Decided<'a> {
    name: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protected: Option<bool>,
    action: &'static str,
    reason: &'a str,
    holds: Vec<Hold<'a>>,
    #[serde(flatten)]
    extra: Option<&'a Map<String, Value>>,
}

/// A block held by a kept snapshot.
#[derive(Debug, Serialize)]
struct Hold<'a> {
    rule: &'a str,
    block: i64,
}

/// Reads the whole input: the snapshots in input order. Refuses bad lines,
/// records after an `end` record, times out of range and a name given twice
/// within one dataset, naming the line.
pub fn read<R: BufRead>(input: R) -> Result<Vec<Snapshot>, Error> {
    let mut reader = Reader::new(input).expecting(
        "one JSON object per line, such as {\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":1763800000}",
    );
    let mut snaps = Vec::new();
    let mut lines = Vec::new();
    let mut ended = false;
    while let Some(rec) = reader.next_value::<Line>() {
        let line = reader.line();
        let bad = |message: String| Error::Input { line, message };
        if ended {
            return Err(bad("record after the end record".into()));
        }
        let mut rec = rec?;
        if let Kind::End = rec.kind {
            ended = true;
            continue;
        }
        let (Some(name), Some(timestamp)) = (rec.name, rec.timestamp) else {
            let field = if rec.timestamp.is_some() {
                "name"
            } else {
                "timestamp"
            };
            return Err(bad(format!("missing field \"{field}\"")));
        };
        if name.is_empty() {
            return Err(bad("empty snapshot name".into()));
        }
        if !(0..=MAX_TIME).contains(&timestamp) {
            return Err(bad(format!(
                "timestamp {timestamp} is out of range (seconds since 1970, up to the year 9999)"
            )));
        }
        for k in OURS {
            rec.extra.remove(k);
        }
        snaps.push(Snapshot {
            name: name.into_boxed_str(),
            timestamp,
            dataset: rec.dataset.map(String::into_boxed_str),
            protected: rec.protected,
            extra: (!rec.extra.is_empty()).then(|| Box::new(rec.extra)),
        });
        lines.push(line);
    }
    if let Some((again, first)) = repeated(&snaps) {
        let s = &snaps[again];
        let within = match &s.dataset {
            Some(d) => format!(" in dataset {d:?}"),
            None => String::new(),
        };
        return Err(Error::Input {
            line: lines[again],
            message: format!(
                "snapshot {:?}{within} is already on line {}",
                s.name, lines[first]
            ),
        });
    }
    Ok(snaps)
}

/// The first snapshot (in input order) whose name came before in its
/// dataset, with the one it repeats: (again, first), indices into `snaps`.
/// Sorting indices costs 8 bytes a snapshot where a hash map of names
/// cost about 60.
fn repeated(snaps: &[Snapshot]) -> Option<(usize, usize)> {
    let key = |i: usize| (snaps[i].dataset.as_deref(), &*snaps[i].name);
    let mut idx: Vec<usize> = (0..snaps.len()).collect();
    // Stable: equal names keep their input order.
    idx.sort_by(|&a, &b| key(a).cmp(&key(b)));
    idx.windows(2)
        .filter(|w| key(w[0]) == key(w[1]))
        .map(|w| (w[1], w[0]))
        .min()
}

/// One group of snapshots (one dataset), oldest first, with the decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub dataset: Option<String>,
    /// Indices into the input, oldest first.
    pub order: Vec<usize>,
    pub names: Vec<String>,
    pub times: Vec<i64>,
    pub verdicts: Vec<Verdict>,
}

impl Group {
    pub fn timeline<'a>(&'a self, schedule: &'a Schedule, now: i64) -> Timeline<'a> {
        Timeline {
            dataset: self.dataset.as_deref().unwrap_or(""),
            schedule,
            now,
            names: &self.names,
            times: &self.times,
            verdicts: &self.verdicts,
        }
    }
}

/// The decisions for every snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Groups in the order their first snapshot came in.
    pub groups: Vec<Group>,
    /// For each input snapshot: (group, position in the group).
    pub place: Vec<(usize, usize)>,
}

/// Thins each dataset's snapshots: sorted by time (then name), the newest
/// and the ones marked `protected` kept whatever the schedule says. The
/// names move from `snaps` into the groups (`snaps[i].name` is empty
/// after), as a second copy of every name cost 56 bytes a snapshot.
pub fn plan(snaps: &mut [Snapshot], schedule: &Schedule, now: i64) -> Plan {
    let mut index: HashMap<Option<&str>, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut last: Option<(Option<&str>, usize)> = None;
    for (i, s) in snaps.iter().enumerate() {
        let key = s.dataset.as_deref();
        // Records of one dataset usually come together: skip the hashing.
        let g = match last {
            Some((k, g)) if k == key => g,
            _ => *index.entry(key).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            }),
        };
        last = Some((key, g));
        members[g].push(i);
    }
    let mut place = vec![(0, 0); snaps.len()];
    let groups = members
        .into_iter()
        .enumerate()
        .map(|(g, members)| {
            // Names are unique within a group: the order is total. The
            // indices are sorted in place (a sort of (time, name, index)
            // tuples cost 32 bytes a snapshot more).
            let mut order = members;
            let key = |i: usize| (snaps[i].timestamp, &*snaps[i].name);
            order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
            for (k, &i) in order.iter().enumerate() {
                place[i] = (g, k);
            }
            let names: Vec<String> = order
                .iter()
                .map(|&i| std::mem::take(&mut snaps[i].name).into_string())
                .collect();
            let times: Vec<i64> = order.iter().map(|&i| snaps[i].timestamp).collect();
            let mut protected: Vec<bool> = order
                .iter()
                .map(|&i| snaps[i].protected == Some(true))
                .collect();
            if let Some(newest) = protected.last_mut() {
                *newest = true;
            }
            let verdicts = schedule.explain(&times, &protected, now);
            Group {
                dataset: snaps[order[0]].dataset.as_deref().map(str::to_string),
                order,
                names,
                times,
                verdicts,
            }
        })
        .collect();
    Plan { groups, place }
}

/// The output records: each input snapshot (`snaps`, with their names in
/// `plan`: see [`plan`]) in input order with its
/// decision and reason ([`picture::reason`], said as each record is
/// written, into one buffer), then the end record. Each record is made in
/// one line buffer, used again for the next (a new one per record, as
/// [`Writer::write`] makes, cost an allocation and a free each), and
/// flushed as [`Writer::write`] does.
pub fn write<W: Write>(
    out: Writer<W>,
    snaps: &[Snapshot],
    plan: &Plan,
    schedule: &Schedule,
    now: i64,
) -> Result<(), Error> {
    let labels = picture::rule_labels(schedule);
    let timelines: Vec<Timeline> = plan
        .groups
        .iter()
        .map(|g| g.timeline(schedule, now))
        .collect();
    let mut reason = String::with_capacity(200);
    let mut line = Vec::with_capacity(512);
    let mut out = out.into_inner();
    let mut kept = 0;
    for (s, &(g, k)) in snaps.iter().zip(&plan.place) {
        let group = &plan.groups[g];
        let v = &group.verdicts[k];
        let name = &group.names[k];
        kept += usize::from(v.keep);
        picture::reason_into(&mut reason, &timelines[g], k, &labels);
        line.clear();
        let record = Output::Snapshot(Decided {
            name,
            timestamp: s.timestamp,
            dataset: s.dataset.as_deref(),
            protected: s.protected,
            action: if v.keep { "keep" } else { "destroy" },
            reason: &reason,
            holds: v
                .holds
                .iter()
                .map(|&(r, block)| Hold {
                    rule: &labels[r],
                    block,
                })
                .collect(),
            extra: s.extra.as_deref(),
        });
        serde_json::to_writer(&mut line, &record).map_err(|e| Error::Io(e.to_string()))?;
        line.push(b'\n');
        out.write_all(&line)?;
        out.flush()?;
    }
    let end = EndFields {
        snapshots: snaps.len(),
        keep: kept,
        destroy: snaps.len() - kept,
    };
    Writer::new(out).finish(TOOL, plan.groups.len(), 0, &end)
}

pub fn run(config: &Offline) -> Result<(), Error> {
    let log = config.log;
    let schedule = &config.keep;
    let now = config.now;
    for line in schedule.describe() {
        log.verbose(line);
    }

    let started = Instant::now();
    let mut snaps = read(std::io::stdin().lock())?;
    log.debug(format!("read {} snapshots in {}", snaps.len(), ms(started)));
    let started = Instant::now();
    let plan = plan(&mut snaps, schedule, now);
    log.debug(format!(
        "planned {} snapshots in {} ({} group{})",
        snaps.len(),
        ms(started),
        plan.groups.len(),
        if plan.groups.len() == 1 { "" } else { "s" },
    ));
    let timelines: Vec<Timeline> = plan
        .groups
        .iter()
        .map(|g| g.timeline(schedule, now))
        .collect();
    for t in &timelines {
        let kept = t.kept();
        let name = if t.dataset.is_empty() {
            "snapshots"
        } else {
            t.dataset
        };
        let n = t.names.len();
        let plural = if n == 1 { "" } else { "s" };
        log.verbose(format!(
            "{name}: {n} snapshot{plural}, keep {kept}, destroy {}",
            n - kept
        ));
    }
    if let Some(path) = &config.svg {
        let started = Instant::now();
        picture::write_svg(path, &picture::svg(&timelines))?;
        log.debug(format!("drew {} in {}", path.display(), ms(started)));
    }

    if config.explain {
        let text: Vec<String> = timelines.iter().map(picture::explain).collect();
        return put(text.join("\n").as_bytes());
    }
    let started = Instant::now();
    let mut out = Chunks::new(std::io::stdout().lock());
    write(Writer::new(&mut out), &snaps, &plan, schedule, now)?;
    let bytes = out.finish()?;
    log.debug(format!(
        "wrote {bytes} bytes (the reasons said) in {}",
        ms(started)
    ));
    Ok(())
}

/// Puts the whole text of `--explain` out at once.
fn put(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    Ok(stdout.flush()?)
}

/// The output, passed on a chunk at a time. [`Writer`] flushes after each
/// record, which on stdout is a write per line and costs more than the
/// planning; everything is known before the first line, so a flush here
/// passes the chunk on only once it is large ([`CHUNK`]), and
/// [`Chunks::finish`] the rest. (The whole output in memory was 155 MB for
/// 1M snapshots.)
struct Chunks<W: Write> {
    buf: Vec<u8>,
    out: W,
    written: usize,
}

/// How much output is held before it is written.
const CHUNK: usize = 1 << 20;

impl<W: Write> Chunks<W> {
    fn new(out: W) -> Self {
        Chunks {
            buf: Vec::with_capacity(CHUNK + 4096),
            out,
            written: 0,
        }
    }

    fn pass_on(&mut self) -> std::io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len();
        self.buf.clear();
        Ok(())
    }

    /// Writes the rest and flushes: how many bytes were written in all.
    fn finish(mut self) -> Result<usize, Error> {
        self.pass_on()?;
        self.out.flush()?;
        Ok(self.written)
    }
}

impl<W: Write> Write for Chunks<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.pass_on()?;
        }
        Ok(())
    }
}

/// Milliseconds since `started`, for --debug: `12.3 ms`.
fn ms(started: Instant) -> String {
    format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps(text: &str) -> Result<Vec<Snapshot>, Error> {
        read(text.as_bytes())
    }

    fn out(text: &str, keep: &str, now: i64) -> String {
        let mut s = snaps(text).unwrap();
        let schedule = Schedule::parse(keep).unwrap();
        let p = plan(&mut s, &schedule, now);
        let mut w = Vec::new();
        write(Writer::new(&mut w), &s, &p, &schedule, now).unwrap();
        String::from_utf8(w).unwrap()
    }

    #[test]
    fn reads_fields_and_keeps_the_unknown() {
        let s = snaps(
            "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":5,\"dataset\":\"tank/a\",\"protected\":false,\"id\":[1,2]}\n\n\
             {\"kind\":\"end\"}\n",
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].dataset.as_deref(), Some("tank/a"));
        assert_eq!(s[0].protected, Some(false));
        assert_eq!(
            s[0].extra.as_ref().unwrap()["id"],
            serde_json::json!([1, 2])
        );
    }

    #[test]
    fn bad_input_names_the_line() {
        let ok = "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":5}\n";
        for (text, want) in [
            (
                format!("{ok}{{\"kind\":\"snapshot\",\"name\":\"b\"}}\n"),
                "line 2: missing field \"timestamp\"",
            ),
            (
                format!("{ok}{{\"kind\":\"dataset\"}}\n"),
                "line 2: unknown record type \"dataset\" (expected one of: snapshot, end)",
            ),
            (
                format!("{ok}{ok}"),
                "line 2: snapshot \"a\" is already on line 1",
            ),
            (
                format!("{ok}{{\"kind\":\"end\"}}\n{ok}"),
                "line 3: record after the end record",
            ),
            (
                "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":-1}\n".into(),
                "line 1: timestamp -1 is out of range (seconds since 1970, up to the year 9999)",
            ),
            (
                "{\"kind\":\"snapshot\",\"name\":\"\",\"timestamp\":1}\n".into(),
                "line 1: empty snapshot name",
            ),
            (
                "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":1.5}\n".into(),
                "line 1: invalid type: floating point 1.5, expected a whole number",
            ),
            (
                ok.trim_end().into(),
                "line 1: the last line has no newline: the input was cut off",
            ),
        ] {
            assert_eq!(snaps(&text).unwrap_err().to_string(), want, "{text}");
        }
        // The same name in two datasets is two snapshots.
        let two = "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":5,\"dataset\":\"x\"}\n\
                   {\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":5,\"dataset\":\"y\"}\n";
        assert_eq!(snaps(two).unwrap().len(), 2);
        let err = snaps(&format!(
            "{two}{}",
            two.lines().nth(1).unwrap().to_owned() + "\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: snapshot \"a\" in dataset \"y\" is already on line 2"
        );
        // Of several names given twice, the first repeat in input order.
        let rec = |n: &str| format!("{{\"kind\":\"snapshot\",\"name\":\"{n}\",\"timestamp\":5}}\n");
        let text = [rec("b"), rec("a"), rec("c"), rec("a"), rec("b"), rec("c")].concat();
        assert_eq!(
            snaps(&text).unwrap_err().to_string(),
            "line 4: snapshot \"a\" is already on line 2"
        );
    }

    /// The output goes out in chunks of about [`CHUNK`] bytes, whole
    /// records each, not a write per record and not all at the end.
    #[test]
    fn output_goes_out_in_chunks_of_whole_records() {
        #[derive(Default)]
        struct Sink(Vec<Vec<u8>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let n = 40_000;
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "{{\"kind\":\"snapshot\",\"name\":\"s{i}\",\"timestamp\":{}}}\n",
                    i * 60
                )
            })
            .collect();
        let mut s = snaps(&text).unwrap();
        let schedule = Schedule::parse("10,1d1w").unwrap();
        let p = plan(&mut s, &schedule, n * 60);
        let mut sink = Sink::default();
        let mut chunks = Chunks::new(&mut sink);
        write(Writer::new(&mut chunks), &s, &p, &schedule, n * 60).unwrap();
        let bytes = chunks.finish().unwrap();
        let all: Vec<u8> = sink.0.concat();
        assert_eq!(all.len(), bytes);
        assert!(
            sink.0.len() > 1 && sink.0.len() < 10,
            "{} writes",
            sink.0.len()
        );
        for c in &sink.0 {
            assert_eq!(c.last(), Some(&b'\n'));
        }
        assert_eq!(all.iter().filter(|&&b| b == b'\n').count(), n as usize + 1);
    }

    /// Groups by dataset, sorts by time then name within each, protects the
    /// newest of each, and writes back in input order.
    #[test]
    fn groups_sort_and_protect_the_newest() {
        let day = 86_400;
        let now = 100 * day;
        let rec = |ds: &str, name: &str, t: i64| {
            format!("{{\"kind\":\"snapshot\",\"name\":\"{name}\",\"timestamp\":{t},\"dataset\":\"{ds}\"}}\n")
        };
        let text = [
            rec("y", "y2", now - 2 * day),
            rec("x", "x-new", now - 3600),
            rec("x", "x-b", now - 90 * day),
            rec("x", "x-a", now - 90 * day),
            rec("y", "y1", now - 3 * day),
        ]
        .concat();
        let mut s = snaps(&text).unwrap();
        let schedule = Schedule::parse("0,1d1w").unwrap();
        let p = plan(&mut s, &schedule, now);
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[0].dataset.as_deref(), Some("y"));
        assert_eq!(p.groups[0].names, vec!["y1", "y2"]);
        assert_eq!(p.groups[1].names, vec!["x-a", "x-b", "x-new"]);
        assert_eq!(p.place, vec![(0, 1), (1, 2), (1, 1), (1, 0), (0, 0)]);
        let keep: Vec<bool> = p.groups[1].verdicts.iter().map(|v| v.keep).collect();
        assert_eq!(keep, vec![false, false, true]);
        assert!(p.groups[1].verdicts[2].protected);
        let t = p.groups[1].timeline(&schedule, now);
        assert_eq!(
            picture::reason(&t, 2),
            "keep: holds block 99 of 1d1w (Keep every 1 day, delete after 1 week.); protected (newest)"
        );
        assert_eq!(
            picture::reason(&t, 0),
            "destroy: older than every rule's TTL"
        );
    }

    #[test]
    fn output_adds_the_decision_and_replaces_an_old_one() {
        let got = out(
            "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":86400,\"zz\":1,\"action\":\"keep\",\"reason\":\"old\",\"holds\":7}\n\
             {\"kind\":\"snapshot\",\"name\":\"b\",\"timestamp\":90000,\"protected\":true}\n\
             {\"kind\":\"snapshot\",\"name\":\"c\",\"timestamp\":90001}\n",
            "0,1d1w",
            100_000,
        );
        assert_eq!(
            got,
            "{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":86400,\"action\":\"keep\",\"reason\":\"keep: holds block 1 of 1d1w (Keep every 1 day, delete after 1 week.)\",\"holds\":[{\"rule\":\"1d1w\",\"block\":1}],\"zz\":1}\n\
             {\"kind\":\"snapshot\",\"name\":\"b\",\"timestamp\":90000,\"protected\":true,\"action\":\"keep\",\"reason\":\"keep: protected\",\"holds\":[]}\n\
             {\"kind\":\"snapshot\",\"name\":\"c\",\"timestamp\":90001,\"action\":\"keep\",\"reason\":\"keep: protected (newest)\",\"holds\":[]}\n\
             {\"kind\":\"end\",\"tool\":\"zab-thin\",\"version\":\"0.1.0\",\"datasets\":1,\"failed\":0,\"destroy\":0,\"keep\":3,\"snapshots\":3}\n"
                .replace("0.1.0", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn empty_input_gives_only_the_end() {
        assert_eq!(
            out("", "10", 0),
            format!(
                "{{\"kind\":\"end\",\"tool\":\"zab-thin\",\"version\":\"{}\",\"datasets\":0,\"failed\":0,\"destroy\":0,\"keep\":0,\"snapshots\":0}}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    /// The examples in docs/records.md's `## zab-thin --offline` section:
    /// lines marked `<` are the input, lines marked `>` the output zab-thin
    /// gives for them with the schedule and now the section names.
    #[test]
    fn docs_example_is_what_zab_thin_writes() {
        let doc = include_str!("../../docs/records.md");
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with("zab-thin --offline"))
            .expect("docs/records.md has a `## zab-thin --offline` section");
        let input: String = section
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("< "))
            .map(|l| format!("{l}\n"))
            .collect();
        let want: String = section
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("> "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(input.lines().count() >= 10, "too few example lines");
        let cmd = section
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("$ zab-thin --offline --keep "))
            .expect("the example's command line");
        let mut words = cmd.split_whitespace();
        let keep = words.next().unwrap();
        assert_eq!(words.next(), Some("--now"));
        let now: i64 = words.next().unwrap().parse().unwrap();
        let want = want.replace(
            "\"version\":\"0.1.0\"",
            &format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION")),
        );
        assert_eq!(out(&input, keep, now), want);
    }

    /// `--offline`'s reader and everything after it, on random input:
    /// refused in one line, or thinned, explained and drawn without a panic.
    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed};

        fn config(cases: u32) -> Config {
            Config {
                cases,
                rng_seed: RngSeed::Fixed(15),
                failure_persistence: None,
                ..Config::default()
            }
        }

        /// A record line: mostly snapshots, of two datasets or none, some
        /// with odd fields; sometimes an `end` or a broken line.
        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                6 => (
                    "[a-c]{1,2}",
                    prop_oneof![0i64..2_000_000_000, any::<i64>()],
                    proptest::option::of(prop_oneof![Just("tank/a"), Just("tank/b")]),
                    proptest::option::of(any::<bool>()),
                ).prop_map(|(name, t, ds, p)| {
                    let mut v = serde_json::json!({"kind": "snapshot", "name": name, "timestamp": t});
                    if let Some(ds) = ds { v["dataset"] = ds.into(); }
                    if let Some(p) = p { v["protected"] = p.into(); }
                    v.to_string()
                }),
                1 => Just(r#"{"kind":"end"}"#.to_string()),
                1 => "\\PC{0,20}",
                1 => r#"\{"kind":"(snapshot|end|x)","(name|timestamp|dataset|protected)":("a"|1|-1|1.5|true|null)\}"#,
            ]
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn any_list_is_thinned_or_refused_in_one_line(
                lines in proptest::collection::vec(line(), 0..12),
                newline in any::<bool>(),
                keep in prop_oneof![Just("10,1d1w,1w1m,1m1y"), Just("0"), Just("1,1s1min"), Just("2,1h1d,1d1y")],
                now in 0i64..2_100_000_000,
            ) {
                let mut text = lines.join("\n");
                if newline { text.push('\n'); }
                let mut snaps = match read(text.as_bytes()) {
                    Ok(snaps) => snaps,
                    Err(e) => {
                        let line = e.to_string();
                        prop_assert_eq!(e.exit(), zab_core::Exit::Input);
                        prop_assert!(!line.is_empty() && !line.contains(['\n', '\r']), "{:?}", line);
                        prop_assert!(!line.contains('`') || text.contains('`'), "{:?}", line);
                        return Ok(());
                    }
                };
                let schedule = Schedule::parse(keep).unwrap();
                let plan = plan(&mut snaps, &schedule, now);
                let mut out = Vec::new();
                write(Writer::new(&mut out), &snaps, &plan, &schedule, now).unwrap();
                let out = String::from_utf8(out).unwrap();
                prop_assert_eq!(out.lines().count(), snaps.len() + 1);
                // The newest of each dataset, and every protected one, kept.
                for g in &plan.groups {
                    prop_assert!(g.verdicts.last().map_or(true, |v| v.keep));
                }
                for (s, &(g, k)) in snaps.iter().zip(&plan.place) {
                    if s.protected == Some(true) {
                        prop_assert!(plan.groups[g].verdicts[k].keep);
                    }
                }
                let timelines: Vec<Timeline> =
                    plan.groups.iter().map(|g| g.timeline(&schedule, now)).collect();
                for t in &timelines {
                    let _ = picture::explain(t);
                }
                let _ = picture::svg(&timelines);
            }
        }
    }
}
