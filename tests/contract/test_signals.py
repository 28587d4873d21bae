"""caldp-process under signals (issue 16 item 5): SIGHUP and SIGINT clean up like SIGTERM, and a
stage program never outlives caldp-process, not even when caldp-process is SIGKILLed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import caldp_process_command, copy_inputs
from .test_process import _assert_failed


def _start(crds_env, standin_bin, tmp_path, sleep="60"):
    standin_bin("calacs.e")
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    record = tmp_path / "record.jsonl"
    env = {**os.environ, **crds_env, "PATH": standin_bin.path, "CALDP_HOME": str(tmp_path), "CALDP_CAL": "hstcal",
           "STANDIN_RECORD": str(record), "STANDIN_SLEEP": sleep, "CALDP_PYTHON": sys.executable}
    proc = subprocess.Popen([*caldp_process_command(), "j8bt05njq", f"file:{source}", "file:out"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record.exists(), "the stand-in never started"
    return proc, source


def _processes_in(directory):
    """Pids of the live processes whose current directory is under `directory`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cwd.startswith(str(directory) + os.sep):
            found.append(int(entry))
    return found


def _digest(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_sigterm_stops_children_and_cleans_up(crds_env, standin_bin, tmp_path):
    proc, _ = _start(crds_env, standin_bin, tmp_path)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert time.monotonic() - started < 15  # the 60 s child was stopped, not waited for
    _assert_failed(tmp_path / "out", "j8bt05njq", 1, "terminated by SIGTERM")
    assert not (tmp_path / "caldp-work").exists()  # a lone run takes the shared parent with it too


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_sighup_and_sigint_clean_up_like_sigterm(crds_env, standin_bin, tmp_path, signum):
    proc, source = _start(crds_env, standin_bin, tmp_path)
    before = _digest(source)
    started = time.monotonic()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    assert time.monotonic() - started < 15  # the 60 s child was stopped, not waited for
    name = signal.Signals(signum).name
    _assert_failed(tmp_path / "out", "j8bt05njq", 1, f"terminated by {name}")
    assert f"terminated by {name}" in stderr
    assert "unexpected failure" not in stderr and "Traceback" not in stderr
    assert not list(tmp_path.glob("caldp-work/*"))  # the work dir is gone (its shared parent may stay)
    assert not _processes_in(tmp_path)
    assert _digest(source) == before  # inputs untouched


def test_stage_program_does_not_outlive_a_sigkilled_caldp_process(crds_env, standin_bin, tmp_path):
    proc, _ = _start(crds_env, standin_bin, tmp_path)
    workers = _processes_in(tmp_path / "caldp-work")
    assert workers, "the stand-in is not running in the work dir"
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while _processes_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_in(tmp_path), "the stage program outlived caldp-process"


def test_next_dataset_unaffected_after_a_signal(crds_env, standin_bin, tmp_path):
    proc, source = _start(crds_env, standin_bin, tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    standin_bin("runastrodriz")
    env = {**os.environ, **crds_env, "PATH": standin_bin.path, "CALDP_HOME": str(tmp_path), "CALDP_CAL": "hstcal",
           "STANDIN_PRODUCTS": "1", "CALDP_PYTHON": sys.executable}
    done = subprocess.run([*caldp_process_command(), "j8bt05njq", f"file:{source}", "file:out"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "messages" / "dataset-processed" / "j8bt05njq").exists()
    assert not (tmp_path / "out" / "messages" / "dataset-error" / "j8bt05njq").exists()
