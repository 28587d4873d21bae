"""The caldp-process recipe end to end on real raws, with stand-in calibration programs.

The stand-ins test caldp's side of the subprocess contract (argv, cwd, environment, exit codes,
signals) and the output tree; the real programs run in the native/calcos/drizzlepac tests.
"""

import json
import os
import signal
from pathlib import Path

import pytest
from astropy.io import fits

from caldp import process
from caldp.dataset import DatasetId
from caldp.storage.files import FileStorage

from ..conftest import copy_inputs, run_caldp_process


@pytest.fixture
def env(crds_env, standin_bin, tmp_path):
    """Environment for an in-process run: offline CRDS, stand-ins first on PATH, a private CALDP_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    record = tmp_path / "record.jsonl"
    values = {**os.environ, "PATH": standin_bin.path, "CALDP_HOME": str(home), "CALDP_CAL": "hstcal",
              "STANDIN_RECORD": str(record), "STANDIN_PRODUCTS": "1"}
    values.pop("CALDP_SIMULATE_ERROR", None)
    return values


def records(env):
    path = Path(env["STANDIN_RECORD"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def message(out, state, name):
    path = out / "messages" / state / name
    return path.read_text().splitlines() if path.exists() else None


def run(name, source, out, env):
    return process.run(name, f"file:{source}", f"file:{out}", environ=env)


def test_acs_singleton_success(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    source = copy_inputs(["j8bt05njq_raw.fits", "j8bt06o6q_raw.fits"], tmp_path / "in", "acs")
    before = (source / "j8bt05njq_raw.fits").read_bytes()
    out = tmp_path / "out"
    assert run("J8BT05NJQ", source, out, env) == 0

    calls = records(env)
    assert [c["program"] for c in calls] == ["calacs.e", "runastrodriz"]
    assert calls[0]["argv"] == ["j8bt05njq_raw.fits"]
    assert calls[1]["argv"] == ["-n", "1", "j8bt05njq_raw.fits"]
    cwd = Path(calls[0]["cwd"])
    assert cwd.parent.parent == Path(env["CALDP_HOME"]) / "caldp-work" and cwd.name == "cal"
    assert not cwd.exists()  # the work dir is removed afterwards
    assert calls[0]["env"]["jref"] == env["CRDS_PATH"] + "/references/hst/"
    assert calls[0]["env"]["mtab"].endswith("/references/hst/")

    product_dir = out / "data" / "acs" / "j8bt05njq"
    files = sorted(str(p.relative_to(out)) for p in product_dir.rglob("*") if p.is_file())
    assert files == [
        "data/acs/j8bt05njq/j8bt05njq.tra",
        "data/acs/j8bt05njq/j8bt05njq_drz.fits",
        "data/acs/j8bt05njq/j8bt05njq_flt.fits",
        "data/acs/j8bt05njq/j8bt05njq_raw.fits",
        "data/acs/j8bt05njq/logs/metrics.json",
        "data/acs/j8bt05njq/logs/process.log",
        "data/acs/j8bt05njq/logs/process_metrics.txt",
        "data/acs/j8bt05njq/logs/provenance.json",
        # the stand-in flt is a copy of the real raw, so both get real previews
        "data/acs/j8bt05njq/previews/j8bt05njq_flt.jpg",
        "data/acs/j8bt05njq/previews/j8bt05njq_flt_thumb.jpg",
        "data/acs/j8bt05njq/previews/j8bt05njq_raw.jpg",
        "data/acs/j8bt05njq/previews/j8bt05njq_raw_thumb.jpg",
    ]
    processed = message(out, "dataset-processed", "j8bt05njq")
    assert processed[0].startswith("# caldp ") and processed[1:] == files
    synced = message(out, "dataset-synced", "j8bt05njq")
    assert synced[1:] == [str(out / f) for f in files]
    assert message(out, "dataset-error", "j8bt05njq") is None
    assert (source / "j8bt05njq_raw.fits").read_bytes() == before  # inputs untouched

    header = fits.getheader(product_dir / "j8bt05njq_flt.fits")
    assert header["CALDPVER"] and header["CRDS_CTX"] == "hst_0729.pmap"
    assert fits.getheader(product_dir / "j8bt05njq_raw.fits")["PFLTFILE"] == "jref$o3u1448rj_pfl.fits"

    metrics = json.loads((product_dir / "logs" / "metrics.json").read_text())
    assert [s["name"] for s in metrics["steps"]] == ["fetch_inputs", "assign_references", "calibrate", "drizzle",
                                                       "collect_products", "make_previews", "publish"]
    # the stand-in drz is an empty primary HDU: its preview fails, and only the preview does
    assert metrics["previews"]["made"] == 4
    assert metrics["previews"]["failed"] == [{"product": "j8bt05njq_drz.fits",
                                              "error": "j8bt05njq_drz.fits has no 2-D image (SCI or primary)"}]
    assert metrics["exit_status"] == 0 and metrics["calibration"] == "hstcal"
    assert [p["kind"] for p in metrics["programs"]] == ["hstcal", "pypi"]
    assert all(p["max_rss_kb"] > 0 and p["wall_seconds"] >= 0 for p in metrics["programs"])
    text = (product_dir / "logs" / "process_metrics.txt").read_text()
    assert "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:" in text and "Exit status: 0" in text
    assert "Maximum resident set size (kbytes): " in text
    log = (product_dir / "logs" / "process.log").read_text()
    assert "calacs.e: stand-in started with j8bt05njq_raw.fits" in log  # streamed program output
    provenance = json.loads((product_dir / "logs" / "provenance.json").read_text())
    assert provenance["crds_context"] == "hst_0729.pmap"
    assert provenance["references"]["j8bt05njq_raw.fits"]["CCDTAB"] == "jref$o1515069j_ccd.fits"
    assert "crds" in provenance["versions"]
    assert provenance["versions"]["calacs.e"] == "calacs.e stand-in 1.0"  # the program's own --version


def test_association_gets_the_asn(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    names = ["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"]
    source = copy_inputs(names, tmp_path / "in", "acs")
    for name in names[1:]:
        with fits.open(source / name, mode="update") as hdul:
            hdul[0].header["DRIZCORR"] = "OMIT"
    out = tmp_path / "out"
    assert run("jbz504020", source, out, env) == 0
    calls = records(env)
    assert [c["argv"] for c in calls] == [["jbz504020_asn.fits"]]  # runastrodriz skipped: DRIZCORR=OMIT
    log = (out / "data/acs/jbz504020/logs/process.log").read_text()
    assert "stage 2 (runastrodriz) skipped: DRIZCORR is not PERFORM" in log
    assert (out / "data/acs/jbz504020/jbz504elq_flt.fits").exists()


def test_cos_acquisition_exit_5_is_ignored(env, standin_bin, tmp_path):
    standin_bin("calcos")
    env["STANDIN_EXIT"] = "5"
    source = copy_inputs(["ldfd01vlq_rawacq.fits", "ldfd01vlq_spt.fits"], tmp_path / "in", "cos")
    out = tmp_path / "out"
    assert run("ldfd01vlq", source, out, env) == 0
    assert records(env)[0]["argv"] == ["ldfd01vlq_rawacq.fits"]
    assert fits.getheader(out / "data/cos/ldfd01vlq/ldfd01vlq_rawacq.fits")["RANDSEED"] == 1
    assert "Ignoring exit status 5 of calcos" in (out / "data/cos/ldfd01vlq/logs/process.log").read_text()
    assert message(out, "dataset-processed", "ldfd01vlq")


def test_stis_runs_cs0_with_tv(env, standin_bin, tmp_path):
    standin_bin("cs0.e")
    source = copy_inputs(["oc7w11viq_raw.fits", "oc7w11viq_spt.fits"], tmp_path / "in", "stis")
    assert run("oc7w11viq", source, tmp_path / "out", env) == 0
    assert records(env)[0]["argv"] == ["-tv", "oc7w11viq_raw.fits"]


def _assert_failed(out, name, code, cause_part, instrument="acs"):
    error = message(out, "dataset-error", name)
    assert error is not None, "no dataset-error message"
    assert error[1].startswith(f"exit: {code} ")
    assert error[2].startswith("cause: ") and cause_part in error[2]
    assert message(out, "dataset-processed", name) is None
    dataset_dir = out / "data" / instrument / name
    assert sorted(p.name for p in dataset_dir.iterdir()) == ["logs"]  # no partial products
    assert "Exit status: %d" % code in (dataset_dir / "logs" / "process_metrics.txt").read_text()


def test_missing_stage_program_is_23(env, tmp_path):
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 23
    _assert_failed(out, "j8bt05njq", 23, "calacs.e is not installed")


def test_a_program_with_nothing_to_calibrate_says_so_and_the_inputs_are_the_products(env, standin_bin, tmp_path):
    """calstis on a target acquisition: exit 0, no product. Processed, with the raw, and a log line."""
    standin_bin("cs0.e")
    source = copy_inputs(["ocmv0lw6q_raw.fits"], tmp_path / "in", "stis")
    out = tmp_path / "out"
    assert run("ocmv0lw6q", source, out, {**env, "STANDIN_PRODUCTS": "0"}) == 0
    products = out / "data" / "stis" / "ocmv0lw6q"
    assert message(out, "dataset-processed", "ocmv0lw6q") is not None
    assert sorted(p.name for p in products.glob("*.fits")) == ["ocmv0lw6q_raw.fits"]
    log = (products / "logs" / "process.log").read_text()
    assert ("cs0.e had nothing to calibrate and wrote no product (cs0.e: stand-in done); "
            "the inputs are the products") in log
    assert (products / "previews" / "ocmv0lw6q_raw.jpg").is_file()  # the acquisition image's preview


def test_a_program_that_writes_products_is_not_said_to_have_had_nothing_to_do(env, standin_bin, tmp_path):
    standin_bin("cs0.e")
    source = copy_inputs(["ocmv0lw6q_raw.fits"], tmp_path / "in", "stis")
    out = tmp_path / "out"
    assert run("ocmv0lw6q", source, out, env) == 0
    log = (out / "data" / "stis" / "ocmv0lw6q" / "logs" / "process.log").read_text()
    assert "nothing to calibrate" not in log


@pytest.mark.parametrize("cal, dataset, subdir, cause", [
    ("native", "ibxy01aoq", "wfc3", "CALDP_CAL=native, but caldp has no native implementation of calwf3.e; "
                                    "build hstcal from source with `caldp-install-cal --from-source"),
    ("auto", "ocmv0lw6q", "stis", "cs0.e is not installed (not on PATH, nor in $HSTCAL_PREFIX/bin); build hstcal"),
    ("hstcal", "j8bt05njq", "acs", "calacs.e is not installed (not on PATH, nor in $HSTCAL_PREFIX/bin); "
                                   "CALDP_CAL=auto would use caldp's native implementation"),
])
def test_a_missing_stage1_program_says_how_to_get_it(env, tmp_path, cal, dataset, subdir, cause):
    source = copy_inputs([f"{dataset}_raw.fits"], tmp_path / "in", subdir)
    out = tmp_path / "out"
    assert run(dataset, source, out, {**env, "CALDP_CAL": cal, "HSTCAL_PREFIX": str(tmp_path / "none")}) == 23
    _assert_failed(out, dataset, 23, cause, instrument=subdir)


def test_runastrodriz_without_product_is_24(env, standin_bin, tmp_path):
    """runastrodriz swallows some errors and exits 0: no _drz product means stage 2 failed."""
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    (standin_bin.dir / "runastrodriz").write_text(
        (standin_bin.dir / "runastrodriz").read_text().replace("exec", "STANDIN_PRODUCTS=0 exec"))
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 24
    _assert_failed(out, "j8bt05njq", 24, "wrote no *_dr[zc].fits product")


def test_alignment_is_off_for_runastrodriz_unless_exported(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    env["ASTROMETRY_APPLY_APRIORI"] = "on"
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    assert run("j8bt05njq", source, tmp_path / "out", env) == 0
    log = (tmp_path / "out/data/acs/j8bt05njq/logs/process.log").read_text()
    assert "absolute astrometric alignment skipped (ASTROMETRY_COMPUTE_APOSTERIORI=off, ASTROMETRY_STEP_CONTROL=off)" in log


def test_missing_runastrodriz_is_24(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 24
    _assert_failed(out, "j8bt05njq", 24, "runastrodriz is not installed")


@pytest.mark.parametrize("program, code", [("calacs.e", 23), ("runastrodriz", 24)])
def test_stage_failure_cause_is_the_programs_error_line(env, standin_bin, tmp_path, program, code):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    env["STANDIN_EXIT"] = "2" if program == "calacs.e" else "0"
    if program == "runastrodriz":  # make only the second program fail
        (standin_bin.dir / "runastrodriz").write_text(
            (standin_bin.dir / "runastrodriz").read_text().replace("exec", "STANDIN_EXIT=7 exec"))
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == code
    _assert_failed(out, "j8bt05njq", code, f"ERROR: {program} stand-in failed on purpose")


@pytest.mark.parametrize("signum, code, text", [
    (signal.SIGKILL, 31, "killed by signal SIGKILL[9]"),
    (signal.SIGSEGV, 23, "killed by signal SIGSEGV[11]"),
])
def test_stage_killed_by_signal(env, standin_bin, tmp_path, signum, code, text):
    standin_bin("calacs.e")
    env["STANDIN_SIGNAL"] = str(int(signum))
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == code
    _assert_failed(out, "j8bt05njq", code, text)
    if signum == signal.SIGKILL:
        assert "probable out-of-memory kill" in message(out, "dataset-error", "j8bt05njq")[2]


def test_rerun_replaces_and_failed_rerun_keeps_previous_products(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    product = out / "data/acs/j8bt05njq/j8bt05njq_flt.fits"
    assert run("j8bt05njq", source, out, env) == 0
    (out / "data/acs/j8bt05njq/stale.txt").write_text("left by an old run")
    downstream = out / "messages" / "dataset-archived" / "j8bt05njq"
    downstream.parent.mkdir(parents=True)
    downstream.write_text("archived by the downloader\n")
    assert run("j8bt05njq", source, out, env) == 0
    assert not (out / "data/acs/j8bt05njq/stale.txt").exists()  # replaced whole
    first_product = product.read_bytes()

    env["STANDIN_EXIT"] = "2"
    assert run("j8bt05njq", source, out, env) == 23
    assert product.read_bytes() == first_product  # previous products still in place
    assert message(out, "dataset-processed", "j8bt05njq") is None
    assert message(out, "dataset-synced", "j8bt05njq") is None
    assert message(out, "dataset-error", "j8bt05njq")[1] == "exit: 23 STAGE1_ERROR"
    assert downstream.read_text() == "archived by the downloader\n"  # not caldp's to touch

    env["STANDIN_EXIT"] = "0"
    assert run("j8bt05njq", source, out, env) == 0
    assert message(out, "dataset-error", "j8bt05njq") is None
    assert message(out, "dataset-processed", "j8bt05njq")


def test_downstream_error_message_is_not_removed(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    theirs = out / "messages" / "dataset-error" / "j8bt05njq"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("written by an operator tool\n")
    assert run("j8bt05njq", source, out, env) == 0
    assert theirs.read_text() == "written by an operator tool\n"


def test_locked_dataset(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    with FileStorage(out).lock(DatasetId.parse("j8bt05njq")):
        assert run("j8bt05njq", source, out, env) == 1
    assert not (out / "data").exists() and message(out, "dataset-error", "j8bt05njq") is None
    assert records(env) == []


@pytest.mark.parametrize("value, code", [("32", 32), ("34", 34), ("31", 31), ("27", 27), ("23", 23)])
def test_simulated_errors(env, standin_bin, tmp_path, value, code):
    standin_bin("calacs.e")
    env["CALDP_SIMULATE_ERROR"] = value
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == code
    _assert_failed(out, "j8bt05njq", code, "CALDP_SIMULATE_ERROR")


def test_bad_arguments_exit_2(env, tmp_path):
    assert process.run("j8bt05njq", "file:.", f"file:{tmp_path}", environ={**env, "CALDP_CAL": "fortran"}) == 2
    assert process.run("j8bt05n/q", "file:.", f"file:{tmp_path}", environ=env) == 2
    assert process.main(["j8bt05njq", "a", "b", "c", "d"]) == 2
    assert not (tmp_path / "messages").exists()  # no usable output or id: the cause is only logged
    assert process.run("j8bt05njq", "http://x", f"file:{tmp_path}", environ=env) == 2
    assert message(tmp_path, "dataset-error", "j8bt05njq")[2].startswith("cause: input location 'http://x'")
    # A well-formed id of an instrument caldp does not calibrate still gets its error message.
    assert process.run("U2AB0101T", "file:.", f"file:{tmp_path}", environ=env) == 2
    assert message(tmp_path, "dataset-error", "u2ab0101t")[1] == "exit: 2 CMDLINE_ERROR"


def test_input_problems_are_21(env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    out = tmp_path / "out"
    assert run("j8bt05njq", tmp_path / "missing", out, env) == 21
    _assert_failed(out, "j8bt05njq", 21, "does not exist")


# ------------------------------------------------------------------ the real command line
def test_command_line_done_criterion(crds_env, tmp_path):
    """Issue 2's 'done': references assigned, then a clean 23 because calacs.e is absent."""
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = tmp_path / "out"
    result = run_caldp_process(["j8bt05njq", f"file:{source}", "file:out"],
                               {**crds_env, "CALDP_CAL": "hstcal", "CALDP_HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 23, result.stderr
    assert "j8bt05njq_raw.fits: 13 references selected with hst_0729.pmap" in result.stderr
    _assert_failed(out, "j8bt05njq", 23, "calacs.e is not installed")
    assert not (tmp_path / "caldp-work").exists()


def test_command_line_usage_and_config(crds_env, tmp_path):
    result = run_caldp_process([], crds_env, cwd=tmp_path)
    assert result.returncode == 2 and "usage: caldp-process" in result.stderr
    result = run_caldp_process(["j8bt05njq", "file:.", "file:.", "/no/such/config"], crds_env, cwd=tmp_path)
    assert result.returncode == 2 and "cannot source" in result.stderr
    result = run_caldp_process(["u2ab0101t"], crds_env, cwd=tmp_path)
    assert result.returncode == 2 and "not calibrated by caldp" in result.stderr
