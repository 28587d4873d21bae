"""bench/overhead: what caldp adds per dataset, file -> file, on one real HRC singleton.

The stage programs are replaced by ones that exit at once, so the time measured is caldp's own:
input discovery and copy, bestrefs, subprocess handling, provenance, publishing, messages.
The baseline, measured in the same run, is interpreter start-up + crds import + one bestrefs on
the same raw. Goal: overhead <= 1 s per dataset.

    python bench/overhead.py [--repeat 5]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from astropy.io import fits

from _common import REPO, offline_crds_env, private_crds_cache, require_shared, scratch

BASELINE = (
    "import sys; from crds.bestrefs import assign_bestrefs; "
    "assign_bestrefs([sys.argv[1]], sync_references=False, verbosity=-2)"
)


def timed(argv, env, cwd):
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shared = require_shared()
    work = scratch()
    try:
        cache = private_crds_cache(work)
        bindir = work / "bin"
        bindir.mkdir()
        for name in ("calacs.e", "runastrodriz"):
            (bindir / name).write_text("#!/bin/sh\nexit 0\n")
            (bindir / name).chmod(0o755)
        source = work / "in"
        source.mkdir()
        shutil.copyfile(shared / "hst-data/acs/j8bt05njq_raw.fits", source / "j8bt05njq_raw.fits")
        # Stage 2 off: a stand-in runastrodriz writes no _drz, which caldp rightly reports as exit 24.
        fits.setval(source / "j8bt05njq_raw.fits", "DRIZCORR", value="OMIT")
        env = {**os.environ, **offline_crds_env(cache), "PATH": f"{bindir}:{os.environ['PATH']}",
               "CALDP_HOME": str(work), "CALDP_CAL": "hstcal", "CALDP_PYTHON": sys.executable}
        script = shutil.which("caldp-process") or str(REPO / "scripts" / "caldp-process")

        caldp_times, baseline_times, rss = [], [], []
        for i in range(args.repeat):
            out = work / f"out{i}"
            seconds, result = timed([script, "j8bt05njq", f"file:{source}", f"file:{out}"], env, work)
            if result.returncode != 0:
                raise SystemExit(f"caldp-process failed ({result.returncode}):\n{result.stderr[-2000:]}")
            caldp_times.append(seconds)
            metrics = json.loads((out / "data/acs/j8bt05njq/logs/metrics.json").read_text())
            rss.append(metrics["totals"]["caldp_max_rss_kb"])
            copy = work / f"baseline{i}_raw.fits"
            shutil.copyfile(source / "j8bt05njq_raw.fits", copy)
            seconds, result = timed([sys.executable, "-c", BASELINE, str(copy)], env, work)
            if result.returncode != 0:
                raise SystemExit(f"baseline failed:\n{result.stderr[-2000:]}")
            baseline_times.append(seconds)
        caldp_s, base_s = statistics.median(caldp_times), statistics.median(baseline_times)
        print(f"caldp-process j8bt05njq file->file, stage programs exit at once (median of {args.repeat}):")
        print(f"  caldp-process wall                         {caldp_s:7.3f} s")
        print(f"  baseline (python + crds import + bestrefs) {base_s:7.3f} s")
        print(f"  caldp overhead per dataset                 {caldp_s - base_s:7.3f} s   (goal <= 1 s)")
        print(f"  caldp peak RSS                             {statistics.median(rss) / 1024:7.1f} MB")
        print(f"  ratio caldp-process / baseline             {caldp_s / base_s:7.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
