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
//!
//! A chain that zab-send went on from zfs3backup's objects (docs/store.md,
//! "zfs3backup buckets") starts, in zab's manifest, with an incremental
//! whose parent is an object no manifest lists ([`foreign_parent`]): on
//! the manifest alone its walk stops there. On the dataset's view
//! ([`crate::zfs3backup::view`]: the manifest with the objects no
//! manifest lists, read from their metadata) the same walk goes on
//! through zfs3backup's `parent` links, by name, and is complete when
//! zfs3backup's chain reaches its full stream (`isfull`).

use crate::location::object_key;
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

/// The newest entry that carries snapshot `name` of guid `guid`: by guid,
/// or by name in an object that records no guid (zfs3backup's, in a view:
/// guid 0).
pub fn carrier_of(m: &Manifest, name: &str, guid: u64) -> Option<usize> {
    m.objects.iter().rposition(|e| {
        e.snapshots
            .iter()
            .any(|s| s.guid == guid || (s.guid == 0 && s.name == name))
    })
}

/// The key of the object that incremental `i` goes on from, when no entry
/// of `m` is that object and the store has it (`listed`, by key):
/// zfs3backup's object of its parent, where a view's walk goes on.
pub fn foreign_parent(m: &Manifest, i: usize, listed: &dyn Fn(&str) -> bool) -> Option<String> {
    let e = m.objects.get(i)?;
    if e.kind != Kind::Incremental {
        return None;
    }
    let key = object_key(&m.dataset, e.parent.as_deref()?);
    let ours = m.objects.iter().any(|o| o.key == key);
    (!ours && listed(&key)).then_some(key)
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

    /// zfs3backup's objects of `tank/fs` as its metadata describe them
    /// (a full, then incrementals, each naming its parent), listed in key
    /// order.
    fn zfs3backup(objects: &[(&str, Option<&str>)]) -> Vec<crate::zfs3backup::Described> {
        objects
            .iter()
            .map(|(snap, parent)| crate::zfs3backup::Described {
                key: format!("tank/fs@{snap}"),
                size: 100,
                modified: "2026-01-01T00:00:00+00:00".into(),
                meta: match parent {
                    None => vec![("isfull".into(), "true".into())],
                    Some(p) => vec![("parent".into(), format!("tank/fs@{p}"))],
                },
            })
            .collect()
    }

    /// zab's manifest after going on from zfs3backup's @daily-3: @daily-4
    /// and @daily-5.
    fn gone_on() -> Manifest {
        let mut m = Manifest::new("tank/fs");
        for (n, p) in [(4, 3), (5, 4)] {
            let mut e = entry(
                &[(&format!("daily-{n}"), n)],
                Some((&format!("daily-{p}"), p)),
            );
            e.key = format!("tank/fs@daily-{n}");
            m.add(e);
        }
        m
    }

    #[test]
    fn a_chain_gone_on_from_zfs3backup_reaches_its_full_in_the_view() {
        use crate::zfs3backup::{entries, merge};
        let m = gone_on();
        // The manifest alone: the walk stops at zab's first incremental,
        // whose parent is zfs3backup's object, listed in the store.
        let w = walk(&m, 1);
        assert_eq!((w.entries.clone(), w.complete), (vec![0, 1], false));
        let listed = |k: &str| k == "tank/fs@daily-3";
        assert_eq!(
            foreign_parent(&m, 0, &listed).as_deref(),
            Some("tank/fs@daily-3")
        );
        assert_eq!(foreign_parent(&m, 0, &|_| false), None);
        assert_eq!(foreign_parent(&m, 1, &listed), None, "its parent is zab's");
        // The view: zfs3backup's chain, then zab's, walked whole.
        let objs = [
            ("daily-3", Some("daily-2")),
            ("daily-1", None),
            ("daily-2", Some("daily-1")),
        ];
        let v = merge("tank/fs", Some(&m), entries("tank/fs", &zfs3backup(&objs)));
        let w = walk(&v, carrier(&v, 5).unwrap());
        assert!(w.complete);
        let names: Vec<&str> = w
            .entries
            .iter()
            .map(|&i| v.objects[i].snapshot.as_str())
            .collect();
        assert_eq!(
            names,
            ["daily-1", "daily-2", "daily-3", "daily-4", "daily-5"]
        );
        // zfs3backup's objects record no guid: found by name.
        assert_eq!(carrier(&v, 33), None);
        assert_eq!(carrier_of(&v, "daily-3", 33), Some(2));
        assert_eq!(carrier_of(&v, "daily-5", 5), Some(4));
        assert_eq!(carrier_of(&v, "daily-4", 99), None, "zab's has a guid");
    }

    #[test]
    fn a_zfs3backup_chain_without_its_full_does_not_reach_one() {
        use crate::zfs3backup::{entries, merge};
        let m = gone_on();
        // zfs3backup's @daily-1 gone: its chain starts at an incremental.
        let objs = [("daily-3", Some("daily-2")), ("daily-2", Some("daily-1"))];
        let v = merge("tank/fs", Some(&m), entries("tank/fs", &zfs3backup(&objs)));
        let w = walk(&v, v.objects.len() - 1);
        assert!(!w.complete);
        assert_eq!(v.objects[w.entries[0]].snapshot, "daily-2");
        // One marked full by neither `isfull` nor `is_full` is no full.
        let mut d = zfs3backup(&[
            ("daily-3", Some("daily-2")),
            ("daily-2", Some("daily-1")),
            ("daily-1", None),
        ]);
        d[2].meta = vec![("isfull".into(), "false".into())];
        let v = merge("tank/fs", Some(&m), entries("tank/fs", &d));
        assert!(!walk(&v, v.objects.len() - 1).complete);
    }
}
