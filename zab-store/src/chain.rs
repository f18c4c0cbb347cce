//! A dataset's chains, from its manifest: which earlier object each
//! incremental continues, and every object a snapshot needs to be
//! restored (its chain, from a full stream up to the object that carries
//! it). Pure; the one chain walker: zab-restore's plan, the chains'
//! health (manifest.rs), zab-thin's store retention and zab-send's
//! `--full-every` read chains through it.
//!
//! An incremental continues the newest earlier object that carries its
//! parent by name and guid, as zab-restore walks it back (zfs3backup's
//! `parent` links, with guids).

use crate::manifest::{same_guid, Kind, Manifest};

/// The entry (index into `m.objects`) that entry `i` continues: for an
/// incremental, the newest earlier entry carrying its parent by name and
/// guid ([`same_guid`]: by name alone for zfs3backup's objects, which
/// have none). None for a full stream, or when no earlier entry carries
/// it.
pub fn parent(m: &Manifest, i: usize) -> Option<usize> {
    let e = m.objects.get(i)?;
    if e.kind == Kind::Full {
        return None;
    }
    let name = e.parent.as_deref()?;
    (0..i).rev().find(|&j| {
        m.objects[j]
            .snapshots
            .iter()
            .any(|s| s.name == name && same_guid(s.guid, e.parent_guid))
    })
}

/// Entry `i`'s chain, walked back through [`parent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The entries, oldest first, ending with `i`.
    pub entries: Vec<usize>,
    /// The walk reached a full stream (else it stopped at an incremental
    /// whose parent no earlier entry carries: the first of `entries`).
    pub complete: bool,
}

/// Walks entry `i` back to its full stream.
pub fn walk(m: &Manifest, i: usize) -> Walk {
    let mut entries = vec![i];
    let mut at = i;
    let complete = loop {
        match m.objects.get(at).map(|e| e.kind) {
            Some(Kind::Full) => break true,
            None => break false,
            Some(Kind::Incremental) => match parent(m, at) {
                Some(p) => {
                    entries.push(p);
                    at = p;
                }
                None => break false,
            },
        }
    };
    entries.reverse();
    Walk { entries, complete }
}

/// The newest entry that carries the snapshot of guid `guid`.
pub fn carrier(m: &Manifest, guid: u64) -> Option<usize> {
    m.objects
        .iter()
        .rposition(|e| e.snapshots.iter().any(|s| s.guid == guid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Snap};

    pub fn entry(snaps: &[(&str, u64)], parent: Option<(&str, u64)>) -> Entry {
        let (last, guid) = *snaps.last().unwrap();
        Entry {
            key: format!("p/a@{last}"),
            kind: if parent.is_some() {
                Kind::Incremental
            } else {
                Kind::Full
            },
            snapshot: last.into(),
            guid,
            createtxg: guid,
            parent: parent.map(|p| p.0.to_string()),
            parent_guid: parent.map(|p| p.1),
            snapshots: snaps
                .iter()
                .map(|(n, g)| Snap {
                    name: n.to_string(),
                    guid: *g,
                    createtxg: *g,
                })
                .collect(),
            raw: false,
            compressor: None,
            stored_bytes: 1,
            stream_bytes: 1,
            sha256: "00".into(),
            stored: "2026-12-03T07:00:00+00:00".into(),
        }
    }

    #[test]
    fn walks_back_to_the_full_through_i_streams() {
        let mut m = Manifest::new("p/a");
        m.add(entry(&[("s1", 1)], None));
        m.add(entry(&[("s2", 2), ("s3", 3)], Some(("s1", 1))));
        m.add(entry(&[("s4", 4)], Some(("s2", 2))));
        m.add(entry(&[("s5", 5)], None));
        m.add(entry(&[("s6", 6)], Some(("s5", 5))));
        assert_eq!(parent(&m, 1), Some(0));
        // Its parent is carried inside the -I stream.
        assert_eq!(parent(&m, 2), Some(1));
        assert_eq!(parent(&m, 0), None);
        assert_eq!(
            walk(&m, 2),
            Walk {
                entries: vec![0, 1, 2],
                complete: true
            }
        );
        assert_eq!(walk(&m, 4).entries, vec![3, 4]);
        assert_eq!(carrier(&m, 3), Some(1));
        assert_eq!(carrier(&m, 9), None);
    }

    #[test]
    fn an_object_without_guids_is_walked_by_name() {
        // zfs3backup's objects: guid 0, no parent_guid.
        let mut m = Manifest::new("p/a");
        m.add(entry(&[("s1", 0)], None));
        let mut e = entry(&[("s2", 0)], Some(("s1", 0)));
        e.parent_guid = None;
        m.add(e);
        // zab's incremental from zfs3backup's last object.
        m.add(entry(&[("s3", 3)], Some(("s2", 2))));
        assert_eq!(walk(&m, 2).entries, vec![0, 1, 2]);
        assert!(walk(&m, 2).complete);
        m.objects[2].parent = Some("s9".into());
        assert!(!walk(&m, 2).complete);
    }

    #[test]
    fn a_parent_with_another_guid_or_none_stops_the_walk() {
        let mut m = Manifest::new("p/a");
        m.add(entry(&[("s1", 1)], None));
        m.add(entry(&[("s2", 2)], Some(("s1", 99))));
        assert_eq!(
            walk(&m, 1),
            Walk {
                entries: vec![1],
                complete: false
            }
        );
    }
}
