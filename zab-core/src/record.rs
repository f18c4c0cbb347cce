//! The NDJSON records that zab's tools pass down a pipe.
//!
//! The wire format is specified in `docs/records.md`; this module is its
//! implementation. In short:
//!
//! * One JSON object per line, with a `kind` field.
//! * `dataset`: one per dataset, written by zab-select and passed on (and
//!   added to) by every later stage.
//!   `{"kind":"dataset","backup":"offsite1","host":null,"name":"rpool/data","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":42,"written":1048576}`
//! * `end`: the last line of every stage's output. A stream without it was
//!   cut short, and later stages must not act destructively on it.
//!   `{"kind":"end","tool":"zab-select","version":"0.1.0","datasets":1,"failed":0}`
//!
//! Fields a tool does not know are kept in `extra` and written back out
//! unchanged, so `jq` can add fields between any two stages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::zfs::DatasetType;

/// Why zab-select kept or left out a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Selected for backup.
    Selected,
    /// The property is not set here, nor inherited.
    Unset,
    /// `child` set on this dataset: only its descendants are selected.
    ChildOnly,
    /// `parent` inherited from above: only the dataset where it is set is selected.
    ParentOnly,
    /// `false`: explicitly excluded.
    Disabled,
    /// Under the target path on the same host.
    TargetPath,
    /// The property was received (`--exclude-received`, or automatic).
    Received,
    /// Fewer bytes written since the latest snapshot than `--exclude-unchanged`.
    Unchanged,
    /// The property has a value or source zab cannot accept (see `error`).
    Invalid,
}

impl Reason {
    /// The words zfs-autobackup prints for this decision in `--verbose`
    /// (`[Source] rpool/swap: Excluded`), or None where it prints nothing.
    pub fn upstream_words(self) -> Option<&'static str> {
        match self {
            Reason::Selected => Some("Selected"),
            Reason::Disabled => Some("Excluded"),
            Reason::Received => Some("Excluded (dataset already received)"),
            Reason::Unchanged => Some("Excluded (by --exclude-unchanged)"),
            Reason::Unset | Reason::ChildOnly | Reason::ParentOnly => None,
            // Upstream logs this at debug level only.
            Reason::TargetPath => None,
            Reason::Invalid => None,
        }
    }

    /// A short human explanation, for `--verbose` and `--all`.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Selected => "selected",
            Reason::Unset => "property not set",
            Reason::ChildOnly => "child: only descendants are selected",
            Reason::ParentOnly => "parent: only the dataset where it is set is selected",
            Reason::Disabled => "excluded by the property (false)",
            Reason::TargetPath => "under the target path on the same host",
            Reason::Received => "property was received (--exclude-received)",
            Reason::Unchanged => "unchanged since the latest snapshot (--exclude-unchanged)",
            Reason::Invalid => "invalid property",
        }
    }
}

/// Where the selection property's value comes from, after following inheritance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropSource {
    Local,
    Received,
    /// Not set (zfs shows `-`).
    None,
    /// Anything else zfs reported (kept for the error message).
    Other,
}

/// One dataset, as selected by zab-select and carried down the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The backup name (`offsite1`).
    pub backup: String,
    /// The ssh destination of the source host, or null for the local host.
    pub host: Option<String>,
    /// The dataset's full name.
    pub name: String,
    /// `filesystem` or `volume`.
    #[serde(rename = "type")]
    pub kind: DatasetType,
    /// Whether this dataset is to be backed up.
    pub selected: bool,
    /// Why (see [`Reason`]).
    pub reason: Reason,
    /// The selection property's value, or null when unset.
    pub value: Option<String>,
    /// Where the value comes from, inheritance resolved.
    pub source: PropSource,
    /// The dataset the value is inherited from, or null when set here or unset.
    pub inherited_from: Option<String>,
    /// The transaction group the dataset was created in.
    pub createtxg: u64,
    /// Bytes written since its latest snapshot (any snapshot).
    pub written: u64,
    /// `snapshots_changed` (OpenZFS 2.2+): when a snapshot of it was last
    /// created, destroyed or renamed, in seconds since the epoch; absent
    /// where the pool does not have it. Read by zab-snap's quiet-run cache
    /// (zab_core::quiet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_changed: Option<u64>,
    /// The error that made this dataset fail, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What zab-snap did with this dataset; absent before zab-snap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapOutcome>,
    /// What zab-thin did with this dataset's snapshots; absent before zab-thin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thin: Option<ThinOutcome>,
    /// What zab-send did (absent before zab-send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<SendOutcome>,
    /// What zab-verify found (absent before zab-verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyOutcome>,
    /// What zab-status found (absent before zab-status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusOutcome>,
    /// Fields added by other tools or by the user: passed through unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Dataset {
    /// Checks what later stages hand to `zfs`: the name, `inherited_from`
    /// and zab-snap's snapshot names follow ZFS's grammar ([`crate::name`]),
    /// and the type is a dataset's (`filesystem` or `volume`, not `snapshot`).
    pub fn check(&self) -> Result<(), String> {
        crate::name::dataset(&self.name)?;
        if let Some(from) = &self.inherited_from {
            crate::name::dataset(from).map_err(|e| format!("inherited_from: {e}"))?;
        }
        if let Some(snap) = &self.snapshot {
            let check = |n: &str| {
                crate::name::snapshot_name(n).map_err(|e| format!("{}: snapshot: {e}", self.name))
            };
            check(&snap.name)?;
            snap.previous.as_deref().map(check).transpose()?;
        }
        match self.kind {
            DatasetType::Filesystem | DatasetType::Volume => Ok(()),
            DatasetType::Snapshot | DatasetType::Bookmark => Err(format!(
                "{}: a dataset record has type {}, not filesystem or volume",
                self.name,
                serde_json::to_value(self.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )),
        }
    }
}

/// What zab-snap did with one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapOutcome {
    /// The name of this run's snapshot (the part after `@`).
    pub name: String,
    /// Created, skipped, failed, or (with `--test`) would be created.
    pub status: SnapStatus,
    /// Our newest snapshot of the dataset before this run, if any.
    pub previous: Option<String>,
    /// Bytes written since `previous` (`written@previous`), when zab-snap
    /// needed to know it.
    pub written: Option<u64>,
    /// Why it was skipped (`no changes since offsite1-20261122101500`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of zab-snap for one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapStatus {
    /// The snapshot was taken.
    Created,
    /// Not taken: unchanged since our previous snapshot (see `reason`).
    Skipped,
    /// Not taken: the pool's `zfs snapshot` or a pre-snapshot command failed
    /// (the dataset's `error` says which).
    Failed,
    /// `--test`: it would have been taken.
    WouldCreate,
}

/// What zab-send planned and did for one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// The target dataset.
    pub target: String,
    /// Planned (`--plan`, `--test`), sent, up to date, or failed.
    pub status: SendStatus,
    /// The newest snapshot on both sides before this run (name after `@`);
    /// none before a first, full transfer.
    pub common: Option<String>,
    /// The transfers, in order: planned, then done.
    pub transfers: Vec<Transfer>,
    /// Source snapshots after the common one that are not sent, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Spared>,
    /// Target snapshots after the common one that block a receive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incompatible: Vec<String>,
    /// What was done before the transfers, in words (`created parent
    /// backup/host1/rpool with canmount=off`, `aborted the resume token: …`,
    /// `destroyed incompatible snapshots`, `rolled back to …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The target dataset's `createtxg` and `snapshots_changed` as zab-send
    /// read them in this run (its quiet-run cache's `zfs get`), only where
    /// it changed nothing on that dataset and it had no resume token; for
    /// zab-thin's quiet-run cache (docs/architecture.md, "Quiet runs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_createtxg: Option<u64>,
    /// See `target_createtxg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_snapshots_changed: Option<u64>,
}

/// The outcome of zab-send for one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SendStatus {
    /// `--plan` or `--test`: the transfers are what would be done.
    Planned,
    /// Every planned transfer was done.
    Sent,
    /// Nothing to send: the target has the newest snapshot it wants.
    UpToDate,
    /// A step failed (the dataset's `error` says which); transfers marked
    /// done were done.
    Failed,
}

/// One `zfs send | zfs recv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The snapshot received (name after `@`).
    pub snapshot: String,
    /// The incremental base, none for a full transfer.
    pub from: Option<String>,
    /// When the source no longer has `from`: the source's bookmark of it
    /// (name after `#`) that the stream is sent from (`zfs send -i ds#bm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_bookmark: Option<String>,
    /// full, incremental, or resumed (an interrupted one, completed).
    pub kind: TransferKind,
    /// How many snapshots the stream carries: more than 1 for `zfs send -I`,
    /// used when every snapshot between `from` and `snapshot` is wanted.
    pub snapshots: usize,
    /// Whether it completed.
    pub done: bool,
    /// Bytes that went through the pipe (after send pipes and compression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Wall-clock seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// To an object store (zab-send to s3:// or file://): the object written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<StoredObject>,
}

/// An object a transfer wrote to a store (docs/store.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Its URL: `s3://bucket/prefix/pool/fs@snapshot`.
    pub key: String,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Bytes of the `zfs send` stream (`zfs send -P`'s estimate when compressed).
    pub stream_bytes: u64,
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
}

/// How a transfer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferKind {
    Full,
    Incremental,
    Resumed,
}

/// How a dataset's backup stands, by zab-status's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Warning,
    Unknown,
    Critical,
}

/// What zab-status found for one dataset (docs/records.md). Ages are in
/// seconds before "now"; a snapshot's time is the one in its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusOutcome {
    /// The target dataset.
    pub target: String,
    /// `ok`, `warning`, `critical` or `unknown`.
    pub health: Health,
    /// The newest of our snapshots on the source (after `@`), and its age.
    pub source_snapshot: Option<String>,
    pub source_age: Option<i64>,
    /// The newest of our snapshots on the target, and its age.
    pub target_snapshot: Option<String>,
    pub target_age: Option<i64>,
    /// Age of the end of zab-send's last run in which this dataset was
    /// sent or up to date, and of the last in which it was sent.
    pub last_success_age: Option<i64>,
    pub last_transfer_age: Option<i64>,
    /// Bytes sent for it in zab-send's last run.
    pub last_run_bytes: Option<u64>,
    /// The target dataset holds a resume token (an interrupted receive).
    pub resume_token: bool,
    /// Why it is not `ok`, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What zab-verify found for one dataset: its newest snapshot common to
/// source and target, hashed on both sides (zab-check) and compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOutcome {
    /// The target dataset.
    pub target: String,
    pub status: VerifyStatus,
    /// The snapshot compared (name after `@`); none without a common one.
    pub snapshot: Option<String>,
    /// How many chunks were compared (hashed on the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u64>,
    /// What differs, in order (the first [`MAX_DIFFERENCES`] of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// How many differ in all, when more than are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<u64>,
}

/// The most differences a record lists.
pub const MAX_DIFFERENCES: usize = 100;

/// zab-verify's verdict on one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyStatus {
    /// Every chunk of the common snapshot has the same hash on both sides.
    Verified,
    /// Some chunks differ, or exist on one side only (`differences`).
    Mismatch,
    /// Source and target have no snapshot in common: nothing to compare.
    NoCommonSnapshot,
    /// Hashing failed on a side (the record's `error` says why).
    Failed,
}

/// One chunk that differs: of which file (trees; none for a volume), its
/// number, and on which side only it exists (none: on both, different).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub chunk: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Side>,
}

/// A side of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

/// What zab-thin did with one dataset (and its target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinOutcome {
    /// The source dataset's snapshots.
    pub source: ThinSide,
    /// The target dataset's, when thinning with a TARGET-PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ThinSide>,
}

/// Thinning on one side: what the schedule kept and what it destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinSide {
    /// The dataset thinned.
    pub dataset: String,
    /// How many of our snapshots are kept.
    pub kept: usize,
    /// The snapshots (names after `@`) the schedule no longer wants.
    pub destroy: Vec<String>,
    /// Whether they were destroyed: false with `--test` and `--no-thinning`,
    /// and when the destroy failed (then the record has an `error`).
    pub destroyed: bool,
    /// Snapshots the schedule no longer wants that are kept anyway, and why
    /// (`held by keep`, `the common snapshot`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spared: Vec<Spared>,
    /// The source's bookmarks of ours (names after `#`) that match no
    /// target snapshot any more, destroyed with the snapshots (`destroyed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bookmarks: Vec<String>,
}

/// A snapshot kept against the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spared {
    pub name: String,
    pub why: String,
}

/// The last record of every stage: its presence proves the stream is whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// The tool that wrote it.
    pub tool: String,
    /// That tool's version.
    pub version: String,
    /// How many dataset records came before it.
    pub datasets: usize,
    /// How many of them failed (carry an `error`).
    pub failed: usize,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl End {
    /// The end record for `tool` (`CARGO_PKG_VERSION` of zab-core).
    pub fn new(tool: &str, datasets: usize, failed: usize) -> End {
        End {
            tool: tool.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            datasets,
            failed,
            extra: Map::new(),
        }
    }
}

/// Any record, told apart by its `kind` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
// One record per dataset, read one at a time: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Dataset(Dataset),
    End(End),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example line in docs/records.md parses, and writes back identically.
    #[test]
    fn docs_examples_round_trip() {
        let doc = include_str!("../../docs/records.md");
        let examples: Vec<&str> = doc.lines().filter(|l| l.starts_with("{\"kind\"")).collect();
        assert!(examples.len() >= 2, "docs/records.md has no examples");
        for line in examples {
            let rec: Record = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let again = serde_json::to_string(&rec).unwrap();
            let a: Value = serde_json::from_str(line).unwrap();
            let b: Value = serde_json::from_str(&again).unwrap();
            assert_eq!(a, b, "round trip changed {line}");
        }
    }

    #[test]
    fn unknown_fields_pass_through() {
        let line = r#"{"kind":"dataset","backup":"b","host":"root@h","name":"tank/a","type":"volume","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0,"note":{"by":"jq"},"zz":1}"#;
        let rec: Record = serde_json::from_str(line).unwrap();
        match &rec {
            Record::Dataset(d) => {
                assert_eq!(d.extra.len(), 2);
                assert_eq!(d.extra["note"]["by"], "jq");
            }
            other => panic!("{other:?}"),
        }
        let a: Value = serde_json::from_str(line).unwrap();
        let b: Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn wrong_kind_or_missing_fields_are_rejected() {
        assert!(serde_json::from_str::<Record>(r#"{"kind":"bogus"}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"kind":"dataset","name":"x"}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"name":"x"}"#).is_err());
    }
}
