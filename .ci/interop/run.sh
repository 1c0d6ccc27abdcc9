#!/usr/bin/env bash
# Interop suite: starts the gateway on a fresh data directory on loopback and runs real clients
# against it (awscli, boto3, rclone — see the *_suite.py beside this file). Each client prints
# `ok - name` / `FAIL - name: reason` lines and a closing `N passed, N failed`; this driver
# prints one `CLIENT: N passed, N failed` line per client and a total `interop: N passed,
# N failed` as its last line, and exits non-zero if any check failed, any client crashed or
# timed out, or the gateway could not be started.
#
# Usage: .ci/interop/run.sh [CLIENT...]        (default: awscli boto3 rclone)
# Environment:
#   INTEROP_VENV  venv made by install.sh (default .ci/.venv)
#   GATEWAY_BIN   gateway binary to test (default: the debug binary, see below)
#   INTEROP_KEEP  if set to 1, keep the temporary directory (data dir, logs) for inspection
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

venv="${INTEROP_VENV:-.ci/.venv}"
venv="$(cd "$venv" && pwd)"
if [ ! -x "$venv/bin/python" ]; then
    echo "interop: no venv at $venv (run .ci/interop/install.sh first)" >&2
    exit 1
fi

if [ -z "${GATEWAY_BIN:-}" ]; then
    # The debug binary, not a release build: `cargo test` (run just before this in CI) has
    # already built it, so this `cargo build` is a no-op there, while a release build would
    # compile the whole dependency tree again (minutes on 2 cores). Dependencies are built
    # with opt-level 3 even in the dev profile, so crypto and erasure coding run at full speed.
    if ! timeout 1200 cargo build --locked --bin gateway; then
        echo "interop: cargo build failed"
        echo "interop: 0 passed, 1 failed"
        exit 1
    fi
    GATEWAY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/gateway"
fi

clients=("$@")
if [ ${#clients[@]} -eq 0 ]; then
    clients=(awscli boto3 rclone)
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/gateway-interop.XXXXXX")"
gw_pid=""
tls_pid=""
# Stops a child: SIGTERM, up to 10 s for it to exit, then SIGKILL. Never waits unbounded.
stop_process() {
    local pid="$1"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_process "$tls_pid"
    stop_process "$gw_pid"
    if [ "${INTEROP_KEEP:-0}" = 1 ]; then
        echo "interop: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

data="$tmp/data"
mkdir -p "$data"
# A small segment size so that the clients' multi-MiB objects span several segments.
cat >"$data/config.toml" <<'EOF'
listen = "127.0.0.1:7777"
region = "us-east-1"
key_file = "root.key"
credentials_file = "credentials.toml"

[storage]
scheme = "4/5/6/6"
segment_size = "8MiB"

[[nodes]]
id = "n1"
kind = "dir"
path = "nodes/n1"

[[nodes]]
id = "n2"
kind = "dir"
path = "nodes/n2"

[[nodes]]
id = "n3"
kind = "dir"
path = "nodes/n3"

[[nodes]]
id = "n4"
kind = "dir"
path = "nodes/n4"

[[nodes]]
id = "n5"
kind = "dir"
path = "nodes/n5"

[[nodes]]
id = "n6"
kind = "dir"
path = "nodes/n6"
EOF

: >"$tmp/gateway.out"
# The credentials must come from credentials.toml, not from a caller's environment.
env -u GATEWAY_ACCESS_KEY -u GATEWAY_SECRET_KEY NO_COLOR=1 \
    "$GATEWAY_BIN" run --data-dir "$data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$tmp/gateway.out" 2>"$tmp/gateway.log" </dev/null &
gw_pid=$!

gateway_failed() {
    echo "interop: $1" >&2
    echo "--- gateway stdout" >&2
    cat "$tmp/gateway.out" >&2 || true
    echo "--- gateway stderr (last 50 lines)" >&2
    tail -n 50 "$tmp/gateway.log" >&2 || true
    echo "interop: 0 passed, 1 failed"
    exit 1
}

port=""
for _ in $(seq 1 300); do
    port="$(sed -n 's#^gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$tmp/gateway.out")"
    [ -n "$port" ] && break
    kill -0 "$gw_pid" 2>/dev/null || gateway_failed "the gateway exited during start-up"
    sleep 0.1
done
[ -n "$port" ] || gateway_failed "no 'gateway listening on' line within 30 s"

creds="$data/credentials.toml"
toml_value() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\"[[:space:]]*\$/\1/p" "$creds" | sed -n 1p
}
access_key="$(toml_value access_key)"
secret_key="$(toml_value secret_key)"
if [ -z "$access_key" ] || [ -z "$secret_key" ]; then
    gateway_failed "cannot read access_key/secret_key from $creds"
fi
echo "interop: gateway $GATEWAY_BIN on http://127.0.0.1:$port (data in $data)"

# A second gateway serving S3 over TLS itself ([server] tls_cert/tls_key, a self-signed
# certificate for 127.0.0.1 made here), with the same credentials: over https, botocore and
# awscli send streaming bodies as aws-chunked with trailing checksums
# (STREAMING-UNSIGNED-PAYLOAD-TRAILER), and rclone checks the certificate against --ca-cert.
# Any failure here leaves GW_TLS_ENDPOINT empty, and the suites report their TLS checks failed.
tls_endpoint=""
tls_data="$tmp/tls-data"
mkdir -p "$tls_data"
if timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tmp/tls-key.pem" -out "$tmp/tls-cert.pem" -days 2 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1" >"$tmp/openssl.log" 2>&1; then
    sed -e '/^listen = /d' "$data/config.toml" >"$tls_data/config.toml"
    printf '\n[server]\ntls_cert = "%s"\ntls_key = "%s"\n' "$tmp/tls-cert.pem" "$tmp/tls-key.pem" \
        >>"$tls_data/config.toml"
    : >"$tmp/tls-gateway.out"
    env GATEWAY_ACCESS_KEY="$access_key" GATEWAY_SECRET_KEY="$secret_key" \
        "$GATEWAY_BIN" run --data-dir "$tls_data" --listen 127.0.0.1:0 --admin-listen off \
        >"$tmp/tls-gateway.out" 2>"$tmp/tls-gateway.log" </dev/null &
    tls_pid=$!
    for _ in $(seq 1 300); do
        tls_port="$(sed -n 's#^gateway listening on https://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$tmp/tls-gateway.out")"
        if [ -n "$tls_port" ]; then
            tls_endpoint="https://127.0.0.1:$tls_port"
            break
        fi
        kill -0 "$tls_pid" 2>/dev/null || break
        sleep 0.1
    done
fi
if [ -n "$tls_endpoint" ]; then
    echo "interop: TLS gateway on $tls_endpoint"
else
    echo "interop: no TLS gateway (openssl or the gateway failed):" >&2
    cat "$tmp/openssl.log" "$tmp/tls-gateway.log" >&2 2>/dev/null || true
fi

total_passed=0
total_failed=0
summaries=()
for client in "${clients[@]}"; do
    script=".ci/interop/${client}_suite.py"
    if [ ! -f "$script" ]; then
        echo "interop: unknown client $client" >&2
        summaries+=("$client: 0 passed, 1 failed")
        total_failed=$((total_failed + 1))
        continue
    fi
    work="$tmp/work-$client"
    mkdir -p "$work/home"
    echo "== interop: $client"
    started=$SECONDS
    set +e
    # A fresh, minimal environment: no AWS_*/RCLONE_* settings of the caller leak in, so every
    # client runs with its defaults. The venv's bin/ comes first on PATH (aws, rclone).
    env -i \
        HOME="$work/home" PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" \
        LANG=C.UTF-8 LC_ALL=C.UTF-8 PYTHONUTF8=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
        TMPDIR="$work" \
        GW_ENDPOINT="http://127.0.0.1:$port" GW_ACCESS_KEY="$access_key" \
        GW_SECRET_KEY="$secret_key" GW_WORK="$work" \
        GW_TLS_ENDPOINT="$tls_endpoint" GW_CA_BUNDLE="$tmp/tls-cert.pem" \
        timeout -k 10 300 "$venv/bin/python" "$script" </dev/null 2>&1 | tee "$tmp/$client.out"
    rc=${PIPESTATUS[0]}
    set -e
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/$client.out" | tail -n 1 || true)"
    passed=0
    failed=0
    if [ -n "$summary" ]; then
        passed="${summary%% passed*}"
        failed="${summary#*passed, }"
        failed="${failed%% failed*}"
    fi
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        # Crashed or timed out (124) before reporting a failure: that is a failure too.
        echo "FAIL - $client suite: exited with status $rc (124 = timed out after 300 s)"
        failed=1
    fi
    echo "== interop: $client took $((SECONDS - started)) s"
    summaries+=("$client: $passed passed, $failed failed")
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
done

if ! kill -0 "$gw_pid" 2>/dev/null; then
    echo "FAIL - gateway: the process died during the suite"
    total_failed=$((total_failed + 1))
fi
if [ "$total_failed" -ne 0 ]; then
    echo "--- gateway stderr (last 80 lines)"
    tail -n 80 "$tmp/gateway.log" || true
fi
echo "== interop summary"
for s in "${summaries[@]}"; do
    echo "$s"
done
echo "interop: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
