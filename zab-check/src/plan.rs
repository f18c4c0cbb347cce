//! Pure: which chunks to hash, and the lines zab-check prints.
//!
//! A file of `size` bytes is cut into chunks of `chunk_size` bytes (the
//! last one shorter), numbered from 0; an empty file has none. With
//! `--skip N`, the chunks of all files, taken in order as one sequence, are
//! sampled: one hashed, N skipped, and so on across file boundaries (as
//! zfs-check does, without its extra chunk past the end of a file whose size
//! is a multiple of the chunk size).

/// One chunk to hash: of which file (an index), its number, where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub file: usize,
    pub number: u64,
    pub offset: u64,
    pub len: u64,
}

/// The chunks to hash of files of these sizes, in order.
pub fn chunks(sizes: &[u64], chunk_size: u64, skip: u64) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut to_skip = 0u64;
    for (file, &size) in sizes.iter().enumerate() {
        let count = size.div_ceil(chunk_size);
        let mut number = 0u64;
        while number < count {
            if to_skip > 0 {
                let step = to_skip.min(count - number);
                number += step;
                to_skip -= step;
                continue;
            }
            let offset = number * chunk_size;
            out.push(Chunk {
                file,
                number,
                offset,
                len: chunk_size.min(size - offset),
            });
            to_skip = skip;
            number += 1;
        }
    }
    out
}

/// The chunk `number` of a file of `size` bytes, or None past its end.
pub fn chunk_at(file: usize, number: u64, size: u64, chunk_size: u64) -> Option<Chunk> {
    let offset = number.checked_mul(chunk_size)?;
    (offset < size).then(|| Chunk {
        file,
        number,
        offset,
        len: chunk_size.min(size - offset),
    })
}

/// One output line: `CHUNK<TAB>HASH` for a file or device,
/// `PATH<TAB>CHUNK<TAB>HASH` for a file of a tree (its path relative to the
/// tree's top, as bytes).
pub fn line(path: Option<&[u8]>, number: u64, hash: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + 24 + path.map_or(0, <[u8]>::len));
    if let Some(p) = path {
        out.extend_from_slice(p);
        out.push(b'\t');
    }
    out.extend_from_slice(format!("{number}\t{hash}\n").as_bytes());
    out
}

/// One mismatch line, in zfs-check's words: `[PATH: ]Chunk N failed:
/// EXPECTED ACTUAL`, where ACTUAL is a hash, `EOF` (the chunk is past the
/// end) or `ERROR: why`.
pub fn mismatch(path: Option<&[u8]>, number: u64, expected: &str, actual: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(p) = path {
        out.extend_from_slice(p);
        out.extend_from_slice(b": ");
    }
    out.extend_from_slice(format!("Chunk {number} failed: {expected} {actual}\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(cs: &[Chunk]) -> Vec<(usize, u64)> {
        cs.iter().map(|c| (c.file, c.number)).collect()
    }

    #[test]
    fn a_file_is_cut_into_chunks_the_last_one_shorter() {
        let cs = chunks(&[25], 10, 0);
        assert_eq!(
            cs,
            [
                Chunk {
                    file: 0,
                    number: 0,
                    offset: 0,
                    len: 10
                },
                Chunk {
                    file: 0,
                    number: 1,
                    offset: 10,
                    len: 10
                },
                Chunk {
                    file: 0,
                    number: 2,
                    offset: 20,
                    len: 5
                },
            ]
        );
        assert_eq!(chunks(&[20], 10, 0).len(), 2, "no empty chunk at the end");
    }

    #[test]
    fn empty_files_have_no_chunk() {
        assert_eq!(numbers(&chunks(&[0, 5, 0], 10, 0)), [(1, 0)]);
    }

    #[test]
    fn skip_samples_across_files() {
        // Files of 3, 1, 0 and 4 chunks: 8 chunks, every third one hashed.
        let cs = chunks(&[30, 10, 0, 35], 10, 2);
        assert_eq!(numbers(&cs), [(0, 0), (1, 0), (3, 2)]);
        // No chunk past the end of a file whose size is a multiple of the
        // chunk size (zfs-check hashes nothing there and prints it).
        let cs = chunks(&[20], 10, 1);
        assert_eq!(numbers(&cs), [(0, 0)]);
        let cs = chunks(&[100], 10, 3);
        assert_eq!(numbers(&cs), [(0, 0), (0, 4), (0, 8)]);
    }

    #[test]
    fn chunk_at_the_end_is_none() {
        assert_eq!(chunk_at(0, 2, 25, 10).map(|c| c.len), Some(5));
        assert_eq!(chunk_at(0, 3, 25, 10), None);
        assert_eq!(chunk_at(0, u64::MAX, 25, 10), None);
    }

    #[test]
    fn lines_as_zfs_check_prints_them() {
        assert_eq!(line(None, 3, "ab"), b"3\tab\n");
        assert_eq!(line(Some(b"d/f x"), 0, "ab"), b"d/f x\t0\tab\n");
        assert_eq!(mismatch(None, 1, "aa", "bb"), b"Chunk 1 failed: aa bb\n");
        assert_eq!(
            mismatch(Some(b"d/f"), 0, "aa", "EOF"),
            b"d/f: Chunk 0 failed: aa EOF\n"
        );
    }
}
