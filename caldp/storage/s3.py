"""s3://bucket/prefix storage: the dataset's objects in; the data/ + messages/ tree out.

boto3 finds the endpoint (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), the credentials and the region
itself; caldp never reads, logs or passes credentials.

Output layout under the prefix is the file: layout: data/<instrument>/<id>/... and
messages/<state>/<id>. A product tree is replaced in three phases so that a failure never leaves a
half-written tree where the previous one was:

1. upload: every file goes to <prefix>/.caldp-staging/<run>/new/ (managed multipart transfers),
   each checked afterwards by size and, where S3 reports one, by checksum. Nothing under data/
   has changed yet, so a failed upload leaves the previous products untouched.
2. commit: the previous objects (a re-run) are first copied server-side to .../previous/; then
   the new objects are copied server-side into place and stale keys of the previous set are
   deleted. If the commit fails, the previous set is copied back (best effort).
3. the staging objects are deleted, whatever happened.

S3 has no multi-object rename, so during phase 2 (server-side copies only, seconds) a reader may
see a mix of old and new objects; the dataset-processed message, written after publish, is the
signal that a tree is complete. A crashed run can leave .caldp-staging/ behind: a lifecycle rule
expiring that prefix cleans it.

Locking is local to the machine (a lock file per output root and dataset under the temporary
directory); runs on different machines are kept apart by the batch layer, which submits one job
per dataset. An S3 lock object could not be told apart from one left by a run killed for memory,
and would block that run's retry.
"""

import base64
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import messages
from ..exit_codes import CaldpError, ExitCode
from ..inputs import candidate_names, dataset_tarball
from ..retry import Backoff, describe
from .files import FileStorage, unpack_tarball

log = logging.getLogger("caldp.storage.s3")

STAGING = ".caldp-staging"
MB = 1024 * 1024
PARALLEL = 8  # objects transferred or copied at a time
# S3 checksum fields caldp can recompute locally, in order of preference.
CHECKSUMS = (("ChecksumSHA256", "sha256"), ("ChecksumSHA1", "sha1"), ("ChecksumCRC32", "crc32"))


class VerificationError(Exception):
    pass


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


class S3Storage:
    def __init__(self, location, *, client=None, transfer_config=None, backoff=None):
        self.location = location
        self.bucket = location.bucket
        self.root = str(location)  # printable; never holds credentials
        self.backoff = backoff or Backoff.from_environ()
        self._client = client
        self._transfer_config = transfer_config

    def __repr__(self):
        return f"S3Storage({self.root!r})"

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.backoff)
        return self._client

    @property
    def transfer_config(self):
        if self._transfer_config is None:
            self._transfer_config = make_transfer_config()
        return self._transfer_config

    def url(self, key):
        return f"s3://{self.bucket}/{key}"

    # ---------------------------------------------------------------- input side
    def fetch_inputs(self, dataset, instrument, workdir):
        """Download the dataset's loose objects, else its one <id>*.tar.gz, from directly under the prefix."""
        workdir = Path(workdir)
        try:
            objects = self.list_dataset_objects(dataset)
        except Exception as exc:
            raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"cannot list {self.root}: {describe_s3(exc)}")
        loose = candidate_names(dataset, instrument, objects)
        if loose:
            log.info("S3: downloading %d objects of %s from %s", len(loose), dataset, self.root)
            self.in_parallel(lambda name: self.download(objects[name], workdir / name), loose)
            return
        name = dataset_tarball(dataset, objects, self.root)
        if name is None:
            raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"no input objects for {dataset.name} in {self.root}")
        # The tarball goes into a scratch folder of its own, so only the extracted files reach workdir.
        with tempfile.TemporaryDirectory(prefix=".caldp-s3-", dir=workdir) as scratch:
            tarball = Path(scratch) / name
            self.download(objects[name], tarball)
            unpack_tarball(tarball, workdir)

    def list_dataset_objects(self, dataset):
        """{name: (key, size)} of the objects directly under the prefix that start with the ipppss.

        S3 prefixes are case-sensitive and ids arrive in either case, so both spellings are listed.
        """
        ipppss = dataset.name[:6]
        found = {}
        for start in sorted({ipppss, ipppss.upper()}):
            base = self.location.key(start)
            for key, size in self.list_objects(base, delimiter="/"):
                found[key.rsplit("/", 1)[-1]] = (key, size)
        return found

    def download(self, key_and_size, target):
        key, size = key_and_size
        part = target.parent / f".{target.name}.part"
        started = time.monotonic()
        try:
            # ChecksumMode makes botocore check the object's full checksum while it streams, when it has one.
            self.client.download_file(self.bucket, key, str(part), ExtraArgs={"ChecksumMode": "ENABLED"},
                                      Config=self.transfer_config)
            actual = part.stat().st_size
            if actual != size:
                raise VerificationError(f"got {actual} of {size} bytes")
            os.replace(part, target)
            os.chmod(target, 0o644)
        except Exception as exc:
            raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"downloading {self.url(key)} failed: {describe_s3(exc)}")
        finally:
            part.unlink(missing_ok=True)
        log.info("S3: %s (%s) in %.1f s", target.name, _size_text(size), time.monotonic() - started)

    # --------------------------------------------------------------- output side
    def dataset_prefix(self, dataset):
        return self.location.key("data", dataset.instrument, dataset.name) + "/"

    def publish(self, dataset, result_dir):
        """Make data/<instrument>/<id>/ exactly the files of result_dir; return their paths relative to the root."""
        files = local_files(result_dir)
        prefix = self.dataset_prefix(dataset)
        self.replace_tree(dataset, files, prefix)
        base = self.location.key()
        return sorted(_relative(prefix + rel, base) for rel in files)

    def publish_logs(self, dataset, logs_dir):
        """A failed run: its logs replace logs/, beside whatever products an earlier run left."""
        # process.log is still being written (these very log lines): upload a snapshot of it.
        with tempfile.TemporaryDirectory(prefix="caldp-logs-") as scratch:
            snapshot = Path(scratch) / "logs"
            shutil.copytree(logs_dir, snapshot)
            self.replace_tree(dataset, local_files(snapshot), self.dataset_prefix(dataset) + "logs/")

    def replace_tree(self, dataset, files, prefix):
        """Make the objects under `prefix` exactly `files` ({relative name: local path})."""
        staging = self.location.key(STAGING, f"{dataset.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}") + "/"
        try:
            self.upload_all(files, staging + "new/")
            self.commit(files, staging, prefix)
        finally:
            self.delete_prefix_quietly(staging)

    def upload_all(self, files, staging):
        total = sum(p.stat().st_size for p in files.values())
        log.info("S3: uploading %d files (%s) to %s", len(files), _size_text(total), self.root)
        self.in_parallel(lambda item: self.upload(item[0], item[1], staging + item[0]), sorted(files.items()))

    def upload(self, rel, path, key):
        started = time.monotonic()
        try:
            self.client.upload_file(str(path), self.bucket, key, Config=self.transfer_config)
            checked = self.verify_object(key, path)
        except Exception as exc:
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"uploading {rel} to {self.root} failed: {describe_s3(exc)}")
        log.info("S3: %s (%s, %s) in %.1f s", rel, _size_text(path.stat().st_size), checked, time.monotonic() - started)

    def commit(self, files, staging, prefix):
        """Copy the staged objects into place server-side; put the previous set back on failure."""
        previous = dict(self.list_objects(prefix))
        backup = staging + "previous/"
        try:
            self.in_parallel(lambda key: self.copy(key, backup + key[len(prefix):]), sorted(previous))
        except Exception as exc:  # nothing under prefix has changed yet
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"backing up the previous objects under {self.url(prefix)} "
                                                       f"failed: {describe_s3(exc)}")
        try:
            self.in_parallel(lambda rel: self.copy(staging + "new/" + rel, prefix + rel), sorted(files))
            wanted = {prefix + rel: path.stat().st_size for rel, path in files.items()}
            self.delete_keys(sorted(set(previous) - set(wanted)))
            self.verify_listing(prefix, wanted)
        except Exception as exc:
            self.restore(previous, backup, prefix, files)
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"replacing the objects under {self.url(prefix)} failed: "
                                                       f"{describe_s3(exc)}")
        log.info("S3: %d objects in place under %s (%d stale removed)", len(files), self.url(prefix),
                 len(set(previous) - {prefix + rel for rel in files}))

    def in_parallel(self, function, items):
        """function(item) for every item, PARALLEL at a time (S3 latency, not bandwidth, bounds small
        files); the first failure cancels what has not started and is raised."""
        self.client, self.transfer_config  # made here, once, not by racing threads
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(function, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def restore(self, previous, backup, prefix, files):
        """Best effort: make prefix hold the previous objects again, as the failed run found it."""
        try:
            self.in_parallel(lambda key: self.copy(backup + key[len(prefix):], key), sorted(previous))
            self.delete_keys(sorted({prefix + rel for rel in files} - set(previous)))
            log.warning("S3: the previous objects under %s were restored", self.url(prefix))
        except Exception as exc:
            log.error("S3: could not restore the previous objects under %s: %s", self.url(prefix), describe_s3(exc))

    def copy(self, source_key, key):
        # The managed copy switches to multipart (UploadPartCopy) above the threshold; 5 GB is S3's single-copy limit.
        self.client.copy({"Bucket": self.bucket, "Key": source_key}, self.bucket, key, Config=self.transfer_config)

    def verify_listing(self, prefix, wanted):
        actual = dict(self.list_objects(prefix))
        wrong = sorted(k for k, size in wanted.items() if actual.get(k) != size)
        if wrong:
            raise VerificationError(f"{len(wrong)} objects missing or of the wrong size after copying, e.g. {wrong[0]}")

    def verify_object(self, key, path):
        """Compare an uploaded object with its local file: size, then a checksum S3 reports; say which."""
        head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
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
            part_size = self.client.head_object(Bucket=self.bucket, Key=key, PartNumber=1)["ContentLength"]
        full, composite = local_digests(path, algorithm, part_size)
        encode = (lambda b: b.hex()) if algorithm == "md5" else (lambda b: base64.b64encode(b).decode())
        # A multipart object's checksum is either of its parts' checksums (COMPOSITE) or of the whole file.
        if remote not in {encode(full), encode(composite) if composite else None}:
            raise VerificationError(f"{label} differs from the local file")
        return f"{label} checked"

    # -------------------------------------------------------------------- listing and deleting
    def list_objects(self, prefix, delimiter=None):
        """(key, size) of the objects whose keys start with prefix (one level only with delimiter="/")."""
        arguments = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = delimiter
        for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    def delete_keys(self, keys):
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise VerificationError(f"could not delete {first.get('Key')}: {first.get('Message')}")

    def delete_prefix_quietly(self, prefix):
        try:
            self.delete_keys([key for key, _ in self.list_objects(prefix)])
        except Exception as exc:
            log.warning("S3: could not remove the staging objects under %s: %s", self.url(prefix), describe_s3(exc))

    # ------------------------------------------------------------------------------ messages
    def message_key(self, state, dataset):
        return self.location.key("messages", state, dataset.name)

    def write_message(self, state, dataset, lines):
        key = self.message_key(state, dataset)
        body = messages.render(state, dataset, lines).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="text/plain; charset=utf-8")
        except Exception as exc:
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"writing {self.url(key)} failed: {describe_s3(exc)}")

    def read_message(self, state, dataset):
        """The message's text, or None when there is none."""
        from botocore.exceptions import ClientError

        key = self.message_key(state, dataset)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"reading {self.url(key)} failed: {describe_s3(exc)}")
        return response["Body"].read().decode(errors="replace")

    def has_message(self, state, dataset):
        """True when caldp's own `state` message for the dataset exists."""
        text = self.read_message(state, dataset)
        return text is not None and messages.written_by_caldp(text)

    def remove_message(self, state, dataset):
        """Remove a message only if caldp wrote it; downstream tools own theirs."""
        if self.has_message(state, dataset):
            key = self.message_key(state, dataset)
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"removing {self.url(key)} failed: {describe_s3(exc)}")

    # ------------------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def lock(self, dataset):
        """One run per dataset and output root on this machine (see the module docstring)."""
        with FileStorage(local_lock_root(self.location)).lock(dataset):
            yield


def local_lock_root(location):
    digest = hashlib.sha256(str(location).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "caldp-locks" / f"s3-{digest}"


def local_files(directory):
    """{relative posix name: path} of every file under directory."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*")) if p.is_file()}


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


def _relative(key, base):
    return key[len(base) + 1:] if base else key


def _size_text(size):
    return f"{size / MB:.1f} MB" if size >= 100 * 1024 else f"{size / 1024:.1f} kB"
