"""The trailer: calacs.e-style progress messages for the console and the .tra file.

calacs.e writes every message both to stdout and to ``<rootname>.tra``; the
same text goes to both places here.  Lines are handed to a ``log`` callable
(``print`` by default) one at a time so a caller streaming our stdout sees
progress as it happens.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterable

logger = logging.getLogger(__name__)

WARN_PREFIX = "Warning    "
ERROR_PREFIX = "ERROR:    "


def timestamp() -> str:
    """Date and time in calacs.e's ``Begin``/``End`` line format.

    calacs.e prints local time with its zone; caldp's native trailers always use UTC.
    """
    return time.strftime("%d-%b-%Y %H:%M:%S UTC", time.gmtime())


def clock() -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime())


def begin_lines(label: str, version: str) -> list[str]:
    """The lines that open a task's section (prinfo.c's PrBegin)."""
    return ["", f"CALBEG*** {label} -- Version {version} ***", f"Begin    {timestamp()}"]


def end_lines(label: str) -> list[str]:
    """The lines that close a task's section (PrEnd)."""
    return [f"End      {timestamp()}", "", f"*** {label} complete ***"]


class Trailer:
    """Collects trailer lines and forwards each one to ``log`` immediately."""

    def __init__(self, log: Callable[[str], object] | None = print, quiet: bool = False):
        self._log = log
        self.quiet = quiet
        self.lines: list[str] = []

    def message(self, text: str = "") -> None:
        # calacs messages often embed newlines; the trailer stores real lines.
        for line in text.split("\n"):
            self.lines.append(line)
            logger.debug(line)
            if self._log is not None and not self.quiet:
                self._log(line)

    def warn(self, text: str) -> None:
        logger.warning(text)
        self.message(WARN_PREFIX + text)

    def error(self, text: str) -> None:
        self.message(ERROR_PREFIX + text)

    def extend(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.message(line)

    # -- calacs.e's recurring message shapes (prinfo.c) -------------------
    def begin(self, label: str, version: str) -> None:
        self.extend(begin_lines(label, version))

    def end(self, label: str) -> None:
        self.extend(end_lines(label))

    def filename(self, label: str, name: str) -> None:
        self.message(f"{label.capitalize():<8} {name}")

    def switch(self, keyword: str, value: str) -> None:
        self.message(f"{keyword.upper():<8} {value}")

    def refinfo(self, keyword: str, name: str, pedigree: str = "", descrip: str = "",
                descrip2: str = "") -> None:
        key = f"{keyword.upper():<8}"
        self.message(f"{key} {name}")
        if pedigree:
            self.message(f"{key} PEDIGREE={pedigree}")
        if descrip:
            self.message(f"{key} DESCRIP ={descrip}")
        if descrip2:
            self.message(f"{key} DESCRIP ={descrip2}")

    def write(self, path: Path, append: bool = True) -> None:
        """Write the collected lines; calacs.e appends to an existing trailer."""
        mode = "a" if append else "w"
        with open(path, mode, encoding="utf-8") as fh:
            fh.write("\n".join(self.lines) + "\n")
