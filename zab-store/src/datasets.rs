//! A store's datasets as zab-thin reads and changes them: every manifest
//! (one listing of `PREFIX/.zab/`, one read each), a dataset's objects
//! listed, and a manifest written back or deleted. The order of deletes
//! and manifest writes is the caller's (docs/store.md, "Retention").

use std::collections::BTreeMap;

use crate::location::{manifest_dataset, manifest_key, MANIFESTS};
use crate::manifest::Manifest;
use crate::store::{Store, StoreError};

/// Every dataset in a store, as its manifest says, with its objects as
/// listed (key below the prefix → size).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub manifest: Manifest,
    pub listed: BTreeMap<String, u64>,
}

impl Store {
    /// Every manifest below the prefix and every object listed: one
    /// listing of the whole store (1,000 keys a request), one read per
    /// manifest. Any failed request fails the whole read: a dataset never
    /// looks gone, nor an object missing, because a request failed.
    pub fn datasets(&self) -> Result<BTreeMap<String, Dataset>, StoreError> {
        let all = self.list("")?;
        let mut out = BTreeMap::new();
        for l in all.iter().filter(|l| l.key.starts_with(MANIFESTS)) {
            let Some(ds) = manifest_dataset(&l.key) else {
                continue;
            };
            let Some(bytes) = self.get_bytes(&l.key)? else {
                return Err(StoreError(format!(
                    "{}: listed but gone when read",
                    self.url_of(&l.key)
                )));
            };
            let manifest = Manifest::parse(&bytes, ds).map_err(StoreError)?;
            let prefix = format!("{ds}@");
            let listed = all
                .iter()
                .filter(|o| {
                    o.key
                        .strip_prefix(&prefix)
                        .is_some_and(|s| !s.contains('/'))
                })
                .map(|o| (o.key.clone(), o.size))
                .collect();
            out.insert(ds.to_string(), Dataset { manifest, listed });
        }
        Ok(out)
    }

    /// Writes `m` as its dataset's manifest.
    pub fn write_manifest(&self, m: &Manifest) -> Result<(), StoreError> {
        self.put_bytes(&manifest_key(&m.dataset), m.to_bytes())
    }

    /// Deletes `dataset`'s manifest.
    pub fn delete_manifest(&self, dataset: &str) -> Result<(), StoreError> {
        self.delete(&manifest_key(dataset))
    }
}
