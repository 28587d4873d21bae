"""caldp's CRDS download plugin: fetch a reference from S3 with boto3, verify it, retry.

CRDS (CRDS_DOWNLOAD_MODE=plugin) runs `crds_s3_get <s3 url> -d <path> -s <size> -c <sha1>`;
caldp puts this module behind that name while it runs bestrefs (see references.py), so the
archive's serverless CRDS mirror is read with the same client, retries and checks as the rest of
caldp. It can also be run as `caldp-crds-s3-get <s3 url> <path> [--file-size N] [--file-sha1sum S]`.

Exit status: 0 ok; 2 bad arguments; 10 size mismatch; 11 checksum mismatch; 404 no such object;
1 any other failure after the retries.
"""

import argparse
import hashlib
import logging
import os
import random
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

BAD_ARGUMENTS, BAD_SIZE, BAD_CHECKSUM, NOT_FOUND, FAILED = 2, 10, 11, 404, 1


class VerificationError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


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


def backoff_seconds(attempt, cap=20.0, rng=random.random):
    """Full jitter: a random wait up to 2**(attempt-1) s, capped (attempts start at 1)."""
    return min(cap, rng() * 2 ** (attempt - 1))


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
            raise VerificationError(BAD_SIZE, f"{url}: size {actual} does not match the expected {size}")
        if sha1 and sha1.lower() not in ("", "none") and sha1_of(partial) != sha1.lower():
            raise VerificationError(BAD_CHECKSUM, f"{url}: sha1 does not match the expected {sha1}")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def fetch(url, dest, *, size=None, sha1=None, retries=3, client=None, sleep=time.sleep):
    """Fetch with retries and jittered backoff; return an exit status (0 on success)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or boto3.client("s3")
    status, message = FAILED, ""
    for attempt in range(1, retries + 1):
        try:
            fetch_once(client, url, dest, size, sha1)
            return 0
        except VerificationError as exc:
            status, message = exc.status, str(exc)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NoSuchBucket"):
                log.error("%s: not found (%s)", url, code)
                return NOT_FOUND
            status, message = FAILED, f"{url}: {code or exc}"
        except (BotoCoreError, OSError, ValueError) as exc:
            status, message = FAILED, f"{url}: {exc}"
        if attempt < retries:
            wait = backoff_seconds(attempt)
            log.warning("%s (attempt %d of %d); retrying in %.1f s", message, attempt, retries, wait)
            sleep(wait)
    log.error("%s (giving up after %d attempts)", message, retries)
    return status


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="caldp-crds-s3-get", description=__doc__.split("\n\n")[0])
    parser.add_argument("source_url")
    parser.add_argument("output_path", nargs="?")
    parser.add_argument("-d", "--destination", help="output path (crds_s3_get style)")
    parser.add_argument("-s", "--file-size", type=int)
    parser.add_argument("-c", "--file-sha1sum")
    parser.add_argument("--max-retries", type=int, default=3)
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
