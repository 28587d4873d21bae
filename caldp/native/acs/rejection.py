"""The rejection product: acsrej's driver, which combines CR-SPLIT (or CCD REPEAT-OBS) members
into ``<product>_crj.fits`` and, with CRMASK, flags the rejected pixels in the members."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ...hstfile import (OMIT, PERFORM, put_card, put_card_double, put_card_float, reference_path,
                        rootname, split_reference, switch)
from ..common.imageio import count_imsets, extver_of_chip, new_imset_hdus, read_imset_arrays
from ..common.trailer import begin_lines, end_lines
from ..common.version import VERSION_STRING as CALACS_VERSION
from .acsrej import (CR_FLAG, RejectionError, RejectionParameters, StackRejection,
                     read_rejection_parameters, reject_stack)
from .association import Product
from .products import ALL_DQ_BITS, labelled, open_all, put_product_names, put_statistics
from .spt import make_product_spt


@dataclass(frozen=True)
class CosmicRayRejection:
    """A ``_crj`` product and, per input exposure and imset, the pixels rejected in it."""

    product: fits.HDUList
    rejected: tuple[tuple[np.ndarray, ...], ...]
    parameters: RejectionParameters
    trailer_lines: tuple[str, ...]


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
    for extver in range(1, count_imsets(base) + 1):
        chip = base["SCI", extver].header.get("CCDCHIP", 1)
        stacks = [read_imset_arrays(e, extver_of_chip(e, chip)) for e in exposures]
        result = reject_stack(
            [s[0] for s in stacks], [s[1] for s in stacks], [s[2] for s in stacks],
            exptimes, parameters, imagetyp,
        )
        first_result = first_result or result
        for n, mask in enumerate(result.rejected):
            rejected_per_input[n].append(mask)
        trailer_lines += [labelled("SHADCORR", "OMIT"), labelled("CRREJTAB", parameters.table)]
        imset = new_imset_hdus(base, extver, result.sci, result.err, result.dq)
        put_card(imset[0].header, "NCOMBINE", len(exposures), "number of image sets combined")
        # calacs.e runs acs2d on the combined image, which computes these statistics.
        put_statistics(imset, imset[0].header.get("SDQFLAGS", ALL_DQ_BITS))
        hdus.extend(imset)

    header = hdus[0].header
    put_card_float(header, "TEXPTIME", first_result.total_exptime, "")
    put_card_float(header, "EXPTIME", first_result.total_exptime, "")
    put_card_double(header, "EXPSTART", min(float(h["EXPSTART"]) for h in headers),
                "computed exposure start time (Modified Julian Date)")
    put_card_double(header, "EXPEND", max(float(h["EXPEND"]) for h in headers),
                "computed exposure end time (Modified Julian Date)")
    put_card_float(header, "SKYSUM", first_result.sky_sum, "Total sky level (electrons)")
    put_card_float(header, "REJ_RATE", first_result.n_rejected / first_result.used_exptime,
               "Cosmic ray impact rate (pixels/sec)")
    # Post-flash is already subtracted in a _flt (FLSHCORR=COMPLETE); calacs.e sums FLASHDUR
    # of inputs still at PERFORM, which is the same set of exposures.
    flashed = [h for h in headers if switch(h, "FLSHCORR") != OMIT]
    put_card_float(header, "FLASHDUR", sum(float(h.get("FLASHDUR", 0.0)) for h in flashed),
               "Cumulative exposure time in seconds", replace_comment=True)
    put_card_float(header, "DARKTIME", sum(float(h.get("DARKTIME", 0.0)) for h in headers),
               "Cumulative dark time in seconds", replace_comment=True)
    put_card(header, "INITGUES", parameters.initgues, "")
    put_card(header, "SKYSUB", parameters.skysub, "")
    put_card(header, "CRSIGMAS", parameters.sigmas_text, "")
    put_card_float(header, "MEANEXP", parameters.meanexp, "")
    put_card_float(header, "CRRADIUS", parameters.crradius, "")
    put_card_float(header, "CRTHRESH", parameters.crthresh, "")
    put_card_float(header, "SCALENSE", parameters.scalense, "")
    put_card(header, "BADINPDQ", parameters.badinpdq, "")
    put_card(header, "CRMASK", bool(parameters.crmask), "")
    put_card(header, "NEXTEND", len(hdus) - 1, "")
    put_card(header, "CRCORR", "COMPLETE", "")
    product_root = rootname(output_name)
    for hdu in hdus[1:]:
        put_card(hdu.header, "EXPNAME", product_root, "9 character exposure identifier")
    put_product_names(header, output_name, memtype)
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


def make_rejected_product(inputs: list[Path], output: Path, product: Product,
                          environ: Mapping[str, str]) -> list[str]:
    with open_all(inputs) as exposures:
        first_header = exposures[0][0].header
        if switch(first_header, "SHADCORR") == PERFORM:
            raise RejectionError("SHADCORR=PERFORM (shutter shading inside acsrej) is not implemented")
        table_name = str(first_header.get("CRREJTAB", "")).strip()
        total_exptime = float(np.sum([np.float32(e[0].header.get("EXPTIME", 0.0)) for e in exposures], dtype=np.float32))
        parameters = read_rejection_parameters(
            crrejtab_path(table_name, environ), len(exposures), total_exptime, table_name
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
    lines = ["", "", labelled("CRCORR", "PERFORM"), *result.trailer_lines]
    lines += make_product_spt(inputs, output, product.memtype)
    lines += [labelled("CRCORR", "COMPLETE")]
    return [*begin_lines("ACSREJ", CALACS_VERSION), *lines, "", "", *end_lines("ACSREJ")]


def _flag_member(exposure: fits.HDUList, masks, product: fits.HDUList) -> dict[int, np.ndarray]:
    """New DQ arrays of one member by its own EXTVER (members may order their chips differently)."""
    flagged = {}
    for n, mask in enumerate(masks, start=1):
        extver = extver_of_chip(exposure, product["SCI", n].header.get("CCDCHIP", 1))
        flagged[extver] = flag_rejected_pixels(read_imset_arrays(exposure, extver)[2], mask)
    return flagged


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
    if switch(header, "FLSHCORR") != PERFORM:
        return None
    exptime = np.float32(header.get("EXPTIME", 0.0))
    return (str(header.get("FLASHCUR", "")).strip().upper(), np.float32(header.get("FLASHDUR", 0.0)) / exptime)


def crrejtab_path(name: str, environ: Mapping[str, str]) -> Path:
    """The CRREJTAB file a header value names (``jref$name`` through ``environ``)."""
    parts = split_reference(name)
    if parts is not None and not environ.get(parts[0]):
        raise RejectionError(f"reference {name}: environment variable {parts[0]} is not set")
    return reference_path(name, environ)
