"""Replacing the objects under an S3 prefix with a local tree: stage, commit, restore.

1. stage: every file goes to <root>/.caldp-staging/<run>/new/ (managed multipart transfers), each
   verified afterwards (transfer.Bucket.upload). Nothing under the target prefix has changed yet,
   so a failed upload leaves the previous objects untouched.
2. commit: the previous objects (a re-run) are first copied server-side to .../previous/; then
   the new objects are copied server-side into place and stale keys of the previous set are
   deleted. If the commit fails, the previous set is copied back (best effort: restore).
3. the staging objects are deleted, whatever happened.

S3 has no multi-object rename, so during phase 2 (server-side copies only, seconds) a reader may
see a mix of old and new objects; the dataset-processed message, written after publish, is the
signal that a tree is complete. A crashed run can leave .caldp-staging/ behind: a lifecycle rule
expiring that prefix cleans it.
"""

import logging
import os
import uuid
from pathlib import Path

from ...exit_codes import CaldpError, ExitCode
from ..base import size_text
from .transfer import describe_s3

log = logging.getLogger("caldp.storage.s3")

STAGING = ".caldp-staging"


def local_files(directory):
    """{relative posix name: path} of every file under directory."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*")) if p.is_file()}


def replace_tree(bucket, location, run_name, files, prefix):
    """Make the objects under `prefix` exactly `files` ({relative name: local path}).

    bucket: transfer.Bucket; location: the S3Location the staging area goes under; run_name names
    the staging folder (the dataset's id). Failures are CaldpError(S3_UPLOAD_ERROR).
    """
    staging = location.key(STAGING, f"{run_name}-{os.getpid()}-{uuid.uuid4().hex[:8]}") + "/"
    try:
        stage(bucket, str(location), files, staging + "new/")
        commit(bucket, files, staging, prefix)
    finally:
        bucket.delete_prefix_quietly(staging)


def stage(bucket, root, files, staging):
    """Upload every file under `staging`, each verified."""
    total = sum(p.stat().st_size for p in files.values())
    log.info("S3: uploading %d files (%s) to %s", len(files), size_text(total), root)

    def upload(item):
        rel, path = item
        try:
            bucket.upload(path, staging + rel, rel)
        except Exception as exc:
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"uploading {rel} to {root} failed: {describe_s3(exc)}")

    bucket.in_parallel(upload, sorted(files.items()))


def commit(bucket, files, staging, prefix):
    """Copy the staged objects into place server-side; put the previous set back on failure."""
    previous = dict(bucket.list_objects(prefix))
    backup = staging + "previous/"
    try:
        bucket.in_parallel(lambda key: bucket.copy(key, backup + key[len(prefix):]), sorted(previous))
    except Exception as exc:  # nothing under prefix has changed yet
        raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"backing up the previous objects under {bucket.url(prefix)} "
                                                   f"failed: {describe_s3(exc)}")
    try:
        bucket.in_parallel(lambda rel: bucket.copy(staging + "new/" + rel, prefix + rel), sorted(files))
        wanted = {prefix + rel: path.stat().st_size for rel, path in files.items()}
        bucket.delete_keys(sorted(set(previous) - set(wanted)))
        bucket.verify_listing(prefix, wanted)
    except Exception as exc:
        restore(bucket, previous, backup, prefix, files)
        raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"replacing the objects under {bucket.url(prefix)} failed: "
                                                   f"{describe_s3(exc)}")
    log.info("S3: %d objects in place under %s (%d stale removed)", len(files), bucket.url(prefix),
             len(set(previous) - {prefix + rel for rel in files}))


def restore(bucket, previous, backup, prefix, files):
    """Best effort: make prefix hold the previous objects again, as the failed run found it."""
    try:
        bucket.in_parallel(lambda key: bucket.copy(backup + key[len(prefix):], key), sorted(previous))
        bucket.delete_keys(sorted({prefix + rel for rel in files} - set(previous)))
        log.warning("S3: the previous objects under %s were restored", bucket.url(prefix))
    except Exception as exc:
        log.error("S3: could not restore the previous objects under %s: %s", bucket.url(prefix), describe_s3(exc))
