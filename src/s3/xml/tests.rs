//! Exact-output tests for the writers in `xml.rs`.

use super::*;

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
// 2026-11-25T17:13:11.000Z
const T: i64 = 1_795_626_791_000;

fn owner() -> Owner {
    Owner {
        id: "abc123".to_owned(),
        display_name: "me".to_owned(),
    }
}

fn object(key: &str) -> ObjectEntry {
    ObjectEntry {
        key: key.to_owned(),
        last_modified_ms: T,
        etag: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        size: 42,
    }
}

const CONTENTS_A: &str =
    "<Contents><Key>a</Key><LastModified>2026-11-25T17:13:11.000Z</LastModified>\
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>42</Size>\
    <StorageClass>STANDARD</StorageClass></Contents>";

#[test]
fn list_all_my_buckets_exact() {
    let buckets = [
        BucketEntry {
            name: "photos".to_owned(),
            creation_date_ms: T,
        },
        BucketEntry {
            name: "b2".to_owned(),
            creation_date_ms: 0,
        },
    ];
    assert_eq!(
        list_all_my_buckets(&owner(), &buckets, None, None),
        format!(
            "{HEAD}<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Owner><ID>abc123</ID><DisplayName>me</DisplayName></Owner><Buckets>\
             <Bucket><Name>photos</Name><CreationDate>2026-11-25T17:13:11.000Z</CreationDate></Bucket>\
             <Bucket><Name>b2</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate></Bucket>\
             </Buckets></ListAllMyBucketsResult>"
        )
    );
    assert_eq!(
        list_all_my_buckets(&owner(), &[], None, None),
        format!(
            "{HEAD}<ListAllMyBucketsResult xmlns=\"{S3_XMLNS}\">\
             <Owner><ID>abc123</ID><DisplayName>me</DisplayName></Owner><Buckets></Buckets>\
             </ListAllMyBucketsResult>"
        )
    );
    assert_eq!(
        list_all_my_buckets(&owner(), &buckets[..1], Some("photos"), Some("p&")),
        format!(
            "{HEAD}<ListAllMyBucketsResult xmlns=\"{S3_XMLNS}\">\
             <Owner><ID>abc123</ID><DisplayName>me</DisplayName></Owner><Buckets>\
             <Bucket><Name>photos</Name><CreationDate>2026-11-25T17:13:11.000Z</CreationDate></Bucket>\
             </Buckets><ContinuationToken>photos</ContinuationToken><Prefix>p&amp;</Prefix>\
             </ListAllMyBucketsResult>"
        )
    );
}

#[test]
fn list_objects_v1_exact() {
    let r = ListObjectsV1 {
        bucket: "b".to_owned(),
        prefix: String::new(),
        marker: String::new(),
        max_keys: 1000,
        contents: vec![object("a")],
        owner: Some(owner()),
        ..ListObjectsV1::default()
    };
    assert_eq!(
        list_objects_v1(&r),
        format!(
            "{HEAD}<ListBucketResult xmlns=\"{S3_XMLNS}\"><Name>b</Name><Prefix></Prefix>\
             <Marker></Marker><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
             <Contents><Key>a</Key><LastModified>2026-11-25T17:13:11.000Z</LastModified>\
             <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>42</Size>\
             <StorageClass>STANDARD</StorageClass>\
             <Owner><ID>abc123</ID><DisplayName>me</DisplayName></Owner></Contents>\
             </ListBucketResult>"
        )
    );
}

#[test]
fn list_objects_v1_next_marker_only_with_delimiter_when_truncated() {
    let mut r = ListObjectsV1 {
        bucket: "b".to_owned(),
        prefix: "p/".to_owned(),
        marker: "m".to_owned(),
        next_marker: Some("p/x/".to_owned()),
        max_keys: 2,
        delimiter: Some("/".to_owned()),
        is_truncated: true,
        contents: vec![object("a")],
        common_prefixes: vec!["p/x/".to_owned()],
        ..ListObjectsV1::default()
    };
    assert_eq!(
        list_objects_v1(&r),
        format!(
            "{HEAD}<ListBucketResult xmlns=\"{S3_XMLNS}\"><Name>b</Name><Prefix>p/</Prefix>\
             <Marker>m</Marker><NextMarker>p/x/</NextMarker><MaxKeys>2</MaxKeys>\
             <Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>{CONTENTS_A}\
             <CommonPrefixes><Prefix>p/x/</Prefix></CommonPrefixes></ListBucketResult>"
        )
    );
    r.delimiter = None;
    assert!(!list_objects_v1(&r).contains("NextMarker"));
    r.delimiter = Some("/".to_owned());
    r.is_truncated = false;
    assert!(!list_objects_v1(&r).contains("NextMarker"));
}

#[test]
fn list_objects_v2_exact() {
    let r = ListObjectsV2 {
        bucket: "b".to_owned(),
        prefix: "".to_owned(),
        max_keys: 2,
        delimiter: Some("/".to_owned()),
        is_truncated: true,
        continuation_token: Some("tok1".to_owned()),
        next_continuation_token: Some("tok2".to_owned()),
        start_after: Some("0".to_owned()),
        contents: vec![object("a")],
        common_prefixes: vec!["d/".to_owned()],
        ..ListObjectsV2::default()
    };
    assert_eq!(
        list_objects_v2(&r),
        format!(
            "{HEAD}<ListBucketResult xmlns=\"{S3_XMLNS}\"><Name>b</Name><Prefix></Prefix>\
             <KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter>\
             <IsTruncated>true</IsTruncated><ContinuationToken>tok1</ContinuationToken>\
             <NextContinuationToken>tok2</NextContinuationToken><StartAfter>0</StartAfter>\
             {CONTENTS_A}<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>"
        )
    );
    let minimal = ListObjectsV2 {
        bucket: "b".to_owned(),
        max_keys: 1000,
        ..ListObjectsV2::default()
    };
    assert_eq!(
        list_objects_v2(&minimal),
        format!(
            "{HEAD}<ListBucketResult xmlns=\"{S3_XMLNS}\"><Name>b</Name><Prefix></Prefix>\
             <KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
             </ListBucketResult>"
        )
    );
    let with_owner = ListObjectsV2 {
        owner: Some(owner()),
        contents: vec![object("a")],
        ..minimal
    };
    assert!(list_objects_v2(&with_owner)
        .contains("<StorageClass>STANDARD</StorageClass><Owner><ID>abc123</ID>"));
}

#[test]
fn url_encoder_matches_s3() {
    assert_eq!(s3_url_encode("asdf+b"), "asdf%2Bb");
    assert_eq!(s3_url_encode("quux ab/"), "quux%20ab/");
    assert_eq!(s3_url_encode("foo+1/"), "foo%2B1/");
    assert_eq!(s3_url_encode("AZaz09-._~/"), "AZaz09-._~/");
    assert_eq!(
        s3_url_encode("a&b<c>\"'*=?%#"),
        "a%26b%3Cc%3E%22%27%2A%3D%3F%25%23"
    );
    assert_eq!(s3_url_encode("\u{1}\r\n"), "%01%0D%0A");
    assert_eq!(s3_url_encode("é😀"), "%C3%A9%F0%9F%98%80");
    assert!(matches!(s3_url_encode("plain/key"), Cow::Borrowed(_)));
}

#[test]
fn url_encoding_type_v2_encodes_exactly_the_aws_fields() {
    let r = ListObjectsV2 {
        bucket: "b b".to_owned(),
        prefix: "p q".to_owned(),
        max_keys: 1000,
        delimiter: Some(" ".to_owned()),
        continuation_token: Some("t+t".to_owned()),
        start_after: Some("s s".to_owned()),
        url_encoding: true,
        contents: vec![object("asdf+b")],
        common_prefixes: vec!["quux ab ".to_owned()],
        ..ListObjectsV2::default()
    };
    assert_eq!(
        list_objects_v2(&r),
        format!(
            "{HEAD}<ListBucketResult xmlns=\"{S3_XMLNS}\"><Name>b b</Name><Prefix>p%20q</Prefix>\
             <KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>%20</Delimiter>\
             <IsTruncated>false</IsTruncated><ContinuationToken>t+t</ContinuationToken>\
             <StartAfter>s%20s</StartAfter><EncodingType>url</EncodingType>\
             <Contents><Key>asdf%2Bb</Key><LastModified>2026-11-25T17:13:11.000Z</LastModified>\
             <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>42</Size>\
             <StorageClass>STANDARD</StorageClass></Contents>\
             <CommonPrefixes><Prefix>quux%20ab%20</Prefix></CommonPrefixes></ListBucketResult>"
        )
    );
}

#[test]
fn url_encoding_type_v1_encodes_markers() {
    let r = ListObjectsV1 {
        bucket: "b".to_owned(),
        prefix: "a b".to_owned(),
        marker: "m&m".to_owned(),
        next_marker: Some("n n".to_owned()),
        max_keys: 1,
        delimiter: Some("|".to_owned()),
        is_truncated: true,
        url_encoding: true,
        contents: vec![object("k\u{1}")],
        ..ListObjectsV1::default()
    };
    let xml = list_objects_v1(&r);
    assert!(xml.contains(
        "<Prefix>a%20b</Prefix><Marker>m%26m</Marker><NextMarker>n%20n</NextMarker>\
         <MaxKeys>1</MaxKeys><Delimiter>%7C</Delimiter><IsTruncated>true</IsTruncated>\
         <EncodingType>url</EncodingType><Contents><Key>k%01</Key>"
    ));
}

#[test]
fn escape_text_rules() {
    assert_eq!(
        escape_text("a&b<c>d\"e'f"),
        "a&amp;b&lt;c&gt;d&quot;e&apos;f"
    );
    assert_eq!(
        escape_text("\u{0}\u{1}\u{8}\u{B}\u{C}\r\u{1F}"),
        "&#x0;&#x1;&#x8;&#xB;&#xC;&#xD;&#x1F;"
    );
    assert_eq!(escape_text("\t\n"), "\t\n");
    assert_eq!(escape_text("\u{FFFE}\u{FFFF}"), "&#xFFFE;&#xFFFF;");
    assert_eq!(escape_text("\u{7F}\u{85}é😀ключ"), "\u{7F}\u{85}é😀ключ");
    assert!(matches!(escape_text("plain ключ"), Cow::Borrowed(_)));
}

/// Keys with every special character survive a write and an independent quick-xml parse.
#[test]
fn awkward_keys_round_trip_through_a_parser() {
    let keys = [
        "a&b<c>d\"e'f",
        "ctl\u{1}\u{2}\u{8}\u{B}\u{C}\u{E}\u{1F}end",
        "cr\r\nlf\ttab\r",
        " leading and trailing ",
        "ключ/😀/日本語/é\u{7F}\u{FFFE}",
        "]]>",
    ];
    let deleted: Vec<DeletedObject> = keys
        .iter()
        .map(|k| DeletedObject {
            key: (*k).to_owned(),
            ..DeletedObject::default()
        })
        .collect();
    let xml = delete_result(&deleted, &[], false);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut found = Vec::new();
    let mut in_key = false;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) if e.local_name().as_ref() == b"Key" => {
                in_key = true;
                found.push(String::new());
            }
            quick_xml::events::Event::End(_) => in_key = false,
            quick_xml::events::Event::Text(t) if in_key => {
                found.last_mut().unwrap().push_str(&t.unescape().unwrap());
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(found, keys);

    // And through our own reader, which also normalises literal line ends as XML requires.
    let tags: Vec<Tag> = keys
        .iter()
        .map(|k| Tag {
            key: (*k).to_owned(),
            value: (*k).to_owned(),
        })
        .collect();
    assert_eq!(
        read::parse_tagging(tagging(&tags).as_bytes()).unwrap(),
        tags
    );
}

#[test]
fn location_constraint_exact() {
    assert_eq!(
        location_constraint("us-east-1"),
        format!("{HEAD}<LocationConstraint xmlns=\"{S3_XMLNS}\"/>")
    );
    assert_eq!(location_constraint(""), location_constraint("us-east-1"));
    assert_eq!(
        location_constraint("eu-west-1"),
        format!("{HEAD}<LocationConstraint xmlns=\"{S3_XMLNS}\">eu-west-1</LocationConstraint>")
    );
}

#[test]
fn delete_result_verbose_and_quiet() {
    let deleted = [
        DeletedObject {
            key: "a".to_owned(),
            ..DeletedObject::default()
        },
        DeletedObject {
            key: "b".to_owned(),
            version_id: Some("v1".to_owned()),
            delete_marker: true,
            delete_marker_version_id: Some("v2".to_owned()),
        },
    ];
    let errors = [DeleteError {
        key: "c".to_owned(),
        version_id: None,
        code: "AccessDenied",
        message: "Access Denied".to_owned(),
    }];
    assert_eq!(
        delete_result(&deleted, &errors, false),
        format!(
            "{HEAD}<DeleteResult xmlns=\"{S3_XMLNS}\"><Deleted><Key>a</Key></Deleted>\
             <Deleted><Key>b</Key><VersionId>v1</VersionId><DeleteMarker>true</DeleteMarker>\
             <DeleteMarkerVersionId>v2</DeleteMarkerVersionId></Deleted>\
             <Error><Key>c</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
             </DeleteResult>"
        )
    );
    assert_eq!(
        delete_result(&deleted, &errors, true),
        format!(
            "{HEAD}<DeleteResult xmlns=\"{S3_XMLNS}\">\
             <Error><Key>c</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
             </DeleteResult>"
        )
    );
    assert_eq!(
        delete_result(&deleted, &[], true),
        format!("{HEAD}<DeleteResult xmlns=\"{S3_XMLNS}\"></DeleteResult>")
    );
}

#[test]
fn copy_results_exact() {
    assert_eq!(
        copy_object_result("9b2cf535f27731c974343645a3985328", T),
        format!(
            "{HEAD}<CopyObjectResult xmlns=\"{S3_XMLNS}\">\
             <LastModified>2026-11-25T17:13:11.000Z</LastModified>\
             <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>"
        )
    );
    assert!(copy_part_result("e", 0).contains("<CopyPartResult xmlns="));
}

#[test]
fn tagging_and_versioning_exact() {
    let tags = [Tag {
        key: "k".to_owned(),
        value: "v".to_owned(),
    }];
    assert_eq!(
        tagging(&tags),
        format!(
            "{HEAD}<Tagging xmlns=\"{S3_XMLNS}\"><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>\
             </TagSet></Tagging>"
        )
    );
    assert_eq!(
        versioning_configuration(None),
        format!("{HEAD}<VersioningConfiguration xmlns=\"{S3_XMLNS}\"/>")
    );
    assert_eq!(
        versioning_configuration(Some("Enabled")),
        format!(
            "{HEAD}<VersioningConfiguration xmlns=\"{S3_XMLNS}\"><Status>Enabled</Status>\
             </VersioningConfiguration>"
        )
    );
}

#[test]
fn multipart_results_exact() {
    assert_eq!(
        initiate_multipart_upload_result("b", "k&", "U1"),
        format!(
            "{HEAD}<InitiateMultipartUploadResult xmlns=\"{S3_XMLNS}\"><Bucket>b</Bucket>\
             <Key>k&amp;</Key><UploadId>U1</UploadId></InitiateMultipartUploadResult>"
        )
    );
    assert_eq!(
        complete_multipart_upload_result("http://h/b/k", "b", "k", "abc-2"),
        format!(
            "{HEAD}<CompleteMultipartUploadResult xmlns=\"{S3_XMLNS}\">\
             <Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key>\
             <ETag>&quot;abc-2&quot;</ETag></CompleteMultipartUploadResult>"
        )
    );
}

#[test]
fn list_parts_exact() {
    let r = ListParts {
        checksum: None,
        bucket: "b".to_owned(),
        key: "k".to_owned(),
        upload_id: "U".to_owned(),
        owner: owner(),
        part_number_marker: 0,
        next_part_number_marker: Some(1),
        max_parts: 1,
        is_truncated: true,
        parts: vec![PartEntry {
            checksum: None,
            part_number: 1,
            last_modified_ms: T,
            etag: "e1".to_owned(),
            size: 5_242_880,
        }],
    };
    assert_eq!(
        list_parts(&r),
        format!(
            "{HEAD}<ListPartsResult xmlns=\"{S3_XMLNS}\"><Bucket>b</Bucket><Key>k</Key>\
             <UploadId>U</UploadId>\
             <Initiator><ID>abc123</ID><DisplayName>me</DisplayName></Initiator>\
             <Owner><ID>abc123</ID><DisplayName>me</DisplayName></Owner>\
             <StorageClass>STANDARD</StorageClass><PartNumberMarker>0</PartNumberMarker>\
             <NextPartNumberMarker>1</NextPartNumberMarker><MaxParts>1</MaxParts>\
             <IsTruncated>true</IsTruncated><Part><PartNumber>1</PartNumber>\
             <LastModified>2026-11-25T17:13:11.000Z</LastModified><ETag>&quot;e1&quot;</ETag>\
             <Size>5242880</Size></Part></ListPartsResult>"
        )
    );
}

#[test]
fn list_multipart_uploads_exact() {
    let r = ListMultipartUploads {
        bucket: "b".to_owned(),
        key_marker: String::new(),
        upload_id_marker: String::new(),
        next_key_marker: Some("a b".to_owned()),
        next_upload_id_marker: Some("U".to_owned()),
        delimiter: Some("/".to_owned()),
        prefix: String::new(),
        max_uploads: 1,
        is_truncated: true,
        url_encoding: true,
        uploads: vec![UploadEntry {
            key: "a b".to_owned(),
            upload_id: "U".to_owned(),
            initiated_ms: T,
        }],
        common_prefixes: vec!["d d/".to_owned()],
        owner: owner(),
    };
    assert_eq!(
        list_multipart_uploads(&r),
        format!(
            "{HEAD}<ListMultipartUploadsResult xmlns=\"{S3_XMLNS}\"><Bucket>b</Bucket>\
             <KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>\
             <NextKeyMarker>a%20b</NextKeyMarker><NextUploadIdMarker>U</NextUploadIdMarker>\
             <Delimiter>/</Delimiter><Prefix></Prefix><MaxUploads>1</MaxUploads>\
             <IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>\
             <Upload><Key>a%20b</Key><UploadId>U</UploadId>\
             <Initiator><ID>abc123</ID><DisplayName>me</DisplayName></Initiator>\
             <Owner><ID>abc123</ID><DisplayName>me</DisplayName></Owner>\
             <StorageClass>STANDARD</StorageClass>\
             <Initiated>2026-11-25T17:13:11.000Z</Initiated></Upload>\
             <CommonPrefixes><Prefix>d%20d/</Prefix></CommonPrefixes>\
             </ListMultipartUploadsResult>"
        )
    );
}
