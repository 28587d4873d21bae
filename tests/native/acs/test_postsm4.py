"""Post-SM4 WFC algorithms against direct formulations, and ACSCCD's DARKTIME overheads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caldp.native.acs import postsm4
from caldp.native.acs.darktime import compute_darktime

RNG = np.random.default_rng(12345)


def f32(x):
    return np.asarray(x, dtype=np.float32)


@pytest.mark.parametrize("expstart,subarray,aperture,flash,expected", [
    (52000.0, False, "HRC", 0.0, 60.0),                 # pre-SM4: header value
    (55000.0, False, "WFC", 0.0, 60.0 + 22.0),          # post-SM4 full frame: unflashed overhead
    (55000.0, False, "WFC", 5.0, 60.0 + 25.0),          # post-flashed overhead
    (57000.0, True, "WFC1A-2K", 0.0, 60.0),             # subarray before Cycle 24
    (58000.0, True, "WFC1A-2K", 0.0, 82.0),             # supported subarray after Cycle 24
    (58000.0, True, "WFC1-CTE", 0.0, 60.0),             # unsupported subarray
])
def test_darktime_overheads(expstart, subarray, aperture, flash, expected):
    darktime, _, _ = compute_darktime(60.0, expstart, subarray, aperture, flash,
                                      "SUCCESSFUL" if flash else "NOT PERFORMED", 22.0, 25.0)
    assert darktime == expected


# -- post-SM4 WFC ------------------------------------------------------------------

def test_first_order_scan_matches_the_sequential_recurrence():
    u = RNG.normal(5, 1, 5000)
    a, y0 = 0.9994, 123.0
    expected, last = np.empty_like(u), y0
    for k in range(u.size):
        last = u[k] + a * last
        expected[k] = last
    assert np.allclose(postsm4.first_order_scan(u, a, y0), expected, rtol=1e-13, atol=0)


def _bias_shift_direct(data, amp):
    k = "ABCD".index(amp)
    rows, cols = data.shape
    magic = data[2057:2067, 13:23].mean()
    gap = np.concatenate([data, np.full((rows, postsm4.NGAP_PIX), magic)], axis=1).ravel()
    factor = 1.0 - math.exp(-1.0 / (postsm4.TIME_CONST[k] * postsm4.SERIAL_FREQ))
    dc = np.empty(gap.size + 1)
    dc[0] = magic * 0.3
    for j in range(1, gap.size + 1):
        dc[j] = gap[j - 1] * factor * 0.3 + (1.0 - factor) * dc[j - 1]
    corr = (gap - postsm4.DSI_SENS[k] * dc[1:]) - (10.0 / 22.0) * (dc[1:] - dc[:-1])
    out = corr.reshape(rows, cols + postsm4.NGAP_PIX)[:, :cols]
    after = out[2057:2067, 13:23].mean()
    return out - after, magic, after


def test_bias_shift_matches_the_sample_by_sample_model():
    data = RNG.normal(4400, 4, (2068, 30))
    data[100:110, 24:] += 20000.0           # a bright source drives the pre-amp
    out, before, after = postsm4.correct_bias_shift(data, "C", chunk_rows=700)
    expected, b2, a2 = _bias_shift_direct(data, "C")
    assert before == pytest.approx(b2) and after == pytest.approx(a2, rel=1e-12)
    assert np.allclose(out, expected, rtol=0, atol=1e-8)


def test_cross_talk_follows_calacs_in_place_order():
    sci = f32(RNG.uniform(0, 60000, (3, 7)))
    out = postsm4.correct_cross_talk(sci)
    ref = sci.copy()
    for i in range(3):
        for j in range(7):
            ref[i, j] += np.float32(float(ref[i, 7 - j - 1]) * 9.1e-5)
    assert np.array_equal(out, ref)


def test_amp_views_round_trip():
    chip = f32(RNG.normal(0, 1, (6, 10)))
    for amp in "ABCD":
        view = postsm4.amp_array(chip, amp, 5)
        back = chip.copy()
        postsm4.put_amp_array(back, amp, view)
        assert np.array_equal(back, chip)
    assert postsm4.amp_array(chip, "A", 5)[0, 0] == chip[-1, 0]
    assert postsm4.amp_array(chip, "D", 5)[0, 0] == chip[0, -1]


def test_destripe_removes_a_common_readout_time_pattern():
    rows, cols = 120, 80
    stripes = RNG.normal(0, 3, rows)
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    t = i + (j - 11.5) / (cols + 146)
    low = np.clip(np.floor(t).astype(int), 0, rows - 2)
    pattern = stripes[low] + (t - low) * (stripes[low + 1] - stripes[low])
    levels = {"A": 4400.0, "B": 4300.0, "C": 4500.0, "D": 4350.0}
    amp_data = {a: levels[a] + pattern + RNG.normal(0, 0.5, (rows, cols)) for a in "ABCD"}
    res = postsm4.destripe(amp_data)
    for a in "ABCD":
        assert res.bias_means[a] == pytest.approx(levels[a] + stripes[1:rows - 20].mean(), abs=0.5)
        body = res.amp_data[a][1:rows - 1, 24:]
        assert np.std(body.mean(axis=1)) < 0.3
    assert res.rows_fixed == rows - 1 and res.rows_skipped == 1
    assert amp_data["A"][0, 0] != res.amp_data["A"][0, 0]      # input left as it was
