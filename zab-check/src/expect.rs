//! Pure: the hashes that `--check` reads, as zfs-check reads them. Lines
//! without a tab are ignored; with `--skip N`, one line is taken and N are
//! skipped (zfs-check's check side does the same). Unlike zfs-check, a line
//! it cannot use is an error naming the line: a wrong field count, a chunk
//! number that is not one, a hash of another algorithm than `--hash`, or a
//! path that leaves the tree (absolute, or with a `..` component).

use zab_core::error::Error;

use crate::hash::Algorithm;

/// One expected hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The file's path in the tree (None for a file or device target).
    pub path: Option<Vec<u8>>,
    pub number: u64,
    pub hash: String,
}

/// Parses `--check`'s input for a tree (`PATH<TAB>CHUNK<TAB>HASH`) or a
/// file (`CHUNK<TAB>HASH`).
pub fn parse(
    input: &[u8],
    tree: bool,
    skip: u64,
    algorithm: Algorithm,
) -> Result<Vec<Expected>, Error> {
    let mut out = Vec::new();
    let mut to_skip = 0u64;
    for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line = raw.trim_ascii_end();
        if !line.contains(&b'\t') {
            continue;
        }
        if to_skip > 0 {
            to_skip -= 1;
            continue;
        }
        to_skip = skip;
        let bad = |message: String| Error::Input {
            line: i + 1,
            message,
        };
        let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        let (path, number, hash) = match (tree, fields.as_slice()) {
            (true, [p, n, h]) => (Some(*p), *n, *h),
            (false, [n, h]) => (None, *n, *h),
            (true, _) => {
                return Err(bad(
                    "expected PATH<TAB>CHUNK<TAB>HASH (the hashes of a directory tree)".into(),
                ))
            }
            (false, _) => {
                return Err(bad(
                    "expected CHUNK<TAB>HASH (the hashes of a file or device)".into(),
                ))
            }
        };
        if let Some(p) = path {
            check_path(p).map_err(&bad)?;
        }
        let number = std::str::from_utf8(number)
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| {
                bad(format!(
                    "chunk number {:?} is not a whole number",
                    String::from_utf8_lossy(number)
                ))
            })?;
        let hash = String::from_utf8_lossy(hash).into_owned();
        check_hash(&hash, algorithm).map_err(&bad)?;
        out.push(Expected {
            path: path.map(<[u8]>::to_vec),
            number,
            hash,
        });
    }
    Ok(out)
}

/// A path inside the tree: relative, no empty, `.` or `..` component.
fn check_path(p: &[u8]) -> Result<(), String> {
    let ok = !p.is_empty()
        && !p.starts_with(b"/")
        && p.split(|&b| b == b'/')
            .all(|c| !matches!(c, b"" | b"." | b".."));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "path {:?} is not inside the tree",
            String::from_utf8_lossy(p)
        )),
    }
}

/// A hash of `algorithm`: that many lowercase hex digits.
fn check_hash(hash: &str, algorithm: Algorithm) -> Result<(), String> {
    let hex = hash
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex && hash.len() == algorithm.hex_len() {
        return Ok(());
    }
    match Algorithm::by_hex_len(hash.len()).filter(|_| hex) {
        Some(other) => Err(format!(
            "a {} hash, but --hash is {} (use --hash {})",
            other.name(),
            algorithm.name(),
            other.name()
        )),
        None => Err(format!("{hash:?} is not a {} hash", algorithm.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

    #[test]
    fn tree_lines_and_lines_without_tabs() {
        let input = format!("some header\n\nd/f\t0\t{H}\nd/f\t1\t{H}  \r\n");
        let got = parse(input.as_bytes(), true, 0, Algorithm::Sha1).expect("parse");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].path.as_deref(), Some(&b"d/f"[..]));
        assert_eq!(got[1].number, 1);
        assert_eq!(got[1].hash, H);
    }

    #[test]
    fn skip_takes_one_line_then_skips_n() {
        let input: String = (0..7).map(|n| format!("{n}\t{H}\n")).collect();
        let got = parse(input.as_bytes(), false, 2, Algorithm::Sha1).expect("parse");
        let numbers: Vec<u64> = got.iter().map(|e| e.number).collect();
        assert_eq!(numbers, [0, 3, 6]);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse(
            format!("0\t{H}\n1\tx\t{H}\n").as_bytes(),
            false,
            0,
            Algorithm::Sha1,
        )
        .expect_err("three fields for a file");
        assert_eq!(
            e.to_string(),
            "line 2: expected CHUNK<TAB>HASH (the hashes of a file or device)"
        );
        let e = parse(format!("x\t{H}\n").as_bytes(), false, 0, Algorithm::Sha1)
            .expect_err("not a number");
        assert_eq!(
            e.to_string(),
            "line 1: chunk number \"x\" is not a whole number"
        );
        let e = parse(format!("0\t{H}\n").as_bytes(), false, 0, Algorithm::Blake3)
            .expect_err("sha1 given, blake3 asked");
        assert_eq!(
            e.to_string(),
            "line 1: a sha1 hash, but --hash is blake3 (use --hash sha1)"
        );
        assert!(parse(b"0\tXYZ\n", false, 0, Algorithm::Sha1).is_err());
    }

    #[test]
    fn paths_stay_inside_the_tree() {
        for p in ["/etc/shadow", "../x", "a/../../x", "a//b", "./a", ""] {
            let input = format!("{p}\t0\t{H}\n");
            let e = parse(input.as_bytes(), true, 0, Algorithm::Sha1).expect_err(p);
            assert!(e.to_string().contains("is not inside the tree"), "{p}: {e}");
        }
        assert!(parse(
            format!("a/..b/c\t0\t{H}\n").as_bytes(),
            true,
            0,
            Algorithm::Sha1
        )
        .is_ok());
    }
}
