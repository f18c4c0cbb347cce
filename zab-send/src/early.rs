//! The target tree, listed early: it does not depend on the records, so
//! without the options that destroy or roll back on the target it is
//! listed from the start, while the stages before this one still run and
//! while the sources are listed (a read, as that of a run started a moment
//! later). With them, it is listed after the input and the sources.

use std::collections::BTreeMap;

use zab_core::error::Error;
use zab_core::zfs;
use zab_core::Host;

use crate::cli::Config;
use crate::listing::{self, TargetDs};

type Tree = BTreeMap<String, TargetDs>;

/// The target listing, started or to be made. When the run ends without
/// using a started one (bad input, a collision, a failed source listing),
/// dropping it waits for it to finish, so that its process (an
/// `ssh … zfs list` for a remote target) never outlives zab-send.
pub struct Early {
    listing: Option<std::thread::JoinHandle<Result<Tree, Error>>>,
    host: Host,
    root: String,
}

/// Starts listing the target tree, unless `--destroy-incompatible`,
/// `--rollback` or `--force`, or the target is an object store (whose
/// manifests gather.rs reads).
pub fn start(cfg: &Config, target: &Host) -> Early {
    let early =
        !(cfg.destroy_incompatible || cfg.rollback || cfg.flags.force) && cfg.store.is_none();
    let listing = early.then(|| {
        let (host, root) = (target.clone(), cfg.target_path.clone());
        std::thread::spawn(move || list_target(&host, &root))
    });
    Early {
        listing,
        host: target.clone(),
        root: cfg.target_path.clone(),
    }
}

impl Early {
    /// The tree: the early listing's, or listed now.
    pub fn tree(mut self) -> Result<Tree, Error> {
        match self.listing.take() {
            Some(listing) => listing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => list_target(&self.host, &self.root),
        }
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some(listing) = self.listing.take() {
            let _ = listing.join();
        }
    }
}

/// Lists the target tree; a missing TARGET-PATH is said as such.
fn list_target(host: &Host, root: &str) -> Result<Tree, Error> {
    match zfs::query(host, &listing::target_args(root), |out| {
        listing::parse_target(out, root)
    }) {
        Err(Error::Command(c)) if c.no_such_dataset() => Err(Error::Usage(format!(
            "TARGET-PATH {root} does not exist on {}: create it first (zfs create {root})",
            host.name()
        ))),
        other => other,
    }
}
