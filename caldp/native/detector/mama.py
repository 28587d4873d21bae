"""MAMA (SBC) steps: global linearity correction, local-rate flags, errors.

* GLINCORR multiplies the image by the ratio of true to observed global
  count rate.  The observed rate is GLOBRATE; the true rate x solves
  y = x exp(-tau x) and is found, like calacs.e, with exactly three Newton
  steps from x = y.  The image is skipped (GLOBLIM=EXCEEDED) when GLOBRATE
  is above GLOBAL_LIMIT.  (The scaling itself is dark.scale_reference.)
* LFLGCORR ORs DQ 256 into a disc of radius EXPAND around every pixel whose
  counts exceed LOCAL_LIMIT * EXPTIME.
* The error array of a MAMA image is max(1, sqrt(counts)).
"""

from __future__ import annotations

import math

import numpy as np

from .ccd import SATPIXEL


def global_linearity_ratio(globrate: float, tau: float) -> float:
    """True/observed count rate after three Newton steps (FindRate)."""
    y = globrate
    if y <= 0.0:
        return 1.0
    x = y
    for _ in range(3):
        e = math.exp(-tau * x)
        x = x + (y - x * e) / ((1.0 - tau * x) * e)
    return x / y


def flag_local_nonlinearity(sci, dq, local_limit: float, exptime: float, expand: float):
    """DQ with 256 within EXPAND pixels of every pixel above the local limit.

    Returns (new dq, number of pixels over the limit).
    """
    limit = local_limit * exptime
    hot = sci > limit
    count = int(hot.sum())
    if count == 0:
        return dq, 0
    ny, nx = dq.shape
    reach = int(np.float32(expand) + np.float32(0.5))
    radius2 = np.float32(expand) * np.float32(expand)
    grown = np.zeros_like(hot)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if np.float32(dx * dx + dy * dy) > radius2:
                continue
            # Shift the hot-pixel mask by (dx, dy), dropping what leaves the frame.
            src_y = slice(max(0, -dy), ny - max(0, dy))
            dst_y = slice(max(0, dy), ny - max(0, -dy))
            src_x = slice(max(0, -dx), nx - max(0, dx))
            dst_x = slice(max(0, dx), nx - max(0, -dx))
            grown[dst_y, dst_x] |= hot[src_y, src_x]
    return dq | np.where(grown, np.int16(SATPIXEL), np.int16(0)), count


def init_mama_errors(sci):
    """ERR = max(1, sqrt(counts)); negative counts use C's integer abs."""
    val = np.where(sci < 0, np.abs(np.trunc(sci)), sci).astype(np.float32)
    root = np.sqrt(val)
    return np.where(root > np.float32(1.0), root, np.float32(1.0)).astype(np.float32)
