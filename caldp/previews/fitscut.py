"""Previews made by the fitscut program, from a staged copy of the frame caldp shows.

Two fitscuts exist. STScI's fork reads extensions and sizes its output with --output-size
(upstream caldp ran it as --all --jpg --autoscale=99.5 --asinh-scale --output-size=N --badpix;
fitscut_argv says why caldp drops --badpix). Debian's fitscut 1.4.4 reads only a primary-HDU image, has no
--badpix or --output-size, sizes with --zoom, and its asinh has no base level. Either way caldp
decides what is shown (detector layout, last read, mask: caldp.previews.frames) and writes it
to a temporary primary-HDU file that the installed fitscut can read; see stage_frame.
"""

import functools
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..stages import run_program
from .stretch import AUTOSCALE_PERCENT, THUMBNAIL_SIZE, autoscale_limits, save_jpeg, thumbnail_shape

log = logging.getLogger(__name__)

STSCI, DEBIAN = "stsci", "debian"
NO_PIXEL_HAS_THIS = -3e38  # (not NaN: the fork then blanks every pixel)
COMMON_ARGS = ("--all", "--jpg", f"--autoscale={AUTOSCALE_PERCENT}", "--asinh-scale")


class FitscutError(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def fitscut_flavour(executable):
    """STSCI when the program's usage text offers --output-size and --badpix, else DEBIAN."""
    usage = subprocess.run([executable, "--help"], capture_output=True, text=True, errors="replace", timeout=30)
    text = usage.stdout + usage.stderr
    return STSCI if "--output-size" in text and "--badpix" in text else DEBIAN


def stage_frame(frame, flavour, path):
    """Write the frame as a float32 primary-HDU image that this fitscut flavour renders right."""
    data = frame.data.astype(np.float32)  # a copy: the frame is shared with the caller
    if frame.mask.any():
        # Neither flavour masks the way caldp does (Debian's cannot, the fork paints blank pixels
        # white): the lowest shown value is clipped to black by their autoscale, as masked
        # pixels are by the native renderer.
        data[frame.mask] = data[~frame.mask].min() if (~frame.mask).any() else 0.0
    if flavour == DEBIAN:
        # Its asinh is asinh(3 x / (high - low)) with no base level, so the sky must sit at 0:
        # subtract the low percentile, as the fork does internally.
        low, high = autoscale_limits(frame.data, frame.mask)
        data -= np.float32(low)
        # Its asinh weight is asinh(0)/0 for a pixel that is exactly 0: nudge those up.
        data[data == 0] = np.float32((high - low) * 1e-6)
    fits.PrimaryHDU(data).writeto(path, overwrite=True)
    return path


def fitscut_argv(executable, flavour, staged, output, shape, size=None):
    """The command line for a full-size (size None) or thumbnail rendering of `staged`.

    Where Debian's fitscut cannot make the thumbnail's exact shape it writes a lossless PNG,
    which is resampled and encoded once (see deliver_jpeg).
    """
    argv = [executable, *COMMON_ARGS]
    if flavour == STSCI:
        # The fork treats pixels equal to its "bad value" as blank and paints them white; that is
        # 0.0 unless told, and --badpix (upstream's option, for BADPIX/GOODMIN/GOODMAX headers the
        # staged copy does not have) forces it back to 0.0: every empty pixel of a MAMA frame
        # would be white. caldp masks from DQ itself, so: no --badpix, and a value no pixel has.
        argv += [f"--output-size={size or -1}", f"--badvalue={NO_PIXEL_HAS_THIS}"]
    elif size:
        zoom, exact = debian_zoom(shape, thumbnail_shape(shape, size))
        argv += ([] if zoom == 1.0 else [f"--zoom={zoom:.9g}"]) + ([] if exact else ["--png"])
    return [*argv, str(staged), str(output)]


def debian_zoom(shape, target):
    """(zoom, exact): a --zoom for Debian's fitscut and whether it yields exactly `target`.

    It sizes each axis as (int)(float zoom * n) and floors factors above 1, so it cannot enlarge
    by a fraction, nor hit every shape of a very elongated frame; the midpoint of the factors
    that give both target lengths is used when there are any.
    """
    low = max(t / n for t, n in zip(target, shape))
    high = min((t + 1) / n for t, n in zip(target, shape))
    zoom = min((low + high) / 2 if low < high else max(target) / max(shape), 1.0)
    made = tuple(int(np.float32(zoom) * np.float32(n)) for n in shape)
    return zoom, made == tuple(target)


def write_fitscut_previews(frame, full_path, thumb_path, *, executable, env, thumb_size=THUMBNAIL_SIZE):
    """Render `frame` with the fitscut at `executable` as a full-size and a thumbnail JPEG."""
    flavour = fitscut_flavour(executable)
    with tempfile.TemporaryDirectory(prefix="caldp-fitscut-") as scratch:
        staged = stage_frame(frame, flavour, Path(scratch) / "frame.fits")
        for path, size in ((full_path, None), (thumb_path, thumb_size)):
            wanted = thumbnail_shape(frame.shape, size) if size else frame.shape
            made = Path(scratch) / Path(path).name
            run = run_program(fitscut_argv(executable, flavour, staged, made, frame.shape, size), cwd=scratch, env=env)
            if run.returncode != 0:
                raise FitscutError(f"fitscut exited with status {run.returncode}: {run.last_error_line}")
            deliver_jpeg(made, Path(path), wanted)
    return flavour


def deliver_jpeg(made, dest, shape):
    """Put fitscut's image at `dest` as a JPEG of (rows, cols) `shape`: moved when it already is
    one, else resampled (area averaging) and encoded once."""
    from PIL import Image  # Pillow is the 'previews' extra: imported only when a preview is made

    with Image.open(made) as image:
        if image.format == "JPEG" and (image.height, image.width) == tuple(shape):
            image.close()
            shutil.move(str(made), dest)
            return
        log.info("fitscut made %s at %dx%d: resampling to %dx%d", dest.name, image.width, image.height, *shape[::-1])
        save_jpeg(image.convert("L").resize(shape[::-1], Image.Resampling.BOX), dest)
