"""Spectral previews: spec-plots' make_hst_spec_previews on COS and STIS x1d, sx1, x1dsum files.

It writes <base>.png and <base>_thumb.png, and for COS <base>_prev.fits (the plotted spectrum as
a table), into the output directory it is given.
"""

import logging
from pathlib import Path

from ..stages import find_program, run_program

log = logging.getLogger(__name__)

PROGRAM = "make_hst_spec_previews"
INSTALL_HINT = "pip install 'caldp[previews]' (spec-plots)"


class SpectrumPreviewError(RuntimeError):
    pass


def spectrum_preview_names(base):
    return [f"{base}.png", f"{base}_thumb.png", f"{base}_prev.fits"]


def write_spectrum_previews(product, preview_dir, *, env):
    """Run make_hst_spec_previews on `product`; return the names it wrote into `preview_dir`."""
    executable = find_program(PROGRAM, env)
    if not executable:
        raise SpectrumPreviewError(f"{PROGRAM} is not installed (not on PATH); {INSTALL_HINT}")
    argv = [executable, "-v", "-t", "png", "fits", "-o", str(preview_dir), str(product)]
    # matplotlib must not look for a display in a batch job.
    run = run_program(argv, cwd=preview_dir, env={**env, "MPLBACKEND": "Agg"})
    if run.returncode != 0:
        raise SpectrumPreviewError(f"{PROGRAM} exited with status {run.returncode}: {run.last_error_line}")
    base = Path(product).name.removesuffix(".fits")
    made = [name for name in spectrum_preview_names(base) if (Path(preview_dir) / name).is_file()]
    if f"{base}.png" not in made:
        raise SpectrumPreviewError(f"{PROGRAM} exited 0 but wrote no {base}.png")
    return made
