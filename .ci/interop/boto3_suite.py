"""boto3 against the gateway with the default client configuration (newest checksum
behaviour: request checksums and response validation `when_supported`), retries aside (none,
see NO_RETRIES), and awscrt installed as `boto3[crt]` gives it: put/get with every checksum
algorithm; no whole-object checksum on a ranged GET; multipart with CRC32 checksums
(composite) and the managed transfer; GetObject partNumber; copy_object; upload_part_copy with
ranges; presigned PUT and GET (boto3's default, SigV2 and SigV4); over https to a gateway
serving TLS itself, put_object and upload_part with trailing checksums
(STREAMING-UNSIGNED-PAYLOAD-TRAILER);
tagging; a list_objects_v2 paginator over 2 500 keys; delete_objects of 1 000 keys; a
conditional-put race. Output contract: see common.py.
"""

import base64
import hashlib
import threading
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import boto3
from awscrt import checksums as crt
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from common import MIB, REGION, Suite, expect, expect_eq, sha256_file, write_random

BUCKET = "boto3-interop"

suite = Suite("boto3")
gw = suite.gateway


# The one setting changed from the defaults: no retries, so that a request the gateway gets
# wrong (a 5xx, a stalled response) fails the check instead of passing on a retry.
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def client(config=None, tls=False):
    config = NO_RETRIES.merge(config) if config else NO_RETRIES
    if tls:
        expect(gw.tls_endpoint, "no TLS endpoint: the driver could not start the TLS gateway")
    return boto3.session.Session().client(
        "s3",
        endpoint_url=gw.tls_endpoint if tls else gw.endpoint,
        region_name=REGION,
        aws_access_key_id=gw.access_key,
        aws_secret_access_key=gw.secret_key,
        config=config,
        verify=gw.ca_bundle if tls else None,
    )


s3 = client()


def b64(raw):
    return base64.b64encode(raw).decode()


def checksum(algorithm, data):
    """The base64 value S3 returns for `data`, computed locally."""
    if algorithm == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "CRC32C":
        return b64(crt.crc32c(data).to_bytes(4, "big"))
    if algorithm == "CRC64NVME":
        return b64(crt.crc64nvme(data).to_bytes(8, "big"))
    if algorithm == "SHA1":
        return b64(hashlib.sha1(data).digest())
    if algorithm == "SHA256":
        return b64(hashlib.sha256(data).digest())
    raise ValueError(algorithm)


def body(key, **kwargs):
    return s3.get_object(Bucket=BUCKET, Key=key, **kwargs)["Body"].read()


def error_of(fn):
    """Runs fn, which must fail with a ClientError; returns (HTTP status, S3 code)."""
    try:
        fn()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    raise AssertionError("the request succeeded")


def create_bucket():
    s3.create_bucket(Bucket=BUCKET)
    s3.head_bucket(Bucket=BUCKET)


CHECKSUM_BODY = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(10_000)) + b"tail"


def put_get_with_checksum(algorithm):
    def check():
        key = f"cksum/{algorithm}"
        want = checksum(algorithm, CHECKSUM_BODY)
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=CHECKSUM_BODY, ChecksumAlgorithm=algorithm)
        expect_eq(put.get(f"Checksum{algorithm}"), want, f"Checksum{algorithm} in the PutObject response")
        got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        data = got["Body"].read()  # botocore validates the returned checksum while reading
        expect_eq(hashlib.sha256(data).hexdigest(), hashlib.sha256(CHECKSUM_BODY).hexdigest(), "body sha256")
        expect_eq(got.get(f"Checksum{algorithm}"), want, f"Checksum{algorithm} on GetObject")
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        expect_eq(head.get(f"Checksum{algorithm}"), want, f"Checksum{algorithm} on HeadObject")

    return check


def ranged_get_has_no_whole_checksum():
    got = s3.get_object(Bucket=BUCKET, Key="cksum/SHA256", Range="bytes=100-1099", ChecksumMode="ENABLED")
    data = got["Body"].read()
    expect_eq(data, CHECKSUM_BODY[100:1100], "ranged body")
    expect_eq(got.get("ContentRange"), f"bytes 100-1099/{len(CHECKSUM_BODY)}", "ContentRange")
    found = {k: v for k, v in got.items() if k.startswith("Checksum") and k != "ChecksumType"}
    expect(not found, f"a ranged GET returned a whole-object checksum: {found}")


PARTS = [
    hashlib.sha256(b"p1").digest() * (5 * MIB // 32),
    hashlib.sha256(b"p2").digest() * (5 * MIB // 32),
    hashlib.sha256(b"p3").digest() * (1 * MIB // 32),
]


def multipart_with_checksums():
    key = "mpu/crc32"
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32")
    upload_id = up["UploadId"]
    done = []
    for number, data in enumerate(PARTS, start=1):
        res = s3.upload_part(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        expect_eq(res.get("ChecksumCRC32"), checksum("CRC32", data), f"ChecksumCRC32 of part {number}")
        expect_eq(res["ETag"], f'"{hashlib.md5(data).hexdigest()}"', f"ETag of part {number}")
        done.append({"PartNumber": number, "ETag": res["ETag"], "ChecksumCRC32": res["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
    expect_eq([p["PartNumber"] for p in listed.get("Parts", [])], [1, 2, 3], "ListParts part numbers")
    fin = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in PARTS)).hexdigest()
    expect_eq(fin["ETag"], f'"{etag}-3"', "ETag of the completed upload")
    # A composite checksum: the CRC32 of the parts' raw CRC32s, then "-N".
    composite = (
        b64(zlib.crc32(b"".join(zlib.crc32(p).to_bytes(4, "big") for p in PARTS)).to_bytes(4, "big")) + "-3"
    )
    expect_eq(fin.get("ChecksumCRC32"), composite, "ChecksumCRC32 of the completed upload")
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    data = got["Body"].read()
    expect_eq(hashlib.sha256(data).hexdigest(), hashlib.sha256(b"".join(PARTS)).hexdigest(), "body sha256")
    expect_eq(got.get("ChecksumCRC32"), composite, "ChecksumCRC32 on GetObject")
    expect_eq(got.get("ChecksumType"), "COMPOSITE", "ChecksumType on GetObject")


def get_part_number():
    got = s3.get_object(Bucket=BUCKET, Key="mpu/crc32", PartNumber=2)
    data = got["Body"].read()
    expect_eq(got.get("PartsCount"), 3, "PartsCount")
    expect_eq(len(data), len(PARTS[1]), "length of part 2")
    expect(data == PARTS[1], "body of part 2 differs")
    expect_eq(got.get("ContentRange"), f"bytes {5 * MIB}-{10 * MIB - 1}/{11 * MIB}", "ContentRange of part 2")


def managed_transfer():
    src = gw.work / "managed.bin"
    write_random(src, 12 * MIB)
    config = TransferConfig(multipart_threshold=5 * MIB)
    s3.upload_file(str(src), BUCKET, "managed/12mib.bin", Config=config)
    head = s3.head_object(Bucket=BUCKET, Key="managed/12mib.bin", ChecksumMode="ENABLED")
    expect_eq(head["ContentLength"], 12 * MIB, "ContentLength")
    expect(head["ETag"].endswith('-2"'), f"ETag {head['ETag']} is not a 2-part multipart ETag")
    out = gw.work / "managed.down"
    s3.download_file(BUCKET, "managed/12mib.bin", str(out), Config=config)
    expect_eq(sha256_file(out), sha256_file(src), "sha256 after download_file")
    got = s3.get_object(Bucket=BUCKET, Key="managed/12mib.bin", ChecksumMode="ENABLED")
    data = got["Body"].read()  # validated by botocore if a full-object checksum is returned
    expect_eq(hashlib.sha256(data).hexdigest(), sha256_file(src), "sha256 after get_object")


def copy_object():
    s3.put_object(
        Bucket=BUCKET,
        Key="copy/src",
        Body=CHECKSUM_BODY,
        Metadata={"colour": "blue"},
        ContentType="text/x-src",
    )
    res = s3.copy_object(Bucket=BUCKET, Key="copy/dst", CopySource={"Bucket": BUCKET, "Key": "copy/src"})
    expect("ETag" in res.get("CopyObjectResult", {}), f"no CopyObjectResult.ETag in {res}")
    expect(body("copy/dst") == CHECKSUM_BODY, "body of the copy differs")
    head = s3.head_object(Bucket=BUCKET, Key="copy/dst")
    expect_eq(head.get("Metadata"), {"colour": "blue"}, "Metadata of the copy")
    expect_eq(head.get("ContentType"), "text/x-src", "ContentType of the copy")
    s3.copy_object(
        Bucket=BUCKET,
        Key="copy/dst",
        CopySource={"Bucket": BUCKET, "Key": "copy/src"},
        MetadataDirective="REPLACE",
        Metadata={"colour": "green"},
        ContentType="text/x-new",
    )
    head = s3.head_object(Bucket=BUCKET, Key="copy/dst")
    expect_eq(head.get("Metadata"), {"colour": "green"}, "Metadata after REPLACE")
    expect_eq(head.get("ContentType"), "text/x-new", "ContentType after REPLACE")
    expect(body("copy/dst") == CHECKSUM_BODY, "body after REPLACE differs")


def upload_part_copy():
    source = b"".join(hashlib.sha256(b"upc%d" % i).digest() for i in range(12 * MIB // 32))
    s3.put_object(Bucket=BUCKET, Key="upc/source", Body=source)
    ranges = [(0, 5 * MIB - 1), (6 * MIB, 11 * MIB - 1), (100, 1123)]
    up = s3.create_multipart_upload(Bucket=BUCKET, Key="upc/assembled")
    parts = []
    for number, (first, last) in enumerate(ranges, start=1):
        res = s3.upload_part_copy(
            Bucket=BUCKET,
            Key="upc/assembled",
            UploadId=up["UploadId"],
            PartNumber=number,
            CopySource={"Bucket": BUCKET, "Key": "upc/source"},
            CopySourceRange=f"bytes={first}-{last}",
        )
        want = f'"{hashlib.md5(source[first : last + 1]).hexdigest()}"'
        expect_eq(res["CopyPartResult"]["ETag"], want, f"ETag of copied part {number}")
        parts.append({"PartNumber": number, "ETag": res["CopyPartResult"]["ETag"]})
    fin = s3.complete_multipart_upload(
        Bucket=BUCKET, Key="upc/assembled", UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    expect(fin["ETag"].endswith('-3"'), f"ETag {fin['ETag']} is not a 3-part ETag")
    expected = b"".join(source[a : b + 1] for a, b in ranges)
    data = body("upc/assembled")
    expect_eq(len(data), len(expected), "length of the assembled object")
    expect(data == expected, "assembled body differs from the source ranges")


def signature_of(url):
    return "SigV4" if "X-Amz-Signature=" in url else "SigV2" if "Signature=" in url else "unknown"


def presigned(config, label):
    signer = client(config)

    def check():
        key = f"presigned/{label}"
        data = hashlib.sha256(label.encode()).digest() * 200
        put_url = signer.generate_presigned_url(
            "put_object",
            Params={"Bucket": BUCKET, "Key": key, "ContentType": "application/octet-stream"},
            ExpiresIn=300,
        )
        req = urllib.request.Request(
            put_url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}
        )
        with urllib.request.urlopen(req, timeout=60) as res:
            expect_eq(res.status, 200, f"presigned PUT status ({signature_of(put_url)})")
        expect(body(key) == data, "object written by the presigned PUT differs")
        get_url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
        )
        with urllib.request.urlopen(get_url, timeout=60) as res:
            expect_eq(res.status, 200, f"presigned GET status ({signature_of(get_url)})")
            expect(res.read() == data, f"presigned GET body differs ({signature_of(get_url)})")
        return signature_of(put_url), signature_of(get_url)

    return check


def capture_headers(c, operation):
    """Records the headers of every `operation` request that client c sends."""
    seen = []

    def record(request, **_):
        seen.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )

    c.meta.events.register(f"before-send.s3.{operation}", record)
    return seen


def expect_trailer(headers, algorithm, what):
    expect(headers, f"no {what} request was sent")
    for h in headers:
        expect_eq(
            h.get("x-amz-content-sha256"),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            f"{what} x-amz-content-sha256",
        )
        expect_eq(h.get("x-amz-trailer"), f"x-amz-checksum-{algorithm.lower()}", f"{what} x-amz-trailer")


def tls_put_get_with_trailer(algorithm):
    def check():
        c = client(tls=True)
        sent = capture_headers(c, "PutObject")
        key = f"tls/{algorithm}"
        want = checksum(algorithm, CHECKSUM_BODY)
        put = c.put_object(Bucket=BUCKET, Key=key, Body=CHECKSUM_BODY, ChecksumAlgorithm=algorithm)
        expect_trailer(sent, algorithm, "PutObject")
        expect_eq(put.get(f"Checksum{algorithm}"), want, f"Checksum{algorithm} in the PutObject response")
        got = c.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        expect(got["Body"].read() == CHECKSUM_BODY, "body read back differs")
        expect_eq(got.get(f"Checksum{algorithm}"), want, f"Checksum{algorithm} on GetObject")

    return check


def tls_managed_transfer():
    c = client(tls=True)
    sent = capture_headers(c, "UploadPart")
    src = gw.work / "tls-managed.bin"
    write_random(src, 11 * MIB)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    c.upload_file(str(src), BUCKET, "tls/managed.bin", Config=config)
    expect_trailer(sent, "CRC32", "UploadPart")
    expect_eq(len(sent), 3, "UploadPart requests for 11 MiB in 5 MiB chunks")
    out = gw.work / "tls-managed.down"
    c.download_file(BUCKET, "tls/managed.bin", str(out), Config=config)
    expect_eq(sha256_file(out), sha256_file(src), "sha256 after download_file")


def as_dict(tag_set):
    return {t["Key"]: t["Value"] for t in tag_set}


def tagging():
    s3.put_object(Bucket=BUCKET, Key="tags/obj", Body=b"tagged", Tagging="a=1&b=two%20words")
    got = s3.get_object_tagging(Bucket=BUCKET, Key="tags/obj")
    expect_eq(as_dict(got["TagSet"]), {"a": "1", "b": "two words"}, "TagSet from x-amz-tagging on PUT")
    expect_eq(s3.get_object(Bucket=BUCKET, Key="tags/obj").get("TagCount"), 2, "TagCount on GetObject")
    s3.put_object_tagging(Bucket=BUCKET, Key="tags/obj", Tagging={"TagSet": [{"Key": "env", "Value": "ci"}]})
    got = s3.get_object_tagging(Bucket=BUCKET, Key="tags/obj")
    expect_eq(as_dict(got["TagSet"]), {"env": "ci"}, "TagSet after PutObjectTagging (replaces)")
    s3.delete_object_tagging(Bucket=BUCKET, Key="tags/obj")
    got = s3.get_object_tagging(Bucket=BUCKET, Key="tags/obj")
    expect_eq(got["TagSet"], [], "TagSet after DeleteObjectTagging")


# Keys whose byte order differs from a naive order: case, a space, '_', '~', multi-byte UTF-8.
MANY = [f"many/{['a', 'B', 'é', 'z', '_', ' ', '~', '日'][i % 8]}{i:04d}" for i in range(2500)]


def create_many():
    bulk = client(Config(max_pool_connections=16))

    def put(key):
        bulk.put_object(Bucket=BUCKET, Key=key, Body=key.encode())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, MANY, timeout=240))


def paginate_many():
    seen = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="many/"):
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
    expected = sorted(MANY, key=lambda k: k.encode())
    expect_eq(len(seen), len(expected), "number of keys listed")
    expect_eq(len(set(seen)), len(seen), "distinct keys listed (a key was listed twice)")
    if seen != expected:
        i = next(i for i, (a, b) in enumerate(zip(seen, expected)) if a != b)
        expect(False, f"keys not in UTF-8 byte order: at index {i} got {seen[i]!r}, expected {expected[i]!r}")
    expect(pages >= 3, f"2 500 keys came in {pages} pages (MaxKeys defaults to 1 000)")


def delete_many():
    victims = sorted(MANY, key=lambda k: k.encode())[:1000]
    res = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in victims]})
    expect(not res.get("Errors"), f"Errors: {res.get('Errors', [])[:3]}")
    expect_eq(sorted(d["Key"] for d in res.get("Deleted", [])), sorted(victims), "Deleted keys")
    left = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="many/"):
        left += [o["Key"] for o in page.get("Contents", [])]
    expect_eq(len(left), 1500, "keys left")
    expect(not set(left) & set(victims), "a deleted key is still listed")


def conditional_put_race():
    key = "race/new-key"
    writers = 8
    barrier = threading.Barrier(writers, timeout=60)
    racer = client(Config(max_pool_connections=writers))
    outcomes = [None] * writers

    def write(i):
        barrier.wait()
        try:
            racer.put_object(Bucket=BUCKET, Key=key, Body=f"writer {i}".encode(), IfNoneMatch="*")
            outcomes[i] = "won"
        except ClientError as e:
            outcomes[i] = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    winners = [i for i, o in enumerate(outcomes) if o == "won"]
    losers = [o for o in outcomes if o != "won"]
    expect_eq(len(winners), 1, f"number of winners (outcomes {outcomes})")
    expect(
        all(o == (412, "PreconditionFailed") for o in losers),
        f"losers must get 412 PreconditionFailed: {outcomes}",
    )
    expect_eq(body(key), f"writer {winners[0]}".encode(), "stored body (the winner's)")
    status = error_of(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"late", IfNoneMatch="*"))
    expect_eq(status, (412, "PreconditionFailed"), "a later If-None-Match: * put")


suite.check("create_bucket", create_bucket)
for algo in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
    suite.check(f"put_object/get_object ChecksumAlgorithm={algo}", put_get_with_checksum(algo))
suite.check("ranged get_object returns no whole-object checksum", ranged_get_has_no_whole_checksum)
suite.check("multipart upload with CRC32 checksums (5+5+1 MiB, composite)", multipart_with_checksums)
suite.check("get_object PartNumber=2", get_part_number)
suite.check("managed upload_file/download_file (multipart_threshold 5 MiB)", managed_transfer)
suite.check("copy_object (COPY, then REPLACE)", copy_object)
suite.check("upload_part_copy with CopySourceRange", upload_part_copy)
default_sig = signature_of(
    client().generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
)
suite.check(f"presigned PUT and GET, default config ({default_sig})", presigned(None, "default"))
suite.check(
    "presigned PUT and GET, signature_version=s3v4", presigned(Config(signature_version="s3v4"), "v4")
)
suite.check(
    "presigned PUT and GET, signature_version=s3 (SigV2)", presigned(Config(signature_version="s3"), "v2")
)


def tls_bucket():
    # The TLS gateway is a second gateway (own data directory): its bucket is made here.
    client(tls=True).create_bucket(Bucket=BUCKET)


suite.check("TLS: create the bucket over https", tls_bucket)
for algo in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
    suite.check(
        f"TLS: put_object {algo} as a trailing checksum (UNSIGNED-PAYLOAD-TRAILER)",
        tls_put_get_with_trailer(algo),
    )
suite.check("TLS: managed multipart upload, parts with trailing CRC32", tls_managed_transfer)
suite.check("put/get/delete object tagging", tagging)
suite.check("put 2 500 keys (16 threads)", create_many)
suite.check("list_objects_v2 paginator sees 2 500 keys once, in order", paginate_many)
suite.check("delete_objects of 1 000 keys in one call", delete_many)
suite.check("conditional put race: 8 writers, If-None-Match *, exactly one wins", conditional_put_race)
suite.finish()
