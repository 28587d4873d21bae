#!/usr/bin/env python
"""Benchmark caldp's native preview renderer against fitscut, per 1024x1024 frame.

For each real 1024x1024 frame in ../shared (calacs.e's golden flt and sfl, SBC raws) it prints
the best of --repeat runs of:

* native:   read the product (astropy), stretch, full-size JPEG + 128-pixel thumbnail;
* fitscut:  the two fitscut processes on a primary-HDU copy (full size, then --zoom thumbnail),
            i.e. what fitscut itself costs;
* caldp+fc: caldp's whole fitscut path (read, stage the copy, both fitscut runs);

and the ratio native / fitscut (goal: <= 1, native no slower). fitscut is found on PATH;
without it only the native times are printed.

    python bench/previews.py [--repeat N]
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import require_shared  # noqa: E402

from caldp.previews.fitscut import (  # noqa: E402
    DEBIAN, fitscut_argv, fitscut_flavour, stage_frame, write_fitscut_previews)
from caldp.previews.frames import read_frame  # noqa: E402
from caldp.previews.stretch import write_native_previews  # noqa: E402
from caldp.stages import run_program  # noqa: E402


def frames_1024(shared):
    patterns = ("golden/*/expected/*_f*.fits", "golden/*/expected/*_sfl.fits", "hst-data/acs/jbz504e*_raw.fits")
    candidates = [path for pattern in patterns for path in sorted(shared.glob(pattern))]
    return [p for p in candidates if read_frame(p).shape == (1024, 1024)]


def best_of(repeat, function):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    shared = require_shared()
    fitscut = shutil.which("fitscut")
    flavour = fitscut_flavour(fitscut) if fitscut else None
    print(f"fitscut: {fitscut or 'not on PATH'}" + (f" ({flavour})" if flavour else ""))
    print(f"{'frame':24s} {'native':>9s} {'fitscut':>9s} {'caldp+fc':>9s} {'ratio':>7s}")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="caldp-bench-previews-") as scratch:
        out = Path(scratch)
        for path in frames_1024(shared):
            native = best_of(args.repeat, lambda: write_native_previews(read_frame(path), out / "n.jpg", out / "t.jpg"))
            if not fitscut:
                print(f"{path.name:24s} {native:8.3f}s")
                continue
            frame = read_frame(path)
            staged = stage_frame(frame, flavour, out / "staged.fits")

            def fitscut_only():
                for size, name in ((None, "f.jpg"), (128, "f_thumb.jpg")):
                    (out / name).unlink(missing_ok=True)  # fitscut does not overwrite
                    argv = fitscut_argv(fitscut, flavour, staged, out / name, frame.shape, size)
                    assert run_program(argv, cwd=out, env={}).returncode == 0

            alone = best_of(args.repeat, fitscut_only)
            whole = best_of(args.repeat, lambda: write_fitscut_previews(
                read_frame(path), out / "c.jpg", out / "c_thumb.jpg", executable=fitscut, env={}))
            ratios.append(native / alone)
            print(f"{path.name:24s} {native:8.3f}s {alone:8.3f}s {whole:8.3f}s {native / alone:7.2f}")
    if ratios:
        mean = sum(ratios) / len(ratios)
        print(f"native / fitscut (full + thumbnail, file to JPEGs): mean ratio {mean:.2f} "
              f"({'native no slower' if mean <= 1 else 'native SLOWER'}; {flavour} fitscut"
              f"{', which needs caldp to stage a primary-HDU copy' if flavour == DEBIAN else ''})")


if __name__ == "__main__":
    main()
