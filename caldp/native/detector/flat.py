"""FLATCORR (PFLTFILE, DFLTFILE, LFLTFILE) and SHADCORR.

Division follows calacs.e's div1d in C-float arithmetic:

    sci' = sci / f
    err' = sqrt((err / f)^2 + (ferr * sci / f / f)^2)

A flat value of exactly zero leaves SCI and ERR as they are and sets DQ 512;
the flat's DQ is ORed into every pixel.

Binned references are expanded by the bilinear interpolation of calacs.e's
unbinsect (errors interpolated in quadrature, DQ ORed from the neighbours
used).  Deliberate deviation: calacs.e 10.5.0's LFLTFILE branch divides by
an unfilled buffer (every pixel would get DQ 512 and stay unflattened); here
the low-order flat is expanded over the whole frame and divided like the
other flats.  Real ACS data never select an LFLTFILE (hst_0729 has N/A), so
no archive product depends on that difference.
"""

from __future__ import annotations

import numpy as np

from .ccd import CALIBDEFECT
from .dark import scale_reference
from ..common.errors import CalibrationError


def divide_flat(sci, err, dq, flat_sci, flat_err, flat_dq):
    """One flat division (div1d) applied to whole arrays; inputs are not modified."""
    zero = flat_sci == np.float32(0.0)
    any_zero = bool(zero.any())
    safe = np.where(zero, np.float32(1.0), flat_sci) if any_zero else flat_sci
    out_sci = sci / safe
    out_err = err / safe                       # a_expr
    b_expr = flat_err * sci                    # (ferr * sci / f) / f, in that order
    b_expr /= safe
    b_expr /= safe
    out_err *= out_err
    b_expr *= b_expr
    out_err += b_expr
    np.sqrt(out_err, out=out_err)
    del b_expr
    out_dq = dq | flat_dq
    if any_zero:
        out_sci[zero] = sci[zero]
        out_err[zero] = err[zero]
        out_dq[zero] |= np.int16(CALIBDEFECT)
    return out_sci, out_err, out_dq


def _interp_info(a: np.ndarray, npts: int):
    """InterpInfo: lower index and weights (float32) for each coordinate."""
    i = a.astype(np.int64)                     # C (int) truncates toward zero
    i = np.clip(i, 0, None)
    i = np.where(i >= npts - 1, npts - 2, i)
    q = (a - i.astype(np.float32)).astype(np.float32)
    p = (np.float32(1.0) - q).astype(np.float32)
    return i, p, q


def _interp_dq_info(a: np.ndarray, npts: int):
    """InterpDQInfo: the one or two indexes whose flags are ORed."""
    i1 = a.astype(np.int64)
    i2 = i1 + 1
    two = a != i1.astype(np.float32)
    low = i1 <= 0
    i1 = np.where(low, 0, i1)
    two &= ~low
    high = i1 >= npts - 1
    i1 = np.where(high, npts - 1, i1)
    two &= ~high
    return i1, np.where(two, i2, i1)


def expand_binned(sci, err, dq, binx: int, biny: int):
    """calacs.e's unbinsect: expand a binned image by linear interpolation."""
    iny, inx = sci.shape
    if binx == 1 and biny == 1:
        return sci, err, dq
    if (binx > 1 and inx < 2) or (biny > 1 and iny < 2):
        raise CalibrationError("(unbinsect) cannot interpolate a single pixel.")
    xoff = np.float32(binx - 1) / np.float32(2.0)
    yoff = np.float32(biny - 1) / np.float32(2.0)
    m = np.arange(inx * binx, dtype=np.float32)
    n = np.arange(iny * biny, dtype=np.float32)
    ai = ((m - xoff) / np.float32(binx)).astype(np.float32)
    aj = ((n - yoff) / np.float32(biny)).astype(np.float32)
    if biny == 1:
        i, p, q = _interp_info(ai, inx)
        value = p * sci[:, i] + q * sci[:, i + 1]
        evalue = p * err[:, i] * err[:, i] + q * err[:, i + 1] * err[:, i + 1]
        i1, i2 = _interp_dq_info(ai, inx)
        return value, np.sqrt(evalue), dq[:, i1] | dq[:, i2]
    j, r, s = _interp_info(aj, iny)
    r, s = r[:, None], s[:, None]
    j1, j2 = _interp_dq_info(aj, iny)
    if binx == 1:
        value = r * sci[j, :] + s * sci[j + 1, :]
        evalue = r * err[j, :] * err[j, :] + s * err[j + 1, :] * err[j + 1, :]
        return value, np.sqrt(evalue), dq[j1, :] | dq[j2, :]
    i, p, q = _interp_info(ai, inx)
    p, q = p[None, :], q[None, :]
    J, I = j[:, None], i[None, :]
    value = ((p * r) * sci[J, I] + (q * r) * sci[J, I + 1]
             + (p * s) * sci[J + 1, I] + (q * s) * sci[J + 1, I + 1])
    evalue = ((p * r) * err[J, I] * err[J, I] + (q * r) * err[J, I + 1] * err[J, I + 1]
              + (p * s) * err[J + 1, I] * err[J + 1, I]
              + (q * s) * err[J + 1, I + 1] * err[J + 1, I + 1])
    i1, i2 = _interp_dq_info(ai, inx)
    dqv = (dq[j1[:, None], i1[None, :]] | dq[j1[:, None], i2[None, :]]
           | dq[j2[:, None], i1[None, :]] | dq[j2[:, None], i2[None, :]])
    return value.astype(np.float32), np.sqrt(evalue).astype(np.float32), dqv


def shading_factor(shad_sci, shad_err, exptime: float):
    """1 + SHADFILE / EXPTIME (and its error), as doShad builds it."""
    shad_sci, shad_err = scale_reference(shad_sci, shad_err, 1.0 / exptime)
    return np.float32(1.0) + shad_sci, shad_err


def expand_in_sections(sci, err, dq, rx: int, ry: int, x0: int, y0: int, shape,
                       lines_per_section: int = 2):
    """SHADCORR's expansion of a binned reference, two binned lines at a time.

    calacs.e expands each pair of reference lines on its own (so rows are
    interpolated only within a pair) and then cuts the science width out of
    the expanded line at ``x0``.
    """
    ny, nx = shape
    rows = []
    j = y0
    produced = 0
    while produced < ny:
        block = slice(j, j + lines_per_section)
        if j + lines_per_section > sci.shape[0]:
            raise CalibrationError("(doShad) size mismatch: shading image too small.")
        es, ee, ed = expand_binned(sci[block], err[block], dq[block], rx, ry)
        if x0 < 0 or x0 + nx > es.shape[1]:
            raise CalibrationError("(doShad) size mismatch.")
        take = min(es.shape[0], ny - produced)
        rows.append((es[:take, x0:x0 + nx], ee[:take, x0:x0 + nx], ed[:take, x0:x0 + nx]))
        produced += take
        j += lines_per_section
    return (np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]),
            np.concatenate([r[2] for r in rows]))
