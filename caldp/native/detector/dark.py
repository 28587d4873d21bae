"""DARKCORR and FLSHCORR: subtract a scaled reference image.

The dark (e-/s) is scaled by DARKTIME and the post-flash image by FLASHDUR,
both C floats; the scaled image's ERR is scaled too and combined in
quadrature, and its DQ is ORed into the science DQ.

MEANDARK is the mean of the *scaled reference* over the pixels whose
*reference* DQ has no serious flag (calacs.e's AvgSciVal works on the dark,
not on the science frame).  MEANFLSH is the same quantity computed line by
line and weighted by each line's fraction of good pixels, as doFlash does.
"""

from __future__ import annotations

import numpy as np


def scale_reference(sci: np.ndarray, err: np.ndarray, factor: float):
    """Multiply SCI and ERR by a C-float constant (multk2d); also GLINCORR's scaling."""
    k = np.float32(factor)
    if k == np.float32(1.0):
        return sci, err
    return k * sci, k * err


def mean_good(sci: np.ndarray, dq: np.ndarray, sdqflags: int) -> float:
    """Mean of pixels without a serious DQ flag (0 when there are none)."""
    good = (dq & np.int16(sdqflags)) == 0
    n = int(good.sum())
    if n == 0:
        return 0.0
    return float(sci[good].astype(np.float64).sum() / n)


def subtract_image(sci, err, dq, ref_sci, ref_err, ref_dq):
    """Science minus reference: SCI subtracted, ERR in quadrature, DQ ORed."""
    return sci - ref_sci, np.sqrt(err * err + ref_err * ref_err), dq | ref_dq


def subtract_dark(sci, err, dq, dark_sci, dark_err, dark_dq, darktime: float, sdqflags: int):
    """DARKCORR; returns (sci, err, dq, meandark)."""
    zs, ze = scale_reference(dark_sci, dark_err, darktime)
    meandark = float(np.float32(mean_good(zs, dark_dq, sdqflags)))
    return (*subtract_image(sci, err, dq, zs, ze, dark_dq), meandark)


def subtract_flash(sci, err, dq, flash_sci, flash_err, flash_dq, flashdur: float,
                   sdqflags: int):
    """FLSHCORR; returns (sci, err, dq, meanflash)."""
    zs, ze = scale_reference(flash_sci, flash_err, flashdur)
    good = (flash_dq & np.int16(sdqflags)) == 0
    ngood = good.sum(axis=1)
    sums = np.where(good, zs.astype(np.float64), 0.0).sum(axis=1)
    with np.errstate(all="ignore"):
        line_mean = np.where(ngood > 0, sums / np.maximum(ngood, 1), 0.0).astype(np.float32)
    weight = (ngood.astype(np.float32) / np.float32(zs.shape[1])).astype(np.float32)
    # doFlash accumulates these float products into float sums, in order;
    # add.accumulate is sequential (unlike sum, which is pairwise).
    if zs.shape[0] == 0:
        return (*subtract_image(sci, err, dq, zs, ze, flash_dq), 0.0)
    total = np.add.accumulate(line_mean * weight, dtype=np.float32)[-1]
    wsum = np.add.accumulate(weight, dtype=np.float32)[-1]
    with np.errstate(all="ignore"):
        meanflash = float(np.float32(total / wsum))
    return (*subtract_image(sci, err, dq, zs, ze, flash_dq), meanflash)
