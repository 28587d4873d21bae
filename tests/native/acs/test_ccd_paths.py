"""End-to-end CCD runs on synthetic frames, checked against a direct formulation.

``direct_ccd_chip`` below recomputes what calacs.e does to one chip of a
classic (HRC / pre-SM4 WFC / unsupported-subarray) exposure, row by row and
step by step, from the same synthetic raw and references; the product of
caldp.native must agree with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from .. import calacs_synth as syn
from caldp.native import CalibrationError, calibrate_exposure
from caldp.native.acs.cli import main


@dataclass
class ChipSpec:
    chip: int
    amps: str                 # amplifiers reading this chip, in CCDAMP order
    nx: int
    ny: int
    ltv: tuple[float, float]
    trimx: tuple[int, int]
    trimy: tuple[int, int]
    biassecta: tuple[int, int]      # 1-based, as in OSCNTAB
    biassectb: tuple[int, int]
    vx: tuple[int, int] = (0, 0)
    vy: tuple[int, int] = (0, 0)
    ampx: int = 0             # CCDTAB AMPX (trimmed coordinates)
    ltm: tuple[float, float] = (1.0, 1.0)
    level_dn: float = 2000.0


GAINS = {"A": 2.0, "B": 1.9, "C": 2.1, "D": 2.2}
NOISE = {"A": 4.0, "B": 4.5, "C": 5.0, "D": 5.5}


def build_dataset(work: Path, detector: str, ccdamp: str, specs: list[ChipSpec], *,
                  rootname="jsynccd1q", expstart=53000.5, subarray=False, aperture="WFC",
                  seed=3, extra=None, ref_offsets=None) -> tuple[Path, str, dict]:
    """Raw + references for the given chips; returns (raw, jref, arrays used)."""
    rng = np.random.default_rng(seed)
    refs = work / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    raw_chips, bias, sat, dark_p, flat_p = [], [], [], [], []
    truth = {}
    for s in specs:
        # Reference cut-outs may start inside a larger reference (subarrays).
        ox, oy = (ref_offsets or {}).get(s.chip, (0, 0))
        sci = np.full((s.ny, s.nx), s.level_dn) + rng.normal(0, 2.0, (s.ny, s.nx))
        sci += 0.02 * np.arange(s.ny)[:, None]                       # a slow drift along the chip
        tx = slice(s.trimx[0], s.nx - s.trimx[1])
        ty = slice(s.trimy[0], s.ny - s.trimy[1])
        sci[ty, tx] += rng.uniform(20, 400, (ty.stop - ty.start, tx.stop - tx.start))
        sci[ty.start + 2, tx.start + 3] = 65535.0                 # A-to-D saturated pixel
        superbias = rng.normal(0, 1.5, (s.ny + oy, s.nx + ox)).astype(np.float32)
        bias_err = rng.uniform(0.1, 0.5, superbias.shape).astype(np.float32)
        satmap = np.full(superbias.shape, 60000.0, np.float32)
        satmap[oy + ty.start + 4, ox + tx.start + 5] = 10.0        # one pixel "saturates" at 10 e-
        nyt, nxt = ty.stop - ty.start, tx.stop - tx.start
        drk = rng.uniform(0.001, 0.02, (nyt + oy, nxt + ox)).astype(np.float32)
        drk_dq = np.zeros(drk.shape, np.int16)
        drk_dq[oy + 1, ox + 1] = 16
        pfl = rng.uniform(0.9, 1.1, (nyt + oy, nxt + ox)).astype(np.float32)
        pfl_dq = np.zeros(pfl.shape, np.int16)
        pfl_dq[oy + 3, ox + 2] = 32
        pfl[oy + 5, ox + 6] = 0.0                                    # a dead flat pixel
        ref_ltv = (s.ltv[0] + ox, s.ltv[1] + oy)
        raw_chips.append(syn.RawChip(sci=sci, chip=s.chip, ltv=s.ltv, ltm=s.ltm))
        bias.append(syn.RefPlane(superbias, s.chip, ref_ltv, s.ltm, err=bias_err))
        sat.append(syn.RefPlane(satmap, s.chip, ref_ltv, s.ltm))
        trimmed_ltv = (s.ltv[0] - s.trimx[0], s.ltv[1] - s.trimy[0])
        ref2_ltv = (trimmed_ltv[0] + ox, trimmed_ltv[1] + oy)
        dark_p.append(syn.RefPlane(drk, s.chip, ref2_ltv, s.ltm, err=drk * 0.1, dq=drk_dq))
        flat_p.append(syn.RefPlane(pfl, s.chip, ref2_ltv, s.ltm, err=np.full(pfl.shape, 0.01,
                                                                              np.float32), dq=pfl_dq))
        truth[s.chip] = dict(raw=np.clip(np.rint(sci), 0, 65535), bias=superbias[oy:, ox:],
                             bias_err=bias_err[oy:, ox:], sat=satmap[oy:, ox:], dark=drk[oy:, ox:],
                             dark_dq=drk_dq[oy:, ox:], flat=pfl[oy:, ox:], flat_dq=pfl_dq[oy:, ox:],
                             same_size=(ox, oy) == (0, 0))
    primary = syn.acs_primary(
        detector, rootname, CCDAMP=ccdamp, EXPSTART=expstart, EXPEND=expstart + 0.001,
        SUBARRAY=subarray, APERTURE=aperture, FILTER1="F606W", FILTER2="CLEAR2L",
        DQICORR="PERFORM", BIASCORR="PERFORM", BLEVCORR="PERFORM", DARKCORR="PERFORM",
        FLATCORR="PERFORM", PHOTCORR="PERFORM", CCDTAB="jref$c_ccd.fits",
        OSCNTAB="jref$c_osc.fits", BPIXTAB="jref$c_bpx.fits", BIASFILE="jref$c_bia.fits",
        SATUFILE="jref$c_sat.fits", DARKFILE="jref$c_drk.fits", PFLTFILE="jref$c_pfl.fits",
        DFLTFILE="N/A", LFLTFILE="N/A", IMPHTTAB="jref$c_imp.fits", DARKTIME=100.0,
        **(extra or {}))
    raw = syn.write_raw(work / f"{rootname}_raw.fits", primary, raw_chips)
    ccd_rows, osc_rows = [], []
    for s in specs:
        row = {"CCDAMP": ccdamp, "CCDCHIP": s.chip, "CCDGAIN": 2.0, "AMPX": s.ampx, "AMPY": 0,
               "ATODSAT": 65535, "OVRHUFLS": 30.0, "OVRHFLS": 33.0}
        for a in "ABCD":
            row[f"CCDBIAS{a}"] = s.level_dn
            row[f"ATODGN{a}"] = GAINS[a]
            row[f"READNSE{a}"] = NOISE[a]
        ccd_rows.append(row)
        osc_rows.append({"CCDAMP": ccdamp, "CCDCHIP": s.chip, "NX": s.nx, "NY": s.ny,
                         "TRIMX1": s.trimx[0], "TRIMX2": s.trimx[1], "TRIMY1": s.trimy[0],
                         "TRIMY2": s.trimy[1], "VX1": s.vx[0], "VX2": s.vx[1], "VY1": s.vy[0],
                         "VY2": s.vy[1], "BIASSECTA1": s.biassecta[0], "BIASSECTA2": s.biassecta[1],
                         "BIASSECTB1": s.biassectb[0], "BIASSECTB2": s.biassectb[1]})
    syn.write_ccdtab(refs / "c_ccd.fits", ccd_rows)
    syn.write_oscntab(refs / "c_osc.fits", osc_rows)
    syn.write_bpixtab(refs / "c_bpx.fits", [(3, 4, 6, 1, 4, specs[0].chip), (7, 2, 5, 2, 16, -999),
                                            (1, 1, 1, 1, 8, 99)])
    syn.write_image_ref(refs / "c_bia.fits", bias, "Synthetic bias")
    syn.write_image_ref(refs / "c_sat.fits", sat, "Synthetic saturation map")
    syn.write_image_ref(refs / "c_drk.fits", dark_p, "Synthetic dark")
    syn.write_image_ref(refs / "c_pfl.fits", flat_p, "Synthetic flat")
    syn.write_imphttab(refs / "c_imp.fits", [
        (f"acs,{'wfc1' if detector == 'WFC' else detector.lower()},f606w,mjd#",
         [52000.0, 56000.0], [1.0e-19, 1.4e-19], 5900.0, 670.0)])
    return raw, str(refs) + "/", truth


def direct_ccd_chip(spec: ChipSpec, t: dict, darktime: float, bpix_rows, detector="WFC"):
    """calacs.e's classic CCD chain for one chip, written out step by step."""
    s = spec
    raw = t["raw"].astype(np.float32)
    ny, nx = raw.shape
    dq = np.zeros((ny, nx), np.int16)
    dq[raw >= 65535] |= 2048
    for pix1, pix2, length, axis, value, chip in bpix_rows:
        if chip not in (-999, s.chip):
            continue
        # calacs.e shifts by the zero-indexed LTV (LTV + LTM - 1) and ignores binning
        x_start = int(pix1 - 1 + s.ltv[0] + s.ltm[0] - 1)
        y_start = int(pix2 - 1 + s.ltv[1] + s.ltm[1] - 1)
        for k in range(length):
            x = x_start + (k if axis == 1 else 0)
            y = y_start + (k if axis == 2 else 0)
            if 0 <= x < nx and 0 <= y < ny:
                dq[y, x] |= value
    sci = raw - t["bias"]
    err = np.sqrt(np.float32(0) + t["bias_err"] * t["bias_err"])
    # gain: amplifier halves split at AMPX + LTV1 (whole row for one amplifier)
    split = nx if s.ampx == 0 or s.ampx + int(s.ltv[0]) >= nx - s.ltv[0] else s.ampx + int(s.ltv[0])
    gain = np.empty(nx, np.float32)
    gain[:split] = GAINS[s.amps[0]]
    gain[split:] = GAINS[s.amps[-1]]
    sci = sci * gain
    err = err * gain
    out = sci.astype(np.float64)
    ty0, ty1 = s.trimy[0], ny - s.trimy[1]
    sizey = ty1 - ty0
    for k, amp in enumerate(s.amps):
        a = (s.biassecta[0] - 1, s.biassecta[1] - 1)
        b = (s.biassectb[0] - 1, s.biassectb[1] - 1)
        if len(s.amps) == 1:
            sections = [a, b] if b[1] > 0 else [a]
        else:
            sections = [a] if k == 0 else [b]
        cols = [c for lo, hi in sections for c in range(lo, hi + 1)]
        levels = np.array([np.median(sci[j + ty0, cols].astype(np.float64)) for j in range(sizey)])
        mean = levels.mean()
        sd = min(levels.std(ddof=1), math.sqrt(mean))
        keep = levels <= abs(int(3 * sd + mean))
        mean2 = levels[keep].mean()
        keep &= levels <= abs(int(float(np.float32(3) * np.float32(NOISE[amp])) + mean2))
        x = np.arange(sizey)[keep] - sizey // 2
        slope, intercept = np.polyfit(x, levels[keep], 1)
        dslope = 0.0
        if not (s.vy[0] - 1 <= 0 and s.vy[1] - 1 <= 0):
            vcols = np.arange(s.vx[0] - 1, s.vx[1])
            med = [np.median(sci[s.vy[0] - 1:s.vy[1], c].astype(np.float64)) for c in vcols]
            dslope = np.polyfit(vcols, med, 1)[0]
        zero = (sections[0][0] + sections[0][1]) / 2.0
        x0 = s.trimx[0] + (s.ampx if k == 1 else 0)
        x1 = s.ampx + s.trimx[0] if (k == 0 and len(s.amps) == 2) else nx - s.trimx[1]
        for j in range(ty0, ty1):
            for i in range(x0, x1):
                out[j, i] = (out[j, i] - ((j - sizey // 2) * slope + intercept)) - (i - zero) * dslope
    sci = out.astype(np.float32)
    tx0, tx1 = s.trimx[0], nx - s.trimx[1]
    region = (slice(ty0, ty1), slice(tx0, tx1))
    # The saturation image is compared from the corner given by LTV/LTM in
    # unbinned pixels (calacs.e's GetCorner), over the trimmed size.
    # A subarray is compared from its own first pixel with the saturation image
    # at the subarray's offset (the truth arrays start there).
    cx = abs(round((1 / s.ltm[0] - 1) - s.ltv[0] / s.ltm[0])) if t["same_size"] else 0
    cy = abs(round((1 / s.ltm[1] - 1) - s.ltv[1] / s.ltm[1])) if t["same_size"] else 0
    satreg = (slice(cy, cy + sizey), slice(cx, cx + tx1 - tx0))
    dq[satreg] |= np.where(sci[satreg] > t["sat"][satreg], 256, 0).astype(np.int16)
    rn = np.empty(nx, np.float32)
    rn[:split] = NOISE[s.amps[0]]
    rn[split:] = NOISE[s.amps[-1]]
    err = np.sqrt((np.maximum(sci, 0) + rn * rn) + err * err)
    sci, err, dq = sci[region], err[region], dq[region]
    k = np.float32(darktime)
    sci = sci - k * t["dark"]
    err = np.sqrt(err * err + (k * t["dark"] * np.float32(0.1)) ** 2)
    dq = dq | t["dark_dq"]
    f = t["flat"]
    zero = f == 0
    fs = np.where(zero, 1, f)
    new_sci = np.where(zero, sci, sci / fs)
    b_expr = ((np.float32(0.01) * sci) / fs) / fs
    new_err = np.where(zero, err, np.sqrt((err / fs) ** 2 + b_expr ** 2))
    dq = dq | t["flat_dq"] | np.where(zero, 512, 0).astype(np.int16)
    return new_sci, new_err, dq


BPIX = [(3, 4, 6, 1, 4, None), (7, 2, 5, 2, 16, -999), (1, 1, 1, 1, 8, 99)]


def _bpix_for(specs):
    return [(r[0], r[1], r[2], r[3], r[4], specs[0].chip if r[5] is None else r[5]) for r in BPIX]


def check_against_direct(flt: Path, specs, truth, darktime, detector):
    with fits.open(flt) as h:
        for extver, s in enumerate(specs, start=1):
            sci, err, dq = direct_ccd_chip(s, truth[s.chip], darktime, _bpix_for(specs), detector)
            assert np.allclose(h["SCI", extver].data, sci, rtol=1e-6, atol=2e-3), extver
            assert np.allclose(h["ERR", extver].data, err, rtol=1e-5), extver
            assert np.array_equal(h["DQ", extver].data, dq), extver
            assert h["SCI", extver].header["CCDCHIP"] == s.chip


WFC_SMALL = [
    ChipSpec(chip=2, amps="CD", nx=176, ny=80, ltv=(24.0, 0.0), trimx=(24, 24), trimy=(0, 20),
             biassecta=(19, 24), biassectb=(153, 158), vx=(30, 146), vy=(63, 78), ampx=64,
             level_dn=2210.0),
    ChipSpec(chip=1, amps="AB", nx=176, ny=80, ltv=(24.0, 20.0), trimx=(24, 24), trimy=(20, 0),
             biassecta=(19, 24), biassectb=(153, 158), vx=(30, 146), vy=(3, 18), ampx=64,
             level_dn=2190.0),
]


def test_pre_sm4_wfc_two_chips_four_amps(tmp_path):
    raw, jref, truth = build_dataset(tmp_path, "WFC", "ABCD", WFC_SMALL)
    lines: list[str] = []
    flt = calibrate_exposure(raw, jref=jref, log=lines.append)
    check_against_direct(flt, WFC_SMALL, truth, 100.0, "WFC")
    with fits.open(flt) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCI", "ERR", "DQ", "SCI", "ERR", "DQ"]
        assert h["SCI", 1].data.shape == (60, 128)
        assert h["SCI", 2].header["LTV2"] == 0.0 and h["SCI", 2].header["CRPIX2"] == 80.0
        assert h["SCI", 1].header["SIZAXIS1"] == 128
        assert h[0].header["DARKTIME"] == 100.0            # pre-SM4: no overhead
        assert h["SCI", 1].header["PHOTMODE"] == "ACS WFC1 F606W MJD#53000.5000"
        for amp in "ABCD":
            assert h[0].header[f"BIASLEV{amp}"] > 4000
        assert "BLEVCORR includes correction for drift along lines." in h[0].header["HISTORY"]
    assert sum("Computed a fit" in line for line in lines) == 4


def test_unsupported_post_sm4_subarray_uses_the_overscan_fit(tmp_path):
    spec = [ChipSpec(chip=1, amps="A", nx=88, ny=60, ltv=(24.0 - 300, -500.0), trimx=(24, 0),
                     trimy=(0, 0), biassecta=(19, 24), biassectb=(0, 0), ampx=2048, level_dn=2205.0)]
    raw, jref, truth = build_dataset(tmp_path, "WFC", "A", spec, expstart=57000.5, subarray=True,
                                     aperture="WFC1-512", ref_offsets={1: (7, 5)})
    lines: list[str] = []
    flt = calibrate_exposure(raw, jref=jref, log=lines.append)
    assert any("not a supported subarray" in line for line in lines)
    check_against_direct(flt, spec, truth, 100.0, "WFC")
    with fits.open(flt) as h:
        assert h["SCI", 1].data.shape == (60, 64)
        assert h["SCI", 1].header["LTV1"] == -300.0 and h["SCI", 1].header["LTV2"] == -500.0
        assert h[0].header["DARKTIME"] == 100.0      # subarray before Cycle 24: no overhead


def test_binned_hrc_frame(tmp_path):
    spec = [ChipSpec(chip=1, amps="C", nx=60, ny=50, ltv=(10.0, 0.0), ltm=(0.5, 0.5),
                     trimx=(10, 10), trimy=(0, 10), biassecta=(3, 9), biassectb=(52, 58),
                     vx=(12, 48), vy=(43, 48), level_dn=1133.0)]
    raw, jref, truth = build_dataset(tmp_path, "HRC", "C", spec, aperture="HRC",
                                     extra={"BINAXIS1": 2, "BINAXIS2": 2})
    flt = calibrate_exposure(raw, jref=jref, log=None)
    check_against_direct(flt, spec, truth, 100.0, "HRC")
    with fits.open(flt) as h:
        assert h["SCI", 1].data.shape == (40, 40)
        assert h["SCI", 1].header["LTM1_1"] == 0.5


def test_ccd_stage_only_writes_the_trimmed_blv_result(tmp_path):
    spec = WFC_SMALL
    raw, jref, _ = build_dataset(tmp_path, "WFC", "ABCD", spec)
    with fits.open(raw, mode="update") as h:
        for key in ("DARKCORR", "FLATCORR", "PHOTCORR"):
            h[0].header[key] = "OMIT"
    flt = calibrate_exposure(raw, jref=jref, log=None)
    with fits.open(flt) as h:
        assert h["SCI", 1].data.shape == (60, 128)
        assert h[0].header["BLEVCORR"] == "COMPLETE" and h[0].header["DARKCORR"] == "OMIT"
        assert "PHOTMODE" not in h["SCI", 1].header
        assert h[0].header["FILENAME"] == flt.name


def test_overscan_not_trimmed_fails_in_acs2d(tmp_path):
    raw, jref, _ = build_dataset(tmp_path, "WFC", "ABCD", WFC_SMALL)
    with fits.open(raw, mode="update") as h:
        h[0].header["BLEVCORR"] = "OMIT"
    with pytest.raises(CalibrationError, match="Overscan region not trimmed"):
        calibrate_exposure(raw, jref=jref, log=None)


def test_no_oscntab_row_subtracts_default_bias_then_fails(tmp_path):
    raw, jref, _ = build_dataset(tmp_path, "WFC", "ABCD", WFC_SMALL)
    syn.write_oscntab(Path(jref) / "c_osc.fits", [{"CCDAMP": "ABCD", "CCDCHIP": 1, "NX": 9, "NY": 9}])
    lines: list[str] = []
    with pytest.raises(CalibrationError, match="Overscan region not trimmed"):
        calibrate_exposure(raw, jref=jref, log=lines.append)
    assert any("Could not find appropriate row from OSCNTAB" in line for line in lines)
    assert any("bias from CCDTAB of" in line for line in lines)


def test_ccdtab_without_matching_row_is_fatal(tmp_path, monkeypatch, capsys):
    raw, jref, _ = build_dataset(tmp_path, "WFC", "ABCD", WFC_SMALL)
    with fits.open(raw, mode="update") as h:
        h[0].header["CCDGAIN"] = 4.0
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("jref", jref)
    assert main([raw.name]) == 2
    assert "Matching row not found in CCDTAB" in capsys.readouterr().out.splitlines()[-1]


def test_flash_shading_and_low_order_flat(tmp_path):
    """FLSHCORR, SHADCORR (binned shading file) and LFLTFILE on an HRC frame."""
    spec = [ChipSpec(chip=1, amps="C", nx=60, ny=50, ltv=(10.0, 0.0), trimx=(10, 10), trimy=(0, 10),
                     biassecta=(3, 9), biassectb=(52, 58), level_dn=1133.0)]
    raw, jref, _ = build_dataset(tmp_path, "HRC", "C", spec, aperture="HRC")
    refs = Path(jref)
    rng = np.random.default_rng(9)
    flash = rng.uniform(0.5, 1.5, (40, 40)).astype(np.float32)
    syn.write_image_ref(refs / "c_fls.fits", [syn.RefPlane(flash, 1)], "Synthetic flash")
    shad = rng.uniform(-0.02, 0.02, (20, 20)).astype(np.float32)       # binned 2x2
    syn.write_image_ref(refs / "c_shd.fits", [syn.RefPlane(shad, 1, (0.0, 0.0), (0.5, 0.5))],
                        "Synthetic shading")
    lfl = rng.uniform(0.95, 1.05, (10, 10)).astype(np.float32)         # binned 4x4
    syn.write_image_ref(refs / "c_lfl.fits", [syn.RefPlane(lfl, 1, (0.0, 0.0), (0.25, 0.25))],
                        "Synthetic low-order flat")
    # The same exposure without the three steps, for comparison.
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    base_raw = base_dir / raw.name
    base_raw.write_bytes(raw.read_bytes())
    base = calibrate_exposure(base_raw, jref=jref, log=None)
    with fits.open(raw, mode="update") as h:
        h[0].header.update(FLSHCORR="PERFORM", FLSHFILE="jref$c_fls.fits", FLASHDUR=2.5,
                           FLASHSTA="SUCCESSFUL", SHADCORR="PERFORM", SHADFILE="jref$c_shd.fits",
                           LFLTFILE="jref$c_lfl.fits")
    flt = calibrate_exposure(raw, jref=jref, log=None)
    b = fits.getdata(base, "SCI").astype(np.float64)
    s = fits.getdata(flt, "SCI").astype(np.float64)
    pflat = fits.getdata(refs / "c_pfl.fits", "SCI").astype(np.float64)
    shading = np.empty((40, 40))
    for n in range(40):                      # two binned lines at a time, as calacs.e does
        section = shad[(n // 4) * 2:(n // 4) * 2 + 2].astype(np.float64)
        aj = ((n % 4) - 0.5) / 2
        for m in range(40):
            ai = (m - 0.5) / 2
            i = min(max(int(ai), 0), 18)
            q, r = ai - i, aj
            shading[n, m] = ((1 - q) * (1 - r) * section[0, i] + q * (1 - r) * section[0, i + 1]
                             + (1 - q) * r * section[1, i] + q * r * section[1, i + 1])
    lowflat = np.empty((40, 40))
    for n in range(40):
        aj = (n - 1.5) / 4
        j = min(max(int(aj), 0), 8)
        for m in range(40):
            ai = (m - 1.5) / 4
            i = min(max(int(ai), 0), 8)
            q, r = ai - i, aj - j
            lowflat[n, m] = ((1 - q) * (1 - r) * lfl[j, i] + q * (1 - r) * lfl[j, i + 1]
                             + (1 - q) * r * lfl[j + 1, i] + q * r * lfl[j + 1, i + 1])
    good = pflat != 0
    pflat[~good] = 1.0
    expected = ((b * pflat - 2.5 * flash) / pflat / lowflat) / (1.0 + shading / 100.0)
    assert np.allclose(s[good], expected[good], rtol=2e-5, atol=2e-3)
    with fits.open(flt) as h:
        assert h[0].header["FLSHCORR"] == "COMPLETE" and h[0].header["SHADCORR"] == "COMPLETE"
        assert h["SCI", 1].header["MEANFLSH"] == pytest.approx(2.5 * flash.astype(np.float64).mean(),
                                                                rel=1e-5)


def test_flshcorr_with_zero_flash_duration_is_skipped(tmp_path):
    spec = [ChipSpec(chip=1, amps="C", nx=60, ny=50, ltv=(10.0, 0.0), trimx=(10, 10), trimy=(0, 10),
                     biassecta=(3, 9), biassectb=(52, 58), level_dn=1133.0)]
    raw, jref, _ = build_dataset(tmp_path, "HRC", "C", spec, aperture="HRC")
    syn.write_image_ref(Path(jref) / "c_fls.fits", [syn.RefPlane(np.ones((40, 40), np.float32), 1)],
                        "Synthetic flash")
    with fits.open(raw, mode="update") as h:
        h[0].header.update(FLSHCORR="PERFORM", FLSHFILE="jref$c_fls.fits", FLASHDUR=0.0)
    flt = calibrate_exposure(raw, jref=jref, log=None)
    assert fits.getval(flt, "FLSHCORR") == "SKIPPED"


def test_dummy_pedigree_skips_the_step(tmp_path):
    raw, jref, _ = build_dataset(tmp_path, "WFC", "ABCD", WFC_SMALL)
    with fits.open(Path(jref) / "c_drk.fits", mode="update") as h:
        h[0].header["PEDIGREE"] = "DUMMY 01/01/2000"
    flt = calibrate_exposure(raw, jref=jref, log=None)
    assert fits.getval(flt, "DARKCORR") == "SKIPPED"
    assert "DARKCORR skipped due to dummy reference file ..." in fits.getheader(flt)["HISTORY"]


def test_sinkcorr_flags_sinks_on_the_untrimmed_frame(tmp_path):
    raw, jref, _ = build_dataset(tmp_path, "WFC", "ABCD", WFC_SMALL)
    planes = []
    for s in WFC_SMALL:                          # SNKCFILE: SCI,1 = chip 2, SCI,2 = chip 1
        ref = np.zeros((s.ny, s.nx), np.float32)
        ref[30, 50] = -20.0                      # a sink...
        ref[29 if s.chip == 2 else 31, 50] = -1.0   # ...its downstream pixel...
        for k in range(1, 4):                    # ...and a trail above every signal level
            ref[30 + (k if s.chip == 2 else -k), 50] = 1e6
        planes.append(ref)
    hdus = [syn.ref_primary("Synthetic sink map", nextend=2)]
    for n, (s, ref) in enumerate(zip(WFC_SMALL, planes), start=1):
        hdus.append(syn.image_ext("SCI", n, ref, s.chip, s.ltv))
    fits.HDUList(hdus).writeto(Path(jref) / "c_snk.fits")
    with fits.open(raw, mode="update") as h:
        h[0].header.update(SINKCORR="PERFORM", SNKCFILE="jref$c_snk.fits")
    flt = calibrate_exposure(raw, jref=jref, log=None)
    with fits.open(flt) as h:
        assert h[0].header["SINKCORR"] == "COMPLETE"
        for ver, s in enumerate(WFC_SMALL, start=1):
            dq = h["DQ", ver].data
            rows = np.flatnonzero(dq[:, 50 - 24] & 1024) + s.trimy[0]
            expected = [29, 30, 31, 32, 33] if s.chip == 2 else [27, 28, 29, 30, 31]
            assert rows.tolist() == expected
            assert int((dq & 1024).astype(bool).sum()) == 5


def test_cr_split_association_uses_the_jref_it_is_given(tmp_path, monkeypatch):
    """calibrate_association(jref=...) resolves the CRREJTAB with that jref, not $jref."""
    from caldp.native import calibrate_association

    from ..calacs_helpers import write_asn
    from .test_crsplit import write_crrejtab

    monkeypatch.delenv("jref", raising=False)
    spec = [ChipSpec(chip=1, amps="C", nx=60, ny=50, ltv=(10.0, 0.0), trimx=(10, 10), trimy=(0, 10),
                     biassecta=(1, 10), biassectb=(0, 0))]
    members = ("jsyncr01q", "jsyncr02q")
    for seed, member in enumerate(members):
        _, jref, _ = build_dataset(tmp_path, "HRC", "C", spec, rootname=member, aperture="HRC",
                                   seed=seed, extra={"CRCORR": "PERFORM",
                                                     "CRREJTAB": "jref$c_crr.fits"})
    write_crrejtab(tmp_path / "refs" / "c_crr.fits")
    write_asn(tmp_path / "jsyncr010_asn.fits",
              [(m.upper(), "EXP-CRJ", True) for m in members] + [("JSYNCR011", "PROD-CRJ", False)])
    outputs = calibrate_association(tmp_path / "jsyncr010_asn.fits", jref=jref, log=None)
    assert outputs[-1] == tmp_path / "jsyncr011_crj.fits" and outputs[-1].is_file()
