//! zab-store's command line.

use clap::{Parser, Subcommand};
use zab_core::cli::after_help;

use zab_store::Settings;

const EXAMPLES: &str = "  \
  # The chains of every dataset backed up to a bucket, as a table:
  zab-store ls --human s3://backups/host1

  # The same for a directory (a NAS mount, a USB disk), as NDJSON:
  zab-store ls file:///mnt/usb/zab | jq -c 'select(.status != \"healthy\")'

  # Read every object back and check its hash and its chain's guids (exit 1
  # when a dataset is broken or corrupt), or a tenth of them each night:
  zab-store check s3://backups/host1
  zab-store check --sample 10% s3://backups/host1 tank/data

  # Upload a stream as one object (multipart), and read it back:
  zfs send -w tank/data@s1 | zab-store put s3://backups/manual/tank/data@s1
  zab-store get s3://backups/manual/tank/data@s1 | zfs recv -u pool/restore

  # Uploads never completed (a process killed outright) for a week or more:
  # list them, then abort them (S3) or delete their staging files:
  zab-store clean --test --older-than 1w s3://backups/host1
  zab-store clean --older-than 1w s3://backups/host1

  # A MinIO server, with the keys of a profile:
  zab-store --endpoint http://minio.lan:9000 --aws-profile minio ls s3://zab
";

/// Backups in object storage (S3 or a compatible server) or in a plain
/// directory, as zab-send writes them (or zfs3backup: its objects are read
/// from their metadata): list each dataset's chain and its health, check
/// the objects, and move single objects in and out for other scripts.
///
/// A store is s3://BUCKET[/PREFIX] or file:///DIR. zab-send writes one
/// object per transfer stream, PREFIX/pool/fs@snapshot, and one manifest per
/// dataset, PREFIX/.zab/pool/fs.json (/usr/share/doc/zab/store.md). Credentials come from
/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or from a
/// profile of ~/.aws/credentials and ~/.aws/config; no secret is ever
/// printed.
#[derive(Parser, Debug)]
#[command(name = "zab-store", version, after_long_help = after_help(EXAMPLES))]
pub struct Args {
    /// ls, check, put, get or clean (optional for clap only, so that --man works
    /// alone).
    #[command(subcommand)]
    pub command: Option<Cmd>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Per dataset, its chain in the store (full, then incrementals) with
    /// sizes and dates, marked healthy or broken with why (an object
    /// missing or incomplete, a missing parent, a guid mismatch); then the
    /// uploads that were never completed: S3's multipart uploads, a
    /// directory's staging files (NAME#N). NDJSON, one record per dataset
    /// and per unfinished upload.
    Ls {
        /// The store: s3://BUCKET[/PREFIX] or file:///DIR.
        url: String,
        /// A table for people instead of NDJSON.
        #[arg(long)]
        human: bool,
    },
    /// Reads objects back and checks them, per dataset: each object's size
    /// and SHA-256 against the manifest (an object read from zfs3backup's
    /// metadata has no hash: its size, and its stream's header and END
    /// record), the guids of each stream stored as sent against the
    /// manifest, and each chain's guids end to end (every incremental's
    /// parent is carried by an earlier object with that guid; a full
    /// stream has none). One record per dataset ("status": healthy,
    /// broken or corrupt) and the end record; exit 1 when a dataset is
    /// broken or corrupt, for a cron job that watches a bucket.
    Check {
        /// The store: s3://BUCKET[/PREFIX] or file:///DIR.
        url: String,
        /// Only this dataset (as named in the store).
        dataset: Option<String>,
        /// Read only this share of each dataset's objects, drawn at random
        /// each run (e.g. 10%: successive runs cover the store); the chain
        /// and its guids are checked whole all the same.
        #[arg(long, value_name = "PERCENT", value_parser = zab_store::check::parse_percent)]
        sample: Option<f64>,
    },
    /// Uploads stdin as one object (multipart: parts in flight, each
    /// retried; the upload is aborted on any failure, so the object
    /// appears only when whole). Prints one record: bytes, SHA-256, parts.
    Put {
        /// The object: s3://BUCKET/KEY or file:///DIR/NAME.
        url: String,
        /// The stream's expected size, for the part size (e.g. 20G).
        #[arg(long, value_name = "BYTES", value_parser = zab_core::cli::parse_bytes, default_value = "0")]
        size: u64,
    },
    /// Writes one object to stdout.
    Get {
        /// The object: s3://BUCKET/KEY or file:///DIR/NAME.
        url: String,
    },
    /// Removes the uploads never completed (left by a process killed
    /// outright) that are at least --older-than old: aborts S3's multipart
    /// uploads (their parts are kept, and billed, until then), deletes a
    /// directory's staging files (NAME#N). One record per upload removed.
    /// Objects are never touched.
    Clean {
        /// The store: s3://BUCKET[/PREFIX] or file:///DIR.
        url: String,
        /// Only uploads started (S3) or last written to (a directory) at
        /// least this long ago (s, min, h, d, w, m = 30 days, y). A running
        /// upload is younger than that, unless the age is very short.
        #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = zab_core::duration::parse)]
        older_than: std::time::Duration,
        /// Only list what would be removed ("done":false); change nothing.
        #[arg(long)]
        test: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    /// docs/man/zab-store.1 is what `zab-store --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(&Args::command(), include_str!("../../docs/man/zab-store.1"));
    }
}
