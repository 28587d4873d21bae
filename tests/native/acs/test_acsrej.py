"""acsrej (CR-SPLIT cosmic-ray rejection): array-level properties on synthetic frames.

There is no CR-SPLIT golden from calacs.e here.  The vectorized implementation is checked
against a literal, line-by-line emulation of calacs.e's loop (``sequential_rejection`` below,
written independently of the module), and against physical expectations.
"""

import math

import numpy as np
import pytest
from astropy.io import fits

from caldp.native.acs.acsrej import (
    RejectionError,
    RejectionParameters,
    make_initial_guess,
    measure_sky,
    parse_sigmas,
    read_rejection_parameters,
    reject_stack,
)

HIT, SPILL, EXCLUDE, CR = 8, 2, 4, 8192


def sequential_rejection(pics, errs, dqs, efac, guess, sigmas, radius, thresh, scalense, dqpat, maskdq):
    """calacs.e's acsrej_loop control flow: lines top to bottom, pixels left to right, the
    comparison image updated in place line by line.  Returns (rate, err, dq, rejected, nrej)."""
    f32 = np.float32
    n_images, (ny, nx) = len(pics), guess.shape
    ave = guess.astype(np.float32).copy()
    width = math.ceil(radius)
    rej2 = f32(radius) ** 2
    psig2 = f32(-1) if thresh <= 0 else f32(thresh) ** 2
    scale = f32(scalense / 100.0)
    exptot = f32(0)
    for t in efac:
        exptot = f32(exptot + f32(t))
    for iteration, sigma in enumerate(sigmas):
        last = iteration == len(sigmas) - 1
        sig2 = f32(sigma) ** 2
        mask = [d.astype(np.int32).copy() for d in dqs]
        thr = [np.zeros((ny, nx), np.float32) for _ in range(n_images)]
        spthr = [np.zeros((ny, nx), np.float32) for _ in range(n_images)]

        def thresholds(n, row):
            e = f32(efac[n])
            for i in range(nx):
                var = f32(errs[n][row, i] * errs[n][row, i])
                signal = max(f32(ave[row, i] * e), f32(0))
                thr[n][row, i] = f32(f32(sig2 * f32(var + f32(scale * signal) ** 2)) / f32(e * e))
                spthr[n][row, i] = f32(f32(sig2 * var) / f32(e * e))

        dq2 = np.zeros((ny, nx), np.int32)
        out_dq = np.full((ny, nx), CR, np.int32)
        rejected = [np.zeros((ny, nx), bool) for _ in range(n_images)]
        nrej = 0
        out_err = np.zeros((ny, nx), np.float32)
        for line in range(ny):
            # A line's thresholds are computed when it enters the scrolling buffer.
            if line == 0:
                for n in range(n_images):
                    for row in range(0, min(width, ny - 1) + 1):
                        thresholds(n, row)
            elif line + width < ny:
                for n in range(n_images):
                    thresholds(n, line + width)
            total = np.zeros(nx, np.float32)
            exposure = np.zeros(nx, np.float32)
            variance = np.zeros(nx, np.float32)
            for n in range(n_images):
                e = f32(efac[n])
                row_start = mask[n][line].copy()
                for i in range(nx):
                    if (row_start[i] & dqpat) != 0 and row_start[i] != SPILL:
                        mask[n][line, i] = EXCLUDE
                for i in range(nx):
                    residual2 = f32(pics[n][line, i] - ave[line, i]) ** 2
                    if residual2 > thr[n][line, i] and mask[n][line, i] != EXCLUDE:
                        mask[n][line, i] = HIT
                        for jj in range(-width, width + 1) if width else ():
                            j = line + jj
                            if not 0 <= j < ny:
                                continue
                            for ii in range(i - width, i + width + 1):
                                if f32(float((ii - i) ** 2 + jj**2)) > rej2 or not 0 <= ii < nx:
                                    continue
                                if f32(pics[n][j, ii] - ave[j, ii]) ** 2 <= f32(psig2 * spthr[n][j, ii]):
                                    continue
                                if mask[n][j, ii] != HIT:
                                    mask[n][j, ii] = SPILL
                for i in range(nx):
                    if (mask[n][line, i] & maskdq) == 0:
                        total[i] = f32(total[i] + f32(pics[n][line, i] * e))
                        exposure[i] = f32(exposure[i] + e)
                        variance[i] = f32(variance[i] + f32(errs[n][line, i] * errs[n][line, i]))
                if last:
                    for i in range(nx):
                        b = (int(row_start[i]) | int(dq2[line, i])) & ~CR & ~SPILL
                        out = b | int(out_dq[line, i])
                        if mask[n][line, i] in (HIT, SPILL):
                            b |= CR
                            nrej += 1
                            rejected[n][line, i] = True
                        else:
                            out &= ~CR
                        dq2[line, i], out_dq[line, i] = b, out
            for i in range(nx):
                if exposure[i] > 0:
                    ave[line, i] = f32(total[i] / exposure[i])
                    if last:
                        out_err[line, i] = f32(float(f32(exptot / exposure[i])) * math.sqrt(float(variance[i])))
                elif last:
                    ave[line, i], out_err[line, i] = 0, 0
    return ave, out_err, out_dq.astype(np.int16), rejected, nrej


def random_stack(seed, shape, n, bad_fraction, hit_fraction=0.05):
    """Exposures of one scene with Poisson-like noise, cosmic rays and flagged pixels."""
    rng = np.random.default_rng(seed)
    scene = rng.uniform(5, 200, shape).astype(np.float32)
    exptimes = [float(t) for t in rng.choice([100.0, 150.0, 200.0], n)]
    sci, err, dq = [], [], []
    for t in exptimes:
        expected = scene * t / 100
        frame = rng.normal(expected, np.sqrt(expected + 25)).astype(np.float32)
        hits = rng.random(shape) < hit_fraction
        frame[hits] += rng.uniform(200, 3000, hits.sum()).astype(np.float32)
        sci.append(frame)
        err.append(np.sqrt(np.maximum(frame, 0) + 25).astype(np.float32))
        flags = np.zeros(shape, np.int16)
        bad = rng.random(shape) < bad_fraction
        # Includes values equal to calacs.e's internal markers (2, 4, 8) on purpose.
        flags[bad] = rng.choice([1, 2, 4, 8, 16, 32, 64, 512, 2048, 8192], bad.sum())
        dq.append(flags)
    return sci, err, dq, exptimes


CASES = [
    # seed, n, bad fraction, radius, thresh, sigmas, initgues, imagetyp
    (0, 3, 0.0, 1.5, 0.5556, (3.5, 3.5, 3.0), "median", "EXT"),
    (1, 2, 0.08, 1.5, 0.6, (3.0, 2.5), "minimum", "EXT"),
    (2, 4, 0.3, 2.1, 0.3, (2.0, 1.5, 1.2), "median", "EXT"),
    (3, 3, 0.08, 0.0, 0.6, (3.0,), "minimum", "EXT"),
    (4, 3, 0.08, 1.0, 0.0, (3.0, 2.5), "median", "EXT"),
    (5, 3, 0.3, 3.0, 1.0, (2.5, 2.0), "minimum", "EXT"),
    (6, 3, 0.2, 1.5, 0.5, (3.0, 2.0), "median", "BIAS"),
    (7, 4, 0.4, 2.5, 0.3, (2.0, 1.5), "median", "EXT"),
]


@pytest.mark.parametrize("seed, n, bad, radius, thresh, sigmas, initgues, imagetyp", CASES)
def test_vectorized_rejection_equals_calacs_line_by_line_loop(seed, n, bad, radius, thresh, sigmas, initgues, imagetyp):
    sci, err, dq, exptimes = random_stack(seed, (18, 21), n, bad)
    parameters = RejectionParameters(
        crsigmas=sigmas, crradius=radius, crthresh=thresh, initgues=initgues, skysub="none",
        scalense=30.0, badinpdq=39,
    )
    result = reject_stack(sci, err, dq, exptimes, parameters, imagetyp=imagetyp)

    dqpat, maskdq = (39 & ~EXCLUDE, HIT | SPILL) if imagetyp == "BIAS" else (39, HIT | SPILL | EXCLUDE)
    pics = [(s / np.float32(t)).astype(np.float32) for s, t in zip(sci, exptimes)]
    guess = make_initial_guess(pics, dq, [np.float32(t) for t in exptimes], initgues, 39)
    rate, expected_err, expected_dq, rejected, n_rejected = sequential_rejection(
        pics, err, dq, exptimes, guess, sigmas, radius, thresh, 30.0, dqpat, maskdq
    )
    expected_err[0, 0] = -1
    assert np.array_equal(result.sci, (rate * np.float32(sum(np.float32(t) for t in exptimes))).astype(np.float32))
    assert np.array_equal(result.err, expected_err)
    assert np.array_equal(result.dq, expected_dq)
    assert all(np.array_equal(a, b) for a, b in zip(result.rejected, rejected))
    assert result.n_rejected == n_rejected


@pytest.fixture(scope="module")
def cr_split():
    """Three exposures (100, 100, 200 s) of a scene on a sky, with isolated cosmic rays."""
    rng = np.random.default_rng(42)
    shape = (64, 64)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rate = (0.5 + 3.0 * np.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / 40.0)).astype(np.float32)  # e-/s
    sky_rate, read_noise = 0.2, 5.0
    exptimes = [100.0, 100.0, 200.0]
    clean, sci, err, dq, hits = [], [], [], [], []
    hit_sites = rng.choice(shape[0] * shape[1], size=60, replace=False)
    for k, t in enumerate(exptimes):
        expected = (rate + sky_rate) * t
        frame = rng.normal(expected, np.sqrt(expected + read_noise**2)).astype(np.float32)
        clean.append(frame.copy())
        mine = np.zeros(shape, bool)
        mine.flat[hit_sites[k * 20 : (k + 1) * 20]] = True
        frame[mine] += rng.uniform(500, 5000, mine.sum()).astype(np.float32)
        sci.append(frame)
        err.append(np.sqrt(np.maximum(frame, 0) + read_noise**2).astype(np.float32))
        dq.append(np.zeros(shape, np.int16))
        hits.append(mine)
    dq[1][40, 10] = 32  # flagged bad (a BADINPDQ bit) in one exposure
    parameters = RejectionParameters(
        crsigmas=(6.0, 5.0), crradius=1.5, crthresh=0.5556, initgues="median", skysub="mode",
        scalense=0.0, badinpdq=39,
    )
    inputs = [a.copy() for a in sci], [a.copy() for a in err], [a.copy() for a in dq]
    result = reject_stack(sci, err, dq, exptimes, parameters)
    return dict(clean=clean, sci=sci, err=err, dq=dq, hits=hits, exptimes=exptimes, result=result, inputs=inputs)


def test_every_injected_cosmic_ray_is_rejected(cr_split):
    for hits, rejected in zip(cr_split["hits"], cr_split["result"].rejected):
        assert np.all(rejected[hits])


def test_rejections_stay_next_to_cosmic_rays(cr_split):
    for hits, rejected in zip(cr_split["hits"], cr_split["result"].rejected):
        near = np.zeros_like(hits)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near |= np.roll(np.roll(hits, dy, 0), dx, 1)
        assert not np.any(rejected & ~near)


def test_unrejected_pixels_are_the_plain_sum(cr_split):
    result, sci = cr_split["result"], cr_split["sci"]
    untouched = ~np.logical_or.reduce(result.rejected) & (cr_split["dq"][1] == 0)
    assert np.allclose(result.sci[untouched], np.sum(sci, axis=0)[untouched], rtol=1e-5, atol=0.05)


def test_rejected_pixels_are_rescaled_from_the_clean_exposures(cr_split):
    result, sci, times = cr_split["result"], cr_split["sci"], cr_split["exptimes"]
    sky = np.array(result.sky, dtype=np.float64)
    for k in range(3):
        only_k = result.rejected[k] & ~np.logical_or.reduce([r for n, r in enumerate(result.rejected) if n != k])
        kept = [n for n in range(3) if n != k]
        expected = sum(sci[n] - sky[n] for n in kept) * sum(times) / sum(times[n] for n in kept) + sky.sum()
        assert np.allclose(result.sci[only_k], expected[only_k], rtol=1e-5, atol=0.05)


def test_combined_image_is_the_sum_of_the_clean_exposures_within_noise(cr_split):
    result, clean, err = cr_split["result"], cr_split["clean"], cr_split["err"]
    good = cr_split["dq"][1] == 0
    noise = np.sqrt(np.sum([e.astype(np.float64) ** 2 for e in err], axis=0))
    assert np.all(np.abs(result.sci - np.sum(clean, axis=0))[good] < 6 * noise[good] + 1)


def test_error_is_the_scaled_quadrature_sum_of_kept_inputs(cr_split):
    result, err, times = cr_split["result"], cr_split["err"], cr_split["exptimes"]
    kept = [~r & (d == 0) for r, d in zip(result.rejected, cr_split["dq"])]
    kept_time = sum(k * t for k, t in zip(kept, times))
    variance = sum(np.where(k, e.astype(np.float64) ** 2, 0) for k, e in zip(kept, err))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(kept_time > 0, sum(times) / kept_time * np.sqrt(variance), 0)
    expected[0, 0] = -1  # calacs.e's marker pixel
    assert np.allclose(result.err, expected, rtol=1e-5)


def test_dq_keeps_input_flags_and_no_8192_while_a_clean_exposure_remains(cr_split):
    result = cr_split["result"]
    assert not np.any(result.dq & 8192)
    assert result.dq[40, 10] == 32  # the input flag is carried into the product
    assert np.count_nonzero(result.dq) == 1


def test_pixel_rejected_in_every_exposure_gets_8192_and_the_sky_only():
    shape = (12, 12)
    sci = [np.full(shape, 100.0, np.float32) for _ in range(2)]
    sci[0][6, 6] += 2000
    sci[1][6, 6] += 9000  # the two-image median is their mean: both stand out from it
    err = [np.sqrt(s + 25).astype(np.float32) for s in sci]
    dq = [np.zeros(shape, np.int16), np.full(shape, 16, np.int16)]
    parameters = RejectionParameters(crsigmas=(4.0, 3.0), crradius=0.0, crthresh=0.5, initgues="median",
                                     skysub="none", badinpdq=39)
    result = reject_stack(sci, err, dq, [100.0, 100.0], parameters)
    assert result.rejected[0][6, 6] and result.rejected[1][6, 6]
    assert result.dq[6, 6] == 8192 | 16
    assert result.dq[0, 1] == 16
    assert result.sci[6, 6] == 0 and result.err[6, 6] == 0
    assert result.n_rejected == 2


def test_flagged_input_pixel_is_left_out_but_not_called_a_cosmic_ray(cr_split):
    result, sci, times = cr_split["result"], cr_split["sci"], cr_split["exptimes"]
    assert not result.rejected[1][40, 10]
    sky = result.sky
    expected = ((sci[0][40, 10] - sky[0]) + (sci[2][40, 10] - sky[2])) * sum(times) / (times[0] + times[2]) + sum(sky)
    assert result.sci[40, 10] == pytest.approx(expected, rel=1e-5)


def test_sky_is_measured_and_summed(cr_split):
    result, times = cr_split["result"], cr_split["exptimes"]
    # Sky plus the faint scene floor (0.5 e-/s) dominates the mode.
    for sky, t in zip(result.sky, times):
        assert sky == pytest.approx(0.7 * t, abs=0.06 * 0.7 * t)
    assert result.sky_sum == pytest.approx(sum(result.sky), rel=1e-6)
    assert result.n_rejected == sum(int(r.sum()) for r in result.rejected)
    assert result.total_exptime == 400.0


def test_inputs_are_not_modified(cr_split):
    for given, kept in zip((cr_split["sci"], cr_split["err"], cr_split["dq"]), cr_split["inputs"]):
        assert all(np.array_equal(a, b) for a, b in zip(given, kept))


def test_spill_reaches_its_own_line_and_lines_below_but_not_above():
    """A cosmic ray with a faint halo: calacs.e marks the halo on the hit's line and the line
    below as SPILL, while the line above was already summed when the hit was found."""
    shape, t, level = (21, 21), 100.0, 1000.0
    sci = [np.full(shape, level, np.float32) for _ in range(3)]
    err = [np.full(shape, 10.0, np.float32) for _ in range(3)]
    dq = [np.zeros(shape, np.int16) for _ in range(3)]
    sci[1][10, 10] += 1000  # a HIT: residual 10 e-/s against a threshold of 0.5 e-/s
    halo = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    for dy, dx in halo:
        sci[1][10 + dy, 10 + dx] += 35  # below the HIT threshold (50 e-), above the SPILL one (25 e-)
    parameters = RejectionParameters(
        crsigmas=(5.0,), crradius=1.5, crthresh=0.5, initgues="median", skysub="none", scalense=0.0, badinpdq=0
    )
    result = reject_stack(sci, err, dq, [t] * 3, parameters)
    rejected = result.rejected[1]
    assert rejected[10, 10]
    for dy, dx in halo:
        assert rejected[10 + dy, 10 + dx] == (dy >= 0), (dy, dx)
    assert result.sci[9, 10] == pytest.approx(3 * level + 35)
    assert result.sci[11, 10] == pytest.approx(3 * level)
    assert int(rejected.sum()) == 6


def test_sky_mode_of_a_flat_noisy_frame():
    rng = np.random.default_rng(3)
    frame = rng.normal(250.0, 6.0, (200, 200)).astype(np.float32)
    flags = np.zeros(frame.shape, np.int16)
    (sky,) = measure_sky([frame], [flags], "mode", 0)
    assert sky == pytest.approx(250.0, abs=0.5)
    assert measure_sky([frame, frame], [flags, flags], "none", 0) == (0.0, 0.0)
    with pytest.raises(RejectionError, match="SKYSUB"):
        measure_sky([frame], [flags], "median", 0)


def test_initial_guess_is_the_median_or_minimum_of_good_pixels():
    rng = np.random.default_rng(5)
    pics = [rng.normal(10, 3, (8, 9)).astype(np.float32) for _ in range(4)]
    flags = [np.zeros((8, 9), np.int16) for _ in range(4)]
    flags[2][3, 4] = 32  # leaves three good values at that pixel
    times = [np.float32(1)] * 4
    median = make_initial_guess(pics, flags, times, "median", 39)
    stack = np.array(pics)
    expected = np.median(stack, axis=0)
    expected[3, 4] = np.median(stack[[0, 1, 3], 3, 4])
    assert np.allclose(median, expected, rtol=1e-6)
    clean = [np.zeros((8, 9), np.int16)] * 4
    assert np.array_equal(make_initial_guess(pics, clean, times, "minimum", 39), stack.min(axis=0))


def test_fewer_than_two_exposed_inputs_skips_rejection():
    sci = [np.full((8, 8), 5.0, np.float32), np.full((8, 8), 7.0, np.float32)]
    err = [np.ones((8, 8), np.float32)] * 2
    dq = [np.zeros((8, 8), np.int16)] * 2
    parameters = RejectionParameters(crsigmas=(3.0,), crradius=1.5, crthresh=0.5, skysub="none")
    result = reject_stack(sci, err, dq, [100.0, 0.0], parameters)
    assert not result.performed
    assert result.n_rejected == 0


def test_crrejtab_row_is_chosen_like_calacs(tmp_path):
    rows = [  # CRSPLIT, MEANEXP, CRSIGMAS, CRRADIUS
        (2, 100.0, "4,3", 1.0),
        (3, 50.0, "6,5", 1.1),
        (3, 200.0, "5,4,3", 1.2),
        (3, 200.0, "5.5,4.5", 1.3),  # same MEANEXP: the later row wins
        (3, 1000.0, "3", 1.4),
    ]
    crsplit, meanexp, sigmas, radius = zip(*rows)
    n = len(rows)
    table = fits.BinTableHDU.from_columns([
        fits.Column(name="CRSPLIT", format="J", array=np.array(crsplit)),
        fits.Column(name="MEANEXP", format="E", array=np.array(meanexp)),
        fits.Column(name="SCALENSE", format="E", array=np.full(n, 30.0)),
        fits.Column(name="INITGUES", format="8A", array=np.array(["minimum"] * n)),
        fits.Column(name="SKYSUB", format="4A", array=np.array(["mode"] * n)),
        fits.Column(name="CRSIGMAS", format="15A", array=np.array(sigmas)),
        fits.Column(name="CRRADIUS", format="E", array=np.array(radius)),
        fits.Column(name="CRTHRESH", format="E", array=np.full(n, 0.5556)),
        fits.Column(name="BADINPDQ", format="I", array=np.full(n, 39)),
        fits.Column(name="CRMASK", format="L", array=np.full(n, True)),
    ])
    path = tmp_path / "synth_crr.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)

    chosen = read_rejection_parameters(path, 3, 450.0, "jref$synth_crr.fits")  # mean 150 s
    assert chosen.crsigmas == (5.5, 4.5)
    assert chosen.crradius == pytest.approx(1.3)
    assert chosen.sigmas_text == "5.5,4.5"
    assert chosen.meanexp == pytest.approx(150.0)
    assert chosen.crmask is True and chosen.badinpdq == 39 and chosen.table == "jref$synth_crr.fits"
    # Six exposures use the largest CRSPLIT in the table.
    assert read_rejection_parameters(path, 6, 600.0).crradius == pytest.approx(1.3)
    with pytest.raises(RejectionError, match="no matching"):
        read_rejection_parameters(path, 3, 6000.0)


def test_sigmas_accept_calacs_separators():
    assert parse_sigmas("6.5, 5.5;4.5/3.5 3") == (6.5, 5.5, 4.5, 3.5, 3.0)
    with pytest.raises(RejectionError):
        parse_sigmas("   ")
    with pytest.raises(RejectionError):
        parse_sigmas("3,x")
