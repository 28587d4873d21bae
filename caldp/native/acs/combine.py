"""The association step of calacs.e: combine calibrated members into the association's products.

After the members of an ACS association are calibrated to ``_flt``, calacs.e combines each
sub-product:

* REPEAT-OBS on the SBC (RPTCORR): acssum adds the exposures into ``<product>_sfl.fits``;
* CR-SPLIT, and REPEAT-OBS on HRC/WFC: acsrej rejects cosmic rays into ``<product>_crj.fits``.

It then writes the product's SPT file (from the members' SPT files, when present), the product
trailer ``<product>.tra`` (the members' trailers followed by the step's own messages), marks
the product present in the association table, and appends the association trailer
``<asn rootname>.tra``.  :func:`combine_association` does all of that; :func:`sum_repeats` and
:func:`reject_cosmic_rays` are the pure combinations on in-memory FITS files.

Choices where calacs.e's behaviour is a quirk rather than a result:

* The association table is updated with astropy and only when a value changes (MEMPRSNT of the
  product row, ASN_PROD).  calacs.e rewrites the primary header and adds a duplicate
  ``NEXTEND`` card each time; a duplicate keyword is not valid FITS, so it is not reproduced.
* Trailers are reproduced as calacs.e writes them, including the repeated last line of every
  trailer it concatenates (its copy loop prints the final line twice), so that caldp's and
  calacs.e's trailers differ only in their time stamps and the program's version string.
* CAL_VER of a product is the first member's: the product is made by the same calibration
  that wrote the members.
* acsrej runs on the calibrated ``_flt`` members (this function's inputs), where calacs.e runs
  it on the ``_blv_tmp`` intermediates and flat-fields the result afterwards.  The combined
  SCI agrees for the linear steps (dark scaled by DARKTIME proportional to EXPTIME, flat);
  the sky levels and rejection thresholds differ slightly.  No CR-SPLIT golden exists here, so
  this path is verified by property tests only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from astropy.io import fits

from ...hstfile import rootname
from ..common.errors import CombineError
from ..common.trailer import begin_lines, end_lines
from ..common.version import VERSION_STRING as CALACS_VERSION
from .acssum import make_summed_product, sum_repeats
from .association import Association, Combination, check_member_switches, locate_members, read_association
from .rejection import flag_rejected_pixels, make_rejected_product, reject_cosmic_rays
from .spt import make_product_spt

log = logging.getLogger(__name__)

__all__ = ["combine_association", "sum_repeats", "reject_cosmic_rays", "flag_rejected_pixels",
           "CombineError"]


def combine_association(
    asn_path: Path, flt_paths: list[Path], *, finish_trailer: bool = True,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Make the association's combined products next to ``asn_path``; return their paths.

    ``flt_paths`` are the calibrated members (``<member>_flt.fits``); every exposure of the
    table must be among them.  Writes ``<product>_sfl.fits`` or ``<product>_crj.fits``, the
    product's SPT file when the members have SPT files, ``<product>.tra``, updates the table,
    and appends to ``<asn rootname>.tra``.  With ``finish_trailer`` (the default) the
    association trailer is closed with calacs.e's final "CALACS complete" lines, since this is
    the last step of calacs.e's run.  With CRMASK set in the CRREJTAB, the rejected pixels are
    flagged (DQ 8192) in the members' ``_flt`` files, as calacs.e does.  ``environ`` resolves
    ``jref$`` reference names (the CRREJTAB); without it, the process environment does.
    """
    asn_path = Path(asn_path)
    environ = os.environ if environ is None else environ
    directory = asn_path.parent
    association = read_association(asn_path)
    flts = locate_members(association, [Path(p) for p in flt_paths])
    if association.products:
        first_member = association.products[0].members[0]
        check_member_switches(association, fits.getheader(flts[first_member], 0))

    made: list[Path] = []
    for product in association.products:
        inputs = [flts[name] for name in product.members]
        output = directory / product.filename
        if output.exists():
            raise CombineError(f"output file {output} already exists")
        log.info(
            "%s: %s of %s -> %s",
            association.rootname, product.combination.value, ", ".join(product.members), output.name,
        )
        if product.combination is Combination.SUM_REPEATS:
            step_lines = make_summed_product(inputs, output, product)
        else:
            step_lines = make_rejected_product(inputs, output, product, environ)
        _write_product_trailer(directory / f"{product.name}.tra", inputs, step_lines)
        _mark_product_present(asn_path, product.row)
        made.append(output)

    _append_association_trailer(asn_path, association, flts, finish_trailer)
    return made


def _mark_product_present(asn_path: Path, row: int) -> None:
    """Set MEMPRSNT of the product row and ASN_PROD, writing only if something changes."""
    with fits.open(asn_path) as hdul:
        table = next(h for h in hdul[1:] if isinstance(h, fits.BinTableHDU))
        already = bool(table.data["MEMPRSNT"][row - 1]) and hdul[0].header.get("ASN_PROD") is True
    if already:
        return
    with fits.open(asn_path, mode="update") as hdul:
        table = next(h for h in hdul[1:] if isinstance(h, fits.BinTableHDU))
        table.data["MEMPRSNT"][row - 1] = True
        hdul[0].header["ASN_PROD"] = True


def _concatenated(paths: Sequence[Path]) -> str:
    """Trailers joined as calacs.e joins them: each one's last line comes out twice."""
    text = []
    for path in paths:
        if not path.is_file():
            log.warning("trailer %s not found; not copied", path.name)
            continue
        content = path.read_text()
        text.append(content)
        if content.endswith("\n"):
            text.append(content.splitlines(keepends=True)[-1])
    return "".join(text)


def _append(path: Path, text: str) -> None:
    with open(path, "a") as stream:
        stream.write(text)


def _write_product_trailer(trailer: Path, inputs: list[Path], step_lines: list[str]) -> None:
    member_trailers = [p.with_name(rootname(p.name) + ".tra") for p in inputs]
    _append(trailer, _concatenated(member_trailers) + "\n".join(step_lines) + "\n")


def _append_association_trailer(asn_path: Path, association: Association, flts, finish: bool) -> None:
    """Append the products' trailers (or the members', when nothing was combined) to the
    association trailer, then calacs.e's dither-product and completion messages.

    For a PROD-DTH row calacs.e makes no pixels (drizzling is DrizzlePac's), only the dither
    product's SPT file, and marks the row present.
    """
    directory = asn_path.parent
    if association.products:
        inputs = [directory / p.filename for p in association.products]
        sources = [directory / f"{p.name}.tra" for p in association.products]
    else:
        inputs = [flts[m.name] for m in association.exposures]
        sources = [flts[m.name].with_name(m.name + ".tra") for m in association.exposures]
    lines: list[str] = []
    dither = association.dither_product
    if dither is None:
        lines.append("Warning    No DTH product name specified. No product created.")
    else:
        lines += begin_lines("ACSDTH", CALACS_VERSION)
        lines += [
            "The task DrizzlePac needs to be run in order to generate",
            "a geometrically corrected, drizzle-combined product.",
            "See https://www.stsci.edu/scientific-community/software/drizzlepac for more details.",
        ]
        lines += make_product_spt(inputs, directory / f"{dither.name}_dth.fits", dither.memtype)
        lines += end_lines("ACSDTH")
        _mark_product_present(asn_path, dither.row)
    if finish:
        lines += ["", "", *end_lines("CALACS"), f"CALACS completion for {association.rootname}_asn.fits"]
    _append(directory / f"{association.rootname}.tra", _concatenated(sources) + "\n".join(lines) + "\n")
