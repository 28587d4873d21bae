"""The calacs.e-compatible command line: options, exit codes, messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..calacs_helpers import stage_golden
from caldp.native import VERSION_STRING
from caldp.native.acs.cli import main


@pytest.mark.parametrize("option", ["-r", "--version", "-tr"])
def test_version_option(option, capsys):
    assert main([option]) == 0
    assert capsys.readouterr().out.strip() == f"Current version: {VERSION_STRING}"


def test_no_input_is_an_error(capsys):
    assert main([]) == 2
    assert "syntax:" in capsys.readouterr().out


def test_unknown_option_is_an_error(capsys):
    assert main(["-x", "a_raw.fits"]) == 2
    assert main(["--frobnicate", "a_raw.fits"]) == 2


def test_missing_input_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["nothere_raw.fits"]) == 2
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        "ERROR: Input file `nothere_raw.fits' not found."


def test_calacs_options_are_accepted_and_quiet_keeps_the_trailer(tmp_path, monkeypatch, capsys):
    work, jref = stage_golden("acs-sbc-jbz504eoq", tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("jref", jref)
    assert main(["-t", "-s", "-v", "-q", "-1", "--nthreads", "4", "jbz504eoq_raw.fits"]) == 0
    assert capsys.readouterr().out == ""
    assert (work / "jbz504eoq_flt.fits").exists()
    assert "CALACS completion for jbz504eoq_raw.fits" in (work / "jbz504eoq.tra").read_text()


def test_module_entry_point_streams_and_exits_like_calacs(tmp_path):
    work, jref = stage_golden("acs-sbc-jbz504eoq", tmp_path)
    env = {"jref": jref, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run([sys.executable, "-m", "caldp.native", "jbz504eoq_raw.fits"], cwd=work,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "CALACS completion for jbz504eoq_raw.fits"
    again = subprocess.run([sys.executable, "-m", "caldp.native", "jbz504eoq_raw.fits"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert again.stdout.splitlines()[-1] == "ERROR: Output file `jbz504eoq_flt.fits' already exists."
