//! Pure: what the two sides' hashes say (which chunks differ), and each
//! dataset's verdict: verified, mismatch, no common snapshot, or failed
//! (a side could not be hashed), with the error of a failed dataset.

use zab_core::error::Error;
use zab_core::record::{Difference, Side, VerifyOutcome, VerifyStatus, MAX_DIFFERENCES};

use crate::plan::Job;

/// `job`'s `verify` outcome from zab-check's output on both sides (None:
/// nothing was hashed, there is no common snapshot), and the dataset's
/// error when it failed.
pub fn verdict(
    job: &Job,
    hashed: Option<Result<(String, String), Error>>,
) -> (VerifyOutcome, Option<String>) {
    let mut outcome = VerifyOutcome {
        target: job.target.clone(),
        status: VerifyStatus::NoCommonSnapshot,
        snapshot: job.snapshot.clone(),
        chunks: None,
        differences: Vec::new(),
        more: None,
    };
    let (Some(snap), Some(hashed)) = (&job.snapshot, hashed) else {
        return (
            outcome,
            Some(format!("no snapshot in common with {}", job.target)),
        );
    };
    let c = match hashed.and_then(|(a, b)| compare(&a, &b).map_err(Error::Io)) {
        Ok(c) => c,
        Err(e) => {
            outcome.status = VerifyStatus::Failed;
            return (outcome, Some(e.to_string()));
        }
    };
    outcome.chunks = Some(c.chunks);
    outcome.more = (c.total > c.differences.len() as u64).then_some(c.total);
    outcome.differences = c.differences;
    if c.total == 0 {
        outcome.status = VerifyStatus::Verified;
        return (outcome, None);
    }
    outcome.status = VerifyStatus::Mismatch;
    let error = format!(
        "{} of {} chunks differ from {}@{snap}",
        c.total, c.chunks, job.target
    );
    (outcome, Some(error))
}

/// What the comparison of two zab-check outputs found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Chunks hashed on the source.
    pub chunks: u64,
    /// The first differences, in order.
    pub differences: Vec<Difference>,
    /// How many differ in all.
    pub total: u64,
}

/// One line of zab-check's output: (path, chunk, hash).
type Line<'a> = (Option<&'a str>, u64, &'a str);

/// The order of zab-check's lines: path (bytewise), then chunk.
fn key<'a>(l: &Line<'a>) -> (Option<&'a str>, u64) {
    (l.0, l.1)
}

/// Parses zab-check's lines: `CHUNK<TAB>HASH` or `PATH<TAB>CHUNK<TAB>HASH`
/// (a path may hold tabs: the last two fields are split off).
fn parse(output: &str) -> Result<Vec<Line<'_>>, String> {
    output
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut f = l.rsplitn(3, '\t');
            let (hash, chunk, path) = (f.next(), f.next(), f.next());
            let chunk = chunk
                .and_then(|c| c.parse::<u64>().ok())
                .ok_or_else(|| format!("line {}: not zab-check's output: {l:?}", i + 1))?;
            Ok((path, chunk, hash.unwrap_or_default()))
        })
        .collect()
}

/// Compares the source's and the target's hashes, both sorted as zab-check
/// writes them (by path bytewise, then chunk).
pub fn compare(source: &str, target: &str) -> Result<Comparison, String> {
    let a = parse(source).map_err(|e| format!("source: {e}"))?;
    let b = parse(target).map_err(|e| format!("target: {e}"))?;
    let mut out = Comparison {
        chunks: a.len() as u64,
        differences: Vec::new(),
        total: 0,
    };
    let mut add = |path: Option<&str>, chunk: u64, only: Option<Side>| {
        out.total += 1;
        if out.differences.len() < MAX_DIFFERENCES {
            out.differences.push(Difference {
                path: path.map(str::to_string),
                chunk,
                only,
            });
        }
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if key(x) == key(y) => {
                if x.2 != y.2 {
                    add(x.0, x.1, None);
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if key(x) < key(y) => {
                add(x.0, x.1, Some(Side::Source));
                i += 1;
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                add(y.0, y.1, Some(Side::Target));
                j += 1;
            }
            (Some(x), None) => {
                add(x.0, x.1, Some(Side::Source));
                i += 1;
            }
            (None, None) => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(snapshot: Option<&str>) -> Job {
        Job {
            record: 0,
            host: 0,
            source: "p/a".into(),
            target: "t/p/a".into(),
            snapshot: snapshot.map(str::to_string),
        }
    }

    #[test]
    fn each_verdict_and_its_error() {
        let both = |a: &str, b: &str| Some(Ok((a.to_string(), b.to_string())));
        let (o, e) = verdict(&job(Some("s1")), both("0\th1\n", "0\th1\n"));
        assert_eq!(
            (o.status, o.chunks, e),
            (VerifyStatus::Verified, Some(1), None)
        );
        let (o, e) = verdict(&job(Some("s1")), both("0\th1\n1\th2\n", "0\th1\n1\tXX\n"));
        assert_eq!(o.status, VerifyStatus::Mismatch);
        assert_eq!(o.differences, [diff(None, 1, None)]);
        assert_eq!(e.as_deref(), Some("1 of 2 chunks differ from t/p/a@s1"));
        let (o, e) = verdict(&job(None), None);
        assert_eq!(
            (o.status, o.snapshot),
            (VerifyStatus::NoCommonSnapshot, None)
        );
        assert_eq!(e.as_deref(), Some("no snapshot in common with t/p/a"));
        let failed = Some(Err(Error::Io("ssh: no route".into())));
        let (o, e) = verdict(&job(Some("s1")), failed);
        assert_eq!(
            (o.status, o.snapshot.as_deref()),
            (VerifyStatus::Failed, Some("s1"))
        );
        assert!(e.is_some_and(|e| e.contains("no route")));
        let (o, _) = verdict(&job(Some("s1")), both("junk\n", ""));
        assert_eq!(o.status, VerifyStatus::Failed);
    }

    fn diff(path: Option<&str>, chunk: u64, only: Option<Side>) -> Difference {
        Difference {
            path: path.map(str::to_string),
            chunk,
            only,
        }
    }

    #[test]
    fn same_hashes_verify() {
        let out = "a\t0\th1\na\t1\th2\nb c\t0\th3\n";
        let c = compare(out, out).expect("compare");
        assert_eq!((c.chunks, c.total), (3, 0));
    }

    #[test]
    fn differing_and_one_sided_chunks_are_listed_in_order() {
        let src = "a\t0\th1\na\t1\th2\nb\t0\th3\nd\t0\th5\n";
        let tgt = "a\t0\th1\na\t1\tXX\nc\t0\th4\nd\t0\th5\nd\t1\th6\n";
        let c = compare(src, tgt).expect("compare");
        assert_eq!(c.total, 4);
        assert_eq!(
            c.differences,
            [
                diff(Some("a"), 1, None),
                diff(Some("b"), 0, Some(Side::Source)),
                diff(Some("c"), 0, Some(Side::Target)),
                diff(Some("d"), 1, Some(Side::Target)),
            ]
        );
    }

    #[test]
    fn volumes_and_paths_with_tabs() {
        let c = compare("0\th1\n1\th2\n", "0\th1\n1\th9\n2\th3\n").expect("compare");
        assert_eq!(
            c.differences,
            [diff(None, 1, None), diff(None, 2, Some(Side::Target))]
        );
        let c = compare("a\tb\t0\th1\n", "a\tb\t0\th2\n").expect("compare");
        assert_eq!(c.differences, [diff(Some("a\tb"), 0, None)]);
        assert!(compare("junk\n", "").is_err());
    }

    #[test]
    fn many_differences_are_counted_not_all_listed() {
        let src: String = (0..300).map(|i| format!("{i}\ta\n")).collect();
        let tgt: String = (0..300).map(|i| format!("{i}\tb\n")).collect();
        let c = compare(&src, &tgt).expect("compare");
        assert_eq!(c.total, 300);
        assert_eq!(c.differences.len(), MAX_DIFFERENCES);
    }
}
