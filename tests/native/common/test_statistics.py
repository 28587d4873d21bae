"""doStat: image statistics over good pixels."""

from __future__ import annotations

import numpy as np
import pytest

from caldp.native.common.statistics import image_statistics

RNG = np.random.default_rng(12345)


def f32(x):
    return np.asarray(x, dtype=np.float32)


def test_statistics_skip_flagged_and_non_positive_errors():
    sci = f32(RNG.normal(10, 3, (6, 6)))
    err = f32(RNG.uniform(0.5, 2, (6, 6)))
    err[0, 0] = 0.0
    dq = np.zeros((6, 6), np.int16)
    dq[1, 1] = 16
    dq[2, 2] = 1024          # not in SDQFLAGS=31743
    st = image_statistics(sci, err, dq, 31743)
    use = np.ones((6, 6), bool)
    use[0, 0] = use[1, 1] = False
    assert st.ngoodpix == 34
    assert st.goodmean == pytest.approx(sci[use].astype(np.float64).mean())
    assert st.snrmax == pytest.approx((sci[use] / err[use]).max(), rel=1e-6)
    assert st.errmin == pytest.approx(err[use].min())
