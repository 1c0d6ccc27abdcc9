"""Shared plumbing for the interop client suites.

A suite is a list of checks; each check prints exactly one line, `ok - NAME` or
`FAIL - NAME: REASON` (the reason on one line), and the suite ends with the line
`N passed, N failed` and exits 1 if any check failed. A check fails on any exception,
so an unexpected client error is reported with the check that hit it rather than ending
the suite.

The driver (run.sh) passes the gateway in the environment: GW_ENDPOINT, GW_ACCESS_KEY,
GW_SECRET_KEY, GW_WORK (an empty scratch directory owned by this suite), and GW_TLS_ENDPOINT
with GW_CA_BUNDLE (a second gateway, own data directory and same credentials, serving S3 over
TLS with a self-signed certificate).
"""

import hashlib
import os
import subprocess
import sys
import time
import traceback
import urllib.error
from pathlib import Path

REGION = "us-east-1"
MIB = 1024 * 1024
# Bound on any one client command; the driver bounds the whole suite as well.
COMMAND_TIMEOUT = 240


class CheckFailed(Exception):
    """A check's assertion did not hold; the message says what was seen."""


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {short(expected)}, got {short(actual)}")


def short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Gateway:
    def __init__(self):
        self.endpoint = os.environ["GW_ENDPOINT"]
        self.access_key = os.environ["GW_ACCESS_KEY"]
        self.secret_key = os.environ["GW_SECRET_KEY"]
        self.work = Path(os.environ["GW_WORK"])
        # A second gateway serving TLS itself (its own buckets); empty if the driver could not start it.
        self.tls_endpoint = os.environ.get("GW_TLS_ENDPOINT", "")
        self.ca_bundle = os.environ.get("GW_CA_BUNDLE", "")


class Suite:
    def __init__(self, client):
        self.client = client
        self.passed = 0
        self.failed = 0
        self.gateway = Gateway()

    def check(self, name, fn):
        """Runs fn(); prints its line; returns fn's result, or None when it failed."""
        started = time.monotonic()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - any failure is this check's failure
            self.failed += 1
            reason = one_line(describe(e))
            print(f"FAIL - {name}: {reason}", flush=True)
            if not isinstance(e, (CheckFailed, CommandFailed)):
                # Unexpected exceptions keep their traceback for whoever debugs the server.
                tb = traceback.format_exc().rstrip().splitlines()
                for line in tb[-6:]:
                    print(f"    {line}", flush=True)
            return None
        self.passed += 1
        print(f"ok - {name} ({time.monotonic() - started:.1f} s)", flush=True)
        return result if result is not None else True

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def describe(e):
    # urllib's HTTPError: the S3 error document names the code.
    if isinstance(e, urllib.error.HTTPError):
        try:
            detail = e.read().decode("utf-8", "replace")[:600]
        except Exception:  # noqa: BLE001 - the status alone still says something
            detail = ""
        return f"HTTP {e.code} {e.reason}: {detail}"
    # botocore's ClientError carries the S3 error code and the HTTP status.
    response = getattr(e, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{type(e).__name__} {status} {err.get('Code')}: {err.get('Message')}"
    return f"{type(e).__name__}: {e}" if not isinstance(e, (CheckFailed, CommandFailed)) else str(e)


def one_line(text, limit=1500):
    text = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


def tail(text, limit):
    """The end of a client's output, where its error usually is."""
    return text if len(text) <= limit else "..." + text[-limit:]


class CommandFailed(Exception):
    pass


def run(args, label, env=None, check=True, timeout=COMMAND_TIMEOUT, cwd=None):
    """Runs a client command with a bounded wait; returns the CompletedProcess (text mode).

    With check=True a non-zero exit raises CommandFailed naming the command (`label`) and
    its stderr.
    """
    try:
        proc = subprocess.run(
            [str(a) for a in args],
            check=False,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise CommandFailed(f"{label}: timed out after {timeout} s") from e
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{label}: exit {proc.returncode}: {tail(one_line(proc.stderr or proc.stdout, None), 1200)}"
        )
    return proc


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def write_random(path, size):
    """Writes `size` random bytes (random, so nothing compresses or dedups by accident)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, MIB)
            f.write(os.urandom(n))
            left -= n


def tree_files(root):
    """Maps each regular file's path relative to root (with '/') to its sha256."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


def compare_trees(expected_root, actual_root):
    expected = tree_files(expected_root)
    actual = tree_files(actual_root)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    expect(
        not (missing or extra or differ),
        f"trees differ: missing {short(missing)}, extra {short(extra)}, content differs {short(differ)}",
    )
    return len(expected)


def make_tree(root, large_files=()):
    """A tree with nested directories, a 0-byte file, unicode and space names, small files
    around the inline limit, and the given (relative path, size) large files."""
    small = {
        "top.txt": b"top level\n",
        "empty.bin": b"",
        "a/b/c/deep.txt": b"deep\n" * 100,
        "a/b/sibling.txt": b"sibling\n",
        "a/inline-edge.bin": os.urandom(4096),
        "a/just-over-inline.bin": os.urandom(4097),
        "with space/file name.txt": b"spaces in both the directory and the file name\n",
        "ünïcödé/файл 文件.txt": b"unicode names\n",
        "symbols/plus+and%percent&amp=.txt": b"symbols\n",
        "medium/300k.bin": os.urandom(300 * 1024),
    }
    for rel, data in small.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for rel, size in large_files:
        write_random(root / rel, size)
    return root
