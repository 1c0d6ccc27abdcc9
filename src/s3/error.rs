//! The S3 error every handler returns, and its wire form.
//!
//! Contract:
//! - [`S3ErrorCode`] is the closed set of S3 error codes this gateway can emit. `as_str` is the
//!   exact `<Code>` string AWS uses and `status` the HTTP status AWS's error-code table gives it
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList>).
//! - [`S3Error`] carries a code, a client-visible message, extra XML detail elements
//!   (`BucketName`, `Key`, `UploadId`, ... in the order added) and extra response headers
//!   (`Content-Range: bytes */SIZE` on `InvalidRange`). Nothing in it is secret: every field is
//!   meant to reach the client.
//! - [`S3Error::internal`] keeps the underlying cause out of the client-visible message (which is
//!   AWS's generic one); the cause is only reachable through [`S3Error::cause`] and `Display`, so
//!   the caller decides whether and where to log it. This module logs nothing.
//! - [`S3Error::to_xml`] renders `<?xml ...?>\n<Error><Code/><Message/>{details}<Resource/>
//!   <RequestId/></Error>` with every text node escaped by [`super::xml::escape_text`].
//!   The `Error` root carries no namespace, as on AWS. HEAD responses must carry no body; that is
//!   the caller's job.

use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};

use super::xml::{escape_text, XML_DECLARATION};

macro_rules! s3_error_codes {
    ($($code:ident => $status:ident, $message:literal;)*) => {
        /// An S3 error code, as it appears in `<Code>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum S3ErrorCode {
            $(
                #[doc = $message]
                $code,
            )*
        }

        impl S3ErrorCode {
            /// Every code, for exhaustive tests and tooling.
            pub const ALL: &'static [S3ErrorCode] = &[$(S3ErrorCode::$code),*];

            /// The exact `<Code>` string.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(S3ErrorCode::$code => stringify!($code),)*
                }
            }

            /// The HTTP status AWS returns with this code.
            pub fn status(&self) -> StatusCode {
                match self {
                    $(S3ErrorCode::$code => StatusCode::$status,)*
                }
            }

            /// AWS's generic message for this code, used when the caller has nothing better.
            pub fn default_message(&self) -> &'static str {
                match self {
                    $(S3ErrorCode::$code => $message,)*
                }
            }
        }
    };
}

s3_error_codes! {
    AccessControlListNotSupported => BAD_REQUEST, "The bucket does not allow ACLs";
    AccessDenied => FORBIDDEN, "Access Denied";
    AuthorizationHeaderMalformed => BAD_REQUEST,
        "The authorization header you provided is invalid.";
    AuthorizationQueryParametersError => BAD_REQUEST,
        "The authorization query parameters you provided are invalid.";
    BadDigest => BAD_REQUEST, "The Content-MD5 you specified did not match what we received.";
    BucketAlreadyExists => CONFLICT,
        "The requested bucket name is not available. Please select a different name and try again.";
    BucketAlreadyOwnedByYou => CONFLICT,
        "Your previous request to create the named bucket succeeded and you already own it.";
    BucketNotEmpty => CONFLICT, "The bucket you tried to delete is not empty";
    ConditionalRequestConflict => CONFLICT,
        "A conflicting operation occurred. If using PutObject you can retry the request.";
    EntityTooLarge => BAD_REQUEST, "Your proposed upload exceeds the maximum allowed object size.";
    EntityTooSmall => BAD_REQUEST,
        "Your proposed upload is smaller than the minimum allowed object size.";
    ExpiredToken => BAD_REQUEST, "The provided token has expired.";
    IllegalLocationConstraintException => BAD_REQUEST,
        "The location constraint is incompatible with the region this request was sent to.";
    IllegalVersioningConfigurationException => BAD_REQUEST,
        "The versioning configuration specified in the request is invalid.";
    IncompleteBody => BAD_REQUEST,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    InternalError => INTERNAL_SERVER_ERROR, "We encountered an internal error. Please try again.";
    InvalidAccessKeyId => FORBIDDEN,
        "The AWS Access Key Id you provided does not exist in our records.";
    InvalidArgument => BAD_REQUEST, "Invalid Argument";
    InvalidBucketName => BAD_REQUEST, "The specified bucket is not valid.";
    InvalidBucketState => CONFLICT, "The request is not valid with the current state of the bucket.";
    InvalidDigest => BAD_REQUEST, "The Content-MD5 you specified is not valid.";
    InvalidLocationConstraint => BAD_REQUEST, "The specified location constraint is not valid.";
    InvalidObjectState => FORBIDDEN, "The operation is not valid for the current state of the object.";
    InvalidPart => BAD_REQUEST,
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";
    InvalidPartOrder => BAD_REQUEST,
        "The list of parts was not in ascending order. The parts list must be specified in order by part number.";
    InvalidRange => RANGE_NOT_SATISFIABLE, "The requested range is not satisfiable";
    InvalidRequest => BAD_REQUEST, "Invalid Request";
    InvalidStorageClass => BAD_REQUEST, "The storage class you specified is not valid";
    InvalidPartNumber => RANGE_NOT_SATISFIABLE, "The requested partnumber is not satisfiable.";
    InvalidTag => BAD_REQUEST, "The tag provided was not a valid tag.";
    InvalidURI => BAD_REQUEST, "Couldn't parse the specified URI.";
    KeyTooLongError => BAD_REQUEST, "Your key is too long";
    MalformedXML => BAD_REQUEST,
        "The XML you provided was not well-formed or did not validate against our published schema";
    MaxMessageLengthExceeded => BAD_REQUEST, "Your request was too big.";
    MetadataTooLarge => BAD_REQUEST,
        "Your metadata headers exceed the maximum allowed metadata size.";
    MethodNotAllowed => METHOD_NOT_ALLOWED,
        "The specified method is not allowed against this resource.";
    MissingContentLength => LENGTH_REQUIRED, "You must provide the Content-Length HTTP header.";
    MissingRequestBodyError => BAD_REQUEST, "Request Body is empty";
    MissingSecurityHeader => BAD_REQUEST, "Your request is missing a required header.";
    NoSuchBucket => NOT_FOUND, "The specified bucket does not exist";
    NoSuchBucketPolicy => NOT_FOUND, "The bucket policy does not exist";
    NoSuchCORSConfiguration => NOT_FOUND, "The CORS configuration does not exist";
    NoSuchKey => NOT_FOUND, "The specified key does not exist.";
    NoSuchLifecycleConfiguration => NOT_FOUND, "The lifecycle configuration does not exist";
    NoSuchTagSet => NOT_FOUND, "The TagSet does not exist";
    NoSuchUpload => NOT_FOUND,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.";
    NoSuchVersion => NOT_FOUND, "The specified version does not exist.";
    NotImplemented => NOT_IMPLEMENTED,
        "A header you provided implies functionality that is not implemented";
    NotModified => NOT_MODIFIED, "Not Modified";
    OperationAborted => CONFLICT,
        "A conflicting conditional operation is currently in progress against this resource. Try again.";
    PreconditionFailed => PRECONDITION_FAILED,
        "At least one of the pre-conditions you specified did not hold";
    RequestHeaderSectionTooLarge => BAD_REQUEST,
        "Your request header section exceeds the maximum allowed size.";
    RequestTimeTooSkewed => FORBIDDEN,
        "The difference between the request time and the current time is too large.";
    RequestTimeout => BAD_REQUEST,
        "Your socket connection to the server was not read from or written to within the timeout period.";
    ServiceUnavailable => SERVICE_UNAVAILABLE, "Service is unable to handle request.";
    SignatureDoesNotMatch => FORBIDDEN,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
    SlowDown => SERVICE_UNAVAILABLE, "Please reduce your request rate.";
    TooManyBuckets => BAD_REQUEST, "You have attempted to create more buckets than allowed.";
    UnexpectedContent => BAD_REQUEST, "This request does not support content.";
    XAmzContentSHA256Mismatch => BAD_REQUEST,
        "The provided 'x-amz-content-sha256' header does not match what was computed.";
}

impl fmt::Display for S3ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An S3 error response: code, message, extra XML details and extra headers.
#[derive(Debug)]
pub struct S3Error {
    pub code: S3ErrorCode,
    /// Client-visible `<Message>`.
    pub message: String,
    /// Extra elements written after `<Message>`, in order (`("Key", key)`, ...). Names must be
    /// valid XML names; values are escaped on output.
    pub details: Vec<(&'static str, String)>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Server-side cause, never sent to the client.
    cause: Option<String>,
}

impl S3Error {
    pub fn new(code: S3ErrorCode, message: impl Into<String>) -> Self {
        S3Error {
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds an XML detail element after `<Message>` (e.g. `BucketName`, `Key`, `Condition`).
    pub fn with_detail(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    /// Records a server-side cause for the log (never sent to the client).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The server-side cause given to [`S3Error::internal`], for the caller to log.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// `InternalError` with AWS's generic message; `err` is kept only as the [`cause`].
    ///
    /// [`cause`]: S3Error::cause
    pub fn internal(err: impl fmt::Display) -> Self {
        let mut e = S3Error::from(S3ErrorCode::InternalError);
        e.cause = Some(err.to_string());
        e
    }

    pub fn access_denied() -> Self {
        S3ErrorCode::AccessDenied.into()
    }

    pub fn no_such_bucket(bucket: &str) -> Self {
        S3Error::from(S3ErrorCode::NoSuchBucket).with_detail("BucketName", bucket)
    }

    pub fn no_such_key(key: &str) -> Self {
        S3Error::from(S3ErrorCode::NoSuchKey).with_detail("Key", key)
    }

    pub fn no_such_upload(upload_id: &str) -> Self {
        S3Error::from(S3ErrorCode::NoSuchUpload).with_detail("UploadId", upload_id)
    }

    pub fn bucket_not_empty(bucket: &str) -> Self {
        S3Error::from(S3ErrorCode::BucketNotEmpty).with_detail("BucketName", bucket)
    }

    pub fn bucket_already_owned_by_you(bucket: &str) -> Self {
        S3Error::from(S3ErrorCode::BucketAlreadyOwnedByYou).with_detail("BucketName", bucket)
    }

    pub fn invalid_bucket_name(bucket: &str) -> Self {
        S3Error::from(S3ErrorCode::InvalidBucketName).with_detail("BucketName", bucket)
    }

    /// `InvalidArgument` naming the offending argument, as AWS does.
    pub fn invalid_argument(message: impl Into<String>, name: &str, value: &str) -> Self {
        S3Error::new(S3ErrorCode::InvalidArgument, message)
            .with_detail("ArgumentName", name)
            .with_detail("ArgumentValue", value)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        S3Error::new(S3ErrorCode::InvalidRequest, message)
    }

    /// `416 InvalidRange` with `Content-Range: bytes */SIZE` (RFC 9110 §15.5.17).
    pub fn invalid_range(range_requested: &str, object_size: u64) -> Self {
        let err = S3Error::from(S3ErrorCode::InvalidRange)
            .with_detail("RangeRequested", range_requested)
            .with_detail("ActualObjectSize", object_size.to_string());
        // Digits and ASCII only, so this cannot fail; no header is better than a panic anyway.
        match HeaderValue::try_from(format!("bytes */{object_size}")) {
            Ok(v) => err.with_header(http::header::CONTENT_RANGE, v),
            Err(_) => err,
        }
    }

    pub fn malformed_xml() -> Self {
        S3ErrorCode::MalformedXML.into()
    }

    /// `PreconditionFailed` naming the header that failed (`If-Match`, `If-Unmodified-Since`...).
    pub fn precondition_failed(condition: &str) -> Self {
        S3Error::from(S3ErrorCode::PreconditionFailed).with_detail("Condition", condition)
    }

    pub fn not_implemented(what: impl Into<String>) -> Self {
        S3Error::new(S3ErrorCode::NotImplemented, what)
    }

    /// The XML error document. `resource` is the request path, `request_id` the id also sent
    /// in `x-amz-request-id`.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(XML_DECLARATION);
        out.push_str("<Error>");
        push_element(&mut out, "Code", self.code.as_str());
        push_element(&mut out, "Message", &self.message);
        for (name, value) in &self.details {
            push_element(&mut out, name, value);
        }
        push_element(&mut out, "Resource", resource);
        push_element(&mut out, "RequestId", request_id);
        out.push_str("</Error>");
        out
    }
}

fn push_element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape_text(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

impl From<super::xml::XmlError> for S3Error {
    fn from(e: super::xml::XmlError) -> Self {
        match e {
            super::xml::XmlError::Malformed => S3ErrorCode::MalformedXML.into(),
            super::xml::XmlError::TooLarge => S3ErrorCode::MaxMessageLengthExceeded.into(),
        }
    }
}

impl From<S3ErrorCode> for S3Error {
    /// The code with AWS's generic message.
    fn from(code: S3ErrorCode) -> Self {
        S3Error::new(code, code.default_message())
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " (cause: {cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for S3Error {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_aws_table() {
        use S3ErrorCode::*;
        let expected = [
            (AccessControlListNotSupported, 400),
            (AccessDenied, 403),
            (AuthorizationHeaderMalformed, 400),
            (AuthorizationQueryParametersError, 400),
            (BadDigest, 400),
            (BucketAlreadyExists, 409),
            (BucketAlreadyOwnedByYou, 409),
            (BucketNotEmpty, 409),
            (EntityTooLarge, 400),
            (EntityTooSmall, 400),
            (IncompleteBody, 400),
            (InternalError, 500),
            (InvalidAccessKeyId, 403),
            (InvalidArgument, 400),
            (InvalidBucketName, 400),
            (InvalidDigest, 400),
            (InvalidPart, 400),
            (InvalidPartOrder, 400),
            (InvalidRange, 416),
            (InvalidRequest, 400),
            (InvalidStorageClass, 400),
            (KeyTooLongError, 400),
            (MalformedXML, 400),
            (MetadataTooLarge, 400),
            (MethodNotAllowed, 405),
            (MissingContentLength, 411),
            (NoSuchBucket, 404),
            (NoSuchKey, 404),
            (NoSuchUpload, 404),
            (NoSuchVersion, 404),
            (NotImplemented, 501),
            (NotModified, 304),
            (PreconditionFailed, 412),
            (RequestHeaderSectionTooLarge, 400),
            (RequestTimeTooSkewed, 403),
            (ServiceUnavailable, 503),
            (SignatureDoesNotMatch, 403),
            (SlowDown, 503),
            (XAmzContentSHA256Mismatch, 400),
        ];
        for (code, status) in expected {
            assert_eq!(code.status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn code_strings_are_the_variant_names() {
        assert_eq!(S3ErrorCode::MalformedXML.as_str(), "MalformedXML");
        assert_eq!(
            S3ErrorCode::XAmzContentSHA256Mismatch.as_str(),
            "XAmzContentSHA256Mismatch"
        );
        assert_eq!(
            S3ErrorCode::NoSuchCORSConfiguration.as_str(),
            "NoSuchCORSConfiguration"
        );
        let mut seen = std::collections::HashSet::new();
        for code in S3ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(!code.default_message().is_empty());
        }
    }

    #[test]
    fn error_document_is_exact_and_escaped() {
        let err = S3Error::no_such_key("a&b<c>\"d'");
        assert_eq!(
            err.to_xml("/bucket/a&b", "REQ1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message>\
             <Key>a&amp;b&lt;c&gt;&quot;d&apos;</Key>\
             <Resource>/bucket/a&amp;b</Resource><RequestId>REQ1</RequestId></Error>"
        );
    }

    #[test]
    fn no_such_bucket_names_the_bucket() {
        let xml = S3Error::no_such_bucket("photos").to_xml("/photos", "R");
        assert!(xml.contains("<Code>NoSuchBucket</Code>"));
        assert!(xml.contains("<BucketName>photos</BucketName>"));
        assert_eq!(S3Error::no_such_bucket("x").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn invalid_range_carries_content_range() {
        let err = S3Error::invalid_range("bytes=100-200", 50);
        assert_eq!(err.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(err.headers.len(), 1);
        assert_eq!(err.headers[0].0, http::header::CONTENT_RANGE);
        assert_eq!(err.headers[0].1, "bytes */50");
        let xml = err.to_xml("/b/k", "R");
        assert!(xml.contains(
            "<RangeRequested>bytes=100-200</RangeRequested><ActualObjectSize>50</ActualObjectSize>"
        ));
    }

    #[test]
    fn internal_hides_cause_from_client() {
        let err = S3Error::internal("disk /var/secret failed");
        assert_eq!(err.code, S3ErrorCode::InternalError);
        assert_eq!(err.cause(), Some("disk /var/secret failed"));
        let xml = err.to_xml("/b", "R");
        assert!(!xml.contains("secret"));
        assert!(
            xml.contains("<Message>We encountered an internal error. Please try again.</Message>")
        );
        assert!(err.to_string().contains("disk /var/secret failed"));
    }

    #[test]
    fn with_header_appends() {
        let err = S3Error::new(S3ErrorCode::SlowDown, "slow")
            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(
            err.headers,
            vec![(http::header::RETRY_AFTER, HeaderValue::from_static("1"))]
        );
        assert_eq!(err.to_string(), "SlowDown: slow");
    }
}
