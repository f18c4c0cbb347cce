//! Pure: what to compare, for each dataset to verify: the newest snapshot
//! common to source and target (same name and guid, unless
//! `--no-guid-check`), or none.

use zab_core::zfs::{common_snapshot, Snapshot};

use crate::gather::Listed;
use crate::input::Input;

/// One dataset to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Index into the records.
    pub record: usize,
    /// Index into the source hosts.
    pub host: usize,
    /// The source dataset.
    pub source: String,
    /// Its target dataset.
    pub target: String,
    /// The snapshot to compare (name after `@`); None without a common one.
    pub snapshot: Option<String>,
}

/// Every picked dataset's job, in input order.
pub fn jobs(input: &Input, listed: &Listed, guid_check: bool) -> Vec<Job> {
    input
        .picked
        .iter()
        .map(|p| {
            let source = input.datasets[p.record].name.clone();
            let snaps = listed.sources.get(&source).map_or(&[][..], Vec::as_slice);
            let exists = listed.target.datasets.iter().any(|(d, _)| *d == p.target);
            let target = listed.target.snapshots.get(&p.target).map(Vec::as_slice);
            Job {
                record: p.record,
                host: p.host,
                snapshot: snapshot(snaps, target.filter(|_| exists), guid_check),
                source,
                target: p.target.clone(),
            }
        })
        .collect()
}

/// The snapshot (name after `@`) to compare, or None when source and
/// target have none in common (or the target dataset does not exist).
pub fn snapshot(
    source: &[Snapshot],
    target: Option<&[Snapshot]>,
    guid_check: bool,
) -> Option<String> {
    common_snapshot(source, target?, guid_check).map(|s| s.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, guid: u64, txg: u64) -> Snapshot {
        Snapshot {
            name: name.into(),
            createtxg: txg,
            guid,
            userrefs: None,
        }
    }

    #[test]
    fn each_picked_dataset_gets_its_common_snapshot() {
        let rec = |name: &str| -> zab_core::record::Dataset {
            serde_json::from_value(serde_json::json!({
                "backup": "b", "host": null, "name": name, "type": "filesystem",
                "selected": true, "reason": "selected", "value": "true", "source": "local",
                "inherited_from": null, "createtxg": 1, "written": 0,
            }))
            .expect("record")
        };
        let picked = |record: usize, target: &str| zab_core::ndjson::Picked {
            record,
            host: 0,
            target: target.into(),
        };
        let input = Input {
            datasets: vec![rec("p/a"), rec("p/gone"), rec("p/new")],
            hosts: Vec::new(),
            picked: vec![
                picked(0, "t/p/a"),
                picked(1, "t/p/gone"),
                picked(2, "t/p/new"),
            ],
        };
        let both = vec![snap("s1", 1, 1), snap("s2", 2, 2)];
        let listed = Listed {
            sources: [("p/a", both.clone()), ("p/gone", both.clone())]
                .map(|(d, s)| (d.to_string(), s))
                .into(),
            target: zab_core::zfs::Tree {
                // t/p/gone's snapshots are listed, but not the dataset.
                datasets: vec![("t/p/a".into(), None), ("t/p/new".into(), None)],
                snapshots: [
                    ("t/p/a", both.clone()),
                    ("t/p/gone", both),
                    ("t/p/new", vec![]),
                ]
                .map(|(d, s)| (d.to_string(), s))
                .into(),
                ..Default::default()
            },
        };
        let jobs = jobs(&input, &listed, true);
        let got: Vec<_> = jobs
            .iter()
            .map(|j| (j.source.as_str(), j.target.as_str(), j.snapshot.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("p/a", "t/p/a", Some("s2")),
                ("p/gone", "t/p/gone", None),
                ("p/new", "t/p/new", None),
            ]
        );
    }

    #[test]
    fn the_newest_common_snapshot_by_name_and_guid() {
        let src = [snap("a", 1, 1), snap("b", 2, 2), snap("c", 3, 3)];
        let tgt = [snap("a", 1, 5), snap("b", 2, 6), snap("c", 99, 7)];
        assert_eq!(snapshot(&src, Some(&tgt), true).as_deref(), Some("b"));
        assert_eq!(snapshot(&src, Some(&tgt), false).as_deref(), Some("c"));
        assert_eq!(snapshot(&src, Some(&[]), true), None);
        assert_eq!(snapshot(&src, None, true), None, "no target dataset");
    }
}
