//! The `--compress` types: each compressor and its decompressor, as
//! upstream runs them. zab-send compresses and decompresses its streams
//! with them; a store's manifest names the type of each object, and
//! zab-restore decompresses with the same program.

/// A compressor and its decompressor, as upstream runs them (its types,
/// "adopted from syncoid").
#[derive(Debug, PartialEq, Eq)]
pub struct Compressor {
    pub name: &'static str,
    pub compress: &'static str,
    pub decompress: &'static str,
}

/// The nine `--compress` types.
pub const COMPRESSORS: &[Compressor] = &[
    Compressor {
        name: "gzip",
        compress: "gzip -3",
        decompress: "zcat",
    },
    Compressor {
        name: "pigz-fast",
        compress: "pigz -3",
        decompress: "pigz -dc",
    },
    Compressor {
        name: "pigz-slow",
        compress: "pigz -9",
        decompress: "pigz -dc",
    },
    Compressor {
        name: "zstd-fast",
        compress: "zstdmt -3",
        decompress: "zstdmt -dc",
    },
    Compressor {
        name: "zstd-slow",
        compress: "zstdmt -19",
        decompress: "zstdmt -dc",
    },
    Compressor {
        name: "zstd-adapt",
        compress: "zstdmt --adapt",
        decompress: "zstdmt -dc",
    },
    Compressor {
        name: "xz",
        compress: "xz",
        decompress: "xz -d",
    },
    Compressor {
        name: "lzo",
        compress: "lzop",
        decompress: "lzop -dfc",
    },
    Compressor {
        name: "lz4",
        compress: "lz4",
        decompress: "lz4 -dc",
    },
];

pub fn compressor(name: &str) -> Option<&'static Compressor> {
    COMPRESSORS.iter().find(|c| c.name == name)
}

/// zfs3backup's `compressor` values (its objects' metadata), with the
/// program that reads each back: both are gzip streams (`pigz -1` and
/// `pigz -4`). Not `--compress` types: zab reads them, never writes them.
pub const ZFS3BACKUP: &[(&str, &str)] = &[("pigz1", "pigz -dc"), ("pigz4", "pigz -dc")];

/// The program that decompresses a stored object of compressor `name`: a
/// `--compress` type, or one of zfs3backup's (`pigz1`, `pigz4`).
pub fn decompressor(name: &str) -> Option<&'static str> {
    compressor(name)
        .map(|c| c.decompress)
        .or_else(|| ZFS3BACKUP.iter().find(|(n, _)| *n == name).map(|(_, d)| *d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zab_and_zfs3backup_names_decompress() {
        assert_eq!(decompressor("zstd-fast"), Some("zstdmt -dc"));
        assert_eq!(decompressor("pigz1"), Some("pigz -dc"));
        assert_eq!(decompressor("pigz4"), Some("pigz -dc"));
        assert_eq!(decompressor("zstd3"), None);
        // zfs3backup's names are read, not offered to --compress.
        assert!(compressor("pigz1").is_none());
    }
}
