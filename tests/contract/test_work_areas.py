"""Work areas: runs sharing one CALDP_HOME never disturb each other (issue 16.1), and a full or
unwritable CALDP_HOME ends in a dataset-error with the real cause and the step's code (issue 16.4).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from caldp import process
from caldp.dataset import DatasetId
from caldp.workspace import Workspace

from ..conftest import copy_inputs, run_caldp_process
from .test_bad_input import assert_clean_failure, assert_next_dataset_unaffected, digest, tmpfs


# ------------------------------------------------------------------ 16.1 shared CALDP_HOME
def test_workspaces_made_and_removed_concurrently_never_lose_their_parent(tmp_path):
    """The race itself, many times over: one run's clean-up removing caldp-work/ between another
    run's mkdir of it and its mkdtemp inside it."""
    home = tmp_path / "home"
    dataset = DatasetId.parse("j8bt05njq")
    failures = []

    def worker():
        for _ in range(300):
            try:
                with Workspace(home, dataset) as workspace:
                    assert workspace.cal.is_dir()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert not (home / "caldp-work").exists()  # the last run out still tidies up


def test_many_short_runs_sharing_one_home_have_no_spurious_failures(env, tmp_path):
    """caldp-process runs 6 at a time (more than the cores), one CALDP_HOME: all succeed. (Sized to
    stay near 30 s on 2 cores; the Workspace test above repeats the race itself thousands of times.)"""
    sources = {name: copy_inputs([f"{name}_raw.fits"], tmp_path / f"in-{name}", "acs")
               for name in ("j8bt05njq", "jbz504eoq")}
    jobs = [(("j8bt05njq", "jbz504eoq")[i % 2], tmp_path / f"out-{i}") for i in range(8)]
    run_env = env

    def one(job):
        name, out = job
        result = run_caldp_process([name, f"file:{sources[name]}", f"file:{out}"], run_env, cwd=tmp_path, timeout=120)
        return name, out, result

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, jobs))
    failed = [(name, r.returncode, r.stderr[-600:]) for name, _, r in results if r.returncode != 0]
    assert failed == []
    for name, out, _ in results:
        assert (out / "messages" / "dataset-processed" / name).exists()
    assert not (Path(env["CALDP_HOME"]) / "caldp-work").exists()


# --------------------------------------------------------- 16.4 full or unwritable CALDP_HOME
def _home_cases(tmp_path, case):
    """A context giving the CALDP_HOME of each case."""
    if case == "a regular file":
        path = tmp_path / "home-file"
        path.write_text("not a directory\n")
        return _given(path)
    if case == "a read-only mount":
        return tmpfs(tmp_path / "home-ro", "1m", readonly=True)
    return tmpfs(tmp_path / f"home-{case}", case)


class _given:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("case, code, cause", [
    ("a regular file", 21, "cannot make a work directory in CALDP_HOME"),
    ("a read-only mount", 21, "Read-only file system"),
    ("1m", 21, "No space left on device"),
    ("3m", 23, "No space left on device"),  # stage 1 fills it
    ("5m", 25, "No space left on device"),  # publish fills it copying the logs into the result
])
def test_a_full_or_unwritable_home_gives_a_dataset_error_with_the_real_cause(env, source, tmp_path, caplog, capfd,
                                                                           case, code, cause):
    out = tmp_path / "out"
    before = digest(source)
    with _home_cases(tmp_path, case) as home:
        env["CALDP_HOME"] = str(home)
        assert process.run("j8bt05njq", f"file:{source}", f"file:{out}", environ=env) == code
        # process.log itself is on the full disk: the cause is in caplog, stderr and the message
        if case.endswith("m"):
            _assert_failure_without_process_log(out, "j8bt05njq", code, cause, caplog)
        else:
            assert_clean_failure(out, "j8bt05njq", code, cause, caplog=caplog)
        if case.endswith("m"):
            work = Path(home, "caldp-work")
            assert not work.exists() or list(work.iterdir()) == []  # the work dir was removed
    stderr = capfd.readouterr().err
    assert "Logging error" not in stderr and "Traceback" not in stderr
    assert stderr.count("logging to") <= 1  # a log file on the full disk stops quietly, saying so once
    assert digest(source) == before
    env["CALDP_HOME"] = str(tmp_path / "home")
    assert_next_dataset_unaffected(source, out, env)


def _assert_failure_without_process_log(out, name, code, cause, caplog):
    error = (out / "messages" / "dataset-error" / name).read_text().splitlines()
    assert error[1].split()[:2] == ["exit:", str(code)] and cause in error[2] and len(error) == 3, error
    assert not (out / "messages" / "dataset-processed" / name).exists()
    product_dir = out / "data" / "acs" / name
    assert not product_dir.exists() or sorted(p.name for p in product_dir.iterdir()) == ["logs"]
    assert any(cause in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
