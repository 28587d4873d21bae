"""messages/<state>/<ipppssoot> as S3 objects: the bytes under storage.base.MessageBox's rules.

A failed write or delete is S3_UPLOAD_ERROR (25, writing the outputs); a failed read is
S3_DOWNLOAD_ERROR (26): it is a download, and retrying it needs no write access.
"""

from ...exit_codes import CaldpError, ExitCode
from .transfer import describe_s3


def message_key(location, state, name):
    return location.key("messages", state, name)


def get(bucket, location, state, name):
    """The message's bytes, or None when there is none."""
    from botocore.exceptions import ClientError

    key = message_key(location, state, name)
    try:
        response = bucket.client.get_object(Bucket=bucket.name, Key=key)
        return response["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"reading {bucket.url(key)} failed: {describe_s3(exc)}")
    except Exception as exc:  # a connection lost after botocore's retries, a body cut short
        raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"reading {bucket.url(key)} failed: {describe_s3(exc)}")


def put(bucket, location, state, name, data):
    key = message_key(location, state, name)
    try:
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=data, ContentType="text/plain; charset=utf-8")
    except Exception as exc:
        raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"writing {bucket.url(key)} failed: {describe_s3(exc)}")


def delete(bucket, location, state, name):
    key = message_key(location, state, name)
    try:
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    except Exception as exc:
        raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"removing {bucket.url(key)} failed: {describe_s3(exc)}")
