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
