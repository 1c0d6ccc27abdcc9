//! S3 XML bodies: response writers and request readers ([`read`], re-exported here);
//! timestamps are formatted by [`crate::timestamp`].
//!
//! Writer contract:
//! - Every response document is `<?xml version="1.0" encoding="UTF-8"?>\n` followed by one root
//!   element carrying `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"`, with no whitespace
//!   between elements. Element order follows AWS's documented examples.
//! - Every text node goes through [`escape_text`]: `& < > " '` become the five predefined
//!   entities (so an ETag is written `&quot;…&quot;`, as AWS does), and characters XML 1.0
//!   cannot carry literally become hexadecimal character references, as AWS does: C0 controls
//!   other than tab and line feed (carriage return included, because a parser would
//!   normalise a literal CR to LF), U+FFFE and U+FFFF. All other characters, non-ASCII
//!   included, are written as UTF-8. Control-character references are not well-formed
//!   XML 1.0; clients that cannot read them should use `encoding-type=url`.
//! - ETags are passed bare (`9b2c…`, `…-3` for multipart) and written quoted.
//! - Timestamps are epoch milliseconds, written as `2026-11-25T17:13:11.000Z`.
//! - Writers are infallible and never panic.
//!
//! quick-xml parses requests (see [`read`]); the writers build strings directly instead of
//! using `quick_xml::Writer`, because its escaping leaves control characters raw and the
//! output has to match AWS byte for byte.

use std::borrow::Cow;
use std::fmt::{Display, Write as _};

pub mod read;

pub use read::{
    parse_complete_multipart_upload, parse_create_bucket_configuration, parse_delete,
    parse_tagging, CompletedPart, DeleteRequest, ObjectIdentifier, XmlError,
    MAX_COMPLETE_MULTIPART_BODY, MAX_DELETE_OBJECTS, MAX_PARTS, MAX_XML_BODY,
};

/// The S3 namespace on every response root.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// First line of every XML document we write.
pub const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
/// The only storage class this gateway has.
pub const STORAGE_CLASS: &str = "STANDARD";

/// Escapes `s` for an XML text node (see the module doc for the exact rules).
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_xml_unsafe(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "&#x{:X};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '"' | '\'') || is_xml_unsafe(c)
}

/// Characters that cannot appear literally in XML 1.0 text and survive parsing unchanged.
fn is_xml_unsafe(c: char) -> bool {
    (c < ' ' && c != '\t' && c != '\n') || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Percent-encodes `s` as S3 does for `encoding-type=url`: every UTF-8 byte outside
/// `A-Z a-z 0-9 - . _ ~ /` becomes `%XX` (uppercase hex), so a space is `%20` and `+` is `%2B`.
/// Matches real S3 as pinned by ceph/s3-tests `test_bucket_list_encoding_basic`
/// (`quux ab/` → `quux%20ab/`, `asdf+b` → `asdf%2Bb`).
pub fn s3_url_encode(s: &str) -> Cow<'_, str> {
    fn keep(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
    }
    if s.bytes().all(keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// Appends elements to a response document.
struct Doc(String);

impl Doc {
    fn new(root: &str) -> Doc {
        let mut out = String::with_capacity(1024);
        out.push_str(XML_DECLARATION);
        let _ = write!(out, "<{root} xmlns=\"{S3_XMLNS}\">");
        Doc(out)
    }

    fn open(&mut self, tag: &str) {
        let _ = write!(self.0, "<{tag}>");
    }

    fn close(&mut self, tag: &str) {
        let _ = write!(self.0, "</{tag}>");
    }

    fn text(&mut self, tag: &str, value: &str) {
        let _ = write!(self.0, "<{tag}>{}</{tag}>", escape_text(value));
    }

    fn opt_text(&mut self, tag: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.text(tag, v);
        }
    }

    /// A text node that `encoding-type=url` percent-encodes.
    fn encoded(&mut self, tag: &str, value: &str, url: bool) {
        if url {
            self.text(tag, &s3_url_encode(value));
        } else {
            self.text(tag, value);
        }
    }

    /// Numbers and booleans: their `Display` never needs escaping.
    fn value(&mut self, tag: &str, value: impl Display) {
        let _ = write!(self.0, "<{tag}>{value}</{tag}>");
    }

    fn etag(&mut self, etag: &str) {
        self.text("ETag", &format!("\"{etag}\""));
    }

    fn time(&mut self, tag: &str, epoch_millis: i64) {
        self.text(tag, &crate::timestamp::format_iso8601_millis(epoch_millis));
    }

    fn owner(&mut self, tag: &str, owner: &Owner) {
        self.open(tag);
        self.text("ID", &owner.id);
        self.text("DisplayName", &owner.display_name);
        self.close(tag);
    }

    fn common_prefixes(&mut self, prefixes: &[String], url: bool) {
        for p in prefixes {
            self.open("CommonPrefixes");
            self.encoded("Prefix", p, url);
            self.close("CommonPrefixes");
        }
    }

    fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.0
    }
}

/// A document whose root element is empty: `<Root xmlns="…"/>`.
fn empty_document(root: &str) -> String {
    format!("{XML_DECLARATION}<{root} xmlns=\"{S3_XMLNS}\"/>")
}

/// Bucket or object owner (`Owner`, and `Initiator` in multipart listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

/// One bucket of ListBuckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    pub creation_date_ms: i64,
}

/// `ListAllMyBucketsResult` (ListBuckets): `next` is the ContinuationToken of a truncated
/// page, `prefix` the prefix asked for (echoed).
pub fn list_all_my_buckets(
    owner: &Owner,
    buckets: &[BucketEntry],
    next: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let mut d = Doc::new("ListAllMyBucketsResult");
    d.owner("Owner", owner);
    d.open("Buckets");
    for b in buckets {
        d.open("Bucket");
        d.text("Name", &b.name);
        d.time("CreationDate", b.creation_date_ms);
        d.close("Bucket");
    }
    d.close("Buckets");
    if let Some(t) = next {
        d.text("ContinuationToken", t);
    }
    if let Some(p) = prefix {
        d.text("Prefix", p);
    }
    d.finish("ListAllMyBucketsResult")
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    pub last_modified_ms: i64,
    /// Bare, unquoted.
    pub etag: String,
    pub size: u64,
}

fn contents(d: &mut Doc, objects: &[ObjectEntry], owner: Option<&Owner>, url: bool) {
    for o in objects {
        d.open("Contents");
        d.encoded("Key", &o.key, url);
        d.time("LastModified", o.last_modified_ms);
        d.etag(&o.etag);
        d.value("Size", o.size);
        d.text("StorageClass", STORAGE_CLASS);
        if let Some(owner) = owner {
            d.owner("Owner", owner);
        }
        d.close("Contents");
    }
}

/// ListObjects (v1) response. The request parameters are echoed as received (decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjectsV1 {
    pub bucket: String,
    pub prefix: String,
    pub marker: String,
    /// Written only when the listing is truncated and a delimiter was given: AWS documents
    /// that without a delimiter the client continues from the last `Key` instead.
    pub next_marker: Option<String>,
    pub max_keys: u32,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    /// `encoding-type=url` was requested.
    pub url_encoding: bool,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
    /// Written in every `Contents` when `Some` (v1 always shows the owner on AWS).
    pub owner: Option<Owner>,
}

/// `ListBucketResult` for ListObjects v1. With `url_encoding`, these are percent-encoded:
/// `Prefix`, `Marker`, `NextMarker`, `Delimiter`, `Contents/Key`, `CommonPrefixes/Prefix`.
pub fn list_objects_v1(r: &ListObjectsV1) -> String {
    let url = r.url_encoding;
    let mut d = Doc::new("ListBucketResult");
    d.text("Name", &r.bucket);
    d.encoded("Prefix", &r.prefix, url);
    d.encoded("Marker", &r.marker, url);
    if let (true, Some(_), Some(next)) = (r.is_truncated, &r.delimiter, &r.next_marker) {
        d.encoded("NextMarker", next, url);
    }
    d.value("MaxKeys", r.max_keys);
    if let Some(delim) = &r.delimiter {
        d.encoded("Delimiter", delim, url);
    }
    d.value("IsTruncated", r.is_truncated);
    if url {
        d.text("EncodingType", "url");
    }
    contents(&mut d, &r.contents, r.owner.as_ref(), url);
    d.common_prefixes(&r.common_prefixes, url);
    d.finish("ListBucketResult")
}

/// ListObjectsV2 response. `KeyCount` is computed as contents + common prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjectsV2 {
    pub bucket: String,
    pub prefix: String,
    pub max_keys: u32,
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    pub continuation_token: Option<String>,
    pub next_continuation_token: Option<String>,
    pub start_after: Option<String>,
    pub url_encoding: bool,
    pub contents: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
    /// `Some` only when the request had `fetch-owner=true`.
    pub owner: Option<Owner>,
}

/// `ListBucketResult` for ListObjectsV2. With `url_encoding`, these are percent-encoded:
/// `Prefix`, `Delimiter`, `StartAfter`, `Contents/Key`, `CommonPrefixes/Prefix`; the
/// continuation tokens are opaque and written as given.
pub fn list_objects_v2(r: &ListObjectsV2) -> String {
    let url = r.url_encoding;
    let mut d = Doc::new("ListBucketResult");
    d.text("Name", &r.bucket);
    d.encoded("Prefix", &r.prefix, url);
    d.value("KeyCount", r.contents.len() + r.common_prefixes.len());
    d.value("MaxKeys", r.max_keys);
    if let Some(delim) = &r.delimiter {
        d.encoded("Delimiter", delim, url);
    }
    d.value("IsTruncated", r.is_truncated);
    d.opt_text("ContinuationToken", r.continuation_token.as_deref());
    d.opt_text(
        "NextContinuationToken",
        r.next_continuation_token.as_deref(),
    );
    if let Some(start_after) = &r.start_after {
        d.encoded("StartAfter", start_after, url);
    }
    if url {
        d.text("EncodingType", "url");
    }
    contents(&mut d, &r.contents, r.owner.as_ref(), url);
    d.common_prefixes(&r.common_prefixes, url);
    d.finish("ListBucketResult")
}

/// GetBucketLocation. AWS answers an empty `LocationConstraint` for us-east-1 (its legacy
/// "US Standard" region), so `""` and `"us-east-1"` both give the empty element.
pub fn location_constraint(region: &str) -> String {
    if region.is_empty() || region == "us-east-1" {
        return empty_document("LocationConstraint");
    }
    let mut d = Doc::new("LocationConstraint");
    d.0.push_str(&escape_text(region));
    d.finish("LocationConstraint")
}

/// An object DeleteObjects removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedObject {
    pub key: String,
    pub version_id: Option<String>,
    /// A delete marker was created or removed (versioned buckets).
    pub delete_marker: bool,
    pub delete_marker_version_id: Option<String>,
}

/// An object DeleteObjects failed to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteError {
    pub key: String,
    pub version_id: Option<String>,
    /// The S3 error code (`AccessDenied`...).
    pub code: &'static str,
    pub message: String,
}

/// `DeleteResult`: every `Deleted` (omitted in quiet mode), then every `Error`.
pub fn delete_result(deleted: &[DeletedObject], errors: &[DeleteError], quiet: bool) -> String {
    let mut d = Doc::new("DeleteResult");
    if !quiet {
        for o in deleted {
            d.open("Deleted");
            d.text("Key", &o.key);
            d.opt_text("VersionId", o.version_id.as_deref());
            if o.delete_marker {
                d.value("DeleteMarker", true);
            }
            d.opt_text(
                "DeleteMarkerVersionId",
                o.delete_marker_version_id.as_deref(),
            );
            d.close("Deleted");
        }
    }
    for e in errors {
        d.open("Error");
        d.text("Key", &e.key);
        d.opt_text("VersionId", e.version_id.as_deref());
        d.text("Code", e.code);
        d.text("Message", &e.message);
        d.close("Error");
    }
    d.finish("DeleteResult")
}

/// `CopyObjectResult` (CopyObject). `etag` bare.
pub fn copy_object_result(etag: &str, last_modified_ms: i64) -> String {
    copy_result("CopyObjectResult", etag, last_modified_ms, None)
}

/// `CopyPartResult` (UploadPartCopy). `etag` bare.
pub fn copy_part_result(etag: &str, last_modified_ms: i64) -> String {
    copy_result("CopyPartResult", etag, last_modified_ms, None)
}

/// `CopyPartResult` with the part's checksum (`CRC32`-style algorithm name, base64 value).
pub fn copy_part_result_with_checksum(
    etag: &str,
    last_modified_ms: i64,
    checksum: Option<(&str, &str)>,
) -> String {
    copy_result("CopyPartResult", etag, last_modified_ms, checksum)
}

fn copy_result(
    root: &str,
    etag: &str,
    last_modified_ms: i64,
    checksum: Option<(&str, &str)>,
) -> String {
    let mut d = Doc::new(root);
    d.time("LastModified", last_modified_ms);
    d.etag(etag);
    if let Some((algorithm, value)) = checksum {
        d.text(&format!("Checksum{algorithm}"), value);
    }
    d.finish(root)
}

/// A tag of an object or bucket tag set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// `Tagging` (GetObjectTagging, GetBucketTagging).
pub fn tagging(tags: &[Tag]) -> String {
    let mut d = Doc::new("Tagging");
    d.open("TagSet");
    for t in tags {
        d.open("Tag");
        d.text("Key", &t.key);
        d.text("Value", &t.value);
        d.close("Tag");
    }
    d.close("TagSet");
    d.finish("Tagging")
}

/// `VersioningConfiguration` (GetBucketVersioning): empty for a bucket that never had
/// versioning, else `<Status>Enabled|Suspended</Status>`.
pub fn versioning_configuration(status: Option<&str>) -> String {
    match status {
        None => empty_document("VersioningConfiguration"),
        Some(status) => {
            let mut d = Doc::new("VersioningConfiguration");
            d.text("Status", status);
            d.finish("VersioningConfiguration")
        }
    }
}

/// `InitiateMultipartUploadResult` (CreateMultipartUpload).
pub fn initiate_multipart_upload_result(bucket: &str, key: &str, upload_id: &str) -> String {
    let mut d = Doc::new("InitiateMultipartUploadResult");
    d.text("Bucket", bucket);
    d.text("Key", key);
    d.text("UploadId", upload_id);
    d.finish("InitiateMultipartUploadResult")
}

/// `CompleteMultipartUploadResult`. `location` is the object's URL; `etag` bare.
pub fn complete_multipart_upload_result(
    location: &str,
    bucket: &str,
    key: &str,
    etag: &str,
) -> String {
    complete_multipart_upload_result_with_checksum(location, bucket, key, etag, None)
}

/// As [`complete_multipart_upload_result`], with the object's checksum:
/// (`CRC32`-style algorithm name, value, `COMPOSITE`/`FULL_OBJECT`).
pub fn complete_multipart_upload_result_with_checksum(
    location: &str,
    bucket: &str,
    key: &str,
    etag: &str,
    checksum: Option<(&str, &str, &str)>,
) -> String {
    let mut d = Doc::new("CompleteMultipartUploadResult");
    d.text("Location", location);
    d.text("Bucket", bucket);
    d.text("Key", key);
    d.etag(etag);
    if let Some((algorithm, value, kind)) = checksum {
        d.text(&format!("Checksum{algorithm}"), value);
        d.text("ChecksumType", kind);
    }
    d.finish("CompleteMultipartUploadResult")
}

/// What GetObjectAttributes returns; `None` for an attribute not asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttributes<'a> {
    /// Unquoted: GetObjectAttributes writes the ETag without quotes, unlike every other
    /// response.
    pub etag: Option<&'a str>,
    /// (`CRC32`-style algorithm name, base64 value, `COMPOSITE`/`FULL_OBJECT`).
    pub checksum: Option<(&'a str, &'a str, &'a str)>,
    pub parts: Option<AttributeParts<'a>>,
    pub storage_class: bool,
    pub size: Option<u64>,
}

/// The ObjectParts of GetObjectAttributes: one page of a multipart object's parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeParts<'a> {
    pub parts_count: usize,
    pub marker: u32,
    pub max_parts: u32,
    /// The last part number of this page when more follow.
    pub next_marker: Option<u32>,
    /// The parts' checksum algorithm (`CRC32`-style), when they have checksums.
    pub algorithm: Option<&'a str>,
    /// (part number, size, base64 checksum).
    pub parts: Vec<(u32, u64, Option<&'a str>)>,
}

/// `GetObjectAttributesResponse`.
pub fn get_object_attributes(a: &ObjectAttributes<'_>) -> String {
    let mut d = Doc::new("GetObjectAttributesResponse");
    d.opt_text("ETag", a.etag);
    if let Some((algorithm, value, kind)) = a.checksum {
        d.open("Checksum");
        d.text(&format!("Checksum{algorithm}"), value);
        d.text("ChecksumType", kind);
        d.close("Checksum");
    }
    if let Some(p) = &a.parts {
        d.open("ObjectParts");
        d.value("IsTruncated", p.next_marker.is_some());
        d.value("MaxParts", p.max_parts);
        if let Some(n) = p.next_marker {
            d.value("NextPartNumberMarker", n);
        }
        d.value("PartNumberMarker", p.marker);
        for (number, size, checksum) in &p.parts {
            d.open("Part");
            if let (Some(algorithm), Some(c)) = (p.algorithm, checksum) {
                d.text(&format!("Checksum{algorithm}"), c);
            }
            d.value("PartNumber", number);
            d.value("Size", size);
            d.close("Part");
        }
        d.value("PartsCount", p.parts_count);
        d.close("ObjectParts");
    }
    if a.storage_class {
        d.text("StorageClass", STORAGE_CLASS);
    }
    if let Some(n) = a.size {
        d.value("ObjectSize", n);
    }
    d.finish("GetObjectAttributesResponse")
}

/// One part of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEntry {
    pub part_number: u32,
    pub last_modified_ms: i64,
    /// Bare, unquoted.
    pub etag: String,
    pub size: u64,
    /// (`CRC32`-style algorithm name, base64 value) when the upload has checksums.
    pub checksum: Option<(String, String)>,
}

/// ListParts response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParts {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// Written as both `Initiator` and `Owner` (single tenant).
    pub owner: Owner,
    pub part_number_marker: u32,
    pub next_part_number_marker: Option<u32>,
    pub max_parts: u32,
    pub is_truncated: bool,
    pub parts: Vec<PartEntry>,
    /// The upload's checksum (`CRC32`-style algorithm name, `COMPOSITE`/`FULL_OBJECT`).
    pub checksum: Option<(String, String)>,
}

/// `ListPartsResult`.
pub fn list_parts(r: &ListParts) -> String {
    let mut d = Doc::new("ListPartsResult");
    d.text("Bucket", &r.bucket);
    d.text("Key", &r.key);
    d.text("UploadId", &r.upload_id);
    d.owner("Initiator", &r.owner);
    d.owner("Owner", &r.owner);
    d.text("StorageClass", STORAGE_CLASS);
    d.value("PartNumberMarker", r.part_number_marker);
    if let Some(next) = r.next_part_number_marker {
        d.value("NextPartNumberMarker", next);
    }
    d.value("MaxParts", r.max_parts);
    d.value("IsTruncated", r.is_truncated);
    if let Some((algorithm, kind)) = &r.checksum {
        d.text("ChecksumAlgorithm", algorithm);
        d.text("ChecksumType", kind);
    }
    for p in &r.parts {
        d.open("Part");
        d.value("PartNumber", p.part_number);
        d.time("LastModified", p.last_modified_ms);
        d.etag(&p.etag);
        d.value("Size", p.size);
        if let Some((algorithm, value)) = &p.checksum {
            d.text(&format!("Checksum{algorithm}"), value);
        }
        d.close("Part");
    }
    d.finish("ListPartsResult")
}

/// One in-progress upload of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: i64,
}

/// ListMultipartUploads response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMultipartUploads {
    pub bucket: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
    pub delimiter: Option<String>,
    pub prefix: String,
    pub max_uploads: u32,
    pub is_truncated: bool,
    pub url_encoding: bool,
    pub uploads: Vec<UploadEntry>,
    pub common_prefixes: Vec<String>,
    /// Written as both `Initiator` and `Owner` of every upload.
    pub owner: Owner,
}

/// `ListMultipartUploadsResult`. With `url_encoding`, these are percent-encoded: `KeyMarker`,
/// `NextKeyMarker`, `Delimiter`, `Prefix`, `Upload/Key`, `CommonPrefixes/Prefix`.
pub fn list_multipart_uploads(r: &ListMultipartUploads) -> String {
    let url = r.url_encoding;
    let mut d = Doc::new("ListMultipartUploadsResult");
    d.text("Bucket", &r.bucket);
    d.encoded("KeyMarker", &r.key_marker, url);
    d.text("UploadIdMarker", &r.upload_id_marker);
    if let Some(next) = &r.next_key_marker {
        d.encoded("NextKeyMarker", next, url);
    }
    d.opt_text("NextUploadIdMarker", r.next_upload_id_marker.as_deref());
    if let Some(delim) = &r.delimiter {
        d.encoded("Delimiter", delim, url);
    }
    d.encoded("Prefix", &r.prefix, url);
    d.value("MaxUploads", r.max_uploads);
    d.value("IsTruncated", r.is_truncated);
    if url {
        d.text("EncodingType", "url");
    }
    for u in &r.uploads {
        d.open("Upload");
        d.encoded("Key", &u.key, url);
        d.text("UploadId", &u.upload_id);
        d.owner("Initiator", &r.owner);
        d.owner("Owner", &r.owner);
        d.text("StorageClass", STORAGE_CLASS);
        d.time("Initiated", u.initiated_ms);
        d.close("Upload");
    }
    d.common_prefixes(&r.common_prefixes, url);
    d.finish("ListMultipartUploadsResult")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
