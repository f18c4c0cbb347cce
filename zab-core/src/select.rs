//! The selection rules of zfs-autobackup, as a pure function of one listing.
//!
//! zab-select writes what they decide; zab-thin asks them again before it
//! treats a target dataset as missing on the source (a filter between the
//! stages may have dropped its record).
//!
//! Input: the rows of one `zfs get -t filesystem,volume
//! PROPERTY,type,createtxg,written,snapshots_changed` over the whole host
//! ([`list`] runs it; `snapshots_changed`, for zab-snap's quiet-run cache,
//! is left out on a host whose zfs does not know it). Output: one [`Dataset`] record
//! per dataset, sorted parents first, each with its [`Reason`]. The rules,
//! in upstream's order (reference §1.3, §2.3):
//!
//! 1. Inheritance is followed: `inherited from X` takes X's source, so a
//!    value inherited from a received one counts as received.
//! 2. A source other than local, received or unset, or a value other than
//!    true, false, child, parent: the dataset fails (`invalid`), the others go on.
//! 3. Unset: not selected. `child` set here: only its descendants.
//!    `parent` inherited: only the dataset that sets it. `false`: excluded.
//! 4. Then, for what the property selects: under an excluded path (the target
//!    path on the same host), received when received ones are excluded, and
//!    fewer than `exclude_unchanged` bytes written since the latest snapshot.

use std::collections::HashMap;

use serde_json::Map;

use crate::error::Error;
use crate::host::Host;
use crate::record::{Dataset, PropSource, Reason};
use crate::zfs::{self, is_under, parent_of, pool_of, DatasetType, PropRow, Source};

/// The selection property for `backup`: `--property-format` with `{}`
/// replaced; a usage error when that is not a ZFS user property.
pub fn property_name(format: &str, backup: &str) -> Result<String, Error> {
    let prop = format.replace("{}", backup);
    let (ns, rest) = prop.split_once(':').unwrap_or(("", ""));
    let valid = !ns.is_empty()
        && !rest.is_empty()
        && prop.len() <= 256
        && prop
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if !valid {
        return Err(Error::Usage(format!(
            "--property-format {format:?} gives {prop:?}, which is not a ZFS user property \
             (it needs a ':' and only letters, digits, '_', '-', '.' and ':')"
        )));
    }
    Ok(prop)
}

/// Lists every filesystem and volume on `host` with one `zfs get` of the
/// selection property and what the rules need, and applies the rules. A
/// zfs older than OpenZFS 2.2 refuses `snapshots_changed` as a whole: then
/// it is asked again without it.
pub fn list(host: &Host, opts: &Options) -> Result<Vec<Dataset>, Error> {
    let read = |argv: &[String]| zfs::query(host, argv, |out| select(&zfs::parse_get(out)?, opts));
    match read(&get_args(&opts.property)) {
        Err(Error::Command(c)) if c.stderr.contains("invalid property 'snapshots_changed'") => {
            read(&get_args_before_2_2(&opts.property))
        }
        other => other,
    }
}

/// The argv of the one `zfs get` the rules read: `property` and what else
/// they need, on every filesystem and volume of the host, and
/// `snapshots_changed` for the records.
pub fn get_args(property: &str) -> Vec<String> {
    zfs::get_args(
        &["filesystem", "volume"],
        &[
            property,
            "type",
            "createtxg",
            "written",
            "snapshots_changed",
        ],
        &[],
    )
}

/// [`get_args`] without `snapshots_changed`, which OpenZFS before 2.2 lacks.
pub fn get_args_before_2_2(property: &str) -> Vec<String> {
    zfs::get_args(
        &["filesystem", "volume"],
        &[property, "type", "createtxg", "written"],
        &[],
    )
}

/// What decides the selection, besides the listing.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The backup name, copied into each record.
    pub backup: String,
    /// The selection property (`autobackup:offsite1`).
    pub property: String,
    /// The ssh destination of the source, copied into each record.
    pub host: Option<String>,
    /// Datasets at or under these paths are excluded (`target-path`).
    pub exclude_paths: Vec<String>,
    /// Exclude datasets whose property was received.
    pub exclude_received: bool,
    /// Exclude datasets with fewer bytes written since their latest snapshot
    /// (0 = off).
    pub exclude_unchanged: u64,
}

#[derive(Default)]
struct Facts<'a> {
    prop: Option<(&'a str, &'a Source)>,
    kind: Option<&'a str>,
    createtxg: Option<&'a str>,
    written: Option<&'a str>,
    changed: Option<&'a str>,
}

/// The listing's rows gathered per dataset, and the datasets in the order
/// listed.
fn facts_of<'a>(
    rows: &'a [PropRow],
    property: &str,
) -> (Vec<&'a str>, HashMap<&'a str, Facts<'a>>) {
    let mut order: Vec<&str> = Vec::new();
    let mut facts: HashMap<&str, Facts> = HashMap::new();
    for row in rows {
        let f = facts.entry(row.name.as_str()).or_insert_with(|| {
            order.push(row.name.as_str());
            Facts::default()
        });
        match row.property.as_str() {
            p if p == property => f.prop = Some((row.value.as_str(), &row.source)),
            "type" => f.kind = Some(row.value.as_str()),
            "createtxg" => f.createtxg = Some(row.value.as_str()),
            "written" => f.written = Some(row.value.as_str()),
            "snapshots_changed" => f.changed = Some(row.value.as_str()),
            _ => {}
        }
    }

    (order, facts)
}

/// Applies the selection rules to one listing. Returns every dataset, sorted
/// parents first; filter on `selected` for the backup set. An `Err` means the
/// listing itself is unusable (a row is missing), never a per-dataset problem.
pub fn select(rows: &[PropRow], opts: &Options) -> Result<Vec<Dataset>, String> {
    let (order, facts) = facts_of(rows, &opts.property);

    let mut out = Vec::with_capacity(order.len());
    for name in &order {
        let f = &facts[name];
        let missing = |what: &str| format!("the listing has no {what} for {name}");
        let (value, raw_source) = f.prop.ok_or_else(|| missing(&opts.property))?;
        let kind = f.kind.ok_or_else(|| missing("type"))?;
        let kind = DatasetType::parse(kind)
            .filter(|k| matches!(k, DatasetType::Filesystem | DatasetType::Volume))
            .ok_or_else(|| format!("{name} has unexpected type {kind:?}"))?;
        let number = |what: &str, v: Option<&str>| -> Result<u64, String> {
            let v = v.ok_or_else(|| missing(what))?;
            v.parse()
                .map_err(|_| format!("{name} has a non-numeric {what}: {v:?}"))
        };
        let createtxg = number("createtxg", f.createtxg)?;
        let written = number("written", f.written)?;
        // `-` (or absent): a pool without it; 0: never set.
        let snapshots_changed = f
            .changed
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&v| v > 0);

        let (source, inherited_from, source_text) = resolve(raw_source, &facts);
        let value = (value != "-").then(|| value.to_string());
        let (reason, error) = decide(
            value.as_deref(),
            source,
            inherited_from.is_some(),
            name,
            written,
            opts,
        );
        let error = error.map(|e| match e {
            Invalid::Source => format!(
                "{} has illegal source '{}' (possible bug)",
                opts.property, source_text
            ),
            Invalid::Value(v) => format!(
                "{} has illegal value '{}' (expected true, false, child or parent)",
                opts.property, v
            ),
        });
        out.push(Dataset {
            backup: opts.backup.clone(),
            host: opts.host.clone(),
            name: name.to_string(),
            kind,
            selected: reason == Reason::Selected,
            reason,
            value,
            source,
            inherited_from,
            createtxg,
            written,
            snapshots_changed,
            error,
            snapshot: None,
            thin: None,
            send: None,
            verify: None,
            status: None,
            extra: Map::new(),
        });
    }
    Ok(parents_first(out))
}

enum Invalid {
    Source,
    Value(String),
}

/// Follows `inherited from X` to X's own source.
fn resolve(raw: &Source, facts: &HashMap<&str, Facts>) -> (PropSource, Option<String>, String) {
    match raw {
        Source::Local => (PropSource::Local, None, "local".into()),
        Source::Received => (PropSource::Received, None, "received".into()),
        Source::None => (PropSource::None, None, "-".into()),
        Source::Inherited(from) => {
            let origin = facts
                .get(from.as_str())
                .and_then(|f| f.prop)
                .map(|(_, s)| s);
            let source = match origin {
                Some(Source::Local) => PropSource::Local,
                Some(Source::Received) => PropSource::Received,
                _ => PropSource::Other,
            };
            (source, Some(from.clone()), format!("inherited from {from}"))
        }
        Source::Default => (PropSource::Other, None, "default".into()),
        Source::Temporary => (PropSource::Other, None, "temporary".into()),
        Source::Other(s) => (PropSource::Other, None, s.clone()),
    }
}

/// Upstream's `is_selected`, in its order.
fn decide(
    value: Option<&str>,
    source: PropSource,
    inherited: bool,
    name: &str,
    written: u64,
    opts: &Options,
) -> (Reason, Option<Invalid>) {
    if source == PropSource::Other {
        return (Reason::Invalid, Some(Invalid::Source));
    }
    let Some(value) = value else {
        return (Reason::Unset, None);
    };
    match value {
        "true" | "false" | "child" | "parent" => {}
        other => return (Reason::Invalid, Some(Invalid::Value(other.to_string()))),
    }
    if value == "child" && !inherited {
        return (Reason::ChildOnly, None);
    }
    if value == "parent" && inherited {
        return (Reason::ParentOnly, None);
    }
    if value == "false" {
        return (Reason::Disabled, None);
    }
    if opts.exclude_paths.iter().any(|p| is_under(name, p)) {
        return (Reason::TargetPath, None);
    }
    if source == PropSource::Received && opts.exclude_received {
        return (Reason::Received, None);
    }
    if opts.exclude_unchanged > 0 && written < opts.exclude_unchanged {
        return (Reason::Unchanged, None);
    }
    (Reason::Selected, None)
}

/// Sorts by pool, then `createtxg` within the pool (as upstream does: clone
/// origins before clones; txgs of different pools are not comparable), then
/// moves any dataset whose parent would come later (a renamed dataset can be
/// older than its new parent) right after that parent.
fn parents_first(mut all: Vec<Dataset>) -> Vec<Dataset> {
    all.sort_by(|a, b| {
        (pool_of(&a.name), a.createtxg, &a.name).cmp(&(pool_of(&b.name), b.createtxg, &b.name))
    });
    let present: HashMap<String, usize> = all
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), i))
        .collect();
    let mut done = vec![false; all.len()];
    let mut waiting: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut order = Vec::with_capacity(all.len());
    for (i, d) in all.iter().enumerate() {
        match parent_of(&d.name).and_then(|p| present.get(p)) {
            Some(&p) if !done[p] => waiting.entry(p).or_default().push(i),
            _ => {
                // Emit it, then whatever waited for it, depth first.
                let mut stack = vec![i];
                while let Some(j) = stack.pop() {
                    done[j] = true;
                    order.push(j);
                    if let Some(kids) = waiting.remove(&j) {
                        stack.extend(kids.into_iter().rev());
                    }
                }
            }
        }
    }
    let mut slots: Vec<Option<Dataset>> = all.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfs::parse_get;

    /// Recorded in the lab (OpenZFS 2.3.2): the tree built by
    /// `tests/fixtures/selection-tree.sh`, listed with
    /// `zfs get -H -p -o name,property,value,source -t filesystem,volume autobackup:fix,type,createtxg,written,snapshots_changed`.
    const RECORDED: &str = include_str!("../tests/fixtures/selection-tree.txt");

    fn opts() -> Options {
        Options {
            backup: "fix".into(),
            property: "autobackup:fix".into(),
            ..Options::default()
        }
    }

    fn run(rows: &str, opts: &Options) -> Vec<Dataset> {
        select(&parse_get(rows).unwrap(), opts).unwrap()
    }

    fn reasons(all: &[Dataset]) -> Vec<(String, Reason)> {
        all.iter()
            .filter(|d| d.reason != Reason::Unset)
            .map(|d| (d.name.clone(), d.reason))
            .collect()
    }

    fn selected(all: &[Dataset]) -> Vec<&str> {
        all.iter()
            .filter(|d| d.selected)
            .map(|d| d.name.as_str())
            .collect()
    }

    fn rows(spec: &[(&str, &str, &str, &str, u64, u64)]) -> String {
        // (name, type, value, source, createtxg, written)
        let mut s = String::new();
        for (name, kind, value, source, txg, written) in spec {
            s += &format!("{name}\tautobackup:fix\t{value}\t{source}\n");
            s += &format!("{name}\ttype\t{kind}\t-\n");
            s += &format!("{name}\tcreatetxg\t{txg}\t-\n");
            s += &format!("{name}\twritten\t{written}\t-\n");
        }
        s
    }

    /// The listing RECORDED was made with: byte for byte what runs.
    #[test]
    fn one_get_of_the_property_and_what_the_rules_need() {
        assert_eq!(
            get_args("autobackup:fix").join(" "),
            "zfs get -H -p -o name,property,value,source -t filesystem,volume \
             autobackup:fix,type,createtxg,written,snapshots_changed"
        );
        assert_eq!(
            get_args_before_2_2("autobackup:fix").join(" "),
            "zfs get -H -p -o name,property,value,source -t filesystem,volume \
             autobackup:fix,type,createtxg,written"
        );
    }

    #[test]
    fn true_selects_the_dataset_and_its_descendants() {
        let r = rows(&[
            ("p", "filesystem", "-", "-", 1, 0),
            ("p/a", "filesystem", "true", "local", 5, 0),
            ("p/a/b", "filesystem", "true", "inherited from p/a", 6, 0),
            ("p/a/vol", "volume", "true", "inherited from p/a", 7, 0),
        ]);
        let all = run(&r, &opts());
        assert_eq!(selected(&all), vec!["p/a", "p/a/b", "p/a/vol"]);
        assert_eq!(all[3].kind, DatasetType::Volume);
        assert_eq!(all[2].inherited_from.as_deref(), Some("p/a"));
        assert_eq!(all[2].source, PropSource::Local);
        assert_eq!(all[0].reason, Reason::Unset);
    }

    #[test]
    fn child_parent_and_false() {
        let r = rows(&[
            ("p", "filesystem", "child", "local", 1, 0),
            ("p/a", "filesystem", "child", "inherited from p", 2, 0),
            ("p/a/off", "filesystem", "false", "local", 3, 0),
            (
                "p/a/off/x",
                "filesystem",
                "false",
                "inherited from p/a/off",
                4,
                0,
            ),
            ("q", "filesystem", "parent", "local", 5, 0),
            ("q/a", "filesystem", "parent", "inherited from q", 6, 0),
        ]);
        let all = run(&r, &opts());
        assert_eq!(selected(&all), vec!["p/a", "q"]);
        assert_eq!(
            reasons(&all),
            vec![
                ("p".into(), Reason::ChildOnly),
                ("p/a".into(), Reason::Selected),
                ("p/a/off".into(), Reason::Disabled),
                ("p/a/off/x".into(), Reason::Disabled),
                ("q".into(), Reason::Selected),
                ("q/a".into(), Reason::ParentOnly),
            ]
        );
    }

    #[test]
    fn invalid_value_or_source_fails_only_that_dataset() {
        let r = rows(&[
            ("p", "filesystem", "yes", "local", 1, 0),
            ("p/a", "filesystem", "yes", "inherited from p", 2, 0),
            ("q", "filesystem", "true", "temporary", 3, 0),
            ("r", "filesystem", "true", "local", 4, 0),
        ]);
        let all = run(&r, &opts());
        assert_eq!(selected(&all), vec!["r"]);
        assert_eq!(
            all[0].error.as_deref(),
            Some("autobackup:fix has illegal value 'yes' (expected true, false, child or parent)")
        );
        assert_eq!(all[1].reason, Reason::Invalid);
        assert_eq!(
            all[2].error.as_deref(),
            Some("autobackup:fix has illegal source 'temporary' (possible bug)")
        );
        assert!(all[3].error.is_none());
    }

    #[test]
    fn received_follows_inheritance_and_is_excluded_on_request() {
        let r = rows(&[
            ("t", "filesystem", "-", "-", 1, 0),
            ("t/r", "filesystem", "true", "received", 8, 0),
            ("t/r/c", "filesystem", "true", "inherited from t/r", 9, 0),
            ("t/l", "filesystem", "true", "local", 10, 0),
        ]);
        assert_eq!(selected(&run(&r, &opts())), vec!["t/r", "t/r/c", "t/l"]);
        let o = Options {
            exclude_received: true,
            ..opts()
        };
        let all = run(&r, &o);
        assert_eq!(selected(&all), vec!["t/l"]);
        assert_eq!(all[2].source, PropSource::Received);
        assert_eq!(all[2].reason, Reason::Received);
    }

    #[test]
    fn target_path_is_a_path_prefix_not_a_string_prefix() {
        let r = rows(&[
            ("p", "filesystem", "true", "local", 1, 0),
            ("p/backup", "filesystem", "true", "inherited from p", 2, 0),
            ("p/backup/x", "filesystem", "true", "inherited from p", 3, 0),
            ("p/backupx", "filesystem", "true", "inherited from p", 4, 0),
        ]);
        let o = Options {
            exclude_paths: vec!["p/backup".into()],
            ..opts()
        };
        assert_eq!(selected(&run(&r, &o)), vec!["p", "p/backupx"]);
    }

    /// `snapshots_changed` goes into the records as read; `-` (a dataset
    /// without snapshots, or a pool before 2.2) and a listing without the
    /// property (asked again without it) leave it out.
    #[test]
    fn snapshots_changed_is_carried_where_zfs_has_it() {
        let all = run(RECORDED, &opts());
        let changed = |n: &str| all.iter().find(|d| d.name == n).unwrap().snapshots_changed;
        assert_eq!(changed("fixpool/src"), Some(1796318702));
        assert_eq!(changed("fixpool/all"), None);
        let r = rows(&[("p", "filesystem", "true", "local", 1, 0)]);
        assert_eq!(run(&r, &opts())[0].snapshots_changed, None);
    }

    #[test]
    fn exclude_unchanged_compares_written_strictly_below() {
        let r = rows(&[
            ("p", "filesystem", "true", "local", 1, 4095),
            ("p/a", "filesystem", "true", "inherited from p", 2, 4096),
            ("p/b", "filesystem", "false", "local", 3, 0),
        ]);
        let o = Options {
            exclude_unchanged: 4096,
            ..opts()
        };
        let all = run(&r, &o);
        assert_eq!(selected(&all), vec!["p/a"]);
        assert_eq!(all[0].reason, Reason::Unchanged);
        // Excluded by the property stays excluded for that reason.
        assert_eq!(all[2].reason, Reason::Disabled);
    }

    #[test]
    fn sorted_by_createtxg_but_always_parents_first() {
        // p/old was renamed under p/new, so it is older than its parent.
        let r = rows(&[
            ("p", "filesystem", "true", "local", 1, 0),
            ("p/new", "filesystem", "true", "inherited from p", 50, 0),
            ("p/new/old", "filesystem", "true", "inherited from p", 10, 0),
            ("p/clone", "filesystem", "true", "inherited from p", 30, 0),
        ]);
        let names: Vec<String> = run(&r, &opts()).into_iter().map(|d| d.name).collect();
        assert_eq!(names, vec!["p", "p/clone", "p/new", "p/new/old"]);
        // Each pool counts its own txgs: pools are not interleaved.
        let r = rows(&[
            ("b", "filesystem", "true", "local", 1, 0),
            ("b/x", "filesystem", "true", "inherited from b", 90, 0),
            ("a", "filesystem", "true", "local", 1, 0),
            ("a/y", "filesystem", "true", "inherited from a", 40, 0),
        ]);
        let names: Vec<String> = run(&r, &opts()).into_iter().map(|d| d.name).collect();
        assert_eq!(names, vec!["a", "a/y", "b", "b/x"]);
    }

    #[test]
    fn a_truncated_listing_is_an_error_not_a_smaller_selection() {
        let mut r = rows(&[("p", "filesystem", "true", "local", 1, 0)]);
        r += "p/a\tautobackup:fix\ttrue\tinherited from p\n";
        let err = select(&parse_get(&r).unwrap(), &opts()).unwrap_err();
        assert_eq!(err, "the listing has no type for p/a");
    }

    #[test]
    fn property_names() {
        assert_eq!(
            property_name("autobackup:{}", "offsite1").unwrap(),
            "autobackup:offsite1"
        );
        assert_eq!(property_name("zab:{}:x", "b").unwrap(), "zab:b:x");
        assert!(property_name("autobackup{}", "x").is_err());
        assert!(property_name("auto backup:{}", "x").is_err());
        assert!(property_name(":{}", "x").is_err());
    }

    /// The whole rule set on a listing recorded from real OpenZFS.
    #[test]
    fn recorded_tree_gives_the_exact_selection() {
        let all = run(RECORDED, &opts());
        let ours: Vec<(String, Reason)> = reasons(&all)
            .into_iter()
            .filter(|(n, _)| n.starts_with("fixpool/"))
            .collect();
        let expect = |list: &[(&str, Reason)]| -> Vec<(String, Reason)> {
            list.iter().map(|(n, r)| (n.to_string(), *r)).collect()
        };
        assert_eq!(
            ours,
            expect(&[
                ("fixpool/all", Reason::Selected),
                ("fixpool/all/a", Reason::Selected),
                ("fixpool/all/a/deep", Reason::Selected),
                ("fixpool/all/off", Reason::Disabled),
                ("fixpool/all/off/below", Reason::Disabled),
                ("fixpool/all/vol", Reason::Selected),
                ("fixpool/kids", Reason::ChildOnly),
                ("fixpool/kids/a", Reason::Selected),
                ("fixpool/kids/b", Reason::Selected),
                ("fixpool/only", Reason::Selected),
                ("fixpool/only/a", Reason::ParentOnly),
                ("fixpool/bad", Reason::Invalid),
                ("fixpool/recv", Reason::Selected),
                ("fixpool/recv/child", Reason::Selected),
            ])
        );
        let recv = all.iter().find(|d| d.name == "fixpool/recv/child").unwrap();
        assert_eq!(recv.source, PropSource::Received);
        let o = Options {
            exclude_received: true,
            ..opts()
        };
        let sel: Vec<String> = run(RECORDED, &o)
            .into_iter()
            .filter(|d| d.selected)
            .map(|d| d.name)
            .collect();
        assert!(!sel.iter().any(|n| n.starts_with("fixpool/recv")));
        assert_eq!(sel.len(), 7);
    }
}
