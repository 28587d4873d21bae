"""Per-dataset state: CRDS settings lent per call, one log file per run, children stopped by their own call.

What a warm worker (many datasets in one process) relies on: nothing one dataset does leaks into the
next through process globals.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from caldp.exit_codes import CaldpError
from caldp.logsetup import DatasetLogFile
from caldp.references import assign_references, crds_environment, reference_environment
from caldp.stages import run_program

from ..conftest import copy_inputs, offline_crds_env


def test_crds_settings_are_lent_for_the_call_only(monkeypatch):
    monkeypatch.setenv("CRDS_CONTEXT", "hst_0700.pmap")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    before = dict(os.environ)
    with crds_environment({"CRDS_CONTEXT": "hst_0729.pmap", "PATH": "/opt/x", "AWS_REGION": "us-east-1", "HOME": "/x"}):
        assert os.environ["CRDS_CONTEXT"] == "hst_0729.pmap" and os.environ["PATH"] == "/opt/x"
        assert os.environ["AWS_REGION"] == "us-east-1"
        assert os.environ["HOME"] == before["HOME"]  # only what crds and boto3 read is lent
    assert dict(os.environ) == before
    with pytest.raises(RuntimeError), crds_environment({"CRDS_CONTEXT": "hst_0729.pmap"}):
        raise RuntimeError("bestrefs blew up")
    assert dict(os.environ) == before


def test_two_runs_in_one_process_each_use_their_own_cache(crds_cache, tmp_path, monkeypatch):
    """The process environment names no cache at all; each call gets its cache from its own environ."""
    for key in list(os.environ):
        if key.startswith("CRDS_"):
            monkeypatch.delenv(key)
    empty = tmp_path / "empty-cache"
    (empty / "mappings" / "hst").mkdir(parents=True)
    raws = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    raw = raws / "j8bt05njq_raw.fits"
    with pytest.raises(CaldpError, match="has no HST mappings"):
        assign_references([raw], ref_env=reference_environment(empty),
                          environ={**os.environ, **offline_crds_env(empty)})
    good = assign_references([raw], ref_env=reference_environment(crds_cache),
                             environ={**os.environ, **offline_crds_env(crds_cache)})
    assert good.context == "hst_0729.pmap" and "CRDS_PATH" not in os.environ


def test_each_run_writes_only_its_own_log_file(tmp_path):
    logger = logging.getLogger("caldp.test_run_context")
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    ready, done = threading.Event(), threading.Event()

    def other_run():
        with DatasetLogFile(second):
            logger.info("second dataset starts")
            ready.set()
            done.wait(10)
            logger.info("second dataset ends")

    with DatasetLogFile(first):
        worker = threading.Thread(target=other_run)
        worker.start()
        ready.wait(10)
        logger.info("first dataset works")
        done.set()
        worker.join(10)
    first_text, second_text = first.read_text(), second.read_text()
    assert "first dataset works" in first_text and "second dataset" not in first_text
    assert "second dataset starts" in second_text and "first dataset" not in second_text


def test_a_program_is_stopped_by_the_call_that_started_it(tmp_path):
    """An exception reaching run_program (SIGTERM, Ctrl-C) stops the program's whole group: no registry."""
    marker = tmp_path / "grandchild.pid"
    script = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(marker)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)")

    def interrupt():
        while not marker.exists():
            time.sleep(0.05)
        time.sleep(0.2)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_program([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ))
        assert time.monotonic() - start < 30
    finally:
        signal.signal(signal.SIGUSR1, previous)
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.1)
    assert not _alive(grandchild)


def _alive(pid):
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def test_storage_takes_the_runs_settings_not_the_process_environment(tmp_path, monkeypatch):
    pytest.importorskip("astroquery")
    pytest.importorskip("boto3")
    from caldp.locations import parse_location
    from caldp.settings import Settings
    from caldp.storage import input_storage, output_storage

    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("CALDP_MAST_TIMEOUT", "5")
    settings = Settings.from_environ({"CALDP_HOME": str(tmp_path), "CALDP_RETRY_ATTEMPTS": "7",
                                      "CALDP_RETRY_DELAY": "0.5", "CALDP_MAST_TIMEOUT": "9"})
    mast = input_storage(parse_location("astroquery:"), settings)
    assert mast.backoff.attempts == 7 and mast.backoff.first_delay == 0.5 and mast.timeout == (30.0, 9.0)
    s3 = output_storage(parse_location("s3://bucket/prefix", role="output"), settings)
    assert s3.bucket.backoff.attempts == 7
    assert input_storage(parse_location("astroquery:")).backoff.attempts == 2  # no settings: this process's


def test_a_run_in_a_process_that_ran_others_reports_its_own_peak_rss():
    from caldp.metrics import RunMetrics

    resident = _status_kb("VmRSS")
    earlier = bytearray(400 * 1024 * 1024)  # an earlier dataset's peak in this process
    earlier[::4096] = b"x" * len(earlier[::4096])
    del earlier
    assert _status_kb("VmHWM") > resident + 390_000
    totals = RunMetrics("caldp-process j8bt05njq").totals()
    assert totals["caldp_max_rss_kb"] < resident + 200_000


def _status_kb(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))
