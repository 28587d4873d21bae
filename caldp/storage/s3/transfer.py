"""One S3 bucket through one boto3 client: managed transfers, each verified; listing; deleting.

Every object caldp uploads is checked afterwards by size and by a checksum S3 reports for it, and
every download by size (plus the object's full checksum, which botocore checks while it streams
when the object has one). The rules for what S3 reports:

* a flexible checksum (ChecksumSHA256, ChecksumSHA1, ChecksumCRC32), when the uploading client
  sent one: of the whole file, or (multipart, "-N" suffix) of the parts' checksums (COMPOSITE);
* else the ETag: the MD5 of the data, or of the parts' MD5s for a multipart upload, unless the
  object is encrypted with KMS or a customer key (then the ETag is no digest and only the size is
  checked).

Retries: botocore's own (standard mode, CALDP_RETRY_ATTEMPTS tries), see caldp.retry.
"""

import base64
import hashlib
import logging
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from ..base import VerificationError, size_text
from ...retry import Backoff, describe

log = logging.getLogger("caldp.storage.s3")

MB = 1024 * 1024  # S3 part sizes are binary
PARALLEL = 8  # objects transferred or copied at a time
# S3 checksum fields caldp can recompute locally, in order of preference.
CHECKSUMS = (("ChecksumSHA256", "sha256"), ("ChecksumSHA1", "sha1"), ("ChecksumCRC32", "crc32"))


class DeleteError(Exception):
    """DeleteObjects answered with per-key errors."""


def make_client(backoff):
    """An S3 client with botocore's standard retries (5xx, throttling, cut connections)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": backoff.attempts},
                    connect_timeout=30, read_timeout=120)
    return boto3.session.Session().client("s3", config=config)


def make_transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=8 * MB, max_concurrency=8)


class Bucket:
    """The objects of one bucket. The client is made on first use (boto3 is imported only then)."""

    def __init__(self, name, *, client=None, transfer_config=None, backoff=None):
        self.name = name
        self.backoff = backoff or Backoff.from_environ()
        self._client = client
        self._transfer_config = transfer_config

    def _ensure_client(self):
        """Make the client and the transfer configuration, once; return the client."""
        if self._client is None:
            self._client = make_client(self.backoff)
        if self._transfer_config is None:
            self._transfer_config = make_transfer_config()
        return self._client

    @property
    def client(self):
        return self._ensure_client()

    @property
    def transfer_config(self):
        self._ensure_client()
        return self._transfer_config

    def url(self, key):
        return f"s3://{self.name}/{key}"

    def in_parallel(self, function, items):
        """function(item) for every item, PARALLEL at a time (S3 latency, not bandwidth, bounds small
        files); the first failure cancels what has not started and is raised."""
        self._ensure_client()  # made here, once, not by racing threads
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(function, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    # ------------------------------------------------------------------------ transfers
    def download(self, key, size, target):
        """Download one object to target through a .part name, checked by size; log it."""
        part = target.parent / f".{target.name}.part"
        started = time.monotonic()
        try:
            # ChecksumMode makes botocore check the object's full checksum while it streams, when it has one.
            self.client.download_file(self.name, key, str(part), ExtraArgs={"ChecksumMode": "ENABLED"},
                                      Config=self.transfer_config)
            actual = part.stat().st_size
            if actual != size:
                raise VerificationError(f"got {actual} of {size} bytes")
            os.replace(part, target)
            os.chmod(target, 0o644)
        finally:
            part.unlink(missing_ok=True)
        log.info("S3: %s (%s) in %.1f s", target.name, size_text(size), time.monotonic() - started)

    def upload(self, path, key, label):
        """Upload one file and verify the object; log it under `label`."""
        started = time.monotonic()
        self.client.upload_file(str(path), self.name, key, Config=self.transfer_config)
        checked = self.verify_object(key, path)
        log.info("S3: %s (%s, %s) in %.1f s", label, size_text(path.stat().st_size), checked,
                 time.monotonic() - started)

    def copy(self, source_key, key):
        # The managed copy switches to multipart (UploadPartCopy) above the threshold; 5 GB is S3's single-copy limit.
        self.client.copy({"Bucket": self.name, "Key": source_key}, self.name, key, Config=self.transfer_config)

    # ---------------------------------------------------------------------- verification
    def verify_object(self, key, path):
        """Compare an uploaded object with its local file: size, then a checksum S3 reports; say which."""
        head = self.client.head_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
        size = path.stat().st_size
        if head["ContentLength"] != size:
            raise VerificationError(f"{head['ContentLength']} bytes in S3, {size} bytes locally")
        etag = head.get("ETag", "").strip('"')
        parts = int(etag.partition("-")[2] or 0)
        for field, algorithm in CHECKSUMS:
            if head.get(field):
                return self.compare_digest(key, path, algorithm, head[field].partition("-")[0], parts, field)
        # No flexible checksum: the ETag is the MD5 (of part MD5s) unless KMS or customer keys encrypt the object.
        if head.get("ServerSideEncryption", "AES256") == "AES256" and not head.get("SSECustomerAlgorithm"):
            return self.compare_digest(key, path, "md5", etag.partition("-")[0], parts, "ETag (MD5)")
        return "size checked"

    def compare_digest(self, key, path, algorithm, remote, parts, label):
        part_size = None
        if parts:
            part_size = self.client.head_object(Bucket=self.name, Key=key, PartNumber=1)["ContentLength"]
        full, composite = local_digests(path, algorithm, part_size)
        encode = (lambda b: b.hex()) if algorithm == "md5" else (lambda b: base64.b64encode(b).decode())
        # A multipart object's checksum is either of its parts' checksums (COMPOSITE) or of the whole file.
        if remote not in {encode(full), encode(composite) if composite else None}:
            raise VerificationError(f"{label} differs from the local file", kind="checksum")
        return f"{label} checked"

    def verify_listing(self, prefix, wanted):
        """Every key of `wanted` ({key: size}) is under prefix with its size."""
        actual = dict(self.list_objects(prefix))
        wrong = sorted(k for k, size in wanted.items() if actual.get(k) != size)
        if wrong:
            raise VerificationError(f"{len(wrong)} objects missing or of the wrong size after copying, e.g. {wrong[0]}")

    # ------------------------------------------------------------------ listing and deleting
    def list_objects(self, prefix, delimiter=None):
        """(key, size) of the objects whose keys start with prefix (one level only with delimiter="/")."""
        arguments = {"Bucket": self.name, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = delimiter
        for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    def delete_keys(self, keys):
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            response = self.client.delete_objects(Bucket=self.name, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise DeleteError(f"could not delete {first.get('Key')}: {first.get('Message')}")

    def delete_prefix_quietly(self, prefix):
        try:
            self.delete_keys([key for key, _ in self.list_objects(prefix)])
        except Exception as exc:
            log.warning("S3: could not remove the staging objects under %s: %s", self.url(prefix), describe_s3(exc))


def local_digests(path, algorithm, part_size=None):
    """(digest of the whole file, digest of the part digests or None) as S3 computes them."""
    chunk = part_size or 8 * MB
    whole = _Digest(algorithm)
    part_digests = []
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            whole.update(block)
            part = _Digest(algorithm)
            part.update(block)
            part_digests.append(part.digest())
    if not part_size:
        return whole.digest(), None
    combined = _Digest(algorithm)
    combined.update(b"".join(part_digests))
    return whole.digest(), combined.digest()


class _Digest:
    """hashlib's interface for hashlib algorithms and zlib's crc32 alike."""

    def __init__(self, algorithm):
        self.crc = 0 if algorithm == "crc32" else None
        self.hash = None if algorithm == "crc32" else hashlib.new(algorithm)

    def update(self, data):
        if self.hash is None:
            self.crc = zlib.crc32(data, self.crc)
        else:
            self.hash.update(data)

    def digest(self):
        return self.crc.to_bytes(4, "big") if self.hash is None else self.hash.digest()


def describe_s3(exc):
    """describe(), without boto3's "Failed to upload <local path> to <bucket/key>: " preamble."""
    text = describe(exc)
    if text.startswith(("Failed to upload ", "Failed to download ")) and ": " in text:
        return text.split(": ", 1)[1]
    return text
