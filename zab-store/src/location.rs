//! Where a store is: `s3://bucket/prefix` or `file:///dir`, and the key of
//! each object below it. A dataset's stream to snapshot S is the object
//! `PREFIX/pool/fs@S` (zfs3backup's convention); its manifest is
//! `PREFIX/.zab/pool/fs.json` (no pool name starts with a dot, so the two
//! never meet).

use std::path::PathBuf;

/// A store's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A bucket, and the prefix (no leading or trailing `/`) below it.
    S3 { bucket: String, prefix: String },
    /// A directory (absolute).
    Dir { root: PathBuf },
}

/// Whether TARGET-PATH names a store rather than a dataset.
pub fn is_url(s: &str) -> bool {
    s.starts_with("s3://") || s.starts_with("file://")
}

impl Location {
    /// Parses `s3://bucket[/prefix]` or `file:///absolute/dir`.
    pub fn parse(url: &str) -> Result<Location, String> {
        let bad = |why: &str| format!("invalid store URL {url:?}: {why}");
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket (s3://bucket/prefix)"));
            }
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c);
            if !bucket.chars().all(valid) {
                return Err(bad(
                    "a bucket name has lowercase letters, digits, '.' and '-'",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
                return Err(bad("'.', '..' or an empty part in the prefix"));
            }
            Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            })
        } else if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("a directory is file:///absolute/path"));
            }
            let root = rest.trim_end_matches('/');
            let root = if root.is_empty() { "/" } else { root };
            if root.split('/').any(|p| p == "." || p == "..") {
                return Err(bad("'.' or '..' in the path"));
            }
            Ok(Location::Dir {
                root: PathBuf::from(root),
            })
        } else {
            Err(bad("expected s3://bucket/prefix or file:///dir"))
        }
    }

    /// Splits `URL/KEY` (zab-store put and get) into the store and the key:
    /// the bucket and the whole path, or the directory and the file name.
    pub fn parse_object(url: &str) -> Result<(Location, String), String> {
        match Location::parse(url)? {
            Location::S3 { bucket, prefix } if !prefix.is_empty() => Ok((
                Location::S3 {
                    bucket,
                    prefix: String::new(),
                },
                prefix,
            )),
            Location::Dir { root } => match (root.parent(), root.file_name()) {
                (Some(dir), Some(name)) => Ok((
                    Location::Dir {
                        root: dir.to_path_buf(),
                    },
                    name.to_string_lossy().into_owned(),
                )),
                _ => Err(format!("{url}: no file name")),
            },
            Location::S3 { .. } => Err(format!("{url}: no key after the bucket")),
        }
    }

    /// The prefix inside the store (S3 only; a directory is its own root).
    pub fn prefix(&self) -> &str {
        match self {
            Location::S3 { prefix, .. } => prefix,
            Location::Dir { .. } => "",
        }
    }

    /// The URL again, for messages and records (it holds no secret).
    pub fn url(&self) -> String {
        match self {
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Location::Dir { root } => format!("file://{}", root.display()),
        }
    }
}

/// The key, below the store's prefix, of `dataset`'s stream to `snapshot`.
pub fn object_key(dataset: &str, snapshot: &str) -> String {
    format!("{dataset}@{snapshot}")
}

/// The key, below the store's prefix, of `dataset`'s manifest.
pub fn manifest_key(dataset: &str) -> String {
    format!("{MANIFESTS}/{dataset}.json")
}

/// The folder of the manifests, below the prefix.
pub const MANIFESTS: &str = ".zab";

/// The dataset whose manifest is at `key` (below the prefix), if it is one.
pub fn manifest_dataset(key: &str) -> Option<&str> {
    key.strip_prefix(MANIFESTS)?
        .strip_prefix('/')?
        .strip_suffix(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_and_directory_urls() {
        assert_eq!(
            Location::parse("s3://bkt/some/prefix/").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(Location::parse("s3://bkt").unwrap().prefix(), "");
        assert_eq!(
            Location::parse("file:///srv/backups/").unwrap(),
            Location::Dir {
                root: "/srv/backups".into()
            }
        );
        for bad in [
            "s3://",
            "s3:///x",
            "s3://Bkt/x",
            "s3://b/../x",
            "file://relative",
            "file:///a/../b",
            "http://x",
            "tank/backups",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Location::parse("s3://b/p").unwrap().url(),
            "s3://b/p".to_string()
        );
    }

    #[test]
    fn objects_and_manifests() {
        let (l, k) = Location::parse_object("s3://b/p/x@s").unwrap();
        assert_eq!((l.url().as_str(), k.as_str()), ("s3://b", "p/x@s"));
        let (l, k) = Location::parse_object("file:///srv/a/obj").unwrap();
        assert_eq!((l.url().as_str(), k.as_str()), ("file:///srv/a", "obj"));
        assert!(Location::parse_object("s3://b").is_err());
        assert_eq!(object_key("p/fs", "s1"), "p/fs@s1");
        assert_eq!(manifest_key("p/fs"), ".zab/p/fs.json");
        assert_eq!(manifest_dataset(".zab/p/fs.json"), Some("p/fs"));
        assert_eq!(manifest_dataset("p/fs@s1"), None);
        assert!(is_url("s3://b") && is_url("file:///x") && !is_url("tank/x"));
    }
}
