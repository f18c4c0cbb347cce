//! zab-thin's input: the previous stage's records, checked whole before
//! anything runs, then the run lock, then which datasets failed upstream.
//!
//! Nothing is destroyed on incomplete information: input without the
//! previous stage's `end` record, or with a dataset that failed upstream, is
//! refused (exit 3) before any command runs. With `--skip-failed` (what
//! zfs-autobackup does, and what scripts/zfs-autobackup asks for) the failed
//! datasets are left alone instead, source and target, and the others are
//! thinned; failures counted by the end record but missing from the input
//! are still refused.

use std::collections::BTreeMap;

use zab_core::error::Error;
use zab_core::lock::RunLock;
use zab_core::ndjson::{read_stdin, Stream};
use zab_core::record::Dataset;

use crate::cli::Zfs;

/// How long zab-thin waits for the run lock after reading its input (the
/// stage before it may still be exiting), before it gives up (exit 75).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The records read, and the run lock taken after them.
#[derive(Debug)]
pub struct Input {
    /// The dataset records, in input order.
    pub datasets: Vec<Dataset>,
    /// The selected datasets without an error, by source host (indexes
    /// into `datasets`).
    pub selected: BTreeMap<Option<String>, Vec<usize>>,
    /// How many dataset records the previous stage's end record counts.
    pub upstream: usize,
    /// The datasets that failed upstream, left alone (`--skip-failed`).
    pub failed: Vec<usize>,
    /// Held until the run ends; None for `--test`.
    pub _lock: Option<RunLock>,
}

/// Reads and checks stdin, then takes the run lock, only now that the
/// whole input is read: in `zab-send | zab-thin`, zab-send holds it until it
/// exits, right after its end record. A dry run changes nothing and takes
/// none.
pub fn read(config: &Zfs) -> Result<Input, Error> {
    let stream = read_stdin(crate::cli::TOOL)?;
    stream.check(&config.backup, config.ssh_source.as_deref())?;
    if let Some(t) = &config.target {
        zab_core::name::target_overlap(&t.path, t.ssh.as_deref(), &stream.datasets)?;
    }
    let lock = match config.test {
        true => None,
        false => Some(zab_core::lock::acquire(
            &config.backup,
            config.lock_target(),
            LOCK_WAIT,
        )?),
    };
    let failed = failed_upstream(&stream, config.skip_failed)?;
    for &i in &failed {
        config.log.verbose(format!(
            "[Source] {}: not thinned (failed: {})",
            stream.datasets[i].name,
            stream.datasets[i].error.as_deref().unwrap_or_default()
        ));
    }
    Ok(Input {
        selected: stream.selected_by_host(),
        upstream: stream.end.datasets,
        datasets: stream.datasets,
        failed,
        _lock: lock,
    })
}

/// The records that failed upstream, which this run leaves alone. Without
/// `--skip-failed` any failure refuses the whole input. With it, the end
/// record must not count more failures than the input carries: a filter
/// that dropped failed records would hide which datasets to leave alone.
fn failed_upstream(stream: &Stream, skip_failed: bool) -> Result<Vec<usize>, Error> {
    if !skip_failed {
        // A failed record in the input: --skip-failed would thin the others.
        stream.refuse_failures("thinning").map_err(|e| match e {
            Error::Input { line, message } if line > 0 => Error::Input {
                line,
                message: format!(
                    "{message} (with --skip-failed, zab-thin leaves the failed datasets \
                     alone and thins the others)"
                ),
            },
            e => e,
        })?;
        return Ok(Vec::new());
    }
    let failed: Vec<usize> = stream
        .datasets
        .iter()
        .enumerate()
        .filter(|(_, d)| d.error.is_some())
        .map(|(i, _)| i)
        .collect();
    if stream.end.failed > failed.len() {
        return Err(Error::Input {
            line: 0,
            message: format!(
                "{} reports {} failed dataset(s) but the input carries {}: \
                 not thinning without knowing which to leave alone",
                stream.end.tool,
                stream.end.failed,
                failed.len()
            ),
        });
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_core::ndjson::read_stream;

    const OK: &str = r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/a","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0}"#;
    const FAILED: &str = r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/b","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":8,"written":0,"error":"zfs recv failed"}"#;

    fn stream(lines: &[&str], failed: usize) -> Stream {
        let end = format!(
            r#"{{"kind":"end","tool":"zab-send","version":"0.1.0","datasets":{},"failed":{failed}}}"#,
            lines.len()
        );
        let text: String = lines
            .iter()
            .copied()
            .chain([end.as_str()])
            .map(|l| format!("{l}\n"))
            .collect();
        read_stream(text.as_bytes()).unwrap()
    }

    #[test]
    fn failures_upstream_are_refused_by_default() {
        let s = stream(&[OK, FAILED], 1);
        let e = failed_upstream(&s, false).unwrap_err();
        assert!(matches!(e, Error::Input { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("tank/b failed upstream"), "{e}");
        // A hand-built pipeline is told how to thin the others anyway.
        assert!(
            e.to_string().ends_with(
                "(with --skip-failed, zab-thin leaves the failed datasets alone and thins the others)"
            ),
            "{e}"
        );
        assert_eq!(
            failed_upstream(&stream(&[OK], 0), false).unwrap(),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn skip_failed_leaves_the_failed_alone() {
        assert_eq!(
            failed_upstream(&stream(&[OK, FAILED], 1), true).unwrap(),
            vec![1]
        );
        assert_eq!(
            failed_upstream(&stream(&[OK], 0), true).unwrap(),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn skip_failed_refuses_failures_it_cannot_see() {
        // A filter dropped the failed record: which target is not missing?
        let e = failed_upstream(&stream(&[OK], 1), true).unwrap_err();
        assert!(
            e.to_string()
                .contains("zab-send reports 1 failed dataset(s) but the input carries 0"),
            "{e}"
        );
    }
}
