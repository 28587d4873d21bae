"""caldp-batch locally: several real datasets through the real caldp-process, two at a time."""

import os
import sys

import pytest

from caldp import batch
from caldp.exit_codes import CaldpError

from ..conftest import copy_inputs


def test_parse_request_ids_locations_config(tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# reprocessing list\nj8bt05njq  JBZ504EOQ\nj8bt05njq\n")
    request = batch.parse_request([str(ids_file), "file:in", "s3://b/out", "caldp-config-offsite"])
    assert request == batch.BatchRequest(("j8bt05njq", "jbz504eoq"), "file:in", "s3://b/out", "caldp-config-offsite")
    assert batch.parse_request(["j8bt05njq", "ldfd01010"]) == batch.BatchRequest(("j8bt05njq", "ldfd01010"))
    assert batch.parse_request(["j8bt05njq", "astroquery:", "file:o"]).input == "astroquery:"


@pytest.mark.parametrize("args", [[], ["file:in"], ["u2ab0101t"], ["j8bt05njq", "file:a", "file:b", "file:c"],
                                  ["j8bt05njq", "file:a", "file:b", "cfg1", "cfg2"]])
def test_parse_request_errors(args):
    with pytest.raises(CaldpError) as info:
        batch.parse_request(args)
    assert info.value.code == 2


def test_main_usage_errors_exit_2(capsys):
    assert batch.main(["u2ab0101t"]) == 2
    assert "not calibrated" in capsys.readouterr().err
    assert batch.main([]) == 2


@pytest.fixture
def batch_env(crds_env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    return {**os.environ, "PATH": standin_bin.path, "CALDP_HOME": str(tmp_path / "home"), "CALDP_CAL": "hstcal",
            "STANDIN_PRODUCTS": "1", "CALDP_PYTHON": sys.executable}


def test_local_batch_two_workers_resume_and_force(batch_env, tmp_path, capsys):
    names = ["j8bt05njq", "j8bt06o6q", "j6gp01mkq", "jbz504eoq"]
    source = copy_inputs([f"{n}_raw.fits" for n in names], tmp_path / "in", "acs")
    out = tmp_path / "out"
    (tmp_path / "home").mkdir()
    request = batch.BatchRequest(tuple(names) + ("j9zz99zzq",), f"file:{source}", f"file:{out}",
                                 "caldp-config-onsite")
    results = batch.run_local(request, workers=2, env=batch_env)
    by_name = {r.dataset: r for r in results}
    assert [r.dataset for r in results] == list(request.datasets)  # in request order
    for name in names:
        assert by_name[name].status == "processed" and by_name[name].exit_code == 0
        assert by_name[name].max_rss_kb > 10_000 and by_name[name].wall_seconds > 0
        assert (out / "messages" / "dataset-processed" / name).exists()
        assert (out / "data" / "acs" / name / f"{name}_flt.fits").exists()
    missing = by_name["j9zz99zzq"]
    assert (missing.status, missing.exit_code, missing.exit_name) == ("failed", 21, "INPUT_TAR_FILE_ERROR")
    table = batch.summary_table(results)
    assert "j9zz99zzq  failed       21 INPUT_TAR_FILE_ERROR" in table
    assert table.splitlines()[-1] == "4 processed, 0 skipped, 1 failed"
    err = capsys.readouterr().err
    assert err.count("] ") == 5 and "5/5" in err  # a progress line per dataset

    again = batch.run_local(request, workers=2, env=batch_env)
    assert [r.status for r in again] == ["skipped"] * 4 + ["failed"]
    forced = batch.run_local(batch.BatchRequest(("j8bt05njq",), f"file:{source}", f"file:{out}"), workers=1,
                             env=batch_env, force=True)
    assert forced[0].status == "processed"


def test_main_exit_status(batch_env, tmp_path, monkeypatch, capsys):
    source = copy_inputs(["jbz504eoq_raw.fits"], tmp_path / "in", "acs")
    (tmp_path / "home").mkdir()
    for key, value in batch_env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    assert batch.main(["jbz504eoq", f"file:{source}", f"file:{out}", "--workers", "2"]) == 0
    assert "1 processed, 0 skipped, 0 failed" in capsys.readouterr().out
    assert batch.main(["jbz504eoq", "j9zz99zzq", f"file:{source}", f"file:{out}"]) == 1


# ---------------------------------------------------------------- why a dataset failed (issue 16 item 7)
def _failed_one(batch_env, tmp_path, capsys, config="caldp-config-onsite", **extra_env):
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    (tmp_path / "home").mkdir(exist_ok=True)
    request = batch.BatchRequest(("j8bt05njq",), f"file:{source}", f"file:{tmp_path / 'out'}", config)
    results = batch.run_local(request, workers=1, env={**batch_env, **extra_env})
    table = batch.summary_table(results)
    return results[0], table, capsys.readouterr().err


def test_batch_shows_why_a_lock_conflict_failed(batch_env, tmp_path, capsys):
    from caldp.dataset import DatasetId
    from caldp.storage.files import FileStorage

    out = tmp_path / "out"
    out.mkdir()
    with FileStorage(out).lock(DatasetId.parse("j8bt05njq")):
        result, table, err = _failed_one(batch_env, tmp_path, capsys)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.cause == f"dataset j8bt05njq locked by pid {os.getpid()}"
    assert result.log == str(tmp_path / "home" / "caldp-batch-logs" / "j8bt05njq.log")
    assert "locked by pid" in open(result.log).read()
    assert f"{result.cause} (see {result.log})" in table
    assert f"{result.cause} (see {result.log})" in err  # the progress line


def test_batch_shows_why_a_config_typo_failed(batch_env, tmp_path, capsys):
    result, table, err = _failed_one(batch_env, tmp_path, capsys, config="caldp-config-onsitte")
    assert (result.status, result.exit_code, result.exit_name) == ("failed", 2, "CMDLINE_ERROR")
    assert "caldp-config-onsitte" in result.cause and "cannot source" in result.cause
    assert result.cause in table and result.log in table and result.cause in err


def test_batch_shows_why_a_bad_cal_mode_failed(batch_env, tmp_path, capsys):
    result, table, err = _failed_one(batch_env, tmp_path, capsys, CALDP_CAL="natve")
    assert (result.status, result.exit_code) == ("failed", 2)
    assert "CALDP_CAL='natve' is not one of" in result.cause
    # Its dataset-error message when it could write one, else its captured output: either says why.
    assert "CALDP_CAL='natve'" in open(result.log).read()
    assert result.cause in table and result.log in err
