"""Storage backends behind one interface, chosen once from the parsed location.

Input side:   fetch_inputs(dataset, instrument, workdir) -> None   (candidate files into workdir)
Output side:  publish(dataset, result_dir) -> [relative paths]     (atomic replace of the product tree)
              publish_logs(dataset, logs_dir)                       (a failed run: logs only)
              write_message(state, dataset, lines) / remove_message(state, dataset)
              lock(dataset)                                         (one run per dataset and output root)
"""

from ..exit_codes import CaldpError, ExitCode
from ..locations import AstroqueryLocation, FileLocation, S3Location


def input_storage(location):
    if isinstance(location, FileLocation):
        from .files import FileStorage

        return FileStorage(location.path)
    if isinstance(location, S3Location):
        raise CaldpError(ExitCode.S3_DOWNLOAD_ERROR, f"S3 input ({location}) is not supported by this caldp version")
    if isinstance(location, AstroqueryLocation):
        raise CaldpError(ExitCode.ASTROQUERY_ERROR, "astroquery: input is not supported by this caldp version")
    raise TypeError(location)


def output_storage(location):
    if isinstance(location, FileLocation):
        from .files import FileStorage

        return FileStorage(location.path)
    if isinstance(location, S3Location):
        raise CaldpError(ExitCode.S3_UPLOAD_ERROR, f"S3 output ({location}) is not supported by this caldp version")
    raise TypeError(location)
