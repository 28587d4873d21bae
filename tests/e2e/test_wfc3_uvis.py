"""WFC3/UVIS: a synthetic full frame (two chips, four amplifiers, overscan) through caldp-process
with the real calwf3.e, to a _flt.

There is no real UVIS raw in ../shared, so tests/support/wfc3_uvis_synth.py makes one with the archive's
layout, and the stand-in references calwf3.e 3.7.3 reads on the UVIS CCD path under the names CRDS
hst_0729 bestrefs gives them. The run is the real command line (`caldp-process <id> file:<in>
file:<out>`): bestrefs in-process on a copy of ../shared/crds-cache (read-only), calwf3.e from
hstcal, previews, messages. Every number calwf3 applies is known from the synthesis, so the _flt is
checked against an independent numpy model, pixel by pixel.

PCTECORR=OMIT (no PCTETAB, DRKCFILE or BIACFILE stand-ins: calwf3 writes _flt only; _flc appears
only with PCTECORR=PERFORM and a PCTETAB) and DRIZCORR=OMIT (stage 2 is tested elsewhere). CRCORR
is OMIT as in any single exposure (CRREJTAB is selected by bestrefs but never opened).
"""

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from ..support import wfc3_uvis_synth as synth
from ..conftest import offline_crds_env, run_caldp_process

pytestmark = pytest.mark.slow

DATASET = synth.ROOTNAME
PERFORMED = ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR", "PHOTCORR", "FLUXCORR")
OMITTED = ("PCTECORR", "DRIZCORR", "CRCORR", "ATODCORR", "FLSHCORR", "SHADCORR", "EXPSCORR")


def selected_references(raw, cache):
    """The primary header hst_0729 bestrefs gives `raw` (run in this process on a scratch copy)."""
    from caldp.references import assign_references, reference_environment

    scratch = raw.parent.parent / "bestrefs-names"
    scratch.mkdir()
    copy = scratch / raw.name
    shutil.copyfile(raw, copy)
    saved = dict(os.environ)
    os.environ.pop("CRDS_CONTEXT", None)
    os.environ.update(offline_crds_env(cache))
    try:
        assign_references([copy], ref_env=reference_environment(cache))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    header = fits.getheader(copy)
    shutil.rmtree(scratch)
    return header


@pytest.fixture(scope="module")
def uvis(hstcal_env, crds_cache, tmp_path_factory):
    """One caldp-process run of the synthetic UVIS frame; its truth, result and output tree."""
    root = tmp_path_factory.mktemp("uvis")
    source = root / "in"
    truth = synth.make_uvis_raw(source)
    cache = root / "cache"
    shutil.copytree(crds_cache, cache)
    header = selected_references(truth.raw, cache)
    written = synth.write_references(header, cache / "references" / "hst", truth)
    out = root / "out"
    env = {**offline_crds_env(cache), **hstcal_env, "CALDP_HOME": str(root)}
    result = run_caldp_process([DATASET, f"file:{source}", f"file:{out}"], env, cwd=root, timeout=600)
    products = out / "data" / "wfc3" / DATASET
    return SimpleNamespace(truth=truth, result=result, out=out, products=products, written=written)


@pytest.fixture(scope="module")
def flt(uvis):
    assert uvis.result.returncode == 0, uvis.result.stderr[-3000:]
    with fits.open(uvis.products / f"{DATASET}_flt.fits") as hdul:
        hdul.readall()
        yield hdul


@pytest.fixture(scope="module")
def raw_sci(uvis):
    with fits.open(uvis.truth.raw) as hdul:
        return {chip.extver: hdul["SCI", chip.extver].data.copy() for chip in synth.CHIPS}


def test_processed_to_flt_only(uvis):
    assert uvis.result.returncode == 0, uvis.result.stderr[-3000:]
    names = sorted(p.name for p in uvis.products.iterdir() if p.is_file())
    assert names == [f"{DATASET}.tra", f"{DATASET}_flt.fits", f"{DATASET}_raw.fits"]
    message = (uvis.out / "messages" / "dataset-processed" / DATASET).read_text()
    assert f"data/wfc3/{DATASET}/{DATASET}_flt.fits" in message
    assert not (uvis.out / "messages" / "dataset-error" / DATASET).exists()
    trailer = (uvis.products / f"{DATASET}.tra").read_text()
    assert "CALWF3 completion" in trailer


def test_calwf3_program_in_metrics(uvis):
    assert uvis.result.returncode == 0, uvis.result.stderr[-3000:]
    metrics = json.loads((uvis.products / "logs" / "metrics.json").read_text())
    programs = [p for p in metrics["programs"] if os.path.basename(p["argv"][0]) == "calwf3.e"]
    assert len(programs) == 1, metrics["programs"]
    program = programs[0]
    assert program["kind"] == "hstcal" and program["step"] == "calibrate" and program["returncode"] == 0
    assert program["argv"][-1] == f"{DATASET}_raw.fits"
    assert program["wall_seconds"] > 0 and program["max_rss_kb"] > 0
    assert metrics["calibration"] == "hstcal"
    print(f"\ncalwf3.e: {program['wall_seconds']} s wall, {program['cpu_seconds']} s CPU, "
          f"peak RSS {program['max_rss_kb'] / 1024:.0f} MiB")
    provenance = json.loads((uvis.products / "logs" / "provenance.json").read_text())
    assert provenance["crds_context"] == "hst_0729.pmap"
    selected = provenance["references"][f"{DATASET}_raw.fits"]
    for keyword, path in uvis.written.items():
        assert selected[keyword] == f"iref${path.name}"


def test_flt_geometry_switches_and_units(flt):
    assert [h.name for h in flt] == ["PRIMARY", "SCI", "ERR", "DQ", "SCI", "ERR", "DQ"]
    primary = flt[0].header
    for chip in synth.CHIPS:
        for name in ("SCI", "ERR", "DQ"):
            hdu = flt[name, chip.extver]
            assert hdu.data.shape == (synth.NY, synth.NX), (name, chip)
            assert hdu.header["CCDCHIP"] == chip.ccdchip
        sci = flt["SCI", chip.extver].header
        assert sci["BUNIT"] == "ELECTRONS"
        assert sci["LTV1"] == 0 and sci["LTV2"] == 0
        assert np.isfinite(flt["SCI", chip.extver].data).all()
    for switch in PERFORMED:
        assert primary[switch] == "COMPLETE", switch
    for switch in OMITTED:
        assert primary[switch] == "OMIT", switch
    assert str(primary["CAL_VER"]).startswith("3.7")
    assert primary["CRDS_CTX"] == "hst_0729.pmap" and primary["CALDPVER"]
    for amp, gain in synth.GAIN.items():
        assert primary[f"ATODGN{amp}"] == pytest.approx(gain, rel=1e-6)
        assert primary[f"READNSE{amp}"] == pytest.approx(synth.READNOISE[amp], rel=1e-6)


def test_bias_level_from_overscan(flt):
    """BLEVCORR measured the injected level of each amplifier (BIASLEVn, MEANBLEV)."""
    tolerance_dn = synth.blev_tolerance_dn()
    data_rows = {chip.extver: np.arange(chip.ltv2, chip.ltv2 + synth.NY) for chip in synth.CHIPS}
    means = {}
    for chip in synth.CHIPS:
        for amp in chip.amps:
            level = synth.subtracted_bias_level(chip, amp)[data_rows[chip.extver]].mean()
            means[amp] = level
            assert flt[0].header[f"BIASLEV{amp}"] == pytest.approx(level, abs=tolerance_dn), amp
        assert flt["SCI", chip.extver].header["MEANBLEV"] == pytest.approx(
            np.mean([means[a] for a in chip.amps]), abs=tolerance_dn)


def test_sky_level_in_electrons(flt, uvis):
    """Bias level and overscan gone: the sky is SKY_DN x the mean gain (x PHTRATIO on chip 2)."""
    truth = uvis.truth
    for chip in synth.CHIPS:
        sci = flt["SCI", chip.extver].data.astype(np.float64)
        clean = (truth.sources[chip.extver] < 0.05) & (flt["DQ", chip.extver].data == 0)
        expected = synth.SKY_DN * synth.MEAN_GAIN * (synth.PHTRATIO if chip.ccdchip == 2 else 1.0)
        # the mean of millions of sky pixels: its noise is ~0.01 e-; the bias-level bound dominates
        tolerance = synth.blev_tolerance_dn() * synth.MEAN_GAIN
        assert sci[clean].mean() == pytest.approx(expected, abs=tolerance), chip
        assert clean.mean() > 0.99


def test_sci_and_err_match_an_independent_model(flt, uvis, raw_sci):
    """(raw - bias level - superbias - dark x EXPTIME / ATODGN) x mean gain / flat [x PHTRATIO]."""
    for chip in synth.CHIPS:
        sci, err = synth.expected_flt(chip, raw_sci[chip.extver], uvis.truth)
        got = flt["SCI", chip.extver].data.astype(np.float64)
        scale = synth.MEAN_GAIN / uvis.truth.flat[chip.extver] * (synth.PHTRATIO if chip.ccdchip == 2 else 1.0)
        bound = synth.blev_tolerance_dn() * scale + 2e-6 * np.abs(sci)
        excess = np.abs(got - sci) - bound
        assert excess.max() <= 0, f"chip {chip.ccdchip}: SCI off by {np.abs(got - sci).max():.3f} e-"
        got_err = flt["ERR", chip.extver].data.astype(np.float64)
        assert np.abs(got_err / err - 1).max() < 1e-5, f"chip {chip.ccdchip}: ERR"


def test_bias_dark_and_flat_applied_as_synthesized(flt, uvis):
    """Each box holds one strong feature of one reference; after calibration it is plain sky."""
    truth = uvis.truth
    meandark = {}
    for chip in synth.CHIPS:
        sci = flt["SCI", chip.extver].data.astype(np.float64)
        err = flt["ERR", chip.extver].data.astype(np.float64)
        ratio = synth.PHTRATIO if chip.ccdchip == 2 else 1.0
        sky = synth.SKY_DN * synth.MEAN_GAIN * ratio
        effects = {  # what the feature would leave in the box had its step not run (e-)
            "hot_dark": lambda flat, dark: (dark * synth.EXPTIME).mean(),
            "bias_block": lambda flat, dark: synth.BIAS_BLOCK_DN * synth.MEAN_GAIN,
            "flat_dip": lambda flat, dark: sky * (1 - flat.mean()),
        }
        for name, effect in effects.items():
            _, y0, y1, x0, x1 = truth.boxes[f"{name}{chip.extver}"]
            box = (slice(y0, y1), slice(x0, x1))
            flat = truth.flat[chip.extver][box]
            pixels = flat < 0.95 if name == "flat_dip" else np.ones(flat.shape, bool)
            mean = sci[box][pixels].mean()
            noise = np.sqrt((err[box][pixels] ** 2).mean() / pixels.sum())
            tolerance = 5 * noise + synth.blev_tolerance_dn() * synth.MEAN_GAIN / flat[pixels].min() * ratio
            assert effect(flat[pixels], truth.dark[chip.extver][box][pixels]) > 5 * tolerance, name  # telling
            assert mean == pytest.approx(sky, abs=tolerance), (name, chip.ccdchip)
        gain = synth.per_amp(chip, synth.GAIN)
        meandark[chip.extver] = (truth.dark[chip.extver] * synth.EXPTIME / gain).mean()  # DN
        assert flt["SCI", chip.extver].header["MEANDARK"] == pytest.approx(meandark[chip.extver], rel=1e-4)


def test_dq_from_bpixtab_saturation_and_sink_pixels(flt, uvis, raw_sci):
    truth = uvis.truth
    for chip in synth.CHIPS:
        dq = flt["DQ", chip.extver].data
        assert np.array_equal(dq, synth.expected_dq(chip, raw_sci[chip.extver], truth)), chip
        # rows for another CCDGAIN or another CCDAMP are not applied
        assert not (dq & 8).any()
        # the bad column read by amplifier B lands at its own column (calwf3 offsets raw by 60 columns)
        if chip.ccdchip == 1:
            assert (dq[100:600, 3000] & 4).all() and not (dq[100:600, 3000 - 60] & 4).any()
            assert (dq[:, 1200] & 4).all()
        else:
            assert (dq[998, 2100:2140] & 4).all()
        assert dq[60, 50] & 64
        assert (dq & 2048).any() and (dq & 256).any()  # the saturated stars (A-to-D and full well)
    sinks = flt["DQ", 1].data & 1024
    # SCI,1 (chip 2, read at the bottom): sink at trimmed (1000, 586), its downstream pixel below
    # it, trail above with thresholds 999, 999, 5, 999 -> the 5 is not reached by the sky.
    y, x = 1019 - 19, synth.trimmed_column(611)
    assert [bool(sinks[y + k, x]) for k in range(-1, 6)] == [True, True, True, True, False, True, False]
    y, x = 1500 - 19, synth.trimmed_column(1500)  # turns on after the exposure
    assert not sinks[y - 1:y + 3, x].any()
    sinks = flt["DQ", 2].data & 1024
    y, x = 800, synth.trimmed_column(900)  # SCI,2 (chip 1, read at the top): trail runs downwards
    assert [bool(sinks[y + k, x]) for k in range(2, -4, -1)] == [False, True, True, True, True, False]


def test_photometry(flt):
    primary = flt[0].header
    for chip in synth.CHIPS:
        sci = flt["SCI", chip.extver].header
        assert sci["PHOTMODE"] == f"WFC3 UVIS{chip.ccdchip} {synth.FILTER} MJD#{synth.EXPSTART:.4f}"
        assert sci["PHOTFLAM"] == pytest.approx(synth.photflam(chip), rel=1e-6)
        assert sci["PHOTPLAM"] == pytest.approx(synth.PHOTPLAM, rel=1e-6)
        assert sci["PHOTBW"] == pytest.approx(synth.PHOTBW, rel=1e-6)
    assert primary["PHTRATIO"] == pytest.approx(synth.PHTRATIO, rel=1e-6)
    assert primary["PHTFLAM1"] == pytest.approx(synth.photflam(synth.CHIPS[1]), rel=1e-6)
    assert primary["PHTFLAM2"] == pytest.approx(synth.photflam(synth.CHIPS[0]), rel=1e-6)
    assert primary["PHOTZPT"] == pytest.approx(synth.PHOTZPT)


def test_previews_of_raw_and_flt(uvis):
    Image = pytest.importorskip("PIL.Image", reason="previews need Pillow (pip install 'caldp[previews]')")
    assert uvis.result.returncode == 0, uvis.result.stderr[-3000:]
    previews = uvis.products / "previews"
    for suffix in ("flt", "raw"):
        with Image.open(previews / f"{DATASET}_{suffix}.jpg") as image:
            assert image.format == "JPEG"
            full = image.size
            pixels = np.asarray(image.convert("L"))
        with Image.open(previews / f"{DATASET}_{suffix}_thumb.jpg") as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == 128
        assert pixels.std() > 3, f"{suffix} preview is blank"
        if suffix == "flt":  # two chips stacked in detector layout
            assert full == (synth.NX, 2 * synth.NY)
    metrics = json.loads((uvis.products / "logs" / "metrics.json").read_text())
    assert not metrics["previews"]["failed"], metrics["previews"]
