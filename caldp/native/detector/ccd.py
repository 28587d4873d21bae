"""CCD array steps other than the overscan fit: DQ flags, bias, gain and electrons, errors.

Every function takes arrays (and reference data) and returns new arrays; the
inputs are never modified.  Arithmetic follows calacs.e's C types: SCI and
ERR are C floats (float32), DQ is a C short (int16), and intermediate
quantities that calacs.e keeps in doubles are doubles here too.

Amplifier bookkeeping (calacs.e's get_nsegn): the four per-amplifier slots
are used by quadrant of the raw frame,

* rows < AMPY:  columns < AMPX use slot C, the rest slot D;
* rows >= AMPY: columns < AMPX use slot A, the rest slot B;

so a one-amplifier readout (AMPX = AMPY = 0) always uses slot B, which holds
the gain of whichever amplifier was used.  Where the instrument fixes which
amplifiers read a chip (ACS/WFC, WFC3/UVIS), the caller gives the slot order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.errors import CalibrationError
from ..common.tables import BadPixelRows

# DQ bits (acsdq.h)
SATPIXEL = 256
CALIBDEFECT = 512
ATODSAT_FLAG = 2048
DQ_PLACEHOLDER = 64

AMP_A, AMP_B, AMP_C, AMP_D = range(4)

# -- amplifier layout -------------------------------------------------------------

#: The slot order of a chip read by two amplifiers side by side whose instrument fixes them
#: (ACS/WFC and WFC3/UVIS: A and B on one chip, C and D on the other).
AB_SLOTS = (AMP_A, AMP_B, AMP_A, AMP_B)
CD_SLOTS = (AMP_C, AMP_D, AMP_C, AMP_D)


def amp_slots(ampx: int, ampy: int, atodgain: list[float], readnoise: list[float],
              order: tuple[int, int, int, int] | None = None) -> tuple[list[float], list[float]]:
    """Gain and read noise per quadrant slot (calacs.e's get_nsegn).

    ``order`` names the amplifier filling each slot where the caller's instrument fixes it
    (a two-amp chip, e.g. :data:`AB_SLOTS`); otherwise it follows from AMPX/AMPY and which
    amplifiers have a gain.
    """
    if order is None and ampx == 0 and ampy == 0:
        # One amplifier: whichever has a gain goes into slot B.
        gain, noise = [1.0] * 4, [0.0] * 4
        for k in range(4):
            if atodgain[k] > 0:
                gain[AMP_B], noise[AMP_B] = atodgain[k], readnoise[k]
                break
        return gain, noise
    if order is None:
        order = _readout_order(atodgain)
    return [atodgain[k] for k in order], [readnoise[k] for k in order]


def _readout_order(atodgain: list[float]) -> tuple[int, int, int, int]:
    if atodgain[AMP_A] == 0 and atodgain[AMP_D] == 0:      # BC readout built as CBCB
        return (AMP_C, AMP_B, AMP_C, AMP_B)
    if atodgain[AMP_B] == 0 and atodgain[AMP_C] == 0:      # AD readout built as ADAD
        return (AMP_A, AMP_D, AMP_A, AMP_D)
    return (AMP_A, AMP_B, AMP_C, AMP_D)


@dataclass
class AmpLayout:
    """Quadrant boundaries in the current array and the slot values."""

    ampx: int
    ampy: int
    gain: list[float]
    readnoise: list[float]

    def regions(self, shape):
        """(row slice, column slice, slot) for the non-empty quadrants."""
        ny, nx = shape
        out = []
        for rows, low_slot, high_slot in ((slice(0, self.ampy), AMP_C, AMP_D),
                                          (slice(self.ampy, ny), AMP_A, AMP_B)):
            if rows.stop <= rows.start:
                continue
            if self.ampx > 0:
                out.append((rows, slice(0, self.ampx), low_slot))
            if self.ampx < nx:
                out.append((rows, slice(self.ampx, nx), high_slot))
        return out

    def check(self, shape, values, what: str) -> None:
        """calacs.e refuses to use a zero gain/noise in the slot a quadrant needs."""
        ny, nx = shape
        for rows, low_slot, high_slot in ((range(0, self.ampy), AMP_C, AMP_D),
                                          (range(self.ampy, ny), AMP_A, AMP_B)):
            if len(rows) == 0:
                continue
            slot = low_slot if self.ampx > 0 else high_slot
            if values[slot] == 0.0:
                raise CalibrationError(f"No valid {what} value to convert data.")


def amp_layout(ccd_ampx: int, ccd_ampy: int, atodgain: list[float], readnoise: list[float],
               shape: tuple[int, int], ltv: tuple[float, float],
               order: tuple[int, int, int, int] | None = None) -> AmpLayout:
    """AMPX/AMPY moved by the overscan offset and clipped to the array (``order``: see
    :func:`amp_slots`)."""
    ny, nx = shape
    offx = ltv[0] if ltv[0] > 0 else 0.0
    offy = ltv[1] if ltv[1] > 0 else 0.0
    ampx = 0 if ccd_ampx == 0 else int(ccd_ampx + int(offx))
    ampy = 0 if ccd_ampy == 0 else int(ccd_ampy + int(offy))
    if ampx >= nx - offx or ampx > nx:
        ampx = nx
    if ampy >= ny - offy or ampy > ny:
        ampy = ny
    gain, noise = amp_slots(ccd_ampx, ccd_ampy, atodgain, readnoise, order)
    return AmpLayout(ampx=ampx, ampy=ampy, gain=gain, readnoise=noise)


# -- DQICORR ------------------------------------------------------------------------

def flag_atod_saturation(sci: np.ndarray, dq: np.ndarray, atodsat: int) -> np.ndarray:
    """DQ with bit 2048 where the raw value reached the A-to-D limit (DN)."""
    return dq | np.where(sci >= atodsat, np.int16(ATODSAT_FLAG), np.int16(0))


def apply_bad_pixel_table(dq: np.ndarray, rows: BadPixelRows,
                          ltv0: tuple[float, float]) -> tuple[np.ndarray, bool]:
    """OR the BPIXTAB flags into DQ; returns (new dq, placeholder_used).

    ``ltv0`` is the zero-indexed LTV (LTV + LTM - 1) that places the table's
    overscan-free coordinates on this array.  When no row applies, calacs.e
    flags one placeholder pixel with 64 so later steps see a non-empty DQ.
    """
    out = dq.copy()
    ny, nx = out.shape
    if rows.x.size == 0:
        out[1, 1] |= DQ_PLACEHOLDER
        return out, True
    # C assigns a double to an int: truncation toward zero.
    xs = np.trunc(rows.x + ltv0[0]).astype(np.int64)
    ys = np.trunc(rows.y + ltv0[1]).astype(np.int64)
    along_x = rows.axis == 1
    lo = np.where(along_x, xs, ys)
    hi = lo + rows.length - 1
    fixed = np.where(along_x, ys, xs)
    extent = np.where(along_x, nx, ny)
    fixed_extent = np.where(along_x, ny, nx)
    keep = (hi >= 0) & (lo < extent) & (fixed >= 0) & (fixed < fixed_extent)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, extent - 1)
    lo, hi, fixed, along_x, values = lo[keep], hi[keep], fixed[keep], along_x[keep], rows.value[keep]
    counts = hi - lo + 1
    if counts.size == 0:
        return out, False
    # One flat index per flagged pixel: runs along x step by 1, along y by nx.
    start = np.where(along_x, fixed * nx + lo, lo * nx + fixed)
    stride = np.where(along_x, 1, nx)
    owner = np.repeat(np.arange(counts.size), counts)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    flat_index = start[owner] + offset * stride[owner]
    flat = out.reshape(-1)
    pixel_values = values[owner]
    # OR is idempotent, so each distinct value can be applied with one scatter.
    for value in np.unique(pixel_values):
        idx = flat_index[pixel_values == value]
        flat[idx] |= value
    return out, False


# -- BIASCORR and the conversion to electrons ---------------------------------------

def subtract_bias(sci, err, dq, bias_sci, bias_err, bias_dq):
    """Subtract the bias image (DN): errors in quadrature, DQ ORed."""
    return (sci - bias_sci,
            np.sqrt(err * err + bias_err * bias_err),
            dq | bias_dq)


def convert_to_electrons(sci, err, layout: AmpLayout):
    """Multiply SCI and ERR by the gain of each amplifier quadrant."""
    layout.check(sci.shape, layout.gain, "GAIN")
    sci_out = sci.copy()
    err_out = err.copy()
    for rows, cols, slot in layout.regions(sci.shape):
        g = np.float32(layout.gain[slot])
        sci_out[rows, cols] = sci[rows, cols] * g
        err_out[rows, cols] = err[rows, cols] * g
    return sci_out, err_out


# -- full-well saturation (SATUFILE) --------------------------------------------

def flag_full_well_saturation(sci, dq, sat, same_size: bool, sci_corner: tuple[int, int],
                              trimmed_shape: tuple[int, int], offset: tuple[int, int]):
    """DQ with bit 256 where SCI (e-) exceeds the saturation image.

    For a full frame the comparison covers the illuminated region only, in
    raw coordinates; for a subarray calacs.e compares the first
    ``trimmed_shape`` pixels of the science array with the saturation image
    starting at the corner offset, and so does this.
    """
    ydim, xdim = trimmed_shape
    out = dq.copy()
    if same_size:
        xbeg, ybeg = abs(sci_corner[0]), abs(sci_corner[1])
        s = (slice(ybeg, ybeg + ydim), slice(xbeg, xbeg + xdim))
        region_sat = sat[s]
    else:
        x0, y0 = offset
        if x0 < 0 or y0 < 0 or y0 + ydim > sat.shape[0] or x0 + xdim > sat.shape[1]:
            raise CalibrationError("(satufile) size mismatch: the saturation image does not "
                                   "cover the science subarray.")
        s = (slice(0, ydim), slice(0, xdim))
        region_sat = sat[y0:y0 + ydim, x0:x0 + xdim]
    if region_sat.shape != out[s].shape:
        raise CalibrationError("(satufile) size mismatch between the saturation image and "
                               "the science array.")
    out[s] |= np.where(sci[s] > region_sat, np.int16(SATPIXEL), np.int16(0))
    return out


# -- the error array -------------------------------------------------------------

def init_ccd_errors(sci, err, layout: AmpLayout, readnoise_only: bool = False):
    """ERR = sqrt(max(SCI,0) + rn^2 + ERR^2) in electrons, per quadrant.

    For TARGNAME=BIAS* exposures ERR is the read noise alone.
    """
    layout.check(sci.shape, layout.readnoise, "READNOISE")
    out = err.copy()
    signal = np.maximum(sci, np.float32(0.0))
    for rows, cols, slot in layout.regions(sci.shape):
        rn = np.float32(layout.readnoise[slot])
        if readnoise_only:
            out[rows, cols] = rn
        else:
            e = err[rows, cols]
            out[rows, cols] = np.sqrt((signal[rows, cols] + rn * rn) + e * e)
    return out
