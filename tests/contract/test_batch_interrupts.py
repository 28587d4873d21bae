"""caldp-batch under interrupt (issue 16 item 6): Ctrl-C (SIGINT to the process group) and SIGTERM
stop starting datasets, stop the running ones (no orphans), print the summary and exit 128+N."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import copy_inputs
from .test_signals import _processes_in

NAMES = ["j8bt05njq", "j8bt06o6q", "j6gp01mkq"]


@pytest.mark.parametrize("signum, to_group, status", [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)])
def test_batch_interrupted_stops_children_and_prints_summary(crds_env, standin_bin, tmp_path, signum, to_group,
                                                              status):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    source = copy_inputs([f"{n}_raw.fits" for n in NAMES], tmp_path / "in", "acs")
    home = tmp_path / "home"
    home.mkdir()
    record = tmp_path / "record.jsonl"
    env = {**os.environ, **crds_env, "PATH": f"{standin_bin.path}{os.pathsep}{os.environ['PATH']}",
           "CALDP_HOME": str(home), "CALDP_CAL": "hstcal", "STANDIN_RECORD": str(record), "STANDIN_SLEEP": "60",
           "CALDP_PYTHON": sys.executable}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "caldp.batch", *NAMES, f"file:{source}", f"file:{out}",
                             "--workers", "2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 90
    while (not record.exists() or len(record.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record.exists() and len(record.read_text().splitlines()) == 2, "two stand-ins never started"
    started = time.monotonic()
    if to_group:  # Ctrl-C on a terminal: the whole foreground process group
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert time.monotonic() - started < 30  # the 60 s stand-ins were stopped, not waited for
    assert "Traceback" not in stderr and "Traceback" not in stdout
    name = signal.Signals(signum).name
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.split() and line.split()[0] in NAMES}
    interrupted = [n for n, line in lines.items() if line.split()[1] == "interrupted"]
    assert len(interrupted) == 2, stdout
    for dataset in interrupted:
        assert f"terminated by {name}" in lines[dataset]
        error = (out / "messages" / "dataset-error" / dataset).read_text()
        assert f"cause: terminated by {name}" in error
        assert not (out / "messages" / "dataset-processed" / dataset).exists()
    (waiting,) = set(NAMES) - set(interrupted)
    assert "not started" in lines[waiting]
    assert len(record.read_text().splitlines()) == 2  # no dataset was started after the signal
    assert stdout.splitlines()[-1] == "0 processed, 0 skipped, 0 failed, 2 interrupted, 1 not started"
    deadline = time.monotonic() + 5
    while _processes_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_in(tmp_path), "a stage program outlived caldp-batch"
    assert not list(home.glob("caldp-work/*"))
