use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::report::tests::sample_report;
use super::*;
use crate::metrics::{NodeOp, Reason};

struct Fake {
    metrics: Metrics,
    report: Result<StatsReport, String>,
    stats_calls: AtomicUsize,
}

impl AdminSource for Fake {
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn stats(&self) -> Pin<Box<dyn Future<Output = Result<StatsReport, String>> + Send + '_>> {
        self.stats_calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { self.report.clone() })
    }
}

fn fake(report: Result<StatsReport, String>) -> Arc<Fake> {
    let metrics = Metrics::new();
    metrics.s3_received(1234);
    metrics.node_sent("node-1", Reason::Upload, 4096);
    metrics.node_request("node-1", NodeOp::Put, false);
    Arc::new(Fake {
        metrics,
        report,
        stats_calls: AtomicUsize::new(0),
    })
}

async fn start(source: Arc<Fake>) -> AdminServer {
    AdminServer::start("127.0.0.1:0".parse().unwrap(), source)
        .await
        .unwrap()
}

async fn call(server: &AdminServer, method: Method, path: &str) -> (StatusCode, HeaderMap, String) {
    let authority = server.addr().to_string();
    let (status, headers, body) = request(&authority, method, path, CONNECT_TIMEOUT)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn metrics_endpoint_serves_openmetrics() {
    let server = start(fake(Ok(StatsReport::default()))).await;
    assert!(server.addr().port() != 0);
    let (status, headers, body) = call(&server, Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
    assert!(body
        .lines()
        .any(|l| l == "gateway_s3_received_bytes_total 1234"));
    assert!(body
        .lines()
        .any(|l| l == r#"gateway_node_sent_bytes_total{node="node-1",reason="upload"} 4096"#));
    assert!(body
        .lines()
        .any(|l| l == r#"gateway_node_requests_total{node="node-1",op="put",result="error"} 1"#));
    assert!(body.ends_with("# EOF\n"));
    // The query string does not change the route.
    let (status, _, _) = call(&server, Method::GET, "/metrics?x=1").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn stats_round_trip_through_fetch_stats() {
    let mut report = sample_report();
    report.traffic.nodes.get_mut("node-1").unwrap().connections = -1;
    let source = fake(Ok(report.clone()));
    let server = start(source.clone()).await;
    let fetched = fetch_stats(&server.addr().to_string()).await.unwrap();
    assert_eq!(fetched, report);
    let fetched = fetch_stats(&format!("http://{}/", server.addr()))
        .await
        .unwrap();
    assert_eq!(fetched, report);
    assert_eq!(source.stats_calls.load(Ordering::SeqCst), 2);
    let (status, headers, _) = call(&server, Method::GET, "/v1/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    server.stop().await;
}

#[tokio::test]
async fn a_failing_source_is_a_500_with_its_message() {
    let server = start(fake(Err("database is locked".into()))).await;
    match fetch_stats(&server.addr().to_string()).await {
        Err(AdminError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(message, "database is locked");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn healthz_unknown_paths_and_other_methods() {
    let server = start(fake(Ok(StatsReport::default()))).await;
    let (status, _, body) = call(&server, Method::GET, "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    for path in ["/index.html", "/nope", "/metrics/", "/v1/stats/x", "/v1"] {
        let (status, _, _) = call(&server, Method::GET, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
        let (status, headers, _) = call(&server, method.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers[ALLOW], "GET");
    }
    let (status, _, _) = call(&server, Method::POST, "/v1/stats").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
}

#[tokio::test]
async fn stop_frees_the_port_even_with_an_idle_keep_alive_connection() {
    let server = start(fake(Ok(StatsReport::default()))).await;
    let addr = server.addr();
    // A scraper that keeps its connection open between scrapes.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < SHUTDOWN_GRACE,
        "{:?}",
        started.elapsed()
    );
    // The idle connection was closed by the server.
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The port is free again.
    let again = AdminServer::start(addr, fake(Ok(StatsReport::default())))
        .await
        .unwrap();
    assert_eq!(again.addr(), addr);
    again.stop().await;
    assert!(fetch_stats(&addr.to_string()).await.is_err());
}

#[tokio::test]
async fn fetch_stats_errors_are_typed_and_bounded() {
    // Nothing listens: connection refused.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(matches!(
        fetch_stats(&addr.to_string()).await,
        Err(AdminError::Connect { .. })
    ));

    // A listener that accepts and never answers: the total timeout fires.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let started = std::time::Instant::now();
    let res = fetch_stats_within(
        &silent_addr.to_string(),
        Duration::from_secs(1),
        Duration::from_millis(300),
    )
    .await;
    assert!(matches!(res, Err(AdminError::Timeout { .. })), "{res:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);

    for bad in [
        "",
        "https://127.0.0.1:7778",
        "127.0.0.1",
        "host:port",
        "a/b:1",
        "http://x:1/v1",
    ] {
        assert!(
            matches!(fetch_stats(bad).await, Err(AdminError::Address { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(authority("http://[::1]:7778/").unwrap(), "[::1]:7778");
    assert_eq!(authority("localhost:7778").unwrap(), "localhost:7778");
}

#[tokio::test]
async fn a_body_that_is_not_a_report_is_a_decode_error() {
    // A server that answers 200 with something other than a report.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!")
            .await
            .unwrap();
    });
    assert!(matches!(
        fetch_stats(&addr.to_string()).await,
        Err(AdminError::Decode { .. })
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn start_on_a_taken_port_is_a_listen_error() {
    let server = start(fake(Ok(StatsReport::default()))).await;
    let res = AdminServer::start(server.addr(), fake(Ok(StatsReport::default()))).await;
    assert!(matches!(res, Err(AdminError::Listen { .. })));
    server.stop().await;
}

#[tokio::test]
async fn the_status_page_is_self_contained_and_history_starts_at_start() {
    let server = start(fake(Ok(sample_report()))).await;
    let (status, headers, html) = call(&server, Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers[http::header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    // Nothing from elsewhere: every reference is to the page's own files (the SVG namespace
    // is a name, not a fetch).
    let outside = |text: &str| {
        let text = text.replace("http://www.w3.org/2000/svg", "");
        [
            "http://", "https://", "//cdn", "@import", "import(", "import ",
        ]
        .into_iter()
        .find(|n| text.contains(n))
    };
    assert_eq!(outside(&html), None);
    for (path, kind) in [
        ("/status.js", "text/javascript"),
        ("/status.css", "text/css"),
    ] {
        let (status, headers, body) = call(&server, Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with(kind));
        assert_eq!(outside(&body), None, "{path}");
        // Text from the gateway never goes in as markup.
        assert!(
            !body.contains("innerHTML") && !body.contains("outerHTML"),
            "{path}"
        );
    }
    // The first sample is taken at start, with the counters as they were.
    let (status, _, body) = call(&server, Method::GET, "/v1/history").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["interval_ms"], HISTORY_INTERVAL.as_millis() as u64);
    let samples = doc["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{body}");
    // [unix_ms, node_up, node_down, s3_in, s3_out]
    assert_eq!(samples[0][1], 4096);
    assert_eq!(samples[0][3], 1234);
    server.stop().await;
}

#[test]
fn history_keeps_the_last_hour() {
    let h = History::default();
    let metrics = Metrics::new();
    for i in 0..HISTORY_SAMPLES + 10 {
        metrics.s3_received(1);
        h.record(&metrics);
        if i == 0 {
            assert_eq!(h.samples.lock().unwrap().len(), 1);
        }
    }
    let samples = h.samples.lock().unwrap();
    assert_eq!(samples.len(), HISTORY_SAMPLES);
    // The oldest were dropped: the first kept saw 11 bytes.
    assert_eq!(samples.front().unwrap()[3], 11);
    assert_eq!(samples.back().unwrap()[3], (HISTORY_SAMPLES + 10) as u64);
}
