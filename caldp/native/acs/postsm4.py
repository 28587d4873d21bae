"""BLEVCORR for post-SM4 WFC (EXPSTART >= 54962): bias shift, cross talk, destripe.

What calacs.e 10.5.0 does, and so does this module:

* Full frames: with JWROTYPE=DS_INT and CCDGAIN=2, the signal-dependent bias
  shift of every amplifier is removed (an AC-coupled pre-amp model run along
  the readout order, with 146 virtual "gap" pixels per row filled with the
  "magic square" level, rows 2057-2066 x columns 13-22 of the amplifier's
  virtual overscan/prescan), then the amplifier cross talk (9.1e-5 of the
  mirrored pixel).  Then, whatever the readout mode, the prescan columns are
  used to remove the bias level of each amplifier and the stripes common to
  all four amplifiers (calacs.e's doDestripe).
* Supported subarrays (the "-2K", ramp and polarizer apertures with virtual
  overscan, DS_INT, gain 2): only the bias shift, whose final magic-square
  level becomes the subtracted bias level (MEANBLEV).
* Everything else goes through the classic overscan fit (overscan.py).

Amplifier arrays are views with the amplifier at the lower left: amps C/D
are read from SCI,1 (CCDCHIP 2) and A/B, flipped top to bottom, from SCI,2.
Computations are in doubles and rounded to float when written back, as in
calacs.e.

Known gaps with respect to calacs.e (not verifiable here, no reference run of
the post-SM4 path exists in ../shared):

* the order of floating-point summations differs (numpy sums pairwise), so
  bias means can differ in the last bits of a double;
* the bias-shift recursion is evaluated block-wise (first_order_scan) rather
  than sample by sample; the results agree with calacs.e's loop to about
  1e-12 relative, far below the float32 output precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..common.errors import CalibrationError

AMPS = "ABCD"
NBIAS_COLS = 24
NOSCN_ROWS = 20
SERIAL_FREQ = 1000.0 / 22.0
PARALLEL_SHIFT = 3.212
NGAP_PIX = int(SERIAL_FREQ * PARALLEL_SHIFT + 0.5)
TIME_CONST = (37.290251, 36.180001, 37.867770, 42.461249)
DC_RATIO = (0.3, 0.3, 0.3, 0.3)
DSI_SENS = (2.9188919e-3, 10.805754e-3, 12.432145e-3, 3.8596253e-3)
CROSS_SCALE = 9.1e-5
MAGIC_ROWS = slice(2057, 2067)
MAGIC_COLS = slice(13, 23)

BIAS_SHIFT_SUBARRAYS = (
    "WFC1A-2K", "WFC1B-2K", "WFC2C-2K", "WFC2D-2K",
    "WFC1-IRAMPQ", "WFC1-MRAMPQ", "WFC2-MRAMPQ", "WFC2-ORAMPQ",
    "WFC1-POL0UV", "WFC1-POL0V", "WFC2-POL0UV", "WFC2-POL0V",
    "WFC1-POL60UV", "WFC1-POL60V", "WFC2-POL60UV", "WFC2-POL60V",
    "WFC1-POL120UV", "WFC1-POL120V", "WFC2-POL120UV", "WFC2-POL120V",
)


def supports_bias_shift_subarray(aperture: str, virtual_overscan: bool) -> bool:
    return virtual_overscan and aperture in BIAS_SHIFT_SUBARRAYS


# -- amplifier views ------------------------------------------------------------

def amp_array(chip_sci: np.ndarray, amp: str, width: int) -> np.ndarray:
    """The ``width`` columns read by ``amp``, amplifier at the lower left (double)."""
    if amp == "A":
        view = chip_sci[::-1, :width]
    elif amp == "B":
        view = chip_sci[::-1, ::-1][:, :width]
    elif amp == "C":
        view = chip_sci[:, :width]
    elif amp == "D":
        view = chip_sci[:, ::-1][:, :width]
    else:
        raise CalibrationError(f"Amp {amp!r} not recognized, must be A-D.")
    return view.astype(np.float64)


def put_amp_array(chip_sci: np.ndarray, amp: str, data: np.ndarray) -> None:
    """Write an amplifier view back into a chip array (rounded to float)."""
    width = data.shape[1]
    values = data.astype(np.float32)
    if amp == "A":
        chip_sci[::-1, :width] = values
    elif amp == "B":
        chip_sci[::-1, ::-1][:, :width] = values
    elif amp == "C":
        chip_sci[:, :width] = values
    else:
        chip_sci[:, ::-1][:, :width] = values


# -- bias shift -------------------------------------------------------------------

def _magic_square_mean(data: np.ndarray) -> float:
    if data.shape[0] < MAGIC_ROWS.stop or data.shape[1] < MAGIC_COLS.stop:
        raise CalibrationError("Bias shift correction needs the full 2068-row amplifier "
                               f"geometry; got {data.shape[1]}x{data.shape[0]}.")
    return float(data[MAGIC_ROWS, MAGIC_COLS].sum() / 100.0)


def first_order_scan(u: np.ndarray, a: float, y_prev: float, block: int = 256) -> np.ndarray:
    """y[n] = u[n] + a * y[n-1] with y[-1] = y_prev, without a Python loop per sample.

    The sequence is cut into blocks; inside a block the recurrence is a
    scaled cumulative sum (a**-k stays well inside double range for 256
    samples), and the blocks are chained through their last values.
    """
    n = u.size
    nblocks = -(-n // block)
    padded = np.zeros(nblocks * block)
    padded[:n] = u
    u2 = padded.reshape(nblocks, block)
    k = np.arange(block, dtype=np.float64)
    grow = a ** k                      # a**k
    local = np.cumsum(u2 / grow, axis=1) * grow          # zero-state response in each block
    carry_gain = a ** (k + 1)          # contribution of the previous block's last value
    ends = np.empty(nblocks)
    last = y_prev
    a_block = a ** block
    local_end = local[:, -1]
    for b in range(nblocks):           # one step per block, not per sample
        last = local_end[b] + a_block * last
        ends[b] = last
    starts = np.empty(nblocks)
    starts[0] = y_prev
    starts[1:] = ends[:-1]
    y = local + starts[:, None] * carry_gain[None, :]
    return y.ravel()[:n]


def correct_bias_shift(data: np.ndarray, amp: str, chunk_rows: int = 256) -> tuple[np.ndarray, float, float]:
    """Remove the signal-dependent bias shift of one amplifier array.

    Returns (corrected data minus its final magic-square level, level before,
    level after).  The pre-amp model runs along the readout order, row after
    row, with NGAP_PIX virtual pixels (at the magic-square level) after each
    row; rows are processed in chunks that carry the filter state.
    """
    k = AMPS.index(amp)
    rows, cols = data.shape
    before = _magic_square_mean(data)
    factor = 1.0 - np.exp(-1.0 / (TIME_CONST[k] * SERIAL_FREQ))
    keep = 1.0 - factor
    dc_last = before * DC_RATIO[k]      # dc[0]
    out = np.empty((rows, cols), dtype=np.float64)
    width = cols + NGAP_PIX
    for r0 in range(0, rows, chunk_rows):
        r1 = min(rows, r0 + chunk_rows)
        gapped = np.empty((r1 - r0, width), dtype=np.float64)
        gapped[:, :cols] = data[r0:r1]
        gapped[:, cols:] = before
        x = gapped.ravel()
        # dc[j] = x[j-1]*factor*ratio + (1-factor)*dc[j-1]
        dc = first_order_scan(x * factor * DC_RATIO[k], keep, dc_last)
        dc_prev = np.empty_like(dc)
        dc_prev[0] = dc_last
        dc_prev[1:] = dc[:-1]
        corrected = (x - DSI_SENS[k] * dc) - (10.0 / 22.0) * (dc - dc_prev)
        out[r0:r1] = corrected.reshape(r1 - r0, width)[:, :cols]
        dc_last = dc[-1]
    after = _magic_square_mean(out)
    out -= after
    return out, before, after


# -- cross talk -------------------------------------------------------------------

def correct_cross_talk(sci: np.ndarray) -> np.ndarray:
    """Add 9.1e-5 of the mirrored pixel of each row, in calacs.e's order.

    calacs.e updates the row in place from left to right, so the right half
    sees the already-corrected left half; that dependency is kept.
    """
    out = sci.copy()
    n = sci.shape[1]
    half = n // 2
    left = slice(0, half)
    mirror_of_left = sci[:, ::-1][:, :half]
    out[:, left] = sci[:, left] + (mirror_of_left.astype(np.float64) * CROSS_SCALE).astype(np.float32)
    start = half
    if n % 2 == 1:
        mid = half
        out[:, mid] = sci[:, mid] + (sci[:, mid].astype(np.float64) * CROSS_SCALE).astype(np.float32)
        start = half + 1
    # Column j >= start mirrors column n-1-j < half, which is already updated.
    mirror_updated = out[:, n - 1 - np.arange(start, n)]
    out[:, start:] = sci[:, start:] + (mirror_updated.astype(np.float64) * CROSS_SCALE).astype(np.float32)
    return out


# -- destriping -------------------------------------------------------------------

def _clipped_column_stats(values: np.ndarray, use: np.ndarray, sig: float = 5.0,
                          iterations: int = 4) -> np.ndarray:
    """calc_mean_std for every column at once; returns the clipped means."""
    n = use.sum(axis=0).astype(np.float64)
    v = np.where(use, values, 0.0)
    mean = v.sum(axis=0) / n
    std = np.sqrt((np.where(use, (values - mean) ** 2, 0.0)).sum(axis=0) / (n - 1))
    for _ in range(iterations):
        keep = use & (np.abs(values - mean) <= sig * std)
        nused = keep.sum(axis=0).astype(np.float64)
        new_mean = np.where(keep, values, 0.0).sum(axis=0) / nused
        std = np.sqrt(np.where(keep, (values - mean) ** 2, 0.0).sum(axis=0) / (nused - 1))
        mean = new_mean
    return mean


def prescan_column_means(data: np.ndarray) -> np.ndarray:
    """bias_col_mean_std: clipped mean of each prescan column after the row mean."""
    prescan = data[:, :NBIAS_COLS]
    row_mean = data[:, 12:NBIAS_COLS].sum(axis=1) / 12.0
    minus_row = prescan - row_mean[:, None]
    unsaturated = (data[:, 24:30] < 50000).all(axis=1)
    use = np.broadcast_to(unsaturated[:, None], minus_row.shape)
    with np.errstate(all="ignore"):
        return _clipped_column_stats(minus_row, use)


def find_good_rows(data: np.ndarray) -> np.ndarray:
    rows, cols = data.shape
    body = slice(0, rows - NOSCN_ROWS)
    bias_mean = data[body, :NBIAS_COLS].sum() / ((rows - NOSCN_ROWS) * NBIAS_COLS)
    amp_mean = (data[body, NBIAS_COLS:].sum() - bias_mean * (cols - NBIAS_COLS) * (rows - NOSCN_ROWS)) \
        / ((cols - NBIAS_COLS) * (rows - NOSCN_ROWS))
    pre = data[:, :NBIAS_COLS]
    row_ref = np.empty(rows)
    row_ref[0] = pre[0].sum() / NBIAS_COLS
    row_ref[1:] = (pre[1:] + pre[:-1]).sum(axis=1) / (2 * NBIAS_COLS)
    row_means = (data[:, NBIAS_COLS:].sum(axis=1) - row_ref * (cols - NBIAS_COLS)) / (cols - NBIAS_COLS)
    # calacs.e passes the difference through C's integer abs.
    off = np.abs(np.trunc(row_means - amp_mean)) > 100
    hot = (data[:, 24:30] > 70000).any(axis=1)
    good = ~(off | hot)
    good[0] = False
    return good


def clipped_bias_mean(data: np.ndarray, good_rows: np.ndarray, sig: float = 6.0) -> float:
    """calc_bias_mean_std: prescan mean with absolute-deviation clipping."""
    values = data[:, :NBIAS_COLS]
    good = np.broadcast_to(good_rows[:, None], values.shape).copy()
    ntot1 = int(good.sum())
    nits = 0
    while True:
        ntot2 = ntot1
        nits += 1
        n = int(good.sum())
        mean = values[good].sum() / n if n else 0.0
        absdev = np.abs(values[good] - mean).sum() / n if n else 0.0
        good &= ~(np.abs(values - mean) > sig * absdev)
        ntot1 = int(good.sum())
        if not (nits <= 5 or (nits <= 10 and ntot1 < ntot2)):
            break
    return float(values[good].sum() / ntot1) if ntot1 else 0.0


def stripe_levels(amp_data: dict[str, np.ndarray], good: dict[str, np.ndarray]):
    """Per-row mean prescan level of the usable amplifiers (remove_stripes, part 1).

    Returns (row means, rows fixed, rows skipped).
    """
    rows = amp_data["A"].shape[0]
    means = np.stack([amp_data[a][:, :NBIAS_COLS].sum(axis=1) / NBIAS_COLS for a in AMPS])
    stds = np.stack([np.sqrt(((amp_data[a][:, :NBIAS_COLS] - means[k][:, None]) ** 2).sum(axis=1)
                             / (NBIAS_COLS - 1)) for k, a in enumerate(AMPS)])
    usable = np.stack([good[a] for a in AMPS]) & (stds < 15)
    count = usable.sum(axis=0)
    rowmeans = np.where(count >= 2, np.where(usable, means, 0.0).sum(axis=0)
                        / np.maximum(count, 1), 0.0)
    fixed = int((count >= 2).sum())
    return rowmeans, fixed, rows - fixed


def stripe_pattern(rowmeans: np.ndarray, rows: slice, cols: int) -> np.ndarray:
    """The stripe level of each pixel: row means interpolated in readout time."""
    nrows = rowmeans.size
    i = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None]
    j = np.arange(cols, dtype=np.float64)[None, :]
    pt = i + (j - 11.5) / float(cols + 146)
    lower = np.clip(np.floor(pt).astype(np.int64), 0, nrows - 2)
    dist = pt - lower
    return rowmeans[lower] + dist * (rowmeans[lower + 1] - rowmeans[lower])


def destripe(amp_data: dict[str, np.ndarray], chunk_rows: int = 256,
             in_place: bool = False) -> "DestripeResult":
    """doDestripe on the four amplifier arrays of a full frame.

    Returns new arrays unless ``in_place`` (used by the stage, whose amplifier
    arrays are its own temporaries, to keep the memory of a full frame low).
    """
    data = amp_data if in_place else {a: amp_data[a].copy() for a in AMPS}
    for a in AMPS:
        data[a][:, :NBIAS_COLS] -= prescan_column_means(data[a])
    good = {a: find_good_rows(data[a]) for a in AMPS}
    bias_means = {}
    for a in AMPS:
        bias_means[a] = clipped_bias_mean(data[a], good[a])
        data[a] -= bias_means[a]
    rowmeans, fixed, skipped = stripe_levels(data, good)
    rows, cols = data["A"].shape
    for r0 in range(0, rows, chunk_rows):
        block = slice(r0, min(rows, r0 + chunk_rows))
        stripe = stripe_pattern(rowmeans, block, cols)
        for a in AMPS:
            data[a][block] -= stripe
    return DestripeResult(amp_data=data, bias_means=bias_means, rows_fixed=fixed,
                          rows_skipped=skipped)


@dataclass
class DestripeResult:
    amp_data: dict[str, np.ndarray]
    bias_means: dict[str, float]
    rows_fixed: int
    rows_skipped: int


@dataclass
class PostSM4Result:
    chips: list[np.ndarray]
    blev: list[float] = field(default_factory=lambda: [0.0] * 4)
    meanblev: list[float | None] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)


def full_frame_blevcorr(chip2: np.ndarray, chip1: np.ndarray, bias_shift: bool) -> PostSM4Result:
    """Bias shift (+cross talk) and destripe of SCI,1 (chip 2) and SCI,2 (chip 1)."""
    width = chip2.shape[1] // 2
    chips = {2: chip2.astype(np.float32, copy=True), 1: chip1.astype(np.float32, copy=True)}
    result = PostSM4Result(chips=[])
    owner = {"A": 1, "B": 1, "C": 2, "D": 2}
    if bias_shift:
        result.messages.append("Performing bias-shift and cross talk corrections for full frame data.")
        for amp in AMPS:
            data = amp_array(chips[owner[amp]], amp, width)
            corrected, before, after = correct_bias_shift(data, amp)
            result.messages.append(f"Bias shift correcting for bias level in Amp {amp} of "
                                   f"{before:0.4f} electrons (before correction).")
            result.messages.append(f"Bias shift correcting for bias level in Amp {amp} of "
                                   f"{after:0.4f} electrons (after correction).")
            result.blev[AMPS.index(amp)] += after
            put_amp_array(chips[owner[amp]], amp, corrected)
        chips = {c: correct_cross_talk(chips[c]) for c in (2, 1)}
    else:
        result.messages.append("WFC readout type/gain not set as needed, no bias shift nor "
                               "cross talk correction done for full frame data.")
    result.messages.append("Performing stripe removal and bias level subtraction for full frame data.")
    amp_data = {a: amp_array(chips[owner[a]], a, width) for a in AMPS}
    stripes = destripe(amp_data, in_place=True)
    for k, a in enumerate(AMPS):
        result.messages.append(f"     bias level of {stripes.bias_means[a]:.6g} electrons was "
                               f"subtracted for AMP {a}.")
        result.blev[k] += stripes.bias_means[a]
        put_amp_array(chips[owner[a]], a, stripes.amp_data[a])
    result.meanblev = [(stripes.bias_means["C"] + stripes.bias_means["D"]) / 2.0,
                       (stripes.bias_means["A"] + stripes.bias_means["B"]) / 2.0]
    result.history = [f"DESTRIPE: number of rows fixed per amp: {stripes.rows_fixed}",
                      f"DESTRIPE: number of rows skipped per amp: {stripes.rows_skipped}"]
    result.chips = [chips[2], chips[1]]
    return result


def subarray_blevcorr(sci: np.ndarray, ccdamp: str) -> PostSM4Result:
    """Bias shift of a supported one-amplifier subarray; MEANBLEV is its level."""
    amp = ccdamp if ccdamp in AMPS else "A"
    data = amp_array(sci, amp, sci.shape[1])
    corrected, before, after = correct_bias_shift(data, amp)
    out = sci.astype(np.float32, copy=True)
    put_amp_array(out, amp, corrected)
    result = PostSM4Result(chips=[out], meanblev=[after])
    result.blev[AMPS.index(amp)] += after
    result.messages = [
        "Performing bias-shift correction for subarray data.",
        f"Bias shift correcting for bias level in Amp {amp} of {before:0.4f} electrons (before correction).",
        f"Bias shift correcting for bias level in Amp {amp} of {after:0.4f} electrons (after correction).",
    ]
    return result
