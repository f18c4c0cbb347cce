//! Completing an S3 multipart upload when the answer got lost. A server
//! under load may carry out a CompleteMultipartUpload but answer it after
//! the client gave up (its 30 s timeout); the retries then find no upload
//! (it is an object now) and fail. The object is there, whole, yet the
//! upload would be reported failed.
//!
//! So when the complete fails, [`crate::Store`] reads the key's size and
//! ETag (one HEAD) and accepts the object only if it is the one this
//! upload made ([`made_by_this_upload`]): the size the stream had, and the
//! ETag S3 gives a multipart object, `"<MD5 of the concatenated binary
//! MD5s of the parts>-<part count>"` ([`multipart_etag`]), computed from
//! the ETags the server returned for our parts. Anything else (no object,
//! another size, another ETag, a part ETag that is not an MD5, as with
//! SSE-KMS) stays a failure.
//!
//! Also here: the UploadId of a CreateMultipartUpload answer
//! ([`upload_id`]), since zab sends that request itself (object_store's
//! `MultipartStore::create_multipart` takes no metadata). All pure.

use md5::{Digest, Md5};
use serde::Deserialize;

/// A part's ETag from `object_store`'s part id: the id is the ETag
/// itself, or (with SHA-256 checksums, as zab uploads) a small XML
/// document with the ETag and the part's checksum.
pub fn part_etag(content_id: &str) -> String {
    #[derive(Deserialize)]
    struct PartMetadata {
        e_tag: String,
    }
    if content_id.trim_start().starts_with('<') {
        if let Ok(m) = quick_xml::de::from_str::<PartMetadata>(content_id) {
            return m.e_tag;
        }
    }
    content_id.to_string()
}

/// The ETag S3 gives the object completed from parts with ETags `parts`
/// (in part order), without quotes: the MD5 of their binary MD5s, `-`,
/// their count. None when a part's ETag is not an MD5 (32 hex digits), or
/// there are no parts.
pub fn multipart_etag(parts: &[String]) -> Option<String> {
    if parts.is_empty() {
        return None;
    }
    let mut md5 = Md5::new();
    for p in parts {
        let hex = unquote(p);
        if hex.len() != 32 {
            return None;
        }
        let mut bin = [0u8; 16];
        for (i, b) in bin.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        md5.update(bin);
    }
    let sum: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{sum}-{}", parts.len()))
}

/// An ETag without its quotes (and W/ of a weak one), in lower case.
fn unquote(etag: &str) -> String {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"').to_ascii_lowercase()
}

/// Whether the object at the key, as a HEAD saw it (`found`: size and
/// ETag, None when there is none), is the one an upload of `size` bytes
/// in parts with ETags `parts` made.
pub fn made_by_this_upload(
    size: u64,
    parts: &[String],
    found: Option<(u64, Option<&str>)>,
) -> bool {
    let Some(expected) = multipart_etag(parts) else {
        return false;
    };
    match found {
        Some((found_size, Some(etag))) => found_size == size && unquote(etag) == expected,
        _ => false,
    }
}

/// The UploadId of a CreateMultipartUpload answer.
pub fn upload_id(xml: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Initiated {
        upload_id: String,
    }
    if !xml.contains("<InitiateMultipartUploadResult") {
        let shown: String = xml.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown: String = shown.chars().take(120).collect();
        return Err(format!("not a CreateMultipartUpload answer: {shown}"));
    }
    match quick_xml::de::from_str::<Initiated>(xml) {
        Ok(i) if !i.upload_id.is_empty() => Ok(i.upload_id),
        Ok(_) => Err("a CreateMultipartUpload answer with an empty UploadId".into()),
        Err(e) => Err(format!("unreadable CreateMultipartUpload answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_hex(data: &[u8]) -> String {
        Md5::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    // The values were computed apart, with Python's hashlib:
    // md5(md5(b"hello").digest() + md5(b"world").digest()).hexdigest() + "-2".
    const HELLO: &str = "5d41402abc4b2a76b9719d911017c592";
    const WORLD: &str = "7d793037a0760186574b0282f2f435e7";

    #[test]
    fn the_etag_of_a_multipart_object() {
        assert_eq!(md5_hex(b"hello"), HELLO);
        let quoted = |h: &str| format!("\"{h}\"");
        assert_eq!(
            multipart_etag(&[quoted(HELLO), quoted(WORLD)]).as_deref(),
            Some("065947336a2f2a95ba8899f3675c3be6-2")
        );
        // One part: still the MD5 of its MD5, and "-1" (not the part's ETag).
        assert_eq!(
            multipart_etag(&[HELLO.to_uppercase()]).as_deref(),
            Some("62109206880d38a4010a98e11243924a-1")
        );
        assert_eq!(multipart_etag(&[]), None);
        // Not an MD5 (SSE-KMS, or a server's own scheme): no expected ETag.
        assert_eq!(multipart_etag(&["\"abc\"".into()]), None);
        assert_eq!(multipart_etag(&[format!("{}zz", &HELLO[..30])]), None);
        assert_eq!(multipart_etag(&[format!("{HELLO}-1")]), None);
    }

    #[test]
    fn a_part_etag_from_object_stores_part_id() {
        let xml = "<PartMetadata><e_tag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</e_tag>\
            <checksum_sha256>LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=</checksum_sha256>\
            </PartMetadata>";
        assert_eq!(part_etag(xml), format!("\"{HELLO}\""));
        assert_eq!(part_etag("\"abc\""), "\"abc\"");
    }

    #[test]
    fn only_the_object_this_upload_made_is_accepted() {
        let parts = [format!("\"{HELLO}\""), format!("\"{WORLD}\"")];
        let etag = "\"065947336a2f2a95ba8899f3675c3be6-2\"";
        assert!(made_by_this_upload(10, &parts, Some((10, Some(etag)))));
        assert!(made_by_this_upload(
            10,
            &parts,
            Some((10, Some("065947336A2F2A95BA8899F3675C3BE6-2")))
        ));
        // No object, another size, no ETag, another ETag.
        assert!(!made_by_this_upload(10, &parts, None));
        assert!(!made_by_this_upload(10, &parts, Some((11, Some(etag)))));
        assert!(!made_by_this_upload(10, &parts, Some((10, None))));
        let other = "\"065947336a2f2a95ba8899f3675c3be6-3\"";
        assert!(!made_by_this_upload(10, &parts, Some((10, Some(other)))));
        let swapped = [parts[1].clone(), parts[0].clone()];
        assert!(!made_by_this_upload(10, &swapped, Some((10, Some(etag)))));
        // A single PUT of the same bytes has the plain MD5 as its ETag.
        assert!(!made_by_this_upload(10, &parts, Some((10, Some(HELLO)))));
        // Parts whose ETags are not MD5s: never accepted.
        let kms = ["\"x\"".to_string()];
        assert!(!made_by_this_upload(10, &kms, Some((10, Some("\"x\"")))));
    }

    #[test]
    fn the_upload_id_of_a_create_answer() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bkt</Bucket><Key>p/tank@s1</Key><UploadId>VXBsb2FkIElE&amp;x</UploadId>
</InitiateMultipartUploadResult>"#;
        assert_eq!(upload_id(xml).unwrap(), "VXBsb2FkIElE&x");
        let e = upload_id("<Error><Code>AccessDenied</Code></Error>").unwrap_err();
        assert!(e.contains("AccessDenied"), "{e}");
        let empty = "<InitiateMultipartUploadResult><UploadId></UploadId>\
            </InitiateMultipartUploadResult>";
        assert!(upload_id(empty).is_err());
    }
}
