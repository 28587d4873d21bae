"""Publishing is crash-safe at every instant (issue 16.2): killed at any step, a reader sees a tree
whose message (if any) names only files that are there, and the next run reclaims the leftovers.

The runs are killed through the test hook CALDP_TEST_PAUSE_PUBLISH=<step>[:kill|:term]
(caldp.storage.files._checkpoint).
"""

import signal
from pathlib import Path

import pytest

from caldp import process
from caldp.dataset import DatasetId
from caldp.storage.files import FileStorage, reclaim_output

from ..conftest import copy_inputs, run_caldp_process

NAME = "j8bt05njq"
STEPS = ["dataset-processed-removed", "dataset-synced-removed", "staged", "old-moved", "swapped",
         "dataset-processed-written", "dataset-synced-written"]
FAILURE_STEPS = ["dataset-processed-removed", "logs-staged", "logs-old-moved", "logs-swapped"]


@pytest.fixture
def source(tmp_path):
    return copy_inputs([f"{NAME}_raw.fits"], tmp_path / "in", "acs")


def tree_files(out):
    target = out / "data" / "acs" / NAME
    return {str(p.relative_to(out)) for p in target.rglob("*") if p.is_file()} if target.is_dir() else set()


def assert_consistent(out):
    """A message never names a file that is absent; a processed message names the whole tree."""
    processed = out / "messages" / "dataset-processed" / NAME
    if processed.exists():
        listed = set(processed.read_text().splitlines()[1:])
        assert listed == tree_files(out), "dataset-processed does not describe the tree"
    synced = out / "messages" / "dataset-synced" / NAME
    if synced.exists():
        for line in synced.read_text().splitlines()[1:]:
            assert Path(line).is_file(), f"dataset-synced names an absent {line}"


def leftovers(out):
    found = [p for p in (out / "data" / "acs").iterdir() if p.name.startswith(f".{NAME}.")]
    target = out / "data" / "acs" / NAME
    if target.is_dir():
        found += [p for p in target.iterdir() if p.name.startswith(".logs.")]
    found += [p for p in (out / "messages").glob("*/.*") if ".tmp-" in p.name]
    return found


def killed_run(source, out, env, tmp_path, step):
    result = run_caldp_process([NAME, f"file:{source}", f"file:{out}"], {**env, "CALDP_TEST_PAUSE_PUBLISH": step},
                               cwd=tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert f"at publish step {step}" in result.stderr


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_at_any_publish_step_leaves_a_consistent_tree_reclaimed_next_time(env, source, tmp_path, step):
    out = tmp_path / "out"
    assert process.run(NAME, f"file:{source}", f"file:{out}", environ=env) == 0  # the old tree and message
    old = tree_files(out)
    killed_run(source, out, env, tmp_path, step)
    assert_consistent(out)
    if step in ("old-moved", "swapped"):
        assert leftovers(out), "the hook should have caught the run mid-swap"
    assert process.run(NAME, f"file:{source}", f"file:{out}", environ=env) == 0
    assert leftovers(out) == []
    assert_consistent(out)
    assert tree_files(out) == old
    assert (out / "messages" / "dataset-synced" / NAME).exists()


@pytest.mark.parametrize("step", FAILURE_STEPS)
def test_a_failing_run_killed_while_publishing_its_logs_leaves_a_consistent_tree(env, source, tmp_path, step):
    out = tmp_path / "out"
    assert process.run(NAME, f"file:{source}", f"file:{out}", environ=env) == 0
    killed_run(source, out, {**env, "STANDIN_EXIT": "2"}, tmp_path, step)
    assert_consistent(out)
    assert process.run(NAME, f"file:{source}", f"file:{out}", environ=env) == 0
    assert leftovers(out) == [] and not (out / "messages" / "dataset-error" / NAME).exists()
    assert_consistent(out)


def test_sigterm_during_the_swap_keeps_its_cause(env, source, tmp_path):
    """SIGTERM between the two renames is held back until the swap is whole: exit 1, its own cause."""
    out = tmp_path / "out"
    assert process.run(NAME, f"file:{source}", f"file:{out}", environ=env) == 0
    result = run_caldp_process([NAME, f"file:{source}", f"file:{out}"],
                               {**env, "CALDP_TEST_PAUSE_PUBLISH": "old-moved:term"}, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    error = (out / "messages" / "dataset-error" / NAME).read_text().splitlines()
    assert error[1] == "exit: 1 GENERIC_ERROR" and "terminated by SIGTERM" in error[2], error
    assert "Directory not empty" not in result.stderr
    assert_consistent(out)
    assert not (out / "messages" / "dataset-processed" / NAME).exists()


def test_the_batch_reclaim_skips_a_dataset_a_live_run_holds(tmp_path):
    out = tmp_path / "out"
    storage = FileStorage(out)
    live, dead = DatasetId.parse("j8bt05njq"), DatasetId.parse("jbz504eoq")
    def stage(name):
        staging = out / "data" / "acs" / f".{name}.staging-999999"
        staging.mkdir(parents=True)
        (staging / "x_flt.fits").write_bytes(b"partial")

    stage(dead.name)
    (out / "data" / "acs" / f".{dead.name}.old-999999").mkdir()  # killed between the renames
    (out / "data" / "acs" / f".{dead.name}.old-999999" / "old_flt.fits").write_bytes(b"old")
    with storage.lock(live):  # a live run, staging its tree right now
        stage(live.name)
        assert reclaim_output(out) == [dead.name]
        assert (out / "data" / "acs" / f".{live.name}.staging-999999" / "x_flt.fits").exists()  # untouched
    assert not (out / "data" / "acs" / f".{dead.name}.staging-999999").exists()
    assert (out / "data" / "acs" / dead.name / "old_flt.fits").read_bytes() == b"old"  # put back
    assert reclaim_output(out) == [live.name]
    assert reclaim_output(out) == []


def test_caldp_batch_reclaims_a_killed_runs_leftovers_at_start(tmp_path):
    """caldp-batch calls the reclaim before starting anything (a dataset killed mid-publish, then the batch)."""
    from caldp import batch

    out = tmp_path / "out"
    product_dir = out / "data" / "acs"
    product_dir.mkdir(parents=True)
    staging = product_dir / ".j8bt05njq.staging-999999"
    staging.mkdir()
    (staging / "j8bt05njq_flt.fits").write_bytes(b"half")
    batch.reclaim_leftovers(f"file:{out}")
    assert not staging.exists()
