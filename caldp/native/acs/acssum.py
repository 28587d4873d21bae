"""acssum: REPEAT-OBS exposures on the SBC added into ``<product>_sfl.fits`` (RPTCORR)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from ...hstfile import put_card, put_card_double, rootname
from ..common.errors import CombineError
from ..common.imageio import count_imsets, extver_of_chip, new_imset_hdus, read_imset_arrays
from ..common.trailer import begin_lines, clock, end_lines
from ..common.version import VERSION_STRING as CALACS_VERSION
from .association import Product
from .products import ALL_DQ_BITS, labelled, open_all, put_product_names, put_statistics
from .spt import make_product_spt

log = logging.getLogger(__name__)


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
    sdqflags = primary.get("SDQFLAGS", ALL_DQ_BITS)
    summed_exptime = float(primary["EXPTIME"])
    for exposure in exposures[1:]:
        summed_exptime += float(exposure[0].header["EXPTIME"])
    expend = float(exposures[-1][0].header["EXPEND"])
    product_root = rootname(output_name)

    hdus = [fits.PrimaryHDU(header=primary)]
    for extver in range(1, count_imsets(first) + 1):
        sci, err, dq = read_imset_arrays(first, extver)
        chip = first["SCI", extver].header.get("CCDCHIP", 1)
        total = sci.copy()
        variance = err * err
        quality = dq.copy()
        for exposure in exposures[1:]:
            other = read_imset_arrays(exposure, extver_of_chip(exposure, chip))
            if other[0].shape != total.shape:
                raise CombineError("ACSSUM: input images do not have the same size")
            total += other[0]
            variance += other[1] * other[1]
            quality |= other[2]
        imset = new_imset_hdus(first, extver, total, np.sqrt(variance), quality)
        put_statistics(imset, sdqflags)
        for hdu in imset:
            put_card(hdu.header, "EXPNAME", product_root, "9 character exposure identifier")
        hdus.extend(imset)

    header = hdus[0].header
    put_card(header, "RPTCORR", "COMPLETE", "add individual repeat observations")
    header.add_history("RPTCORR complete")
    header.add_history("Statistics computed after rptcorr.")
    put_card(header, "NEXTEND", len(hdus) - 1, "number of extensions")
    put_card(header, "NCOMBINE", len(exposures), "number of imsets combined")
    put_card_double(header, "EXPTIME", summed_exptime, "exposure time")
    put_card_double(header, "EXPEND", expend, "exposure end time")
    put_product_names(header, output_name, memtype)
    return fits.HDUList(hdus)


def make_summed_product(inputs: list[Path], output: Path, product: Product) -> list[str]:
    with open_all(inputs) as exposures:
        summed = sum_repeats(exposures, output.name, product.memtype)
        summed.writeto(output)
        lines = _block_header("ACSSUM", inputs, output, exposures[0][0].header, count_imsets(exposures[0]))
    lines += make_product_spt(inputs, output, product.memtype)
    return [*lines, "", "", *end_lines("ACSSUM")]


def _block_header(task, inputs, output, header, n_imsets) -> list[str]:
    """The start of acssum's trailer block (its end is added with the SPT messages)."""
    lines = begin_lines(task, CALACS_VERSION)
    lines += [labelled("Input", p.name) for p in inputs]
    lines += [labelled("Output", output.name)]
    lines += [
        f"APERTURE {str(header.get('APERTURE', '')).strip()}",
        f"FILTER1 {str(header.get('FILTER1', '')).strip()}",
        f"FILTER2 {str(header.get('FILTER2', '')).strip()}",
        f"DETECTOR {str(header.get('DETECTOR', '')).strip()}",
    ]
    for extver in range(1, n_imsets + 1):
        # acssum prints the statistics step's blank message between Begin and End.
        lines += [labelled(f"Imset {extver}", f"Begin {clock()}"), "", ""]
        lines += [labelled(f"Imset {extver}", f"End {clock()}")]
    return lines
