//! The real `gateway` binary: first start creates a data directory, later starts reuse it,
//! environment credentials win over the file, and a bad configuration exits with status 2
//! and one line naming the field. Every child process is killed by a guard, and every wait
//! is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::harness::process::{self, wait_exit, GatewayProcess};
use crate::harness::{client_for, no_retry, raw, wait};

/// How long a start may take.
const START_TIMEOUT: Duration = process::START_TIMEOUT;
const ENV_ACCESS: &str = "CLIENVACCESSKEY00001";
const ENV_SECRET: &str = "cli-env-secret+with/chars000000000000000";

/// `gateway run` on `data_dir` with no credentials in the environment (the data directory's
/// own, or `env`'s), `GATEWAY_LOG=warn` and `env`.
fn command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = GatewayProcess::run_command(data_dir);
    cmd.env_remove("GATEWAY_ACCESS_KEY")
        .env_remove("GATEWAY_SECRET_KEY")
        .env("GATEWAY_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the binary and waits (bounded) for its startup banner.
fn start(data_dir: &Path, log: &Path, env: &[(&str, &str)]) -> GatewayProcess {
    GatewayProcess::spawn(command(data_dir, env), log).unwrap_or_else(|e| panic!("{e}"))
}

/// A client without retries.
fn client(endpoint: &str, access: &str, secret: &str) -> Client {
    no_retry(&client_for(endpoint, access, secret))
}

fn file_credentials(data_dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(data_dir.join("credentials.toml")).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    let get = |k: &str| t[k].as_str().unwrap().to_string();
    (get("access_key"), get("secret_key"))
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

struct Dirs {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    Dirs {
        data: tmp.path().join("data"),
        log: tmp.path().join("stderr.log"),
        _tmp: tmp,
    }
}

#[tokio::test]
async fn first_start_creates_the_data_dir_and_later_starts_reuse_it() {
    let d = dirs();
    let gw = start(&d.data, &d.log, &[]);
    assert!(
        gw.stdout[0].starts_with("created a new gateway in "),
        "{:?}",
        gw.stdout
    );
    let port = gw
        .endpoint
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("listening line: {:?}", gw.stdout));
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "{port}");

    for f in ["config.toml", "root.key", "credentials.toml"] {
        assert!(d.data.join(f).is_file(), "{f} not created");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&d.data.join("root.key")), 0o600);
        assert_eq!(mode(&d.data.join("credentials.toml")), 0o600);
    }
    for i in 1..=6 {
        let node = d.data.join(format!("nodes/n{i}"));
        assert!(
            node.join("NODE").is_file(),
            "{} not initialised",
            node.display()
        );
    }
    let (access, secret) = file_credentials(&d.data);
    assert_eq!(gw.access_key, access);
    assert!(
        gw.stdout.iter().all(|l| !l.contains(&secret)),
        "the secret key was printed"
    );

    // The printed endpoint and the file's credentials work.
    let c = client(&gw.endpoint, &access, &secret);
    c.create_bucket().bucket("cli").send().await.unwrap();
    let body = b"survives a restart".repeat(1000);
    c.put_object()
        .bucket("cli")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let key_before = std::fs::read(d.data.join("root.key")).unwrap();
    let creds_before = std::fs::read(d.data.join("credentials.toml")).unwrap();
    gw.kill9();

    // Second start: nothing is created again, the same key and credentials are used, and the
    // object written before is readable (so the key really is the same).
    let gw = start(&d.data, &d.log, &[]);
    assert!(
        gw.stdout.iter().all(|l| !l.starts_with("created")),
        "{:?}",
        gw.stdout
    );
    assert_eq!(gw.access_key, access);
    assert_eq!(std::fs::read(d.data.join("root.key")).unwrap(), key_before);
    assert_eq!(
        std::fs::read(d.data.join("credentials.toml")).unwrap(),
        creds_before
    );
    let c = client(&gw.endpoint, &access, &secret);
    let got = c.get_object().bucket("cli").key("k").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
}

#[tokio::test]
async fn environment_credentials_win_over_the_file() {
    let d = dirs();
    // Create the data directory (and its credentials file) first.
    start(&d.data, &d.log, &[]).kill9();
    let (file_access, file_secret) = file_credentials(&d.data);

    let env = [
        ("GATEWAY_ACCESS_KEY", ENV_ACCESS),
        ("GATEWAY_SECRET_KEY", ENV_SECRET),
    ];
    let gw = start(&d.data, &d.log, &env);
    assert_eq!(gw.access_key, ENV_ACCESS);
    assert!(gw.stdout.iter().all(|l| !l.contains(ENV_SECRET)));

    let c = client(&gw.endpoint, ENV_ACCESS, ENV_SECRET);
    c.create_bucket().bucket("env").send().await.unwrap();
    c.put_object()
        .bucket("env")
        .key("k")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let got = c.get_object().bucket("env").key("k").send().await.unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"hello"
    );

    // The file's credentials are not accepted meanwhile.
    let err = client(&gw.endpoint, &file_access, &file_secret)
        .list_buckets()
        .send()
        .await
        .expect_err("file credentials accepted while the environment overrides them");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("InvalidAccessKeyId"));
    // And the file was left alone.
    assert_eq!(file_credentials(&d.data), (file_access, file_secret));
}

#[test]
fn bad_config_exits_2_with_one_line_naming_the_field() {
    let cases = [
        ("[storage]\nscheme = \"4/3/6/6\"\n", "storage.scheme"),
        ("[storage]\ncipher = \"rot13\"\n", "storage.cipher"),
        ("listen = \"nowhere\"\n", "listen"),
    ];
    for (text, field) in cases {
        let d = dirs();
        std::fs::create_dir_all(&d.data).unwrap();
        std::fs::write(d.data.join("config.toml"), text).unwrap();
        let mut child = command(&d.data, &[])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&d.log).unwrap())
            .spawn()
            .unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(10));
        let stderr = std::fs::read_to_string(&d.log).unwrap();
        assert_eq!(status.code(), Some(2), "{text:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{text:?}: {stderr}");
        assert!(
            lines[0].contains(&format!("{field}:")),
            "{text:?}: {stderr}"
        );
    }
}

/// `gateway stats` against a running gateway: the report reflects an upload (objects, bytes,
/// an expansion factor within the scheme's bounds), and the admin listener's `/metrics`
/// carries the node byte counters; the S3 port's `/metrics` is just a (missing) bucket.
#[tokio::test]
async fn stats_and_metrics_report_an_upload() {
    let d = dirs();
    let gw = start(&d.data, &d.log, &[]);
    assert!(!gw.admin.is_empty(), "no admin line: {:?}", gw.stdout);
    let (access, secret) = file_credentials(&d.data);
    let c = client(&gw.endpoint, &access, &secret);
    c.create_bucket().bucket("stats").send().await.unwrap();
    let body = vec![7u8; 3 << 20];
    c.put_object()
        .bucket("stats")
        .key("k")
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["stats", "--json", "--admin", &gw.admin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = &report["stored"];
    assert_eq!(stored["objects"], 1);
    assert_eq!(stored["plain_bytes"], 3 << 20);
    let uploaded = stored["uploaded_bytes"].as_u64().unwrap() as f64;
    // 4/5/6/6: six pieces of a quarter each, plus headers, MACs and the last stripe padding.
    let ratio = uploaded / f64::from(3u32 << 20);
    assert!((1.5..1.7).contains(&ratio), "expansion {ratio}");
    assert_eq!(report["nodes"].as_array().unwrap().len(), 6);
    assert!(report["traffic"]["s3_received_bytes"].as_u64().unwrap() > 3 << 20);

    let text = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["stats", "--admin", &gw.admin])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1.5"), "{text}");
    assert!(text.contains("n1") && text.contains("healthy"), "{text}");

    let metrics = reqwest_like_get(&gw.admin, "/metrics").await;
    assert!(
        metrics.contains("gateway_node_sent_bytes_total{node=\"n1\",reason=\"upload\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_s3_received_bytes_total"),
        "{metrics}"
    );
    // On the S3 port /metrics is a bucket name: unsigned, it is refused like any request.
    let s3_port = gw.endpoint.strip_prefix("http://").unwrap().to_string();
    let refused = reqwest_like_get(&s3_port, "/metrics").await;
    assert!(
        !refused.contains("gateway_node_sent_bytes_total"),
        "{refused}"
    );
    gw.kill9();
}

/// A bare HTTP/1.1 GET (bounded); returns the whole response text.
async fn reqwest_like_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// GET `path` on the admin listener `admin`, its body parsed as JSON.
async fn admin_json(admin: &str, path: &str) -> serde_json::Value {
    let text = reqwest_like_get(admin, path).await;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Runs a short `gateway` command to its end (bounded); returns status, stdout and stderr.
fn gateway_cmd(
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
    dir: &Path,
) -> (ExitStatus, String, String) {
    let out_path = dir.join("cmd.stdout");
    let err_path = dir.join("cmd.stderr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.args(args)
        .env_remove("GATEWAY_KEY_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gateway");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    (
        status,
        std::fs::read_to_string(&out_path).unwrap(),
        std::fs::read_to_string(&err_path).unwrap(),
    )
}

/// A second `gateway run` on a data directory in use exits non-zero with one message naming
/// the holder (pid and listeners); after kill -9 of the holder the stale lock file does not
/// block the next start. The first start warns, on stderr, about the new root key.
#[test]
fn a_data_dir_in_use_is_refused_and_kill_9_leaves_no_lock() {
    let d = dirs();
    let first = start(&d.data, &d.log, &[]);
    let warning = std::fs::read_to_string(&d.log).unwrap();
    let key_file = d.data.join("root.key");
    assert!(
        warning.contains(&format!(
            "WARNING: created a new root key: {}",
            key_file.display()
        )),
        "{warning}"
    );
    assert!(
        warning.contains(&format!(
            "gateway key export --data-dir {}",
            d.data.display()
        )),
        "{warning}"
    );
    let lock_text = std::fs::read_to_string(d.data.join("gateway.lock")).unwrap();
    assert!(
        lock_text.contains(&format!("pid {}\n", first.pid())),
        "{lock_text}"
    );

    let second_log = d.data.with_file_name("second.log");
    let mut second = command(&d.data, &[])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&second_log).unwrap())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut second, Duration::from_secs(20));
    let stderr = std::fs::read_to_string(&second_log).unwrap();
    assert!(!status.success(), "second gateway started: {stderr}");
    let s3 = first.endpoint.strip_prefix("http://").unwrap();
    let want = format!(
        "error: data directory {} is in use by gateway pid {} (S3 {s3}, admin {})",
        d.data.display(),
        first.pid(),
        first.admin
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines, [want.as_str()], "{stderr}");

    // kill -9: no clean shutdown, the lock file stays behind naming a dead process.
    let first_pid = first.pid();
    first.kill9();
    let stale = std::fs::read_to_string(d.data.join("gateway.lock")).unwrap();
    assert!(stale.contains(&format!("pid {first_pid}\n")), "{stale}");

    let third_log = d.data.with_file_name("third.log");
    let third = start(&d.data, &third_log, &[]);
    let lock_text = std::fs::read_to_string(d.data.join("gateway.lock")).unwrap();
    assert!(
        lock_text.contains(&format!("pid {}\n", third.pid())),
        "{lock_text}"
    );
    // Not a first start any more: no key warning.
    assert!(
        !std::fs::read_to_string(&third_log)
            .unwrap()
            .contains("WARNING"),
        "warned again"
    );
}

/// `gateway key export` (plain to a file and to stdout, wrapped with a passphrase file) and
/// `gateway key import` (wrapped into a fresh data directory, with the passphrase from the
/// environment; plain into a data directory that lost its key): the imported key file is
/// byte-identical, and a gateway started with the restored key reads an object written
/// before. Overwrites, a wrong passphrase and a different key are refused.
#[tokio::test]
async fn key_export_and_import_restore_the_root_key() {
    let d = dirs();
    let tmp = d.data.parent().unwrap().to_path_buf();
    let os = |s: &str| std::ffi::OsString::from(s);
    let data = d.data.clone().into_os_string();

    let gw = start(&d.data, &d.log, &[]);
    let (access, secret) = file_credentials(&d.data);
    let c = client(&gw.endpoint, &access, &secret);
    c.create_bucket().bucket("keys").send().await.unwrap();
    let body = b"readable with the restored key".repeat(500);
    c.put_object()
        .bucket("keys")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    gw.kill9();
    let key_file = d.data.join("root.key");
    let original = std::fs::read(&key_file).unwrap();

    // Plain, to a file: the root.key format, mode 0600, never overwritten.
    let plain = tmp.join("plain.key");
    let export_plain = [
        os("key"),
        os("export"),
        os("--data-dir"),
        data.clone(),
        os("--out"),
        plain.clone().into_os_string(),
    ];
    let args: Vec<&std::ffi::OsStr> = export_plain.iter().map(|s| s.as_os_str()).collect();
    let (status, _, stderr) = gateway_cmd(&args, &[], &tmp);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("NOT wrapped"), "{stderr}");
    assert_eq!(std::fs::read(&plain).unwrap(), original);
    #[cfg(unix)]
    assert_eq!(mode(&plain), 0o600);
    let (status, _, stderr) = gateway_cmd(&args, &[], &tmp);
    assert!(!status.success());
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&plain).unwrap(), original);

    // Plain, to stdout.
    let (status, stdout, stderr) = gateway_cmd(
        &[
            os("key").as_os_str(),
            &os("export"),
            &os("--data-dir"),
            &data,
        ],
        &[],
        &tmp,
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.as_bytes(), original);

    // Wrapped with a passphrase file: the key is not in clear.
    let pass = tmp.join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let wrapped = tmp.join("wrapped.key");
    let (status, _, stderr) = gateway_cmd(
        &[
            os("key").as_os_str(),
            &os("export"),
            &os("--data-dir"),
            &data,
            &os("--out"),
            wrapped.as_os_str(),
            &os("--passphrase-file"),
            pass.as_os_str(),
        ],
        &[],
        &tmp,
    );
    assert!(status.success(), "{stderr}");
    let text = std::fs::read_to_string(&wrapped).unwrap();
    assert!(
        text.starts_with("gateway-root-key-wrapped v1\nargon2id m=65536 t=3 p=1\nsalt "),
        "{text}"
    );
    let key_hex = String::from_utf8(original.clone()).unwrap();
    let key_hex = key_hex.lines().nth(1).unwrap();
    assert!(!text.contains(key_hex));

    // Import into a fresh data directory: a wrong passphrase creates nothing; the right one
    // (from the environment) writes a byte-identical root.key, mode 0600.
    let fresh = tmp.join("fresh");
    let import_wrapped = [
        os("key"),
        os("import"),
        wrapped.clone().into_os_string(),
        os("--data-dir"),
        fresh.clone().into_os_string(),
    ];
    let args: Vec<&std::ffi::OsStr> = import_wrapped.iter().map(|s| s.as_os_str()).collect();
    let (status, _, stderr) = gateway_cmd(&args, &[("GATEWAY_KEY_PASSPHRASE", "wrong")], &tmp);
    assert!(!status.success());
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
    assert!(!fresh.exists());
    let (status, _, stderr) = gateway_cmd(&args, &[], &tmp);
    assert!(!status.success());
    assert!(stderr.contains("passphrase"), "{stderr}");
    let env = [("GATEWAY_KEY_PASSPHRASE", "correct horse battery staple")];
    let (status, stdout, stderr) = gateway_cmd(&args, &env, &tmp);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("installed the root key"), "{stdout}");
    assert_eq!(std::fs::read(fresh.join("root.key")).unwrap(), original);
    #[cfg(unix)]
    assert_eq!(mode(&fresh.join("root.key")), 0o600);
    // Again: the same key is fine; a different key is refused and leaves the file alone.
    let (status, stdout, _) = gateway_cmd(&args, &env, &tmp);
    assert!(status.success());
    assert!(stdout.contains("already holds this root key"), "{stdout}");
    let other = tmp.join("other.key");
    std::fs::write(
        &other,
        format!("gateway-root-key v1\n{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let (status, _, stderr) = gateway_cmd(
        &[
            os("key").as_os_str(),
            &os("import"),
            other.as_os_str(),
            &os("--data-dir"),
            fresh.as_os_str(),
        ],
        &[],
        &tmp,
    );
    assert!(!status.success());
    assert!(stderr.contains("different root key"), "{stderr}");
    assert_eq!(std::fs::read(fresh.join("root.key")).unwrap(), original);

    // The data directory loses its key; the plain backup restores it and the object written
    // before reads back.
    std::fs::remove_file(&key_file).unwrap();
    let (status, _, stderr) = gateway_cmd(
        &[
            os("key").as_os_str(),
            &os("import"),
            plain.as_os_str(),
            &os("--data-dir"),
            &data,
        ],
        &[],
        &tmp,
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(std::fs::read(&key_file).unwrap(), original);
    let gw = start(&d.data, &d.log, &[]);
    let c = client(&gw.endpoint, &access, &secret);
    let got = c.get_object().bucket("keys").key("k").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
    gw.kill9();
}

/// A stand-in for systemd's notification socket: the datagrams `gateway` sends to
/// `NOTIFY_SOCKET`.
#[cfg(unix)]
struct Manager {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: std::os::unix::net::UnixDatagram,
}

#[cfg(unix)]
impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        Manager {
            _dir: dir,
            path,
            socket,
        }
    }

    fn env(&self) -> (&'static str, &str) {
        ("NOTIFY_SOCKET", self.path.to_str().unwrap())
    }

    /// The next datagram, within `limit`.
    fn next(&self, limit: Duration) -> String {
        self.socket.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 1024];
        let n = self
            .socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification within {limit:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(unix)]
fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} failed");
}

/// An aws-sdk-s3 client over HTTPS that trusts exactly the certificate in `ca_pem`.
fn tls_client(endpoint: &str, access: &str, secret: &str, ca_pem: &Path) -> Client {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty().with_pem_certificate(std::fs::read(ca_pem).unwrap());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access, secret, None, None, "cli-tls"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Under a service manager: READY=1 only once S3 answers; with `[server] tls_cert`/`tls_key`
/// S3 is served over HTTPS only; SIGHUP re-reads the certificate (RELOADING=1, then READY=1)
/// and new connections get the new one, a broken pair is refused and the old one stays;
/// SIGTERM sends STOPPING=1 and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn https_with_certificate_reload_and_service_notifications() {
    let d = dirs();
    let env = [
        ("GATEWAY_ACCESS_KEY", ENV_ACCESS),
        ("GATEWAY_SECRET_KEY", ENV_SECRET),
    ];
    start(&d.data, &d.log, &env).kill9();
    let tls_dir = d.data.join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let install = |cert: &str, key: &str| {
        std::fs::copy(fixture(cert), tls_dir.join("cert.pem")).unwrap();
        std::fs::copy(fixture(key), tls_dir.join("key.pem")).unwrap();
    };
    install("node-cert.pem", "node-key.pem");
    let mut config = std::fs::read_to_string(d.data.join("config.toml")).unwrap();
    config.push_str("\n[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n");
    std::fs::write(d.data.join("config.toml"), config).unwrap();

    let manager = Manager::new();
    let mut env = env.to_vec();
    env.push(manager.env());
    let mut gw = start(&d.data, &d.log, &env);
    let ready = manager.next(START_TIMEOUT);
    assert!(ready.contains("READY=1"), "{ready}");
    let port = gw
        .endpoint
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("listening line: {:?}", gw.stdout));
    let url = |host: &str| format!("https://{host}:{port}");
    // Whether a fresh client trusting only `ca` reads the object (a new connection, so it
    // sees the certificate served now).
    let trusted_head = |ca: &'static str| {
        let c = tls_client(&url("127.0.0.1"), ENV_ACCESS, ENV_SECRET, &fixture(ca));
        async move { c.head_object().bucket("tls").key("k").send().await.is_ok() }
    };

    // Over HTTPS, by IP address and by name, with a client trusting exactly this certificate.
    let c = tls_client(
        &url("127.0.0.1"),
        ENV_ACCESS,
        ENV_SECRET,
        &fixture("node-cert.pem"),
    );
    c.create_bucket().bucket("tls").send().await.unwrap();
    let body = b"over TLS ".repeat(200_000);
    c.put_object()
        .bucket("tls")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let c = tls_client(
        &url("localhost"),
        ENV_ACCESS,
        ENV_SECRET,
        &fixture("node-cert.pem"),
    );
    let got = c.get_object().bucket("tls").key("k").send().await.unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
    // Plain HTTP on the TLS port gets no S3 answer.
    let plain = client(&format!("http://127.0.0.1:{port}"), ENV_ACCESS, ENV_SECRET);
    assert!(plain.list_buckets().send().await.is_err());
    // A client trusting another certificate refuses the gateway's.
    let other = tls_client(
        &url("127.0.0.1"),
        ENV_ACCESS,
        ENV_SECRET,
        &fixture("other-cert.pem"),
    );
    assert!(other.list_buckets().send().await.is_err());

    // SIGHUP with a new pair, a node upload rate and another region in the file: new
    // connections get the new certificate, the rate applies at once (the stats report it),
    // and the region is named as needing a restart (and is not applied).
    install("other-cert.pem", "other-key.pem");
    let config_file = d.data.join("config.toml");
    let config = std::fs::read_to_string(&config_file).unwrap();
    std::fs::write(
        &config_file,
        format!("region = \"eu-west-1\"\n{config}\n[limits]\nupload_rate = \"5MiB\"\n"),
    )
    .unwrap();
    let stats = |admin: String| async move { admin_json(&admin, "/v1/stats").await };
    let before = stats(gw.admin.clone()).await;
    assert!(
        before["limits"]["upload_bytes_per_sec"].is_null(),
        "{before}"
    );
    signal(&gw.child, "-HUP");
    let reloading = manager.next(Duration::from_secs(10));
    assert!(reloading.contains("RELOADING=1"), "{reloading}");
    let ready = manager.next(Duration::from_secs(10));
    assert!(ready.contains("READY=1"), "{ready}");
    let after = stats(gw.admin.clone()).await;
    assert_eq!(after["limits"]["upload_bytes_per_sec"], 5 << 20, "{after}");
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("next restart") && l.contains("region")),
        "{log}"
    );
    // Still signed for us-east-1: the region is not applied before a restart.
    assert!(trusted_head("other-cert.pem").await);
    assert!(!trusted_head("node-cert.pem").await);

    // SIGHUP with a broken pair (a certificate without its key): refused, logged, and the
    // pair in use stays.
    std::fs::copy(fixture("node-cert.pem"), tls_dir.join("cert.pem")).unwrap();
    signal(&gw.child, "-HUP");
    assert!(manager
        .next(Duration::from_secs(10))
        .contains("RELOADING=1"));
    assert!(manager.next(Duration::from_secs(10)).contains("READY=1"));
    assert!(trusted_head("other-cert.pem").await);
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("reload failed"), "{log}");

    // SIGTERM: STOPPING=1 and a clean exit.
    signal(&gw.child, "-TERM");
    let stopping = manager.next(Duration::from_secs(10));
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let status = gw.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
}

/// A certificate file that cannot be used is a configuration mistake: exit status 2 and one
/// line naming the file, before anything listens.
#[test]
fn an_unusable_certificate_exits_2_naming_the_file() {
    let d = dirs();
    start(&d.data, &d.log, &[]).kill9();
    let mut config = std::fs::read_to_string(d.data.join("config.toml")).unwrap();
    config.push_str(&format!(
        "\n[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
        fixture("node-cert.pem"),
        fixture("other-key.pem")
    ));
    std::fs::write(d.data.join("config.toml"), config).unwrap();
    let mut child = command(&d.data, &[])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&d.log).unwrap())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(2));
    let err = std::fs::read_to_string(&d.log).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("other-key.pem"), "{err}");
}

/// SIGTERM while an upload is in flight: new connections are refused, the upload in flight
/// finishes and is acknowledged, the process exits 0, and after a restart the object reads
/// back exactly. The error line on a port in use is printed once.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_drains_an_upload_in_flight_and_loses_no_acknowledged_write() {
    use tokio::io::AsyncWriteExt;
    let d = dirs();
    let env = [
        ("GATEWAY_ACCESS_KEY", ENV_ACCESS),
        ("GATEWAY_SECRET_KEY", ENV_SECRET),
    ];
    let manager = Manager::new();
    let mut with_manager = env.to_vec();
    with_manager.push(manager.env());
    let mut gw = start(&d.data, &d.log, &with_manager);
    assert!(manager.next(START_TIMEOUT).contains("READY=1"));
    let addr: std::net::SocketAddr = gw
        .endpoint
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    client(&gw.endpoint, ENV_ACCESS, ENV_SECRET)
        .create_bucket()
        .bucket("drain")
        .send()
        .await
        .unwrap();

    // A second gateway on the same port: one error line, the cause said once.
    let mut second = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["run", "--data-dir"])
        .arg(d.data.join("other"))
        .args(["--listen", &addr.to_string(), "--admin-listen", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.data.join("second.log")).unwrap())
        .spawn()
        .unwrap();
    assert_eq!(
        wait_exit(&mut second, Duration::from_secs(60)).code(),
        Some(1)
    );
    let err = std::fs::read_to_string(d.data.join("second.log")).unwrap();
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("cannot listen on"), "{line}");
    assert_eq!(line.matches("in use").count(), 1, "{line}");

    // Half of a 6 MiB upload, then SIGTERM.
    let body: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let target = "/drain/in-flight";
    let url = format!("http://{addr}{target}");
    let mut headers = vec![
        ("host".to_string(), addr.to_string()),
        ("content-length".to_string(), body.len().to_string()),
    ];
    headers.extend(raw::sign_headers_with(
        "PUT",
        &url,
        &headers,
        raw::Payload::Unsigned,
        std::time::SystemTime::now(),
        ENV_ACCESS,
        ENV_SECRET,
    ));
    let mut put = tokio::net::TcpStream::connect(addr).await.unwrap();
    put.write_all(&raw::head("PUT", target, &headers))
        .await
        .unwrap();
    let half = body.len() / 2;
    put.write_all(&body[..half]).await.unwrap();
    // The request is in flight once the gateway has read some of its body (bounded wait).
    wait::until(
        Duration::from_secs(20),
        "the upload to reach the gateway",
        || async {
            let v = admin_json(&gw.admin, "/v1/stats").await;
            (v["traffic"]["s3_received_bytes"].as_u64().unwrap_or(0) > 1 << 20).then_some(())
        },
    )
    .await;
    signal(&gw.child, "-TERM");
    assert!(manager.next(Duration::from_secs(10)).contains("STOPPING=1"));

    // New connections are no longer served once the drain began (refused, or closed
    // unanswered), while the upload is still in flight.
    wait::until(
        Duration::from_secs(10),
        "new connections to go unserved in the drain",
        || async {
            let served = match tokio::net::TcpStream::connect(addr).await {
                Err(_) => false,
                Ok(mut s) => {
                    let head = raw::head("GET", "/", &[("host".to_string(), addr.to_string())]);
                    let _ = s.write_all(&head).await;
                    let answer = tokio::time::timeout(
                        Duration::from_secs(2),
                        raw::read_response(&mut s, false),
                    );
                    matches!(answer.await, Ok(Ok(_)))
                }
            };
            (!served).then_some(())
        },
    )
    .await;

    // The upload in flight finishes and is acknowledged.
    put.write_all(&body[half..]).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), raw::read_response(&mut put, false))
        .await
        .expect("no answer to the upload in flight")
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let status = gw.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    drop(gw);

    // Acknowledged means durable: it is there after a restart.
    let gw = start(&d.data, &d.log, &env);
    let c = client(&gw.endpoint, ENV_ACCESS, ENV_SECRET);
    let got = c
        .get_object()
        .bucket("drain")
        .key("in-flight")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
}

/// Logs written to a file carry no ANSI colour codes; `--log-format json` writes one JSON
/// object per line.
#[test]
fn logs_to_a_file_are_plain_and_json_on_request() {
    let d = dirs();
    let env = [("GATEWAY_LOG", "info")];
    start(&d.data, &d.log, &env).kill9();
    let text = std::fs::read_to_string(&d.log).unwrap();
    assert!(!text.is_empty());
    assert!(
        !text.contains('\u{1b}'),
        "ANSI codes in a log file: {text:?}"
    );

    let json_log = d.data.join("json.log");
    let mut child = command(&d.data, &env)
        .arg("--log-format")
        .arg("json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&json_log).unwrap())
        .spawn()
        .unwrap();
    // Wait (bounded) for a log line, then stop it.
    wait::blocking_until(START_TIMEOUT, "a JSON log line", || {
        std::fs::read_to_string(&json_log)
            .unwrap_or_default()
            .lines()
            .count()
            > 0
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&json_log).unwrap();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
}

/// The status page in a real browser (headless Chromium): after uploads and downloads, the
/// bandwidth plots show the traffic, the node table lists every node with its free space, and
/// the stored totals show the expansion factor. Needs Chromium (`GATEWAY_TEST_CHROMIUM`, else
/// `chromium` on PATH): `.ci/browser` installs it and runs this test.
#[tokio::test]
#[ignore = "needs Chromium: run by .ci/browser"]
async fn the_status_page_renders_plots_of_real_traffic_in_a_browser() {
    let browser = std::env::var("GATEWAY_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let d = dirs();
    let env = [
        ("GATEWAY_ACCESS_KEY", ENV_ACCESS),
        ("GATEWAY_SECRET_KEY", ENV_SECRET),
    ];
    let gw = start(&d.data, &d.log, &env);
    let history = |admin: String| async move {
        let doc = admin_json(&admin, "/v1/history").await;
        doc["samples"].as_array().unwrap().clone()
    };
    let c = client(&gw.endpoint, ENV_ACCESS, ENV_SECRET);
    c.create_bucket().bucket("page").send().await.unwrap();
    let body = vec![7u8; 6 << 20];
    for i in 0..4 {
        let key = format!("k{i}");
        c.put_object()
            .bucket("page")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let got = c
            .get_object()
            .bucket("page")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().len(),
            body.len()
        );
    }
    // Wait (bounded) for a sample taken after the traffic.
    let moved = |samples: &Vec<serde_json::Value>| {
        let (first, last) = (&samples[0], &samples[samples.len() - 1]);
        samples.len() >= 2
            && last[1].as_u64() > first[1].as_u64()
            && last[2].as_u64() > first[2].as_u64()
    };
    let samples = wait::observe(Duration::from_secs(30), || history(gw.admin.clone()), moved).await;
    assert!(moved(&samples), "no sample after the traffic: {samples:?}");

    let profile = tempfile::tempdir().unwrap();
    let shot = d.data.join("status.png");
    let run = |extra: &[String]| {
        let out = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("http://{}/", gw.admin))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {browser}: {e}"));
        assert!(
            out.status.success(),
            "{browser}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run(&["--dump-dom".to_string()]);
    // The script ran and filled the page from the gateway.
    assert!(
        dom.contains("data-updated="),
        "the page never refreshed: {dom}"
    );
    assert!(!dom.contains("cannot reach the gateway"), "{dom}");
    for plot in ["plot-nodes", "plot-clients"] {
        let at = dom
            .find(&format!("id=\"{plot}\""))
            .unwrap_or_else(|| panic!("{plot}: {dom}"));
        let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
        let attr = |name: &str| -> u64 {
            let i = svg
                .find(&format!("{name}=\""))
                .unwrap_or_else(|| panic!("{name}: {svg}"));
            let rest = &svg[i + name.len() + 2..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        };
        assert!(attr("data-samples") >= 1, "{plot}: {svg}");
        // The peak rate plotted is real traffic: more than a MiB went through in 5 s.
        assert!(attr("data-max") > 200_000, "{plot}: {svg}");
        // Two lines, each at least one step wide (two points at different x).
        let lines: Vec<&str> = svg.split("<polyline").skip(1).collect();
        assert_eq!(lines.len(), 2, "{plot}: {svg}");
        for line in lines {
            let i = line.find("points=\"").unwrap() + "points=\"".len();
            let points: Vec<&str> = line[i..i + line[i..].find('"').unwrap()]
                .split(' ')
                .collect();
            let xs: std::collections::BTreeSet<&str> =
                points.iter().filter_map(|p| p.split(',').next()).collect();
            assert!(points.len() >= 2 && xs.len() >= 2, "{plot}: {line}");
        }
    }
    let nodes = &dom[dom.find("id=\"nodes\"").unwrap()..];
    let nodes = &nodes[..nodes.find("</table>").unwrap()];
    assert_eq!(nodes.matches("<tr>").count(), 1 + 6, "{nodes}");
    assert!(nodes.contains(" of "), "no free space shown: {nodes}");
    assert!(
        dom.contains("expansion factor (kept)") && dom.contains('×'),
        "{dom}"
    );
    // A picture, for whoever looks at the run.
    run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1200,1800".to_string(),
    ]);
    assert!(std::fs::metadata(&shot)
        .map(|m| m.len() > 10_000)
        .unwrap_or(false));
    if let Ok(dir) = std::env::var("GATEWAY_TEST_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("status-page.png"));
    }
}

/// `gateway plan`'s upstream bytes and upload time against a real upload through a real
/// gateway whose node uplink is capped at 4 MiB/s (`limits.upload_rate`): within 10 %. The
/// cap is low so that the rate, not the CPU (shared with the tests beside it), sets the time.
#[tokio::test]
async fn the_plan_matches_a_measured_upload_within_ten_percent() {
    let d = dirs();
    let env = [
        ("GATEWAY_ACCESS_KEY", ENV_ACCESS),
        ("GATEWAY_SECRET_KEY", ENV_SECRET),
    ];
    start(&d.data, &d.log, &env).kill9();
    let config_file = d.data.join("config.toml");
    let mut config = std::fs::read_to_string(&config_file).unwrap();
    config.push_str("\n[limits]\nupload_rate = \"4MiB\"\n");
    std::fs::write(&config_file, config).unwrap();
    let gw = start(&d.data, &d.log, &env);
    let upstream = |admin: String| async move {
        let v = admin_json(&admin, "/v1/stats").await;
        let nodes = v["traffic"]["nodes"].as_object().unwrap().clone();
        nodes
            .values()
            .map(|n| {
                ["upload", "long_tail"]
                    .iter()
                    .map(|r| n["sent_bytes"][*r].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
            .sum::<u64>()
    };
    let c = client(&gw.endpoint, ENV_ACCESS, ENV_SECRET);
    c.create_bucket().bucket("plan").send().await.unwrap();
    let before = upstream(gw.admin.clone()).await;
    let body: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let t = Instant::now();
    for i in 0..3 {
        c.put_object()
            .bucket("plan")
            .key(format!("k{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let sent = upstream(gw.admin.clone()).await - before;

    let (status, out, err) = gateway_cmd(
        &[
            "plan".as_ref(),
            "--data-dir".as_ref(),
            d.data.as_os_str(),
            "--uplink".as_ref(),
            "4MiB".as_ref(),
            "--size".as_ref(),
            "24MiB".as_ref(),
            "--objects".as_ref(),
            "3".as_ref(),
            "--json".as_ref(),
        ],
        &[],
        d.data.parent().unwrap(),
    );
    assert!(status.success(), "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    let planned_bytes = p["upstream_bytes"].as_u64().unwrap() as f64;
    let planned_secs = p["upload_secs"].as_f64().unwrap();
    let off = |measured: f64, planned: f64| (measured - planned).abs() / planned;
    assert!(
        off(sent as f64, planned_bytes) <= 0.10,
        "sent {sent}, planned {planned_bytes}"
    );
    assert!(
        off(secs, planned_secs) <= 0.10,
        "took {secs:.2} s, planned {planned_secs:.2} s"
    );
    eprintln!(
        "plan vs measured: upstream {planned_bytes} vs {sent} bytes, time {planned_secs:.2} vs {secs:.2} s"
    );
}
