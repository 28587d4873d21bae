"""Storage backends behind one interface, chosen once from the parsed location.

Input side:   fetch_inputs(dataset, instrument, workdir) -> None   (candidate files into workdir)
Output side:  publish(dataset, result_dir) -> [relative paths]     (atomic replace of the product tree)
              publish_logs(dataset, logs_dir)                       (a failed run: logs only)
              write_message(state, dataset, lines) / remove_message(state, dataset)
              lock(dataset)                                         (one run per dataset and output root)
              root                                                  (printable location, for the log)

Backends:     file:<dir>            storage.files.FileStorage    (input and output)
              s3://bucket/prefix    storage.s3.S3Storage         (input and output; needs boto3)
              astroquery:           storage.mast.MastStorage     (input only; needs astroquery)
"""

import importlib

from ..exit_codes import CaldpError, ExitCode
from ..locations import AstroqueryLocation, FileLocation, S3Location


def input_storage(location):
    return _open(location, s3_failure=ExitCode.S3_DOWNLOAD_ERROR)


def output_storage(location):
    if isinstance(location, AstroqueryLocation):
        raise TypeError("astroquery: is an input location only")
    return _open(location, s3_failure=ExitCode.S3_UPLOAD_ERROR)


def _open(location, s3_failure):
    """The backend for a parsed location; the client library is imported only when it is used."""
    if isinstance(location, FileLocation):
        from .files import FileStorage

        return FileStorage(location.path)
    if isinstance(location, S3Location):
        require("boto3", "aws", s3_failure, location)
        from .s3 import S3Storage

        return S3Storage(location)
    if isinstance(location, AstroqueryLocation):
        require("astroquery", "mast", ExitCode.ASTROQUERY_ERROR, location)
        from .mast import MastStorage

        return MastStorage()
    raise TypeError(location)


def require(module, extra, code, location):
    """Fail with the backend's exit code and the install command when its client library is absent."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise CaldpError(code, f"{location} needs {module}: pip install 'caldp[{extra}]'")
