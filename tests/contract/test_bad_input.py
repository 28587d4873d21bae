"""Hardening: each way a run can go wrong ends in the documented exit code, a one-line cause in
messages/dataset-error/<id> and in the log, inputs byte-identical, no partial product, and the
next dataset unaffected.
"""

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from astropy.io import fits

from caldp import process

from ..conftest import copy_inputs, shared_path


def digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(directory).iterdir()) if p.is_file()}


def run(name, source, out, env, caplog=None):
    return process.run(name, f"file:{source}", f"file:{out}", environ=env)


def assert_clean_failure(out, name, code, cause, instrument="acs", caplog=None):
    error = (out / "messages" / "dataset-error" / name).read_text().splitlines()
    assert error[1].split()[:2] == ["exit:", str(code)], error
    assert error[2].startswith("cause: ") and cause in error[2], error[2]
    assert len(error) == 3  # the cause is one line
    assert not (out / "messages" / "dataset-processed" / name).exists()
    product_dir = out / "data" / instrument / name
    if product_dir.exists():
        assert sorted(p.name for p in product_dir.iterdir()) == ["logs"]
        assert cause.split(":")[0] in (product_dir / "logs" / "process.log").read_text()
    if caplog is not None:
        assert any(cause in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def assert_next_dataset_unaffected(source, out, env):
    assert run("jbz504eoq", source, out, env) == 0
    assert (out / "messages" / "dataset-processed" / "jbz504eoq").exists()


@pytest.mark.parametrize("case, name, code, cause", [
    ("malformed id (length)", "j8bt05nj", 2, "invalid dataset id"),
    ("malformed id (characters)", "j8bt0$njq", 2, "invalid dataset id"),
    ("unsupported instrument", "n8xy01abq", 2, "NICMOS instrument letter 'n' is not calibrated"),
])
def test_id_errors(env, source, tmp_path, caplog, case, name, code, cause):
    before = digest(source)
    out = tmp_path / "out"
    assert run(name, source, out, env) == code
    assert any(cause in r.getMessage() for r in caplog.records)
    wellformed = name.isalnum() and len(name) == 9
    assert (out / "messages" / "dataset-error" / name).exists() == wellformed
    assert not (out / "data").exists()
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


def test_a_missing_input_dir_exits_21(env, source, tmp_path, caplog):
    out = tmp_path / "out"
    assert run("j8bt05njq", tmp_path / "nope", out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "does not exist", caplog=caplog)
    assert_next_dataset_unaffected(source, out, env)


def test_no_files_for_the_id_exits_21(env, source, tmp_path, caplog):
    out = tmp_path / "out"
    before = digest(source)
    assert run("j8bt06o6q", source, out, env) == 21
    assert_clean_failure(out, "j8bt06o6q", 21, "no input files for j8bt06o6q", caplog=caplog)
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


def test_a_missing_association_member_exits_21_naming_it(env, source, tmp_path, caplog):
    copy_inputs(["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits"], source, "acs")
    before = digest(source)
    out = tmp_path / "out"
    assert run("jbz504020", source, out, env) == 21
    assert_clean_failure(out, "jbz504020", 21, f"member jbz504enq has no input file in {source}", caplog=caplog)
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


@pytest.mark.parametrize("case", ["truncated FITS", "corrupt header", "raw of another instrument"])
def test_damaged_inputs(env, source, tmp_path, caplog, case):
    raw = source / "j8bt05njq_raw.fits"
    if case == "truncated FITS":
        raw.write_bytes(raw.read_bytes()[:100_000])
        cause = "unreadable FITS file j8bt05njq_raw.fits"
    elif case == "corrupt header":
        data = bytearray(raw.read_bytes())
        data[0:80] = b"GARBAGE".ljust(80)
        raw.write_bytes(bytes(data))
        cause = "unreadable FITS file j8bt05njq_raw.fits"
    else:
        shutil.copyfile(shared_path("hst-data", "stis", "oc7w11viq_raw.fits"), raw)
        cause = "j8bt05njq_raw.fits is a STIS file"
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, cause, caplog=caplog)
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


def _member(name, kind=tarfile.REGTYPE, data=b"x", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("member, why", [
    (_member("../j8bt05njq_raw.fits"), "path traversal"),
    (_member("/tmp/j8bt05njq_raw.fits"), "absolute path"),
    (_member("j8bt05njq_raw.fits", tarfile.SYMTYPE, linkname="/etc/passwd"), "link"),
    (_member("j8bt05njq_raw.fits", tarfile.LNKTYPE, linkname="other"), "link"),
    (_member("j8bt05njq_raw.fits", tarfile.CHRTYPE), "device"),
])
def test_an_unsafe_tarball_exits_21_before_writing_anything(env, tmp_path, caplog, member, why):
    source = tmp_path / "tarin"
    source.mkdir()
    with tarfile.open(source / "j8bt05njq.tar.gz", "w:gz") as tar:
        tar.addfile(*member)
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, why, caplog=caplog)
    assert digest(source) == before
    assert not (tmp_path / "j8bt05njq_raw.fits").exists() and not Path("/tmp/j8bt05njq_raw.fits").exists()


def test_a_cache_without_mappings_exits_27(env, source, tmp_path, crds_cache, caplog):
    empty = tmp_path / "cache"
    shutil.copytree(crds_cache / "config", empty / "config")
    env["CRDS_PATH"] = str(empty)
    os.environ["CRDS_PATH"] = str(empty)  # crds reads its configuration from the process environment
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 27
    assert_clean_failure(out, "j8bt05njq", 27, "has no HST mappings", caplog=caplog)


def test_a_selected_reference_missing_with_no_server_exits_27(env, source, tmp_path, crds_cache, caplog, monkeypatch):
    """A writable cache with no server: CRDS cannot sync the selected references -> 27."""
    cache = tmp_path / "cache"
    shutil.copytree(crds_cache, cache)
    for key, value in {"CRDS_PATH": str(cache), "CRDS_READONLY_CACHE": "0"}.items():
        env[key] = value
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 27
    assert_clean_failure(out, "j8bt05njq", 27, "CRDS bestrefs failed", caplog=caplog)


@pytest.mark.slow
def test_a_reference_of_the_wrong_shape_exits_23_naming_it(acs_ref_cache, tmp_path, caplog, monkeypatch):
    """A flat of the wrong size: the native calacs refuses it like calacs.e (23, its own ERROR line)."""
    from ..conftest import offline_crds_env, run_caldp_process

    cache = tmp_path / "cache"
    shutil.copytree(acs_ref_cache, cache)
    flat = cache / "references" / "hst" / "36h22012j_pfl.fits"
    with fits.open(flat) as hdul:
        for hdu in hdul[1:]:
            hdu.data = hdu.data[:512, :512]
        hdul.writeto(flat, overwrite=True)
    source = copy_inputs(["jbz504eoq_raw.fits"], tmp_path / "in", "acs")
    with fits.open(source / "jbz504eoq_raw.fits", mode="update") as hdul:
        hdul[0].header["DRIZCORR"] = "OMIT"
    before = digest(source)
    out = tmp_path / "out"
    result = run_caldp_process(["jbz504eoq", f"file:{source}", f"file:{out}"],
                               {**offline_crds_env(cache), "CALDP_CAL": "native", "CALDP_HOME": str(tmp_path)},
                               cwd=tmp_path)
    assert result.returncode == 23, result.stderr[-2000:]
    error = (out / "messages" / "dataset-error" / "jbz504eoq").read_text().splitlines()
    assert error[1] == "exit: 23 STAGE1_ERROR" and "ERROR" in error[2] and "36h22012j_pfl" in error[2]
    assert digest(source) == before
    assert sorted(p.name for p in (out / "data/acs/jbz504eoq").iterdir()) == ["logs"]


def test_a_stage_program_not_installed_exits_23(env, source, standin_bin, tmp_path, caplog):
    (standin_bin.dir / "calacs.e").unlink()
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 23
    assert_clean_failure(out, "j8bt05njq", 23, "calacs.e is not installed", caplog=caplog)


def test_a_stage_program_failing_exits_23_with_its_error_line(env, source, tmp_path, caplog):
    env["STANDIN_EXIT"] = "3"
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 23
    assert_clean_failure(out, "j8bt05njq", 23, "calacs.e exited with status 3: ERROR: calacs.e stand-in failed",
                         caplog=caplog)


def test_a_sigkilled_stage_program_exits_31(env, source, tmp_path, caplog):
    env["STANDIN_SIGNAL"] = "9"
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 31
    assert_clean_failure(out, "j8bt05njq", 31, "probable out-of-memory kill", caplog=caplog)
    env.pop("STANDIN_SIGNAL")
    assert_next_dataset_unaffected(source, out, env)


@pytest.mark.parametrize("code", ["31", "32", "33", "34"])
def test_simulated_memory_errors_exit_with_their_code(env, source, tmp_path, caplog, code):
    env["CALDP_SIMULATE_ERROR"] = code
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == int(code)
    assert_clean_failure(out, "j8bt05njq", int(code), "CALDP_SIMULATE_ERROR", caplog=caplog)
    assert digest(source) == before


@contextlib.contextmanager
def tmpfs(path, size, readonly=False):
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a tmpfs (tests run as root in CI)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_an_unwritable_output_exits_25(env, source, tmp_path, caplog):
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as out:
        assert run("j8bt05njq", source, out, env) == 25
        assert list(out.iterdir()) == []
    assert any("is not writable" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_a_full_disk_while_staging_outputs_exits_25(env, source, tmp_path, caplog):
    with tmpfs(tmp_path / "small", "3m") as out:
        assert run("j8bt05njq", source, out, env) == 25
        assert_clean_failure(out, "j8bt05njq", 25, "No space left on device", caplog=caplog)
        leftovers = [p.name for p in (out / "data" / "acs").iterdir() if p.name != "j8bt05njq"]
        assert leftovers == []  # the staging tree was removed


def test_a_second_run_of_a_locked_dataset_exits_1(env, source, tmp_path, caplog):
    from caldp.dataset import DatasetId
    from caldp.storage.files import FileStorage

    out = tmp_path / "out"
    with FileStorage(out).lock(DatasetId.parse("j8bt05njq")):
        assert run("j8bt05njq", source, out, env) == 1
    assert any(f"dataset j8bt05njq locked by pid {os.getpid()}" in r.getMessage() for r in caplog.records)
    assert not (out / "messages" / "dataset-error" / "j8bt05njq").exists()  # the first run is untouched


def test_a_rerun_after_a_failure_succeeds_and_clears_the_error(env, source, tmp_path):
    out = tmp_path / "out"
    env["STANDIN_EXIT"] = "2"
    assert run("j8bt05njq", source, out, env) == 23
    env.pop("STANDIN_EXIT")
    assert run("j8bt05njq", source, out, env) == 0
    assert not (out / "messages" / "dataset-error" / "j8bt05njq").exists()
    assert (out / "data" / "acs" / "j8bt05njq" / "j8bt05njq_flt.fits").exists()


def test_credentials_are_never_written(env, source, tmp_path):
    secret, key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY", "AKIAIOSFODNN7SECRET1"
    env.update(AWS_SECRET_ACCESS_KEY=secret, AWS_ACCESS_KEY_ID=key, AWS_SESSION_TOKEN="FwoGZXIvYXdzSESSIONTOKEN")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 0
    env["STANDIN_EXIT"] = "2"
    assert run("jbz504eoq", source, out, env) == 23
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        for value in (secret, key, "FwoGZXIvYXdzSESSIONTOKEN"):
            assert value.encode() not in data, f"{value[:6]}... leaked into {path}"


# ------------------------------------------------ 17-19: S3 and MAST faults (local servers, real clients)
from ..support.servers.fixtures import serve_mast, subprocess_env  # noqa: E402


def s3_message(area, state, name):
    keys = area.keys(area.outputs, "messages/")
    key = f"messages/{state}/{name}"
    return area.read(area.outputs, key).decode().splitlines() if key in keys else None


def test_a_missing_s3_bucket_exits_26_or_25(env, source, s3_env, tmp_path, caplog):
    before = digest(source)
    assert process.run("j8bt05njq", "s3://caldp-no-such-bucket-9c1e/in", f"file:{tmp_path / 'out'}", environ=env) == 26
    assert_clean_failure(tmp_path / "out", "j8bt05njq", 26, "s3://caldp-no-such-bucket-9c1e/in", caplog=caplog)
    assert process.run("j8bt05njq", f"file:{source}", "s3://caldp-no-such-bucket-9c1e/out", environ=env) == 25
    assert any("caldp-no-such-bucket-9c1e" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert digest(source) == before


def test_s3_access_denied_exits_26(env, source, s3_env, faulty_s3, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")
    s3_env.put(s3_env.inputs, "j8bt05njq_raw.fits", (source / "j8bt05njq_raw.fits").read_bytes())
    faulty_s3.fail("GET", r".*", status=403)
    out = tmp_path / "out"
    assert process.run("j8bt05njq", str(s3_env.inputs), f"file:{out}", environ=env) == 26
    assert_clean_failure(out, "j8bt05njq", 26, "AccessDenied", caplog=caplog)
    faulty_s3.clear()
    assert_next_dataset_unaffected(source, out, env)


def test_s3_5xx_during_upload_is_retried_then_exits_25(env, source, s3_env, faulty_s3, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")
    faulty_s3.fail("PUT", r"/\.caldp-staging/.*_flt\.fits", times=1)  # once: retried and recovered
    assert process.run("j8bt05njq", f"file:{source}", str(s3_env.outputs), environ=env) == 0
    assert [s for m, p, s in faulty_s3.seen if m == "PUT" and p.endswith("_flt.fits") and s == 500]
    assert s3_message(s3_env, "dataset-processed", "j8bt05njq")
    faulty_s3.fail("PUT", r"/\.caldp-staging/.*_flt\.fits")  # always: 25, nothing reported processed
    assert process.run("jbz504eoq", f"file:{source}", str(s3_env.outputs), environ=env) == 25
    error = s3_message(s3_env, "dataset-error", "jbz504eoq")
    assert error[1] == "exit: 25 S3_UPLOAD_ERROR" and "InternalError" in error[2]
    assert s3_message(s3_env, "dataset-processed", "jbz504eoq") is None
    assert not [k for k in s3_env.keys(s3_env.outputs) if "jbz504eoq_flt" in k or ".caldp-staging" in k]


@pytest.mark.parametrize("fault", ["5xx", "timeout"])
def test_mast_5xx_and_timeouts_are_retried_then_exit_22(env, tmp_path, caplog, fault):
    pytest.importorskip("astroquery.mast", reason="astroquery: input needs astroquery: pip install 'caldp[mast]'")
    from ..conftest import run_caldp_process

    served = copy_inputs(["jbz504eoq_raw.fits"], tmp_path / "served", "acs")
    out = tmp_path / "out"
    with serve_mast([served], tmp_path / "xdg") as mast:
        name = "jbz504eoq_raw.fits"
        if fault == "5xx":
            mast.fail[name] = -1
        else:
            mast.stall[name] = 3
        settings = {"CALDP_RETRY_ATTEMPTS": "2", "CALDP_RETRY_DELAY": "0.05", "CALDP_MAST_TIMEOUT": "1",
                    "CALDP_HOME": str(tmp_path)}
        result = run_caldp_process(["jbz504eoq", "astroquery:", f"file:{out}"], subprocess_env(env, mast.env, settings),
                                   cwd=tmp_path, timeout=120)
        attempts = mast.downloads(name)
    assert result.returncode == 22, result.stderr[-2000:]
    assert len(attempts) == 2  # retried once, then given up
    error = (out / "messages" / "dataset-error" / "jbz504eoq").read_text().splitlines()
    assert error[1] == "exit: 22 ASTROQUERY_ERROR" and "after 2 attempts" in error[2]
    assert ("503" in error[2]) if fault == "5xx" else ("timed out" in error[2].lower() or "timeout" in error[2].lower())
