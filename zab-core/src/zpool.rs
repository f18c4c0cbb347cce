//! Typed `zpool` calls: argv builders, `-H -p` and explicit columns, as in
//! [`crate::zfs`].

/// `zpool get -H -p -o property,value PROPS POOL`: one call for every
/// property asked (`feature@…` included).
pub fn get_args(props: &[&str], pool: &str) -> Vec<String> {
    ["zpool", "get", "-H", "-p", "-o", "property,value"]
        .iter()
        .map(|s| s.to_string())
        .chain([props.join(","), pool.to_string()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_of_features() {
        assert_eq!(
            get_args(&["feature@a", "feature@b"], "t").join(" "),
            "zpool get -H -p -o property,value feature@a,feature@b t"
        );
    }
}
