"""awscli against the gateway with the CLI's defaults (newest checksum behaviour, 8 MiB
multipart threshold and chunk size), retries aside (none, see AWS_MAX_ATTEMPTS below):
mb; cp of a 30 MiB file up (multipart) and down (parallel ranged GETs); sync up and down of a
tree with nested directories, a 0-byte file and unicode, space and symbol names; uploads on a
single connection after a 0-byte PUT (Expect: 100-continue); ls --recursive; s3api tagging,
copy-object (COPY, and REPLACE onto itself), head-object, list-object-versions; cp over https
to a gateway serving TLS itself (aws-chunked bodies with trailing checksums); rm --recursive
and rb.
Output contract: see common.py.
"""

import json
import operator
import os
import shutil

from common import (
    MIB,
    REGION,
    Suite,
    compare_trees,
    expect,
    expect_eq,
    make_tree,
    run,
    sha256_file,
    write_random,
)

BUCKET = "awscli-interop"

suite = Suite("awscli")
gw = suite.gateway
env = dict(os.environ)
env.update(
    AWS_ACCESS_KEY_ID=gw.access_key,
    AWS_SECRET_ACCESS_KEY=gw.secret_key,
    # No profile files: the CLI's built-in defaults are what is under test.
    AWS_CONFIG_FILE=str(gw.work / "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE=str(gw.work / "no-aws-credentials"),
    # The one setting changed from the defaults: no retries, so that a request the gateway
    # gets wrong (a 5xx, a stalled response) fails here instead of passing on a retry.
    AWS_MAX_ATTEMPTS="1",
)
aws_bin = shutil.which("aws", path=env["PATH"]) or "aws"


def aws(*args, check=True, tls=False, config_file=None):
    words = [str(a) for a in args]
    at = next((i for i, w in enumerate(words) if w in ("s3", "s3api")), 0)
    label = "aws " + " ".join(words[at : at + 2])
    cmd_env = env if config_file is None else {**env, "AWS_CONFIG_FILE": str(config_file)}
    if tls:
        expect(gw.tls_endpoint, "no TLS endpoint: the driver could not start the TLS gateway")
        target = ["--endpoint-url", gw.tls_endpoint, "--ca-bundle", gw.ca_bundle]
    else:
        target = ["--endpoint-url", gw.endpoint]
    return run([aws_bin, *target, "--region", REGION, *args], label, env=cmd_env, check=check)


def s3api(*args):
    out = aws("s3api", *args).stdout
    return json.loads(out) if out.strip() else {}


def remote_keys():
    keys = []
    token = None
    while True:
        args = ["list-objects-v2", "--bucket", BUCKET, "--no-paginate"]
        if token:
            args += ["--continuation-token", token]
        page = s3api(*args)
        keys += [o["Key"] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated"):
            return keys


big = gw.work / "big.bin"
write_random(big, 30 * MIB)
tree = make_tree(gw.work / "tree", large_files=[("nested/large/9mib.bin", 9 * MIB)])


def mb():
    aws("s3", "mb", f"s3://{BUCKET}")
    listed = s3api("list-buckets")
    expect(BUCKET in [b["Name"] for b in listed.get("Buckets", [])], f"{BUCKET} not in list-buckets")


def cp_up():
    aws("s3", "cp", big, f"s3://{BUCKET}/big.bin")
    head = s3api("head-object", "--bucket", BUCKET, "--key", "big.bin")
    expect_eq(head.get("ContentLength"), 30 * MIB, "ContentLength")
    # 30 MiB with the CLI's 8 MiB chunks is a 4-part multipart upload.
    expect(head.get("ETag", "").endswith('-4"'), f"ETag {head.get('ETag')} is not a 4-part multipart ETag")


def cp_down():
    out = gw.work / "big.down"
    aws("s3", "cp", f"s3://{BUCKET}/big.bin", out)
    expect_eq(sha256_file(out), sha256_file(big), "sha256 of the downloaded file")


def sync_up():
    aws("s3", "sync", tree, f"s3://{BUCKET}/tree/")
    keys = {k for k in remote_keys() if k.startswith("tree/")}
    local = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    expect_eq(sorted(keys), sorted(f"tree/{k}" for k in local), "keys after sync up")


def empty_then_more_on_one_connection():
    # One connection, so the requests follow each other on it: a 0-byte PUT (which the
    # server may answer without a 100 Continue) and then PUTs that wait for 100 Continue.
    # The CLI's botocore keeps state from the first exchange; the gateway must answer so
    # that the next upload on that connection does not stall.
    src = gw.work / "expect"
    src.mkdir()
    (src / "0-empty.bin").write_bytes(b"")
    (src / "1-small.txt").write_bytes(b"small\n")
    (src / "2-small.txt").write_bytes(b"small too\n")
    one = gw.work / "one-connection.cfg"
    one.write_text("[default]\ns3 =\n  max_concurrent_requests = 1\n")
    aws("--cli-read-timeout", "20", "s3", "cp", "--recursive", src, f"s3://{BUCKET}/expect/", config_file=one)
    listed = s3api("list-objects-v2", "--bucket", BUCKET, "--prefix", "expect/")
    sizes = {o["Key"]: o["Size"] for o in listed.get("Contents", [])}
    expect_eq(
        sizes, {"expect/0-empty.bin": 0, "expect/1-small.txt": 6, "expect/2-small.txt": 10}, "keys and sizes"
    )


def sync_again_is_noop():
    # The CLI compares sizes and LastModified with the local files: nothing may be re-sent.
    out = aws("s3", "sync", tree, f"s3://{BUCKET}/tree/").stdout
    expect(out.strip() == "", f"second sync transferred again: {out.strip()[:500]}")


def sync_down():
    fresh = gw.work / "fresh"
    fresh.mkdir()
    aws("s3", "sync", f"s3://{BUCKET}/tree/", fresh)
    n = compare_trees(tree, fresh)
    expect(n >= 10, f"only {n} files compared")


def ls_recursive():
    out = aws("s3", "ls", "--recursive", f"s3://{BUCKET}/").stdout
    # Lines are "DATE TIME SIZE KEY"; the key may contain spaces.
    listed = [line.split(maxsplit=3)[3] for line in out.splitlines() if line.strip()]
    expected = remote_keys()
    expect(len(expected) > 10, f"list-objects-v2 shows only {len(expected)} keys")
    expect_eq(sorted(listed), sorted(expected), "keys listed by s3 ls --recursive")
    expect_eq(len(listed), len(set(listed)), "number of distinct keys (a key was listed twice)")


def tagging():
    tags = [{"Key": "project", "Value": "interop"}, {"Key": "with space", "Value": "a value/with+symbols"}]
    s3api(
        "put-object-tagging",
        "--bucket",
        BUCKET,
        "--key",
        "tree/top.txt",
        "--tagging",
        json.dumps({"TagSet": tags}),
    )
    got = s3api("get-object-tagging", "--bucket", BUCKET, "--key", "tree/top.txt")
    by_key = operator.itemgetter("Key")
    expect_eq(sorted(got.get("TagSet", []), key=by_key), sorted(tags, key=by_key), "TagSet")


def copy_object():
    src = gw.work / "meta-src.txt"
    src.write_bytes(b"copy me\n" * 1000)
    s3api(
        "put-object",
        "--bucket",
        BUCKET,
        "--key",
        "copy/src.txt",
        "--body",
        src,
        "--content-type",
        "text/plain",
        "--metadata",
        "colour=blue,shape=round",
    )
    res = s3api(
        "copy-object", "--bucket", BUCKET, "--key", "copy/dst.txt", "--copy-source", f"{BUCKET}/copy/src.txt"
    )
    expect("ETag" in res.get("CopyObjectResult", {}), f"no CopyObjectResult.ETag in {res}")
    head = s3api("head-object", "--bucket", BUCKET, "--key", "copy/dst.txt")
    expect_eq(head.get("Metadata"), {"colour": "blue", "shape": "round"}, "metadata copied (COPY directive)")
    expect_eq(head.get("ContentType"), "text/plain", "ContentType copied")
    expect_eq(head.get("ETag"), res["CopyObjectResult"]["ETag"], "ETag of the copy vs CopyObjectResult")
    out = gw.work / "copy.down"
    s3api("get-object", "--bucket", BUCKET, "--key", "copy/dst.txt", out)
    expect_eq(out.read_bytes(), src.read_bytes(), "body of the copy")


def copy_object_replace():
    s3api(
        "copy-object",
        "--bucket",
        BUCKET,
        "--key",
        "copy/dst.txt",
        "--copy-source",
        f"{BUCKET}/copy/dst.txt",
        "--metadata-directive",
        "REPLACE",
        "--metadata",
        "colour=red",
        "--content-type",
        "application/x-interop",
    )
    head = s3api("head-object", "--bucket", BUCKET, "--key", "copy/dst.txt")
    expect_eq(head.get("Metadata"), {"colour": "red"}, "metadata after REPLACE onto itself")
    expect_eq(head.get("ContentType"), "application/x-interop", "ContentType after REPLACE")
    expect_eq(head.get("ContentLength"), 8000, "ContentLength after REPLACE")


def head_object():
    head = s3api("head-object", "--bucket", BUCKET, "--key", "big.bin")
    expect_eq(head.get("ContentLength"), 30 * MIB, "ContentLength")
    expect("LastModified" in head, f"no LastModified in {head}")
    missing = aws("s3api", "head-object", "--bucket", BUCKET, "--key", "no/such/key", check=False)
    expect(missing.returncode != 0, "head-object of a missing key succeeded")
    expect("(404)" in missing.stderr, f"missing key: expected a 404, got {missing.stderr.strip()[:300]}")


def list_object_versions():
    res = s3api("list-object-versions", "--bucket", BUCKET)
    versions = res.get("Versions", [])
    expected = remote_keys()
    expect_eq(sorted(v["Key"] for v in versions), sorted(expected), "keys in Versions")
    bad = [v for v in versions if v.get("VersionId") != "null" or v.get("IsLatest") is not True]
    expect(not bad, f"versions not (VersionId null, IsLatest true): {bad[:3]}")
    expect(not res.get("DeleteMarkers"), f"unexpected DeleteMarkers {res.get('DeleteMarkers')}")


def tls_cp():
    # The TLS gateway is a second gateway (own data directory): its bucket is made here.
    aws("s3", "mb", f"s3://{BUCKET}", tls=True)
    # Over https the CLI streams parts as aws-chunked bodies with a trailing checksum.
    up = aws("--debug", "s3", "cp", big, f"s3://{BUCKET}/tls/big.bin", tls=True)
    expect(
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in up.stderr,
        "the upload sent no STREAMING-UNSIGNED-PAYLOAD-TRAILER body",
    )
    out = gw.work / "tls-big.down"
    aws("s3", "cp", f"s3://{BUCKET}/tls/big.bin", out, tls=True)
    expect_eq(sha256_file(out), sha256_file(big), "sha256 of the downloaded file")


def rm_recursive():
    aws("s3", "rm", "--recursive", f"s3://{BUCKET}/")
    left = remote_keys()
    expect_eq(left, [], "keys left after rm --recursive")
    aws("s3", "rb", f"s3://{BUCKET}")
    listed = s3api("list-buckets")
    expect(BUCKET not in [b["Name"] for b in listed.get("Buckets", [])], "bucket still listed after rb")


suite.check("s3 mb", mb)
suite.check("s3 cp 30 MiB up (multipart, 4 parts)", cp_up)
suite.check("s3 cp 30 MiB down, sha256 matches", cp_down)
suite.check("s3 sync tree up", sync_up)
suite.check("s3 sync again transfers nothing", sync_again_is_noop)
suite.check(
    "s3 cp --recursive on one connection: a 0-byte file, then more (Expect: 100-continue)",
    empty_then_more_on_one_connection,
)
suite.check("s3 sync tree down to a fresh dir, trees identical", sync_down)
suite.check("s3 ls --recursive lists every key once", ls_recursive)
suite.check("s3api put-object-tagging / get-object-tagging", tagging)
suite.check("s3api copy-object (metadata COPY)", copy_object)
suite.check("s3api copy-object onto itself with REPLACE", copy_object_replace)
suite.check("s3api head-object (and 404 for a missing key)", head_object)
suite.check("s3api list-object-versions (unversioned: VersionId null)", list_object_versions)
suite.check("TLS: s3 cp 30 MiB up (trailing checksums) and down, sha256 matches", tls_cp)
suite.check("s3 rm --recursive empties, s3 rb removes", rm_recursive)
suite.finish()
