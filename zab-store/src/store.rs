//! A store, opened: S3 through `object_store`'s `AmazonS3` (request signing,
//! retries with backoff, a SHA-256 checksum on every request that the
//! server verifies), or a directory through its `LocalFileSystem` (each
//! object written to a staging file and renamed when complete). Every call
//! is synchronous: the tokio runtime that drives `object_store` is private
//! to [`Store`].
//!
//! [`Store::put`] is a multipart upload: it reads the stream a part at a
//! time (sizes from [`crate::parts`]), keeps `--upload-jobs` parts in
//! flight (memory: about the part size times jobs + 1), hashes the stream
//! (SHA-256), and completes the upload only when the stream ended and the
//! caller says it is whole (its `zfs send` succeeded). On any failure it
//! aborts the upload: an object appears only when complete.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential, Checksum};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector,
};
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, BackoffConfig, ObjectStore, PutMultipartOptions, PutPayload, RetryConfig, UploadPart,
};
use sha2::{Digest, Sha256};

use crate::complete;
use crate::download::{self, Download, Piece, Wanted};
use crate::location::Location;
use crate::parts;
use crate::settings::{self, Settings};
use crate::uploads::{self, Unfinished};

/// What went wrong, in one line (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// The user metadata among `attributes`, names in lower case.
fn user_metadata(attributes: &object_store::Attributes) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(name) => Some((name.to_lowercase(), v.to_string())),
            _ => None,
        })
        .collect()
}

/// One line from an `object_store` error: the S3 error's code and message
/// when the server sent one (`NoSuchBucket: The specified bucket does not
/// exist`), else the whole text.
fn one_line(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{what}: {}", short(&e.to_string())))
}

fn short(text: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + len].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// An object, listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key below the store's prefix.
    pub key: String,
    pub size: u64,
    /// RFC 3339.
    pub modified: String,
}

/// How an upload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes stored.
    pub bytes: u64,
    /// SHA-256 of the stored bytes, in hex.
    pub sha256: String,
    pub parts: u64,
    /// The largest part, in bytes.
    pub part_size: u64,
    /// The complete's answer was lost (it failed after its retries), and
    /// the object found at the key is the one this upload made
    /// ([`crate::complete`]).
    pub recovered: bool,
}

/// What an upload carries besides the bytes.
pub struct Upload<'a> {
    /// The stream's size as estimated now (0: unknown); read before each part.
    pub estimate: &'a (dyn Fn() -> u64 + Sync),
    /// User metadata (`x-amz-meta-*` on S3; a directory keeps none).
    pub metadata: Vec<(String, String)>,
    /// Parts in flight.
    pub jobs: usize,
}

/// An open store.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// S3 only: what listing and aborting unfinished uploads needs.
    s3: Option<S3Side>,
    rt: tokio::runtime::Runtime,
    location: Location,
    storage_class: Option<String>,
    pub upload_jobs: usize,
}

/// The S3 store again, for the calls `ObjectStore` does not have: the
/// store as a [`MultipartStore`] (abort), and the credentials, region,
/// bucket URL and HTTP client to send ListMultipartUploads with (resolved
/// once, with the store's own settings).
struct S3Side {
    store: Arc<AmazonS3>,
    credential: AwsCredential,
    region: String,
    /// `ENDPOINT/BUCKET` (path-style, as object_store addresses it).
    bucket_url: String,
    client: HttpClient,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.location.url())
    }
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Upload {{ metadata: {:?}, jobs: {} }}",
            self.metadata, self.jobs
        )
    }
}

impl Store {
    /// Opens `location` with `settings` and the process's environment. A
    /// directory must exist; a bucket is checked by [`Store::check`].
    pub fn open(location: &Location, settings: &Settings) -> Result<Store, StoreError> {
        let env = |k: &str| std::env::var(k).ok();
        let mut s3 = None;
        let inner: Arc<dyn ObjectStore> = match location {
            Location::Dir { root } => {
                if !root.is_dir() {
                    return Err(StoreError(format!(
                        "{}: no such directory (create it first)",
                        location.url()
                    )));
                }
                Arc::new(
                    LocalFileSystem::new_with_prefix(root)
                        .map_err(|e| one_line(&location.url(), e))?,
                )
            }
            Location::S3 { bucket, .. } => {
                let r = settings::resolve(settings, &env, &settings::Files::read(&env))
                    .map_err(StoreError)?;
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&r.region)
                    .with_access_key_id(&r.credentials.key_id)
                    .with_secret_access_key(&r.credentials.secret)
                    .with_checksum_algorithm(Checksum::SHA256)
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig {
                            init_backoff: Duration::from_millis(200),
                            max_backoff: Duration::from_secs(10),
                            base: 2.0,
                        },
                        max_retries: 8,
                        retry_timeout: Duration::from_secs(120),
                    });
                if let Some(t) = &r.credentials.token {
                    b = b.with_token(t);
                }
                if let Some(e) = &r.endpoint {
                    b = b
                        .with_endpoint(e)
                        .with_allow_http(e.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                let store = Arc::new(b.build().map_err(|e| one_line(&location.url(), e))?);
                let endpoint = r
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", r.region));
                let options = ClientOptions::new().with_allow_http(endpoint.starts_with("http://"));
                let client = ReqwestConnector::default()
                    .connect(&options)
                    .map_err(|e| one_line(&location.url(), e))?;
                s3 = Some(S3Side {
                    store: store.clone(),
                    credential: AwsCredential {
                        key_id: r.credentials.key_id.clone(),
                        secret_key: r.credentials.secret.clone(),
                        token: r.credentials.token.clone(),
                    },
                    region: r.region.clone(),
                    bucket_url: format!("{}/{bucket}", endpoint.trim_end_matches('/')),
                    client,
                });
                store
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StoreError(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Store {
            inner,
            s3,
            rt,
            location: location.clone(),
            storage_class: settings.storage_class.clone(),
            upload_jobs: usize::from(settings.upload_jobs.max(1)),
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The full key of `key` (below the prefix).
    fn path(&self, key: &str) -> Path {
        let prefix = self.location.prefix();
        if prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{prefix}/{key}"))
        }
    }

    /// `key` as a URL, for messages and records.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.location.url())
    }

    /// One request that fails when the bucket is missing or the credentials
    /// are refused; for a directory, with `write`, that it is writable (a
    /// file made and removed; without `write`, nothing is written).
    pub fn check(&self, write: bool) -> Result<(), StoreError> {
        match &self.location {
            Location::Dir { .. } if !write => Ok(()),
            Location::Dir { root } => {
                let probe = root.join(format!(".zab-write-test.{}", std::process::id()));
                std::fs::write(&probe, b"")
                    .and_then(|()| std::fs::remove_file(&probe))
                    .map_err(|e| StoreError(format!("{}: cannot write: {e}", self.location.url())))
            }
            Location::S3 { .. } => {
                let prefix = self.path(crate::location::MANIFESTS);
                self.rt
                    .block_on(self.inner.list_with_delimiter(Some(&prefix)))
                    .map(|_| ())
                    .map_err(|e| one_line(&self.location.url(), e))
            }
        }
    }

    /// A small object (a manifest) whole; None when there is none.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key);
        self.rt.block_on(async {
            match self.inner.get(&path).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| one_line(&self.url_of(key), e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(one_line(&self.url_of(key), e)),
            }
        })
    }

    /// The first `len` bytes of object `key` (all of it when it is
    /// shorter), in one ranged GET.
    pub fn get_head(&self, key: &str, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let path = self.path(key);
        self.rt
            .block_on(self.inner.get_range(&path, 0..len))
            .map(|b| b.to_vec())
            .map_err(|e| one_line(&self.url_of(key), e))
    }

    /// Writes a small object (a manifest) in one request.
    pub fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(key);
        self.rt
            .block_on(self.inner.put(&path, PutPayload::from(data)))
            .map(|_| ())
            .map_err(|e| one_line(&self.url_of(key), e))
    }

    /// Writes object `key` to `out`; the bytes written.
    pub fn get(&self, key: &str, out: &mut dyn Write) -> Result<u64, StoreError> {
        let path = self.path(key);
        let url = self.url_of(key);
        self.rt.block_on(async {
            let r = self.inner.get(&path).await.map_err(|e| one_line(&url, e))?;
            let mut stream = r.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| one_line(&url, e))?;
                out.write_all(&chunk)
                    .map_err(|e| StoreError(format!("writing {url} out: {e}")))?;
                n += chunk.len() as u64;
            }
            out.flush()
                .map_err(|e| StoreError(format!("writing {url} out: {e}")))?;
            Ok(n)
        })
    }

    /// Downloads `objects` (key, size), in order and ahead of the caller
    /// ([`crate::download`]): each is read in ranges of `range` bytes,
    /// `jobs` ranges in flight at once, the next object's while the
    /// current one's last pieces wait for the caller. With one job, each
    /// object is one GET, streamed, in pieces of `range` bytes.
    pub fn download(&self, objects: &[(String, u64)], jobs: usize, range: u64) -> Download {
        let wanted: Vec<Wanted> = objects
            .iter()
            .map(|(key, size)| Wanted::whole(key, *size))
            .collect();
        self.download_at(&wanted, jobs, range)
    }

    /// [`Store::download`], each object from its `from` (a multiple of
    /// `range`, so that the pieces stay where they are in a whole
    /// download), hashed from the midstate there: one GET of `bytes=from-`
    /// with one job (a seek in a directory), else the ranges from there.
    pub fn download_at(&self, objects: &[Wanted], jobs: usize, range: u64) -> Download {
        // The requests hand each piece to the hashing thread, which hands
        // it on to the caller.
        let (hashed, rx) = tokio::sync::mpsc::channel(download::QUEUED.max(1));
        let (tx, to_hash) = tokio::sync::mpsc::channel(1);
        let starts: Vec<(u64, [u32; 8])> = objects.iter().map(|o| (o.from, o.state)).collect();
        std::thread::spawn(move || download::hash(to_hash, &hashed, &starts));
        let inner = Arc::clone(&self.inner);
        let size = usize::try_from(range.max(1)).unwrap_or(usize::MAX);
        let pool = download::Pool::new(size, jobs.max(1) + download::QUEUED + 3);
        if jobs <= 1 {
            let objects: Vec<(Path, String, u64)> = objects
                .iter()
                .map(|o| (self.path(&o.key), self.url_of(&o.key), o.from))
                .collect();
            let task = self.rt.spawn(async move {
                for (object, (path, url, from)) in objects.into_iter().enumerate() {
                    let at = (object, from);
                    let failed = stream_object(&*inner, at, (&path, &url), &pool, &tx).await;
                    if failed {
                        break;
                    }
                }
            });
            return Download { rx, task };
        }
        let requests = self.requests(objects, range);
        let task = self.rt.spawn(async move {
            let mut pieces = futures_util::stream::iter(requests)
                .map(|(object, path, url, r, last)| {
                    let inner = Arc::clone(&inner);
                    let pool = pool.clone();
                    async move {
                        let at = r.start;
                        let bytes = match r.is_empty() {
                            true => Ok(Bytes::new()),
                            false => get_range(&*inner, &path, r, &pool).await,
                        };
                        bytes
                            .map(|bytes| Piece {
                                object,
                                bytes,
                                at,
                                midstate: None,
                                last,
                                sha256: None,
                            })
                            .map_err(|e| one_line(&url, e))
                    }
                })
                .buffered(jobs.max(1));
            while let Some(p) = pieces.next().await {
                let failed = p.is_err();
                if tx.send(p).await.is_err() || failed {
                    break;
                }
            }
        });
        Download { rx, task }
    }

    /// Each object's ranged requests, from its `from`: (object, path,
    /// url, range, whether it is the last).
    fn requests(&self, objects: &[Wanted], range: u64) -> Vec<Request> {
        let mut requests = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            let (path, url) = (self.path(&o.key), self.url_of(&o.key));
            let from = o.from.min(o.size);
            let rs = download::ranges(o.size - from, range);
            let n = rs.len();
            for (j, r) in rs.into_iter().enumerate() {
                let r = r.start + from..r.end + from;
                requests.push((i, path.clone(), url.clone(), r, j + 1 == n));
            }
        }
        requests
    }

    /// The user metadata of object `key` (S3's `x-amz-meta-*`, names in
    /// lower case), by one HEAD request; a directory keeps none.
    /// Object `key`'s user metadata (names in lower case), None when there
    /// is no such object: one HEAD request (a directory's files have none:
    /// an empty list when the file exists).
    pub fn head(&self, key: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let path = self.path(key);
        let opts = object_store::GetOptions {
            head: true,
            ..Default::default()
        };
        match self.rt.block_on(self.inner.get_opts(&path, opts)) {
            Ok(r) => Ok(Some(user_metadata(&r.attributes))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(one_line(&self.url_of(key), e)),
        }
    }

    pub fn metadata(&self, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        if let Location::Dir { .. } = self.location {
            return Ok(Vec::new());
        }
        let path = self.path(key);
        let opts = object_store::GetOptions {
            head: true,
            ..Default::default()
        };
        let r = self
            .rt
            .block_on(self.inner.get_opts(&path, opts))
            .map_err(|e| one_line(&self.url_of(key), e))?;
        Ok(user_metadata(&r.attributes))
    }

    /// Every complete object below `key_prefix` (below the store's prefix).
    pub fn list(&self, key_prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let base = self.location.prefix();
        let path = match (base.is_empty(), key_prefix.is_empty()) {
            (true, true) => None,
            _ => Some(self.path(key_prefix.trim_end_matches('/'))),
        };
        let strip = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/")
        };
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut s = self.inner.list(path.as_ref());
            while let Some(m) = s.next().await {
                let m = m.map_err(|e| one_line(&self.location.url(), e))?;
                let full = m.location.to_string();
                let key = full.strip_prefix(&strip).unwrap_or(&full).to_string();
                out.push(Listed {
                    key,
                    size: m.size,
                    modified: m.last_modified.to_rfc3339(),
                });
            }
            Ok(out)
        })
    }

    /// Uploads `input` as object `key`. After the input ended, `finish`
    /// says whether it is whole; the upload completes only then, and is
    /// aborted on any failure.
    pub fn put(
        &self,
        key: &str,
        input: &mut dyn Read,
        up: &Upload,
        finish: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<Stored, StoreError> {
        if let (Location::S3 { .. }, Some(s3)) = (&self.location, &self.s3) {
            return self.put_s3(s3, key, input, up, finish);
        }
        let path = self.path(key);
        let url = self.url_of(key);
        let mut upload = self
            .rt
            .block_on(
                self.inner
                    .put_multipart_opts(&path, PutMultipartOptions::default()),
            )
            .map_err(|e| one_line(&url, e))?;
        let sent = self
            .send_parts(&mut |p| upload.put_part(p), input, up, &url)
            .and_then(|s| finish().map(|()| s).map_err(StoreError));
        let result = sent.and_then(|s| {
            self.rt
                .block_on(upload.complete())
                .map(|_| s)
                .map_err(|e| one_line(&format!("{url}: completing the upload"), e))
        });
        if result.is_err() {
            let _ = self.rt.block_on(upload.abort());
        }
        result
    }

    /// [`Store::put`] on S3, through `MultipartStore` so that the parts'
    /// ETags are at hand: when the complete fails (after its retries), the
    /// object is accepted if it is there and is the one these parts made
    /// ([`crate::complete`]); else the upload is aborted.
    fn put_s3(
        &self,
        s3: &S3Side,
        key: &str,
        input: &mut dyn Read,
        up: &Upload,
        finish: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<Stored, StoreError> {
        let path = self.path(key);
        let url = self.url_of(key);
        let id = self.create_upload(s3, &path, &up.metadata, &url)?;
        let done: Arc<std::sync::Mutex<Vec<(usize, PartId)>>> = Arc::default();
        let mut next = 0usize;
        let mut put_part = |data: PutPayload| -> UploadPart {
            let (store, path, id, done) = (
                Arc::clone(&s3.store),
                path.clone(),
                id.clone(),
                Arc::clone(&done),
            );
            let idx = next;
            next += 1;
            Box::pin(async move {
                let part = store.put_part(&path, &id, idx, data).await?;
                if let Ok(mut d) = done.lock() {
                    d.push((idx, part));
                }
                Ok(())
            })
        };
        let sent = self
            .send_parts(&mut put_part, input, up, &url)
            .and_then(|s| finish().map(|()| s).map_err(StoreError));
        let what = format!("{url}: completing the upload");
        let result = sent.and_then(|s| {
            let mut parts = done.lock().map(|d| d.clone()).unwrap_or_default();
            parts.sort_by_key(|(i, _)| *i);
            if parts.len() as u64 != s.parts || parts.iter().enumerate().any(|(n, (i, _))| n != *i)
            {
                return Err(StoreError(format!("{what}: a part's answer is missing")));
            }
            let parts: Vec<PartId> = parts.into_iter().map(|(_, p)| p).collect();
            let etags: Vec<String> = parts
                .iter()
                .map(|p| complete::part_etag(&p.content_id))
                .collect();
            let mut completed = self
                .rt
                .block_on(s3.store.complete_multipart(&path, &id, parts))
                .map(|_| ());
            if completed.is_ok() && lose_complete_for_tests() {
                completed = Err(object_store::Error::Generic {
                    store: "S3",
                    source: "the answer was dropped (ZAB_TEST_LOSE_COMPLETE)".into(),
                });
            }
            match completed {
                Ok(()) => Ok(s),
                Err(e) => {
                    let found = self.rt.block_on(self.inner.head(&path)).ok();
                    let found = found.as_ref().map(|m| (m.size, m.e_tag.as_deref()));
                    if complete::made_by_this_upload(s.bytes, &etags, found) {
                        Ok(Stored {
                            recovered: true,
                            ..s
                        })
                    } else {
                        Err(one_line(&what, e))
                    }
                }
            }
        });
        if result.is_err() {
            let _ = self.rt.block_on(s3.store.abort_multipart(&path, &id));
        }
        result
    }

    /// Starts a multipart upload of `path` with `metadata` (and the store's
    /// storage class, and SHA-256 checksums as object_store's requests
    /// carry), by a CreateMultipartUpload of our own, signed as object_store
    /// signs (its `create_multipart` takes no metadata); retried a few
    /// times on a network error or a server error. Its upload id.
    fn create_upload(
        &self,
        s3: &S3Side,
        path: &Path,
        metadata: &[(String, String)],
        url: &str,
    ) -> Result<String, StoreError> {
        let what = format!("{url}: starting the upload");
        let key: Vec<String> = path
            .as_ref()
            .split('/')
            .map(uploads::query_encode)
            .collect();
        let uri = format!("{}/{}?uploads=", s3.bucket_url, key.join("/"));
        let mut headers = vec![("x-amz-checksum-algorithm".to_string(), "SHA256".to_string())];
        if let Some(c) = &self.storage_class {
            headers.push(("x-amz-storage-class".into(), c.clone()));
        }
        for (k, v) in metadata {
            headers.push((format!("x-amz-meta-{k}"), v.clone()));
        }
        let mut tries = 0u32;
        loop {
            tries += 1;
            let mut req = http::Request::builder()
                .method(http::Method::POST)
                .uri(&uri);
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let mut req = req
                .body(HttpRequestBody::empty())
                .map_err(|e| StoreError(format!("{what}: {e}")))?;
            AwsAuthorizer::new(&s3.credential, "s3", &s3.region).authorize(&mut req, None);
            let answer = self.rt.block_on(async {
                let resp = s3
                    .client
                    .execute(req)
                    .await
                    .map_err(|e| (true, e.to_string()))?;
                let status = resp.status();
                let body = resp
                    .into_body()
                    .bytes()
                    .await
                    .map_err(|e| (true, e.to_string()))?;
                let text = String::from_utf8_lossy(&body).into_owned();
                match status.is_success() {
                    true => Ok(text),
                    false => Err((
                        status.is_server_error(),
                        format!("{status}: {}", short(&text)),
                    )),
                }
            });
            match answer {
                Ok(text) => {
                    return complete::upload_id(&text)
                        .map_err(|e| StoreError(format!("{what}: {e}")))
                }
                Err((true, _)) if tries < 4 => {
                    std::thread::sleep(Duration::from_millis(500 << tries));
                }
                Err((_, e)) => return Err(StoreError(format!("{what}: {}", short(&e)))),
            }
        }
    }

    /// Reads and uploads the parts, `up.jobs` in flight.
    fn send_parts(
        &self,
        put_part: &mut dyn FnMut(PutPayload) -> UploadPart,
        input: &mut dyn Read,
        up: &Upload,
        url: &str,
    ) -> Result<Stored, StoreError> {
        let mut inflight = VecDeque::new();
        let mut hasher = Sha256::new();
        let (mut bytes, mut n, mut largest) = (0u64, 0u64, 0u64);
        let wait =
            |h: tokio::task::JoinHandle<object_store::Result<()>>| -> Result<(), StoreError> {
                match self.rt.block_on(h) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(one_line(&format!("{url}: uploading a part"), e)),
                    Err(e) => Err(StoreError(format!("{url}: uploading a part: {e}"))),
                }
            };
        loop {
            let size = parts::part_size((up.estimate)(), n);
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(usize::MAX));
            input
                .take(size)
                .read_to_end(&mut buf)
                .map_err(|e| StoreError(format!("{url}: reading the stream: {e}")))?;
            let last = (buf.len() as u64) < size;
            if buf.is_empty() && n > 0 {
                break;
            }
            hasher.update(&buf);
            bytes += buf.len() as u64;
            largest = largest.max(buf.len() as u64);
            n += 1;
            let part = put_part(PutPayload::from(Bytes::from(buf)));
            inflight.push_back(self.rt.spawn(part));
            while inflight.len() >= up.jobs.max(1) {
                if let Some(h) = inflight.pop_front() {
                    wait(h)?;
                }
            }
            if last {
                break;
            }
        }
        while let Some(h) = inflight.pop_front() {
            wait(h)?;
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Stored {
            bytes,
            sha256,
            parts: n,
            part_size: largest,
            recovered: false,
        })
    }

    /// The uploads never completed below the store's prefix: S3's
    /// multipart uploads (ListMultipartUploads, 1,000 a request), or a
    /// directory's staging files. Sorted by key.
    pub fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        let mut out = match (&self.location, &self.s3) {
            (Location::S3 { .. }, Some(s3)) => self.s3_unfinished(s3)?,
            (Location::Dir { root }, _) => dir_unfinished(root),
            (Location::S3 { .. }, None) => Vec::new(),
        };
        out.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        Ok(out)
    }

    fn s3_unfinished(&self, s3: &S3Side) -> Result<Vec<Unfinished>, StoreError> {
        let what = format!("{}: listing unfinished uploads", self.location.url());
        let base = self.location.prefix();
        let prefix = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/")
        };
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut url = format!(
                "{}?uploads=&prefix={}",
                s3.bucket_url,
                uploads::query_encode(&prefix)
            );
            if let Some((k, u)) = &marker {
                url.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    uploads::query_encode(k),
                    uploads::query_encode(u)
                ));
            }
            let mut req = http::Request::builder()
                .method(http::Method::GET)
                .uri(&url)
                .body(HttpRequestBody::empty())
                .map_err(|e| StoreError(format!("{what}: {e}")))?;
            AwsAuthorizer::new(&s3.credential, "s3", &s3.region).authorize(&mut req, None);
            let text = self.rt.block_on(async {
                let resp = s3
                    .client
                    .execute(req)
                    .await
                    .map_err(|e| one_line(&what, e))?;
                let status = resp.status();
                let body = resp
                    .into_body()
                    .bytes()
                    .await
                    .map_err(|e| one_line(&what, e))?;
                let text = String::from_utf8_lossy(&body).into_owned();
                if status.is_success() {
                    Ok(text)
                } else {
                    Err(StoreError(format!("{what}: {status}: {}", short(&text))))
                }
            })?;
            let page =
                uploads::parse_page(&text).map_err(|e| StoreError(format!("{what}: {e}")))?;
            for (full, id, initiated) in page.uploads {
                let key = full.strip_prefix(&prefix).unwrap_or(&full).to_string();
                out.push(Unfinished {
                    key,
                    id,
                    bytes: None,
                    modified: initiated,
                });
            }
            match page.next {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Removes upload `u`: aborts it (S3) or deletes its staging file.
    pub fn abandon(&self, u: &Unfinished) -> Result<(), StoreError> {
        match (&self.location, &self.s3) {
            (Location::S3 { .. }, Some(s3)) => {
                let path = self.path(&u.key);
                self.rt
                    .block_on(s3.store.abort_multipart(&path, &u.id))
                    .map_err(|e| {
                        one_line(&format!("{}: aborting the upload", self.url_of(&u.key)), e)
                    })
            }
            (Location::Dir { root }, _) => {
                let file = root.join(&u.id);
                std::fs::remove_file(&file)
                    .map_err(|e| StoreError(format!("{}: {e}", file.display())))
            }
            (Location::S3 { .. }, None) => Ok(()),
        }
    }

    /// Deletes object `key`.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        self.rt
            .block_on(self.inner.delete(&path))
            .map_err(|e| one_line(&self.url_of(key), e))
    }
}

/// One ranged request of [`Store::download_at`].
type Request = (usize, Path, String, std::ops::Range<u64>, bool);

/// One object in one GET (from byte `from`: `Range: bytes=from-`),
/// streamed and cut into pieces of the pool's size (`--download-jobs 1`);
/// whether the download must stop (an error, sent, or the reader gone).
async fn stream_object(
    inner: &dyn ObjectStore,
    (object, from): (usize, u64),
    (path, url): (&Path, &str),
    pool: &download::Pool,
    tx: &tokio::sync::mpsc::Sender<Result<Piece, StoreError>>,
) -> bool {
    let opts = object_store::GetOptions {
        range: (from > 0).then_some(object_store::GetRange::Offset(from)),
        ..Default::default()
    };
    let mut stream = match inner.get_opts(path, opts).await {
        Ok(r) => r.into_stream(),
        Err(e) => {
            let _ = tx.send(Err(one_line(url, e))).await;
            return true;
        }
    };
    // Each piece is a buffer of the pool filled to its size: a piece
    // written and dropped by the caller comes back to be filled again.
    let mut buf = pool.take();
    let size = buf.capacity();
    let mut at = from;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(one_line(url, e))).await;
                return true;
            }
        };
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let n = (size - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if buf.len() == size {
                let full = std::mem::replace(&mut buf, pool.take());
                let piece = Piece {
                    object,
                    bytes: pool.freeze(full),
                    at,
                    midstate: None,
                    last: false,
                    sha256: None,
                };
                at += size as u64;
                if tx.send(Ok(piece)).await.is_err() {
                    return true;
                }
            }
        }
    }
    let piece = Piece {
        object,
        bytes: pool.freeze(buf),
        at,
        midstate: None,
        last: true,
        sha256: None,
    };
    tx.send(Ok(piece)).await.is_err()
}

/// Bytes `r` of `path` (not empty), in one GET, read into a buffer of the
/// pool; the server must send exactly those.
async fn get_range(
    inner: &dyn ObjectStore,
    path: &Path,
    r: std::ops::Range<u64>,
    pool: &download::Pool,
) -> object_store::Result<Bytes> {
    let want = r.end - r.start;
    let opts = object_store::GetOptions {
        range: Some(r.into()),
        ..Default::default()
    };
    let mut stream = inner.get_opts(path, opts).await?.into_stream();
    let mut buf = pool.take();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    if buf.len() as u64 != want {
        return Err(object_store::Error::Generic {
            store: "range",
            source: format!("{} bytes came for a range of {want}", buf.len()).into(),
        });
    }
    Ok(pool.freeze(buf))
}

/// The test hook of docs/store.md: with `ZAB_TEST_LOSE_COMPLETE=1` in a
/// debug build (the tests' binaries), the answer of a complete that
/// succeeded is replaced by an error, as when the server answered after
/// the client's timeout and the retries failed (the server itself, moto
/// as S3, answers a repeated complete of a completed upload with success,
/// so it cannot be made to refuse one); a release build never reads the
/// variable.
fn lose_complete_for_tests() -> bool {
    cfg!(debug_assertions) && std::env::var_os("ZAB_TEST_LOSE_COMPLETE").is_some_and(|v| v == "1")
}

/// A directory's staging files (`NAME#N`), walked from `root`.
fn dir_unfinished(root: &std::path::Path) -> Vec<Unfinished> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                dirs.push(p);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let (Some(object), Ok(rel)) = (uploads::staged_object(&name), p.strip_prefix(root))
            else {
                continue;
            };
            let id = rel.to_string_lossy().into_owned();
            let key = match rel.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => format!("{}/{object}", dir.display()),
                _ => object.to_string(),
            };
            let modified = md
                .modified()
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_else(|_| chrono::Utc::now());
            out.push(Unfinished {
                key,
                id,
                bytes: Some(md.len()),
                modified,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_errors_in_one_short_line() {
        let text = "Generic S3 error: Error performing GET http://127.0.0.1:9710/nobkt in 64ms - \
            Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n<Error>\
            <Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(
            short(text),
            "NoSuchBucket: The specified bucket does not exist"
        );
        assert_eq!(
            short("connection\nrefused  here"),
            "connection refused here"
        );
    }
}
