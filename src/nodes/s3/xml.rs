//! The S3 XML documents [`super::S3Node`] reads and writes.
//!
//! Contract: parsers take a complete response body and return either the fields the client
//! needs or a one-line reason (never the body itself, which may be large). Unknown elements
//! are ignored. [`error_of`] recognises an `<Error>` document wherever one can appear,
//! including in a `200 OK` answer to CompleteMultipartUpload.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListPage {
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub contents: Vec<ListEntry>,
    pub next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListEntry {
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateResult {
    upload_id: String,
}

/// The `<Error>` document of a failed request.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(super) struct S3Error {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

pub(super) fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    expect_root(body, "ListBucketResult")?;
    parse(body, "ListBucketResult")
}

/// The `UploadId` of an InitiateMultipartUploadResult.
pub(super) fn parse_upload_id(body: &[u8]) -> Result<String, String> {
    // rclone's `serve s3` (gofakes3) names the root `InitiateMultipartUpload`.
    if root_name(body)?.as_deref() != Some("InitiateMultipartUpload") {
        expect_root(body, "InitiateMultipartUploadResult")?;
    }
    let r: InitiateResult = parse(body, "InitiateMultipartUploadResult")?;
    if r.upload_id.is_empty() {
        return Err("InitiateMultipartUploadResult with an empty UploadId".into());
    }
    Ok(r.upload_id)
}

/// Checks that a CompleteMultipartUpload answer reports success.
pub(super) fn check_complete(body: &[u8]) -> Result<(), String> {
    expect_root(body, "CompleteMultipartUploadResult")
}

/// The error a body reports, if it is an `<Error>` document.
pub(super) fn error_of(body: &[u8]) -> Option<S3Error> {
    if root_name(body).ok()?.as_deref() != Some("Error") {
        return None;
    }
    Some(quick_xml::de::from_reader(body).unwrap_or_default())
}

/// The CompleteMultipartUpload request body for parts `1..=etags.len()`.
pub(super) fn complete_body(etags: &[String]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        s.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            quick_xml::escape::escape(etag.as_str())
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, String> {
    quick_xml::de::from_reader(body).map_err(|e| format!("malformed {what}: {e}"))
}

/// Fails unless the document's root element is `want` (an `<Error>` says which error).
fn expect_root(body: &[u8], want: &str) -> Result<(), String> {
    match root_name(body)? {
        Some(name) if name == want => Ok(()),
        Some(name) if name == "Error" => {
            let e = error_of(body).unwrap_or_default();
            Err(format!("{}: {}", e.code, e.message))
        }
        Some(name) => Err(format!("expected <{want}>, got <{name}>")),
        None => Err(format!("expected <{want}>, got an empty answer")),
    }
}

/// The name of the first element, `None` for a document without one.
fn root_name(body: &[u8]) -> Result<Option<String>, String> {
    let mut reader = Reader::from_reader(body);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Ok(Some(
                    String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                ))
            }
            Ok(Event::Eof) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(format!("malformed XML: {e}")),
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>gw/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>gw/a&amp;b</Key><Size>3</Size><ETag>"x"</ETag></Contents>
  <Contents><Key>gw/c</Key><Size>1</Size></Contents>
  <NextContinuationToken>tok/1=</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list(body).unwrap();
        assert!(page.is_truncated);
        let keys: Vec<_> = page.contents.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["gw/a&b", "gw/c"]);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok/1="));

        let empty =
            parse_list(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
                .unwrap();
        assert!(!empty.is_truncated && empty.contents.is_empty());
        assert!(parse_list(b"<Other/>").is_err());
        assert!(parse_list(b"").is_err());
    }

    #[test]
    fn errors_are_recognised_even_in_success_answers() {
        let body = b"<?xml version=\"1.0\"?>\n\n<Error><Code>InternalError</Code>\
            <Message>We encountered an internal error.</Message><RequestId>1</RequestId></Error>";
        assert_eq!(
            error_of(body),
            Some(S3Error {
                code: "InternalError".into(),
                message: "We encountered an internal error.".into()
            })
        );
        let e = check_complete(body).unwrap_err();
        assert!(e.starts_with("InternalError: "), "{e}");
        assert!(check_complete(
            b"<CompleteMultipartUploadResult><ETag>\"e-2\"</ETag></CompleteMultipartUploadResult>"
        )
        .is_ok());
        assert!(check_complete(b"   ").is_err());
        assert_eq!(error_of(b"<ListBucketResult/>"), None);
        assert_eq!(error_of(b"not xml <"), None);
    }

    #[test]
    fn upload_id() {
        let body = b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>\
            <UploadId>VXBsb2Fk+/=</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(parse_upload_id(body).unwrap(), "VXBsb2Fk+/=");
        let rclone = b"<InitiateMultipartUpload><UploadId>7</UploadId></InitiateMultipartUpload>";
        assert_eq!(parse_upload_id(rclone).unwrap(), "7");
        assert!(parse_upload_id(
            b"<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>"
        )
        .is_err());
        assert!(parse_upload_id(b"<Error><Code>AccessDenied</Code></Error>")
            .unwrap_err()
            .contains("AccessDenied"));
    }

    #[test]
    fn complete_body_escapes_etags() {
        let body = complete_body(&["\"abc\"".into(), "d<e".into()]);
        assert_eq!(
            body,
            "<CompleteMultipartUpload>\
             <Part><PartNumber>1</PartNumber><ETag>&quot;abc&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>d&lt;e</ETag></Part>\
             </CompleteMultipartUpload>"
        );
    }
}
