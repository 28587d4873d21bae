"""calacs.e's driver for one exposure or one association.

``calibrate_exposure`` decides, like calacs.e, which stages run:

* CCD (HRC, WFC): ACSCCD when DQICORR, BIASCORR or BLEVCORR is PERFORM, then
  ACS2D when DARKCORR, FLSHCORR, FLATCORR, SHADCORR or PHOTCORR is PERFORM
  (without ACS2D the ACSCCD result is the _flt, statistics untouched);
* SBC: ACS2D directly on the raw file.

Output goes next to the input as ``<root>_flt.fits`` with the trailer
``<root>.tra`` (appended to, as calacs.e does).  An existing _flt is never
overwritten.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Callable

from astropy.io import fits

from .acs2d import run_2d_stage
from .acsccd import run_ccd_stage
from ...hstfile import read_association_table
from ..common.keywords import put_str
from .combine import combine_association
from ..common.errors import CalibrationError
from .exposure import (NOT_APPLIED, ExposureInfo, Switches, check_references_exist,
                       needed_references)
from ..common.imageio import Exposure, read_exposure, write_product
from ..common.trailer import Trailer
from ..common.version import VERSION_STRING

log = logging.getLogger(__name__)


class NothingToDo(CalibrationError):
    """calacs.e's NOTHING_TO_DO: not an error, exit status 0, no product."""

    def __init__(self, message: str):
        super().__init__(message, exit_status=0)


CCD_2D_SWITCHES = ("DARKCORR", "FLSHCORR", "FLATCORR", "SHADCORR", "PHOTCORR")
MAMA_2D_SWITCHES = ("DQICORR", "GLINCORR", "LFLGCORR", "DARKCORR", "FLSHCORR", "FLATCORR",
                    "SHADCORR", "PHOTCORR")
CCD_SWITCHES = ("DQICORR", "ATODCORR", "BIASCORR", "BLEVCORR")
MAMA_IGNORED_SWITCHES = ("FLSHCORR", "SHADCORR", "BIASCORR", "BLEVCORR", "ATODCORR")
OVERSCAN_SENSITIVE_SWITCHES = ("BIASCORR", "DARKCORR", "FLATCORR", "SHADCORR", "FLSHCORR")


def product_names(raw_path: Path) -> tuple[str, Path, Path]:
    """(root, flt path, trailer path) for a raw file name."""
    name = raw_path.name
    root = name[:-len("_raw.fits")] if name.endswith("_raw.fits") else raw_path.stem
    return root, raw_path.with_name(f"{root}_flt.fits"), raw_path.with_name(f"{root}.tra")


def _environment(jref: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if jref is not None:
        env["jref"] = jref
    return env


def calibrate_exposure(raw_path: Path, *, jref: str | None = None,
                       log: Callable[[str], object] | None = print,
                       trailer: Trailer | None = None, nimages: int = 1) -> Path:
    """Calibrate one ACS raw exposure into ``<root>_flt.fits``; returns its path.

    ``jref`` replaces the ``jref`` environment variable (it is concatenated
    with the file name, so it must end in ``/``).  Messages go to ``log``
    line by line and to ``<root>.tra``.  Raises CalibrationError where
    calacs.e exits with an error.
    """
    raw_path = Path(raw_path)
    if not raw_path.is_absolute():
        raw_path = Path.cwd() / raw_path
    root, flt_path, tra_path = product_names(raw_path)
    own_trailer = trailer is None
    if own_trailer:
        trailer = Trailer(log)
        trailer.begin("CALACS", VERSION_STRING)
        trailer.message("\n")
        trailer.filename("input", raw_path.name)
        trailer.message("LoadAsn:  Processing SINGLE exposure")
    try:
        _calibrate(raw_path, flt_path, root, _environment(jref), trailer, nimages,
                   member=not own_trailer)
    except CalibrationError as exc:
        if isinstance(exc, NothingToDo):
            trailer.warn(exc.message)
            trailer.message(f"CALACS did NOT process {raw_path.name}")
        else:
            trailer.error(exc.message)
            trailer.error(f"CALACS processing NOT completed for {raw_path.name}")
        if own_trailer:
            trailer.write(tra_path)
        raise
    if own_trailer:
        trailer.message("\n")
        trailer.end("CALACS")
        trailer.message(f"CALACS completion for {raw_path.name}")
        trailer.write(tra_path)
    return flt_path


@dataclass(frozen=True)
class StagePlan:
    """Which stages run (calacs.e's ACSinit and the checks around it), and the notes to give."""

    ccd: bool
    two_d: bool
    repeats: bool                        # RPTCORR with more than one image
    pctecorr: bool
    notes: tuple[tuple[str, str], ...]   # (trailer method, text) in calacs.e's order

    @property
    def nothing_to_do(self) -> bool:
        return not (self.ccd or self.two_d or self.pctecorr or self.repeats)


def plan_stages(info: ExposureInfo, switches: Switches, nimages: int, member: bool) -> StagePlan:
    """The stage decisions for one exposure; pure (the notes are returned, not written)."""
    notes: list[tuple[str, str]] = []
    if info.is_mama and not member:
        notes.append(("message", "Starting to process MAMA data now..."))
    if switches.missing_flshcorr and not member:
        notes.append(("warn", "FLSHCORR keyword not found..."))
    if info.is_mama:
        ccd = False
        two_d = any(switches.perform(key) for key in MAMA_2D_SWITCHES)
        notes.extend(("warn", f"{key} = PERFORM, but detector is MAMA.")
                     for key in MAMA_IGNORED_SWITCHES if switches.perform(key))
    else:
        ccd = any(switches.perform(key) for key in CCD_SWITCHES)
        two_d = any(switches.perform(key) for key in CCD_2D_SWITCHES)
        if _overscan_left(switches):
            notes.append(("warn", "For science file, should do BLEVCORR to remove overscan"))
            notes.append(("message", "before doing other steps that use reference images."))
    if switches.perform("CRCORR") and (info.is_mama or nimages < 2):
        notes.append(("warn", "CRCORR will be omitted because "
                      + ("detector is MAMA." if info.is_mama else "there's only one image.")))
    if switches.perform("RPTCORR") and nimages < 2:
        notes.append(("warn", "RPTCORR will be omitted because there's only one image."))
    return StagePlan(ccd=ccd, two_d=two_d, repeats=switches.perform("RPTCORR") and nimages >= 2,
                     pctecorr=switches.perform("PCTECORR"), notes=tuple(notes))


def _overscan_left(switches: Switches) -> bool:
    """Steps that use reference images are asked for on a frame that keeps its overscan."""
    return (not switches.perform("BLEVCORR") and switches.header.get("BLEVCORR") != "COMPLETE"
            and any(switches.perform(key) for key in OVERSCAN_SENSITIVE_SWITCHES))


def _calibrate(raw_path: Path, flt_path: Path, root: str, env: dict[str, str], trailer: Trailer,
               nimages: int, member: bool = False) -> None:
    primary, info, switches = _open_input(raw_path, flt_path, trailer, member)
    for key in NOT_APPLIED:
        if switches.perform(key) and not (key != "PCTECORR" and info.is_mama):
            trailer.message(f"{key} requested but not applied by caldp's native calibration")
            log.warning("%s requested but not applied by caldp's native calibration", key)
    plan = plan_stages(info, switches, nimages, member)
    for method, text in plan.notes:
        getattr(trailer, method)(text)
    if plan.nothing_to_do:
        raise NothingToDo("No calibration switch was set to PERFORM.")

    refs = check_references_exist(primary, needed_references(info, switches, nimages),
                                  info.detector, env, trailer)
    exposure = read_exposure(raw_path)
    if not member:
        trailer.message("")       # calacs.e leaves one more blank line before the first stage
    if plan.ccd:
        blv_path = raw_path.with_name(f"{root}_blv_tmp.fits")
        exposure = run_ccd_stage(exposure, info, switches, refs, env, trailer, VERSION_STRING,
                                 blv_path.name)
        put_str(exposure.primary, "CAL_VER", VERSION_STRING)
        put_str(exposure.primary, "FILENAME", blv_path.name)
        exposure = Exposure(path=blv_path, primary=exposure.primary, imsets=exposure.imsets)
    if plan.two_d:
        exposure = run_2d_stage(exposure, info, switches, refs, env, trailer, VERSION_STRING,
                                VERSION_STRING, flt_path.name, ccd_stage_ran=plan.ccd)
    else:
        if info.is_mama:
            trailer.warn("No processing performed on image.")
            trailer.warn(f"Copying input to {flt_path.name}")
        put_str(exposure.primary, "FILENAME", flt_path.name)
    write_product(exposure, flt_path)
    if not member:
        trailer.message("Finished MAMA processing..." if info.is_mama
                        else "Finished CCD processing...")


# Primary keywords the calibration does arithmetic with: a value that is not a finite number would end
# deep inside a step (or in writing a NaN keyword); it is refused up front, naming file and keyword.
NUMERIC_KEYWORDS = ("EXPTIME", "DARKTIME", "FLASHDUR", "EXPSTART", "EXPEND")


def check_numeric_keywords(primary: fits.Header, name: str) -> None:
    for key in NUMERIC_KEYWORDS:
        if key not in primary:
            continue
        value = primary[key]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not math.isfinite(number):
            raise CalibrationError(f"{name}: {key} = {value!r} is not a number.")


def _open_input(raw_path: Path, flt_path: Path, trailer: Trailer,
                member: bool) -> tuple[fits.Header, ExposureInfo, Switches]:
    """The raw file's primary header, after calacs.e's checks on the input and output."""
    # An association member's trailer has no preface of its own (calacs.e
    # prints it once, for the association).
    if not member:
        trailer.message(f"Trying to open {raw_path.name}...")
    if not raw_path.exists():
        raise CalibrationError(f"Input file `{raw_path.name}' not found.")
    try:
        primary = fits.getheader(raw_path, 0)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"Can't open input file `{raw_path.name}': {exc}") from exc
    if not member:
        trailer.message(f"Read in Primary header from {raw_path.name}...")
    check_numeric_keywords(primary, raw_path.name)
    info = ExposureInfo.from_header(primary, raw_path.name)
    switches = Switches.from_header(primary)
    if flt_path.exists():
        raise CalibrationError(f"Output file `{flt_path.name}' already exists.")
    if switches.perform("RPTCORR") and switches.perform("CRCORR"):
        raise CalibrationError("RPTCORR and CRCORR both set to PERFORM.")
    return primary, info, switches


# -- associations -------------------------------------------------------------------

def _present_exposures(asn_path: Path) -> list[str]:
    """The member names of the table's present EXP-* rows.

    Absent members are skipped here (calacs.e drops them with a warning); the combination
    step (association.read_association) then refuses the table, so the run still stops.
    A table without MEMPRSNT cannot be read.
    """
    try:
        table = read_association_table(asn_path)
        if not table.has_presence:
            raise KeyError("MEMPRSNT")
    except (OSError, KeyError, IndexError, ValueError, TypeError) as exc:
        raise CalibrationError(f"Can't read association table `{asn_path.name}': {exc}") from exc
    return [row.name for row in table.rows if row.is_exposure and row.present]


def calibrate_association(asn_path: Path, *, jref: str | None = None,
                          log: Callable[[str], object] | None = print) -> list[Path]:
    """Calibrate every present EXP-* member, then build the association products.

    Returns the member _flt paths followed by whatever
    ``caldp.native.combine.combine_association`` produced.  As in calacs.e,
    the first member's trailer starts with the association's preface; the
    combination step then writes the product and association trailers from
    the member trailers.
    """
    asn_path = Path(asn_path)
    if not asn_path.is_absolute():
        asn_path = Path.cwd() / asn_path
    name = asn_path.name
    asn_root = name[:-len("_asn.fits")] if name.endswith("_asn.fits") else asn_path.stem
    trailer = Trailer(log)
    trailer.begin("CALACS", VERSION_STRING)
    trailer.message("\n")
    trailer.filename("input", name)
    trailer.message("LoadAsn:  Processing FULL Association")
    tra_path = asn_path.with_name(f"{asn_root}.tra")
    outputs: list[Path] = []
    try:
        if not asn_path.exists():
            raise CalibrationError(f"Input file `{name}' not found.")
        trailer.message(f"Trying to open {name}...")
        members = _present_exposures(asn_path)
        trailer.message(f"Read in Primary header from {name}...")
        if not members:
            raise CalibrationError(f"No present EXP members in association `{name}'.")
        first_raw = asn_path.with_name(f"{members[0].lower()}_raw.fits")
        if first_raw.exists():
            first_header = fits.getheader(first_raw, 0)
            detector = str(first_header.get("DETECTOR", "")).strip()
            if detector == "SBC":
                trailer.message("Starting to process MAMA data now...")
            if "FLSHCORR" not in first_header:
                trailer.warn("FLSHCORR keyword not found...")
        trailer.message("")
        for index, member in enumerate(members):
            raw = asn_path.with_name(f"{member.lower()}_raw.fits")
            if not raw.exists():
                raise CalibrationError(f"Association member `{raw.name}' not found.")
            member_trailer = Trailer(trailer.message)
            if index == 0:
                member_trailer.lines = list(trailer.lines)      # the preface goes to the first member
            try:
                flt = calibrate_exposure(raw, jref=jref, trailer=member_trailer, nimages=len(members))
            finally:
                member_trailer.write(raw.with_name(f"{member.lower()}.tra"))
            outputs.append(flt)
        trailer.message(f"Building association products for {name}")
        # combine_association writes the product and association trailers itself.
        outputs.extend(combine_association(asn_path, list(outputs), environ=_environment(jref)))
    except CalibrationError as exc:
        trailer.error(exc.message)
        trailer.write(tra_path)
        raise
    if log is not None:
        log(f"CALACS completion for {name}")
    return outputs
