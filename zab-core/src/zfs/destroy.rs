//! `zfs destroy` of a whole dataset (zab-thin `--destroy-missing`) and of
//! a bookmark. The snapshots' destroy is [`super::destroy_snapshots_args`].

/// The argv that destroys `dataset` itself, not recursively: `zfs` refuses
/// it while the dataset has snapshots or children.
pub fn dataset_args(dataset: &str) -> Vec<String> {
    vec!["zfs".into(), "destroy".into(), dataset.into()]
}

/// The argv that destroys bookmark `dataset#name`: one per call.
pub fn bookmark_args(dataset: &str, name: &str) -> Vec<String> {
    vec!["zfs".into(), "destroy".into(), format!("{dataset}#{name}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroys_one_dataset_without_recursion() {
        assert_eq!(
            dataset_args("backup/gone"),
            ["zfs", "destroy", "backup/gone"]
        );
        assert_eq!(
            bookmark_args("tank/a b", "s1_42"),
            ["zfs", "destroy", "tank/a b#s1_42"]
        );
    }
}
