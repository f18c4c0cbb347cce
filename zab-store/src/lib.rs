//! zab-store's library: backups kept as objects, in S3 (or any
//! S3-compatible server) or in a plain directory, behind one synchronous
//! API. zab-send uploads its streams through it; the `zab-store` tool
//! lists, checks and moves objects with it.
//!
//! - [`location`]: `s3://bucket/prefix` and `file:///dir`, parsed;
//! - [`settings`]: credentials, profile, endpoint and region, resolved as
//!   the AWS tools do (secrets never printed);
//! - [`store`]: put (multipart, N parts in flight, abort on any failure),
//!   get, list; the async runtime (tokio, for `object_store`) lives here
//!   and nowhere else;
//! - [`complete`]: an upload's ETag, to accept an object whose
//!   CompleteMultipartUpload answer was lost (pure);
//! - [`download`]: zab-restore's reads, in ranges, several at once and
//!   ahead of the receive, with bounded memory;
//! - [`parts`]: the part size, a pure function of the estimate;
//! - [`manifest`]: one small manifest per dataset, and the health of each
//!   chain (docs/store.md);
//! - [`zfs3backup`]: objects no manifest lists (a zfs3backup bucket), read
//!   from their metadata into the same chain view;
//! - [`check`]: `zab-store check`'s reading of objects (hash, stream
//!   header and END record) and its sample;
//! - [`uploads`]: uploads never completed (S3's multipart uploads, a
//!   directory's staging files), listed and removed by `zab-store`;
//! - [`chain`]: which object each incremental continues, and what a
//!   snapshot needs to be restored (pure);
//! - [`datasets`]: every dataset's manifest and objects in one read, and
//!   manifests written back or deleted (zab-thin's retention).

pub mod chain;
pub mod check;
pub mod complete;
pub mod datasets;
pub mod download;
pub mod location;
pub mod manifest;
pub mod parts;
pub mod settings;
pub mod sha;
pub mod store;
pub mod uploads;
pub mod zfs3backup;

pub use location::Location;
pub use settings::Settings;
pub use store::{Store, StoreError};
