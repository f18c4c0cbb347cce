//! The target tree, listed early: it does not depend on the records, so
//! without the options that destroy or roll back on the target it is
//! listed from the start, while the stages before this one still run and
//! while the sources are listed (a read, as that of a run started a moment
//! later). With them, it is listed after the input and the sources. With
//! a quiet-run cache that has entries (cache.rs), what starts early is the
//! one `zfs get` of the target's facts instead, and the tree is listed
//! (beside the sources) only when the cache cannot say that nothing is to
//! be done.

use std::collections::BTreeMap;
use std::thread::JoinHandle;

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::zfs::{self, Facts};
use zab_core::Host;

use crate::cli::Config;
use crate::listing::{self, TargetDs};

type Tree = BTreeMap<String, TargetDs>;

/// The target listing, started or to be made. When the run ends without
/// using a started one (bad input, a collision, a failed source listing),
/// dropping it waits for it to finish, so that its process (an
/// `ssh … zfs list` for a remote target) never outlives zab-send.
pub struct Early {
    /// The listing, and when it started (seconds since the epoch, this
    /// machine's clock).
    listing: Option<(JoinHandle<Result<Tree, Error>>, i64)>,
    /// The quiet-run cache's read of the target's facts.
    facts: Option<JoinHandle<Option<BTreeMap<String, Facts>>>>,
    host: Host,
    root: String,
}

/// Starts listing the target tree, unless `--destroy-incompatible`,
/// `--rollback` or `--force`, or the target is an object store (whose
/// manifests gather.rs reads); or, when `facts_of` names something (the
/// quiet-run cache's entries), starts reading their facts instead.
pub fn start(cfg: &Config, target: &Host, facts_of: Vec<String>, log: &Log) -> Early {
    let early =
        !(cfg.destroy_incompatible || cfg.rollback || cfg.flags.force) && cfg.store.is_none();
    let mut e = Early {
        listing: None,
        facts: None,
        host: target.clone(),
        root: cfg.target_path.clone(),
    };
    if early && !facts_of.is_empty() {
        let (host, log) = (target.clone(), *log);
        e.facts = Some(std::thread::spawn(move || {
            crate::cache::read_facts(&host, &facts_of, &log)
        }));
    } else if early {
        e.list_now();
    }
    e
}

impl Early {
    /// Starts the listing, unless started.
    pub fn list_now(&mut self) {
        if self.listing.is_none() {
            let (host, root) = (self.host.clone(), self.root.clone());
            let at = now();
            self.listing = Some((std::thread::spawn(move || list_target(&host, &root)), at));
        }
    }

    /// The target's facts read for the cache; None when none were read or
    /// reading them failed.
    pub fn facts(&mut self) -> Option<BTreeMap<String, Facts>> {
        self.facts
            .take()?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The tree (the early listing's, or listed now), and when its listing
    /// started.
    pub fn tree(mut self) -> Result<(Tree, i64), Error> {
        self.list_now();
        let (listing, at) = self.listing.take().expect("started");
        listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map(|t| (t, at))
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some((listing, _)) = self.listing.take() {
            let _ = listing.join();
        }
        if let Some(facts) = self.facts.take() {
            let _ = facts.join();
        }
    }
}

/// Now, in seconds since the epoch (this machine's clock, not `--now`).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
