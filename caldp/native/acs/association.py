"""ACS association tables: which exposures feed which product, and how they are combined.

calacs.e reads the ``_asn.fits`` table (MEMNAME, MEMTYPE, MEMPRSNT) to group exposures into
sub-products by their MEMTYPE position, and decides from the MEMTYPEs whether a product is a
CR-SPLIT (``EXP-CR*``) or a REPEAT-OBS (``EXP-RP*``) set.  The first member's header switches are
then checked against that decision.  This module reproduces those decisions as data; it never
touches pixels.

Two deliberate differences from calacs.e:

* calacs.e only *warns* about a member with MEMPRSNT=F and drops it; caldp treats an absent
  member as an input error (exit 21 in caldp's table), so the run stops with the member's name.
* calacs.e silently skips exposures whose MEMTYPE position it cannot parse; caldp keeps every
  ``EXP-DTH`` member as a stand-alone exposure (it feeds no combined product, as in calacs.e).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits

from ...hstfile import AssociationTableError, read_association_table, rootname
from ...hstfile import switch as _switch
from ..common.errors import CalibrationError

log = logging.getLogger(__name__)

MAMA_DETECTORS = frozenset({"SBC"})
CCD_DETECTORS = frozenset({"HRC", "WFC"})


class AssociationError(CalibrationError, ValueError):
    """The association table, or its members' headers, cannot be processed as calacs.e would."""


class MissingMemberError(CalibrationError, FileNotFoundError):
    """An association member is flagged absent (MEMPRSNT=F) or its file does not exist."""

    def __init__(self, member: str, reason: str):
        super().__init__(f"association member {member} is missing: {reason}")
        self.member = member


class Combination(enum.Enum):
    """How the exposures of one product are combined (and which calacs.e task does it)."""

    SUM_REPEATS = "acssum"  # REPEAT-OBS on the MAMA: plain sum -> _sfl
    REJECT_COSMIC_RAYS = "acsrej"  # CR-SPLIT, or REPEAT-OBS on a CCD -> _crj


@dataclass(frozen=True)
class Member:
    """One row of the association table."""

    name: str  # lower-case rootname, as calacs.e uses it for file names
    memtype: str  # upper-case with '-' (EXP-RPT, PROD-CR1, ...)
    present: bool
    row: int  # 1-based row in the table (calacs.e updates MEMPRSNT by row)
    position: int  # sub-product position (POSID); 0 for PROD-DTH and stand-alone EXP-DTH

    @property
    def is_product(self) -> bool:
        return self.memtype.startswith("PROD-")


@dataclass(frozen=True)
class Product:
    """A combined product (sub-product in calacs.e's words) and the exposures that feed it."""

    name: str  # lower-case rootname from the PROD-* row
    memtype: str  # e.g. PROD-RPT; written to the product's ASN_MTYP
    row: int
    position: int
    members: tuple[str, ...]  # rootnames, in table order (calacs.e's summation order)
    combination: Combination
    suffix: str  # "sfl" or "crj"

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.suffix}.fits"


@dataclass(frozen=True)
class Association:
    """What calacs.e would do with one association table."""

    rootname: str  # from the table's file name, e.g. jbz504020
    instrument: str
    detector: str
    crcorr: bool  # table holds EXP-CR* rows
    rptcorr: bool  # table holds EXP-RP* rows
    members: tuple[Member, ...]  # every row, products included
    products: tuple[Product, ...]  # products that will be made (sub-products with members)
    dither_product: Member | None  # the PROD-DTH row, if any (calacs.e makes no pixels for it)

    @property
    def exposures(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if not m.is_product)


def read_association(asn_path: Path) -> Association:
    """Read an ACS ``_asn.fits`` table into an :class:`Association`.

    Raises MissingMemberError for an exposure row with MEMPRSNT=F, AssociationError for a table
    that is not an ACS association or has no exposures.
    """
    asn_path = Path(asn_path)
    try:
        table = read_association_table(asn_path)
    except AssociationTableError as exc:
        raise AssociationError(str(exc)) from exc
    if not table.has_presence:
        raise AssociationError(f"{asn_path.name}: column(s) MEMPRSNT not found")
    instrument = str(table.header.get("INSTRUME", "")).strip().upper()
    detector = str(table.header.get("DETECTOR", "")).strip().upper()
    names = [row.name for row in table.rows]
    raw_types = [row.memtype for row in table.rows]
    present = [row.present for row in table.rows]

    if not instrument.startswith("ACS"):
        raise AssociationError(f"{asn_path.name} is not an ACS association (INSTRUME={instrument!r})")
    if detector not in MAMA_DETECTORS | CCD_DETECTORS:
        raise AssociationError(f"{asn_path.name} has an unknown DETECTOR {detector!r}")
    if not names:
        raise AssociationError(f"{asn_path.name} has no rows")

    memtypes = [_normalize_memtype(t, row) for row, t in enumerate(raw_types, start=1)]
    # calacs.e looks at the first row that names a CR-SPLIT or REPEAT-OBS type and
    # lets it decide for the whole table.
    crcorr = rptcorr = False
    for memtype in memtypes:
        if "-CR" in memtype:
            crcorr = True
            break
        if "-RP" in memtype:
            rptcorr = True
            break

    members = _number_positions(names, memtypes, present, crcorr, rptcorr)
    for member in members:
        if not member.is_product and not member.present:
            raise MissingMemberError(member.name, f"MEMPRSNT=F in {asn_path.name}")
    if not any(not m.is_product for m in members):
        raise AssociationError(f"{asn_path.name} lists no exposures")

    products = _group_products(members, crcorr, rptcorr, detector)
    dither = next((m for m in members if m.memtype == "PROD-DTH"), None)
    return Association(
        rootname=_rootname_of(asn_path.name),
        instrument=instrument,
        detector=detector,
        crcorr=crcorr,
        rptcorr=rptcorr,
        members=members,
        products=products,
        dither_product=dither,
    )


def check_member_switches(association: Association, first_member_header: fits.Header) -> Association:
    """Apply calacs.e's consistency check between the table and the first member's switches.

    calacs.e starts from the table's decision and lets the header only *add* a combination
    (a switch set to OMIT does not cancel what the table asks for).  A header asking for a
    combination the table does not describe, both switches at PERFORM, or a one-exposure
    product are errors, as in calacs.e ("CRCORR and/or RPTCORR values not consistent with ASN
    table!").  Returns the association unchanged when consistent.
    """
    crcorr_switch = _switch(first_member_header, "CRCORR")
    rptcorr_switch = _switch(first_member_header, "RPTCORR")
    if crcorr_switch == "PERFORM" and rptcorr_switch == "PERFORM":
        raise AssociationError("RPTCORR and CRCORR both set to PERFORM; one switch needs to be OMIT")

    first_product = association.products[0] if association.products else None
    n_images = len(first_product.members) if first_product else 1
    crcorr, rptcorr = association.crcorr, association.rptcorr
    if crcorr_switch == "PERFORM":
        crcorr = association.detector not in MAMA_DETECTORS and n_images >= 2
    if rptcorr_switch == "PERFORM":
        rptcorr = n_images >= 2
    if (crcorr, rptcorr) != (association.crcorr, association.rptcorr):
        raise AssociationError(
            "CRCORR and/or RPTCORR values not consistent with ASN table "
            f"(table: CRCORR={_word(association.crcorr)} RPTCORR={_word(association.rptcorr)}; "
            f"header: CRCORR={crcorr_switch} RPTCORR={rptcorr_switch}, {n_images} exposure(s))"
        )
    return association


def locate_members(
    association: Association, candidates: list[Path] | Mapping[str, Path]
) -> dict[str, Path]:
    """Map each exposure rootname to its file among ``candidates``; a missing one is an error.

    ``candidates`` are files named ``<rootname>_<suffix>.fits`` (any case); a mapping is
    taken as already resolved.
    """
    if isinstance(candidates, Mapping):
        by_root = {k.lower(): Path(v) for k, v in candidates.items()}
    else:
        by_root = {_rootname_of(Path(p).name): Path(p) for p in candidates}
    located: dict[str, Path] = {}
    for member in association.exposures:
        path = by_root.get(member.name)
        if path is None:
            raise MissingMemberError(member.name, "no calibrated file was given for it")
        if not path.is_file():
            raise MissingMemberError(member.name, f"{path} does not exist")
        located[member.name] = path
    unknown = sorted(set(by_root) - set(located))
    if unknown:
        log.warning("files not in association %s ignored: %s", association.rootname, ", ".join(unknown))
    return located


# ----------------------------------------------------------------------------------------------


def _normalize_memtype(memtype: str, row: int) -> str:
    normalized = memtype.upper()
    if "_" in normalized:
        # calacs.e accepts EXP_CRJ but flags it in the trailer; do the same in the log.
        log.warning("MEMTYPE %s in row %d was INVALID and needs to be corrected.", memtype, row)
        normalized = normalized.replace("_", "-")
    return normalized


def _number_positions(names, memtypes, present, crcorr, rptcorr) -> tuple[Member, ...]:
    """Give each row its sub-product position, the way calacs.e's POSID parsing does.

    EXP-CRJ / EXP-RPT / PROD-CRJ / PROD-RPT are position 1; EXP-CRn / EXP-RPn / PROD-CRn /
    PROD-RPn are position n; PROD-DTH is 0; EXP-DTH rows in a pure dither table get positions
    1, 2, ... in order, and in a CR-SPLIT/REPEAT table feed nothing (position 0).
    """
    members = []
    next_dither_position = 1
    for row, (name, memtype, is_present) in enumerate(zip(names, memtypes, present), start=1):
        kind, _, role = memtype.partition("-")
        if memtype == "PROD-DTH":
            position = 0
        elif role in ("CRJ", "RPT"):
            position = 1
        elif (crcorr and role.startswith("CR")) or (rptcorr and role.startswith("RP")):
            match = re.fullmatch(r"(?:CR|RP)(\d+)", role)
            if not match:
                raise AssociationError(f"cannot read the position from MEMTYPE {memtype} (row {row})")
            position = int(match.group(1))
        elif role == "DTH" and not (crcorr or rptcorr):
            position = next_dither_position
            next_dither_position += 1
        else:
            position = 0
        members.append(Member(name=name, memtype=memtype, present=is_present, row=row, position=position))
    return tuple(members)


def _group_products(members, crcorr, rptcorr, detector) -> tuple[Product, ...]:
    if not (crcorr or rptcorr):
        return ()
    if rptcorr and detector in MAMA_DETECTORS:
        combination, suffix = Combination.SUM_REPEATS, "sfl"
    else:
        # CR-SPLIT, and REPEAT-OBS on a CCD, both go through acsrej into a _crj.
        combination, suffix = Combination.REJECT_COSMIC_RAYS, "crj"
    products = []
    for row in members:
        if not row.is_product or row.memtype == "PROD-DTH" or row.position == 0:
            continue
        feeding = tuple(
            m.name for m in members if not m.is_product and m.position == row.position and m.present
        )
        if not feeding:
            continue  # calacs.e makes no sub-product without present inputs
        products.append(
            Product(
                name=row.name,
                memtype=row.memtype,
                row=row.row,
                position=row.position,
                members=feeding,
                combination=combination,
                suffix=suffix,
            )
        )
    return tuple(products)


def _word(flag: bool) -> str:
    return "PERFORM" if flag else "OMIT"


def _rootname_of(filename: str) -> str:
    """The lower-case rootname of a file name (caldp.hstfile.rootname, lower-cased)."""
    return rootname(filename.lower())
