//! S3 listings over the `objects` and `uploads` tables: prefix, delimiter (common prefixes),
//! markers and page size, in key byte order.
//!
//! A page costs O(log n) per returned entry plus one row: after a common prefix the scan seeks
//! past every key of that prefix instead of stepping over them. Both page builders also return
//! how many rows they read from SQLite, which the tests use to check that.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::super::{
    common_prefix, successor, ListPage, ListQuery, MetaError, ObjectSummary, UploadListPage,
    UploadListQuery, UploadSummary,
};

/// Where the next range scan of a listing starts.
pub(super) enum Lower {
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
    /// Uploads only: after this (key, upload id) position.
    After(Vec<u8>, String),
}

/// Where a listing starts, given its marker: `None` if nothing can follow it.
///
/// A marker that is a common prefix, or lies inside one, means that prefix was already
/// returned, so the listing resumes after all of its keys. A marker below the prefix range
/// starts at the prefix.
fn start(prefix: &str, marker: Option<&str>, delimiter: Option<&str>) -> Option<Lower> {
    match marker {
        Some(after) if after.as_bytes() >= prefix.as_bytes() => {
            match delimiter.and_then(|d| common_prefix(prefix, after, d)) {
                Some(group) => successor(group.as_bytes()).map(Lower::Inclusive),
                None => Some(Lower::Exclusive(after.as_bytes().to_vec())),
            }
        }
        _ => Some(Lower::Inclusive(prefix.as_bytes().to_vec())),
    }
}

fn utf8_key(bytes: Vec<u8>) -> Result<String, MetaError> {
    String::from_utf8(bytes).map_err(|e| MetaError::Corrupt(format!("key is not UTF-8: {e}")))
}

/// The table a listing scans: its selected columns (key first) and its order.
pub(super) struct Table {
    select: &'static str,
    order: &'static str,
}

pub(super) const OBJECTS: Table = Table {
    select: "SELECT key, size, etag, last_modified_ms FROM objects",
    order: "key",
};

pub(super) const UPLOADS: Table = Table {
    select: "SELECT key, upload_id, initiated_ms FROM uploads",
    order: "key, upload_id",
};

/// SQL and parameters of one range scan: rows of `bucket` from `lower`, below `upper`, in
/// order. Placeholders are numbered in the order of the returned parameters.
pub(super) fn range_sql(
    table: &Table,
    bucket: &str,
    lower: &Lower,
    upper: Option<&[u8]>,
) -> (String, Vec<Value>) {
    let mut args = vec![Value::Text(bucket.to_owned())];
    let bound = match lower {
        Lower::Inclusive(key) => {
            args.push(Value::Blob(key.clone()));
            "key >= ?2"
        }
        Lower::Exclusive(key) => {
            args.push(Value::Blob(key.clone()));
            "key > ?2"
        }
        Lower::After(key, upload_id) => {
            args.push(Value::Blob(key.clone()));
            args.push(Value::Text(upload_id.clone()));
            "(key, upload_id) > (?2, ?3)"
        }
    };
    let mut sql = format!("{} WHERE bucket = ?1 AND {bound}", table.select);
    if let Some(upper) = upper {
        args.push(Value::Blob(upper.to_vec()));
        sql.push_str(&format!(" AND key < ?{}", args.len()));
    }
    sql.push_str(&format!(" ORDER BY {}", table.order));
    (sql, args)
}

enum Item<T> {
    Entry(T),
    Prefix(String),
}

struct Scan<T> {
    items: Vec<Item<T>>,
    truncated: bool,
    rows_read: usize,
}

/// Collects up to `max` (> 0) entries and common prefixes of `table` in bucket order from
/// `lower`, keys starting with `prefix` only; `entry` turns a row whose key does not roll up
/// into a common prefix into an entry.
#[allow(clippy::too_many_arguments)]
fn scan<T>(
    conn: &Connection,
    table: &Table,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    mut lower: Lower,
    max: usize,
    mut entry: impl FnMut(&rusqlite::Row<'_>, String) -> Result<T, MetaError>,
) -> Result<Scan<T>, MetaError> {
    // Keys starting with the prefix are exactly those in [prefix, successor(prefix)).
    let upper = successor(prefix.as_bytes());
    let mut out = Scan {
        items: Vec::new(),
        truncated: false,
        rows_read: 0,
    };
    'seek: loop {
        let (sql, args) = range_sql(table, bucket, &lower, upper.as_deref());
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            out.rows_read += 1;
            if out.items.len() >= max {
                // Any row left in range yields another entry or a new common prefix.
                out.truncated = true;
                break 'seek;
            }
            let key = utf8_key(row.get(0)?)?;
            if let Some(group) = delimiter.and_then(|d| common_prefix(prefix, &key, d)) {
                let next = successor(group.as_bytes());
                out.items.push(Item::Prefix(group.to_owned()));
                match next {
                    Some(next) => {
                        lower = Lower::Inclusive(next);
                        continue 'seek;
                    }
                    None => break 'seek,
                }
            }
            out.items.push(Item::Entry(entry(row, key)?));
        }
        break;
    }
    Ok(out)
}

/// Builds one page of an object listing (see [`ListQuery`]) and counts the rows read.
pub(super) fn list_page(conn: &Connection, q: &ListQuery) -> Result<(ListPage, usize), MetaError> {
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    let mut page = ListPage::default();
    if q.max_keys == 0 {
        // S3 answers max-keys=0 with an empty page that is not truncated (there is nothing
        // to continue from), whatever the bucket holds.
        return Ok((page, 0));
    }
    let Some(lower) = start(q.prefix, q.start_after, delimiter) else {
        return Ok((page, 0));
    };
    let scan = scan(
        conn,
        &OBJECTS,
        q.bucket,
        q.prefix,
        delimiter,
        lower,
        q.max_keys,
        |row, key| {
            Ok(ObjectSummary {
                key,
                size: row.get(1)?,
                etag: row.get(2)?,
                last_modified_ms: row.get(3)?,
            })
        },
    )?;
    page.is_truncated = scan.truncated;
    for item in scan.items {
        match item {
            Item::Entry(object) => {
                page.next_marker = Some(object.key.clone());
                page.objects.push(object);
            }
            Item::Prefix(group) => {
                page.next_marker = Some(group.clone());
                page.common_prefixes.push(group);
            }
        }
    }
    Ok((page, scan.rows_read))
}

/// Builds one page of ListMultipartUploads (see [`UploadListQuery`]) and counts the rows read.
pub(super) fn uploads_page(
    conn: &Connection,
    q: &UploadListQuery,
) -> Result<(UploadListPage, usize), MetaError> {
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    let mut page = UploadListPage::default();
    if q.max_uploads == 0 {
        return Ok((page, 0));
    }
    let lower = match (start(q.prefix, q.key_marker, delimiter), q.upload_id_marker) {
        (None, _) => return Ok((page, 0)),
        // The upload-id marker only matters with a key marker that is an upload's key: the
        // listing then resumes after that upload, within the same key.
        (Some(Lower::Exclusive(key)), Some(upload_id)) => Lower::After(key, upload_id.to_owned()),
        (Some(lower), _) => lower,
    };
    let scan = scan(
        conn,
        &UPLOADS,
        q.bucket,
        q.prefix,
        delimiter,
        lower,
        q.max_uploads,
        |row, key| {
            Ok(UploadSummary {
                key,
                upload_id: row.get(1)?,
                initiated_ms: row.get(2)?,
            })
        },
    )?;
    page.is_truncated = scan.truncated;
    for item in scan.items {
        match item {
            Item::Entry(upload) => {
                page.next_key_marker = Some(upload.key.clone());
                page.next_upload_id_marker = Some(upload.upload_id.clone());
                page.uploads.push(upload);
            }
            Item::Prefix(group) => {
                page.next_key_marker = Some(group.clone());
                page.next_upload_id_marker = None;
                page.common_prefixes.push(group);
            }
        }
    }
    Ok((page, scan.rows_read))
}
