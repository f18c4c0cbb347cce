//! zab-select's run: validate, list once, decide, write records.

use std::io::Write;

use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{End, Reason, Record};
use zab_core::select::{property_name, Options};

use crate::cli::Args;

const TOOL: &str = "zab-select";

/// A backup name may only hold characters that are valid in a snapshot name.
fn check_backup_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    {
        return Err(Error::Usage(format!(
            "invalid backup name {name:?}: use letters, digits, '_', '-', '.' and ':'"
        )));
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<(), Error> {
    check_backup_name(&args.backup)?;
    let property = property_name(&args.property_format, &args.backup)?;
    if let Some(t) = &args.target_path {
        zab_core::name::target_path(t)?;
    }
    let log = args.common.log(TOOL);
    // zab-select only reads: its host refuses anything else.
    let host = args
        .common
        .host(args.ssh_source.as_deref())?
        .with_read_only(Some("zab-select only reads"));

    // zfs-autobackup's automatic rules, when source and target are one host:
    // never back up into the source selection, and in snapshot-only mode do
    // not select received datasets (a backup server's backups).
    let same_host = args.ssh_source == args.ssh_target;
    let mut opts = Options {
        backup: args.backup.clone(),
        property: property.clone(),
        host: host.dest().map(str::to_string),
        exclude_paths: Vec::new(),
        exclude_received: args.exclude_received,
        exclude_unchanged: args.exclude_unchanged,
    };
    if same_host {
        match &args.target_path {
            Some(t) => opts.exclude_paths.push(t.clone()),
            None if !args.include_received => opts.exclude_received = true,
            None => {}
        }
    }

    let all = zab_core::select::list(&host, &opts)?;

    let stdout = std::io::stdout();
    let mut out = Writer::new(stdout.lock());
    let (mut written, mut failed, mut selected, mut excluded) = (0, 0, 0, 0);
    for d in &all {
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
        if d.selected || args.all || d.error.is_some() {
            out.write(&Record::Dataset(d.clone()))?;
            written += 1;
        }
    }
    out.write(&Record::End(End::new(TOOL, written, failed)))?;
    out.into_inner().flush()?;

    if failed > 0 {
        return Err(Error::Failed(failed));
    }
    if selected == 0 && excluded == 0 {
        return Err(Error::Nothing(format!(
            "no source datasets selected: none has {property} set on {} \
             (set it with: zfs set {property}=true POOL/DATASET)",
            host.name()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names() {
        assert!(check_backup_name("offsite1").is_ok());
        assert!(check_backup_name("").is_err());
        assert!(check_backup_name("a/b").is_err());
        assert!(check_backup_name("a b").is_err());
        assert!(check_backup_name("a@b").is_err());
    }
}
