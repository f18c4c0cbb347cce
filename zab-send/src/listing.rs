//! What zab-send reads from ZFS, one command per side: the source
//! datasets' snapshots (`zab_core::zfs::list_snapshots`, the fast columns),
//! the whole
//! target tree (datasets, snapshots, holds, `written`, resume tokens), and,
//! only when something is to be sent, the source datasets' encryption and
//! the target pool's features.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::zfs::{self, DatasetType};

use crate::plan::Target;

/// Reads the `encryption` of exactly `datasets` (not their children): one
/// call, made only when some plan sends or meets target snapshots after the
/// common one, where a raw stream plans differently.
pub fn encryption_args(datasets: &[&str]) -> Vec<String> {
    zfs::list_args("filesystem,volume", "name,encryption", &[], datasets)
}

/// Parses [`encryption_args`] output: the encrypted datasets. Every dataset
/// asked for must have its row, and no other.
pub fn parse_encryption(output: &str, datasets: &[&str]) -> Result<BTreeSet<String>, String> {
    let mut seen = BTreeSet::new();
    let mut encrypted = BTreeSet::new();
    for (i, line) in output.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
        let (name, enc) = line
            .split_once('\t')
            .ok_or_else(|| bad("expected 2 tab-separated columns"))?;
        if !datasets.contains(&name) || enc.contains('\t') {
            return Err(bad("not a row asked for"));
        }
        seen.insert(name);
        if enc != "off" && enc != "-" {
            encrypted.insert(name.to_string());
        }
    }
    if let Some(d) = datasets.iter().find(|d| !seen.contains(**d)) {
        return Err(format!("no row for {d}"));
    }
    Ok(encrypted)
}

/// A target dataset as listed: its type and what the plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDs {
    pub kind: DatasetType,
    pub target: Target,
    /// The dataset's guid, as listed (none in an object store).
    pub guid: Option<u64>,
}

/// Lists the whole target tree under `root`: one call.
pub fn target_args(root: &str) -> Vec<String> {
    zfs::list_target_tree_args(root)
}

/// Parses [`target_args`] output of the tree under `root`.
pub fn parse_target(output: &str, root: &str) -> Result<BTreeMap<String, TargetDs>, String> {
    let mut tree = zfs::parse_target_tree(output, root)?;
    let mut map = BTreeMap::new();
    for (name, kind) in tree.datasets {
        let snapshots = tree
            .snapshots
            .remove(&name)
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let w = tree
                    .written
                    .get(&format!("{name}@{}", s.name))
                    .copied()
                    .unwrap_or_default();
                (s, w)
            })
            .collect();
        let token = tree.tokens.remove(&name);
        let kind = kind.ok_or_else(|| format!("{name}: no type"))?;
        let guid = tree.guids.get(&name).copied();
        map.insert(
            name,
            TargetDs {
                kind,
                target: Target { snapshots, token },
                guid,
            },
        );
    }
    Ok(map)
}

/// The pool features that decide send and receive flags (`encryption`:
/// whether any dataset of the pool can be encrypted, when active).
pub const FEATURES: &[&str] = &[
    "feature@large_blocks",
    "feature@embedded_data",
    "feature@extensible_dataset",
    "feature@encryption",
];

/// A pool's features, without the `feature@` prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Enabled or active.
    pub enabled: BTreeSet<String>,
    /// Active: in use by some dataset.
    pub active: BTreeSet<String>,
}

impl Features {
    pub fn enabled(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    pub fn active(&self, name: &str) -> bool {
        self.active.contains(name)
    }
}

/// Reads the features of `pool`: one call.
pub fn features_args(pool: &str) -> Vec<String> {
    zab_core::zpool::get_args(FEATURES, pool)
}

/// Parses [`features_args`] output (never fails: an unknown line is no
/// feature; a `Result` for `zab_core::zfs::query`).
pub fn parse_features(output: &str) -> Result<Features, String> {
    let mut f = Features::default();
    for (p, v) in output.lines().filter_map(|l| l.split_once('\t')) {
        let name = p.trim_start_matches("feature@").to_string();
        if v == "active" {
            f.active.insert(name.clone());
        }
        if v == "enabled" || v == "active" {
            f.enabled.insert(name);
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from OpenZFS 2.3.2 in the lab: an interrupted first
    /// transfer (`r`, a token and no snapshots) and a dataset whose target
    /// has a snapshot of its own without changes (`s@extra`).
    const TARGET: &str = "zab-t/exp\tfilesystem\t10\t6398114327035355409\t-\t0\t-
zab-t/exp/r\tfilesystem\t17\t5301365462609838669\t-\t19951616\t1-b7cc7f839-b8-789c6360
zab-t/exp/s\tfilesystem\t11\t8141429436767467116\t-\t0\t-
zab-t/exp/s@a\tsnapshot\t12\t3070964067183167011\t0\t21011456\t-
zab-t/exp/s@extra\tsnapshot\t13\t13607540466620223356\t0\t0\t-
zab-t/exp/s@b\tsnapshot\t15\t17599766133560230176\t0\t0\t-
";

    #[test]
    fn target_tree_with_tokens_and_written() {
        let t = parse_target(TARGET, "zab-t/exp").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t["zab-t/exp/r"].target.token.as_deref(),
            Some("1-b7cc7f839-b8-789c6360")
        );
        assert!(t["zab-t/exp/r"].target.snapshots.is_empty());
        let s = &t["zab-t/exp/s"].target;
        assert_eq!(s.token, None);
        let names: Vec<(&str, u64)> = s
            .snapshots
            .iter()
            .map(|(s, w)| (s.name.as_str(), *w))
            .collect();
        assert_eq!(names, vec![("a", 21011456), ("extra", 0), ("b", 0)]);
        assert!(parse_target("x\tfilesystem\t1\n", "x").is_err());
        assert!(parse_target("x@a\tsnapshot\t1\t2\t0\t0\t-\n", "x").is_err());
        // A row outside the root: not the tree asked for.
        assert!(parse_target(TARGET, "zab-t/exp/s").is_err());
    }

    #[test]
    fn encryption_of_exactly_the_datasets_asked() {
        let e = parse_encryption("p/a\toff\np/b\taes-256-gcm\n", &["p/a", "p/b"]).unwrap();
        assert_eq!(e.into_iter().collect::<Vec<_>>(), vec!["p/b"]);
        assert!(parse_encryption("p/a\toff\n", &["p/a", "p/b"]).is_err());
        assert!(parse_encryption("p/a\toff\np/c\toff\n", &["p/a"]).is_err());
        assert_eq!(
            encryption_args(&["p/a", "p/b"]).join(" "),
            "zfs list -H -p -t filesystem,volume -o name,encryption p/a p/b"
        );
    }

    #[test]
    fn features_enabled_or_active() {
        let out = "feature@large_blocks\tenabled\nfeature@embedded_data\tactive\nfeature@extensible_dataset\tdisabled\nfeature@encryption\tenabled\n";
        let f = parse_features(out).unwrap();
        assert_eq!(
            features_args("t").join(" "),
            "zpool get -H -p -o property,value feature@large_blocks,feature@embedded_data,\
             feature@extensible_dataset,feature@encryption t"
        );
        assert!(f.enabled("large_blocks") && f.enabled("embedded_data"));
        assert!(!f.enabled("extensible_dataset"));
        assert!(f.enabled("encryption") && !f.active("encryption"));
        assert!(f.active("embedded_data") && !f.active("large_blocks"));
    }
}
