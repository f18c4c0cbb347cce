//! `zfs destroy` of a whole dataset (zab-thin `--destroy-missing`). The
//! snapshots' destroy is [`super::destroy_snapshots_args`].

/// The argv that destroys `dataset` itself, not recursively: `zfs` refuses
/// it while the dataset has snapshots or children.
pub fn dataset_args(dataset: &str) -> Vec<String> {
    vec!["zfs".into(), "destroy".into(), dataset.into()]
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
    }
}
