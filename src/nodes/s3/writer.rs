//! [`S3Writer`]: the [`PieceWriter`] of an [`super::S3Node`], and the upload requests it
//! sends (PutObject and the multipart family).
//!
//! Contract (see also the parent module's): memory is the part buffer (at most
//! [`PART_SIZE`]) plus the `write` in progress; a full buffer is uploaded only when more data
//! comes, so a piece of exactly [`PART_SIZE`] bytes is still one PUT. After any failed part
//! the writer is broken: later writes and the commit fail, and its multipart upload is
//! aborted as for any writer that does not commit.

use std::sync::Arc;

use bytes::Bytes;
use http::header::ETAG;
use http::Method;

use super::{xml, Inner, Req, MAX_PARTS, PART_SIZE, XML_BODY_MAX};
use crate::nodes::{BoxFuture, NodeError, PieceWriter};

pub(super) struct S3Writer {
    inner: Arc<Inner>,
    /// The object's encoded path.
    path: String,
    pub(super) buf: Vec<u8>,
    /// The multipart upload, once one is started.
    pub(super) upload_id: Option<String>,
    /// ETags of the parts uploaded so far, part `i + 1` at `i`.
    pub(super) etags: Vec<String>,
    broken: bool,
}

impl S3Writer {
    pub(super) fn new(inner: Arc<Inner>, path: String) -> S3Writer {
        S3Writer {
            inner,
            path,
            buf: Vec::new(),
            upload_id: None,
            etags: Vec::new(),
            broken: false,
        }
    }

    fn broken_error(&self) -> NodeError {
        self.inner
            .unavailable("an earlier part of this piece failed to upload")
    }

    pub(super) async fn write_data(&mut self, mut data: Bytes) -> Result<(), NodeError> {
        if self.broken {
            return Err(self.broken_error());
        }
        while !data.is_empty() {
            if self.buf.len() == PART_SIZE {
                let part = Bytes::from(std::mem::take(&mut self.buf));
                self.upload_part(part).await?;
            }
            if self.buf.is_empty() && data.len() > PART_SIZE {
                // A whole part straight from the caller's buffer, without a copy.
                let part = data.split_to(PART_SIZE);
                self.upload_part(part).await?;
                continue;
            }
            let take = (PART_SIZE - self.buf.len()).min(data.len());
            self.reserve(take);
            self.buf.extend_from_slice(&data.split_to(take));
        }
        Ok(())
    }

    /// Grows the buffer for `more` bytes, doubling but never past [`PART_SIZE`] (the default
    /// growth could reserve twice that).
    fn reserve(&mut self, more: usize) {
        let need = self.buf.len() + more;
        if need > self.buf.capacity() {
            let target = need.max(self.buf.capacity() * 2).min(PART_SIZE);
            self.buf.reserve_exact(target - self.buf.len());
        }
    }

    async fn upload_part(&mut self, part: Bytes) -> Result<(), NodeError> {
        let result = self.try_upload_part(part).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn try_upload_part(&mut self, part: Bytes) -> Result<(), NodeError> {
        let number = self.etags.len() + 1;
        if number > MAX_PARTS {
            return Err(self.inner.refused(format!(
                "piece larger than {MAX_PARTS} parts of {PART_SIZE} bytes"
            )));
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.inner.create_upload(&self.path).await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let etag = self
            .inner
            .upload_part(&self.path, &upload_id, number, part)
            .await?;
        self.etags.push(etag);
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), NodeError> {
        if self.broken {
            return Err(self.broken_error());
        }
        let body = Bytes::from(std::mem::take(&mut self.buf));
        let Some(upload_id) = self.upload_id.clone() else {
            return self.inner.put_object(&self.path, body).await;
        };
        if !body.is_empty() {
            self.upload_part(body).await?;
        }
        self.inner
            .complete_upload(&self.path, &upload_id, &self.etags)
            .await?;
        self.upload_id = None;
        Ok(())
    }

    /// Aborts the multipart upload, if any; a failure is only logged (the bucket's lifecycle
    /// rules reap what is left).
    async fn abort_upload(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            abort_logged(&self.inner, &self.path, &upload_id).await;
        }
    }
}

async fn abort_logged(inner: &Inner, path: &str, upload_id: &str) {
    if let Err(e) = inner.abort_upload(path, upload_id).await {
        tracing::warn!(node = %inner.id, path, error = %e, "multipart upload not aborted");
    }
}

impl PieceWriter for S3Writer {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), NodeError>> {
        Box::pin(self.write_data(data))
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), NodeError>> {
        Box::pin(async move {
            let result = self.finish().await;
            if result.is_err() {
                self.abort_upload().await;
            }
            result
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.abort_upload().await })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let inner = self.inner.clone();
        let path = std::mem::take(&mut self.path);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { abort_logged(&inner, &path, &upload_id).await });
            }
            Err(_) => tracing::warn!(
                node = %inner.id,
                path,
                "writer dropped outside a runtime: multipart upload left to lifecycle rules"
            ),
        }
    }
}

impl Inner {
    /// PutObject: the whole piece in one request.
    async fn put_object(&self, path: &str, body: Bytes) -> Result<(), NodeError> {
        let req = Req::new("PutObject", Method::PUT, path)
            .large_body(body)
            .await;
        let r = self.call(&req, XML_BODY_MAX).await?;
        if !r.status.is_success() {
            return Err(self.failure(req.what, &r));
        }
        Ok(())
    }

    /// CreateMultipartUpload; returns the upload id.
    async fn create_upload(&self, path: &str) -> Result<String, NodeError> {
        let req = Req::new("CreateMultipartUpload", Method::POST, path).query(&[("uploads", "")]);
        let r = self.call(&req, XML_BODY_MAX).await?;
        if r.status != http::StatusCode::OK {
            return Err(self.failure(req.what, &r));
        }
        xml::parse_upload_id(&r.body).map_err(|e| self.unavailable(format!("{}: {e}", req.what)))
    }

    /// UploadPart; returns the part's ETag.
    pub(super) async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        number: usize,
        part: Bytes,
    ) -> Result<String, NodeError> {
        let number = number.to_string();
        let req = Req::new("UploadPart", Method::PUT, path)
            .query(&[("partNumber", &number), ("uploadId", upload_id)])
            .large_body(part)
            .await;
        let r = self.call(&req, XML_BODY_MAX).await?;
        if !r.status.is_success() {
            return Err(self.failure(req.what, &r));
        }
        r.headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| self.unavailable("UploadPart: answer without an ETag"))
    }

    /// CompleteMultipartUpload of parts `1..=etags.len()`.
    async fn complete_upload(
        &self,
        path: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), NodeError> {
        let req = Req::new("CompleteMultipartUpload", Method::POST, path)
            .query(&[("uploadId", upload_id)])
            .body(Bytes::from(xml::complete_body(etags)));
        let r = self.call(&req, XML_BODY_MAX).await?;
        if r.status != http::StatusCode::OK {
            return Err(self.failure(req.what, &r));
        }
        // S3 may answer 200 and report an error in the body.
        if let Some(e) = xml::error_of(&r.body) {
            return Err(self.error_document(req.what, &e));
        }
        xml::check_complete(&r.body).map_err(|e| self.unavailable(format!("{}: {e}", req.what)))
    }

    /// AbortMultipartUpload; an upload already gone is not an error.
    async fn abort_upload(&self, path: &str, upload_id: &str) -> Result<(), NodeError> {
        let req = Req::new("AbortMultipartUpload", Method::DELETE, path)
            .query(&[("uploadId", upload_id)]);
        let r = self.call(&req, XML_BODY_MAX).await?;
        if r.status.is_success() || r.status == http::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(self.failure(req.what, &r))
    }
}
