"""Run settings, read from the environment once, in this one typed place.

    CALDP_HOME, CALDP_CAL, CALDP_KEEP_WORKDIR, CALDP_DRIZZLE_PROCESSES, CRDS_CONTEXT,
    CRDS_READONLY_CACHE, CALDP_RETRY_ATTEMPTS / CALDP_RETRY_DELAY (retry.Backoff),
    CALDP_MAST_TIMEOUT (read timeout of MAST requests, seconds)

The run's whole environment is kept too (`environ`): it is what the run's programs get, what CRDS
is lent (references.crds_environment), and where CALDP_PREVIEW_RENDERER and CALDP_SIMULATE_ERROR are
read by the steps they concern. Nothing per dataset reads os.environ behind the run's back.
"""

import dataclasses
import os
from pathlib import Path

from .exit_codes import CaldpError, ExitCode
from .retry import Backoff

DEFAULT_MAST_TIMEOUT = (30.0, 300.0)  # (connect, read) seconds: astroquery's own read default is 600 s

CAL_MODES = ("auto", "native", "hstcal")


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
        return cls(
            home=Path(environ.get("CALDP_HOME") or os.getcwd()).resolve(),
            cal_mode=cal_mode,
            crds_context=environ.get("CRDS_CONTEXT", "").strip(),
            sync_references=environ.get("CRDS_READONLY_CACHE", "0").strip() != "1",
            keep_workdir=environ.get("CALDP_KEEP_WORKDIR", "") == "1",
            drizzle_processes=max(1, processes),
            environ=environ,
            backoff=Backoff.from_environ(environ),
            mast_timeout=mast_timeout(environ),
        )


def mast_timeout(environ):
    try:
        return (DEFAULT_MAST_TIMEOUT[0], float(environ.get("CALDP_MAST_TIMEOUT", DEFAULT_MAST_TIMEOUT[1])))
    except ValueError:
        return DEFAULT_MAST_TIMEOUT
