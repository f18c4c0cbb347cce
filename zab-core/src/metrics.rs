//! `--metrics FILE`: a run's numbers for Prometheus, in the text format
//! node_exporter's textfile collector reads (`--collector.textfile.directory`,
//! on Debian `/var/lib/prometheus/node-exporter`), written at the end of a
//! run by zab-send and by scripts/zfs-autobackup (through the hidden
//! `--write-metrics FILE` of every tool, [`write_from_lines`]).
//!
//! Every metric is a gauge with the label `backup="NAME"`, describing the
//! last run (a new run replaces the file): see [`METRICS`]. They are
//! gauges, not counters, and so carry no `_total`: each run rewrites its
//! own values, nothing accumulates across runs. A number the writer does
//! not know (zab-send alone knows nothing of snapshots created or
//! destroyed) is left out, not written as 0. When the run failed, the
//! time of the last success is taken from the file being replaced, so
//! that `time() - zab_last_success_timestamp_seconds` keeps growing until a
//! run succeeds.
//!
//! The file is replaced atomically ([`crate::state::write_atomic`]): the
//! collector never reads half of it. Use one file per backup name (the
//! collector reads every `*.prom` of its directory).

use std::path::Path;

use crate::error::Error;

/// Every metric: name and help, in the file's order.
pub const METRICS: &[(&str, &str)] = &[
    ("zab_run_duration_seconds", "Wall time of the last run."),
    (
        "zab_run_end_timestamp_seconds",
        "When the last run ended, in seconds since 1970.",
    ),
    (
        "zab_run_success",
        "1 when no dataset failed in the last run, else 0.",
    ),
    (
        "zab_run_datasets_selected",
        "Datasets selected in the last run.",
    ),
    (
        "zab_run_datasets_sent",
        "Datasets sent in the last run (up-to-date ones not counted).",
    ),
    (
        "zab_run_datasets_failed",
        "Datasets failed in the last run.",
    ),
    ("zab_run_transfers", "Transfers done in the last run."),
    ("zab_run_sent_bytes", "Bytes sent in the last run."),
    (
        "zab_run_snapshots_created",
        "Snapshots created in the last run.",
    ),
    (
        "zab_run_snapshots_destroyed",
        "Snapshots destroyed in the last run (source and target).",
    ),
    (
        "zab_last_success_timestamp_seconds",
        "When the last run without a failed dataset ended, in seconds since 1970.",
    ),
];

/// What a run reports; None: not known to this writer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    pub backup: String,
    pub seconds: f64,
    /// When it ended (seconds since 1970).
    pub end: i64,
    pub success: bool,
    pub selected: Option<u64>,
    pub sent: Option<u64>,
    pub failed: Option<u64>,
    pub transfers: Option<u64>,
    pub bytes: Option<u64>,
    pub created: Option<u64>,
    pub destroyed: Option<u64>,
    /// The end of the last successful run: `end` when this one succeeded.
    pub last_success: Option<i64>,
}

impl RunMetrics {
    /// Each metric's value, in [`METRICS`]' order; None is left out.
    fn values(&self) -> [Option<f64>; 11] {
        let n = |v: Option<u64>| v.map(|v| v as f64);
        [
            Some(self.seconds),
            Some(self.end as f64),
            Some(f64::from(u8::from(self.success))),
            n(self.selected),
            n(self.sent),
            n(self.failed),
            n(self.transfers),
            n(self.bytes),
            n(self.created),
            n(self.destroyed),
            self.last_success
                .or(self.success.then_some(self.end))
                .map(|t| t as f64),
        ]
    }
}

/// A label value as the text format writes it: `\`, `"` and newline escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The file's text: `# HELP`, `# TYPE` and the sample of each known metric.
pub fn render(m: &RunMetrics) -> String {
    let label = format!("{{backup=\"{}\"}}", escape_label(&m.backup));
    let mut out = String::new();
    for ((name, help), value) in METRICS.iter().zip(m.values()) {
        let Some(value) = value else { continue };
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{label} {value}\n"
        ));
    }
    out
}

/// Writes `m` to `path` ([`render`], replaced atomically, mode 0644: the
/// collector runs as another user). Without a `last_success` and a
/// success, the one for this backup in the file being replaced is kept.
pub fn write(path: &Path, mut m: RunMetrics) -> Result<(), Error> {
    if m.success {
        m.last_success = Some(m.end);
    } else if m.last_success.is_none() {
        m.last_success = previous_success(path, &m.backup);
    }
    crate::state::write_atomic(path, render(&m).as_bytes(), 0o644)
}

/// The last success of `backup` in the metrics file at `path`, if it has one.
fn previous_success(path: &Path, backup: &str) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text)
        .ok()?
        .into_iter()
        .find(|s| {
            s.name == "zab_last_success_timestamp_seconds"
                && s.labels == [("backup".to_string(), backup.to_string())]
        })
        .map(|s| s.value as i64)
}

/// One sample of the text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the text exposition format strictly (what promtool's `check
/// metrics` refuses is refused too): the text ends with a newline; a
/// comment is `# HELP NAME TEXT` or `# TYPE NAME TYPE` (other comments are
/// allowed), at most one of each per metric, the TYPE before its samples;
/// names and label names are valid, label values are quoted with only
/// `\\`, `\"` and `\n` escapes; a value is a float; the samples of one
/// metric are together; no series twice. Returns the samples, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a newline".into());
    }
    let mut samples: Vec<Sample> = Vec::new();
    let mut seen_help = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeMap::new();
    let mut done: std::collections::BTreeSet<String> = Default::default();
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix('#') {
            let mut w = rest.trim_start().splitn(3, ' ');
            match (w.next(), w.next(), w.next()) {
                (Some("HELP"), Some(name), _) => {
                    check_name(name).map_err(|e| bad(&e))?;
                    if !seen_help.insert(name.to_string()) {
                        return Err(bad("a second HELP"));
                    }
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    check_name(name).map_err(|e| bad(&e))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(bad("unknown type"));
                    }
                    if samples.iter().any(|s| s.name == name) {
                        return Err(bad("TYPE after its samples"));
                    }
                    if typed.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(bad("a second TYPE"));
                    }
                }
                (Some("TYPE"), _, _) => return Err(bad("TYPE without a type")),
                _ => {}
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let s = parse_sample(line).map_err(|e| bad(&e))?;
        if current.as_deref() != Some(s.name.as_str()) {
            if done.contains(&s.name) {
                return Err(bad("the samples of a metric are not together"));
            }
            if let Some(c) = current.take() {
                done.insert(c);
            }
            current = Some(s.name.clone());
        }
        if samples
            .iter()
            .any(|o| o.name == s.name && o.labels == s.labels)
        {
            return Err(bad("the same series twice"));
        }
        if typed.get(&s.name).is_some_and(|k| k == "counter") && s.value < 0.0 {
            return Err(bad("a negative counter"));
        }
        samples.push(s);
    }
    Ok(samples)
}

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    match ok && !name.is_empty() {
        true => Ok(()),
        false => Err(format!("invalid metric name {name:?}")),
    }
}

/// `NAME{LABELS} VALUE [TIMESTAMP]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..end];
    check_name(name)?;
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("a label without =")?;
            let lname = &rest[..eq];
            let valid = lname
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
            if lname.is_empty() || !valid || lname.starts_with("__") {
                return Err(format!("invalid label name {lname:?}"));
            }
            let (value, r) = label_value(&rest[eq + 1..])?;
            if labels.iter().any(|(n, _)| n == lname) {
                return Err(format!("label {lname} twice"));
            }
            labels.push((lname.to_string(), value));
            rest = r.strip_prefix(',').unwrap_or(r);
            if !r.starts_with([',', '}']) {
                return Err("expected , or } after a label".into());
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = fields.next().unwrap_or_default();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v if v.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') => {
            return Err(format!("not a number: {v:?}"))
        }
        v => v.parse().map_err(|_| format!("not a number: {v:?}"))?,
    };
    match (fields.next(), fields.next()) {
        (None, _) => {}
        (Some(t), None) if t.parse::<i64>().is_ok() => {}
        _ => return Err("junk after the value".into()),
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A quoted label value at the start of `s`, and what follows it.
fn label_value(s: &str) -> Result<(String, &str), String> {
    let s = s.strip_prefix('"').ok_or("a label value without quotes")?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                _ => return Err("a bad escape in a label value".into()),
            },
            '\n' => return Err("a newline in a label value".into()),
            c => out.push(c),
        }
    }
    Err("an unterminated label value".into())
}

/// Reads the wrapper's numbers: one `NAME VALUE` per line, each name at
/// most once: `backup` (the name), `seconds`, `success` (0 or 1), and any
/// of `selected`, `sent`, `failed`, `transfers`, `bytes`, `created`,
/// `destroyed` (whole numbers). `end` is `now`.
pub fn from_lines(text: &str, now: i64) -> Result<RunMetrics, String> {
    let mut m = RunMetrics {
        end: now,
        ..RunMetrics::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}", i + 1);
        let (name, value) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected NAME VALUE"))?;
        if !seen.insert(name) {
            return Err(bad(&format!("{name} twice")));
        }
        if name == "backup" {
            m.backup = value.to_string();
            continue;
        }
        let n: u64 = value
            .parse()
            .map_err(|_| bad(&format!("{name}: not a whole number: {value:?}")))?;
        let slot = match name {
            "seconds" => {
                m.seconds = n as f64;
                continue;
            }
            "success" if n <= 1 => {
                m.success = n == 1;
                continue;
            }
            "selected" => &mut m.selected,
            "sent" => &mut m.sent,
            "failed" => &mut m.failed,
            "transfers" => &mut m.transfers,
            "bytes" => &mut m.bytes,
            "created" => &mut m.created,
            "destroyed" => &mut m.destroyed,
            _ => return Err(bad(&format!("unknown or bad: {line:?}"))),
        };
        *slot = Some(n);
    }
    for need in ["backup", "seconds", "success"] {
        if !seen.contains(need) {
            return Err(format!("no {need}"));
        }
    }
    Ok(m)
}

/// `TOOL --write-metrics FILE`: reads [`from_lines`] on stdin and writes
/// FILE ([`write`]); returns the exit code (0, or 3 for bad input, 4 when
/// FILE cannot be written), having said why on one line.
pub fn write_from_stdin(tool: &str, file: &Path) -> u8 {
    let mut text = String::new();
    let read = std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
        .map_err(|e| Error::Io(format!("cannot read stdin: {e}")))
        .and_then(|_| {
            from_lines(&text, chrono::Utc::now().timestamp())
                .map_err(|message| Error::Input { line: 0, message })
        })
        .and_then(|m| write(file, m));
    match read {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{tool}: --write-metrics: {e}");
            e.exit().code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunMetrics {
        RunMetrics {
            backup: "off\"1".into(),
            seconds: 12.5,
            end: 1000,
            success: true,
            selected: Some(3),
            sent: Some(2),
            failed: Some(0),
            transfers: Some(2),
            bytes: Some(4096),
            created: None,
            destroyed: None,
            last_success: None,
        }
    }

    #[test]
    fn rendered_with_help_type_and_the_backup_label() {
        let text = render(&run());
        let samples = parse(&text).expect("strict parse");
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "zab_run_duration_seconds",
                "zab_run_end_timestamp_seconds",
                "zab_run_success",
                "zab_run_datasets_selected",
                "zab_run_datasets_sent",
                "zab_run_datasets_failed",
                "zab_run_transfers",
                "zab_run_sent_bytes",
                "zab_last_success_timestamp_seconds",
            ],
            "the unknown ones left out"
        );
        for s in &samples {
            assert_eq!(s.labels, [("backup".to_string(), "off\"1".to_string())]);
            assert!(text.contains(&format!("# TYPE {} gauge\n", s.name)));
            assert!(text.contains(&format!("# HELP {} ", s.name)));
        }
        let v = |n: &str| samples.iter().find(|s| s.name == n).map(|s| s.value);
        assert_eq!(v("zab_run_duration_seconds"), Some(12.5));
        assert_eq!(v("zab_run_sent_bytes"), Some(4096.0));
        assert_eq!(v("zab_last_success_timestamp_seconds"), Some(1000.0));
        assert!(text.contains("{backup=\"off\\\"1\"} "), "{text}");
    }

    #[test]
    fn a_failed_run_keeps_the_last_success_of_the_file_it_replaces() {
        let d = crate::scratch("metrics", "failed");
        let p = d.join("zab.prom");
        write(&p, run()).expect("write");
        let failed = RunMetrics {
            end: 2000,
            success: false,
            failed: Some(1),
            ..run()
        };
        write(&p, failed.clone()).expect("write");
        let text = std::fs::read_to_string(&p).expect("read");
        let samples = parse(&text).expect("parse");
        let v = |n: &str| samples.iter().find(|s| s.name == n).map(|s| s.value);
        assert_eq!(v("zab_last_success_timestamp_seconds"), Some(1000.0));
        assert_eq!(v("zab_run_success"), Some(0.0));
        assert_eq!(v("zab_run_end_timestamp_seconds"), Some(2000.0));
        // Another backup's file has no success of this one: none written.
        let other = d.join("other.prom");
        write(&other, failed).expect("write");
        let text = std::fs::read_to_string(&other).expect("read");
        assert!(!text.contains("zab_last_success"), "{text}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&p).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(
            std::fs::read_dir(&d).expect("dir").count(),
            2,
            "no temp left"
        );
    }

    #[test]
    fn the_parser_is_strict() {
        let ok = "# HELP a_b x y\n# TYPE a_b gauge\na_b{x=\"1\",y=\"a\\\\b\\n\"} 1.5e3\na_b{x=\"2\"} NaN 17\n";
        let s = parse(ok).expect("ok");
        assert_eq!(s[0].labels[1].1, "a\\b\n");
        assert_eq!(s[0].value, 1500.0);
        for bad in [
            "a 1",                                   // no final newline
            "a{x=\"1\"} one\n",                      // not a number
            "a{x=1} 1\n",                            // unquoted
            "a{x=\"1\\t\"} 1\n",                     // bad escape
            "a{x=\"1\"}1\n",                         // no space
            "1a 1\n",                                // bad name
            "a{__x=\"1\"} 1\n",                      // reserved label
            "a{x=\"1\",x=\"2\"} 1\n",                // label twice
            "a 1\na 2\n",                            // series twice
            "a 1\nb 1\na{x=\"1\"} 1\n",              // not together
            "a 1\n# TYPE a gauge\n",                 // TYPE after samples
            "# TYPE a gauge\n# TYPE a gauge\na 1\n", // two TYPEs
            "# TYPE a thing\na 1\n",                 // unknown type
            "# TYPE c counter\nc -1\n",              // negative counter
            "a 1 x\n",                               // junk
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn the_wrappers_lines() {
        let m = from_lines(
            "backup off1\nseconds 7\nsuccess 1\nselected 2\ncreated 2\ndestroyed 1\n",
            99,
        )
        .expect("lines");
        assert_eq!(
            (
                m.backup.as_str(),
                m.seconds,
                m.end,
                m.success,
                m.created,
                m.sent
            ),
            ("off1", 7.0, 99, true, Some(2), None)
        );
        for bad in [
            "backup b\nseconds 1\n",
            "backup b\nseconds 1\nsuccess 2\n",
            "backup b\nseconds x\nsuccess 1\n",
            "backup b\nseconds 1\nsuccess 1\nbytes 1\nbytes 2\n",
            "backup b\nseconds 1\nsuccess 1\nfoo 1\n",
            "backup b\nseconds 1\nsuccess 1\nbytes\n",
        ] {
            assert!(from_lines(bad, 0).is_err(), "accepted {bad:?}");
        }
    }
}
