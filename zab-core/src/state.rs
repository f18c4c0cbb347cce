//! What zab-send remembers of its runs, for zab-status and the metrics: one
//! small JSON file per backup name and target in the private state
//! directory ([`crate::private::state_dir`]: `/var/lib/zab` for root),
//! named after the run lock's key ([`crate::lock::key`]):
//! `NAME@HOST:PATH.last-run.json` (`offsite1@local:backup%host1.last-run.json`).
//! Its format, with an example (checked by a test below), is in
//! docs/records.md, "zab-send's state file".
//!
//! The file is replaced whole, atomically ([`write_atomic`]: a temporary
//! file in the same directory, then `rename(2)`), so a reader never sees
//! half of it. A file that does not parse is an error for a reader; zab-send
//! warns and starts a new one.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::record::{Dataset, SendStatus};

/// The format's version, the file's `format`.
pub const FORMAT: u32 = 1;

/// How long a dataset's entry outlives the last run that saw it: 30 days.
/// After a successful run (records, none failed) that does not list its
/// source, an entry whose `last_run` is older than this is dropped; a
/// dataset still selected keeps its entry however long it has failed.
pub const FORGET_AFTER: i64 = 30 * 86_400;

/// One backup's state at one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    pub backup: String,
    /// The target's ssh destination; null for this machine.
    pub ssh_target: Option<String>,
    /// TARGET-PATH.
    pub target: String,
    pub last_run: Option<Run>,
    /// The end of the last run in which no dataset failed.
    pub last_success: Option<i64>,
    /// By target dataset.
    pub datasets: BTreeMap<String, DatasetState>,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub start: i64,
    pub end: i64,
    /// Dataset records in the run.
    pub datasets: u64,
    /// Those with an error.
    pub failed: u64,
    /// Those with `send.status` `sent`.
    pub sent: u64,
    /// Transfers done.
    pub transfers: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// One target dataset's last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetState {
    pub source: String,
    pub host: Option<String>,
    pub last_run: i64,
    pub status: SendStatus,
    pub bytes: u64,
    pub last_success: Option<i64>,
    pub last_transfer: Option<i64>,
}

impl State {
    /// A state without any run yet.
    pub fn new(backup: &str, ssh_target: Option<&str>, target: &str) -> State {
        State {
            format: FORMAT,
            backup: backup.to_string(),
            ssh_target: ssh_target.map(str::to_string),
            target: target.to_string(),
            last_run: None,
            last_success: None,
            datasets: BTreeMap::new(),
        }
    }

    /// Adds a run that started at `start` and ended at `end`, from zab-send's
    /// records (each with its `send` outcome; records without one, which
    /// zab-send did not get to, count as records, and as failed when they
    /// carry an error). Pure.
    pub fn add_run(&mut self, start: i64, end: i64, records: &[Dataset]) {
        let mut run = Run {
            start,
            end,
            ..Run::default()
        };
        for d in records {
            run.datasets += 1;
            if d.error.is_some() {
                run.failed += 1;
            }
            let Some(send) = &d.send else { continue };
            let bytes: u64 = send.transfers.iter().filter_map(|t| t.bytes).sum();
            let transfers = send.transfers.iter().filter(|t| t.done).count() as u64;
            run.bytes += bytes;
            run.transfers += transfers;
            let ok =
                d.error.is_none() && matches!(send.status, SendStatus::Sent | SendStatus::UpToDate);
            let sent = ok && send.status == SendStatus::Sent;
            run.sent += u64::from(sent);
            let old = self.datasets.get(&send.target);
            let entry = DatasetState {
                source: d.name.clone(),
                host: d.host.clone(),
                last_run: end,
                status: send.status,
                bytes,
                last_success: if ok {
                    Some(end)
                } else {
                    old.and_then(|o| o.last_success)
                },
                last_transfer: if sent {
                    Some(end)
                } else {
                    old.and_then(|o| o.last_transfer)
                },
            };
            self.datasets.insert(send.target.clone(), entry);
        }
        if run.failed == 0 {
            self.last_success = Some(end);
            if run.datasets > 0 {
                self.forget(end, records);
            }
        }
        self.last_run = Some(run);
    }

    /// Drops the entries of datasets that `records` (a whole successful
    /// run that ended at `end`) does not list and that no run has seen
    /// for [`FORGET_AFTER`]: datasets no longer selected, or renamed.
    fn forget(&mut self, end: i64, records: &[Dataset]) {
        let seen: std::collections::BTreeSet<(&str, Option<&str>)> = records
            .iter()
            .map(|d| (d.name.as_str(), d.host.as_deref()))
            .collect();
        self.datasets.retain(|_, e| {
            end.saturating_sub(e.last_run) <= FORGET_AFTER
                || seen.contains(&(e.source.as_str(), e.host.as_deref()))
        });
    }
}

/// The state file's name: the run lock's key, then `.last-run.json`.
pub fn file_name(backup: &str, ssh_target: Option<&str>, target: &str) -> Result<String, Error> {
    Ok(format!(
        "{}.last-run.json",
        crate::lock::key(backup, Some((ssh_target, target)))?
    ))
}

/// The state file of `backup` at `target` in this process's state
/// directory (created and checked).
pub fn path(backup: &str, ssh_target: Option<&str>, target: &str) -> Result<PathBuf, Error> {
    Ok(crate::private::state_dir()?.join(file_name(backup, ssh_target, target)?))
}

/// The state of `backup` at `target` for a reader (zab-status): None when
/// the state directory or the file does not exist yet. The directory is
/// not created, but one that exists is checked as [`crate::private`] does.
pub fn find(backup: &str, ssh_target: Option<&str>, target: &str) -> Result<Option<State>, Error> {
    let euid = crate::private::euid();
    let dir = crate::private::state_dir_for(
        euid,
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    )?;
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(None);
    }
    crate::private::ensure_private_dir(&dir, euid)?;
    read(&dir.join(file_name(backup, ssh_target, target)?))
}

/// Parses a state file's text.
pub fn parse(text: &str) -> Result<State, String> {
    let state: State = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if state.format != FORMAT {
        return Err(format!(
            "format {} (this zab reads format {FORMAT})",
            state.format
        ));
    }
    Ok(state)
}

/// Reads the state file at `path`: None when there is none yet.
pub fn read(path: &Path) -> Result<Option<State>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|e| Error::Io(format!("{}: not a zab state file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes `state` to `path`, atomically, readable by its owner only.
pub fn write(path: &Path, state: &State) -> Result<(), Error> {
    let mut text = serde_json::to_string(state).map_err(|e| Error::Io(e.to_string()))?;
    text.push('\n');
    write_atomic(path, text.as_bytes(), 0o600)
}

/// Replaces `path` with `bytes` so that no reader ever sees a part of
/// them: written to a new temporary file in the same directory (created
/// with `mode`, never through an existing file or symlink), synced, then
/// renamed over `path`. The temporary name starts with a dot and ends in
/// `.tmp` (node_exporter's textfile collector reads only `*.prom`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let fail =
        |what: &str, e: std::io::Error| Error::Io(format!("cannot {what} {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(name: &str, status: &str, bytes: &[u64], error: Option<&str>) -> Dataset {
        let transfers: Vec<_> = bytes
            .iter()
            .map(|b| {
                serde_json::json!({"snapshot": "s2", "from": "s1", "kind": "incremental",
                    "snapshots": 1, "done": true, "bytes": b, "seconds": 0.5})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "backup": "b", "host": null, "name": name, "type": "filesystem",
            "selected": true, "reason": "selected", "value": "true", "source": "local",
            "inherited_from": null, "createtxg": 1, "written": 0, "error": error,
            "send": {"target": format!("t/{name}"), "status": status, "common": "s1",
                     "transfers": transfers},
        }))
        .expect("record")
    }

    #[test]
    fn a_run_updates_each_dataset_and_keeps_what_it_did_not_see() {
        let mut s = State::new("b", None, "t");
        s.add_run(
            100,
            110,
            &[
                record("p/a", "sent", &[10, 5], None),
                record("p/b", "up-to-date", &[], None),
            ],
        );
        assert_eq!(s.last_success, Some(110));
        let a = &s.datasets["t/p/a"];
        assert_eq!(
            (a.bytes, a.last_success, a.last_transfer),
            (15, Some(110), Some(110))
        );
        assert_eq!(s.datasets["t/p/b"].last_transfer, None);
        let run = s.last_run.expect("run");
        assert_eq!(
            (run.datasets, run.failed, run.sent, run.transfers, run.bytes),
            (2, 0, 1, 2, 15)
        );

        // p/a fails, p/b is sent, p/c is new and up to date.
        s.add_run(
            200,
            210,
            &[
                record("p/a", "failed", &[3], Some("boom")),
                record("p/b", "sent", &[7], None),
            ],
        );
        assert_eq!(s.last_success, Some(110), "a run with a failure");
        let a = &s.datasets["t/p/a"];
        assert_eq!(
            (
                a.status,
                a.bytes,
                a.last_run,
                a.last_success,
                a.last_transfer
            ),
            (SendStatus::Failed, 3, 210, Some(110), Some(110))
        );
        let b = &s.datasets["t/p/b"];
        assert_eq!((b.last_success, b.last_transfer), (Some(210), Some(210)));
        s.add_run(300, 310, &[record("p/c", "up-to-date", &[], None)]);
        assert_eq!(s.datasets.len(), 3);
        assert_eq!(s.datasets["t/p/a"].last_run, 210);
        assert_eq!(s.last_success, Some(310));
    }

    #[test]
    fn datasets_no_longer_selected_are_forgotten_after_30_days() {
        let day = 86_400;
        let mut s = State::new("b", None, "t");
        let both = [
            record("p/a", "sent", &[1], None),
            record("p/b", "sent", &[1], None),
        ];
        s.add_run(0, 10, &both);
        // p/b is no longer selected: kept while its last run is 30 days old.
        let a = [record("p/a", "up-to-date", &[], None)];
        s.add_run(30 * day, 30 * day + 10, &a);
        assert!(s.datasets.contains_key("t/p/b"), "exactly 30 days");
        // Not after a run with a failure, nor after a run without records.
        let failed = [record("p/a", "failed", &[], Some("boom"))];
        s.add_run(31 * day, 31 * day + 10, &failed);
        s.add_run(32 * day, 32 * day + 10, &[]);
        assert!(s.datasets.contains_key("t/p/b"));
        // A successful run that does not list it: gone; p/a stays.
        s.add_run(33 * day, 33 * day + 10, &a);
        let keys: Vec<&String> = s.datasets.keys().collect();
        assert_eq!(keys, ["t/p/a"]);

        // A dataset still selected but failing before zab-send got to it
        // (a record without `send`) keeps its old entry.
        let mut s = State::new("b", None, "t");
        s.add_run(0, 10, &both);
        let mut upstream = record("p/b", "sent", &[], None);
        upstream.send = None;
        let later = [a[0].clone(), upstream];
        s.add_run(90 * day, 90 * day + 10, &later);
        assert_eq!(s.datasets["t/p/b"].last_run, 10);
        // The same source on another host is another dataset.
        let mut elsewhere = record("p/b", "sent", &[], None);
        (elsewhere.host, elsewhere.send) = (Some("h2".into()), None);
        let mut s = State::new("b", None, "t");
        s.add_run(0, 10, &both);
        s.add_run(90 * day, 90 * day + 10, &[a[0].clone(), elsewhere]);
        assert_eq!(s.datasets.len(), 1, "{:?}", s.datasets.keys());
    }

    #[test]
    fn written_atomically_read_back_and_private() {
        let d = crate::scratch("state", "rw");
        let p = d.join(file_name("off1", Some("root@b1"), "tank/h1").expect("name"));
        assert!(p.ends_with("off1@root@b1:tank%h1.last-run.json"));
        assert_eq!(read(&p).expect("read"), None, "no file yet");
        let mut s = State::new("off1", Some("root@b1"), "tank/h1");
        s.add_run(1, 2, &[record("p/a", "sent", &[1], None)]);
        write(&p, &s).expect("write");
        assert_eq!(read(&p).expect("read"), Some(s.clone()));
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Replaced, not appended; no temporary file left.
        s.add_run(3, 4, &[]);
        write(&p, &s).expect("write");
        assert_eq!(read(&p).expect("read"), Some(s));
        let left: Vec<_> = std::fs::read_dir(&d).expect("dir").collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let d = crate::scratch("state", "bad");
        let p = d.join("x.last-run.json");
        std::fs::write(&p, "{\"format\":1}").expect("write");
        let e = read(&p).expect_err("bad").to_string();
        assert!(e.contains("x.last-run.json: not a zab state file"), "{e}");
        let s = serde_json::to_string(&State::new("b", None, "t")).expect("json");
        std::fs::write(&p, s.replace("\"format\":1", "\"format\":9")).expect("write");
        let e = read(&p).expect_err("format").to_string();
        assert!(e.contains("format 9"), "{e}");
    }

    #[test]
    fn the_documented_example_parses_and_writes_back_the_same() {
        let doc = include_str!("../../docs/records.md")
            .split("## zab-send's state file")
            .nth(1)
            .and_then(|s| s.split("```\n").nth(1))
            .expect("the example in docs/records.md");
        let s = parse(doc).expect("the example");
        assert_eq!(s.datasets["backup/host1/rpool/data"].bytes, 1048576);
        let mut again = serde_json::to_string(&s).expect("json");
        again.push('\n');
        assert_eq!(again, doc);
    }
}
