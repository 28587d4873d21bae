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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from .acsrej import (
    CR_FLAG,
    RejectionError,
    RejectionParameters,
    StackRejection,
    read_rejection_parameters,
    reject_stack,
)
from .association import (
    Association,
    Combination,
    Product,
    check_member_switches,
    locate_members,
    read_association,
)
from .bookkeeping import image_statistics, to_short, write_statistics
from .errors import CalibrationError
from .trailer import begin_lines, clock, end_lines
from .version import VERSION_STRING as CALACS_VERSION  # every native trailer names the same version

log = logging.getLogger("caldp.native.combine")

EXT_PER_IMSET = 3
_ALL_DQ_BITS = -1  # acssum's default SDQFLAGS (65535 seen as a signed short)


class CombineError(CalibrationError):
    """A product cannot be made (it already exists, inputs disagree, ...)."""


@dataclass(frozen=True)
class CosmicRayRejection:
    """A ``_crj`` product and, per input exposure and imset, the pixels rejected in it."""

    product: fits.HDUList
    rejected: tuple[tuple[np.ndarray, ...], ...]
    parameters: RejectionParameters
    trailer_lines: tuple[str, ...]


def combine_association(
    asn_path: Path, flt_paths: list[Path], *, finish_trailer: bool = True
) -> list[Path]:
    """Make the association's combined products next to ``asn_path``; return their paths.

    ``flt_paths`` are the calibrated members (``<member>_flt.fits``); every exposure of the
    table must be among them.  Writes ``<product>_sfl.fits`` or ``<product>_crj.fits``, the
    product's SPT file when the members have SPT files, ``<product>.tra``, updates the table,
    and appends to ``<asn rootname>.tra``.  With ``finish_trailer`` (the default) the
    association trailer is closed with calacs.e's final "CALACS complete" lines, since this is
    the last step of calacs.e's run.  With CRMASK set in the CRREJTAB, the rejected pixels are
    flagged (DQ 8192) in the members' ``_flt`` files, as calacs.e does.
    """
    asn_path = Path(asn_path)
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
            step_lines = _make_summed_product(inputs, output, product)
        else:
            step_lines = _make_rejected_product(inputs, output, product)
        _write_product_trailer(directory / f"{product.name}.tra", inputs, step_lines)
        _mark_product_present(asn_path, product.row)
        made.append(output)

    _append_association_trailer(asn_path, association, flts, finish_trailer)
    return made


def sum_repeats(exposures: Sequence[fits.HDUList], output_name: str, memtype: str) -> fits.HDUList:
    """acssum: add REPEAT-OBS exposures imset by imset; returns a new FITS file in memory.

    SCI is summed and DQ ORed in input order, ERR added in quadrature (all in float32, as
    calacs.e does).  The headers are the first exposure's, with EXPTIME the sum, EXPEND the last
    exposure's, NCOMBINE, RPTCORR=COMPLETE, statistics of the sum, and the product's names.
    """
    if len(exposures) < 2:
        raise CombineError("ACSSUM: can not continue, there is only one input image")
    first = exposures[0]
    primary = first[0].header.copy()
    nrptexp = primary.get("NRPTEXP")
    if nrptexp is not None and nrptexp != len(exposures):
        log.warning("%d exposures will be summed, however, NRPTEXP was %d.", len(exposures), nrptexp)
    sdqflags = primary.get("SDQFLAGS", _ALL_DQ_BITS)
    summed_exptime = float(primary["EXPTIME"])
    for exposure in exposures[1:]:
        summed_exptime += float(exposure[0].header["EXPTIME"])
    expend = float(exposures[-1][0].header["EXPEND"])
    rootname = _rootname(output_name)

    hdus = [fits.PrimaryHDU(header=primary)]
    for extver in range(1, _count_imsets(first) + 1):
        sci, err, dq = _read_imset(first, extver)
        chip = first["SCI", extver].header.get("CCDCHIP", 1)
        total = sci.copy()
        variance = err * err
        quality = dq.copy()
        for exposure in exposures[1:]:
            other = _read_imset(exposure, _extver_of_chip(exposure, chip))
            if other[0].shape != total.shape:
                raise CombineError("ACSSUM: input images do not have the same size")
            total += other[0]
            variance += other[1] * other[1]
            quality |= other[2]
        imset = _new_imset(first, extver, total, np.sqrt(variance), quality)
        _put_statistics(imset, sdqflags)
        for hdu in imset:
            _put(hdu.header, "EXPNAME", rootname, "9 character exposure identifier")
        hdus.extend(imset)

    header = hdus[0].header
    _put(header, "RPTCORR", "COMPLETE", "add individual repeat observations")
    header.add_history("RPTCORR complete")
    header.add_history("Statistics computed after rptcorr.")
    _put(header, "NEXTEND", len(hdus) - 1, "number of extensions")
    _put(header, "NCOMBINE", len(exposures), "number of imsets combined")
    _put_double(header, "EXPTIME", summed_exptime, "exposure time")
    _put_double(header, "EXPEND", expend, "exposure end time")
    _put_product_names(header, output_name, memtype)
    return fits.HDUList(hdus)


def reject_cosmic_rays(
    exposures: Sequence[fits.HDUList],
    parameters: RejectionParameters,
    output_name: str,
    memtype: str,
) -> CosmicRayRejection:
    """acsrej: combine CR-SPLIT (or CCD REPEAT-OBS) exposures, rejecting cosmic rays.

    Returns the ``_crj`` product in memory and the rejected pixels of each input; the inputs
    are not modified (flagging them is the caller's choice, see ``parameters.crmask``).
    """
    if len(exposures) < 2:
        raise RejectionError("needs more than one input image")
    headers = [e[0].header for e in exposures]
    _check_rejection_inputs(headers)
    exptimes = [float(h.get("EXPTIME", 0.0)) for h in headers]
    # The output starts from the first exposure with exposure time (calacs.e's choice).
    base_index = next((n for n, t in enumerate(exptimes) if t > 0), 0)
    base = exposures[base_index]
    imagetyp = str(headers[0].get("IMAGETYP", "")).strip()

    hdus = [fits.PrimaryHDU(header=base[0].header.copy())]
    rejected_per_input: list[list[np.ndarray]] = [[] for _ in exposures]
    trailer_lines: list[str] = []
    first_result: StackRejection | None = None
    for extver in range(1, _count_imsets(base) + 1):
        chip = base["SCI", extver].header.get("CCDCHIP", 1)
        stacks = [_read_imset(e, _extver_of_chip(e, chip)) for e in exposures]
        result = reject_stack(
            [s[0] for s in stacks], [s[1] for s in stacks], [s[2] for s in stacks],
            exptimes, parameters, imagetyp,
        )
        first_result = first_result or result
        for n, mask in enumerate(result.rejected):
            rejected_per_input[n].append(mask)
        trailer_lines += [_labelled("SHADCORR", "OMIT"), _labelled("CRREJTAB", parameters.table)]
        imset = _new_imset(base, extver, result.sci, result.err, result.dq)
        _put(imset[0].header, "NCOMBINE", len(exposures), "number of image sets combined")
        # calacs.e runs acs2d on the combined image, which computes these statistics.
        _put_statistics(imset, imset[0].header.get("SDQFLAGS", _ALL_DQ_BITS))
        hdus.extend(imset)

    header = hdus[0].header
    _put_float(header, "TEXPTIME", first_result.total_exptime, "")
    _put_float(header, "EXPTIME", first_result.total_exptime, "")
    _put_double(header, "EXPSTART", min(float(h["EXPSTART"]) for h in headers),
                "computed exposure start time (Modified Julian Date)")
    _put_double(header, "EXPEND", max(float(h["EXPEND"]) for h in headers),
                "computed exposure end time (Modified Julian Date)")
    _put_float(header, "SKYSUM", first_result.sky_sum, "Total sky level (electrons)")
    _put_float(header, "REJ_RATE", first_result.n_rejected / first_result.used_exptime,
               "Cosmic ray impact rate (pixels/sec)")
    # Post-flash is already subtracted in a _flt (FLSHCORR=COMPLETE); calacs.e sums FLASHDUR
    # of inputs still at PERFORM, which is the same set of exposures.
    flashed = [h for h in headers if str(h.get("FLSHCORR", "OMIT")).strip().upper() in ("PERFORM", "COMPLETE")]
    _put_float(header, "FLASHDUR", sum(float(h.get("FLASHDUR", 0.0)) for h in flashed),
               "Cumulative exposure time in seconds", replace_comment=True)
    _put_float(header, "DARKTIME", sum(float(h.get("DARKTIME", 0.0)) for h in headers),
               "Cumulative dark time in seconds", replace_comment=True)
    _put(header, "INITGUES", parameters.initgues, "")
    _put(header, "SKYSUB", parameters.skysub, "")
    _put(header, "CRSIGMAS", parameters.sigmas_text, "")
    _put_float(header, "MEANEXP", parameters.meanexp, "")
    _put_float(header, "CRRADIUS", parameters.crradius, "")
    _put_float(header, "CRTHRESH", parameters.crthresh, "")
    _put_float(header, "SCALENSE", parameters.scalense, "")
    _put(header, "BADINPDQ", parameters.badinpdq, "")
    _put(header, "CRMASK", bool(parameters.crmask), "")
    _put(header, "NEXTEND", len(hdus) - 1, "")
    _put(header, "CRCORR", "COMPLETE", "")
    rootname = _rootname(output_name)
    for hdu in hdus[1:]:
        _put(hdu.header, "EXPNAME", rootname, "9 character exposure identifier")
    _put_product_names(header, output_name, memtype)
    if not first_result.performed:
        trailer_lines.append("Warning    Cosmic-ray rejection NOT performed!")
    return CosmicRayRejection(
        product=fits.HDUList(hdus),
        rejected=tuple(tuple(m) for m in rejected_per_input),
        parameters=parameters,
        trailer_lines=tuple(trailer_lines),
    )


def flag_rejected_pixels(dq: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """An input's DQ after CRMASK: 8192 set where rejected and cleared elsewhere.

    calacs.e packs the mask 8 pixels to a byte and unpacks whole bytes only, so the last
    ``width % 8`` columns keep their DQ; that is reproduced.
    """
    flagged = np.asarray(dq).astype(np.int32)
    width = flagged.shape[1] - flagged.shape[1] % 8
    region = flagged[:, :width]
    flagged[:, :width] = np.where(rejected[:, :width], region | CR_FLAG, region & ~CR_FLAG)
    return flagged.astype(np.int16)


# ---------------------------------------------------------------------------- product writing


def _make_summed_product(inputs: list[Path], output: Path, product: Product) -> list[str]:
    with _open_all(inputs) as exposures:
        summed = sum_repeats(exposures, output.name, product.memtype)
        summed.writeto(output)
        lines = _block_header("ACSSUM", inputs, output, exposures[0][0].header, _count_imsets(exposures[0]))
    lines += _make_product_spt(inputs, output, product.memtype)
    return [*lines, "", "", *end_lines("ACSSUM")]


def _make_rejected_product(inputs: list[Path], output: Path, product: Product) -> list[str]:
    with _open_all(inputs) as exposures:
        first_header = exposures[0][0].header
        if str(first_header.get("SHADCORR", "OMIT")).strip().upper() == "PERFORM":
            raise RejectionError("SHADCORR=PERFORM (shutter shading inside acsrej) is not implemented")
        table_name = str(first_header.get("CRREJTAB", "")).strip()
        total_exptime = float(np.sum([np.float32(e[0].header.get("EXPTIME", 0.0)) for e in exposures], dtype=np.float32))
        parameters = read_rejection_parameters(
            resolve_reference(table_name), len(exposures), total_exptime, table_name
        )
        result = reject_cosmic_rays(exposures, parameters, output.name, product.memtype)
        result.product.writeto(output)
        flagged = (
            [_flag_member(e, masks, result.product) for e, masks in zip(exposures, result.rejected)]
            if parameters.crmask else []
        )
    for path, dq_by_extver in zip(inputs, flagged):
        with fits.open(path, mode="update") as hdul:
            for extver, dq in dq_by_extver.items():
                hdul["DQ", extver].data = dq
    lines = ["", "", _labelled("CRCORR", "PERFORM"), *result.trailer_lines]
    lines += _make_product_spt(inputs, output, product.memtype)
    lines += [_labelled("CRCORR", "COMPLETE")]
    return [*begin_lines("ACSREJ", CALACS_VERSION), *lines, "", "", *end_lines("ACSREJ")]


def _flag_member(exposure: fits.HDUList, masks, product: fits.HDUList) -> dict[int, np.ndarray]:
    """New DQ arrays of one member by its own EXTVER (members may order their chips differently)."""
    flagged = {}
    for n, mask in enumerate(masks, start=1):
        extver = _extver_of_chip(exposure, product["SCI", n].header.get("CCDCHIP", 1))
        flagged[extver] = flag_rejected_pixels(_read_imset(exposure, extver)[2], mask)
    return flagged


def resolve_reference(name: str) -> Path:
    """``jref$name.fits`` -> path under the ``jref`` environment variable (any ``xref$``)."""
    if "$" not in name:
        return Path(name)
    variable, _, rest = name.partition("$")
    directory = os.environ.get(variable)
    if not directory:
        raise RejectionError(f"reference {name}: environment variable {variable} is not set")
    return Path(directory) / rest


class _open_all:
    """Open several FITS files read-only and close them together."""

    def __init__(self, paths):
        self.paths = paths

    def __enter__(self) -> list[fits.HDUList]:
        self.opened = [fits.open(p) for p in self.paths]
        return self.opened

    def __exit__(self, *exc):
        for hdul in self.opened:
            hdul.close()


def _make_product_spt(inputs: list[Path], output: Path, memtype: str) -> list[str]:
    """The product's SPT file: first member's SPT primary header plus every member's UDL."""
    out_spt = output.with_name(_rootname(output.name) + "_spt.fits")
    if out_spt.exists():
        return []
    lines, found = [], []
    for path in inputs:
        spt = path.with_name(_rootname(path.name) + "_spt.fits")
        if spt.is_file():
            found.append(spt)
        else:
            lines.append(f'Warning    Can\'t find input file "{spt.name}"')
    if not found:
        return lines
    with fits.open(found[0]) as hdul:
        primary = hdul[0].header.copy()
    rootname = _rootname(out_spt.name).upper()
    _put(primary, "FILENAME", out_spt.name, "")
    _put(primary, "ASN_MTYP", memtype, "Role of the Exposure in the Association")
    _put(primary, "ROOTNAME", rootname, "")
    _put(primary, "OBSERVTN", rootname[6:9], "")
    _put(primary, "NEXTEND", len(inputs), "")
    hdus = [fits.PrimaryHDU(header=primary)]
    for spt in found:
        with fits.open(spt) as hdul:
            for hdu in hdul[1:]:
                copy = hdu.copy()
                copy.header["EXTVER"] = len(hdus)
                hdus.append(copy)
    fits.HDUList(hdus).writeto(out_spt)
    lines += [
        f"Created output SPT rootname {out_spt.name}...",
        f"Updated output SPT file to reflect {len(inputs)} extensions...",
    ]
    return lines


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


# ----------------------------------------------------------------------------------- imsets


def _count_imsets(hdul: fits.HDUList) -> int:
    nextend = hdul[0].header.get("NEXTEND")
    if nextend is None:
        return sum(1 for h in hdul[1:] if h.header.get("EXTNAME", "").strip().upper() == "SCI")
    return max(int(nextend) // EXT_PER_IMSET, 1)


def _extver_of_chip(hdul: fits.HDUList, chip: int) -> int:
    for extver in range(1, _count_imsets(hdul) + 1):
        if hdul["SCI", extver].header.get("CCDCHIP", 1) == chip:
            return extver
    raise CombineError(f"{hdul.filename()}: no imset for CCDCHIP {chip}")


def _read_imset(hdul: fits.HDUList, extver: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of SCI, ERR (float32) and DQ (int16); a data-less extension means PIXVALUE."""
    sci = _array_of(hdul["SCI", extver], None, np.float32)
    err = _array_of(hdul["ERR", extver], sci.shape, np.float32)
    dq = _array_of(hdul["DQ", extver], sci.shape, np.int16)
    return sci, err, dq


def _array_of(hdu, shape, dtype) -> np.ndarray:
    if hdu.data is not None:
        return np.array(hdu.data, dtype=dtype)
    if shape is None:
        shape = (hdu.header.get("NPIX2", 0), hdu.header.get("NPIX1", 0))
    return np.full(shape, hdu.header.get("PIXVALUE", 0), dtype=dtype)


def _new_imset(template: fits.HDUList, extver: int, sci, err, dq) -> list[fits.ImageHDU]:
    """SCI/ERR/DQ extensions with the template imset's headers and new data."""
    hdus = []
    for name, data, dtype in (("SCI", sci, np.float32), ("ERR", err, np.float32), ("DQ", dq, np.int16)):
        header = template[name, extver].header.copy()
        for keyword in ("PIXVALUE", "NPIX1", "NPIX2"):
            header.remove(keyword, ignore_missing=True)
        hdus.append(fits.ImageHDU(data=np.asarray(data, dtype=dtype), header=header))
    return hdus


def _put_statistics(imset: list[fits.ImageHDU], sdqflags: int) -> None:
    """NGOODPIX, GOODMIN/MAX/MEAN and SNRMIN/MAX/MEAN over good pixels with ERR > 0 (doStat)."""
    # calacs.e compares as 16-bit shorts: SDQFLAGS 65535 (or -1) means every bit.
    stats = image_statistics(imset[0].data, imset[1].data, imset[2].data, to_short(sdqflags))
    if stats.ngoodpix == 0:
        log.warning("All output pixels either flagged as bad or ERR <= 0.")
    write_statistics(imset[0].header, imset[1].header, stats, put_int=_put, put_float=_put_float)


def _check_rejection_inputs(headers: list[fits.Header]) -> None:
    """acsrej's consistency checks: one CCDAMP, one post-flash level, a calibrated gain."""
    first = headers[0]
    ccdamp = str(first.get("CCDAMP", "")).strip().upper()
    if not any(float(first.get(f"ATODGN{amp}", 0.0)) > 0 for amp in "ABCD"):
        raise RejectionError(f"all ATODGN values of {first.get('FILENAME', 'the first input')} are 0")
    flash0 = _flash_level(first)
    for header in headers[1:]:
        name = header.get("FILENAME", "an input")
        if str(header.get("CCDAMP", "")).strip().upper() != ccdamp:
            raise RejectionError(f"{name} uses different CCDAMP, expected {ccdamp} but got {header.get('CCDAMP')}")
        if _flash_level(header) != flash0:
            raise RejectionError(f"{name} uses a different post-flash (FLSHCORR, FLASHCUR or FLASHDUR/EXPTIME)")


def _flash_level(header: fits.Header):
    if str(header.get("FLSHCORR", "OMIT")).strip().upper() != "PERFORM":
        return None
    exptime = np.float32(header.get("EXPTIME", 0.0))
    return (str(header.get("FLASHCUR", "")).strip().upper(), np.float32(header.get("FLASHDUR", 0.0)) / exptime)


# ---------------------------------------------------------------------------------- headers


def _put(header: fits.Header, key: str, value, comment: str) -> None:
    """Set a keyword; an existing card keeps its place and comment, a new one goes last."""
    if key in header:
        header[key] = value
    else:
        header.append(fits.Card(key, value, comment), bottom=True)


def _put_float(header, key, value, comment, *, replace_comment=False) -> None:
    """A single-precision value, formatted as calacs.e's header library writes it."""
    _put_formatted(header, key, f"{float(np.float32(value)):.7E}", comment, replace_comment)


def _put_double(header, key, value, comment) -> None:
    _put_formatted(header, key, f"{float(value):.12E}", comment, False)


def _put_formatted(header, key, text, comment, replace_comment) -> None:
    if key in header and not replace_comment:
        comment = header.comments[key]
    image = f"{key:<8}= {text:>20}" + (f" / {comment}" if comment else "")
    card = fits.Card.fromstring(image[:80].ljust(80))
    if key in header:
        index = header.index(key)
        del header[index]
        header.insert(index, card)
    else:
        header.append(card, bottom=True)


def _put_product_names(header: fits.Header, output_name: str, memtype: str) -> None:
    _put(header, "FILENAME", output_name, "name of file")
    _put(header, "ASN_MTYP", memtype.upper(), "Role of the Exposure in the Association")
    _put(header, "ROOTNAME", _rootname(output_name).upper(), "Rootname of the observation set")


def _rootname(filename: str) -> str:
    name = Path(filename).name
    for suffix in ("_crj", "_sfl", "_dth", "_flt", "_flc", "_raw", "_spt", "_asn"):
        index = name.lower().find(suffix)
        if index > 0:
            return name[:index]
    return name.split(".", 1)[0]


# --------------------------------------------------------------------------------- trailers


def _labelled(label: str, text: str) -> str:
    """calacs.e pads a trailer label to 8 characters, then one blank."""
    return f"{label:<8} {text}"


def _block_header(task, inputs, output, header, n_imsets) -> list[str]:
    """The start of acssum's trailer block (its end is added with the SPT messages)."""
    lines = begin_lines(task, CALACS_VERSION)
    lines += [_labelled("Input", p.name) for p in inputs]
    lines += [_labelled("Output", output.name)]
    lines += [
        f"APERTURE {str(header.get('APERTURE', '')).strip()}",
        f"FILTER1 {str(header.get('FILTER1', '')).strip()}",
        f"FILTER2 {str(header.get('FILTER2', '')).strip()}",
        f"DETECTOR {str(header.get('DETECTOR', '')).strip()}",
    ]
    for extver in range(1, n_imsets + 1):
        # acssum prints the statistics step's blank message between Begin and End.
        lines += [_labelled(f"Imset {extver}", f"Begin {clock()}"), "", ""]
        lines += [_labelled(f"Imset {extver}", f"End {clock()}")]
    return lines


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
    member_trailers = [p.with_name(_rootname(p.name) + ".tra") for p in inputs]
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
        lines += _make_product_spt(inputs, directory / f"{dither.name}_dth.fits", dither.memtype)
        lines += end_lines("ACSDTH")
        _mark_product_present(asn_path, dither.row)
    if finish:
        lines += ["", "", *end_lines("CALACS"), f"CALACS completion for {association.rootname}_asn.fits"]
    _append(directory / f"{association.rootname}.tra", _concatenated(sources) + "\n".join(lines) + "\n")
