"""Each detector algorithm against a direct, loop-by-loop formulation on small frames.

The direct versions below apply calacs.e's rules one pixel (or one row) at a time; the
library versions are vectorised.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from caldp.native.common.tables import BadPixelRows, OverscanLayout
from caldp.native.detector import ccd, dark, flat, mama, overscan

RNG = np.random.default_rng(12345)


def f32(x):
    return np.asarray(x, dtype=np.float32)


# -- DQICORR ----------------------------------------------------------------------

def test_atod_saturation_flags_values_at_or_above_the_limit():
    sci = f32([[10, 65535], [65534, 70000]])
    dq = np.array([[0, 4], [0, 0]], dtype=np.int16)
    out = ccd.flag_atod_saturation(sci, dq, 65535)
    assert out.tolist() == [[0, 4 | 2048], [0, 2048]]
    assert dq.tolist() == [[0, 4], [0, 0]]          # input untouched


def _bpix_direct(dq, rows, ltv):
    out = dq.copy()
    ny, nx = out.shape
    for x, y, length, axis, value in zip(rows.x, rows.y, rows.length, rows.axis, rows.value):
        xs, ys = int(x + ltv[0]), int(y + ltv[1])
        for k in range(length):
            i, j = (xs + k, ys) if axis == 1 else (xs, ys + k)
            if 0 <= i < nx and 0 <= j < ny:
                out[j, i] |= value
    return out


def test_bad_pixel_rows_match_a_pixel_by_pixel_application():
    n = 300
    rows = BadPixelRows(x=RNG.integers(-20, 60, n), y=RNG.integers(-20, 50, n),
                        length=RNG.integers(1, 40, n), axis=RNG.integers(1, 3, n),
                        value=RNG.choice(np.array([4, 16, 32, 128, 512], dtype=np.int16), n))
    dq = RNG.choice(np.array([0, 0, 0, 1], dtype=np.int16), (45, 70))
    ltv = (19.0, 0.0)
    out, placeholder = ccd.apply_bad_pixel_table(dq, rows, ltv)
    assert not placeholder
    assert np.array_equal(out, _bpix_direct(dq, rows, ltv))


def test_no_applicable_bad_pixel_row_sets_the_placeholder():
    empty = BadPixelRows(*(np.zeros(0, dtype=np.int64) for _ in range(4)),
                         value=np.zeros(0, dtype=np.int16))
    out, placeholder = ccd.apply_bad_pixel_table(np.zeros((4, 4), np.int16), empty, (0.0, 0.0))
    assert placeholder and out[1, 1] == 64 and out.sum() == 64


# -- BIASCORR, electrons, errors --------------------------------------------------

def test_bias_subtraction_combines_errors_and_flags():
    sci, err = f32(RNG.normal(2000, 5, (6, 7))), f32(RNG.uniform(0, 2, (6, 7)))
    bsci, berr = f32(RNG.normal(3, 1, (6, 7))), f32(RNG.uniform(0, 1, (6, 7)))
    dq, bdq = RNG.integers(0, 8, (6, 7)).astype(np.int16), RNG.integers(0, 8, (6, 7)).astype(np.int16)
    s, e, d = ccd.subtract_bias(sci, err, dq, bsci, berr, bdq)
    for j in range(6):
        for i in range(7):
            assert s[j, i] == np.float32(sci[j, i] - bsci[j, i])
            assert e[j, i] == np.float32(math.sqrt(np.float32(err[j, i] ** 2 + berr[j, i] ** 2)))
            assert d[j, i] == dq[j, i] | bdq[j, i]


def _gain_direct(shape, ampx, ampy, gains):
    """Gain of every pixel: C/D below AMPY, A/B above, split at AMPX."""
    ny, nx = shape
    g = np.empty(shape, np.float32)
    for j in range(ny):
        for i in range(nx):
            if j < ampy:
                g[j, i] = gains[2] if i < ampx else gains[3]
            else:
                g[j, i] = gains[0] if i < ampx else gains[1]
    return g


@pytest.mark.parametrize("ccdamp,ampx,ampy", [("ABCD", 10, 8), ("C", 0, 0), ("AD", 10, 0)])
def test_conversion_to_electrons_per_amplifier_quadrant(ccdamp, ampx, ampy):
    gains_all = [1.5, 2.5, 3.5, 4.5]
    rn_all = [4.0, 5.0, 6.0, 7.0]
    atodgain = [g if a in ccdamp else 0.0 for g, a in zip(gains_all, "ABCD")]
    readnoise = [r if a in ccdamp else 0.0 for r, a in zip(rn_all, "ABCD")]
    shape = (20, 24)
    layout = ccd.amp_layout(ampx, ampy, atodgain, readnoise, shape, (2.0, 0.0))
    sci = f32(RNG.normal(100, 10, shape))
    err = f32(RNG.uniform(0, 3, shape))
    s, e = ccd.convert_to_electrons(sci, err, layout)
    expected_gain = _gain_direct(shape, layout.ampx, layout.ampy, layout.gain)
    assert np.array_equal(s, sci * expected_gain)
    assert np.array_equal(e, err * expected_gain)
    if ccdamp == "C":
        assert np.all(expected_gain == np.float32(3.5))
    if ccdamp == "AD":            # diagonal amps are mirrored into ADAD
        assert layout.gain == [1.5, 4.5, 1.5, 4.5]


def test_a_fixed_slot_order_puts_the_chips_own_amplifiers_in_every_slot():
    atodgain = [1.0, 2.0, 3.0, 4.0]
    rn = [5.0, 6.0, 7.0, 8.0]
    assert ccd.amp_slots(2048, 0, atodgain, rn, ccd.CD_SLOTS) == ([3.0, 4.0, 3.0, 4.0],
                                                                 [7.0, 8.0, 7.0, 8.0])
    assert ccd.amp_slots(2048, 0, atodgain, rn, ccd.AB_SLOTS) == ([1.0, 2.0, 1.0, 2.0],
                                                                 [5.0, 6.0, 5.0, 6.0])
    # Without one, the four-amp readout keeps the amplifiers in their own slots.
    assert ccd.amp_slots(2048, 0, atodgain, rn) == (atodgain, rn)


def test_missing_gain_for_a_used_quadrant_is_an_error():
    layout = ccd.amp_layout(0, 0, [2.0, 0.0, 0.0, 0.0], [4.0, 0, 0, 0], (4, 4), (0, 0),
                            order=ccd.AB_SLOTS)
    with pytest.raises(Exception, match="No valid GAIN"):
        ccd.convert_to_electrons(f32(np.ones((4, 4))), f32(np.zeros((4, 4))), layout)


def test_ccd_error_array_formula():
    shape = (10, 12)
    layout = ccd.amp_layout(6, 5, [2.0, 2.1, 2.2, 2.3], [3.0, 4.0, 5.0, 6.0], shape, (0, 0))
    sci = f32(RNG.normal(5, 20, shape))
    err = f32(RNG.uniform(0, 2, shape))
    out = ccd.init_ccd_errors(sci, err, layout)
    rn_map = _gain_direct(shape, layout.ampx, layout.ampy, layout.readnoise)
    for j in range(shape[0]):
        for i in range(shape[1]):
            v = max(float(sci[j, i]), 0.0)
            expect = math.sqrt(v + float(rn_map[j, i]) ** 2 + float(err[j, i]) ** 2)
            assert out[j, i] == pytest.approx(expect, rel=2e-7)
    bias_only = ccd.init_ccd_errors(sci, err, layout, readnoise_only=True)
    assert np.array_equal(bias_only, rn_map)


def test_full_well_saturation_full_frame_and_subarray():
    sci = f32(RNG.uniform(0, 100, (12, 16)))
    sat = f32(np.full((12, 16), 50.0))
    dq = np.zeros((12, 16), np.int16)
    full = ccd.flag_full_well_saturation(sci, dq, sat, True, (-3, 0), (10, 10), (0, 0))
    expect = np.zeros_like(dq)
    expect[0:10, 3:13] = np.where(sci[0:10, 3:13] > 50.0, 256, 0)
    assert np.array_equal(full, expect)
    sub = ccd.flag_full_well_saturation(sci[:6, :8], dq[:6, :8], sat, False, (0, 0), (4, 5), (2, 3))
    expect = np.zeros((6, 8), np.int16)
    expect[:4, :5] = np.where(sci[:4, :5] > sat[3:7, 2:7], 256, 0)
    assert np.array_equal(sub, expect)


# -- BLEVCORR (overscan fit) ------------------------------------------------------

def _blev_direct(sci, dq, layout, ampx, readnoise, sdq):
    """One amplifier, both bias sections, row medians -> clip -> line + drift."""
    ny, nx = sci.shape
    a, b = layout.biassecta, layout.biassectb
    cols = list(range(a[0], a[1] + 1)) + list(range(b[0], b[1] + 1))
    t1, t2 = layout.trimy
    sizey = ny - t1 - t2
    levels, have = [], []
    for j in range(sizey):
        vals = [float(sci[j + t1, c]) for c in cols if not (dq[j + t1, c] & sdq)]
        levels.append(float(np.median(vals)) if vals else 0.0)
        have.append(bool(vals))
    levels, mask = np.array(levels), np.array(have)
    mean = levels[mask].mean()
    sd = min(levels[mask].std(ddof=1), math.sqrt(mean))
    mask &= ~(levels > abs(int(3 * sd + mean)))
    mean2 = levels[mask].mean()
    mask &= ~(levels > abs(int(float(np.float32(3) * np.float32(readnoise)) + mean2)))
    x = np.arange(sizey)[mask] - sizey // 2
    slope, intercept = np.polyfit(x, levels[mask], 1)
    # drift: column medians of the virtual overscan box
    vx, vy = layout.vx, layout.vy
    vcols = np.arange(vx[0], vx[1] + 1)
    med = np.array([np.median(sci[vy[0]:vy[1] + 1, c].astype(np.float64)) for c in vcols])
    dslope = np.polyfit(vcols, med, 1)[0]
    zero = (a[0] + a[1]) / 2.0
    out = sci.astype(np.float64).copy()
    for j in range(ny - t2):
        for i in range(layout.trimx[0], nx - layout.trimx[1]):
            out[j, i] = (sci[j, i] - ((j - sizey // 2) * slope + intercept)) - (i - zero) * dslope
    return out.astype(np.float32), slope, intercept, dslope


def test_overscan_fit_matches_direct_formulation():
    ny, nx = 60, 40
    layout = OverscanLayout(found=True, trimx=(5, 5), trimy=(0, 8), vx=(7, 31), vy=(53, 58),
                            biassecta=(0, 3), biassectb=(36, 39))
    rows = np.arange(ny)[:, None]
    cols = np.arange(nx)[None, :]
    sci = f32(2500.0 + 0.01 * rows + 0.004 * cols + RNG.normal(0, 1.5, (ny, nx)))
    sci[17, 1] += 900.0                     # a cosmic ray in the overscan: rejected by the median
    sci[23, [0, 1, 2, 36, 37, 38]] += 400.0  # a row level far above the others: clipped
    dq = np.zeros((ny, nx), np.int16)
    dq[30, 37] = 32                           # serious flag: excluded from the median
    res = overscan.subtract_overscan(sci, dq, layout, amps="C", default_amp=2,
                                     ampx=0, ampy=0, readnoise=[0, 0, 4.7, 0],
                                     ccdbias=[0, 0, 1133.0, 0], atodgain=[0, 0, 2.2, 0],
                                     sdqflags=31743)
    expected, slope, intercept, dslope = _blev_direct(sci, dq, layout, 0, 4.7, 31743)
    amp = res.amps[0]
    assert amp.rejected >= 1
    assert amp.fit.slope == pytest.approx(slope, rel=1e-9, abs=1e-12)
    assert amp.fit.intercept == pytest.approx(intercept, rel=1e-12)
    assert amp.drift_slope == pytest.approx(dslope, rel=1e-9, abs=1e-12)
    region = (slice(0, ny - 8), slice(5, nx - 5))
    assert np.allclose(res.sci[region], expected[region], atol=2e-4)
    assert res.driftcorr
    trimmed = overscan.trim_overscan(res.sci, layout)
    assert trimmed.shape == (ny - 8, nx - 10)


def test_two_amplifiers_use_their_nearest_bias_section():
    ny, nx = 30, 48
    layout = OverscanLayout(found=True, trimx=(4, 4), trimy=(0, 0), biassecta=(0, 3),
                            biassectb=(44, 47))
    sci = np.zeros((ny, nx), np.float32)
    sci[:, :24] = 1000.0
    sci[:, 24:] = 1500.0
    res = overscan.subtract_overscan(sci, np.zeros((ny, nx), np.int16), layout, amps="AB",
                                     default_amp=0, ampx=20, ampy=0,
                                     readnoise=[4, 4, 4, 4], ccdbias=[0] * 4,
                                     atodgain=[2] * 4, sdqflags=-1)
    assert [a.amp for a in res.amps] == ["A", "B"]
    assert res.amps[0].biassect == (0, 3, 0, 0) and res.amps[1].biassect == (44, 47, 0, 0)
    assert np.allclose(res.sci[:, 4:44], 0.0)
    assert res.meanblev == pytest.approx(1250.0)


def test_no_overscan_row_subtracts_the_ccdtab_bias():
    sci = f32(np.full((5, 5), 3000.0))
    res = overscan.subtract_overscan(sci, np.zeros((5, 5), np.int16), OverscanLayout(found=False),
                                     amps="C", default_amp=2, ampx=0, ampy=0,
                                     readnoise=[0, 0, 4, 0], ccdbias=[0, 0, 1000.0, 0],
                                     atodgain=[0, 0, 2.0, 0], sdqflags=-1)
    assert not res.from_overscan and np.all(res.sci == 1000.0)


# -- DARKCORR, FLSHCORR, FLATCORR -----------------------------------------------------

def test_dark_scaled_by_darktime_and_meandark_over_good_dark_pixels():
    sci, err = f32(RNG.normal(100, 5, (8, 9))), f32(RNG.uniform(1, 2, (8, 9)))
    dsci, derr = f32(RNG.uniform(0, 0.01, (8, 9))), f32(RNG.uniform(0, 0.001, (8, 9)))
    dq = np.zeros((8, 9), np.int16)
    ddq = np.zeros((8, 9), np.int16)
    ddq[2, 3] = 16
    ddq[4, 4] = 1024          # not in SDQFLAGS=31743
    s, e, d, meandark = dark.subtract_dark(sci, err, dq, dsci, derr, ddq, 60.0, 31743)
    scaled = np.float32(60.0) * dsci
    good = np.ones((8, 9), bool)
    good[2, 3] = False
    assert meandark == pytest.approx(float(scaled[good].astype(np.float64).mean()), rel=1e-6)
    assert np.array_equal(s, sci - scaled)
    assert np.array_equal(e, np.sqrt(err * err + (np.float32(60) * derr) ** 2))
    assert np.array_equal(d, ddq)


def test_flash_mean_weights_lines_by_good_fraction():
    fsci = f32(RNG.uniform(0, 1, (4, 5)))
    fdq = np.zeros((4, 5), np.int16)
    fdq[0, :4] = 16
    _, _, _, meanflash = dark.subtract_flash(f32(np.zeros((4, 5))), f32(np.zeros((4, 5))),
                                             np.zeros((4, 5), np.int16), fsci, fsci * 0, fdq,
                                             2.0, 31743)
    scaled = 2.0 * fsci.astype(np.float64)
    line_means = [scaled[0, 4], *scaled[1:].mean(axis=1)]
    weights = [0.2, 1.0, 1.0, 1.0]
    assert meanflash == pytest.approx(np.dot(line_means, weights) / sum(weights), rel=1e-6)


def test_flat_division_and_zero_flat():
    sci, err = f32(RNG.normal(100, 10, (5, 6))), f32(RNG.uniform(1, 3, (5, 6)))
    fl, ferr = f32(RNG.uniform(0.9, 1.1, (5, 6))), f32(RNG.uniform(0, 0.02, (5, 6)))
    fl[1, 2] = 0.0
    fdq = np.zeros((5, 6), np.int16)
    fdq[3, 3] = 4
    s, e, d = flat.divide_flat(sci, err, np.zeros((5, 6), np.int16), fl, ferr, fdq)
    for j in range(5):
        for i in range(6):
            if fl[j, i] == 0:
                assert s[j, i] == sci[j, i] and e[j, i] == err[j, i] and d[j, i] == 512
                continue
            a = np.float32(err[j, i] / fl[j, i])
            b = np.float32(np.float32(np.float32(ferr[j, i] * sci[j, i]) / fl[j, i]) / fl[j, i])
            assert s[j, i] == np.float32(sci[j, i] / fl[j, i])
            assert e[j, i] == np.float32(np.sqrt(np.float32(a * a + b * b)))
    assert d[3, 3] == 4


def _unbin_direct(a, binx, biny):
    iny, inx = a.shape
    out = np.empty((iny * biny, inx * binx), np.float64)
    for n in range(iny * biny):
        aj = (n - (biny - 1) / 2) / biny
        j = min(max(int(aj), 0), iny - 2)
        s = aj - j
        for m in range(inx * binx):
            ai = (m - (binx - 1) / 2) / binx
            i = min(max(int(ai), 0), inx - 2)
            q = ai - i
            out[n, m] = ((1 - q) * (1 - s) * a[j, i] + q * (1 - s) * a[j, i + 1]
                         + (1 - q) * s * a[j + 1, i] + q * s * a[j + 1, i + 1])
    return out


def test_binned_reference_expansion_is_bilinear():
    a = f32(RNG.uniform(0.5, 1.5, (4, 5)))
    s, e, d = flat.expand_binned(a, a * 0.01, np.zeros((4, 5), np.int16), 4, 2)
    assert s.shape == (8, 20)
    assert np.allclose(s, _unbin_direct(a.astype(np.float64), 4, 2), rtol=1e-6)


def test_shading_factor():
    factor, ferr = flat.shading_factor(f32([[0.5, -0.25]]), f32([[0.1, 0.1]]), 10.0)
    assert np.allclose(factor, [[1.05, 0.975]]) and np.allclose(ferr, [[0.01, 0.01]])


# -- MAMA -------------------------------------------------------------------------

def test_global_linearity_ratio_solves_y_equals_x_exp_minus_tau_x():
    tau, y = 5.27e-7, 14983.6
    ratio = mama.global_linearity_ratio(y, tau)
    x = ratio * y
    assert x * math.exp(-tau * x) == pytest.approx(y, rel=1e-12)
    assert mama.global_linearity_ratio(0.0, tau) == 1.0


def test_local_nonlinearity_flags_a_disc():
    sci = f32(np.zeros((9, 9)))
    sci[4, 4] = 100.0
    sci[0, 8] = 100.0
    dq, count = mama.flag_local_nonlinearity(sci, np.zeros((9, 9), np.int16), 1.0, 10.0, 1.5)
    assert count == 2
    for j in range(9):
        for i in range(9):
            near = ((i - 4) ** 2 + (j - 4) ** 2 <= 2.25) or ((i - 8) ** 2 + j ** 2 <= 2.25)
            assert bool(dq[j, i] & 256) == near


def test_mama_error_is_sqrt_counts_at_least_one():
    out = mama.init_mama_errors(f32([[0.0, 0.5, 4.0, 100.0, -9.7]]))
    assert np.allclose(out, [[1.0, 1.0, 2.0, 10.0, 3.0]])


# -- SINKCORR -----------------------------------------------------------------------

def _sink_direct(sci, dq, ref, downward):
    out = dq.copy()
    ny, nx = sci.shape
    keep = [0] * nx
    cur = [0.0] * nx
    rows = range(ny - 1, -1, -1) if downward else range(ny)
    for j in rows:
        for i in range(nx):
            s = ref[j, i]
            if s < 0:
                keep[i] = 1
                if s < -1:
                    cur[i] = sci[j, i]
                out[j, i] |= 1024
            elif s > 0:
                if keep[i] == 1:
                    if s > cur[i]:
                        out[j, i] |= 1024
                    else:
                        keep[i] = 0
            elif keep[i] == 1:
                keep[i] = 0
    return out


@pytest.mark.parametrize("downward", [False, True])
def test_sink_pixels_and_trails_match_the_column_walk(downward):
    from caldp.native.detector.sink import flag_sink_pixels
    ny, nx = 40, 30
    ref = np.zeros((ny, nx), np.float32)
    step = -1 if downward else 1
    for _ in range(25):
        i = RNG.integers(0, nx)
        j = RNG.integers(14, ny - 2) if downward else RNG.integers(2, ny - 14)
        ref[j, i] = -RNG.uniform(2, 50)          # the sink
        ref[j - step, i] = -1.0                  # downstream pixel
        for k in range(1, 12):                   # upstream trail
            ref[j + step * k, i] = RNG.uniform(1, 200)
    sci = f32(RNG.uniform(0, 150, (ny, nx)))
    dq = RNG.choice(np.array([0, 0, 4], np.int16), (ny, nx))
    out, n = flag_sink_pixels(sci, dq, ref, downward)
    assert np.array_equal(out, _sink_direct(sci, dq, ref, downward))
    assert n >= int((ref < 0).sum())
