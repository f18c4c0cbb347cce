//! What a run leaves for monitoring, after its records are out: the state
//! file of this backup and target (zab_core::state: per target dataset the
//! last success and the bytes of the last run, read by zab-status), and
//! with `--metrics FILE` the Prometheus file (zab_core::metrics). A dry
//! run (`--test`, `--plan`) writes neither.

use std::path::{Path, PathBuf};
use std::time::Instant;

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::metrics::RunMetrics;
use zab_core::record::Dataset;
use zab_core::state::{self, State};

use crate::cli::Config;

/// `--metrics FILE`, checked before anything runs: its directory must exist.
pub fn checked(file: Option<&Path>) -> Result<Option<PathBuf>, Error> {
    let Some(file) = file else { return Ok(None) };
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if file.file_name().is_none() || !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--metrics {}: not a file in an existing directory",
            file.display()
        )));
    }
    Ok(Some(file.to_path_buf()))
}

/// Writes the state file and the metrics of a run that started at
/// `started` (`cfg.now`), whose records are `records`; `written` is how
/// writing the records went, returned as it is unless it went well and
/// the metrics could not be written. The state file only serves
/// monitoring: when it cannot be written, a warning says so and the run
/// does not fail for it (zab-status then shows the old state, or none).
pub fn finish(
    cfg: &Config,
    records: &[Dataset],
    started: Instant,
    written: Result<(), Error>,
    log: &Log,
) -> Result<(), Error> {
    if cfg.dry() {
        return written;
    }
    let seconds = started.elapsed().as_secs_f64();
    let end = cfg.now + seconds.round() as i64;
    let ssh_target = cfg.target.host.ssh_target.as_deref();
    let path = state::path(&cfg.backup, ssh_target, &cfg.target_path);
    // A state file that does not parse is replaced.
    let old = path
        .as_ref()
        .ok()
        .and_then(|p| state::read(p).ok().flatten());
    let mut st = old.unwrap_or_else(|| State::new(&cfg.backup, ssh_target, &cfg.target_path));
    st.add_run(cfg.now, end, records);
    if let Err(e) = path.and_then(|p| state::write(&p, &st)) {
        log.warn(format!("the state for zab-status is not kept: {e}"));
    }
    let Some(file) = &cfg.metrics else {
        return written;
    };
    match zab_core::metrics::write(file, metrics(cfg, records, &st, seconds, end)) {
        Ok(()) => written,
        Err(e) => {
            log.error(format!("--metrics: {e}"));
            written.and(Err(e))
        }
    }
}

/// The run's numbers, from the state it was just added to.
fn metrics(cfg: &Config, records: &[Dataset], st: &State, seconds: f64, end: i64) -> RunMetrics {
    let run = st.last_run.unwrap_or_default();
    RunMetrics {
        backup: cfg.backup.clone(),
        seconds: (seconds * 1000.0).round() / 1000.0,
        end,
        success: run.failed == 0,
        selected: Some(records.iter().filter(|d| d.selected).count() as u64),
        sent: Some(run.sent),
        failed: Some(run.failed),
        transfers: Some(run.transfers),
        bytes: Some(run.bytes),
        created: None,
        destroyed: None,
        last_success: st.last_success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_file_must_be_in_an_existing_directory() {
        assert_eq!(checked(None).expect("none"), None);
        let here = env!("CARGO_MANIFEST_DIR");
        let ok = format!("{here}/zab.prom");
        assert_eq!(
            checked(Some(Path::new(&ok))).expect("ok"),
            Some(PathBuf::from(&ok))
        );
        assert!(checked(Some(Path::new("zab.prom"))).is_ok(), "the cwd");
        let e =
            checked(Some(Path::new(&format!("{here}/no-such-dir/zab.prom")))).expect_err("no dir");
        assert_eq!(e.exit(), zab_core::Exit::Usage);
        assert!(e.to_string().contains("no-such-dir/zab.prom"), "{e}");
    }
}
