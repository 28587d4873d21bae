"""Command line compatible with calacs.e: ``caldp-calacs [options] input``.

Accepted options, as calacs.e 10.5.0 accepts them: ``-t`` (time stamps),
``-s`` (save temporary files), ``-v`` (verbose), ``-q`` (quiet: trailer only),
``-r`` / ``--version`` (print the version and exit 0), ``-d`` (debug), ``-1``
(one thread), ``--nthreads N``, ``--ctegen N``, ``--pctetab FILE``,
``--gitinfo`` and ``--help``.  Single letters may be combined (``-tv``).
Timing, temporary files, threads and the CTE options change nothing here:
the calibration is single-threaded numpy and writes no temporary files.

The input is a ``_raw.fits`` exposure or an ``_asn.fits`` association,
resolved against the current directory; products are written next to it.
Exit status: 0 on success (and when calacs.e would have nothing to do),
2 (calacs.e's ERROR_RETURN) on failure, with a last line ``ERROR: <cause>``.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from .calibrate import NothingToDo, calibrate_association, calibrate_exposure
from ..common.errors import ERROR_RETURN, CalibrationError
from ..common.version import VERSION_STRING

USAGE = ("syntax:  caldp-calacs [--help] [-t] [-s] [-v] [-q] [-r] [--version] [--gitinfo] "
         "[-1|--nthreads <N>] [--ctegen <1|2>] [--pctetab <path>] input [input ...]")


def _emit(line: str) -> None:
    print(line, flush=True)


def parse_args(argv: list[str]) -> tuple[dict, list[str]] | int:
    """Options and inputs, or an exit status when nothing is to be run."""
    opts = {"verbose": False, "quiet": False, "timestamps": False, "save_tmp": False,
            "debug": False, "nthreads": None}
    inputs: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--version", "-r"):
            _emit(f"Current version: {VERSION_STRING}")
            return 0
        if arg == "--gitinfo":
            _emit(VERSION_STRING)
            return 0
        if arg == "--help":
            _emit(USAGE)
            return 0
        if arg in ("--nthreads", "--ctegen", "--pctetab"):
            if i + 1 >= len(argv):
                _emit(f"ERROR: option {arg} needs a value")
                return 1
            if arg == "--nthreads":
                try:
                    opts["nthreads"] = int(argv[i + 1])
                except ValueError:
                    _emit(f"ERROR: --nthreads needs an integer, got {argv[i + 1]!r}")
                    return 1
            i += 2
            continue
        if arg.startswith("--"):
            _emit(f"Unrecognized option {arg}")
            _emit(USAGE)
            return ERROR_RETURN
        if arg.startswith("-") and len(arg) > 1:
            for letter in arg[1:]:
                if letter == "r":
                    _emit(f"Current version: {VERSION_STRING}")
                    return 0
                key = {"t": "timestamps", "s": "save_tmp", "v": "verbose", "q": "quiet",
                       "d": "debug", "1": None}.get(letter, "unknown")
                if key == "unknown":
                    _emit(f"Unrecognized option {arg}")
                    _emit(USAGE)
                    return ERROR_RETURN
                if key:
                    opts[key] = True
                else:
                    opts["nthreads"] = 1
            i += 1
            continue
        inputs.append(arg)
        i += 1
    if not inputs:
        _emit(f"CALACS Version {VERSION_STRING}")
        _emit(USAGE)
        return ERROR_RETURN
    return opts, inputs


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(list(sys.argv[1:] if argv is None else argv))
    if isinstance(parsed, int):
        return parsed
    opts, inputs = parsed
    if opts["verbose"] or opts["debug"]:
        logging.getLogger("caldp.native").setLevel(logging.DEBUG)
    log = None if opts["quiet"] else _emit
    for name in inputs:
        path = Path(name)
        try:
            if path.name.endswith("_asn.fits"):
                calibrate_association(path, log=log)
            else:
                calibrate_exposure(path, log=log)
        except NothingToDo:
            continue
        except CalibrationError as exc:
            _emit(f"ERROR: {exc.message}")
            return exc.exit_status
        except Exception as exc:  # an internal failure must still end in one line
            traceback.print_exc(file=sys.stderr)
            _emit(f"ERROR: internal error while calibrating {name}: {exc}")
            return ERROR_RETURN
    return 0
