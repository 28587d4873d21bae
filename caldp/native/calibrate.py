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

import os
from pathlib import Path
from typing import Callable

from astropy.io import fits

from .acs2d import run_2d_stage
from .acsccd import run_ccd_stage
from .bookkeeping import put_str
from .combine import combine_association
from .errors import CalibrationError
from .exposure import ExposureInfo, Switches, check_references_exist, needed_references
from .imageio import Exposure, read_exposure, write_product
from .trailer import Trailer, logger
from .version import VERSION_STRING


class NothingToDo(CalibrationError):
    """calacs.e's NOTHING_TO_DO: not an error, exit status 0, no product."""

    def __init__(self, message: str):
        super().__init__(message, exit_status=0)


CCD_2D_SWITCHES = ("DARKCORR", "FLSHCORR", "FLATCORR", "SHADCORR", "PHOTCORR")
MAMA_2D_SWITCHES = ("DQICORR", "GLINCORR", "LFLGCORR", "DARKCORR", "FLSHCORR", "FLATCORR",
                    "SHADCORR", "PHOTCORR")


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
    own_trailer = trailer is None
    trl = Trailer(log) if own_trailer else trailer
    root, flt_path, tra_path = product_names(raw_path)
    if own_trailer:
        trl.begin("CALACS", VERSION_STRING)
        trl.message("\n")
        trl.filename("input", raw_path.name)
        trl.message("LoadAsn:  Processing SINGLE exposure")
    try:
        _calibrate(raw_path, flt_path, root, _environment(jref), trl, nimages,
                   member=not own_trailer)
    except CalibrationError as exc:
        if isinstance(exc, NothingToDo):
            trl.warn(exc.message)
            trl.message(f"CALACS did NOT process {raw_path.name}")
        else:
            trl.error(exc.message)
            trl.error(f"CALACS processing NOT completed for {raw_path.name}")
        if own_trailer:
            trl.write(tra_path)
        raise
    if own_trailer:
        trl.message("\n")
        trl.end("CALACS")
        trl.message(f"CALACS completion for {raw_path.name}")
        trl.write(tra_path)
    return flt_path


def _calibrate(raw_path: Path, flt_path: Path, root: str, env: dict[str, str], trl: Trailer,
               nimages: int, member: bool = False) -> None:
    # An association member's trailer has no preface of its own (calacs.e
    # prints it once, for the association).
    if not member:
        trl.message(f"Trying to open {raw_path.name}...")
    if not raw_path.exists():
        raise CalibrationError(f"Input file `{raw_path.name}' not found.")
    try:
        primary = fits.getheader(raw_path, 0)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"Can't open input file `{raw_path.name}': {exc}") from exc
    if not member:
        trl.message(f"Read in Primary header from {raw_path.name}...")
    info = ExposureInfo.from_header(primary, raw_path.name)
    sw = Switches.from_header(primary)
    if flt_path.exists():
        raise CalibrationError(f"Output file `{flt_path.name}' already exists.")
    if sw.perform("RPTCORR") and sw.perform("CRCORR"):
        raise CalibrationError("RPTCORR and CRCORR both set to PERFORM.")

    for key in ("PCTECORR", "ATODCORR"):
        if sw.perform(key) and not (key != "PCTECORR" and info.is_mama):
            trl.message(f"{key} requested but not applied by caldp's native calibration")
            logger.warning("%s requested but not applied by caldp's native calibration", key)

    if info.is_mama and not member:
        trl.message("Starting to process MAMA data now...")
    if sw.missing_flshcorr and not member:
        trl.warn("FLSHCORR keyword not found...")
    if info.is_mama:
        do_ccd = False
        do_2d = any(sw.perform(k) for k in MAMA_2D_SWITCHES)
        for key in ("FLSHCORR", "SHADCORR", "BIASCORR", "BLEVCORR", "ATODCORR"):
            if sw.perform(key):
                trl.warn(f"{key} = PERFORM, but detector is MAMA.")
    else:
        do_ccd = any(sw.perform(k) for k in ("DQICORR", "ATODCORR", "BIASCORR", "BLEVCORR"))
        do_2d = any(sw.perform(k) for k in CCD_2D_SWITCHES)
        if not sw.perform("BLEVCORR") and sw.header.get("BLEVCORR") != "COMPLETE" and (
                sw.perform("BIASCORR") or sw.perform("DARKCORR") or sw.perform("FLATCORR")
                or sw.perform("SHADCORR") or sw.perform("FLSHCORR")):
            trl.warn("For science file, should do BLEVCORR to remove overscan")
            trl.message("before doing other steps that use reference images.")
    if sw.perform("CRCORR") and (info.is_mama or nimages < 2):
        trl.warn("CRCORR will be omitted because "
                 + ("detector is MAMA." if info.is_mama else "there's only one image."))
    if sw.perform("RPTCORR") and nimages < 2:
        trl.warn("RPTCORR will be omitted because there's only one image.")
    rpt = sw.perform("RPTCORR") and nimages >= 2
    if not (do_ccd or do_2d or sw.perform("PCTECORR") or rpt):
        raise NothingToDo("No calibration switch was set to PERFORM.")

    refs = check_references_exist(primary, needed_references(info, sw, nimages), info.detector,
                                  env, trl)
    exposure = read_exposure(raw_path)
    if not member:
        trl.message("")       # calacs.e leaves one more blank line before the first stage
    blv_path = raw_path.with_name(f"{root}_blv_tmp.fits")
    if do_ccd:
        exposure = run_ccd_stage(exposure, info, sw, refs, env, trl, VERSION_STRING, blv_path.name)
        put_str(exposure.primary, "CAL_VER", VERSION_STRING)
        put_str(exposure.primary, "FILENAME", blv_path.name)
        exposure = Exposure(path=blv_path, primary=exposure.primary, imsets=exposure.imsets)
    if do_2d:
        exposure = run_2d_stage(exposure, info, sw, refs, env, trl, VERSION_STRING, VERSION_STRING,
                                flt_path.name, ccd_stage_ran=do_ccd)
    else:
        if info.is_mama:
            trl.warn("No processing performed on image.")
            trl.warn(f"Copying input to {flt_path.name}")
        put_str(exposure.primary, "FILENAME", flt_path.name)
    write_product(exposure, flt_path)
    if not member:
        trl.message("Finished MAMA processing..." if info.is_mama else "Finished CCD processing...")


# -- associations -------------------------------------------------------------------

def _present_exposures(asn_path: Path) -> list[str]:
    """The MEMNAMEs of the table's present EXP-* rows.

    Unlike association.read_association (used for the combination step), absent members are
    skipped here rather than refused.
    """
    try:
        with fits.open(asn_path, memmap=False) as hdul:
            table = hdul[1].data
            names = [str(n).strip() for n in table["MEMNAME"]]
            types = [str(t).strip().upper() for t in table["MEMTYPE"]]
            present = [bool(p) for p in table["MEMPRSNT"]]
    except (OSError, KeyError, IndexError, ValueError) as exc:
        raise CalibrationError(f"Can't read association table `{asn_path.name}': {exc}") from exc
    return [n for n, t, p in zip(names, types, present) if t.startswith("EXP") and p]


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
    trl = Trailer(log)
    trl.begin("CALACS", VERSION_STRING)
    trl.message("\n")
    trl.filename("input", name)
    trl.message("LoadAsn:  Processing FULL Association")
    tra_path = asn_path.with_name(f"{asn_root}.tra")
    outputs: list[Path] = []
    try:
        if not asn_path.exists():
            raise CalibrationError(f"Input file `{name}' not found.")
        trl.message(f"Trying to open {name}...")
        members = _present_exposures(asn_path)
        trl.message(f"Read in Primary header from {name}...")
        if not members:
            raise CalibrationError(f"No present EXP members in association `{name}'.")
        first_raw = asn_path.with_name(f"{members[0].lower()}_raw.fits")
        if first_raw.exists():
            first_header = fits.getheader(first_raw, 0)
            detector = str(first_header.get("DETECTOR", "")).strip()
            if detector == "SBC":
                trl.message("Starting to process MAMA data now...")
            if "FLSHCORR" not in first_header:
                trl.warn("FLSHCORR keyword not found...")
        trl.message("")
        for index, member in enumerate(members):
            raw = asn_path.with_name(f"{member.lower()}_raw.fits")
            if not raw.exists():
                raise CalibrationError(f"Association member `{raw.name}' not found.")
            member_trl = Trailer(trl.message)
            if index == 0:
                member_trl.lines = list(trl.lines)      # the preface goes to the first member
            try:
                flt = calibrate_exposure(raw, jref=jref, trailer=member_trl, nimages=len(members))
            finally:
                member_trl.write(raw.with_name(f"{member.lower()}.tra"))
            outputs.append(flt)
        trl.message(f"Building association products for {name}")
        # combine_association writes the product and association trailers itself.
        outputs.extend(combine_association(asn_path, list(outputs)))
    except CalibrationError as exc:
        trl.error(exc.message)
        trl.write(tra_path)
        raise
    if log is not None:
        log(f"CALACS completion for {name}")
    return outputs
