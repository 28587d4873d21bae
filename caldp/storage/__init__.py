"""Storage backends behind the interfaces of storage/base.py, chosen once from the parsed location.

    InputSource   fetch_inputs(dataset, instrument, workdir)     candidate files into the work dir
    OutputTree    publish(dataset, result_dir) -> [relative]     atomic replace of the product tree
                  publish_logs(dataset, logs_dir)                a failed run: logs only
                  synced_paths(published) -> [paths] | None      the dataset-synced lines, if any
                  lock(dataset), root                            one run per dataset; printable location
    MessageBox    write/read/has/remove_message                  caldp's rules over get/put/delete bytes

Backends:     file:<dir>            storage.files.FileStorage    (input and output)
              s3://bucket/prefix    storage.s3.S3Storage         (input and output; needs boto3)
              astroquery:           storage.mast.MastStorage     (input only; needs astroquery)
"""

import importlib

from ..exit_codes import CaldpError, ExitCode
from ..locations import AstroqueryLocation, FileLocation, S3Location
from .base import Destination, InputSource


def input_storage(location, settings=None) -> InputSource:
    """settings: the run's Settings (retries, MAST timeout); None: read from this process's environment."""
    return _open(location, settings, s3_failure=ExitCode.S3_DOWNLOAD_ERROR)


def output_storage(location, settings=None) -> Destination:
    if isinstance(location, AstroqueryLocation):
        raise TypeError("astroquery: is an input location only")
    return _open(location, settings, s3_failure=ExitCode.S3_UPLOAD_ERROR)


def _open(location, settings, s3_failure):
    """The backend for a parsed location; the client library is imported only when it is used."""
    backoff = settings.backoff if settings is not None else None
    limits = settings.input_limits if settings is not None else None
    if isinstance(location, FileLocation):
        from .files import FileStorage

        return FileStorage(location.path, limits=limits)
    if isinstance(location, S3Location):
        require("boto3", "aws", s3_failure, location)
        from .s3 import S3Storage

        return S3Storage(location, backoff=backoff, limits=limits)
    if isinstance(location, AstroqueryLocation):
        require("astroquery", "mast", ExitCode.ASTROQUERY_ERROR, location)
        from .mast import MastStorage

        return MastStorage(backoff=backoff, timeout=settings.mast_timeout if settings is not None else None)
    raise TypeError(location)


def require(module, extra, code, location):
    """Fail with the backend's exit code and the install command when its client library is absent."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise CaldpError(code, f"{location} needs {module}: pip install 'caldp[{extra}]'")
