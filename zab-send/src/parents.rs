//! The parents zab-send creates: ancestors of the targets below
//! TARGET-PATH that neither exist nor are received in this run are created
//! first (`zfs create -o canmount=off`, shallowest first), so that they
//! mount nothing; a failed parent fails the datasets below it, and a
//! dataset received for the first time below created parents notes them.
//! Pure: execute.rs creates them.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::zfs;

use crate::jobs::Job;
use crate::listing::TargetDs;

/// The parents to create, shallowest first.
pub fn missing(jobs: &[Job], tree: &BTreeMap<String, TargetDs>, root: &str) -> Vec<String> {
    let targets: BTreeSet<&str> = jobs.iter().map(|j| j.target.as_str()).collect();
    let mut out = BTreeSet::new();
    for j in jobs.iter().filter(|j| j.plan.error.is_none()) {
        let mut p = zfs::parent_of(&j.target);
        while let Some(parent) = p {
            if !zfs::is_under(parent, root) || parent == root {
                break;
            }
            if !tree.contains_key(parent) && !targets.contains(parent) {
                out.insert(parent.to_string());
            }
            p = zfs::parent_of(parent);
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by_key(|p| (p.matches('/').count(), p.clone()));
    v
}

/// Whether parent `p` is still to be tried: not below one that failed.
pub fn to_try(p: &str, failed: &BTreeMap<String, String>) -> bool {
    !failed.keys().any(|f| zfs::is_under(p, f))
}

/// The error of a job whose target is below a parent that failed.
pub fn blocked(target: &str, failed: &BTreeMap<String, String>) -> Option<String> {
    failed
        .iter()
        .find(|(p, _)| zfs::is_under(target, p))
        .map(|(p, e)| format!("creating the parent {p} failed: {e}"))
}

/// The notes of a job about the parents created above its target (for a
/// target that did not exist before).
pub fn notes(job: &Job, created: &[String]) -> Vec<String> {
    if job.existed {
        return Vec::new();
    }
    created
        .iter()
        .filter(|p| zfs::is_under(&job.target, p))
        .map(|p| format!("created parent {p} with canmount=off"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_core::zfs::DatasetType;

    fn job(target: &str, error: bool, existed: bool) -> Job {
        let mut j = crate::jobs::testing::job("", target, None, &[]);
        j.plan.error = error.then(|| "no".to_string());
        j.existed = existed;
        j
    }

    fn tree(names: &[&str]) -> BTreeMap<String, TargetDs> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    TargetDs {
                        kind: DatasetType::Filesystem,
                        target: Default::default(),
                        guid: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn missing_parents_below_the_root_shallowest_first() {
        let jobs = [
            job("t/b/x/y/a", false, false),
            job("t/b/x", false, false),
            job("t/c/d/e", false, false),
            job("t/f/g/h", true, false),
        ];
        // t/b exists; t/b/x is received; t/f/g's job fails: no parent.
        let m = missing(&jobs, &tree(&["t", "t/b"]), "t");
        assert_eq!(m, vec!["t/c", "t/c/d", "t/b/x/y"]);
        // Nothing above or at the root.
        assert!(missing(&[job("t/a", false, false)], &tree(&[]), "t").is_empty());
    }

    #[test]
    fn a_failed_parent_blocks_what_is_below_it() {
        let failed: BTreeMap<String, String> = [("t/c".to_string(), "exit 1".to_string())].into();
        assert!(!to_try("t/c/d", &failed));
        assert!(to_try("t/cc", &failed));
        assert_eq!(
            blocked("t/c/d/e", &failed).as_deref(),
            Some("creating the parent t/c failed: exit 1")
        );
        assert_eq!(blocked("t/b", &failed), None);
    }

    #[test]
    fn notes_only_for_new_targets() {
        let created = vec!["t/c".to_string(), "t/c/d".to_string(), "t/x".to_string()];
        assert_eq!(
            notes(&job("t/c/d/e", false, false), &created),
            vec![
                "created parent t/c with canmount=off",
                "created parent t/c/d with canmount=off"
            ]
        );
        assert!(notes(&job("t/c/d/e", false, true), &created).is_empty());
    }
}
