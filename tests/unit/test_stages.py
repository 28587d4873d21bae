"""Reading a calibration program's output for the cause of a failure, and its own resource use."""

import sys

import pytest

from caldp.stages import OutputScan, run_program


def scan(lines):
    output = OutputScan()
    for line in lines:
        output.feed(line)
    return output


@pytest.mark.parametrize("lines, cause", [
    # calwf3.e on UVIS says this on every run, recovers, and fails later for another reason
    (["ERROR: SATUFILE 'N/A' not found in table", "Using CCDTAB SATURATE", "Imset 1 begins",
      "ERROR: u.fits FILTER='F814W' does not match science data", "ERROR:  CALWF3 failed"],
     "ERROR: u.fits FILTER='F814W' does not match science data"),
    # calcos: the missing file is on the next line, then a traceback follows
    (["ERROR:  The following reference file is missing:", "   disptab=lref$x.fits", "Traceback (most recent)",
      "  raise Exception(str(errorobj))", "Exception: missing"],
     "ERROR:  The following reference file is missing: disptab=lref$x.fits"),
    (["calibrating", "an error happened here", "done"], "an error happened here"),
    (["calibrating", "done"], "done"),
    # runastrodriz (issue 16 item 9): its own [ERROR] line, not a source line of the traceback
    (["Processing j8bt05njq_flt.fits", "[ERROR] IDCTAB file jref$p7d1548qj_idc.fits not found",
      "Traceback (most recent call last):", '  File "/x/runastrodriz.py", line 3, in process',
      "    raise Exception(str(errorobj))", "Exception: IDCTAB file not found"],
     "[ERROR] IDCTAB file jref$p7d1548qj_idc.fits not found"),
    # no ERROR line: the exception's message, not the source line that raised it
    (["working", "Traceback (most recent call last):", '  File "/x/errors.py", line 9, in run',
      "    raise Exception(str(errorobj))", "ValueError: EXPTIME='abc' is not a number"],
     "ValueError: EXPTIME='abc' is not a number"),
])
def test_the_cause_is_the_programs_last_error_line(lines, cause):
    assert scan(lines).cause == cause


def test_a_memory_error_anywhere_is_noticed():
    assert scan(["x", "MemoryError", "y"]).memory_error and not scan(["x"]).memory_error


def test_a_programs_peak_rss_is_its_own_not_caldps(tmp_path):
    """Linux carries the forking process's high-water mark into a child's ru_maxrss; the launcher doesn't."""
    ballast = bytearray(300 * 1024 * 1024)  # caldp grown to 300 MB, as in a batch worker
    ballast[::4096] = b"x" * len(ballast[::4096])
    run = run_program(["/bin/true"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0 and 0 < run.max_rss_kb < 50_000
    grown = run_program([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                        cwd=tmp_path, env={})
    assert 200_000 < grown.max_rss_kb < 280_000
    del ballast
