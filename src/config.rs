//! Configuration: the TOML file, its defaults, and validation with one-line errors.
//!
//! Relative paths in the file are resolved against the data directory. Every validation error
//! names the offending field and the reason ([`ConfigError`]); the binary prints it on one line
//! and exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::CipherSuite;
use crate::erasure::Scheme;
use crate::nodes::protocol::NodeToken;
use crate::nodes::remote::{validate_address, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7777";
pub const CONFIG_FILE: &str = "config.toml";
pub const KEY_FILE: &str = "root.key";
pub const CREDENTIALS_FILE: &str = "credentials.toml";
pub const METADATA_FILE: &str = "metadata.sqlite";

/// A validation or parse error naming the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("config error: {field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The file as written by users (all optional; defaults fill in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    region: Option<String>,
    key_file: Option<PathBuf>,
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    scheme: Option<String>,
    segment_size: Option<ByteSize>,
    inline_limit: Option<ByteSize>,
    block_size: Option<ByteSize>,
    chunk_size: Option<ByteSize>,
    cipher: Option<String>,
    gc_grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    #[serde(default = "default_kind")]
    kind: String,
    path: Option<PathBuf>,
    address: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    connect_timeout: Option<DurationText>,
    read_timeout: Option<DurationText>,
}

fn default_kind() -> String {
    "dir".into()
}

/// A size: an integer number of bytes or a string like `"64MiB"`, `"4 KiB"`, `"1GB"`.
#[derive(Debug, Clone, Copy)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Str(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A duration: an integer number of seconds or a string like `"500ms"`, `"5s"`, `"2m"`.
#[derive(Debug, Clone, Copy)]
struct DurationText(Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(DurationText(Duration::from_secs(n))),
            Raw::Str(s) => parse_duration(&s)
                .map(DurationText)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"500ms"`, `"5s"`, `"2m"` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (expected e.g. 5 or \"500ms\")"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" | "min" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long")),
        other => Err(format!(
            "unknown duration unit {other:?} in {s:?} (ms, s, m)"
        )),
    }
}

/// Parses `"64MiB"`-style sizes (B, KiB, MiB, GiB, KB, MB, GB; case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 65536 or \"64MiB\")"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir {
        path: PathBuf,
    },
    /// A `gateway node` server.
    Remote(RemoteNodeConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteNodeConfig {
    /// `http://host:port`, validated.
    pub address: String,
    pub token: RemoteToken,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// Where a remote node's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteToken {
    Inline(NodeToken),
    /// A token file (resolved against the data directory), read when the node is opened.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: String,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub scheme: Scheme,
    /// Plaintext bytes per segment; a multiple of `block_size`.
    pub segment_size: u64,
    /// Objects up to this size are stored encrypted in the metadata database.
    pub inline_limit: u64,
    /// Plaintext bytes per AEAD block.
    pub block_size: u32,
    /// Largest chunk a piece holds per stripe.
    pub chunk_size: usize,
    pub cipher: CipherSuite,
    /// Replaced or deleted bodies keep their pieces at least this long, so a read that
    /// began just before the replacement still finds them.
    pub gc_grace: std::time::Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            scheme: Scheme {
                minimum: 4,
                repair: 5,
                success: 6,
                total: 6,
            },
            segment_size: 64 << 20,
            inline_limit: 4096,
            block_size: 64 << 10,
            chunk_size: 64 << 10,
            cipher: CipherSuite::Aes256Gcm,
            gc_grace: std::time::Duration::from_secs(60),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    pub key_file: PathBuf,
    pub credentials_file: PathBuf,
    pub metadata_file: PathBuf,
    pub storage: StorageConfig,
    pub nodes: Vec<NodeConfig>,
}

impl Config {
    /// Parses and validates a config file's text. `data_dir` (from the command line or the
    /// default) is used unless the file sets `data_dir`; flags override later.
    pub fn parse(text: &str, default_data_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message spans lines; keep the first line and name the key if known.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string();
            let field = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}")
                })
                .unwrap_or_else(|| "file".into());
            ConfigError::new(field, msg)
        })?;
        Self::from_raw(raw, default_data_dir)
    }

    /// The configuration used when no file exists: defaults everywhere, six local directory
    /// nodes `nodes/n1..n6` under the data directory.
    pub fn embedded_default_text() -> String {
        let mut s = String::from(EMBEDDED_HEADER);
        for i in 1..=6 {
            s.push_str(&format!(
                "\n[[nodes]]\nid = \"n{i}\"\nkind = \"dir\"\npath = \"nodes/n{i}\"\n"
            ));
        }
        s
    }

    fn from_raw(raw: RawConfig, default_data_dir: &Path) -> Result<Config, ConfigError> {
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| default_data_dir.to_path_buf());
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { data_dir.join(p) };
        let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:7777"),
            )
        })?;
        let region = raw.region.unwrap_or_else(|| "us-east-1".into());
        if region.is_empty() {
            return Err(ConfigError::new("region", "must not be empty"));
        }
        let storage = storage_from_raw(raw.storage)?;
        let mut nodes = Vec::new();
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let field = |f: &str| format!("nodes[{i}].{f}");
            if n.id.is_empty()
                || !n
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::new(
                    field("id"),
                    format!(
                        "{:?} must be non-empty ASCII letters, digits, '-' or '_'",
                        n.id
                    ),
                ));
            }
            if nodes.iter().any(|m: &NodeConfig| m.id == n.id) {
                return Err(ConfigError::new(
                    field("id"),
                    format!("duplicate node id {:?}", n.id),
                ));
            }
            let kind = node_kind(n.kind.as_str(), &n, &field, &resolve)?;
            nodes.push(NodeConfig { id: n.id, kind });
        }
        if nodes.len() < storage.scheme.success as usize {
            return Err(ConfigError::new(
                "nodes",
                format!(
                    "{} nodes configured, but scheme {} needs at least success = {} nodes",
                    nodes.len(),
                    storage.scheme,
                    storage.scheme.success
                ),
            ));
        }
        Ok(Config {
            listen,
            region,
            key_file: resolve(raw.key_file.unwrap_or_else(|| KEY_FILE.into())),
            credentials_file: resolve(
                raw.credentials_file
                    .unwrap_or_else(|| CREDENTIALS_FILE.into()),
            ),
            metadata_file: data_dir.join(METADATA_FILE),
            storage,
            nodes,
            data_dir,
        })
    }
}

/// Validates one node's kind-specific fields; `field` names a field of this node.
fn node_kind(
    kind: &str,
    n: &RawNode,
    field: &dyn Fn(&str) -> String,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<NodeKind, ConfigError> {
    let set = [
        ("path", n.path.is_some()),
        ("address", n.address.is_some()),
        ("token", n.token.is_some()),
        ("token_file", n.token_file.is_some()),
        ("connect_timeout", n.connect_timeout.is_some()),
        ("read_timeout", n.read_timeout.is_some()),
    ];
    let allowed: &[&str] = match kind {
        "dir" => &["path"],
        "remote" => &[
            "address",
            "token",
            "token_file",
            "connect_timeout",
            "read_timeout",
        ],
        other => {
            return Err(ConfigError::new(
                field("kind"),
                format!("unknown node kind {other:?} (supported: \"dir\", \"remote\")"),
            ))
        }
    };
    if let Some((name, _)) = set.iter().find(|(f, on)| *on && !allowed.contains(f)) {
        return Err(ConfigError::new(
            field(name),
            format!("not a setting of kind {kind:?}"),
        ));
    }
    if kind == "dir" {
        let path = n
            .path
            .clone()
            .ok_or_else(|| ConfigError::new(field("path"), "required for kind \"dir\""))?;
        return Ok(NodeKind::Dir {
            path: resolve(path),
        });
    }
    let address = n.address.clone().ok_or_else(|| {
        ConfigError::new(
            field("address"),
            "required for kind \"remote\" (e.g. \"http://127.0.0.1:7001\")",
        )
    })?;
    validate_address(&address).map_err(|r| ConfigError::new(field("address"), r))?;
    let token = match (&n.token, &n.token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("token"),
                "set either token or token_file, not both",
            ))
        }
        (Some(t), None) => RemoteToken::Inline(NodeToken::from_hex(t).map_err(|_| {
            ConfigError::new(field("token"), "must be 64 hex digits (the node's token)")
        })?),
        (None, Some(p)) => RemoteToken::File(resolve(p.clone())),
        (None, None) => {
            return Err(ConfigError::new(
                field("token_file"),
                "kind \"remote\" needs token_file (or token): the node's secret",
            ))
        }
    };
    let timeout = |name: &str, v: Option<DurationText>, default: Duration| {
        let d = v.map_or(default, |d| d.0);
        if d.is_zero() || d > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                field(name),
                "must be more than 0 and at most 1 hour",
            ));
        }
        Ok(d)
    };
    Ok(NodeKind::Remote(RemoteNodeConfig {
        address,
        token,
        connect_timeout: timeout(
            "connect_timeout",
            n.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        read_timeout: timeout("read_timeout", n.read_timeout, DEFAULT_READ_TIMEOUT)?,
    }))
}

fn storage_from_raw(raw: RawStorage) -> Result<StorageConfig, ConfigError> {
    let d = StorageConfig::default();
    let scheme = match raw.scheme {
        None => d.scheme,
        Some(s) => parse_scheme(&s).map_err(|r| ConfigError::new("storage.scheme", r))?,
    };
    let block_size = raw.block_size.map_or(u64::from(d.block_size), |b| b.0);
    if !(1024..=(16 << 20)).contains(&block_size) {
        return Err(ConfigError::new(
            "storage.block_size",
            "must be between 1 KiB and 16 MiB",
        ));
    }
    let segment_size = raw.segment_size.map_or(d.segment_size, |b| b.0);
    if segment_size == 0 || !segment_size.is_multiple_of(block_size) || segment_size > (1 << 30) {
        return Err(ConfigError::new(
            "storage.segment_size",
            format!("must be a multiple of block_size ({block_size}) and at most 1 GiB"),
        ));
    }
    let inline_limit = raw.inline_limit.map_or(d.inline_limit, |b| b.0);
    if inline_limit > (64 << 10) {
        return Err(ConfigError::new(
            "storage.inline_limit",
            "must be at most 64 KiB",
        ));
    }
    let chunk_size = raw.chunk_size.map_or(d.chunk_size as u64, |b| b.0);
    if !(64..=(16 << 20)).contains(&chunk_size) || !chunk_size.is_multiple_of(64) {
        return Err(ConfigError::new(
            "storage.chunk_size",
            "must be a multiple of 64 bytes between 64 B and 16 MiB",
        ));
    }
    let cipher = match raw.cipher {
        None => d.cipher,
        Some(c) => CipherSuite::from_name(&c).ok_or_else(|| {
            ConfigError::new(
                "storage.cipher",
                format!("{c:?} is not \"aes-256-gcm\" or \"chacha20-poly1305\""),
            )
        })?,
    };
    let gc_grace = match raw.gc_grace {
        None => d.gc_grace,
        Some(g) => parse_duration(&g).map_err(|r| ConfigError::new("storage.gc_grace", r))?,
    };
    Ok(StorageConfig {
        scheme,
        segment_size,
        inline_limit,
        block_size: block_size as u32,
        chunk_size: chunk_size as usize,
        cipher,
        gc_grace,
    })
}

/// Parses Storj notation `minimum/repair/success/total`, e.g. `4/5/6/6`.
pub fn parse_scheme(s: &str) -> Result<Scheme, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let nums: Vec<u16> = parts
        .iter()
        .map(|p| p.trim().parse::<u16>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?} is not minimum/repair/success/total, e.g. \"4/5/6/6\""))?;
    let [minimum, repair, success, total] = nums[..] else {
        return Err(format!(
            "{s:?} is not minimum/repair/success/total, e.g. \"4/5/6/6\""
        ));
    };
    let scheme = Scheme {
        minimum,
        repair,
        success,
        total,
    };
    scheme.validate()?;
    Ok(scheme)
}

const EMBEDDED_HEADER: &str = r#"# gateway configuration, written at first start (see config/example.toml for every field).
# Relative paths are relative to the data directory holding this file.

listen = "127.0.0.1:7777"
key_file = "root.key"                 # 256-bit root key; losing it loses every object
credentials_file = "credentials.toml" # S3 access key and secret (mode 0600)

[storage]
scheme = "4/5/6/6"        # minimum/repair/success/total (Storj notation)
segment_size = "64MiB"
inline_limit = "4KiB"
cipher = "aes-256-gcm"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::parse(&Config::embedded_default_text(), Path::new("/d")).unwrap();
        assert_eq!(c.nodes.len(), 6);
        assert_eq!(c.listen.to_string(), "127.0.0.1:7777");
        assert_eq!(c.storage.scheme.to_string(), "4/5/6/6");
        assert_eq!(
            c.nodes[0].kind,
            NodeKind::Dir {
                path: "/d/nodes/n1".into()
            }
        );
        assert_eq!(c.key_file, Path::new("/d/root.key"));
    }

    #[test]
    fn errors_name_the_field() {
        let base = Config::embedded_default_text();
        let cases = [
            ("listen = \"nope\"", "listen"),
            ("[storage]\nscheme = \"4/3/6/6\"", "storage.scheme"),
            ("[storage]\nsegment_size = \"1000\"", "storage.segment_size"),
            ("[storage]\ncipher = \"rot13\"", "storage.cipher"),
            ("[[nodes]]\nid = \"a b\"\npath = \"x\"", "nodes[0].id"),
            ("[[nodes]]\nid = \"a\"\nkind = \"ftp\"", "nodes[0].kind"),
            ("[[nodes]]\nid = \"a\"\nkind = \"remote\"", "nodes[0].address"),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"https://h:1\"\ntoken_file = \"t\"",
                "nodes[0].address",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"",
                "nodes[0].token_file",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"\ntoken = \"abc\"",
                "nodes[0].token",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"\ntoken_file = \"t\"\npath = \"p\"",
                "nodes[0].path",
            ),
            (
                "[[nodes]]\nid = \"a\"\nkind = \"remote\"\naddress = \"http://h:1\"\ntoken_file = \"t\"\nread_timeout = \"0s\"",
                "nodes[0].read_timeout",
            ),
            ("[[nodes]]\nid = \"a\"\npath = \"p\"\naddress = \"http://h:1\"", "nodes[0].address"),
        ];
        for (text, field) in cases {
            let err = Config::parse(text, Path::new("/d")).unwrap_err();
            assert_eq!(err.field, field, "{text}");
            assert!(!err.to_string().contains('\n'));
        }
        // Too few nodes for the scheme.
        let err = Config::parse("", Path::new("/d")).unwrap_err();
        assert_eq!(err.field, "nodes");
        // Unknown keys are refused, naming the line.
        let err = Config::parse(&format!("bogus = 1\n{base}"), Path::new("/d")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn documented_example_parses_to_the_defaults() {
        let c = Config::parse(include_str!("../config/example.toml"), Path::new("/d")).unwrap();
        let d = StorageConfig::default();
        assert_eq!(c.storage.scheme, d.scheme);
        assert_eq!(c.storage.segment_size, d.segment_size);
        assert_eq!(c.storage.inline_limit, d.inline_limit);
        assert_eq!(c.storage.block_size, d.block_size);
        assert_eq!(c.storage.chunk_size, d.chunk_size);
        assert_eq!(c.nodes.len(), 6);
    }

    #[test]
    fn remote_nodes() {
        let token = "ab".repeat(32);
        let text = format!(
            "[storage]\nscheme = \"1/1/2/2\"\n\
             [[nodes]]\nid = \"r1\"\nkind = \"remote\"\naddress = \"http://10.0.0.1:7001\"\ntoken_file = \"tokens/r1\"\n\
             [[nodes]]\nid = \"r2\"\nkind = \"remote\"\naddress = \"http://node2:7001/\"\ntoken = \"{token}\"\n\
             connect_timeout = \"250ms\"\nread_timeout = 10\n"
        );
        let c = Config::parse(&text, Path::new("/d")).unwrap();
        assert_eq!(
            c.nodes[0].kind,
            NodeKind::Remote(RemoteNodeConfig {
                address: "http://10.0.0.1:7001".into(),
                token: RemoteToken::File("/d/tokens/r1".into()),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                read_timeout: DEFAULT_READ_TIMEOUT,
            })
        );
        assert_eq!(
            c.nodes[1].kind,
            NodeKind::Remote(RemoteNodeConfig {
                address: "http://node2:7001/".into(),
                token: RemoteToken::Inline(NodeToken::from_hex(&token).unwrap()),
                connect_timeout: Duration::from_millis(250),
                read_timeout: Duration::from_secs(10),
            })
        );
        // The inline token never appears in the config's Debug output.
        assert!(!format!("{c:?}").contains(&token));
    }

    #[test]
    fn documented_remote_node_parses_when_uncommented() {
        let example = include_str!("../config/example.toml");
        let at = example.find("# [[nodes]]").unwrap();
        let block: String = example[at..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&format!("{}\n{block}", &example[..at]), Path::new("/d")).unwrap();
        let NodeKind::Remote(r) = &c.nodes[6].kind else {
            panic!("not remote: {:?}", c.nodes[6]);
        };
        assert_eq!(r.token, RemoteToken::File("/d/tokens/r1".into()));
        assert_eq!(r.read_timeout, DEFAULT_READ_TIMEOUT);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4 KiB").unwrap(), 4096);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
