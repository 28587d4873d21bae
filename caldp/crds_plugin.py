"""caldp's CRDS download plugin: fetch a reference from S3 with boto3, verify it, retry.

CRDS (CRDS_DOWNLOAD_MODE=plugin) runs `crds_s3_get <s3 url> -d <path> -s <size> -c <sha1>`;
caldp puts this module behind that name while it runs bestrefs (see references.py), so the
archive's serverless CRDS mirror is read with boto3 and caldp's retry policy (caldp.retry), every
file checked by size and sha1. It can also be run as
`caldp-crds-s3-get <s3 url> <path> [--file-size N] [--file-sha1sum S]`.

Exit status: 0 ok; 2 bad arguments; 10 size mismatch; 11 checksum mismatch; 404 no such object;
1 any other failure after the retries.

Retries (caldp.retry, CRDS_PLUGIN_BACKOFF): --max-retries tries in all (default 3), waiting a
random 0..1 s, 0..2 s, 0..4 s ... (full jitter, capped at 20 s) between them. A size or sha1
mismatch and any transport failure are retried; a missing object is not.
"""

import argparse
import dataclasses
import hashlib
import logging
import os
import sys
import time
from pathlib import Path

from .retry import FULL, Backoff, call_with_retries
from .storage.base import VerificationError

log = logging.getLogger(__name__)

BAD_ARGUMENTS, BAD_SIZE, BAD_CHECKSUM, NOT_FOUND, FAILED = 2, 10, 11, 404, 1
VERIFICATION_STATUS = {"size": BAD_SIZE, "checksum": BAD_CHECKSUM}
CRDS_PLUGIN_BACKOFF = Backoff(attempts=3, first_delay=1.0, max_delay=20.0, jitter=FULL)
MISSING_CODES = ("404", "NoSuchKey", "NoSuchBucket")


class NotFound(Exception):
    """S3 has no such object (or bucket): final, not retried."""


def split_s3_url(url):
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def sha1_of(path):
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_once(client, url, dest, size=None, sha1=None):
    """Download to a temporary name beside `dest`, verify, then rename into place."""
    bucket, key = split_s3_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        client.download_file(bucket, key, str(partial))
        actual = partial.stat().st_size
        if size is not None and actual != int(size):
            raise VerificationError(f"size {actual} does not match the expected {size}", kind="size")
        if sha1 and sha1.lower() not in ("", "none") and sha1_of(partial) != sha1.lower():
            raise VerificationError(f"sha1 does not match the expected {sha1}", kind="checksum")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def fetch(url, dest, *, size=None, sha1=None, retries=CRDS_PLUGIN_BACKOFF.attempts, client=None, sleep=time.sleep):
    """Fetch with retries and jittered backoff (CRDS_PLUGIN_BACKOFF); return an exit status (0 on success)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or boto3.client("s3")

    def attempt():
        try:
            fetch_once(client, url, dest, size, sha1)
        except ClientError as exc:
            code = _error_code(exc)
            if code in MISSING_CODES:
                raise NotFound(code) from exc
            raise

    backoff = dataclasses.replace(CRDS_PLUGIN_BACKOFF, attempts=retries)
    retriable = (VerificationError, ClientError, BotoCoreError, OSError, ValueError)
    try:
        call_with_retries(attempt, backoff=backoff, what=url, retriable=retriable, sleep=sleep)
        return 0
    except NotFound as exc:
        log.error("%s: not found (%s)", url, exc)
        return NOT_FOUND
    except VerificationError as exc:
        status, message = VERIFICATION_STATUS[exc.kind], f"{url}: {exc}"
    except ClientError as exc:
        status, message = FAILED, f"{url}: {_error_code(exc) or exc}"
    except (BotoCoreError, OSError, ValueError) as exc:
        status, message = FAILED, f"{url}: {exc}"
    log.error("%s (giving up after %d attempts)", message, retries)
    return status


def _error_code(exc):
    return str(exc.response.get("Error", {}).get("Code", ""))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="caldp-crds-s3-get", description=__doc__.split("\n\n")[0])
    parser.add_argument("source_url")
    parser.add_argument("output_path", nargs="?")
    parser.add_argument("-d", "--destination", help="output path (crds_s3_get style)")
    parser.add_argument("-s", "--file-size", type=int)
    parser.add_argument("-c", "--file-sha1sum")
    parser.add_argument("--max-retries", type=int, default=CRDS_PLUGIN_BACKOFF.attempts)
    parser.add_argument("--ignore-cache", action="store_true", help="accepted for crds_s3_get compatibility")
    args = parser.parse_args(argv)
    args.output_path = args.destination or args.output_path
    if not args.output_path:
        parser.error("an output path is required")
    return args


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="caldp-crds-s3-get - %(levelname)s - %(message)s")
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else BAD_ARGUMENTS
    return fetch(args.source_url, args.output_path, size=args.file_size, sha1=args.file_sha1sum,
                 retries=max(1, args.max_retries))


if __name__ == "__main__":
    sys.exit(main())
