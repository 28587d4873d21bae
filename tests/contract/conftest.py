"""Fixtures of the failure-matrix tests: stand-in programs and a private CALDP_HOME, and real inputs.

A module may define its own `env` (tests/contract/test_process.py records the stand-ins' calls).
"""

import os

import pytest

from ..conftest import copy_inputs


@pytest.fixture
def env(crds_env, standin_bin, tmp_path):
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    home = tmp_path / "home"
    home.mkdir()
    values = {**os.environ, "PATH": standin_bin.path, "CALDP_HOME": str(home), "CALDP_CAL": "hstcal",
              "STANDIN_PRODUCTS": "1"}
    for key in ("CALDP_SIMULATE_ERROR", "CALDP_TEST_PAUSE_PUBLISH"):
        values.pop(key, None)
    return values


@pytest.fixture
def source(tmp_path):
    return copy_inputs(["j8bt05njq_raw.fits", "jbz504eoq_raw.fits"], tmp_path / "in", "acs")
