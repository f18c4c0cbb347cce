//! Pictures of the thinner's decisions: `--explain` (a timeline in the
//! terminal) and `--svg FILE`. Not built yet.
