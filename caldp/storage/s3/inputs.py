"""A dataset's inputs from directly under an S3 prefix: its loose objects, else its one <id>*.tar.gz."""

import logging
import tempfile
from pathlib import Path

from ...exit_codes import CaldpError, ExitCode
from ...inputs import candidate_names, dataset_tarball
from ...tarsafe import Budget, InputTooLarge
from ..files import unpack_tarball
from .transfer import describe_s3

log = logging.getLogger("caldp.storage.s3")


def fetch_inputs(bucket, location, dataset, instrument, workdir, limits=None):
    """Download the dataset's loose objects, else its one <id>*.tar.gz, into workdir.

    Failures are CaldpError(S3_DOWNLOAD_ERROR); an unsafe tarball, or objects over the input limits
    (their listed sizes are checked before any byte is downloaded), are INPUT_TAR_FILE_ERROR.
    """
    workdir = Path(workdir)
    root = str(location)
    try:
        objects = list_dataset_objects(bucket, location, dataset)
    except Exception as exc:
        raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"cannot list {root}: {describe_s3(exc)}")
    loose = candidate_names(dataset, instrument, objects)
    name = None if loose else dataset_tarball(dataset, objects, root)
    if not loose and name is None:
        raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"no input objects for {dataset.name} in {root}")
    budget = Budget(limits)
    try:
        for each in loose or [name]:
            budget.claim(each, objects[each][1])
    except InputTooLarge as exc:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"input too large in {root}: {exc}")
    if loose:
        log.info("S3: downloading %d objects of %s from %s", len(loose), dataset, root)
        bucket.in_parallel(lambda each: download(bucket, objects[each], workdir / each), loose)
        return
    # The tarball goes into a scratch folder of its own, so only the extracted files reach workdir.
    with tempfile.TemporaryDirectory(prefix=".caldp-s3-", dir=workdir) as scratch:
        tarball = Path(scratch) / name
        download(bucket, objects[name], tarball)
        unpack_tarball(tarball, workdir, limits)


def list_dataset_objects(bucket, location, dataset):
    """{name: (key, size)} of the objects directly under the prefix that start with the ipppss.

    S3 prefixes are case-sensitive and ids arrive in either case, so both spellings are listed.
    """
    ipppss = dataset.name[:6]
    found = {}
    for start in sorted({ipppss, ipppss.upper()}):
        for key, size in bucket.list_objects(location.key(start), delimiter="/"):
            found[key.rsplit("/", 1)[-1]] = (key, size)
    return found


def download(bucket, key_and_size, target):
    key, size = key_and_size
    try:
        bucket.download(key, size, target)
    except Exception as exc:
        raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"downloading {bucket.url(key)} failed: {describe_s3(exc)}")
