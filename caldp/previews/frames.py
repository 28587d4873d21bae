"""What an image preview shows: one 2-D array and the mask of the pixels not to show.

The rules, in order:
* a MULTIACCUM file (WFC3/IR raw, ima) shows its last read: the SCI with the largest SAMPTIME;
* several same-width SCI arrays with distinct CCDCHIP (ACS/WFC, WFC3/UVIS) are stacked in
  detector layout: chip 1 above chip 2, as the detectors are read out;
* anything else shows its first SCI array (raw frames too: their SCI is the picture);
* a file with no SCI image but a 2-D primary array shows that.
Masked: DQ bits that mean "no trustworthy signal here" (PREVIEW_BAD_DQ), drizzled pixels with
no weight (WHT == 0: outside the footprint), non-finite values, and the 5-pixel reference border of a
WFC3/IR raw or ima array (not sky: bias-level DN in a raw, electrons rather than e-/s in an ima, down
to -6500 after calwf3; shown, it sets the stretch limits and the ima comes out white).
"""

import dataclasses
from pathlib import Path

import numpy as np
from astropy.io import fits

# DQ bits masked in previews; ACS, WFC3 and STIS give them the same meaning: 1 transmission
# (Reed-Solomon) error, 2 fill data, 4 bad detector pixel, 16 hot pixel, 512 bad flat-field
# pixel. Saturation (256, 2048) and cosmic-ray flags stay visible on purpose: masking them would
# punch black holes into every bright star.
PREVIEW_BAD_DQ = 1 | 2 | 4 | 16 | 512
IR_REFERENCE_BORDER = 5
# WFC3/IR array sizes that still hold the reference border: full frame and the square subarrays
# (the flt and drz are trimmed to 1014, 512, 256, 128, 64).
IR_SIZES_WITH_REFERENCE_PIXELS = (1024, 522, 266, 138, 74)


class NoImageData(ValueError):
    """The file has no 2-D image to preview (a table, an empty primary)."""


@dataclasses.dataclass(frozen=True)
class Frame:
    data: np.ndarray  # float32, FITS order: row 0 is the bottom of the picture
    mask: np.ndarray  # bool, True where a pixel is not shown
    description: str  # which extensions were used, for the log

    @property
    def shape(self):
        return self.data.shape


def read_frame(path):
    """The Frame a preview of the FITS file at `path` shows; NoImageData when there is none."""
    with fits.open(path, memmap=False) as hdul:
        sci = [h for h in hdul if h.name == "SCI" and h.is_image and h.header.get("NAXIS") == 2]
        if sci:
            chosen = select_sci(sci)
            border = reference_border(hdul[0].header, chosen[0].header)
            planes = [(h.data.astype(np.float32), sci_mask(hdul, h) | border_mask(h.data.shape, border))
                      for h in chosen]
            where = "+".join(f"SCI,{h.ver}" for h in chosen)
        elif hdul[0].header.get("NAXIS") == 2:
            data = hdul[0].data.astype(np.float32)
            planes, where = [(data, np.zeros(data.shape, bool))], "PRIMARY"
        else:
            raise NoImageData(f"{Path(path).name} has no 2-D image (SCI or primary)")
    data = np.vstack([d for d, _ in planes]) if len(planes) > 1 else planes[0][0]
    mask = np.vstack([m for _, m in planes]) if len(planes) > 1 else planes[0][1]
    mask = mask | ~np.isfinite(data)
    return Frame(data, mask, where)


def select_sci(sci):
    """The SCI HDUs to show, bottom to top (see the module docstring for the rules)."""
    if any("SAMPTIME" in h.header for h in sci):
        return [max(sci, key=lambda h: h.header.get("SAMPTIME", -1.0))]
    chips = {h.header.get("CCDCHIP") for h in sci}
    widths = {h.header.get("NAXIS1") for h in sci}
    if len(sci) > 1 and None not in chips and len(chips) == len(sci) and len(widths) == 1:
        # Chip 2 (SCI,1 in ACS/WFC and WFC3/UVIS files) is the lower half of the detector.
        return sorted(sci, key=lambda h: -int(h.header["CCDCHIP"]))
    return [min(sci, key=lambda h: h.ver)]


def sci_mask(hdul, sci):
    """Pixels of one SCI array not to show: bad DQ bits or, in drizzled products, no weight."""
    shape = (sci.header["NAXIS2"], sci.header["NAXIS1"])
    dq = _extension(hdul, "DQ", sci.ver)
    if dq is not None:
        if _holds_array(dq, shape):
            return (dq.data & PREVIEW_BAD_DQ) != 0
        # An empty DQ extension stands for a constant array (PIXVALUE), as in raw files.
        return np.full(shape, bool(int(dq.header.get("PIXVALUE", 0)) & PREVIEW_BAD_DQ))
    wht = _extension(hdul, "WHT", sci.ver)
    if wht is not None and _holds_array(wht, shape):
        return wht.data <= 0
    return np.zeros(shape, bool)


def reference_border(primary, sci_header):
    """Width of the reference-pixel border of a WFC3/IR raw or ima SCI array; 0 for anything else."""
    ir = str(primary.get("INSTRUME", "")).strip() == "WFC3" and str(primary.get("DETECTOR", "")).strip() == "IR"
    shape = (sci_header.get("NAXIS1"), sci_header.get("NAXIS2"))
    return IR_REFERENCE_BORDER if ir and all(n in IR_SIZES_WITH_REFERENCE_PIXELS for n in shape) else 0


def border_mask(shape, width):
    mask = np.zeros(shape, bool)
    if width:
        mask[:width] = mask[-width:] = True
        mask[:, :width] = mask[:, -width:] = True
    return mask


def _extension(hdul, name, ver):
    try:
        return hdul[name, ver]
    except KeyError:
        return None


def _holds_array(hdu, shape):
    return hdu.header.get("NAXIS") == 2 and (hdu.header["NAXIS2"], hdu.header["NAXIS1"]) == shape
