"""What calacs.e reads from a raw primary header, and which references it needs.

``ExposureInfo`` holds the primary-header keywords (getACSKeys); ``Switches``
the calibration switches; ``collect_references`` decides, like calacs.e's
SciFlags and RefExist, which reference keywords are needed and whether they
can be opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from astropy.io import fits

from ..common.keywords import DUMMY, OMIT, PERFORM, header_switch
from ..common.errors import CalibrationError
from ..common.fitsread import header_str
from ..common.refs import RefFile, RefSet, open_reference
from ..common.trailer import Trailer

SWITCH_KEYWORDS = (
    "DQICORR", "ATODCORR", "BLEVCORR", "BIASCORR", "SINKCORR", "PCTECORR",
    "FLSHCORR", "CRCORR", "EXPSCORR", "SHADCORR", "DARKCORR", "FLATCORR",
    "PHOTCORR", "RPTCORR", "GLINCORR", "LFLGCORR", "DRIZCORR",
)

# Steps caldp's native calibration recognises but does not apply; their
# switches are left as they are (never marked COMPLETE).
NOT_APPLIED = ("PCTECORR", "ATODCORR")

TABLE_KEYWORDS = ("CCDTAB", "BPIXTAB", "OSCNTAB", "ATODTAB", "CRREJTAB", "PCTETAB",
                  "IMPHTTAB", "MLINTAB", "SPOTTAB")


def _required(header: fits.Header, key: str, filename: str):
    if key not in header:
        raise CalibrationError(f"Keyword `{key}' not found in {filename}.")
    return header[key]


@dataclass
class ExposureInfo:
    """The primary-header keywords calacs.e uses (with its defaults)."""

    filename: str
    rootname: str
    detector: str
    aperture: str = ""
    obstype: str = ""
    jwrotype: str = ""
    filter1: str = ""
    filter2: str = ""
    exptime: float = 0.0
    expstart: float = 0.0
    expend: float = 0.0
    nextend: int = 3
    subarray: bool = False
    ccdamp: str = ""
    ccdgain: float = 1.0
    ccdofst: tuple[int, int, int, int] = (3, 3, 3, 3)
    flashdur: float = 0.0
    flashstatus: str = ""
    darktime: float = 0.0
    targname: str = ""
    lrfwave: float = -1.0

    @property
    def is_mama(self) -> bool:
        return self.detector == "SBC"

    @property
    def nimsets(self) -> int:
        return self.nextend // 3

    @classmethod
    def from_header(cls, header: fits.Header, filename: str) -> "ExposureInfo":
        rootname = str(_required(header, "ROOTNAME", filename)).strip()
        detector = str(_required(header, "DETECTOR", filename)).strip()
        info = cls(filename=filename, rootname=rootname, detector=detector)
        if detector not in ("SBC", "HRC", "WFC"):
            raise CalibrationError(f"DETECTOR = {detector} is invalid")
        info.aperture = header_str(header, "APERTURE").upper()
        info.obstype = header_str(header, "OBSTYPE")
        info.jwrotype = header_str(header, "JWROTYPE").upper()
        info.filter1 = header_str(header, "FILTER1")
        info.filter2 = header_str(header, "FILTER2")
        info.exptime = float(_required(header, "EXPTIME", filename))
        info.expstart = float(_required(header, "EXPSTART", filename))
        info.expend = float(_required(header, "EXPEND", filename))
        info.nextend = int(header.get("NEXTEND", 3))
        info.subarray = bool(_required(header, "SUBARRAY", filename))
        info.targname = header_str(header, "TARGNAME")
        info.lrfwave = float(header.get("LRFWAVE", -1.0))
        if detector != "SBC":
            info.ccdamp = str(_required(header, "CCDAMP", filename)).strip().upper()
            info.ccdgain = float(header.get("CCDGAIN", 1.0))
            info.ccdofst = tuple(int(header.get(f"CCDOFST{a}", 3)) for a in "ABCD")
            info.flashdur = float(header.get("FLASHDUR", 0.0))
            info.flashstatus = header_str(header, "FLASHSTA").upper()
            info.darktime = float(header.get("DARKTIME", 0.0))
            if not info.ccdamp or any(c not in "ABCD" for c in info.ccdamp):
                raise CalibrationError(f"CCDAMP = `{info.ccdamp}' is invalid. Must be in 'ABCD'")
        if info.exptime < 0:
            raise CalibrationError(f"Exposure time is invalid:  {info.exptime:14.6g}.")
        if info.nimsets < 1:
            raise CalibrationError(f"NEXTEND = {info.nextend}; must be at least 3.")
        return info


@dataclass
class Switches:
    """Header switch values (PERFORM / COMPLETE / OMIT) and the step states."""

    header: dict[str, str] = field(default_factory=dict)

    missing_flshcorr: bool = False

    @classmethod
    def from_header(cls, header: fits.Header) -> "Switches":
        values = {key: header_switch(header, key) for key in SWITCH_KEYWORDS}
        missing = "FLSHCORR" not in header
        if missing and "POSTFLSH" in header:
            # Old headers name the post-flash switch POSTFLSH.
            values["FLSHCORR"] = header_switch(header, "POSTFLSH")
        return cls(values, missing_flshcorr=missing)

    def perform(self, key: str) -> bool:
        return self.header.get(key) == PERFORM


# calacs.e's SciFlags: which keyword each switch needs, in its order.
def needed_references(info: ExposureInfo, sw: Switches, nimages: int = 1) -> list[str]:
    keys: list[str] = []
    ccd = not info.is_mama
    if ccd:
        keys.append("CCDTAB")
    if sw.perform("DQICORR"):
        keys.append("BPIXTAB")
    if sw.perform("GLINCORR") or sw.perform("LFLGCORR"):
        keys.append("MLINTAB")
    if sw.perform("CRCORR") and ccd and nimages >= 2:
        keys.append("CRREJTAB")
    if sw.perform("ATODCORR"):
        keys.append("ATODTAB")
    if sw.perform("BIASCORR"):
        keys.append("BIASFILE")
    if sw.perform("PCTECORR"):
        keys.append("PCTETAB")
    if sw.perform("DARKCORR"):
        keys.append("DARKFILE")
        if sw.perform("PCTECORR"):
            keys.append("DRKCFILE")
    if sw.perform("FLSHCORR"):
        keys.append("FLSHFILE")
    if sw.perform("FLATCORR"):
        keys.extend(["PFLTFILE", "DFLTFILE", "LFLTFILE"])
    if sw.perform("SHADCORR"):
        keys.append("SHADFILE")
    if sw.perform("BLEVCORR"):
        keys.append("OSCNTAB")
    if sw.perform("PHOTCORR"):
        keys.append("IMPHTTAB")
    return keys


def reference(header: fits.Header, key: str, env: dict[str, str] | None) -> RefFile:
    return open_reference(key, header_str(header, key), env, is_table=key in TABLE_KEYWORDS)


def known_reference(refs: RefSet, header: fits.Header, key: str,
                    env: dict[str, str] | None) -> RefFile:
    """The reference ``refs`` already holds for ``key``, or else ``key`` opened and added."""
    return refs.get(key) or refs.add(reference(header, key, env))


def require_ccdtab(ccdtab: RefFile, missing: list[str]) -> None:
    """GetACSFlags/Get2dFlags: a CCDTAB that does not open, or is a dummy, is missing."""
    if not ccdtab.exists:
        missing.append(f"CCDTAB `{ccdtab.name}'")
    elif ccdtab.dummy:
        missing.append(f"CCDTAB `{ccdtab.name}' is a dummy table")


def check_references_exist(header: fits.Header, keys: list[str], detector: str,
                           env: dict[str, str] | None, trailer: Trailer) -> RefSet:
    """RefExist: open every needed reference; fatal if any is missing."""
    refs = RefSet()
    missing: list[str] = []
    flats_not_given = 0
    for key in keys:
        ref = refs.add(reference(header, key, env))
        if ref.exists:
            continue
        if ref.name == "":
            missing.append(f"{key} `{ref.name}'")
        elif key == "BPIXTAB":
            if detector == "SBC":
                missing.append(f"{key} `{ref.name}'")
        elif key in ("PFLTFILE", "DFLTFILE", "LFLTFILE"):
            flats_not_given += 1
        else:
            missing.append(f"{key} `{ref.name}'")
    for item in missing:
        trailer.warn(f"{item} not found or can't open.")
    # A file that is there but does not open is named as unreadable, not as missing (calacs.e calls
    # both "missing", which sends an operator looking for a file that exists).
    unreadable = [f"{ref.keyword} `{ref.name}' ({ref.unreadable})" for ref in refs.refs.values() if ref.unreadable]
    if unreadable:
        raise CalibrationError(("Unreadable reference file: " if len(unreadable) == 1 else
                                f"{len(unreadable)} unreadable reference files: ") + "; ".join(unreadable) + ".")
    if flats_not_given == 3:
        trailer.warn("PFLTFILE, DFLTFILE, LFLTFILE are all blank")
        missing.append("PFLTFILE, DFLTFILE, LFLTFILE all blank")
    raise_missing(missing)
    return refs


def raise_missing(missing: list[str]) -> None:
    if not missing:
        return
    if len(missing) == 1:
        head = "One reference file was missing"
    else:
        head = f"{len(missing)} reference files were missing"
    raise CalibrationError(head + ": " + "; ".join(missing) + ".")


def step_state(sw: Switches, key: str, ref: RefFile | None = None) -> str:
    """PERFORM, OMIT, or DUMMY (a reference with PEDIGREE=DUMMY*)."""
    if not sw.perform(key):
        return OMIT
    if ref is not None and ref.exists and ref.dummy:
        return DUMMY
    return PERFORM


__all__ = ["ExposureInfo", "Switches", "needed_references", "check_references_exist",
           "raise_missing", "step_state", "reference", "known_reference", "require_ccdtab",
           "NOT_APPLIED", "SWITCH_KEYWORDS"]
