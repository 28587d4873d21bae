"""bench/scaling: throughput of caldp-batch with 1 and 2 workers on the same 8 small datasets.

The datasets are synthetic ACS/HRC exposures calibrated for real (CRDS bestrefs against the demo
context, caldp's native calacs), so each is a full caldp-process run. Goal: >= 1.8x on 2 cores.

    python bench/scaling.py [--datasets 8]
"""

import argparse
import os
import shutil
import sys
import time

from astropy.io import fits

from caldp import batch, demo
from caldp.references import offline_environment

from _common import scratch


def make_datasets(directory, count):
    names = []
    for i in range(count):
        name = f"j8demo{i + 10:02d}q"
        path = demo.make_raw(directory / f"{name}_raw.fits", seed=100 + i)
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["ROOTNAME"] = name
            hdul[0].header["FILENAME"] = path.name
        names.append(name)
    return names


def run(names, inputs, output, workers, env):
    request = batch.BatchRequest(tuple(names), f"file:{inputs}", f"file:{output}", "caldp-config-onsite")
    start = time.perf_counter()
    results = batch.run_local(request, workers=workers, env=env, force=True,
                              progress=batch.Progress(len(names), stream=open(os.devnull, "w")))
    wall = time.perf_counter() - start
    failed = [r for r in results if r.status != "processed"]
    if failed:
        raise SystemExit(f"datasets failed: {failed}")
    return wall, results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=8)
    args = parser.parse_args()
    work = scratch()
    try:
        cache, _ = demo.build(work / "ctx")
        inputs = work / "inputs"
        inputs.mkdir()
        names = make_datasets(inputs, args.datasets)
        env = {**os.environ, **offline_environment(cache), "CALDP_HOME": str(work),
               "CALDP_CAL": "native", "CALDP_PYTHON": sys.executable}
        env.pop("CRDS_CONTEXT", None)
        wall1, results1 = run(names, inputs, work / "out1", 1, env)
        wall2, results2 = run(names, inputs, work / "out2", 2, env)
        n = len(names)
        print(f"{n} synthetic HRC datasets, caldp-process each (bestrefs + native calacs + publish):")
        print(f"  1 worker : {wall1:7.2f} s  {n / wall1:6.2f} datasets/s")
        print(f"  2 workers: {wall2:7.2f} s  {n / wall2:6.2f} datasets/s")
        print(f"  throughput ratio 2 workers / 1 worker: {wall1 / wall2:5.2f}   (goal >= 1.8 on 2 cores)")
        peak = max(r.max_rss_kb for r in results2) / 1024
        mean = sum(r.max_rss_kb for r in results2) / len(results2) / 1024
        print(f"  peak RSS per worker (dataset process tree): max {peak:.0f} MB, mean {mean:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
