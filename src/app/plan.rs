//! `gateway plan`: what uploading a data set will cost, before doing it.
//!
//! Contract:
//! - The bytes are exact for the configured layout: each object over `inline_limit` is cut into
//!   segments of `segment_size`, each segment is encrypted (a tag per `block_size` block) and
//!   coded into `total` pieces (or one per node when there are fewer nodes, as the upload
//!   does) of `minimum` data pieces' size, each piece a header plus one
//!   MAC'd record per stripe ([`Layout`], the same code the upload path uses). Objects up to
//!   `inline_limit` live in the metadata and send no piece.
//! - Upstream is what an upload sends to the nodes: `total` pieces per segment. When `success`
//!   < `total`, the last `total − success` pieces to finish are cancelled (the long tail): they
//!   send at most their whole size, and on nodes of equal speed nearly all of it, so upstream is
//!   planned at `total` pieces and the long tail bounded by `total − success` of them.
//!   Metadata replication adds a few hundred bytes per object, not counted.
//! - The upload time is upstream over the uplink: the uplink is assumed to be the bottleneck
//!   (encryption and coding run at hundreds of MB/s on one core).
//! - Connections: one per piece while a segment uploads, each to a different node; at most
//!   `max_connections / total` segments send at once.

use std::path::Path;

use crate::config::{LimitsConfig, StorageConfig};
use crate::crypto::ciphertext_len;
use crate::erasure::{Layout, Scheme};

/// The objects to plan for.
#[derive(Debug, Clone, Default)]
pub struct DataSet {
    /// Object sizes.
    pub sizes: Vec<u64>,
}

impl DataSet {
    /// `count` objects sharing `total` bytes as evenly as they can.
    pub fn even(total: u64, count: u64) -> DataSet {
        let count = count.max(1);
        let each = total / count;
        let rest = total % count;
        DataSet {
            sizes: (0..count).map(|i| each + u64::from(i < rest)).collect(),
        }
    }

    /// Every regular file under `dir` (symbolic links are not followed), one object each as
    /// rclone copies them.
    pub fn directory(dir: &Path) -> std::io::Result<DataSet> {
        let mut sizes = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    todo.push(entry.path());
                } else if kind.is_file() {
                    sizes.push(entry.metadata()?.len());
                }
            }
        }
        Ok(DataSet { sizes })
    }
}

/// What uploading a [`DataSet`] costs (see the module doc).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub scheme: crate::erasure::Scheme,
    pub nodes: usize,
    pub objects: u64,
    pub inline_objects: u64,
    pub plain_bytes: u64,
    pub segments: u64,
    /// Bytes kept on the nodes: at least `success` pieces per segment (pieces whose commit was
    /// under way when `success` were durable are kept too).
    pub kept_bytes: u64,
    /// Bytes sent to the nodes (`total` pieces per segment).
    pub upstream_bytes: u64,
    /// The most the long tail can waste (`total − success` pieces per segment).
    pub long_tail_max_bytes: u64,
    /// Upstream over plaintext.
    pub expansion: f64,
    pub uplink_bytes_per_sec: u64,
    pub upload_secs: f64,
    pub connections_per_upload: u64,
    pub max_connections: u64,
    pub parallel_uploads: u64,
    /// Per month for `kept_bytes`, when a price per GB-month is given.
    pub monthly_cost: Option<f64>,
}

/// Plans `data` over `nodes` nodes with `storage`'s layout, `limits`' connection cap and an
/// uplink of `uplink` bytes per second (at least 1).
pub fn plan(
    data: &DataSet,
    storage: &StorageConfig,
    limits: &LimitsConfig,
    nodes: usize,
    uplink: u64,
    price_per_gb_month: Option<f64>,
) -> Plan {
    let Scheme {
        minimum, success, ..
    } = storage.scheme;
    // An upload codes and starts min(total, nodes) pieces, as put.rs does (nodes ≥ success is
    // the configuration's rule).
    let total = storage
        .scheme
        .total
        .min(u16::try_from(nodes).unwrap_or(u16::MAX));
    let success = success.min(total);
    let (mut inline, mut plain, mut segments, mut piece_bytes) = (0u64, 0u64, 0u64, 0u64);
    for &size in &data.sizes {
        plain = plain.saturating_add(size);
        if size <= storage.inline_limit {
            inline += 1;
            continue;
        }
        let seg = storage.segment_size.max(1);
        let full = size / seg;
        let last = size % seg;
        let piece = |plain_len: u64| {
            Layout::fitted(
                minimum as usize,
                total as usize,
                ciphertext_len(plain_len, storage.block_size),
                storage.chunk_size,
            )
            .piece_len()
        };
        segments += full + u64::from(last > 0);
        piece_bytes = piece_bytes
            .saturating_add(full.saturating_mul(piece(seg)))
            .saturating_add(if last > 0 { piece(last) } else { 0 });
    }
    let upstream = piece_bytes.saturating_mul(u64::from(total));
    let uplink = uplink.max(1);
    let max_connections = limits.max_connections as u64;
    Plan {
        scheme: storage.scheme,
        nodes,
        objects: data.sizes.len() as u64,
        inline_objects: inline,
        plain_bytes: plain,
        segments,
        kept_bytes: piece_bytes.saturating_mul(u64::from(success)),
        upstream_bytes: upstream,
        long_tail_max_bytes: piece_bytes.saturating_mul(u64::from(total.saturating_sub(success))),
        expansion: if plain > 0 {
            upstream as f64 / plain as f64
        } else {
            0.0
        },
        uplink_bytes_per_sec: uplink,
        upload_secs: upstream as f64 / uplink as f64,
        connections_per_upload: u64::from(total),
        max_connections,
        // An upload needs `success` slots to start and uses up to `total`.
        parallel_uploads: (max_connections / u64::from(total.max(1))).max(1),
        monthly_cost: price_per_gb_month
            .map(|p| p * piece_bytes.saturating_mul(u64::from(success)) as f64 / 1e9),
    }
}

/// Parses an uplink: bits per second with `bit` or `bps` ("100Mbit", "1Gbps", "500kbit/s"),
/// or bytes per second like `parse_size` ("12MiB", "12MB", "12MB/s", "12MBps"). A bare `Mb`,
/// `Gb` or `kb` is refused as ambiguous.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let lower = t.to_ascii_lowercase();
    // Bits: "bit" in any case, or "bps" with a lowercase b ("MBps" is bytes).
    let bits = (lower.ends_with("bit") || t.ends_with("bps")).then(|| &t[..t.len() - 3]);
    let Some(num) = bits else {
        let bytes = t
            .strip_suffix("ps")
            .filter(|b| b.ends_with('B'))
            .unwrap_or(t);
        if bytes.ends_with('b') && bytes.len() >= 2 {
            let prefix = bytes.as_bytes()[bytes.len() - 2];
            if prefix.is_ascii_alphabetic() {
                return Err(format!(
                    "{s:?} is ambiguous: say \"Mbit\" for bits or \"MB\" for bytes per second"
                ));
            }
        }
        return crate::config::parse_size(bytes);
    };
    let num = num.trim_end();
    let (digits, factor) = match num.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&num[..num.len() - 1], 1e3),
        Some('m') => (&num[..num.len() - 1], 1e6),
        Some('g') => (&num[..num.len() - 1], 1e9),
        _ => (num, 1.0),
    };
    let value: f64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. \"100Mbit\", \"12MiB\")"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(((value * factor) / 8.0).round().max(1.0) as u64)
}

/// The readable plan `gateway plan` prints.
pub fn render(p: &Plan) -> String {
    use crate::admin::human_bytes;
    let secs = p.upload_secs;
    let time = if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 2.0 * 3600.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs < 2.0 * 86400.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86400.0)
    };
    let mut out = format!(
        "{} objects, {} ({} inline in the metadata, sending no piece), {} segments\n",
        p.objects,
        human_bytes(p.plain_bytes),
        p.inline_objects,
        p.segments
    );
    out.push_str(&format!(
        "scheme {} over {} nodes: any {} of each segment's pieces rebuild it\n",
        p.scheme, p.nodes, p.scheme.minimum,
    ));
    out.push_str(&format!(
        "  upstream      {} ({:.2}× the data: every piece of every segment)\n",
        human_bytes(p.upstream_bytes),
        p.expansion
    ));
    out.push_str(&format!(
        "  kept on nodes at least {}\n  long tail     at most {} (pieces cancelled once `success` are durable)\n",
        human_bytes(p.kept_bytes),
        human_bytes(p.long_tail_max_bytes)
    ));
    out.push_str(&format!(
        "  upload time   {time} at {}/s ({:.0} Mbit/s)\n",
        human_bytes(p.uplink_bytes_per_sec),
        p.uplink_bytes_per_sec as f64 * 8.0 / 1e6
    ));
    out.push_str(&format!(
        "  connections   {} per upload (one per piece, each to a different node); {} in all \
         (limits.max_connections): up to {} segments upload at once\n",
        p.connections_per_upload, p.max_connections, p.parallel_uploads
    ));
    if let Some(cost) = p.monthly_cost {
        out.push_str(&format!(
            "  cost          at least {cost:.2} per month for what is kept on the nodes\n"
        ));
    }
    let success = u64::from(p.scheme.success);
    if (p.nodes as u64) < success {
        out.push_str(&format!(
            "  WARNING: {} nodes cannot hold the {success} pieces an upload needs on different nodes\n",
            p.nodes
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(scheme: &str) -> StorageConfig {
        StorageConfig {
            scheme: scheme.parse().unwrap(),
            ..StorageConfig::default()
        }
    }

    #[test]
    fn bytes_follow_the_layout() {
        let s = storage("4/5/6/6");
        // 48 MiB in one segment: 768 blocks of 64 KiB with a 16-byte tag each, over 4 data
        // pieces in 64 KiB chunks with 32-byte MACs, plus a 32-byte header.
        let p = plan(
            &DataSet::even(48 << 20, 1),
            &s,
            &LimitsConfig::default(),
            6,
            1 << 20,
            None,
        );
        let cipher = (48u64 << 20) + 768 * 16;
        let stripes = cipher.div_ceil(4 * 65536);
        let piece = 32 + stripes * (65536 + 32);
        assert_eq!((p.segments, p.inline_objects), (1, 0));
        assert_eq!(p.upstream_bytes, 6 * piece);
        assert_eq!(p.kept_bytes, 6 * piece);
        assert_eq!(p.long_tail_max_bytes, 0);
        assert!((p.upload_secs - (6 * piece) as f64 / (1 << 20) as f64).abs() < 1e-9);
        assert_eq!((p.connections_per_upload, p.parallel_uploads), (6, 10));

        // Two segments, the second one short; and an inline object sends nothing.
        let data = DataSet {
            sizes: vec![(64 << 20) + 100, 4096],
        };
        let p = plan(&data, &s, &LimitsConfig::default(), 6, 1, Some(0.01));
        assert_eq!((p.objects, p.segments, p.inline_objects), (2, 2, 1));
        // The short segment: 100 bytes and one tag, 29 bytes per data piece rounded up to an
        // even chunk of 30, one stripe.
        let short = 32 + 30 + 32;
        let full = plan(
            &DataSet::even(64 << 20, 1),
            &s,
            &LimitsConfig::default(),
            6,
            1,
            None,
        );
        assert_eq!(p.upstream_bytes, full.upstream_bytes + 6 * short);
        let gb_month = p.kept_bytes as f64 / 1e9 * 0.01;
        assert!((p.monthly_cost.unwrap() - gb_month).abs() < 1e-12);

        // Fewer nodes than total: the upload codes one piece per node, and so does the plan.
        let p = plan(
            &DataSet::even(64 << 20, 1),
            &storage("29/35/80/110"),
            &LimitsConfig::default(),
            90,
            1,
            None,
        );
        assert_eq!(p.upstream_bytes * 80, p.kept_bytes * 90);
        assert_eq!(p.connections_per_upload, 90);

        // A long tail is bounded by total − success pieces.
        let p = plan(
            &DataSet::even(64 << 20, 1),
            &storage("29/35/80/110"),
            &LimitsConfig::default(),
            110,
            1,
            None,
        );
        assert_eq!(p.long_tail_max_bytes * 80, p.kept_bytes * 30);
        assert_eq!(p.upstream_bytes * 80, p.kept_bytes * 110);
        // 110/29 plus the padding of the last stripe (64 MiB over 29 × 64 KiB stripes: 36
        // stripes, 2 % padding) and the MACs and tags.
        assert!(
            p.expansion > 110.0 / 29.0 && p.expansion < 110.0 / 29.0 * 1.03,
            "{}",
            p.expansion
        );
    }

    #[test]
    fn rates_in_bits_and_bytes() {
        assert_eq!(parse_rate("100Mbit").unwrap(), 12_500_000);
        assert_eq!(parse_rate("1Gbps").unwrap(), 125_000_000);
        assert_eq!(parse_rate("500 kbit/s").unwrap(), 62_500);
        assert_eq!(parse_rate("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_rate("8MiB/s").unwrap(), 8 << 20);
        assert_eq!(parse_rate("12MBps").unwrap(), 12_000_000);
        assert_eq!(parse_rate("12MB/s").unwrap(), 12_000_000);
        assert!(parse_rate("100Mb").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0Mbit").is_err());
    }

    #[test]
    fn a_directory_is_one_object_per_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("x"), vec![0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/b/y"), vec![0u8; 5000]).unwrap();
        let mut d = DataSet::directory(dir.path()).unwrap();
        d.sizes.sort();
        assert_eq!(d.sizes, vec![10, 5000]);
        assert_eq!(DataSet::even(10, 3).sizes, vec![4, 3, 3]);
    }
}
