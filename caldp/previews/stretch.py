"""caldp's own preview renderer: numpy for the stretch, Pillow for JPEG and the thumbnail.

The stretch is the one fitscut makes with --asinh-scale --autoscale=99.5: the 0.5 and 99.5
percentiles of the shown pixels become t=0 and t=1, each pixel becomes asinh(3 t) / asinh(3)
clipped to [0, 1], then 0..255 (truncated, as fitscut does). Masked pixels are black. Rows are
flipped so that FITS row 1 is at the bottom of the picture, as in every FITS viewer.
"""

import dataclasses
import math

import numpy as np

AUTOSCALE_PERCENT = 99.5
NONLINEARITY = 3.0  # fitscut's asinh softening
THUMBNAIL_SIZE = 128
JPEG_QUALITY = 75  # libjpeg's default, which fitscut uses


def autoscale_limits(data, mask, percent=AUTOSCALE_PERCENT):
    """(low, high): the (100 - percent) and percent percentiles of the unmasked pixels."""
    shown = data[~mask] if mask.any() else data.ravel()
    if shown.size == 0:
        return 0.0, 1.0
    k_low = int((shown.size - 1) * (100.0 - percent) / 100.0)
    k_high = int(math.ceil((shown.size - 1) * percent / 100.0))
    # One partition finds both order statistics: O(n), not the sort np.percentile's callers pay.
    ordered = np.partition(shown, (k_low, k_high))
    low, high = float(ordered[k_low]), float(ordered[k_high])
    return low, (high if high > low else low + 1.0)


def stretch_pixels(frame):
    """The frame as 8-bit grey levels in display order (top row first)."""
    low, high = autoscale_limits(frame.data, frame.mask)
    scaled = frame.data - np.float32(low)
    scaled *= np.float32(NONLINEARITY / (high - low))
    np.arcsinh(scaled, out=scaled)
    scaled *= np.float32(255.0 / math.asinh(NONLINEARITY))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    pixels = scaled.astype(np.uint8)
    pixels[frame.mask] = 0
    return pixels[::-1]


def thumbnail_shape(shape, size=THUMBNAIL_SIZE):
    """(rows, cols) of a thumbnail whose longer side is `size` (fitscut --output-size rounding)."""
    rows, cols = shape
    longer = max(rows, cols)

    def scaled(n):
        return max(1, (2 * n * size + longer) // (2 * longer))  # round half up, in integers

    return scaled(rows), scaled(cols)


def bin_frame(frame, shape):
    """The frame averaged down to (rows, cols) `shape`, each no larger than the frame's.

    Source pixel i goes whole into output pixel floor(i * m / n), the binning fitscut does
    before it scales; the thumbnail is stretched from this, so its autoscale sees the averaged
    noise, as fitscut's does. Masked pixels do not count; an output pixel with none shown under
    it is masked.
    """
    starts = [np.searchsorted((np.arange(n) * m) // n, np.arange(m)) for n, m in zip(frame.shape, shape)]
    counts = np.outer(*(np.diff(np.append(s, n)) for s, n in zip(starts, frame.shape))).astype(np.float32)
    if frame.mask.any():
        sums = _bin_sum(np.where(frame.mask, np.float32(0), frame.data), starts)
        weights = counts - _bin_sum(frame.mask.view(np.uint8), starts, dtype=np.int32).astype(np.float32)
    else:  # most frames: no copy, no second pass
        sums, weights = _bin_sum(frame.data, starts), counts
    mask = weights <= 0
    return dataclasses.replace(frame, data=sums / np.where(mask, np.float32(1), weights), mask=mask)


def _bin_sum(array, starts, dtype=None):
    return np.add.reduceat(np.add.reduceat(array, starts[0], axis=0, dtype=dtype), starts[1], axis=1)


def save_jpeg(picture, path):
    """Write 8-bit grey pixels (an array or a Pillow image) as a JPEG of fitscut's quality."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(picture)) if isinstance(picture, np.ndarray) else picture
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def write_native_previews(frame, full_path, thumb_path, thumb_size=THUMBNAIL_SIZE):
    """Render `frame` as a full-size JPEG and a thumbnail JPEG."""
    from PIL import Image

    save_jpeg(stretch_pixels(frame), full_path)
    rows, cols = thumbnail_shape(frame.shape, thumb_size)
    binned = bin_frame(frame, (min(rows, frame.shape[0]), min(cols, frame.shape[1])))
    thumb = Image.fromarray(np.ascontiguousarray(stretch_pixels(binned)))
    if binned.shape != (rows, cols):  # a frame smaller than a thumbnail is enlarged after the stretch
        thumb = thumb.resize((cols, rows), Image.Resampling.BOX)
    save_jpeg(thumb, thumb_path)
