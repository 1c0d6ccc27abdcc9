//! Readers for the S3 request bodies: CreateBucketConfiguration, Delete (DeleteObjects),
//! CompleteMultipartUpload and Tagging.
//!
//! Contract:
//! - Input is the raw body. It must be UTF-8 (a leading byte-order mark is allowed) and at most
//!   [`MAX_XML_BODY`] bytes ([`MAX_COMPLETE_MULTIPART_BODY`] for CompleteMultipartUpload),
//!   else `MaxMessageLengthExceeded`; callers should stop reading the body at that bound.
//! - The document must be well-formed XML with exactly one root element of the expected name,
//!   no DTD, at most [`MAX_DEPTH`] levels and [`MAX_ELEMENTS`] elements; anything else, a
//!   missing required element, a repeated single element or an unparsable number or boolean is
//!   `MalformedXML`. Namespace prefixes are ignored (names are matched on their local part) and
//!   unknown elements are skipped, so newer SDK fields do not break old servers.
//! - Text is decoded as XML specifies: line ends normalised to `\n`, then the five predefined
//!   entities and character references resolved. Keys, tag keys and tag values are returned
//!   exactly, with no trimming; numbers, booleans, ETags, version ids and the location
//!   constraint are trimmed of XML whitespace. `&#0;` cannot be represented and is rejected.
//! - Semantic checks beyond the schema (part order, part-number range, tag limits, key length)
//!   are the handler's: the readers only return what the client sent.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest body the readers accept (except CompleteMultipartUpload).
pub const MAX_XML_BODY: usize = 1 << 20;
/// Largest CompleteMultipartUpload body: 10,000 parts with a SHA-256 checksum each is ~1.7 MiB.
pub const MAX_COMPLETE_MULTIPART_BODY: usize = 4 << 20;
/// Largest DeleteObjects body: 1,000 keys of up to 1,024 bytes each, with room for escaping.
pub const MAX_DELETE_BODY: usize = 2 << 20;
/// DeleteObjects takes at most this many keys per request.
pub const MAX_DELETE_OBJECTS: usize = 1000;
/// A multipart upload has at most this many parts.
pub const MAX_PARTS: usize = crate::meta::MAX_PART_NUMBER as usize;
/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// Why a request body was refused. The S3 layer answers `Malformed` with MalformedXML and
/// `TooLarge` with MaxMessageLengthExceeded (one `From` in `s3::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML is not well-formed or does not match the request's schema")]
    Malformed,
    #[error("the XML body is larger than this request allows")]
    TooLarge,
}
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 100_000;

/// A DeleteObjects request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub quiet: bool,
    /// 1..=[`MAX_DELETE_OBJECTS`] entries, in request order.
    pub objects: Vec<ObjectIdentifier>,
}

/// One `Object` of a DeleteObjects request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIdentifier {
    pub key: String,
    pub version_id: Option<String>,
    /// Conditions of a conditional delete: `ETag` (unquoted, or `*`), `LastModifiedTime`
    /// (an HTTP date or ISO 8601, as epoch seconds), `Size`.
    pub etag: Option<String>,
    pub last_modified_secs: Option<i64>,
    pub size: Option<u64>,
}

/// One `Part` of a CompleteMultipartUpload request. Checksums are as sent (base64).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    /// Bare: surrounding double quotes removed.
    pub etag: String,
    pub checksum_crc32: Option<String>,
    pub checksum_crc32c: Option<String>,
    pub checksum_crc64nvme: Option<String>,
    pub checksum_sha1: Option<String>,
    pub checksum_sha256: Option<String>,
}

/// CreateBucket body → the requested location constraint. An empty body, a missing or empty
/// `LocationConstraint` all mean "none given".
pub fn parse_create_bucket_configuration(body: &[u8]) -> Result<Option<String>, XmlError> {
    if body.iter().all(|b| is_xml_space(char::from(*b))) {
        return Ok(None);
    }
    let root = parse_root(body, "CreateBucketConfiguration", MAX_XML_BODY)?;
    let location = root.optional_trimmed("LocationConstraint")?;
    Ok(location.filter(|l| !l.is_empty()))
}

/// One grant of an AccessControlPolicy (PutBucketAcl / PutObjectAcl body): the grantee's
/// canonical ID (`None` for a group URI or an email address) and the permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclGrant {
    pub grantee_id: Option<String>,
    pub permission: String,
}

/// AccessControlPolicy body: its grants, in request order.
pub fn parse_access_control_policy(body: &[u8]) -> Result<Vec<AclGrant>, XmlError> {
    let root = parse_root(body, "AccessControlPolicy", MAX_XML_BODY)?;
    let Some(list) = root.single("AccessControlList")? else {
        return Ok(Vec::new());
    };
    list.children_named("Grant")
        .map(|grant| {
            let grantee = grant.single("Grantee")?.ok_or_else(malformed)?;
            Ok(AclGrant {
                grantee_id: grantee.optional_trimmed("ID")?,
                permission: grant
                    .optional_trimmed("Permission")?
                    .ok_or_else(malformed)?,
            })
        })
        .collect()
}

/// DeleteObjects body.
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, XmlError> {
    let root = parse_root(body, "Delete", MAX_DELETE_BODY)?;
    let quiet = match root.optional_trimmed("Quiet")? {
        None => false,
        Some(q) => parse_bool(&q)?,
    };
    let mut objects = Vec::new();
    for obj in root.children_named("Object") {
        if objects.len() == MAX_DELETE_OBJECTS {
            return Err(malformed());
        }
        let last_modified_secs = match obj.optional_trimmed("LastModifiedTime")? {
            None => None,
            // An HTTP date, as the AWS SDKs send it here, or ISO 8601 as elsewhere in XML.
            Some(t) => Some(
                crate::timestamp::parse_http_date(&t)
                    .or_else(|_| crate::timestamp::parse_iso8601(&t))
                    .map_err(|_| malformed())?,
            ),
        };
        let size = match obj.optional_trimmed("Size")? {
            None => None,
            Some(n) => Some(parse_u64(&n)?),
        };
        objects.push(ObjectIdentifier {
            key: obj.required_exact("Key")?,
            version_id: obj.optional_trimmed("VersionId")?,
            etag: obj
                .optional_trimmed("ETag")?
                .map(|e| unquote(&e).to_owned()),
            last_modified_secs,
            size,
        });
    }
    if objects.is_empty() {
        return Err(malformed());
    }
    Ok(DeleteRequest { quiet, objects })
}

/// CompleteMultipartUpload body: 1..=[`MAX_PARTS`] parts in request order.
pub fn parse_complete_multipart_upload(body: &[u8]) -> Result<Vec<CompletedPart>, XmlError> {
    let root = parse_root(body, "CompleteMultipartUpload", MAX_COMPLETE_MULTIPART_BODY)?;
    let mut parts = Vec::new();
    for part in root.children_named("Part") {
        if parts.len() == MAX_PARTS {
            return Err(malformed());
        }
        let number = part.optional_trimmed("PartNumber")?.ok_or_else(malformed)?;
        let etag = part.optional_trimmed("ETag")?.ok_or_else(malformed)?;
        parts.push(CompletedPart {
            part_number: parse_u32(&number)?,
            etag: unquote(&etag).to_owned(),
            checksum_crc32: part.optional_trimmed("ChecksumCRC32")?,
            checksum_crc32c: part.optional_trimmed("ChecksumCRC32C")?,
            checksum_crc64nvme: part.optional_trimmed("ChecksumCRC64NVME")?,
            checksum_sha1: part.optional_trimmed("ChecksumSHA1")?,
            checksum_sha256: part.optional_trimmed("ChecksumSHA256")?,
        });
    }
    if parts.is_empty() {
        return Err(malformed());
    }
    Ok(parts)
}

/// PutObjectTagging / PutBucketTagging body: the tags in request order (possibly none).
pub fn parse_tagging(body: &[u8]) -> Result<Vec<super::Tag>, XmlError> {
    let root = parse_root(body, "Tagging", MAX_XML_BODY)?;
    let tag_set = root.single("TagSet")?.ok_or_else(malformed)?;
    tag_set
        .children_named("Tag")
        .map(|tag| {
            Ok(super::Tag {
                key: tag.required_exact("Key")?,
                value: tag.required_exact("Value")?,
            })
        })
        .collect()
}

fn malformed() -> XmlError {
    XmlError::Malformed
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn parse_bool(s: &str) -> Result<bool, XmlError> {
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Ok(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Ok(false)
    } else {
        Err(malformed())
    }
}

fn parse_u32(s: &str) -> Result<u32, XmlError> {
    parse_u64(s).and_then(|n| u32::try_from(n).map_err(|_| malformed()))
}

fn parse_u64(s: &str) -> Result<u64, XmlError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    s.parse().map_err(|_| malformed())
}

fn unquote(etag: &str) -> &str {
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
}

/// A parsed element: local name, decoded text (all text directly inside it, concatenated)
/// and child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The child called `name`, if present; present twice is malformed.
    fn single(&self, name: &str) -> Result<Option<&Element>, XmlError> {
        let mut found = self.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(malformed());
        }
        Ok(first)
    }

    /// Text of a leaf child, exactly as sent.
    fn required_exact(&self, name: &str) -> Result<String, XmlError> {
        let child = self.single(name)?.ok_or_else(malformed)?;
        if !child.children.is_empty() {
            return Err(malformed());
        }
        Ok(child.text.clone())
    }

    /// Text of an optional leaf child, trimmed of XML whitespace.
    fn optional_trimmed(&self, name: &str) -> Result<Option<String>, XmlError> {
        match self.single(name)? {
            None => Ok(None),
            Some(child) if !child.children.is_empty() => Err(malformed()),
            Some(child) => Ok(Some(child.text.trim_matches(is_xml_space).to_owned())),
        }
    }
}

/// Parses `body` into its root element, which must be called `root_name`.
fn parse_root(body: &[u8], root_name: &str, max_len: usize) -> Result<Element, XmlError> {
    if body.len() > max_len {
        return Err(XmlError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let root = parse_tree(text.strip_prefix('\u{FEFF}').unwrap_or(text))?;
    if root.name != root_name {
        return Err(malformed());
    }
    Ok(root)
}

fn parse_tree(text: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;

    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(|_| malformed())?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                elements += 1;
                if root.is_some() || open.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return Err(malformed());
                }
                for attr in start.attributes().with_checks(true) {
                    attr.map_err(|_| malformed())?;
                }
                let name = std::str::from_utf8(start.local_name().as_ref())
                    .map_err(|_| malformed())?
                    .to_owned();
                open.push(Element {
                    name,
                    ..Element::default()
                });
                if matches!(event, Event::Empty(_)) {
                    close(&mut open, &mut root)?;
                }
            }
            Event::End(_) => close(&mut open, &mut root)?,
            Event::Text(raw) => {
                let raw = std::str::from_utf8(&raw).map_err(|_| malformed())?;
                match open.last_mut() {
                    Some(el) => {
                        let normalized = normalize_line_ends(raw);
                        let decoded =
                            quick_xml::escape::unescape(&normalized).map_err(|_| malformed())?;
                        el.text.push_str(&decoded);
                    }
                    None if raw.chars().all(is_xml_space) => {}
                    None => return Err(malformed()),
                }
            }
            Event::CData(raw) => {
                let raw = std::str::from_utf8(&raw).map_err(|_| malformed())?;
                let el = open.last_mut().ok_or_else(malformed)?;
                el.text.push_str(&normalize_line_ends(raw));
            }
            Event::Decl(_) if root.is_none() && open.is_empty() => {}
            Event::Comment(_) | Event::PI(_) => {}
            Event::Decl(_) | Event::DocType(_) => return Err(malformed()),
            Event::Eof => break,
        }
    }
    if !open.is_empty() {
        return Err(malformed());
    }
    root.ok_or_else(malformed)
}

/// Closes the innermost open element, attaching it to its parent or making it the root.
fn close(open: &mut Vec<Element>, root: &mut Option<Element>) -> Result<(), XmlError> {
    let el = open.pop().ok_or_else(malformed)?;
    match open.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
    Ok(())
}

/// XML 1.0 §2.11: `\r\n` and a lone `\r` both become `\n` before parsing, so only a `&#xD;`
/// reference yields a carriage return.
fn normalize_line_ends(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains('\r') {
        std::borrow::Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::s3::xml::Tag;

    fn code<T: std::fmt::Debug>(r: Result<T, XmlError>) -> XmlError {
        r.unwrap_err()
    }

    const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

    #[test]
    fn create_bucket_configuration() {
        assert_eq!(parse_create_bucket_configuration(b"").unwrap(), None);
        assert_eq!(parse_create_bucket_configuration(b" \r\n\t").unwrap(), None);
        let body = format!(
            "<CreateBucketConfiguration {NS}><LocationConstraint> eu-west-1\n</LocationConstraint></CreateBucketConfiguration>"
        );
        assert_eq!(
            parse_create_bucket_configuration(body.as_bytes()).unwrap(),
            Some("eu-west-1".to_owned())
        );
        let body = "<?xml version=\"1.0\"?>\n<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>";
        assert_eq!(
            parse_create_bucket_configuration(body.as_bytes()).unwrap(),
            None
        );
        assert_eq!(
            parse_create_bucket_configuration(b"<CreateBucketConfiguration/>").unwrap(),
            None
        );
        for bad in [
            &b"<CreateBucketConfiguration>"[..],
            b"<Other/>",
            b"not xml",
            b"<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint><LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>",
        ] {
            assert_eq!(code(parse_create_bucket_configuration(bad)), XmlError::Malformed);
        }
    }

    #[test]
    fn delete_request() {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete {NS}>\n  <Quiet>true</Quiet>\n  \
             <Object><Key> spaced key </Key></Object>\n  \
             <Object><Key>v</Key><VersionId>3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY</VersionId></Object>\n\
             <Object><Key>c</Key><ETag>\"abc\"</ETag>\
             <LastModifiedTime>2026-11-25T17:13:11.000Z</LastModifiedTime><Size>42</Size></Object>\n\
             </Delete>"
        );
        let req = parse_delete(body.as_bytes()).unwrap();
        assert!(req.quiet);
        assert_eq!(
            req.objects,
            vec![
                ObjectIdentifier {
                    key: " spaced key ".to_owned(),
                    version_id: None,
                    etag: None,
                    last_modified_secs: None,
                    size: None,
                },
                ObjectIdentifier {
                    key: "v".to_owned(),
                    version_id: Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".to_owned()),
                    etag: None,
                    last_modified_secs: None,
                    size: None,
                },
                ObjectIdentifier {
                    key: "c".to_owned(),
                    version_id: None,
                    etag: Some("abc".to_owned()),
                    last_modified_secs: Some(1_795_626_791),
                    size: Some(42),
                },
            ]
        );
        let http_date = parse_delete(
            b"<Delete><Object><Key>a</Key>\
              <LastModifiedTime>Wed, 25 Nov 2026 17:13:11 GMT</LastModifiedTime></Object></Delete>",
        )
        .unwrap();
        assert_eq!(http_date.objects[0].last_modified_secs, Some(1_795_626_791));
        for bad in [
            "<Size>-1</Size>",
            "<Size>x</Size>",
            "<LastModifiedTime>yesterday</LastModifiedTime>",
        ] {
            let body = format!("<Delete><Object><Key>a</Key>{bad}</Object></Delete>");
            assert!(parse_delete(body.as_bytes()).is_err(), "{bad}");
        }
        let req = parse_delete(b"<Delete><Object><Key>a</Key></Object></Delete>").unwrap();
        assert!(!req.quiet);
        let req =
            parse_delete(b"<Delete><Quiet>False</Quiet><Object><Key>a</Key></Object></Delete>")
                .unwrap();
        assert!(!req.quiet);
    }

    #[test]
    fn delete_decodes_escapes_controls_and_unicode() {
        let body = "<Delete><Object><Key>a&amp;b&lt;c&gt;&quot;d&apos;e&#xD;&#13;&#x1;\u{1F600}ключ<![CDATA[<raw&>]]></Key></Object></Delete>";
        let req = parse_delete(body.as_bytes()).unwrap();
        assert_eq!(
            req.objects[0].key,
            "a&b<c>\"d'e\r\r\u{1}\u{1F600}ключ<raw&>"
        );
        // Literal line ends are normalised as XML requires; only references give a CR.
        let req = parse_delete(b"<Delete><Object><Key>a\r\nb\rc</Key></Object></Delete>").unwrap();
        assert_eq!(req.objects[0].key, "a\nb\nc");
    }

    #[test]
    fn delete_limits() {
        let objects = |n: usize| {
            let mut body = String::from("<Delete>");
            for i in 0..n {
                body.push_str(&format!("<Object><Key>k{i}</Key></Object>"));
            }
            body.push_str("</Delete>");
            body
        };
        assert_eq!(
            parse_delete(objects(1000).as_bytes())
                .unwrap()
                .objects
                .len(),
            1000
        );
        assert_eq!(
            code(parse_delete(objects(1001).as_bytes())),
            XmlError::Malformed
        );
        assert_eq!(
            code(parse_delete(objects(0).as_bytes())),
            XmlError::Malformed
        );
        let huge = vec![b' '; MAX_DELETE_BODY + 1];
        assert_eq!(code(parse_delete(&huge)), XmlError::TooLarge);
    }

    #[test]
    fn delete_rejects_malformed() {
        for bad in [
            "",
            "<Delete>",
            "<Delete><Object><Key>a</Key></Object>",
            "<Delete><Object><Key>a</Key></Object></Delete><Delete/>",
            "<Delete><Object><Key>a</Key></Object></Delete>trailing",
            "<Delete><Object><VersionId>x</VersionId></Object></Delete>",
            "<Delete><Object></Object></Delete>",
            "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
            "<Delete><Object><Key><K>a</K></Key></Object></Delete>",
            "<Delete><Object><Key>a</Key></Objec></Delete>",
            "<Delete><Object><Key>a & b</Key></Object></Delete>",
            "<Delete><Object><Key>&bogus;</Key></Object></Delete>",
            "<Delete><Object><Key>&#0;</Key></Object></Delete>",
            "<Delete><Quiet>yes</Quiet><Object><Key>a</Key></Object></Delete>",
            "<Delete a=\"1\" a=\"2\"><Object><Key>a</Key></Object></Delete>",
            "<!DOCTYPE x [<!ENTITY e \"boom\">]><Delete><Object><Key>&e;</Key></Object></Delete>",
            "<Remove><Object><Key>a</Key></Object></Remove>",
            "<Delete><!-- a -- b --><Object><Key>a</Key></Object></Delete>",
        ] {
            assert_eq!(
                code(parse_delete(bad.as_bytes())),
                XmlError::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(
            code(parse_delete(
                b"<Delete><Object><Key>\xff</Key></Object></Delete>"
            )),
            XmlError::Malformed
        );
    }

    #[test]
    fn delete_ignores_unknown_elements_comments_and_prefixes() {
        let body = "\u{FEFF}<?xml version=\"1.0\"?><!-- hi --><s3:Delete xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                    <s3:Object><s3:Key>a</s3:Key><s3:ETag>x</s3:ETag></s3:Object><Extra/></s3:Delete>";
        let req = parse_delete(body.as_bytes()).unwrap();
        assert_eq!(req.objects[0].key, "a");
    }

    #[test]
    fn depth_is_bounded() {
        let mut body = String::from("<Delete><Object><Key>a</Key></Object>");
        body.push_str(&"<x>".repeat(MAX_DEPTH));
        body.push_str(&"</x>".repeat(MAX_DEPTH));
        body.push_str("</Delete>");
        assert_eq!(code(parse_delete(body.as_bytes())), XmlError::Malformed);
    }

    #[test]
    fn complete_multipart_upload() {
        let body = format!(
            "<CompleteMultipartUpload {NS}>\
               <Part><PartNumber> 1 </PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag>\
                 <ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>\
               <Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber>2</PartNumber></Part>\
               <Part><PartNumber>3</PartNumber><ETag>bare</ETag><ChecksumSHA256>x</ChecksumSHA256></Part>\
             </CompleteMultipartUpload>"
        );
        let parts = parse_complete_multipart_upload(body.as_bytes()).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0],
            CompletedPart {
                part_number: 1,
                etag: "a54357aff0632cce46d942af68356b38".to_owned(),
                checksum_crc32: Some("AAAAAA==".to_owned()),
                ..CompletedPart::default()
            }
        );
        assert_eq!(parts[1].part_number, 2);
        assert_eq!(parts[1].etag, "0c78aef83f66abc1fa1e8477f296d394");
        assert_eq!(parts[2].etag, "bare");
        assert_eq!(parts[2].checksum_sha256.as_deref(), Some("x"));
        for bad in [
            "<CompleteMultipartUpload/>",
            "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>+1</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>99999999999</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
        ] {
            assert_eq!(
                code(parse_complete_multipart_upload(bad.as_bytes())),
                XmlError::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn complete_multipart_upload_part_limit() {
        let parts = |n: usize| {
            let mut body = String::from("<CompleteMultipartUpload>");
            for i in 1..=n {
                body.push_str(&format!(
                    "<Part><PartNumber>{i}</PartNumber><ETag>\"0123456789abcdef0123456789abcdef\"</ETag>\
                     <ChecksumSHA256>47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=</ChecksumSHA256></Part>"
                ));
            }
            body.push_str("</CompleteMultipartUpload>");
            body
        };
        let full = parts(MAX_PARTS);
        assert!(full.len() > MAX_XML_BODY && full.len() <= MAX_COMPLETE_MULTIPART_BODY);
        assert_eq!(
            parse_complete_multipart_upload(full.as_bytes())
                .unwrap()
                .len(),
            MAX_PARTS
        );
        assert_eq!(
            code(parse_complete_multipart_upload(
                parts(MAX_PARTS + 1).as_bytes()
            )),
            XmlError::Malformed
        );
    }

    #[test]
    fn tagging() {
        let body = format!(
            "<Tagging {NS}><TagSet><Tag><Key> k1 </Key><Value>v&amp;1</Value></Tag>\
             <Tag><Key>k2</Key><Value/></Tag></TagSet></Tagging>"
        );
        assert_eq!(
            parse_tagging(body.as_bytes()).unwrap(),
            vec![
                Tag {
                    key: " k1 ".to_owned(),
                    value: "v&1".to_owned()
                },
                Tag {
                    key: "k2".to_owned(),
                    value: String::new()
                },
            ]
        );
        assert!(parse_tagging(b"<Tagging><TagSet/></Tagging>")
            .unwrap()
            .is_empty());
        for bad in [
            "<Tagging/>",
            "<Tagging><TagSet/><TagSet/></Tagging>",
            "<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
            "<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
        ] {
            assert_eq!(
                code(parse_tagging(bad.as_bytes())),
                XmlError::Malformed,
                "{bad:?}"
            );
        }
    }
}
