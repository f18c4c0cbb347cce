//! zab-select's report: what was decided, on stderr with `--verbose` in
//! zfs-autobackup's words; the records on stdout (the selected datasets, or
//! with `--all` every dataset); and the exit: failed datasets, or nothing
//! selected at all.

use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{Dataset, Reason, Record};

use crate::cli::{Config, TOOL};

/// Writes the records of `all` (every dataset on the host, as selected).
pub fn report(config: &Config, all: &[Dataset]) -> Result<(), Error> {
    let log = &config.log;
    let mut out = Writer::new(std::io::stdout().lock());
    let (mut written, mut failed, mut selected, mut excluded) = (0, 0, 0, 0);
    for d in all {
        if let Some(err) = &d.error {
            log.error(format!("[Source] {}: {err}", d.name));
            failed += 1;
        } else if let Some(words) = d.reason.upstream_words() {
            log.verbose(format!("[Source] {}: {words}", d.name));
        } else if d.reason == Reason::TargetPath {
            log.debug(format!(
                "[Source] {}: Excluded (path in exclude list)",
                d.name
            ));
        }
        if d.selected {
            selected += 1;
        } else if d.reason != Reason::Unset {
            excluded += 1;
        }
        if d.selected || config.all || d.error.is_some() {
            out.write(&Record::Dataset(d.clone()))?;
            written += 1;
        }
    }
    out.finish(TOOL, written, failed, &())?;

    if selected == 0 && excluded == 0 {
        let property = &config.options.property;
        return Err(Error::Nothing(format!(
            "no source datasets selected: none has {property} set on {} \
             (set it with: zfs set {property}=true POOL/DATASET)",
            config.host.name()
        )));
    }
    Ok(())
}
