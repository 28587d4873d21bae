"""Run settings, read from the environment once, in this one typed place.

    CALDP_HOME, CALDP_CAL, CALDP_KEEP_WORKDIR, CALDP_DRIZZLE_PROCESSES, CRDS_CONTEXT,
    CRDS_READONLY_CACHE, CALDP_RETRY_ATTEMPTS / CALDP_RETRY_DELAY (retry.Backoff),
    CALDP_MAST_TIMEOUT (read timeout of MAST requests, seconds),
    CALDP_INPUT_MAX_FILE_SIZE / CALDP_INPUT_MAX_TOTAL_SIZE / CALDP_INPUT_MAX_RATIO (InputLimits)

CRDS_PATH is made absolute here, once (a relative one would be read from the work dir by the
stage programs). A current directory that no longer exists, with CALDP_HOME unset, and a
CALDP_HOME that is not valid UTF-8 are command-line errors (2).

The run's whole environment is kept too (`environ`): it is what the run's programs get, what CRDS
is lent (references.crds_environment), and where CALDP_PREVIEW_RENDERER and CALDP_SIMULATE_ERROR are
read by the steps they concern. Nothing per dataset reads os.environ behind the run's back.
"""

import dataclasses
import os
import re
from pathlib import Path

from .exit_codes import CaldpError, ExitCode
from .retry import Backoff

DEFAULT_MAST_TIMEOUT = (30.0, 300.0)  # (connect, read) seconds: astroquery's own read default is 600 s

CAL_MODES = ("auto", "native", "hstcal")

GiB = 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": GiB, "T": 1024**4}


@dataclasses.dataclass(frozen=True)
class InputLimits:
    """Bounds on what a dataset's inputs may bring into the work dir (caldp.tarsafe enforces them).

    max_file: one input file (a loose file, a tarball member, a decompressed .gz), in bytes;
    max_total: all of the dataset's input files together; max_ratio: unpacked bytes per compressed
    byte of a tarball or .gz, checked once more than RATIO_FLOOR bytes were unpacked (small files of
    zeros compress very well and are harmless). The defaults are far above any real HST dataset
    (a WFC3/UVIS or ACS/WFC raw is ~35 MB; big associations and COS TIME-TAG sets a few GB; real
    FITS data gzips by 2-60x).
    """

    max_file: int = 8 * GiB  # CALDP_INPUT_MAX_FILE_SIZE
    max_total: int = 32 * GiB  # CALDP_INPUT_MAX_TOTAL_SIZE
    max_ratio: float = 200.0  # CALDP_INPUT_MAX_RATIO
    RATIO_FLOOR = 64 * 1024**2

    @classmethod
    def from_environ(cls, environ):
        default = cls()
        return cls(
            max_file=parse_size(environ, "CALDP_INPUT_MAX_FILE_SIZE", default.max_file),
            max_total=parse_size(environ, "CALDP_INPUT_MAX_TOTAL_SIZE", default.max_total),
            max_ratio=_parse_ratio(environ, default.max_ratio),
        )


def parse_size(environ, name, default):
    """'8G', '500M', '64k', '1048576' (binary units) -> bytes; CaldpError(2) for anything else."""
    text = str(environ.get(name, "")).strip().upper()
    if not text:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", text)
    if not match or float(match.group(1)) <= 0:
        raise CaldpError(ExitCode.CMDLINE_ERROR, f"{name}={text!r} is not a size such as 8G, 500M or 1048576")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _parse_ratio(environ, default):
    text = str(environ.get("CALDP_INPUT_MAX_RATIO", "")).strip()
    if not text:
        return default
    try:
        ratio = float(text)
    except ValueError:
        ratio = 0
    if not ratio > 1:
        raise CaldpError(ExitCode.CMDLINE_ERROR, f"CALDP_INPUT_MAX_RATIO={text!r} is not a number above 1")
    return ratio


def printable(text):
    """`text` with undecodable bytes (surrogate escapes) shown as \\xNN, safe to log and write."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(text):
    try:
        str(text).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def current_directory():
    """os.getcwd(), or CaldpError(2) when the current directory no longer exists."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise CaldpError(
            ExitCode.CMDLINE_ERROR,
            "the current directory no longer exists: run from an existing directory or set CALDP_HOME "
            "and give absolute input/output locations",
        )


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path  # CALDP_HOME: where work directories are made
    cal_mode: str  # CALDP_CAL: auto (calacs.e if on PATH, else native) | native | hstcal
    crds_context: str  # CRDS_CONTEXT or "" for the operational context
    sync_references: bool  # False when CRDS_READONLY_CACHE=1
    keep_workdir: bool  # CALDP_KEEP_WORKDIR=1 keeps the work directory for debugging
    drizzle_processes: int  # CALDP_DRIZZLE_PROCESSES: runastrodriz -n
    environ: dict
    backoff: Backoff = Backoff()  # CALDP_RETRY_ATTEMPTS, CALDP_RETRY_DELAY: MAST and S3 retries
    mast_timeout: tuple = DEFAULT_MAST_TIMEOUT  # CALDP_MAST_TIMEOUT sets the read part
    input_limits: InputLimits = InputLimits()  # CALDP_INPUT_MAX_FILE_SIZE, _TOTAL_SIZE, _RATIO

    @classmethod
    def from_environ(cls, environ=None):
        environ = dict(os.environ if environ is None else environ)
        cal_mode = environ.get("CALDP_CAL", "auto").strip().lower() or "auto"
        if cal_mode not in CAL_MODES:
            raise CaldpError(ExitCode.CMDLINE_ERROR, f"CALDP_CAL={cal_mode!r} is not one of {', '.join(CAL_MODES)}")
        try:
            processes = int(environ.get("CALDP_DRIZZLE_PROCESSES", "1"))
        except ValueError:
            raise CaldpError(ExitCode.CMDLINE_ERROR, "CALDP_DRIZZLE_PROCESSES must be a whole number")
        home = environ.get("CALDP_HOME") or current_directory()
        if not is_utf8(home):
            raise CaldpError(ExitCode.CMDLINE_ERROR, f"CALDP_HOME {printable(home)} is not valid UTF-8: rename it")
        if environ.get("CRDS_PATH"):
            environ["CRDS_PATH"] = str(absolute_path(environ["CRDS_PATH"]))
        return cls(
            home=Path(home).resolve(),
            cal_mode=cal_mode,
            crds_context=environ.get("CRDS_CONTEXT", "").strip(),
            sync_references=environ.get("CRDS_READONLY_CACHE", "0").strip() != "1",
            keep_workdir=environ.get("CALDP_KEEP_WORKDIR", "") == "1",
            drizzle_processes=max(1, processes),
            environ=environ,
            backoff=Backoff.from_environ(environ),
            mast_timeout=mast_timeout(environ),
            input_limits=InputLimits.from_environ(environ),
        )


def absolute_path(text):
    """`text` as an absolute path (~ expanded), without resolving links; CaldpError(2) when it is
    relative and the current directory no longer exists."""
    path = Path(os.path.expanduser(str(text)))
    if not path.is_absolute():
        path = Path(current_directory()) / path
    return Path(os.path.normpath(path))


def mast_timeout(environ):
    try:
        return (DEFAULT_MAST_TIMEOUT[0], float(environ.get("CALDP_MAST_TIMEOUT", DEFAULT_MAST_TIMEOUT[1])))
    except ValueError:
        return DEFAULT_MAST_TIMEOUT
