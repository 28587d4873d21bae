"""Stage 2 with the real drizzlepac runastrodriz, offline, after the native calibration."""

import json
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ..conftest import HRC, SBC_ASSOCIATION, copy_inputs, offline_crds_env, run_caldp_process

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def needs_runastrodriz():
    if shutil.which("runastrodriz") is None:
        pytest.skip("runastrodriz is not installed (pip install 'caldp[cal]')")


def prepare_hrc_copy(path):
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["SATUFILE"] = "jref$synth_hrc_sat.fits"
        hdul[0].header["DARKTIME"] = hdul[0].header["EXPTIME"]


def process(name, source, out, cache, tmp_path):
    env = {**offline_crds_env(cache), "CALDP_CAL": "native", "CALDP_HOME": str(tmp_path)}
    return run_caldp_process([name, f"file:{source}", f"file:{out}"], env, cwd=tmp_path, timeout=600)


def check_drizzled(product, flts):
    with fits.open(product) as hdul:
        assert [h.name for h in hdul][:4] == ["PRIMARY", "SCI", "WHT", "CTX"]
        sci, wht = hdul["SCI"].data, hdul["WHT"].data
        covered = wht > 0
        assert covered.mean() > 0.5 and np.isfinite(sci[covered]).all()
        assert hdul[0].header["DRIZCORR"] == "COMPLETE"
        assert hdul["SCI"].header["CTYPE1"].startswith("RA---")
    for flt in flts:
        header = fits.getheader(flt, "SCI")
        assert header["WCSNAME"].startswith("IDC_")  # the distortion-corrected WCS runastrodriz writes


@pytest.mark.parametrize("name", HRC)
def test_hrc_singletons_are_drizzled(acs_ref_cache, tmp_path, name):
    source = copy_inputs([f"{name}_raw.fits"], tmp_path / "in", "acs")
    prepare_hrc_copy(source / f"{name}_raw.fits")
    out = tmp_path / "out"
    result = process(name, source, out, acs_ref_cache, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    products = out / "data" / "acs" / name
    check_drizzled(products / f"{name}_drz.fits", [products / f"{name}_flt.fits"])
    log = (products / "logs" / "process.log").read_text()
    assert "absolute astrometric alignment skipped" in log
    assert "runastrodriz -n 1" in log or f"runastrodriz -n 1 {name}_raw.fits" in log
    metrics = json.loads((products / "logs" / "metrics.json").read_text())
    kinds = {p["kind"]: p for p in metrics["programs"]}
    assert kinds["pypi"]["max_rss_kb"] > 50_000 and kinds["pypi"]["wall_seconds"] > 0
    provenance = json.loads((products / "logs" / "provenance.json").read_text())
    assert provenance["stage2"] == "runastrodriz" and "drizzlepac" in provenance["versions"]


def test_sbc_association_is_drizzled(acs_ref_cache, tmp_path):
    source = copy_inputs(SBC_ASSOCIATION, tmp_path / "in", "acs")
    out = tmp_path / "out"
    result = process("jbz504020", source, out, acs_ref_cache, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    products = out / "data" / "acs" / "jbz504020"
    members = [products / f"jbz504e{m}q_flt.fits" for m in "lmn"]
    check_drizzled(products / "jbz504021_drz.fits", members)
    assert (products / "jbz504021_sfl.fits").exists()
