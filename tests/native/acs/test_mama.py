"""SBC (MAMA) path on a small synthetic frame: linearity limits, flags, failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from .. import calacs_synth as syn
from caldp.native import CalibrationError, calibrate_exposure


def sbc_dataset(work: Path, globrate=500.0, counts=None, **switches):
    refs = work / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    sci = rng.poisson(3.0, (64, 64)).astype(float) if counts is None else counts
    settings = dict(EXPTIME=100.0, APERTURE="SBC", FILTER1="F165LP", FILTER2="N/A",
                    EXPSTART=56000.25, DQICORR="PERFORM", GLINCORR="PERFORM",
                    LFLGCORR="PERFORM", FLATCORR="PERFORM", PHOTCORR="PERFORM",
                    BPIXTAB="jref$m_bpx.fits", MLINTAB="jref$m_lin.fits",
                    PFLTFILE="jref$m_pfl.fits", DFLTFILE="N/A", LFLTFILE="N/A",
                    IMPHTTAB="jref$m_imp.fits")
    settings.update(switches)
    primary = syn.acs_primary("SBC", "jsynsbc1q", **settings)
    for key in ("CCDAMP", "CCDGAIN", "DARKTIME"):
        primary.pop(key, None)
    raw = syn.write_raw(work / "jsynsbc1q_raw.fits", primary,
                        [syn.RawChip(sci=sci, chip=1, ltv=(0.0, 0.0),
                                     extra={"GLOBRATE": globrate})])
    syn.write_bpixtab(refs / "m_bpx.fits", [(1, 1, 64, 1, 4), (10, 10, 3, 2, 16)])
    syn.write_mlintab(refs / "m_lin.fits", global_limit=200000.0, local_limit=0.5, expand=1.5)
    syn.write_image_ref(refs / "m_pfl.fits", [syn.RefPlane(np.full((64, 64), 1.25, np.float32), 1)],
                        "flat")
    syn.write_imphttab(refs / "m_imp.fits", [("acs,sbc,f165lp,mjd#", [52000.0, 60000.0],
                                               [3.0e-16, 3.1e-16], 1758.0, 55.0)])
    return raw, str(refs) + "/", sci


def test_sbc_steps_against_direct_formulas(tmp_path):
    counts = np.full((64, 64), 4.0)
    counts[30, 30] = 80.0                     # above LOCAL_LIMIT * EXPTIME = 50
    raw, jref, sci = sbc_dataset(tmp_path, counts=counts, globrate=10000.0)
    flt = calibrate_exposure(raw, jref=jref, log=None)
    tau = 5.27e-7
    x = 10000.0
    for _ in range(3):
        e = np.exp(-tau * x)
        x = x + (10000.0 - x * e) / ((1 - tau * x) * e)
    ratio = np.float32(x / 10000.0)
    with fits.open(flt) as h:
        s, e, d = h["SCI", 1].data, h["ERR", 1].data, h["DQ", 1].data
        expected = (ratio * counts.astype(np.float32)) / np.float32(1.25)
        assert np.allclose(s, expected, rtol=1e-6)
        assert np.allclose(e, np.maximum(1.0, np.sqrt(ratio * counts.astype(np.float32))) / 1.25,
                           rtol=1e-6)
        assert np.all(d[0, :] & 4) and np.all(d[9:12, 9] & 16)
        assert d[30, 30] & 256 and d[31, 31] & 256 and not d[32, 32] & 256
        assert h["SCI", 1].header["GLOBLIM"] == "NOT-EXCEEDED"
        assert h["SCI", 1].header["BUNIT"] == "ELECTRONS"
        assert h[0].header["GLINCORR"] == "COMPLETE"


def test_global_limit_exceeded_leaves_counts_uncorrected(tmp_path):
    raw, jref, sci = sbc_dataset(tmp_path, globrate=300000.0)
    flt = calibrate_exposure(raw, jref=jref, log=None)
    with fits.open(flt) as h:
        assert h["SCI", 1].header["GLOBLIM"] == "EXCEEDED"
        assert np.allclose(h["SCI", 1].data, sci / 1.25)


def test_mama_bpixtab_is_required(tmp_path):
    raw, jref, _ = sbc_dataset(tmp_path)
    (Path(jref) / "m_bpx.fits").unlink()
    with pytest.raises(CalibrationError, match="One reference file was missing: BPIXTAB"):
        calibrate_exposure(raw, jref=jref, log=None)


def test_dummy_mlintab_row_skips_linearity(tmp_path):
    raw, jref, sci = sbc_dataset(tmp_path, globrate=10000.0)
    with fits.open(Path(jref) / "m_lin.fits", mode="update") as h:
        h[0].header["PEDIGREE"] = "DUMMY"
    flt = calibrate_exposure(raw, jref=jref, log=None)
    assert fits.getval(flt, "GLINCORR") == "SKIPPED"
    assert np.allclose(fits.getdata(flt, 1), sci / 1.25)


def test_nothing_to_do_writes_no_product(tmp_path):
    raw, jref, _ = sbc_dataset(tmp_path, DQICORR="OMIT", GLINCORR="OMIT", LFLGCORR="OMIT",
                               FLATCORR="OMIT", PHOTCORR="OMIT")
    from caldp.native import NothingToDo
    with pytest.raises(NothingToDo):
        calibrate_exposure(raw, jref=jref, log=None)
    assert not (tmp_path / "jsynsbc1q_flt.fits").exists()
