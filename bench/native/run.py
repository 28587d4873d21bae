#!/usr/bin/env python
"""Benchmark caldp's native calacs (caldp-calacs) against calacs.e when it is installed.

For each input it prints:

* cold: wall time and peak RSS of ``python -m caldp.native.acs <raw>`` in a fresh
  process (interpreter start-up and imports included);
* in-process: the best wall time of ``calibrate_exposure`` over several runs
  in one warm process, and the peak RSS of a process doing one calibration;
* calacs.e: the same cold measurement of ``calacs.e <raw>`` and the ratio,
  when ``calacs.e`` is on PATH.

Inputs: the golden HRC frame (../shared/golden/acs-hrc-j8bt05njq) and a
synthetic post-SM4 WFC full frame (two 4144x2068 chips) built on the fly.

    python bench/native/run.py [--repeat N] [--keep DIR] [--skip-wfc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CALDP_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "native"))


def run_measured(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, float, float, str]:
    """(exit status, wall seconds, peak RSS MB, output) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_maxrss / 1024.0, out


IN_PROCESS = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from caldp.native import calibrate_exposure
imported = time.perf_counter()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
raw, jref, repeat = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
times = []
for k in range(repeat):
    work = raw.parent / f"run{k}"
    work.mkdir()
    (work / raw.name).symlink_to(raw)
    t = time.perf_counter()
    calibrate_exposure(work / raw.name, jref=jref, log=None)
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"import": imported - t0, "times": times, "rss_after_import": base,
                  "peak_rss": peak}))
"""


def copy_writable(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, dirs_exist_ok=True)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def prepare_hrc(base: Path) -> tuple[Path, str] | None:
    golden = SHARED / "golden" / "acs-hrc-j8bt05njq"
    if not golden.is_dir():
        print(f"(skipping HRC: {golden} not found)")
        return None
    work = base / "hrc"
    copy_writable(golden / "input", work)
    copy_writable(golden / "refs", work / "refs")
    return work / "j8bt05njq_raw.fits", str(work / "refs") + "/"


def prepare_wfc(base: Path) -> tuple[Path, str]:
    # Built in a child process: a forked child's peak RSS counts the pages it
    # inherited, so this process must stay small for the measurements below.
    code = ("import sys, json; from pathlib import Path; sys.path[:0] = sys.argv[2:4]; "
            "import calacs_synth; d = calacs_synth.make_wfc_full_frame(Path(sys.argv[1])); "
            "print(json.dumps([str(d.raw), d.jref]))")
    out = subprocess.run([sys.executable, "-c", code, str(base / "wfc"), str(REPO),
                          str(REPO / "tests" / "native")], check=True, capture_output=True,
                         text=True).stdout
    raw, jref = json.loads(out.strip().splitlines()[-1])
    return Path(raw), jref


def fresh_copy(raw: Path, label: str) -> Path:
    """A directory holding only a link to the raw (products must not exist yet)."""
    work = raw.parent / label
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    (work / raw.name).symlink_to(raw)
    return work


def bench(name: str, raw: Path, jref: str, repeat: int) -> dict:
    env = dict(os.environ, jref=jref, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result: dict = {"input": name}
    work = fresh_copy(raw, "cold")
    status, wall, rss, out = run_measured([sys.executable, "-m", "caldp.native.acs", "-q", raw.name],
                                          work, env)
    if status != 0:
        raise SystemExit(f"caldp-calacs failed on {name}:\n{out}")
    result.update(cold_wall=wall, cold_rss=rss)
    inproc_dir = raw.parent / "inproc"
    if inproc_dir.exists():
        shutil.rmtree(inproc_dir)
    inproc_dir.mkdir()
    (inproc_dir / raw.name).symlink_to(raw)
    status, _, _, out = run_measured([sys.executable, "-c", IN_PROCESS, str(inproc_dir / raw.name),
                                      jref, str(repeat)], inproc_dir, env)
    if status != 0:
        raise SystemExit(f"in-process run failed on {name}:\n{out}")
    stats = json.loads(out.strip().splitlines()[-1])
    result.update(inproc_best=min(stats["times"]), inproc_first=stats["times"][0],
                  import_time=stats["import"], rss_after_import=stats["rss_after_import"],
                  inproc_rss=stats["peak_rss"])
    calacs = shutil.which("calacs.e")
    if calacs:
        work = fresh_copy(raw, "calacs")
        status, wall, rss, out = run_measured([calacs, raw.name], work, env)
        result.update(calacs_status=status, calacs_wall=wall, calacs_rss=rss)
    return result


def report(results: list[dict]) -> None:
    print()
    print(f"{'input':<34}{'cold s':>8}{'cold MB':>9}{'in-proc s':>11}{'1st s':>8}"
          f"{'proc MB':>9}{'import s':>10}{'calacs.e s':>12}{'calacs MB':>11}{'ratio':>7}")
    for r in results:
        calacs_s = f"{r['calacs_wall']:.3f}" if "calacs_wall" in r else "n/a"
        calacs_mb = f"{r['calacs_rss']:.0f}" if "calacs_rss" in r else "n/a"
        ratio = f"{r['inproc_best'] / r['calacs_wall']:.2f}" if "calacs_wall" in r else "n/a"
        print(f"{r['input']:<34}{r['cold_wall']:>8.3f}{r['cold_rss']:>9.0f}{r['inproc_best']:>11.3f}"
              f"{r['inproc_first']:>8.3f}{r['inproc_rss']:>9.0f}{r['import_time']:>10.3f}"
              f"{calacs_s:>12}{calacs_mb:>11}{ratio:>7}")
    print()
    print("cold = `python -m caldp.native.acs -q <raw>` in a new process; in-proc = best "
          "calibrate_exposure() over the repeats in one warm process ('1st' = first call);")
    print("proc MB = peak RSS of that process (the interpreter, numpy and astropy alone take "
          f"about {results[0]['rss_after_import']:.0f} MB); ratio = in-proc / calacs.e wall time.")
    if not shutil.which("calacs.e"):
        print("calacs.e is not on PATH here; reference figures for the HRC frame: 0.13 s, 53 MB.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="in-process repetitions (best is shown)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--skip-wfc", action="store_true", help="only the HRC frame")
    args = parser.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="caldp-native-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        hrc = prepare_hrc(base)
        if hrc:
            results.append(bench("HRC j8bt05njq (golden)", *hrc, args.repeat))
        if not args.skip_wfc:
            results.append(bench("WFC full frame (synthetic, post-SM4)", *prepare_wfc(base),
                                 max(1, min(args.repeat, 3))))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if results:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
