"""BLEVCORR for HRC, pre-SM4 WFC and unsupported post-SM4 WFC subarrays.

For each amplifier of a chip (calacs.e's doBlev):

1. the bias level of every image row is the median of the good overscan
   pixels in the bias section(s) (both sections when one amplifier reads
   the whole row);
2. outlying row levels are rejected: above mean + 3 sigma (sigma capped at
   sqrt(mean)), then above the new mean + 3 read noise.  calacs.e compares
   with the *integer part* of those thresholds (it passes them through C's
   integer ``abs``), and so does this;
3. a straight line is fitted to the kept levels against output row number;
4. with a virtual overscan box (VY given), the slope of the column medians
   of that box against column number is also removed ("drift along lines");
5. line and drift are subtracted from the amplifier's illuminated region.

The fit uses the row index of the trimmed output while the evaluation uses
the raw row index, exactly like calacs.e (they differ by TRIMY1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..common.tables import AMPS, OverscanLayout

FLT_MIN = float(np.finfo(np.float32).tiny)


@dataclass
class LineFit:
    slope: float = 0.0
    intercept: float = 0.0
    middle: int = 0
    ok: bool = False

    def __call__(self, j):
        return (np.asarray(j, dtype=np.float64) - self.middle) * self.slope + self.intercept


@dataclass
class AmpBlev:
    """What one amplifier's overscan fit produced (for messages and keywords)."""

    amp: str
    biassect: tuple[int, int, int, int]
    npix_first_row: int | None
    rejected: int
    too_few: int
    fit: LineFit
    drift_slope: float
    mean_level: float           # BIASLEV for this amp (e-)


@dataclass
class BlevResult:
    sci: np.ndarray
    amps: list[AmpBlev] = field(default_factory=list)
    meanblev: float | None = None
    from_overscan: bool = True
    driftcorr: bool = False
    default_bias: float = 0.0
    default_amp_index: int = 0
    messages: list[str] = field(default_factory=list)     # calacs.e's doBlev notes


def row_bias_levels(sci: np.ndarray, dq: np.ndarray, rows: np.ndarray,
                    biassect: tuple[int, int, int, int], sdqflags: int):
    """Median of the good bias-section pixels of each row (FindBlev).

    Returns (levels, npix); rows without a good pixel have npix 0.
    """
    cols = []
    if biassect[1] != 0:
        cols.append(np.arange(biassect[0], biassect[1] + 1))
    if biassect[2] != 0:
        cols.append(np.arange(biassect[2], biassect[3] + 1))
    cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    values = sci[np.ix_(rows, cols)].astype(np.float64)
    flags = dq[np.ix_(rows, cols)]
    good = (flags == 0) | ((flags & np.int16(sdqflags)) == 0)
    npix = good.sum(axis=1)
    if good.all():
        levels = np.median(values, axis=1) if cols.size else np.zeros(len(rows))
    else:
        masked = np.where(good, values, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            levels = np.nanmedian(masked, axis=1)
        levels = np.where(npix > 0, levels, 0.0)
    return levels, npix


def reject_outliers(levels: np.ndarray, mask: np.ndarray, readnoise: float) -> tuple[np.ndarray, int]:
    """calacs.e's cleanBiasFit: returns the new mask and the number rejected."""
    mask = mask.copy()
    n = int(mask.sum())
    if n == 0:
        return mask, 0
    with np.errstate(all="ignore"):
        mean = levels[mask].sum() / n
        sdev = np.sqrt(((levels[mask] - mean) ** 2).sum() / (n - 1))
        if sdev > np.sqrt(mean):
            sdev = np.sqrt(mean)
        nrej = 0
        threshold = _c_int_abs(3.0 * sdev + mean)
        over = levels > threshold
        nrej += int(over.sum())
        mask &= ~over
        kept = int(mask.sum())
        mean = levels[mask].sum() / kept if kept else np.nan
        # 3 * readnoise is a float product in calacs.e.
        threshold = _c_int_abs(float(np.float32(3.0) * np.float32(readnoise)) + mean)
        over = levels > threshold
        nrej += int(over.sum())
        mask &= ~over
    return mask, nrej


def _c_int_abs(x: float) -> float:
    """C's ``abs((int) x)``: truncation toward zero, then absolute value."""
    if not np.isfinite(x):
        # Out-of-range conversions are undefined in C; x86 yields INT_MIN.
        return float(abs(-2**31))
    return float(abs(int(x)))


def fit_line(x: np.ndarray, y: np.ndarray, middle: int) -> LineFit:
    """Unweighted least squares in (x - middle), as BlevFit/DriftFit do."""
    fit = LineFit(middle=middle)
    n = float(x.size)
    if n < 1:
        return fit
    xj = (x - middle).astype(np.float64)
    s1, s2, s3, s4 = xj.sum(), y.sum(), (xj * y).sum(), (xj * xj).sum()
    d = s4 - s1 * s1 / n
    if -FLT_MIN < d < FLT_MIN:
        return fit
    xmean, ymean = s1 / n, s2 / n
    fit.slope = (s3 - xmean * ymean * n) / d
    fit.intercept = ymean - fit.slope * xmean
    fit.ok = True
    return fit


def fit_drift(sci, dq, vx, vy, sdqflags) -> tuple[float, bool]:
    """Slope of the virtual-overscan column medians against column (BlevDrift)."""
    if vx[1] <= vx[0] or vy[1] <= vy[0]:
        return 0.0, False
    cols = np.arange(vx[0], vx[1] + 1)
    box = sci[vy[0]:vy[1] + 1, vx[0]:vx[1] + 1].astype(np.float64)
    flags = dq[vy[0]:vy[1] + 1, vx[0]:vx[1] + 1]
    good = (flags == 0) | ((flags & np.int16(sdqflags)) == 0)
    if good.all():
        medians = np.median(box, axis=0)
        keep = np.ones(cols.size, dtype=bool)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(np.where(good, box, np.nan), axis=0)
        keep = good.any(axis=0)
    x = cols[keep]
    y = medians[keep]
    n = float(x.size)
    if n < 1:
        return 0.0, False
    xj = (x - (vx[0] + vx[1]) // 2).astype(np.float64)
    s1, s2, s3, s4 = xj.sum(), y.sum(), (xj * y).sum(), (xj * xj).sum()
    d = s4 - s1 * s1 / n
    if d == 0.0:
        return 0.0, False
    return (s3 - (s1 / n) * (s2 / n) * n) / d, True


def default_bias(ccdbias, atodgain, amp_index: int) -> float:
    """CCDTAB bias (e-) of one amplifier, used when there is no overscan."""
    return float(np.float32(np.float32(ccdbias[amp_index]) * np.float32(atodgain[amp_index])))


def subtract_overscan(sci: np.ndarray, dq: np.ndarray, layout: OverscanLayout, *,
                      amps: str, default_amp: int, ampx: int, ampy: int,
                      readnoise: list[float], ccdbias: list[float], atodgain: list[float],
                      sdqflags: int) -> BlevResult:
    """Fit and subtract the overscan bias level of every amplifier of one chip.

    ``sci`` is in electrons and still has its overscan; the returned array
    has the same shape (trimming is a separate step).  ``amps`` are the amplifiers reading
    this chip ("ABCD" letters, in readout order); ``default_amp`` is the index of the one whose
    CCDTAB bias is subtracted where there is no overscan.  The caller decides both from its
    instrument's readout.
    """
    ny, nx = sci.shape
    bias0 = default_bias(ccdbias, atodgain, default_amp)
    if not layout.found:
        out = (sci.astype(np.float64) - bias0).astype(np.float32)
        return BlevResult(sci=out, from_overscan=False, default_bias=bias0,
                          default_amp_index=default_amp)

    trimx1, trimx2 = layout.trimx
    trimy1, trimy2 = layout.trimy
    dodrift = not (layout.vy[0] <= 0 and layout.vy[1] <= 0)
    notes = []
    if not dodrift:
        notes.append("(blevcorr) No virtual overscan region specified.\n"
                     "(blevcorr) Bias drift correction will not be applied.")
    elif layout.vx[1] <= layout.vx[0] or layout.vy[1] <= layout.vy[0]:
        notes.append("(blevcorr) No virtual overscan region;\nNo correction for slope will be applied.")
    # Like calacs.e, each amp's corrected region is rounded back to float
    # before the next amp reads the array.
    result = BlevResult(sci=sci.astype(np.float32, copy=True), default_bias=bias0,
                        default_amp_index=default_amp, messages=notes)
    work = result.sci
    sum_blev = 0.0
    for amp in amps:
        # Position of the amp relative to the first one decides which bias
        # section is "near" (x) and which half of the rows it owns (y).
        bias_loc = ord(amp) - ord(amps[0])
        amp_index = AMPS.index(amp)
        near_x = (0, 1, 0, 1)[bias_loc]
        near_y = (0, 0, 1, 1)[bias_loc]
        a, b = layout.biassecta, layout.biassectb
        if a[1] > 0 and b[1] > 0:
            first = a if near_x == 0 else b
            second = (b if near_x == 0 else a) if len(amps) == 1 else (0, 0)
        else:
            first = b if a[1] == 0 else a
            second = (0, 0)
        biassect = [first[0], first[1], second[0], second[1]]
        biassect[0] = max(biassect[0], 0)
        biassect[2] = max(biassect[2], 0)
        biassect[1] = min(biassect[1], nx - 1)
        biassect[3] = min(biassect[3], nx - 1)

        begx = trimx1 + ampx * near_x
        endx = ampx + trimx1 if (near_x == 0 and ampx != 0) else nx - trimx2
        begy = trimy1 + ampy * near_y
        endy = ampy + trimy1 if (near_y == 0 and ampy != 0) else ny - trimy2
        endx, endy = min(endx, nx), min(endy, ny)
        sizex, sizey = endx - begx, endy - begy

        drift_slope, drift_ok = 0.0, False
        zero_column = (biassect[0] + biassect[1]) / 2.0
        if dodrift:
            drift_slope, drift_ok = fit_drift(work, dq, layout.vx, layout.vy, sdqflags)
            result.driftcorr = drift_ok
            average_drift = (sizex / 2.0 - zero_column) * drift_slope
        else:
            result.driftcorr = False
            average_drift = 0.0

        # Row levels are taken over the output rows 0..sizey-1 (raw rows
        # offset by TRIMY1), whatever half of the chip this amp owns.
        out_rows = np.arange(sizey)
        levels, npix = row_bias_levels(work, dq, out_rows + trimy1, tuple(biassect), sdqflags)
        have = npix > 0
        first_npix = int(npix[0]) if sizey and have[0] else None
        mask, nrej = reject_outliers(levels, have, readnoise[amp_index])
        fit = fit_line(out_rows[mask], levels[mask], sizey // 2)
        if not fit.ok:
            fit = LineFit(slope=0.0, intercept=float(bias0), middle=sizey // 2, ok=False)

        raw_rows = np.arange(begy, endy, dtype=np.float64)
        row_level = fit(raw_rows)
        if sizex > 0 and sizey > 0:
            cols = np.arange(begx, endx, dtype=np.float64)
            drift = (cols - zero_column) * drift_slope if dodrift else np.zeros(sizex)
            region = work[begy:endy, begx:endx].astype(np.float64)
            work[begy:endy, begx:endx] = (region - row_level[:, None]) - drift[None, :]
        mean_level = float((row_level + average_drift).sum() / sizey) if sizey else 0.0
        sum_blev += mean_level
        result.amps.append(AmpBlev(amp=amp, biassect=tuple(biassect), npix_first_row=first_npix,
                                   rejected=nrej, too_few=int((~have).sum()), fit=fit,
                                   drift_slope=drift_slope,
                                   mean_level=mean_level))
    result.meanblev = float(np.float32(sum_blev / len(amps))) if amps else 0.0
    return result


def trim_overscan(array: np.ndarray, layout: OverscanLayout) -> np.ndarray:
    """The illuminated region: TRIMX/TRIMY columns and rows removed."""
    ny, nx = array.shape
    return array[layout.trimy[0]:ny - layout.trimy[1], layout.trimx[0]:nx - layout.trimx[1]]
