"""Cosmic-ray rejection of a stack of exposures of one chip, after hstcal's acsrej.

The algorithm (hstcal ``pkg/acs/lib/acsrej``), restated for whole arrays:

1. Each exposure is sky-subtracted (``SKYSUB`` none|mode) and scaled to e-/s by its EXPTIME.
2. An initial guess of the clean image is the per-pixel median or minimum of the stack
   (``INITGUES``), using only pixels without ``BADINPDQ`` bits.
3. For each sigma in ``CRSIGMAS``: a pixel of exposure *n* is a HIT when
   ``(pic - guess)**2 > sigma**2 * (err**2 + (SCALENSE/100 * guess*t_n)**2) / t_n**2``.
   Neighbours within ``CRRADIUS`` become SPILL when ``(pic - guess)**2 >
   CRTHRESH**2 * sigma**2 * err**2 / t_n**2``.  The guess is recomputed from the surviving
   pixels (exposure-time weighted mean).
4. The result is scaled back to the total exposure time and the sky sum is added back; ERR is
   the quadrature sum of the surviving input ERRs scaled by total/surviving exposure time;
   DQ is the OR of the inputs, with 8192 where every exposure was rejected.

calacs.e walks the image line by line with scrolling buffers, which gives the rejection a
direction: a HIT marks SPILL only on its own line and on lines *below* it (lines above were
already summed), and a pixel excluded for its DQ is tested again if a SPILL from an earlier
pixel reached it.  Those orderings change results, so they are kept here (see
``_classify_exposure``), as are calacs.e's float32 arithmetic and its other observable quirks
(ERR[0,0] = -1 on output, DQ bit 2 cleared from the output).  Not implemented: SHADCORR
(shutter shading), which calacs.e applies inside the rejection when SHADCORR=PERFORM.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..common.errors import CalibrationError

log = logging.getLogger(__name__)

CR_FLAG = 8192  # DATAREJECT: rejected during image combination

# calacs.e keeps per-pixel state in the same short array that holds the input DQ, with
# these values; input DQ values that collide with them behave like them (kept on purpose).
_HIT, _SPILL, _EXCLUDE = 8, 2, 4

_SKY_MIN_VALUE = -15000
_SKY_MIN_BINS, _SKY_MAX_BINS = 1000, 10000
_INT_MAX = 2**31 - 1
MAX_ITERATIONS = 20


class RejectionError(CalibrationError, ValueError):
    """The exposures or the CRREJTAB do not allow cosmic-ray rejection."""


@dataclass(frozen=True)
class RejectionParameters:
    """One CRREJTAB row (or equivalent user choice)."""

    crsigmas: tuple[float, ...]
    crradius: float
    crthresh: float
    initgues: str = "minimum"  # "median" or "minimum" (calacs.e looks at the first 3 letters)
    skysub: str = "mode"  # "none" or "mode"
    scalense: float = 0.0  # percent
    badinpdq: int = 0
    crmask: bool = False
    meanexp: float = 0.0  # mean exposure time used to pick the row; written as MEANEXP
    sigmas_text: str = ""  # CRSIGMAS as written in the table, for the header
    table: str = ""  # CRREJTAB name as the header gives it, for the trailer


@dataclass(frozen=True)
class StackRejection:
    """Result of rejecting cosmic rays in one chip's stack."""

    sci: np.ndarray  # float32, electrons, total exposure time, sky added back
    err: np.ndarray  # float32, electrons
    dq: np.ndarray  # int16
    rejected: tuple[np.ndarray, ...]  # per input: bool, pixel was HIT or SPILL
    sky: tuple[float, ...]  # per input, electrons
    sky_sum: float
    n_rejected: int  # HIT + SPILL pixels over all inputs (REJ_RATE numerator)
    total_exptime: float  # sum of EXPTIMEs (EXPTIME/TEXPTIME of the product)
    used_exptime: float  # exposure time the result is scaled to (n when all EXPTIMEs are 0)
    performed: bool  # False when fewer than two exposures have EXPTIME > 0


def read_rejection_parameters(
    table_path: Path, n_images: int, total_exptime: float, table_name: str = ""
) -> RejectionParameters:
    """Pick the CRREJTAB row calacs.e would use for ``n_images`` exposures.

    The row has CRSPLIT equal to the number of images (capped at the table's largest CRSPLIT)
    and the smallest MEANEXP not below the mean exposure time; among equal MEANEXPs the last
    row wins, as in calacs.e.
    """
    mean_exptime = np.float32(np.float32(total_exptime) / np.float32(n_images))
    with fits.open(table_path) as hdul:
        data = hdul[1].data
        columns = {c.upper(): c for c in data.columns.names}

        def column(name):
            if name not in columns:
                raise RejectionError(f"column {name} does not exist in CRREJTAB {table_path}")
            return data[columns[name]]

        crsplit = np.asarray(column("CRSPLIT")).astype(int)
        meanexp = np.asarray(column("MEANEXP")).astype(np.float32)
        wanted = min(n_images, int(crsplit.max()))
        chosen, best_diff = None, None
        for index in range(len(crsplit)):
            diff = np.float32(meanexp[index] - mean_exptime)
            if crsplit[index] == wanted and diff >= 0 and (best_diff is None or diff <= best_diff):
                chosen, best_diff = index, diff
        if chosen is None:
            raise RejectionError(f"no matching CRSPLIT and MEANEXP in CRREJTAB {table_path}")
        sigmas_text = str(column("CRSIGMAS")[chosen]).strip()
        return RejectionParameters(
            crsigmas=parse_sigmas(sigmas_text),
            crradius=float(column("CRRADIUS")[chosen]),
            crthresh=float(column("CRTHRESH")[chosen]),
            initgues=str(column("INITGUES")[chosen]).strip(),
            skysub=str(column("SKYSUB")[chosen]).strip(),
            scalense=float(column("SCALENSE")[chosen]),
            badinpdq=int(column("BADINPDQ")[chosen]),
            crmask=bool(column("CRMASK")[chosen]),
            meanexp=float(mean_exptime),
            sigmas_text=sigmas_text,
            table=table_name or Path(table_path).name,
        )


def parse_sigmas(text: str) -> tuple[float, ...]:
    """CRSIGMAS: numbers separated by commas, semicolons, slashes or blanks."""
    words = [w for w in re.split(r"[,;/ ]+", text.strip()) if w]
    try:
        sigmas = tuple(float(np.float32(w)) for w in words)
    except ValueError as error:
        raise RejectionError(f"illegal CRSIGMAS string {text!r}") from error
    if not sigmas:
        raise RejectionError("number of iterations (CRSIGMAS) is zero")
    if len(sigmas) > MAX_ITERATIONS:
        raise RejectionError(f"no more than {MAX_ITERATIONS} iterations permitted (CRSIGMAS={text!r})")
    return sigmas


def measure_sky(
    sci: Sequence[np.ndarray], dq: Sequence[np.ndarray], method: str, badinpdq: int
) -> tuple[float, ...]:
    """Sky level of each exposure in electrons: 0 for "none", a histogram mode for "mode".

    The histogram range comes from the *first* exposure (its good-pixel minimum and mean),
    bins are 1 e- wide unless that gives fewer than 1000 or more than 10000 bins, and only
    pixels with DQ exactly 0 are counted, as in calacs.e.
    """
    if method.strip().lower() == "none":
        return tuple(0.0 for _ in sci)
    if method.strip().lower() != "mode":
        raise RejectionError(f"illegal SKYSUB value {method!r}")

    first = np.asarray(sci[0], dtype=np.float32)
    good = (np.asarray(dq[0]).astype(np.int32) & badinpdq) == 0
    values = first[good]
    data_min = values.min() if values.size else np.float32(_INT_MAX)
    # calacs.e accumulates the mean in single precision, pixel after pixel.
    total = np.cumsum(values, dtype=np.float32)[-1] if values.size else np.float32(0)
    npt = max(values.size, 1)
    hist_min = _SKY_MIN_VALUE if data_min < _SKY_MIN_VALUE else math.trunc(float(data_min))
    mean = math.trunc(float(np.float32(total / np.float32(npt)) + np.float32(1))) if total > 0 else 1
    hist_max = 2 * mean - hist_min
    nbins = hist_max - hist_min + 1
    if nbins < _SKY_MIN_BINS:
        nbins, width = _SKY_MIN_BINS, np.float32(1.0)
    elif nbins > _SKY_MAX_BINS:
        width = np.float32(np.float32(nbins) / np.float32(_SKY_MAX_BINS))
        nbins = _SKY_MAX_BINS
    else:
        width = np.float32(1.0)

    skies = []
    for image, quality in zip(sci, dq):
        pixels = np.asarray(image, dtype=np.float32)[np.asarray(quality) == 0]
        position = (pixels - np.float32(hist_min)) / width
        position = position[np.abs(position) < _INT_MAX]
        bins = np.trunc(position).astype(np.int64)  # C's (int) truncates toward zero
        bins = bins[(bins >= 0) & (bins < nbins)]
        histogram = np.bincount(bins, minlength=nbins)
        skies.append(float(_histogram_mode(histogram, width, np.float32(hist_min))))
    return tuple(skies)


def make_initial_guess(
    pics: Sequence[np.ndarray], dq: Sequence[np.ndarray], exptimes: Sequence[float], method: str, badinpdq: int
) -> np.ndarray:
    """The first comparison image in e-/s: stack median or minimum of the usable pixels."""
    shape = pics[0].shape
    if method[:3].lower() == "med":
        stack = np.full((len(pics),) + shape, np.nan, dtype=np.float32)
        for n, (pic, quality) in enumerate(zip(pics, dq)):
            if exptimes[n] > 0:
                usable = (quality.astype(np.int32) & badinpdq) == 0
                stack[n][usable] = pic[usable]
        count = np.sum(~np.isnan(stack), axis=0)
        stack.sort(axis=0)  # NaNs sort last, so the first `count` entries are the data
        upper = np.take_along_axis(stack, (count // 2)[None], axis=0)[0]
        lower = np.take_along_axis(stack, np.maximum(count // 2 - 1, 0)[None], axis=0)[0]
        median = np.where(count % 2 == 1, upper, (lower + upper) * np.float32(0.5))
        return np.where(count == 0, np.float32(0), median).astype(np.float32)

    if method[:3].lower() != "min":
        log.warning("Invalid INITGUES value %s, reset it to 'minimum'", method)
    # calacs.e's running minimum: a smaller value found in a bad pixel resets the guess to 0.
    guess = np.zeros(shape, dtype=np.float32)
    for n, (pic, quality) in enumerate(zip(pics, dq)):
        usable = ((quality.astype(np.int32) & badinpdq) == 0) & (exptimes[n] > 0)
        value = pic if exptimes[n] > 0 else np.zeros(shape, dtype=np.float32)
        replace = np.ones(shape, dtype=bool) if n == 0 else value < guess
        guess = np.where(replace, np.where(usable, value, np.float32(0)), guess).astype(np.float32)
    return guess


def reject_stack(
    sci: Sequence[np.ndarray],
    err: Sequence[np.ndarray],
    dq: Sequence[np.ndarray],
    exptimes: Sequence[float],
    parameters: RejectionParameters,
    imagetyp: str = "EXT",
) -> StackRejection:
    """Combine one chip of several exposures, rejecting cosmic rays; inputs are not modified.

    ``sci`` and ``err`` are in electrons, ``exptimes`` in seconds.  BIAS and DARK stacks
    (``imagetyp``) neither exclude nor test DQ bit 4, as in calacs.e.
    """
    n_images = len(sci)
    if n_images < 2:
        raise RejectionError("cosmic-ray rejection needs more than one input image")
    shape = np.shape(sci[0])
    for n in range(n_images):
        if np.shape(sci[n]) != shape or np.shape(err[n]) != shape or np.shape(dq[n]) != shape:
            raise RejectionError(f"input {n + 1} does not have the same size as the first image")
    if any(t < 0 for t in exptimes):
        raise RejectionError("an input exposure time is negative")

    sci32 = [np.asarray(a, dtype=np.float32) for a in sci]
    err32 = [np.asarray(a, dtype=np.float32) for a in err]
    dq16 = [np.asarray(a).astype(np.int16) for a in dq]
    efac = [np.float32(t) for t in exptimes]
    total_exptime = float(np.sum(np.array(efac, dtype=np.float32), dtype=np.float32))
    if total_exptime == 0:
        # All biases: weigh the exposures equally.
        efac = [np.float32(1)] * n_images
        used_exptime = float(n_images)
    else:
        used_exptime = total_exptime
    exposed = [t > 0 for t in efac]

    sky = measure_sky(sci32, dq16, parameters.skysub, parameters.badinpdq)
    sky32 = [np.float32(s) for s in sky]
    sky_sum = np.float32(0)
    for s in sky32:
        sky_sum = np.float32(sky_sum + s)
    sky_sum = max(sky_sum, np.float32(0))

    if sum(exposed) < 2:
        log.warning("Cosmic-ray rejection NOT performed! Fewer than two inputs have EXPTIME > 0.")
        first = exposed.index(True) if any(exposed) else 0
        # calacs.e scales the untouched first exposure as if it were a rate.
        out_sci = (sci32[first] * np.float32(used_exptime) + sky_sum).astype(np.float32)
        out_err = err32[first].copy()
        out_err[0, 0] = -1
        return StackRejection(
            sci=out_sci, err=out_err, dq=dq16[first].copy(),
            rejected=tuple(np.zeros(shape, dtype=bool) for _ in sci), sky=sky,
            sky_sum=float(sky_sum), n_rejected=0, total_exptime=total_exptime,
            used_exptime=used_exptime, performed=False,
        )

    dqpat = parameters.badinpdq
    maskdq = _HIT | _SPILL | _EXCLUDE
    if imagetyp.strip().upper()[:4] in ("BIAS", "DARK"):
        maskdq = _HIT | _SPILL
        dqpat &= ~_EXCLUDE
    flags = [_InputFlags.of(d, dqpat, maskdq) for d in dq16]

    pics = [
        ((sci32[n] - sky32[n]) / efac[n]).astype(np.float32) if exposed[n] else np.zeros(shape, np.float32)
        for n in range(n_images)
    ]
    guess = make_initial_guess(pics, dq16, efac, parameters.initgues, parameters.badinpdq)
    variances = [e * e for e in err32]

    scale = np.float32(parameters.scalense / 100.0)
    spill_factor = np.float32(-1) if parameters.crthresh <= 0 else np.float32(parameters.crthresh) ** 2
    spill_offsets = _spill_offsets(parameters.crradius)
    exptime_sum = np.float32(0)
    for t in efac:
        exptime_sum = np.float32(exptime_sum + t)

    n_iterations = len(parameters.crsigmas)
    for iteration, sigma in enumerate(parameters.crsigmas):
        sig2 = np.float32(sigma) ** 2
        total = np.zeros(shape, np.float32)
        exposure = np.zeros(shape, np.float32)
        variance = np.zeros(shape, np.float32)
        states = []
        for n in range(n_images):
            if not exposed[n]:
                states.append(None)
                continue
            state = _classify_exposure(
                pics[n], variances[n], flags[n], guess, efac[n], sig2, scale, spill_factor, spill_offsets
            )
            states.append(state)
            # Accumulated in input order, in single precision, like calacs.e.
            np.add(total, pics[n] * efac[n], out=total, where=state.kept)
            np.add(exposure, efac[n], out=exposure, where=state.kept)
            np.add(variance, variances[n], out=variance, where=state.kept)

        covered = exposure > 0
        mean_rate = np.divide(total, exposure, out=np.zeros(shape, np.float32), where=covered)
        if iteration < n_iterations - 1:
            # Pixels rejected everywhere keep their previous value until the last iteration.
            guess = np.where(covered, mean_rate, guess)
            continue
        guess = mean_rate
        ratio = np.divide(exptime_sum, exposure, out=np.zeros(shape, np.float32), where=covered)
        out_err = (ratio.astype(np.float64) * np.sqrt(variance.astype(np.float64))).astype(np.float32)
        out_dq, rejected, n_rejected = _combine_quality(states, dq16, shape)

    out_sci = (guess * np.float32(used_exptime) + sky_sum).astype(np.float32)
    # calacs.e forces one ERR pixel negative so the array is always written; kept for parity.
    out_err[0, 0] = -1
    return StackRejection(
        sci=out_sci,
        err=out_err,
        dq=out_dq,
        rejected=rejected,
        sky=sky,
        sky_sum=float(sky_sum),
        n_rejected=n_rejected,
        total_exptime=total_exptime,
        used_exptime=used_exptime,
        performed=True,
    )


# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _InputFlags:
    """What an input's DQ means to calacs.e's rejection loop, which keeps its per-pixel state
    (HIT 8, SPILL 2, EXCLUDE 4) in the same array as the DQ values: a DQ value equal to one of
    those markers behaves like the marker."""

    excluded: np.ndarray  # DQ matches BADINPDQ (and is not exactly SPILL): EXCLUDE
    untestable: np.ndarray  # never tested for a HIT unless a SPILL reaches it first
    shields_from_above: np.ndarray  # DQ == HIT marker: a SPILL mark does not overwrite it
    kept_as_is: np.ndarray  # untouched pixel goes into the sum
    rejected_as_is: np.ndarray  # untouched pixel counts as rejected (DQ == 8 or 2)
    exclude_is_kept: bool  # BIAS/DARK: an EXCLUDEd pixel still goes into the sum

    @classmethod
    def of(cls, dq: np.ndarray, dqpat: int, maskdq: int) -> "_InputFlags":
        dq32 = dq.astype(np.int32)
        excluded = ((dq32 & dqpat) != 0) & (dq32 != _SPILL)
        return cls(
            excluded=excluded,
            untestable=excluded | (dq32 == _EXCLUDE),
            shields_from_above=dq32 == _HIT,
            kept_as_is=~excluded & ((dq32 & maskdq) == 0),
            rejected_as_is=~excluded & ((dq32 == _HIT) | (dq32 == _SPILL)),
            exclude_is_kept=(_EXCLUDE & maskdq) == 0,
        )


@dataclass(frozen=True)
class _ExposureState:
    kept: np.ndarray  # goes into the sum
    rejected: np.ndarray  # HIT or SPILL at the end of the iteration
    spilled_from_above: np.ndarray  # its DQ was overwritten by SPILL before its line was read


def _classify_exposure(pic, err2, flags, guess, efac, sig2, scale, spill_factor, offsets) -> _ExposureState:
    """HIT / SPILL / EXCLUDE state of every pixel of one exposure for one iteration.

    calacs.e processes lines top to bottom and pixels left to right.  A HIT marks SPILL on
    its own line (both sides) and on the lines below within the radius; marks on lines above
    come too late to matter.  A pixel whose DQ matches BADINPDQ is EXCLUDEd, unless a SPILL
    reached it before it was tested (from a line above, or from a HIT to its left on its own
    line) -- then it is tested like any other pixel and may itself become a HIT.  Because that
    dependency only runs forward, the HIT set is the least fixed point computed below.
    """
    residual2 = (pic - guess) ** 2
    exp2 = efac * efac
    expected = np.maximum(guess * efac, np.float32(0))
    candidate = residual2 > (sig2 * (err2 + (scale * expected) ** 2)) / exp2
    spillable = residual2 > spill_factor * ((sig2 * err2) / exp2)
    markable_from_above = spillable & ~flags.shields_from_above

    below = [(dy, dx) for dy, dx in offsets if dy > 0]
    to_right = [(0, dx) for dy, dx in offsets if dy == 0 and dx > 0]
    same_line = [(0, dx) for dy, dx in offsets if dy == 0 and dx != 0]

    hits = candidate & ~flags.untestable
    if offsets and np.any(candidate & flags.untestable):
        while True:
            reached_first = (_dilate(hits, below) & markable_from_above) | (_dilate(hits, to_right) & spillable)
            updated = candidate & (~flags.untestable | reached_first)
            if np.array_equal(updated, hits):
                break
            hits = updated

    from_above = _dilate(hits, below) & markable_from_above
    spilled = ~hits & (from_above | (_dilate(hits, same_line) & spillable))
    marked = hits | spilled
    untouched = ~marked & ~flags.excluded
    kept = untouched & flags.kept_as_is
    if flags.exclude_is_kept:
        kept |= ~marked & flags.excluded
    return _ExposureState(
        kept=kept, rejected=marked | (untouched & flags.rejected_as_is), spilled_from_above=from_above
    )


def _combine_quality(states, dq, shape):
    """Output DQ and per-input rejection maps, following calacs.e's per-image DQ bookkeeping."""
    out_dq = np.full(shape, CR_FLAG, dtype=np.int32)
    previous = np.zeros(shape, dtype=np.int32)
    rejected = []
    n_rejected = 0
    for state, given_dq in zip(states, dq):
        if state is None:
            rejected.append(np.zeros(shape, dtype=bool))
            continue
        # The DQ value calacs.e reads back is SPILL where a mark from above overwrote it.
        row_start = np.where(state.spilled_from_above, _SPILL, given_dq.astype(np.int32))
        # OR of the inputs so far, without the CR flag and -- a calacs.e quirk -- without bit 2.
        accumulated = (row_start | previous) & ~CR_FLAG & ~_SPILL
        is_rejected = state.rejected
        out_dq = np.where(is_rejected, accumulated | out_dq, (accumulated | out_dq) & ~CR_FLAG)
        previous = np.where(is_rejected, accumulated | CR_FLAG, accumulated)
        rejected.append(is_rejected)
        n_rejected += int(np.count_nonzero(is_rejected))
    return out_dq.astype(np.int16), tuple(rejected), n_rejected


def _spill_offsets(radius: float) -> list[tuple[int, int]]:
    """(line offset, column offset) from a HIT to the pixels it can mark, lines at or below."""
    width = math.ceil(radius)
    if width == 0:
        return []
    radius2 = np.float32(radius) ** 2
    return [
        (dy, dx)
        for dy in range(0, width + 1)
        for dx in range(-width, width + 1)
        if (dy, dx) != (0, 0) and np.float32(dx * dx + dy * dy) <= radius2
    ]


def _dilate(mask: np.ndarray, offsets) -> np.ndarray:
    """OR of ``mask`` shifted by each (dy, dx): out[y, x] |= mask[y - dy, x - dx]."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    for dy, dx in offsets:
        if abs(dy) >= ny or abs(dx) >= nx:
            continue
        target = out[max(dy, 0): ny + min(dy, 0), max(dx, 0): nx + min(dx, 0)]
        source = mask[max(-dy, 0): ny + min(-dy, 0), max(-dx, 0): nx + min(-dx, 0)]
        target |= source
    return out


def _histogram_mode(histogram: np.ndarray, width: np.float32, hist_min: np.float32) -> np.float32:
    """Mode of a histogram with parabolic refinement of the peak (calacs.e's cr_mode)."""
    nbins = len(histogram)
    peak = int(np.argmax(histogram))  # first of equal maxima
    if peak == 0:
        return np.float32(float(hist_min) + 0.5 * float(width))
    if peak == nbins - 1:
        return np.float32(float(hist_min) + (nbins - 0.5) * float(width))
    rise = np.float32(histogram[peak] - histogram[peak - 1])
    fall = np.float32(histogram[peak] - histogram[peak + 1])
    denominator = np.float32(rise + fall)
    if abs(denominator) < 1e-20:
        return np.float32(float(hist_min) + (peak + 0.5) * float(width))
    offset = np.float32(peak + 0.5 + 0.5 * float(np.float32(rise - fall)) / float(denominator))
    return np.float32(hist_min + offset * width)
