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
/// the thinning.
#[derive(Debug, Deserialize)]
struct Line {
    kind: Kind,
    name: Option<String>,
    timestamp: Option<i64>,
    dataset: Option<String>,
    protected: Option<bool>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Snapshot,
    /// Ends the input; its fields are not used.
    End,
}

/// One snapshot to thin.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Its name (unique within its dataset).
    pub name: String,
    /// Its time, in seconds since 1970-01-01 UTC.
    pub timestamp: i64,
    /// The dataset it belongs to; snapshots without one form one group.
    pub dataset: Option<String>,
    /// Keep it whatever the schedule says.
    pub protected: Option<bool>,
    /// Anything else: passed through unchanged.
    pub extra: Map<String, Value>,
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
    extra: &'a Map<String, Value>,
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
            name,
            timestamp,
            dataset: rec.dataset,
            protected: rec.protected,
            extra: rec.extra,
        });
        lines.push(line);
    }
    let mut seen: HashMap<(Option<&str>, &str), usize> = HashMap::with_capacity(snaps.len());
    for (s, &line) in snaps.iter().zip(&lines) {
        if let Some(first) = seen.insert((s.dataset.as_deref(), &s.name), line) {
            let within = match &s.dataset {
                Some(d) => format!(" in dataset {d:?}"),
                None => String::new(),
            };
            return Err(Error::Input {
                line,
                message: format!("snapshot {:?}{within} is already on line {first}", s.name),
            });
        }
    }
    Ok(snaps)
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
/// and the ones marked `protected` kept whatever the schedule says.
pub fn plan(snaps: &[Snapshot], schedule: &Schedule, now: i64) -> Plan {
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
            // Names are unique within a group: the order is total.
            let mut keyed: Vec<(i64, &str, usize)> = members
                .iter()
                .map(|&i| (snaps[i].timestamp, snaps[i].name.as_str(), i))
                .collect();
            keyed.sort_unstable();
            let order: Vec<usize> = keyed.iter().map(|k| k.2).collect();
            for (k, &i) in order.iter().enumerate() {
                place[i] = (g, k);
            }
            let names: Vec<String> = keyed.iter().map(|k| k.1.to_string()).collect();
            let times: Vec<i64> = keyed.iter().map(|k| k.0).collect();
            let mut protected: Vec<bool> = order
                .iter()
                .map(|&i| snaps[i].protected == Some(true))
                .collect();
            if let Some(newest) = protected.last_mut() {
                *newest = true;
            }
            let verdicts = schedule.explain(&times, &protected, now);
            Group {
                dataset: snaps[order[0]].dataset.clone(),
                order,
                names,
                times,
                verdicts,
            }
        })
        .collect();
    Plan { groups, place }
}

impl Plan {
    /// [`picture::reason`] for every snapshot: per group, oldest first.
    pub fn reasons(&self, schedule: &Schedule, now: i64) -> Vec<Vec<String>> {
        self.groups
            .iter()
            .map(|g| picture::reasons(&g.timeline(schedule, now)))
            .collect()
    }
}

/// The output records: each input snapshot in input order with its
/// decision and reason (`reasons` from [`Plan::reasons`]), then the end
/// record.
pub fn write<W: Write>(
    mut out: Writer<W>,
    snaps: &[Snapshot],
    plan: &Plan,
    reasons: &[Vec<String>],
    schedule: &Schedule,
) -> Result<(), Error> {
    let labels = picture::rule_labels(schedule);
    let mut kept = 0;
    for (s, &(g, k)) in snaps.iter().zip(&plan.place) {
        let group = &plan.groups[g];
        let v = &group.verdicts[k];
        kept += usize::from(v.keep);
        out.write(&Output::Snapshot(Decided {
            name: &s.name,
            timestamp: s.timestamp,
            dataset: s.dataset.as_deref(),
            protected: s.protected,
            action: if v.keep { "keep" } else { "destroy" },
            reason: &reasons[g][k],
            holds: v
                .holds
                .iter()
                .map(|&(r, block)| Hold {
                    rule: &labels[r],
                    block,
                })
                .collect(),
            extra: &s.extra,
        }))?;
    }
    let end = EndFields {
        snapshots: snaps.len(),
        keep: kept,
        destroy: snaps.len() - kept,
    };
    out.finish(TOOL, plan.groups.len(), 0, &end)
}

pub fn run(config: &Offline) -> Result<(), Error> {
    let log = config.log;
    let schedule = &config.keep;
    let now = config.now;
    for line in schedule.describe() {
        log.verbose(line);
    }

    let started = Instant::now();
    let snaps = read(std::io::stdin().lock())?;
    log.debug(format!("read {} snapshots in {}", snaps.len(), ms(started)));
    let started = Instant::now();
    let plan = plan(&snaps, schedule, now);
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
    let reasons = plan.reasons(schedule, now);
    log.debug(format!(
        "explained {} snapshots in {}",
        snaps.len(),
        ms(started)
    ));
    let started = Instant::now();
    let mut out = Vec::new();
    write(Writer::new(&mut out), &snaps, &plan, &reasons, schedule)?;
    put(&out)?;
    log.debug(format!("wrote {} bytes in {}", out.len(), ms(started)));
    Ok(())
}

/// Writes all of the output at once. Everything is known before the first
/// line, so it is made in memory: a write per line would cost more than the
/// planning.
fn put(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    Ok(stdout.flush()?)
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
        let s = snaps(text).unwrap();
        let schedule = Schedule::parse(keep).unwrap();
        let p = plan(&s, &schedule, now);
        let mut w = Vec::new();
        write(
            Writer::new(&mut w),
            &s,
            &p,
            &p.reasons(&schedule, now),
            &schedule,
        )
        .unwrap();
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
        assert_eq!(s[0].extra["id"], serde_json::json!([1, 2]));
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
        let s = snaps(&text).unwrap();
        let schedule = Schedule::parse("0,1d1w").unwrap();
        let p = plan(&s, &schedule, now);
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[0].dataset.as_deref(), Some("y"));
        assert_eq!(p.groups[0].names, vec!["y1", "y2"]);
        assert_eq!(p.groups[1].names, vec!["x-a", "x-b", "x-new"]);
        assert_eq!(p.place, vec![(0, 1), (1, 2), (1, 1), (1, 0), (0, 0)]);
        let keep: Vec<bool> = p.groups[1].verdicts.iter().map(|v| v.keep).collect();
        assert_eq!(keep, vec![false, false, true]);
        assert!(p.groups[1].verdicts[2].protected);
        let reasons = picture::reasons(&p.groups[1].timeline(&schedule, now));
        assert_eq!(
            reasons[2],
            "keep: holds block 99 of 1d1w (Keep every 1 day, delete after 1 week.); protected (newest)"
        );
        assert_eq!(reasons[0], "destroy: older than every rule's TTL");
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
                let snaps = match read(text.as_bytes()) {
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
                let plan = plan(&snaps, &schedule, now);
                let reasons = plan.reasons(&schedule, now);
                let mut out = Vec::new();
                write(Writer::new(&mut out), &snaps, &plan, &reasons, &schedule).unwrap();
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
