//! Uploads that were never completed: what `zab-store ls` lists and
//! `zab-store clean` removes.
//!
//! - On S3, a multipart upload that was started and neither completed nor
//!   aborted (its process was killed outright). Its parts are kept, and
//!   billed, until it is aborted. `object_store` can abort one but not
//!   list them, so [`crate::Store`] sends S3's ListMultipartUploads itself
//!   (signed by `object_store`'s `AwsAuthorizer`); this module reads the
//!   answer.
//! - In a directory, the staging file `NAME#N` that `object_store`'s
//!   `LocalFileSystem` writes before renaming it to `NAME`.
//!
//! Parsing and choosing are pure functions here; the requests are in
//! [`crate::store`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// An upload never completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// Its key below the store's prefix (a directory: the object's name,
    /// without the `#N` of the staging file).
    pub key: String,
    /// The staging file's name below the directory, or S3's upload id.
    pub id: String,
    /// Bytes written so far (a directory only: S3 says it per part).
    pub bytes: Option<u64>,
    /// When it was started (S3) or last written to (a directory).
    pub modified: DateTime<Utc>,
}

/// Whether file name `name` is a staging file of `LocalFileSystem`
/// (`NAME#N`, N a number), and the object's name if so.
pub fn staged_object(name: &str) -> Option<&str> {
    let (object, n) = name.rsplit_once('#')?;
    (!object.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(object)
}

/// The uploads of `all` that are at least `older_than` old at `now`:
/// those `zab-store clean` removes.
pub fn due(all: Vec<Unfinished>, now: DateTime<Utc>, older_than: Duration) -> Vec<Unfinished> {
    let limit = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    all.into_iter()
        .filter(|u| now.signed_duration_since(u.modified) >= limit)
        .collect()
}

/// One page of S3's ListMultipartUploads answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// (full key, upload id, initiated).
    pub uploads: Vec<(String, String, DateTime<Utc>)>,
    /// Where the next page starts (key marker, upload id marker), when
    /// the answer was truncated.
    pub next: Option<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<UploadXml>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadXml {
    key: String,
    upload_id: String,
    initiated: String,
}

/// Reads the XML of one ListMultipartUploads answer.
pub fn parse_page(xml: &str) -> Result<Page, String> {
    if !xml.contains("<ListMultipartUploadsResult") {
        let shown: String = xml.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown: String = shown.chars().take(120).collect();
        return Err(format!("not a ListMultipartUploads answer: {shown}"));
    }
    let r: ListResult = quick_xml::de::from_str(xml)
        .map_err(|e| format!("unreadable ListMultipartUploads answer: {e}"))?;
    let mut uploads = Vec::with_capacity(r.uploads.len());
    for u in r.uploads {
        let t = DateTime::parse_from_rfc3339(&u.initiated)
            .map_err(|e| format!("upload of {}: Initiated {:?}: {e}", u.key, u.initiated))?;
        uploads.push((u.key, u.upload_id, t.with_timezone(&Utc)));
    }
    let next = match (r.is_truncated, r.next_key_marker, r.next_upload_id_marker) {
        (false, _, _) => None,
        (true, Some(k), Some(u)) if !k.is_empty() => Some((k, u)),
        (true, _, _) => {
            return Err("a truncated ListMultipartUploads answer without its next markers".into())
        }
    };
    Ok(Page { uploads, next })
}

/// `s` encoded for a URL's query string: everything but S3's unreserved
/// characters as %XX (so that a `+` or a space in a key survives).
pub fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bkt</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/tank/b@s2</NextKeyMarker>
  <NextUploadIdMarker>id-2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>p/tank/a&amp;b@s1</Key>
    <UploadId>id-1</UploadId>
    <Initiator><ID>x</ID><DisplayName>y</DisplayName></Initiator>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2026-12-03T10:00:00.000Z</Initiated>
  </Upload>
  <Upload>
    <Key>p/tank/b@s2</Key>
    <UploadId>id-2</UploadId>
    <Initiated>2026-12-03T11:00:00Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>"#;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_truncated_page_with_two_uploads() {
        let p = parse_page(PAGE).unwrap();
        assert_eq!(
            p.uploads,
            vec![
                (
                    "p/tank/a&b@s1".to_string(),
                    "id-1".to_string(),
                    at("2026-12-03T10:00:00Z")
                ),
                (
                    "p/tank/b@s2".to_string(),
                    "id-2".to_string(),
                    at("2026-12-03T11:00:00Z")
                ),
            ]
        );
        assert_eq!(p.next, Some(("p/tank/b@s2".into(), "id-2".into())));
    }

    #[test]
    fn an_empty_last_page_and_bad_answers() {
        let empty = "<ListMultipartUploadsResult><Bucket>b</Bucket>\
            <IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(parse_page(empty).unwrap(), Page::default());
        assert!(parse_page("<Error><Code>AccessDenied</Code></Error>").is_err());
        let bad_date = PAGE.replace("2026-12-03T11:00:00Z", "yesterday");
        assert!(parse_page(&bad_date).unwrap_err().contains("yesterday"));
        let no_marker = PAGE.replace("<NextKeyMarker>p/tank/b@s2</NextKeyMarker>", "");
        assert!(parse_page(&no_marker).is_err());
    }

    #[test]
    fn staging_files_are_name_hash_number() {
        assert_eq!(staged_object("tank@s1#1"), Some("tank@s1"));
        assert_eq!(staged_object("a#b#12"), Some("a#b"));
        for not in ["tank@s1", "tank@s1#", "#3", "tank#x1", "tank#1a"] {
            assert_eq!(staged_object(not), None, "{not}");
        }
    }

    #[test]
    fn only_uploads_old_enough_are_due() {
        let u = |key: &str, t: &str| Unfinished {
            key: key.into(),
            id: key.into(),
            bytes: None,
            modified: at(t),
        };
        let now = at("2026-12-03T12:00:00Z");
        let all = vec![
            u("old", "2026-12-01T12:00:00Z"),
            u("day", "2026-12-02T12:00:00Z"),
            u("new", "2026-12-03T11:59:00Z"),
        ];
        let keys = |v: Vec<Unfinished>| v.into_iter().map(|u| u.key).collect::<Vec<_>>();
        assert_eq!(
            keys(due(all.clone(), now, Duration::from_secs(86400))),
            ["old", "day"]
        );
        assert_eq!(keys(due(all.clone(), now, Duration::ZERO)).len(), 3);
        assert!(due(all, now, Duration::from_secs(u64::MAX)).is_empty());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_encode("p/a b+c@s~1"), "p%2Fa%20b%2Bc%40s~1");
    }
}
