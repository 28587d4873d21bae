"""Hardening, round 2 (issue 16 items 3, 8 and 10): bounded inputs, input names and kinds, and the
run's environment. Each failure ends in the documented exit code with a one-line cause in
messages/dataset-error/<id> and in the log, inputs byte-identical, no partial product, and the next
dataset unaffected (the assertions of test_bad_input.py).
"""

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ..conftest import caldp_process_command, copy_inputs, run_caldp_process
from .test_bad_input import assert_clean_failure, assert_next_dataset_unaffected, digest, run

MiB = 1024**2


class Zeros(io.RawIOBase):
    """n zero bytes, as a stream (no memory, no disk)."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def tar_of(path, members):
    """A .tar.gz of (name, bytes-or-(size, stream)) members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size, stream = len(data), io.BytesIO(data)
            else:
                info.size, stream = data
            tar.addfile(info, stream)
    return path


def assert_no_workdir_left(env):
    work = Path(env["CALDP_HOME"]) / "caldp-work"
    assert not work.exists() or not any(work.iterdir())


# ------------------------------------------------------------------------- 3. bounded inputs
def test_a_loose_input_linked_to_dev_zero_exits_21(env, source, tmp_path, caplog):
    (source / "j8bt05njq_raw.fits").unlink()
    (source / "j8bt05njq_raw.fits").symlink_to("/dev/zero")
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "input j8bt05njq_raw.fits is not a regular file (a character device)",
                         caplog=caplog)
    assert digest(source) == before
    assert_no_workdir_left(env)
    assert_next_dataset_unaffected(source, out, env)


def test_a_loose_input_over_the_file_size_limit_exits_21(env, source, tmp_path, caplog):
    out = tmp_path / "out"
    before = digest(source)
    small = {**env, "CALDP_INPUT_MAX_FILE_SIZE": "1M"}
    assert run("j8bt05njq", source, out, small) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "over the per-file limit CALDP_INPUT_MAX_FILE_SIZE=1.0 MiB",
                         caplog=caplog)
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


def test_a_tarball_member_over_the_file_size_limit_exits_21_before_writing(env, source, tmp_path, caplog):
    tarballs = tmp_path / "tars"
    tarballs.mkdir()
    tar_of(tarballs / "j8bt05njq.tar.gz", [("j8bt05njq_raw.fits", (source / "j8bt05njq_raw.fits").read_bytes())])
    out = tmp_path / "out"
    small = {**env, "CALDP_INPUT_MAX_FILE_SIZE": "1M", "CALDP_KEEP_WORKDIR": "1"}
    assert run("j8bt05njq", tarballs, out, small) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "over the per-file limit CALDP_INPUT_MAX_FILE_SIZE", caplog=caplog)
    (workdir,) = (Path(env["CALDP_HOME"]) / "caldp-work").iterdir()
    assert list((workdir / "cal").iterdir()) == []  # refused from the header, nothing written
    assert_next_dataset_unaffected(source, out, env)


def test_a_tarball_over_the_total_size_limit_exits_21(env, source, tmp_path, caplog):
    members = ["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"]
    loose = copy_inputs(members, tmp_path / "loose", "acs")
    tarballs = tmp_path / "tars"
    tarballs.mkdir()
    tar_of(tarballs / "jbz504020.tar.gz", [(m, (loose / m).read_bytes()) for m in members])
    out = tmp_path / "out"
    assert run("jbz504020", tarballs, out, {**env, "CALDP_INPUT_MAX_TOTAL_SIZE": "3M"}) == 21
    assert_clean_failure(out, "jbz504020", 21, "total-size limit CALDP_INPUT_MAX_TOTAL_SIZE=3.0 MiB", caplog=caplog)
    # and the loose files of the same dataset, under the same limit
    assert run("jbz504020", loose, out, {**env, "CALDP_INPUT_MAX_TOTAL_SIZE": "3M"}) == 21
    assert_clean_failure(out, "jbz504020", 21, "total-size limit CALDP_INPUT_MAX_TOTAL_SIZE=3.0 MiB", caplog=caplog)
    assert run("jbz504020", tarballs, out, env) == 0  # the default limits take a real association
    assert_next_dataset_unaffected(source, out, env)


def test_a_tarball_claiming_a_2_gib_member_exits_21_on_the_compression_ratio(env, source, tmp_path, caplog):
    """The issue's 9 MB tarball holding 2 GiB: a header claiming 2 GiB and 16 MiB of zeros, gzipped
    (~16 KB); with the default limits the ratio stops it before anything is written."""
    header = tarfile.TarInfo("j8bt05njq_raw.fits")
    header.size = 2 * 1024**3
    tarballs = tmp_path / "tars"
    tarballs.mkdir()
    with gzip.open(tarballs / "j8bt05njq.tar.gz", "wb") as tgz:
        tgz.write(header.tobuf(format=tarfile.GNU_FORMAT))
        tgz.write(bytes(16 * MiB))
    out = tmp_path / "out"
    assert run("j8bt05njq", tarballs, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "over the compression-ratio limit CALDP_INPUT_MAX_RATIO=200",
                         caplog=caplog)
    assert_no_workdir_left(env)
    assert_next_dataset_unaffected(source, out, env)


def test_a_zip_bomb_member_exits_21_while_extracting(env, source, tmp_path, caplog):
    """A real 80 MiB member of zeros (~80 KB gzipped) is stopped by the ratio at the default limits."""
    tarballs = tmp_path / "tars"
    tarballs.mkdir()
    tar_of(tarballs / "j8bt05njq.tar.gz", [("j8bt05njq_raw.fits", (80 * MiB, Zeros(80 * MiB)))])
    out = tmp_path / "out"
    assert run("j8bt05njq", tarballs, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "CALDP_INPUT_MAX_RATIO", caplog=caplog)
    assert_next_dataset_unaffected(source, out, env)


def test_a_gz_bomb_exits_21(env, source, tmp_path, caplog):
    bombs = tmp_path / "bombs"
    bombs.mkdir()
    with gzip.open(bombs / "j8bt05njq_raw.fits.gz", "wb") as gz:
        for _ in range(80):
            gz.write(bytes(MiB))
    before = digest(bombs)
    out = tmp_path / "out"
    assert run("j8bt05njq", bombs, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "j8bt05njq_raw.fits.gz unpacks", caplog=caplog)
    assert "CALDP_INPUT_MAX_RATIO" in (out / "messages" / "dataset-error" / "j8bt05njq").read_text()
    assert digest(bombs) == before
    assert_next_dataset_unaffected(source, out, env)


@pytest.mark.parametrize("name, value", [("CALDP_INPUT_MAX_FILE_SIZE", "lots"), ("CALDP_INPUT_MAX_RATIO", "0.5")])
def test_a_bad_limit_setting_exits_2(env, source, tmp_path, caplog, name, value):
    assert run("j8bt05njq", source, tmp_path / "out", {**env, name: value}) == 2
    assert any(name in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


# --------------------------------------------------------------------- 8. input names and kinds
def published(out, name="j8bt05njq"):
    assert (out / "messages" / "dataset-processed" / name).exists()
    return sorted(p.name for p in (out / "data" / "acs" / name).iterdir())


def references_selected(out, name="j8bt05njq"):
    provenance = json.loads((out / "data" / "acs" / name / "logs" / "provenance.json").read_text())
    return provenance["references"]


def test_upper_case_names_are_calibrated_under_lower_case_names(env, source, tmp_path):
    (source / "j8bt05njq_raw.fits").rename(source / "J8BT05NJQ_RAW.FITS")
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 0
    assert "j8bt05njq_raw.fits" in published(out)
    assert references_selected(out)["j8bt05njq_raw.fits"]  # bestrefs ran on it
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


def test_upper_case_names_in_a_tarball_are_calibrated(env, source, tmp_path):
    tarballs = tmp_path / "tars"
    tarballs.mkdir()
    tar_of(tarballs / "J8BT05NJQ.TAR.GZ", [("J8BT05NJQ_RAW.FITS", (source / "j8bt05njq_raw.fits").read_bytes())])
    out = tmp_path / "out"
    assert run("j8bt05njq", tarballs, out, env) == 0
    assert references_selected(out)["j8bt05njq_raw.fits"]


def test_both_cases_with_different_data_exit_21(env, source, tmp_path, caplog):
    shutil.copyfile(source / "jbz504eoq_raw.fits", source / "J8BT05NJQ_RAW.FITS")
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "with different data", caplog=caplog)
    assert digest(source) == before
    assert_next_dataset_unaffected(source, out, env)


def test_both_cases_with_the_same_data_are_one_input(env, source, tmp_path):
    shutil.copyfile(source / "j8bt05njq_raw.fits", source / "J8BT05NJQ_RAW.FITS")
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 0


def test_a_gzipped_raw_is_decompressed_into_the_work_dir(env, source, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    with gzip.open(archive / "j8bt05njq_raw.fits.gz", "wb") as gz:
        gz.write((source / "j8bt05njq_raw.fits").read_bytes())
    before = digest(archive)
    out = tmp_path / "out"
    assert run("j8bt05njq", archive, out, env) == 0
    assert "j8bt05njq_raw.fits" in published(out)
    assert references_selected(out)["j8bt05njq_raw.fits"]
    assert digest(archive) == before


def test_a_damaged_gz_exits_21_naming_it(env, source, tmp_path, caplog):
    archive = tmp_path / "archive"
    archive.mkdir()
    data = gzip.compress((source / "j8bt05njq_raw.fits").read_bytes())
    (archive / "j8bt05njq_raw.fits.gz").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert run("j8bt05njq", archive, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "unreadable input j8bt05njq_raw.fits.gz", caplog=caplog)
    assert_next_dataset_unaffected(source, out, env)


def test_an_extension_whose_naxis_is_smaller_than_its_data_exits_21_before_bestrefs(env, source, tmp_path, caplog):
    """astropy would read the next extension's header out of the middle of the data; bestrefs then failed (27)."""
    raw = source / "j8bt05njq_raw.fits"
    data = bytearray(raw.read_bytes())
    card = data.find(b"NAXIS1  =", data.find(b"XTENSION= 'IMAGE"))
    data[card:card + 30] = b"NAXIS1  = " + b"1000".rjust(20)
    raw.write_bytes(bytes(data))
    before = digest(source)
    out = tmp_path / "out"
    assert run("j8bt05njq", source, out, env) == 21
    assert_clean_failure(out, "j8bt05njq", 21, "unreadable FITS file j8bt05njq_raw.fits: extension 1 (SCI,1): "
                         "its NAXISn do not match its data", caplog=caplog)
    assert not any("bestrefs" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert sum("invalid or follows" in r.getMessage() for r in caplog.records) == 0  # no flood of warnings
    assert digest(source) == before
    (source / "j8bt05njq_raw.fits").unlink()
    assert_next_dataset_unaffected(source, out, env)


# ------------------------------------------------------------------------------ 10. environment
REPO = Path(__file__).resolve().parents[2]


def command_env(env, **extra):
    """The command line's environment, running this tree's caldp (whatever is installed)."""
    values = {k: v for k, v in env.items() if k != "CALDP_CONFIG"}
    values["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    values.update(extra)
    return values


def test_a_relative_crds_path_is_made_absolute_once(env, source, tmp_path):
    record = tmp_path / "record.jsonl"
    cache = Path(env["CRDS_PATH"])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    relative = os.path.relpath(cache, cwd)
    out = tmp_path / "out"
    result = run_caldp_process(
        ["j8bt05njq", f"file:{source}", f"file:{out}"],
        command_env(env, CRDS_PATH=relative, STANDIN_RECORD=str(record)), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert seen
    for entry in seen:
        env_seen = entry.get("env", entry)
        assert env_seen["CRDS_PATH"] == str(cache), env_seen
        assert Path(env_seen["jref"]).is_absolute() and Path(env_seen["jref"]).is_dir()


def test_a_deleted_current_directory_exits_2_with_a_cause(env, source, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    out = tmp_path / "out"
    values = command_env(env)
    values.pop("CALDP_HOME")
    command = " ".join(f"'{c}'" for c in caldp_process_command())
    script = f'cd "{gone}" && rmdir "{gone}" && exec {command} j8bt05njq file:{source} file:{out}'
    result = subprocess.run(["bash", "-c", script], env={**values, "CALDP_PYTHON": values.get("CALDP_PYTHON") or
                                                         shutil.which("python3") or "python3"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "the current directory no longer exists" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "data").exists()


def test_a_non_utf8_output_path_exits_2_up_front(env, source, tmp_path):
    out = os.fsdecode(bytes(tmp_path) + b"/out\xff")
    before = digest(source)
    result = run_caldp_process(["j8bt05njq", f"file:{source}", f"file:{out}"], command_env(env), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "output location file:" in result.stderr and "out\\xff is not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(os.fsencode(out))
    assert_no_workdir_left(env)
    assert digest(source) == before


def test_a_non_utf8_input_path_exits_2_with_a_dataset_error(env, source, tmp_path):
    weird = Path(os.fsdecode(bytes(tmp_path) + b"/in\xff"))
    shutil.copytree(source, weird)
    out = tmp_path / "out"
    result = run_caldp_process(["j8bt05njq", f"file:{weird}", f"file:{out}"], command_env(env), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "in\\xff is not valid UTF-8" in result.stderr and "Traceback" not in result.stderr
    error = (out / "messages" / "dataset-error" / "j8bt05njq").read_text().splitlines()
    assert error[1].startswith("exit: 2") and "is not valid UTF-8" in error[2] and len(error) == 3
    assert not (out / "data").exists()
    assert_next_dataset_unaffected(source, out, env)
