"""Post-SM4 WFC on the true raw geometry: a full two-chip frame and a -2K subarray.

The post-SM4 path (bias shift, cross talk, destriping) has no calacs.e run
in ../shared to compare with; these tests check the geometry and keyword
bookkeeping exactly, and the science result against the synthetic truth
(the sky level comes back, the injected stripes and bias levels go away).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from .. import calacs_synth as syn
from caldp.native import calibrate_exposure
from caldp.native.acs.postsm4 import MAGIC_COLS, MAGIC_ROWS


@pytest.fixture(scope="module")
def full_frame(tmp_path_factory):
    work = tmp_path_factory.mktemp("wfc_full")
    data = syn.make_wfc_full_frame(work)
    lines: list[str] = []
    flt = calibrate_exposure(data.raw, jref=data.jref, log=lines.append)
    return data, flt, lines


def test_full_frame_geometry_and_headers(full_frame):
    data, flt, _ = full_frame
    with fits.open(flt) as h:
        assert [(x.name, x.ver) for x in h] == [("PRIMARY", 1), ("SCI", 1), ("ERR", 1), ("DQ", 1),
                                                  ("SCI", 2), ("ERR", 2), ("DQ", 2)]
        for ver, chip in ((1, 2), (2, 1)):
            sci = h["SCI", ver]
            assert sci.data.shape == (2048, 4096) and sci.data.dtype.kind == "f"
            assert h["DQ", ver].data.dtype.itemsize == 2
            assert sci.header["CCDCHIP"] == chip
            assert (sci.header["LTV1"], sci.header["LTV2"]) == (0.0, 0.0)
            assert (sci.header["SIZAXIS1"], sci.header["SIZAXIS2"]) == (4096, 2048)
            assert sci.header["CRPIX1"] == 76.0
            assert sci.header["CRPIX2"] == (100.0 if chip == 2 else 80.0)
            assert sci.header["BUNIT"] == "ELECTRONS"
            assert sci.header["PHOTMODE"] == "ACS WFC1 F606W MJD#55500.3000"
            assert sci.header["NGOODPIX"] > 8_000_000
        p = h[0].header
        for key in ("DQICORR", "BIASCORR", "BLEVCORR", "DARKCORR", "FLATCORR", "PHOTCORR"):
            assert p[key] == "COMPLETE", key
        assert p["DARKTIME"] == 122.0                     # post-SM4 unflashed overhead
        history = list(p["HISTORY"])
        assert "DESTRIPE: number of rows fixed per amp: 2047" in history
        assert "DESTRIPE: number of rows skipped per amp: 21" in history
        assert "BLEVCORR complete; bias level from overscan was subtracted." in history


def test_full_frame_bias_and_stripes_removed(full_frame):
    data, flt, lines = full_frame
    dark = 0.002 * 122.0
    with fits.open(flt) as h:
        for ver in (1, 2):
            sci = h["SCI", ver].data.astype(np.float64)
            for half in (sci[:, :2048], sci[:, 2048:]):       # one amplifier each
                assert np.median(half) == pytest.approx(data.truth["sky_e"] - dark, abs=0.6)
            assert np.std(np.median(sci, axis=1)) < 0.6      # stripes were ~3 e- rms
        for amp in "ABCD":
            injected = data.truth["level_dn"][amp] * data.truth["gain"][amp]
            assert h[0].header[f"BIASLEV{amp}"] == pytest.approx(injected, abs=25.0)
    assert sum("Bias shift correcting" in line for line in lines) == 8
    assert any("bias-shift and cross talk corrections" in line for line in lines)


def test_full_frame_data_quality(full_frame):
    _, flt, _ = full_frame
    with fits.open(flt) as h:
        dq1, dq2 = h["DQ", 1].data, h["DQ", 2].data
        # A-to-D saturated run: raw row 100+chip, columns 500-509 (24 prescan columns trimmed)
        assert np.all(dq1[102, 476:486] & 2048) and np.all(dq2[101 - 20, 476:486] & 2048)
        # BPIXTAB rows: chip 1 -> SCI,2 only; chip 2 -> SCI,1 only; -999 -> both
        assert np.all(dq2[199, 99:149] & 4) and not np.any(dq1[199, 99:149] & 4)
        assert np.all(dq1[9:39, 299] & 16) and not np.any(dq2[9:39, 299] & 16)
        assert np.all(dq1[1999, 3999:] & 32) and np.all(dq2[1999, 3999:] & 32)
        err = h["ERR", 1].data
        assert np.all(err > 0) and np.median(err) == pytest.approx(np.sqrt(120 + 4.3 ** 2), rel=0.05)


def test_supported_subarray_bias_shift(tmp_path):
    rng = np.random.default_rng(7)
    nx, ny = 2072, 2068
    level = 2200.0
    sci = level + rng.normal(0, 2, (ny, nx))
    sci[20:, 24:] += 80.0 / syn.WFC_GAIN["A"]           # illuminated region, chip 1 amp A
    refs = tmp_path / "refs"
    refs.mkdir()
    primary = syn.acs_primary("WFC", "jsynsub1q", CCDAMP="A", SUBARRAY=True, APERTURE="WFC1A-2K",
                              EXPSTART=58000.5, EXPEND=58000.501, BIASCORR="PERFORM",
                              BLEVCORR="PERFORM", CCDTAB="jref$s_ccd.fits",
                              OSCNTAB="jref$s_osc.fits", BIASFILE="jref$s_bia.fits",
                              SATUFILE="jref$s_sat.fits")
    raw = syn.write_raw(tmp_path / "jsynsub1q_raw.fits", primary,
                        [syn.RawChip(sci=sci, chip=1, ltv=(24.0, 20.0))])
    row = {"CCDAMP": "A", "CCDCHIP": 1, "CCDGAIN": 2.0, "AMPX": 2048, "AMPY": 0,
           "OVRHUFLS": 22.0, "CCDBIASA": level, "ATODGNA": syn.WFC_GAIN["A"],
           "READNSEA": syn.WFC_RN["A"]}
    syn.write_ccdtab(refs / "s_ccd.fits", [row])
    syn.write_oscntab(refs / "s_osc.fits", [{"CCDAMP": "A", "CCDCHIP": 1, "NX": nx, "NY": ny,
                                             "TRIMX1": 24, "TRIMY1": 20, "VX1": 30, "VX2": 2000,
                                             "VY1": 3, "VY2": 18, "BIASSECTA1": 19,
                                             "BIASSECTA2": 24}])
    zeros = np.zeros((ny, nx), np.float32)
    syn.write_image_ref(refs / "s_bia.fits", [syn.RefPlane(zeros, 1, (24.0, 20.0))], "bias")
    syn.write_image_ref(refs / "s_sat.fits", [syn.RefPlane(zeros, 1, (24.0, 20.0))], "sat",
                        sci_constant=70000.0)
    lines: list[str] = []
    flt = calibrate_exposure(raw, jref=str(refs) + "/", log=lines.append)
    assert "This subarray data is supported for the bias shift correction." in lines
    assert "Performing bias-shift correction for subarray data." in lines
    with fits.open(flt) as h:
        out = h["SCI", 1].data
        assert out.shape == (2048, 2048)
        assert h[0].header["DARKTIME"] == 100.0 + 22.0          # supported subarray, Cycle 24+
        meanblev = h["SCI", 1].header["MEANBLEV"]
        assert meanblev == pytest.approx(level * syn.WFC_GAIN["A"], abs=15.0)
        assert h[0].header["BIASLEVA"] == pytest.approx(meanblev, rel=1e-6)
        assert np.median(out) == pytest.approx(80.0, abs=1.0)
    # The magic square (virtual overscan x prescan) ends at zero mean: it was the bias.
    raw_e = (sci * np.float32(syn.WFC_GAIN["A"]))[::-1]
    assert raw_e[MAGIC_ROWS, MAGIC_COLS].mean() == pytest.approx(meanblev, abs=15.0)


def test_full_frame_without_ds_int_is_destriped_only():
    from caldp.native.acs.postsm4 import full_frame_blevcorr
    rng = np.random.default_rng(11)
    chips = [2200.0 + rng.normal(0, 2, (syn.WFC_NY, syn.WFC_NX)).astype(np.float32)
             for _ in range(2)]
    before = [c.copy() for c in chips]
    res = full_frame_blevcorr(chips[0], chips[1], bias_shift=False)
    assert res.messages[0].startswith("WFC readout type/gain not set as needed")
    assert not any("Bias shift" in m for m in res.messages)
    for k in range(2):
        assert np.array_equal(chips[k], before[k])               # inputs untouched
        assert abs(float(np.median(res.chips[k]))) < 0.5
        assert res.meanblev[k] == pytest.approx(2200.0, abs=0.5)
    assert res.blev == pytest.approx([2200.0] * 4, abs=0.5)


def test_acs_decides_the_amplifier_geometry_of_each_chip():
    from caldp.native.acs.acsccd import default_bias_amp, overscan_amps, wfc_slot_order
    from caldp.native.detector import ccd

    assert wfc_slot_order("WFC", 2) == ccd.CD_SLOTS
    assert wfc_slot_order("WFC", 1) == ccd.AB_SLOTS
    assert wfc_slot_order("HRC", 1) is None
    assert overscan_amps("WFC", "ABCD", 2) == "CD" and overscan_amps("WFC", "ABCD", 1) == "AB"
    assert overscan_amps("WFC", "B", 1) == "B" and overscan_amps("HRC", "AD", 1) == "AD"
    assert default_bias_amp("WFC", "ABCD", 2) == 2 and default_bias_amp("WFC", "ABCD", 1) == 0
    assert default_bias_amp("WFC", "C", 2) == 2 and default_bias_amp("HRC", "BC", 1) == 1
