//! Reading and writing newline-delimited JSON.
//!
//! The reader names the 1-based line number in every error, so a tool can
//! say `zab-thin: line 3: missing field "name"`. The writer flushes after
//! every record, so a stage downstream sees each record as soon as it exists.
//! [`read_stream`] reads a whole stage's output and insists on its `end`
//! record: a stream cut short must never look like "these datasets are gone".

use std::io::{BufRead, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::host::Host;
use crate::record::{Dataset, End, Record};

/// The longest line a reader accepts, newline included: 64 MiB. A dataset
/// record is a few hundred bytes, plus up to about 150 for each snapshot
/// zab-send plans to send or leaves out (`transfers`, `skipped`, with
/// why) and 25 for each one thinned: a dataset with 10,000 snapshots made
/// a record over 1 MiB (scripts/bench/many, where 1 MiB stopped the
/// wrapper), so 64 MiB is some 300,000 snapshots. The cap keeps a runaway
/// producer from filling memory.
pub const MAX_LINE: usize = 64 << 20;

/// Reads one JSON value per line; blank lines are skipped. A line longer
/// than [`MAX_LINE`] is an error, found without reading it whole.
/// Its errors are said in plain words ([`json_message`]), not serde's.
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    line: usize,
    buf: Vec<u8>,
    expected: &'static str,
}

impl<R: BufRead> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            line: 0,
            buf: Vec::new(),
            expected: "one JSON object per line",
        }
    }

    /// What a line that is not JSON is said to miss: `one JSON object per
    /// line, as zab-select writes`.
    pub fn expecting(mut self, expected: &'static str) -> Self {
        self.expected = expected;
        self
    }

    /// Reads the next line into `buf`, newline included: its length, 0 at
    /// the end of input. Stops at [`MAX_LINE`] bytes.
    fn read_line(&mut self) -> Result<usize, Error> {
        self.buf.clear();
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(&format!("read error: {e}"))),
            };
            if available.is_empty() {
                return Ok(self.buf.len());
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.buf.len() + take > MAX_LINE {
                return Err(self.error(&format!("longer than {MAX_LINE} bytes")));
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            if done {
                return Ok(self.buf.len());
            }
        }
    }

    /// The number of the line read last (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next value, or None at the end of input.
    pub fn next_value<T: DeserializeOwned>(&mut self) -> Option<Result<T, Error>> {
        loop {
            self.line += 1;
            match self.read_line() {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            let Ok(text) = std::str::from_utf8(&self.buf) else {
                return Some(Err(self.error("not valid UTF-8")));
            };
            if !text.ends_with('\n') {
                return Some(Err(
                    self.error("the last line has no newline: the input was cut off")
                ));
            }
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(text)
                    .map_err(|e| self.error(&json_message(&e, text, self.expected))),
            );
        }
    }

    fn error(&self, message: &str) -> Error {
        Error::Input {
            line: self.line,
            message: message.to_string(),
        }
    }
}

/// serde_json's error on `text` in plain words, on one line: `not a JSON
/// record (expected EXPECTED)`, `unknown record type "dataseta" (expected
/// one of: dataset, end)`, `missing field "backup"`, `invalid type: string
/// "7", expected a whole number (0 or more)`. Never serde's own jargon
/// (`expected value`, `` unknown variant `x` ``, `u64`), nor its " at line 1
/// column N" (the line is named by the caller, the column means little).
fn json_message(e: &serde_json::Error, text: &str, expected: &str) -> String {
    use serde_json::error::Category;
    if !matches!(e.classify(), Category::Data) {
        return format!("not a JSON record (expected {expected})");
    }
    let mut s = e.to_string();
    if let Some(i) = s.rfind(" at line ") {
        s.truncate(i);
    }
    // serde may stop at a missing field before it sees the line is no JSON.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return format!("not a JSON record (expected {expected})");
    };
    let Some(object) = value.as_object() else {
        return format!("not a JSON object (expected {expected})");
    };
    // An unknown `kind` is what serde calls an unknown variant of the tag.
    if let Some(kind) = object.get("kind").and_then(|k| k.as_str()) {
        if let Some(rest) = s.strip_prefix(&format!("unknown variant `{kind}`, ")) {
            let names: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
            return format!(
                "unknown record type {kind:?} (expected one of: {})",
                names.join(", ")
            );
        }
    }
    plain_words(&s)
}

/// serde's data error with its Rust words replaced: `` `x` `` quoted as a
/// JSON value would be, type names said as kinds of value.
fn plain_words(serde: &str) -> String {
    let mut out = String::with_capacity(serde.len());
    for (i, part) in serde.split('`').enumerate() {
        let quoted = i % 2 == 1;
        let bare = part.parse::<f64>().is_ok() || matches!(part, "true" | "false" | "null");
        match (quoted, bare) {
            (true, true) => out.push_str(part),
            (true, false) => {
                out.push('"');
                out.push_str(part);
                out.push('"');
            }
            (false, _) => out.push_str(part),
        }
    }
    for (rust, plain) in [
        ("unknown variant", "unknown value"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected variant identifier", "expected a name"),
        ("expected struct ", "expected an object: "),
        ("expected internally tagged enum ", "expected a record: "),
        ("expected a map", "expected an object"),
        ("expected a sequence", "expected a list"),
    ] {
        out = out.replace(rust, plain);
    }
    out
}

/// Writes one JSON value per line, flushing after each.
#[derive(Debug)]
pub struct Writer<W> {
    inner: W,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Self {
        Writer { inner }
    }

    /// Writes `value` as one line and flushes. A reader that went away gives
    /// [`Error::BrokenPipe`].
    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let mut line = serde_json::to_vec(value).map_err(|e| Error::Io(e.to_string()))?;
        line.push(b'\n');
        self.inner.write_all(&line)?;
        self.inner.flush()?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Ends a stage's output, the same in every tool: the `end` record of
    /// `tool` (`datasets` records written, `failed` of them with an error),
    /// with the tool's own fields `extra` (a struct that serializes to a
    /// JSON object, or `()` for none) flattened into it, then a flush.
    /// `Err(Error::Failed(failed))` when any dataset failed: the exit status
    /// then says so, after the records are all out.
    pub fn finish<E: Serialize>(
        mut self,
        tool: &str,
        datasets: usize,
        failed: usize,
        extra: &E,
    ) -> Result<(), Error> {
        let mut end = End::new(tool, datasets, failed);
        match serde_json::to_value(extra).map_err(|e| Error::Io(e.to_string()))? {
            serde_json::Value::Object(map) => end.extra = map,
            serde_json::Value::Null => {}
            other => {
                return Err(Error::Io(format!(
                    "internal: end fields {other} are not an object"
                )))
            }
        }
        self.write(&Record::End(end))?;
        self.inner.flush()?;
        match failed {
            0 => Ok(()),
            n => Err(Error::Failed(n)),
        }
    }
}

/// A dataset a stage acts on ([`Stream::pick`]).
#[derive(Debug, Clone)]
pub struct Picked {
    /// Index into the records.
    pub record: usize,
    /// Index into the source hosts.
    pub host: usize,
    /// Its target dataset.
    pub target: String,
}

/// A whole stage's output: its dataset records and its end record.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub datasets: Vec<Dataset>,
    /// The input line of each dataset record (1-based), for error messages.
    pub lines: Vec<usize>,
    pub end: End,
}

impl Stream {
    /// The datasets that carry an error from upstream.
    pub fn failed(&self) -> impl Iterator<Item = &Dataset> {
        self.datasets.iter().filter(|d| d.error.is_some())
    }
}

/// Reads a stage's output up to and including its `end` record.
///
/// Fails with [`Error::Input`] when a line is bad, when anything follows the
/// end record, or when the input stops before an end record (the stage before
/// crashed or was killed).
pub fn read_stream<R: BufRead>(input: R) -> Result<Stream, Error> {
    let mut reader = Reader::new(input)
        .expecting("one JSON object per line, as zab-select and the later stages write");
    let mut records = 0;
    let mut datasets = Vec::new();
    let mut lines = Vec::new();
    let mut end = None;
    // (host, name) → line: a dataset named twice is bad input.
    let mut seen: std::collections::HashMap<(Option<String>, String), usize> = Default::default();
    while let Some(rec) = reader.next_value::<Record>() {
        let rec = rec?;
        records += 1;
        if end.is_some() {
            return Err(Error::Input {
                line: reader.line(),
                message: "record after the end record".into(),
            });
        }
        match rec {
            Record::Dataset(d) => {
                d.check().map_err(|message| Error::Input {
                    line: reader.line(),
                    message,
                })?;
                let key = (d.host.clone(), d.name.clone());
                if let Some(first) = seen.insert(key, reader.line()) {
                    return Err(Error::Input {
                        line: reader.line(),
                        message: format!(
                            "a second record for {} (the first is on line {first})",
                            d.name
                        ),
                    });
                }
                datasets.push(d);
                lines.push(reader.line());
            }
            Record::End(e) => end = Some(e),
        }
    }
    let end = end.ok_or_else(|| Error::Input {
        line: 0,
        message: match records {
            0 => NO_RECORDS.into(),
            _ => "no end record: the stage before this one did not finish \
                  (crashed, killed or cut off), so its output is incomplete"
                .into(),
        },
    })?;
    Ok(Stream {
        datasets,
        lines,
        end,
    })
}

/// [`read_stream`]'s error for input without a single record.
const NO_RECORDS: &str = "no records at all (the input is empty)";

/// [`read_stream`] of stdin, for the stage `tool`. Empty input, or a
/// terminal (where nothing was piped in), is said as such, with the
/// pipeline that was probably meant: nothing ran before, so "the stage
/// before this one did not finish" would be a wrong hint.
pub fn read_stdin(tool: &str) -> Result<Stream, Error> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let nothing = |how: &str| Error::Input {
        line: 0,
        message: format!(
            "no records on stdin{how}: {tool} reads the records of zab-select or of a \
             later stage (zab-select NAME | {tool} NAME)"
        ),
    };
    if stdin.is_terminal() {
        return Err(nothing(" (it is a terminal)"));
    }
    read_stream(stdin.lock()).map_err(|e| match e {
        Error::Input { line: 0, message } if message == NO_RECORDS => nothing(""),
        e => e,
    })
}

impl Stream {
    /// Checks that every record is for `backup` and, when `ssh_source` is
    /// given, from that host; a stage after zab-select acts on these records,
    /// so a mismatch is bad input, named by its line.
    pub fn check(&self, backup: &str, ssh_source: Option<&str>) -> Result<(), Error> {
        for (d, &line) in self.datasets.iter().zip(&self.lines) {
            let bad = |message: String| Err(Error::Input { line, message });
            if d.backup != backup {
                return bad(format!(
                    "{} is selected for backup {:?}, not {backup:?}",
                    d.name, d.backup
                ));
            }
            if let Some(src) = ssh_source {
                if d.host.as_deref() != Some(src) {
                    return bad(format!(
                        "{} is on {}, not on --ssh-source {src}",
                        d.name,
                        d.host.as_deref().unwrap_or("this host (local)")
                    ));
                }
            }
        }
        Ok(())
    }

    /// The datasets a stage acts on (selected, no error from upstream), as
    /// indices into `datasets`, grouped by host (None = this machine), each
    /// group in input order: one batch of zfs calls per group.
    pub fn selected_by_host(&self) -> std::collections::BTreeMap<Option<String>, Vec<usize>> {
        let mut hosts: std::collections::BTreeMap<Option<String>, Vec<usize>> = Default::default();
        for (i, d) in self.datasets.iter().enumerate() {
            if d.selected && d.error.is_none() {
                hosts.entry(d.host.clone()).or_default().push(i);
            }
        }
        hosts
    }

    /// The datasets a stage acts on ([`Stream::selected_by_host`]), each
    /// with its source host (each made once, by `host`) and its target
    /// dataset (`map`: source name → target name, made from the selected
    /// datasets' names).
    pub fn pick(
        &self,
        map: &std::collections::BTreeMap<String, String>,
        mut host: impl FnMut(Option<&str>) -> Result<Host, Error>,
    ) -> Result<(Vec<Host>, Vec<Picked>), Error> {
        let mut hosts = Vec::new();
        let mut picked = Vec::new();
        for (dest, idx) in &self.selected_by_host() {
            hosts.push(host(dest.as_deref())?);
            for &record in idx {
                picked.push(Picked {
                    record,
                    host: hosts.len() - 1,
                    target: map[self.datasets[record].name.as_str()].clone(),
                });
            }
        }
        Ok((hosts, picked))
    }

    /// Refuses a stream that carries failures from upstream: a destructive
    /// stage must not act on incomplete information.
    pub fn refuse_failures(&self, what: &str) -> Result<(), Error> {
        if let Some((d, &line)) = self
            .datasets
            .iter()
            .zip(&self.lines)
            .find(|(d, _)| d.error.is_some())
        {
            return Err(Error::Input {
                line,
                message: format!(
                    "{} failed upstream ({}): not {what} on incomplete information",
                    d.name,
                    d.error.as_deref().unwrap_or_default()
                ),
            });
        }
        if self.end.failed > 0 {
            return Err(Error::Input {
                line: 0,
                message: format!(
                    "{} reports {} failed dataset(s): not {what} on incomplete information",
                    self.end.tool, self.end.failed
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS: &str = r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/a","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0}"#;
    const END: &str =
        r#"{"kind":"end","tool":"zab-select","version":"0.1.0","datasets":1,"failed":0}"#;

    fn stream(text: &str) -> Result<Stream, Error> {
        read_stream(text.as_bytes())
    }

    #[test]
    fn reads_a_whole_stream() {
        let b = DS.replace("tank/a", "tank/b");
        let s = stream(&format!("{DS}\n\n{b}\n{END}\n")).unwrap();
        assert_eq!(s.datasets.len(), 2);
        assert_eq!(s.lines, vec![1, 3]);
        assert_eq!(s.end.tool, "zab-select");
        assert_eq!(s.failed().count(), 0);
    }

    #[test]
    fn errors_name_the_line() {
        let err = stream(&format!("{DS}\n\n{{\"kind\":\"dataset\"}}\n{END}\n")).unwrap_err();
        assert_eq!(err.to_string(), "line 3: missing field \"backup\"");
        let err = stream(&format!("{DS}\nnot json\n")).unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: not a JSON record"),
            "{err}"
        );
    }

    /// serde's words reached users: `expected value`, `` unknown variant
    /// `dataset` ``, `u64`.
    #[test]
    fn errors_are_plain_words() {
        let with = |from: &str, to: &str| {
            let bad = DS.replace(from, to);
            assert_ne!(bad, DS);
            stream(&format!("{bad}\n{END}\n")).unwrap_err().to_string()
        };
        let expected =
            "(expected one JSON object per line, as zab-select and the later stages write)";
        for (text, want) in [
            ("not json", format!("line 1: not a JSON record {expected}")),
            (
                "{\"kind\":",
                format!("line 1: not a JSON record {expected}"),
            ),
            ("{} x", format!("line 1: not a JSON record {expected}")),
            ("5", format!("line 1: not a JSON object {expected}")),
            (
                "[\"dataset\"]",
                format!("line 1: not a JSON object {expected}"),
            ),
            (
                "{\"kind\":\"dataseta\"}",
                "line 1: unknown record type \"dataseta\" (expected one of: dataset, end)".into(),
            ),
            ("{}", "line 1: missing field \"kind\"".into()),
        ] {
            assert_eq!(
                stream(&format!("{text}\n")).unwrap_err().to_string(),
                want,
                "{text}"
            );
        }
        assert_eq!(
            with(r#""createtxg":7"#, r#""createtxg":"7""#),
            "line 1: invalid type: string \"7\", expected a whole number (0 or more)"
        );
        assert_eq!(
            with(r#""written":0"#, r#""written":-1"#),
            "line 1: invalid value: integer -1, expected a whole number (0 or more)"
        );
        let e = with(r#""reason":"selected""#, r#""reason":"chosen""#);
        assert!(
            e.starts_with("line 1: unknown value \"chosen\", expected one of \"selected\", "),
            "{e}"
        );
        assert_eq!(
            with(r#""kind":"dataset""#, r#""kind":7"#),
            "line 1: invalid type: integer 7, expected a name"
        );
    }

    /// Empty input is not "the stage before did not finish": nothing ran.
    #[test]
    fn empty_input_is_said_as_such() {
        for text in ["", "\n", " \n\n"] {
            let err = stream(text).unwrap_err();
            assert_eq!(
                err.to_string(),
                "end of input: no records at all (the input is empty)"
            );
            assert_eq!(err.exit(), crate::Exit::Input);
        }
    }

    #[test]
    fn truncated_input_is_refused() {
        // No end record at all: the upstream stage died.
        let err = stream(&format!("{DS}\n")).unwrap_err();
        assert!(matches!(err, Error::Input { line: 0, .. }));
        assert!(err.to_string().contains("no end record"), "{err}");
        // Empty input is truncated too.
        assert!(stream("").is_err());
        // A line cut in the middle.
        let cut = &format!("{DS}\n{END}\n")[..DS.len() + 10];
        assert!(stream(cut).unwrap_err().to_string().starts_with("line 2:"));
        // Even a complete-looking end record without its newline.
        let err = stream(&format!("{DS}\n{END}")).unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
    }

    #[test]
    fn checks_backup_host_and_failures() {
        let s = stream(&format!("{DS}\n{END}\n")).unwrap();
        assert!(s.check("b", None).is_ok());
        let e = s.check("other", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: tank/a is selected for backup \"b\", not \"other\""
        );
        let e = s.check("b", Some("root@nas")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: tank/a is on this host (local), not on --ssh-source root@nas"
        );
        assert!(s.refuse_failures("thinning").is_ok());
        let failed = DS
            .replace("tank/a", "tank/b")
            .replace(r#""written":0"#, r#""written":0,"error":"boom""#);
        let s = stream(&format!("{DS}\n{failed}\n{END}\n")).unwrap();
        let e = s.refuse_failures("thinning").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: tank/b failed upstream (boom): not thinning on incomplete information"
        );
        // Records dropped by a filter, but counted in the end record.
        let end = END.replace(r#""failed":0"#, r#""failed":2"#);
        let s = stream(&format!("{DS}\n{end}\n")).unwrap();
        assert!(s
            .refuse_failures("thinning")
            .unwrap_err()
            .to_string()
            .contains("reports 2 failed"));
    }

    /// Two records for one dataset: which one wins is unclear, so neither does.
    #[test]
    fn duplicate_dataset_records_are_refused() {
        let err = stream(&format!("{DS}\n{DS}\n{END}\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: a second record for tank/a (the first is on line 1)"
        );
        assert_eq!(err.exit(), crate::Exit::Input);
        // The same name on another host is another dataset.
        let other = DS.replace(r#""host":null"#, r#""host":"root@nas""#);
        assert!(stream(&format!("{DS}\n{other}\n{END}\n")).is_ok());
    }

    /// A record named `-R` would have become a zfs flag; a snapshot is not
    /// a dataset record.
    #[test]
    fn bad_names_and_types_are_refused() {
        for (from, to, why) in [
            (
                r#""name":"tank/a""#,
                r#""name":"-R""#,
                r#""-R" is not a dataset name"#,
            ),
            (
                r#""name":"tank/a""#,
                r#""name":"tank/a@s""#,
                "is not a dataset name",
            ),
            (
                r#""name":"tank/a""#,
                r#""name":"tank//a""#,
                "is not a dataset name",
            ),
            (
                r#""name":"tank/a""#,
                r#""name":"tank/a\nb""#,
                "is not a dataset name",
            ),
            (
                r#""type":"filesystem""#,
                r#""type":"snapshot""#,
                "type snapshot",
            ),
            (
                r#""type":"filesystem""#,
                r#""type":"bookmark""#,
                "type bookmark",
            ),
            (
                r#""inherited_from":null"#,
                r#""inherited_from":"-o""#,
                "is not a dataset name",
            ),
        ] {
            let bad = DS.replace(from, to);
            assert_ne!(bad, DS);
            let err = stream(&format!("{bad}\n{END}\n")).unwrap_err();
            assert_eq!(err.exit(), crate::Exit::Input, "{to}");
            let msg = err.to_string();
            assert!(
                msg.starts_with("line 1: ") && msg.contains(why),
                "{to}: {msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
        }
        // zab-snap's snapshot names: zab-send --test plans with them.
        for snapshot in [
            r#"{"name":"a/b","status":"would-create","previous":null,"written":null}"#,
            r#"{"name":"s1","status":"created","previous":"x@y","written":0}"#,
        ] {
            let bad = DS.replace(
                r#""written":0}"#,
                &format!(r#""written":0,"snapshot":{snapshot}}}"#),
            );
            let err = stream(&format!("{bad}\n{END}\n")).unwrap_err();
            assert!(err.to_string().contains("is not a snapshot name"), "{err}");
        }
        // Refused whether selected or not, failed or not.
        let bad = DS
            .replace(r#""name":"tank/a""#, r#""name":"-R""#)
            .replace(r#""selected":true"#, r#""selected":false"#);
        assert!(stream(&format!("{bad}\n{END}\n")).is_err());
    }

    /// A 1 GiB line was 1 GiB of memory: now it is refused after the limit,
    /// without reading the rest.
    #[test]
    fn long_lines_are_refused_without_reading_them() {
        struct Endless(std::rc::Rc<std::cell::Cell<usize>>);
        impl std::io::Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                // Twice the limit of one line without a newline, then the end.
                let left = 2 * MAX_LINE - self.0.get();
                let n = buf.len().min(left);
                buf[..n].fill(b' ');
                self.0.set(self.0.get() + n);
                Ok(n)
            }
        }
        let served = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = std::io::BufReader::new(Endless(served.clone()));
        let err = read_stream(input).unwrap_err();
        assert_eq!(err.to_string(), "line 1: longer than 67108864 bytes");
        assert_eq!(err.exit(), crate::Exit::Input);
        assert!(
            served.get() < MAX_LINE + (1 << 20),
            "read {} bytes",
            served.get()
        );
        // A line of exactly the limit (newline included) is read.
        let pad = MAX_LINE - DS.len() - 1;
        let long = DS.replace(
            r#""written":0"#,
            &format!(r#""written":0{}"#, " ".repeat(pad)),
        );
        assert_eq!(long.len() + 1, MAX_LINE);
        assert!(stream(&format!("{long}\n{END}\n")).is_ok());
        let err = stream(&format!("{DS}\n {long}\n{END}\n")).unwrap_err();
        assert_eq!(err.to_string(), "line 2: longer than 67108864 bytes");
    }

    /// A dataset with 10,000 snapshots to send: zab-send's record lists
    /// each transfer (about 2 MB, as scripts/bench/many made it), and
    /// every stage after it must read it.
    #[test]
    fn a_record_of_ten_thousand_transfers_is_read() {
        let t = r#"{"snapshot":"offsite1-20261122101500","from":"offsite1-20261121101500","kind":"incremental","snapshots":1,"done":true,"bytes":1098732,"seconds":0.838}"#;
        let transfers = vec![t; 10_000].join(",");
        let send =
            format!(r#""send":{{"target":"b/d","status":"sent","transfers":[{transfers}]}}"#);
        let ds = DS.replacen('{', &format!("{{{send},"), 1);
        assert!(ds.len() > 1 << 20, "{}", ds.len());
        let s = stream(&format!("{ds}\n{END}\n")).unwrap();
        assert_eq!(s.datasets.len(), 1);
        let send = s.datasets[0].send.as_ref().expect("its send");
        assert_eq!(send.transfers.len(), 10_000);
    }

    /// serde quotes the bad value: a 100 KB one must not make a 100 KB line.
    #[test]
    fn a_long_bad_value_is_cut_in_the_message() {
        let bad = DS.replace(
            r#""type":"filesystem""#,
            &format!(r#""type":"{}""#, "x".repeat(100_000)),
        );
        let err = stream(&format!("{bad}\n{END}\n")).unwrap_err().to_string();
        assert!(err.len() < 2000, "{} bytes", err.len());
        assert!(err.starts_with("line 1: unknown value \"xxx"), "{err}");
        assert!(err.contains("bytes cut]"), "{err}");
    }

    #[test]
    fn nothing_may_follow_the_end() {
        let err = stream(&format!("{END}\n{DS}\n")).unwrap_err();
        assert_eq!(err.to_string(), "line 2: record after the end record");
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let mut bytes = format!("{DS}\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let err = read_stream(&bytes[..]).unwrap_err();
        assert_eq!(err.to_string(), "line 2: not valid UTF-8");
    }

    #[test]
    fn writer_writes_lines_and_round_trips() {
        let mut w = Writer::new(Vec::new());
        let s = stream(&format!("{DS}\n{END}\n")).unwrap();
        for d in &s.datasets {
            w.write(&Record::Dataset(d.clone())).unwrap();
        }
        w.write(&Record::End(s.end.clone())).unwrap();
        let out = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(stream(&out).unwrap(), s);
        assert_eq!(out.lines().count(), 2);
    }

    #[test]
    fn broken_pipe_is_its_own_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let err = Writer::new(Closed).write(&1).unwrap_err();
        assert!(matches!(err, Error::BrokenPipe));
    }

    #[test]
    fn finish_writes_the_end_record_with_the_tools_fields() {
        #[derive(Serialize)]
        struct Extra {
            snapshot: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            would_create: Option<usize>,
        }
        let mut buf = Vec::new();
        let extra = Extra {
            snapshot: "b-1",
            would_create: None,
        };
        Writer::new(&mut buf)
            .finish("zab-snap", 2, 0, &extra)
            .unwrap();
        let line = String::from_utf8(buf).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "end");
        assert_eq!(v["tool"], "zab-snap");
        assert_eq!(
            (v["datasets"].as_u64(), v["failed"].as_u64()),
            (Some(2), Some(0))
        );
        assert_eq!(v["snapshot"], "b-1");
        assert!(v.get("would_create").is_none(), "{line}");

        // Failures: the record first, then the error that sets the exit.
        let mut buf = Vec::new();
        let e = Writer::new(&mut buf)
            .finish("zab-thin", 3, 2, &())
            .unwrap_err();
        assert!(matches!(e, Error::Failed(2)), "{e:?}");
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["failed"], 2);
        assert_eq!(
            v.as_object().unwrap().len(),
            5,
            "kind, tool, version, datasets, failed"
        );
    }

    mod properties {
        use super::*;
        use crate::fuzz::{assert_plain_line, config, damaged};
        use proptest::prelude::*;

        /// A stream read whole or refused in one plain line, exit 3.
        fn read_or_refuse(bytes: &[u8]) {
            match read_stream(bytes) {
                Ok(s) => assert_eq!(s.datasets.len(), s.lines.len()),
                Err(e) => {
                    assert_eq!(e.exit(), crate::Exit::Input, "{e}");
                    assert_plain_line(&e.to_string(), &String::from_utf8_lossy(bytes));
                }
            }
        }

        const STREAM: &str = concat!(
            r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/a","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0}"#,
            "\n",
            r#"{"kind":"dataset","backup":"b","host":"root@nas","name":"tank/b","type":"volume","selected":false,"reason":"child-only","value":"child","source":"received","inherited_from":"tank","createtxg":8,"written":5,"error":"x","snapshot":{"name":"b-1","status":"created","previous":"b-0","written":3},"x-user":[1,{"a":null}]}"#,
            "\n\n",
            r#"{"kind":"end","tool":"zab-snap","version":"0.1.0","datasets":2,"failed":1,"hook_failures":0}"#,
            "\n",
        );

        /// A JSON value of any shape, with `kind` most often one a reader
        /// knows, and fields that records have.
        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                "[a-z/@ -]{0,8}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(serde_json::Value::from),
                    proptest::collection::btree_map(
                        prop_oneof![
                            proptest::sample::select(vec![
                                "kind",
                                "backup",
                                "host",
                                "name",
                                "type",
                                "selected",
                                "reason",
                                "value",
                                "source",
                                "inherited_from",
                                "createtxg",
                                "written",
                                "error",
                                "snapshot",
                                "tool",
                                "version",
                                "datasets",
                                "failed",
                            ])
                            .prop_map(String::from),
                            "[a-z]{1,4}",
                        ],
                        inner,
                        0..8,
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn random_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                read_or_refuse(&bytes);
            }

            #[test]
            fn a_damaged_stream_is_read_or_refused(text in damaged(STREAM)) {
                read_or_refuse(text.as_bytes());
            }

            /// Whatever the JSON, serde's words never reach the user.
            #[test]
            fn any_json_is_refused_in_plain_words(
                value in json(),
                kind in proptest::option::of(prop_oneof![
                    Just("dataset".to_string()), Just("end".to_string()), "[a-z]{0,6}"
                ]),
            ) {
                let mut value = value;
                if let (Some(kind), Some(map)) = (kind, value.as_object_mut()) {
                    map.insert("kind".into(), kind.into());
                }
                let text = format!("{value}\n");
                read_or_refuse(text.as_bytes());
            }

            /// A stream cut anywhere before its end record's newline is
            /// refused, never read as shorter.
            #[test]
            fn a_cut_stream_is_refused(cut in 0..STREAM.len()) {
                let cut = &STREAM.as_bytes()[..cut];
                let err = read_stream(cut).unwrap_err();
                assert_eq!(err.exit(), crate::Exit::Input);
                assert_plain_line(&err.to_string(), STREAM);
            }
        }
    }
}
