"""caldp-process with hstcal's real cs0.e (calstis 3.5.0) on STIS/CCD data, offline.

A. The six real STIS/CCD target acquisitions in ../shared/hst-data/stis (ACQ and ACQ/PEAK): every
   switch is OMIT, so cs0.e exits 0 and writes nothing; it still opens CCDTAB, for which
   a stand-in is written under the name hst_0729 selects. The dataset is processed and its
   product is the raw itself, with a preview of the acquisition image.
B. A synthetic STIS/CCD G430L spectroscopic ACCUM exposure with CRSPLIT=2 (two imsets, full frame
   with overscan) built on a real raw's headers, with stand-ins for the seven references basic 2-D
   reads under the names hst_0729 selects (tests/stis_references.py). WAVECORR, X1DCORR, X2DCORR and
   every step needing other references are OMIT (cs0.e 3.5.0 segfaults without the wavecal, S2).
   cs0.e runs DQICORR, BLEVCORR, BIASCORR, CRCORR, DARKCORR, FLATCORR and EXPSCORR, giving _crj
   and _flt; both are checked against the scene's truth.

CRDS runs in-process on a temp copy of ../shared/crds-cache (read-only, no server), so the names
below are hst_0729's real selections.
"""

import concurrent.futures
import contextlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from caldp.references import assign_references, reference_environment

from ..conftest import copy_inputs, offline_crds_env, run_caldp_process, shared_path
from ..support.stis_references import (
    CCD, DQ_BAD_DETECTOR, DQ_BAD_FLAT, DQ_CR, DQ_HOT, DQ_SATURATED, REFERENCE_KEYWORDS, SpectrumScene,
    reference_name, write_ccdtab,
)

pytestmark = pytest.mark.slow

ACQUISITIONS = ("oc7w11viq", "octka7jeq", "octr11h4q", "ocmv0lw6q", "ocoa03q2q", "ocu252cmq")
SCIENCE = "ocdp01spq"  # the synthetic spectroscopic dataset (no such id in the archive)
TEMPLATE = "octka7jeq"  # a G430L ACQ/PEAK raw: its headers become the spectroscopic raw's

# What hst_0729 selects (checked by test_bestrefs_selections; the fixtures write these names).
CCDTAB = "16j1600do_ccd.fits"
SCIENCE_REFERENCES = {
    "CCDTAB": CCDTAB, "BPIXTAB": "h1v11475o_bpx.fits", "CRREJTAB": "j3m1403io_crr.fits",
    "BIASFILE": "08o1450bo_bia.fits", "DARKFILE": "08o14513o_drk.fits", "PFLTFILE": "x6417094o_pfl.fits",
    "LFLTFILE": "pcc2026jo_lfl.fits",
}
CALIBRATED = ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR")
OMITTED = ("WAVECORR", "X1DCORR", "X2DCORR", "PHOTCORR", "GEOCORR", "SC2DCORR", "HELCORR", "DISPCORR",
           "FLUXCORR", "CTECORR", "BACKCORR", "RPTCORR")


@pytest.fixture(scope="module")
def stis_cache(crds_cache, tmp_path_factory):
    """A cache copy holding a CCDTAB stand-in for the acquisitions and the science scene's references."""
    shared_path("hst-data", "stis")
    root = tmp_path_factory.mktemp("stiscache")
    cache = root / "cache"
    shutil.copytree(crds_cache, cache)
    pristine = {p.name for p in (cache / "references" / "hst").iterdir()}
    scene = SpectrumScene()
    science = root / "science"
    science.mkdir()
    scene.write_raw(shared_path("hst-data", "stis", f"{TEMPLATE}_raw.fits"), science / f"{SCIENCE}_raw.fits",
                    SCIENCE)
    # bestrefs on copies: caldp-process must start from the raws as they are
    scratch = copy_inputs([f"{a}_raw.fits" for a in ACQUISITIONS], root / "names", "stis")
    shutil.copyfile(science / f"{SCIENCE}_raw.fits", scratch / f"{SCIENCE}_raw.fits")
    raws = sorted(scratch.iterdir())
    with _environment(offline_crds_env(cache)):
        assignment = assign_references(raws, ref_env=reference_environment(cache))
    references = cache / "references" / "hst"
    written = {}
    for name, selected in assignment.references.items():
        if name.startswith(SCIENCE):
            continue
        ccdtab = reference_name(selected.get("CCDTAB"))
        if ccdtab and ccdtab not in written:
            written[ccdtab] = write_ccdtab(references / ccdtab)
    header = fits.getheader(scratch / f"{SCIENCE}_raw.fits")
    names = {k: references / reference_name(header[k]) for k in REFERENCE_KEYWORDS if reference_name(header.get(k))}
    written.update({p.name: p for p in scene.write_references(names).values()})
    return SimpleNamespace(cache=cache, assignment=assignment, scene=scene, science=science, written=written,
                           pristine=pristine, science_header=header)


@contextlib.contextmanager
def _environment(entries):
    """os.environ with some entries set, for in-process CRDS (crds reads the environment)."""
    saved = dict(os.environ)
    os.environ.update(entries)
    os.environ.pop("CRDS_CONTEXT", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _process(dataset, source, root, cache, hstcal_env):
    out = root / "out"
    env = {**offline_crds_env(cache), "CALDP_HOME": str(root), **hstcal_env}
    result = run_caldp_process([dataset, f"file:{source}", f"file:{out}"], env, cwd=root, timeout=300)
    products = out / "data" / "stis" / dataset
    log_path = products / "logs" / "process.log"
    metrics_path = products / "logs" / "metrics.json"
    return SimpleNamespace(
        result=result, out=out, products=products,
        log=log_path.read_text() if log_path.exists() else "",
        metrics=json.loads(metrics_path.read_text()) if metrics_path.exists() else {},
        message=_message(out, "dataset-processed", dataset), error=_message(out, "dataset-error", dataset),
    )


def _message(out, state, dataset):
    path = out / "messages" / state / dataset
    return path.read_text().splitlines() if path.exists() else None


def _explain(run):
    return (run.result.stdout + run.result.stderr)[-3000:] + "\n--- process.log tail ---\n" + run.log[-3000:]


def _cs0_runs(run):
    return [p for p in run.metrics.get("programs", []) if Path(p["argv"][0]).name == "cs0.e"]


# ------------------------------------------------------------------------------ references
def test_bestrefs_selections(stis_cache):
    """hst_0729's STIS/CCD names: one CCDTAB for everything; none of basic 2-D's files is in the cache."""
    selected = stis_cache.assignment.references
    assert set(selected) == {f"{a}_raw.fits" for a in ACQUISITIONS} | {f"{SCIENCE}_raw.fits"}
    for acquisition in ACQUISITIONS:
        refs = {k: reference_name(v) for k, v in selected[f"{acquisition}_raw.fits"].items()}
        assert refs["CCDTAB"] == CCDTAB, acquisition
        assert "BIASFILE" not in refs, acquisition  # N/A for acquisitions
    science = {k: reference_name(v) for k, v in selected[f"{SCIENCE}_raw.fits"].items()}
    assert {k: science[k] for k in SCIENCE_REFERENCES} == SCIENCE_REFERENCES
    assert not set(SCIENCE_REFERENCES.values()) & stis_cache.pristine  # all are stand-ins
    assert set(stis_cache.written) == set(SCIENCE_REFERENCES.values())
    # the only STIS selections the shared cache holds are files basic 2-D never opens
    in_cache = {v for refs in selected.values() for v in map(reference_name, refs.values()) if v in stis_cache.pristine}
    assert in_cache == {"16j16005o_apd.fits", "o8g1508do_idc.fits"}


def test_standins_have_what_calstis_reads(stis_cache):
    references = stis_cache.cache / "references" / "hst"
    header = stis_cache.science_header
    with fits.open(references / CCDTAB) as hdul:
        rows = hdul[1].data
        match = ((np.char.strip(rows["CCDAMP"]) == header["CCDAMP"]) & (rows["CCDGAIN"] == header["CCDGAIN"])
                 & (rows["CCDOFFST"] == header["CCDOFFST"]) & (rows["BINAXIS1"] == 1) & (rows["BINAXIS2"] == 1))
        assert match.sum() == 1
        assert not hdul[0].header["PEDIGREE"].startswith("DUMMY")
    with fits.open(references / SCIENCE_REFERENCES["BPIXTAB"]) as hdul:
        assert {"PIX1", "PIX2", "LENGTH", "AXIS", "VALUE", "OPT_ELEM"} <= set(hdul[1].columns.names)
        assert (hdul[1].header["SIZAXIS1"], hdul[1].header["SIZAXIS2"]) == (1062, 1044)
    with fits.open(references / SCIENCE_REFERENCES["CRREJTAB"]) as hdul:
        rows = hdul[1].data
        assert len(rows) == 42 and set(rows["CRSPLIT"]) == set(range(2, 9))
        # calstis's row: CRSPLIT 2 and the smallest MEANEXP >= the mean exposure time
        assert rows["MEANEXP"][(rows["CRSPLIT"] == 2) & (rows["MEANEXP"] >= SpectrumScene.EXPTIME)].min() == 1000.0
    for keyword in ("BIASFILE", "DARKFILE", "PFLTFILE", "LFLTFILE"):
        with fits.open(references / SCIENCE_REFERENCES[keyword]) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ"], keyword
            for ext in hdul[1:]:
                assert ext.data.shape == (CCD, CCD), keyword  # full size
                assert ext.header["LTV1"] == ext.header["LTV2"] == 0.0, keyword


def test_standins_are_deterministic(stis_cache, tmp_path):
    again = SpectrumScene()
    names = {k: tmp_path / v for k, v in SCIENCE_REFERENCES.items()}
    for keyword, path in again.write_references(names).items():
        original = stis_cache.cache / "references" / "hst" / SCIENCE_REFERENCES[keyword]
        assert fits.getdata(path, 1).tobytes() == fits.getdata(original, 1).tobytes(), keyword
    again.write_raw(shared_path("hst-data", "stis", f"{TEMPLATE}_raw.fits"), tmp_path / "raw.fits", SCIENCE)
    with fits.open(tmp_path / "raw.fits") as ours, fits.open(stis_cache.science / f"{SCIENCE}_raw.fits") as first:
        for extver in (1, 2):
            assert np.array_equal(ours["SCI", extver].data, first["SCI", extver].data)


# ------------------------------------------------------------------------------ A. acquisitions
@pytest.fixture(scope="module")
def acquisitions(stis_cache, hstcal_env, tmp_path_factory):
    """caldp-process on each of the six acquisitions (two at a time: each is ~1.5 s of Python and CRDS)."""

    def process(dataset):
        root = tmp_path_factory.mktemp(f"acq-{dataset}")
        inputs = copy_inputs([f"{dataset}_raw.fits", f"{dataset}_spt.fits"], root / "inputs", "stis")
        run = _process(dataset, inputs, root, stis_cache.cache, hstcal_env)
        run.dataset, run.inputs = dataset, inputs
        return run

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ACQUISITIONS, pool.map(process, ACQUISITIONS)))


@pytest.fixture(params=ACQUISITIONS)
def acquisition(request, acquisitions):
    run = acquisitions[request.param]
    assert run.result.returncode == 0, _explain(run)
    return run


def test_acquisition_is_processed(acquisition):
    dataset, run = acquisition.dataset, acquisition
    assert run.message and run.error is None
    assert f"data/stis/{dataset}/{dataset}_raw.fits" in run.message
    # cs0.e wrote nothing: the inputs are the products (the spt too, once caldp keeps it)
    fits_products = {p.name for p in run.products.glob("*.fits")}
    assert f"{dataset}_raw.fits" in fits_products
    assert fits_products <= {f"{dataset}_raw.fits", f"{dataset}_spt.fits"}
    with fits.open(run.products / f"{dataset}_raw.fits") as product, \
            fits.open(run.inputs / f"{dataset}_raw.fits") as original:
        assert product[0].header["CRDS_CTX"] == "hst_0729.pmap"
        assert product[0].header["CCDTAB"].strip() == f"oref${CCDTAB}"
        assert all(product[0].header[s] == "OMIT" for s in CALIBRATED + ("CRCORR",))
        assert np.array_equal(product["SCI", 1].data, original["SCI", 1].data)
    [cs0] = _cs0_runs(run)
    assert cs0["returncode"] == 0 and cs0["max_rss_kb"] > 0 and cs0["argv"][1:] == ["-tv", f"{dataset}_raw.fits"]
    assert "No calibration switch was set to PERFORM" in run.log


def test_acquisition_log_says_nothing_to_calibrate(acquisition):
    lines = [line for line in acquisition.log.splitlines() if "had nothing to calibrate" in line]
    assert lines, "process.log does not say that cs0.e had nothing to calibrate"
    assert "cs0.e" in lines[0] and "wrote no product" in lines[0]


def test_acquisition_raw_preview(acquisition):
    from PIL import Image

    dataset = acquisition.dataset
    previews = acquisition.products / "previews"
    full, thumb = previews / f"{dataset}_raw.jpg", previews / f"{dataset}_raw_thumb.jpg"
    assert full.is_file() and thumb.is_file(), sorted(p.name for p in previews.glob("*")) if previews.exists() else []
    ny, nx = fits.getdata(acquisition.products / f"{dataset}_raw.fits", ("SCI", 1)).shape
    with Image.open(full) as image:
        assert image.format == "JPEG" and image.size == (nx, ny)
    with Image.open(thumb) as image:
        assert image.format == "JPEG" and max(image.size) == 128
    assert f"data/stis/{dataset}/previews/{dataset}_raw.jpg" in acquisition.message


def test_acquisition_support_files_are_products(acquisitions):
    missing = [d for d, run in acquisitions.items() if not (run.products / f"{d}_spt.fits").is_file()]
    assert not missing


def test_program_peak_rss_is_the_programs_own(acquisitions):
    """cs0.e doing nothing peaks near 10 MB (GNU time says so); caldp's Python process is far above 40 MB."""
    peaks = {d: _cs0_runs(run)[0]["max_rss_kb"] for d, run in acquisitions.items()}
    assert max(peaks.values()) < 40_000, peaks


# ------------------------------------------------------------------------------ B. spectroscopy
@pytest.fixture(scope="module")
def science(stis_cache, hstcal_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("science")
    inputs = root / "inputs"
    shutil.copytree(stis_cache.science, inputs)
    run = _process(SCIENCE, inputs, root, stis_cache.cache, hstcal_env)
    assert run.result.returncode == 0, _explain(run)
    products = run.products
    with fits.open(products / f"{SCIENCE}_flt.fits") as flt, fits.open(products / f"{SCIENCE}_crj.fits") as crj:
        run.flt = {
            "primary": flt[0].header.copy(),
            "sci": [None] + [flt["SCI", i].data.astype(np.float64) for i in (1, 2)],
            "err": [None] + [flt["ERR", i].data.astype(np.float64) for i in (1, 2)],
            "dq": [None] + [flt["DQ", i].data.astype(np.int64) for i in (1, 2)],
            "headers": [None] + [flt["SCI", i].header.copy() for i in (1, 2)],
            "names": [(h.name, h.ver) for h in flt],
        }
        run.crj = {
            "primary": crj[0].header.copy(), "sci": crj["SCI", 1].data.astype(np.float64),
            "err": crj["ERR", 1].data.astype(np.float64), "dq": crj["DQ", 1].data.astype(np.int64),
            "header": crj["SCI", 1].header.copy(), "names": [(h.name, h.ver) for h in crj],
        }
    run.scene = stis_cache.scene
    return run


def test_science_is_processed(science):
    assert science.message and science.error is None
    names = {p.name for p in science.products.iterdir() if p.is_file()}
    expected = {f"{SCIENCE}_raw.fits", f"{SCIENCE}_flt.fits", f"{SCIENCE}_crj.fits"}
    assert expected <= names
    assert not {n for n in names if "_tmp" in n}  # calstis's blv_tmp/crj_tmp are gone
    for name in expected:
        assert f"data/stis/{SCIENCE}/{name}" in science.message
    assert science.flt["names"] == [("PRIMARY", 1), ("SCI", 1), ("ERR", 1), ("DQ", 1), ("SCI", 2), ("ERR", 2),
                                    ("DQ", 2)]
    assert science.crj["names"] == [("PRIMARY", 1), ("SCI", 1), ("ERR", 1), ("DQ", 1)]
    assert science.flt["sci"][1].shape == science.crj["sci"].shape == (CCD, CCD)  # overscan trimmed
    for header in (science.flt["primary"], science.crj["primary"]):
        assert header["CRDS_CTX"] == "hst_0729.pmap"
    [cs0] = _cs0_runs(science)
    assert cs0["returncode"] == 0 and cs0["argv"][1:] == ["-tv", f"{SCIENCE}_raw.fits"]
    assert "had nothing to calibrate" not in science.log


def test_science_trailer(science):
    trailer = science.products / f"{SCIENCE}.tra"
    assert trailer.is_file()
    assert "CALSTIS-0" in trailer.read_text() and f"data/stis/{SCIENCE}/{SCIENCE}.tra" in science.message


def test_science_switches(science):
    flt, crj = science.flt["primary"], science.crj["primary"]
    for switch in CALIBRATED:
        assert flt[switch] == "COMPLETE", switch
        assert crj[switch] == "COMPLETE", switch
    assert crj["CRCORR"] == "COMPLETE"
    assert flt["CRCORR"] == "PERFORM"  # the flt holds the individual exposures
    for switch in OMITTED:
        assert flt[switch] == crj[switch] == "OMIT", switch
    assert science.crj["header"]["EXPTIME"] == 2 * SpectrumScene.EXPTIME
    assert science.crj["header"]["NCOMBINE"] == 2


def test_science_bias_level_came_from_the_overscan(science):
    """MEANBLEV per exposure is the injected overscan level, not CCDTAB's CCDBIAS."""
    scene = science.scene
    for imset in (1, 2):
        meanblev = science.flt["headers"][imset]["MEANBLEV"]
        assert meanblev == pytest.approx(scene.OVERSCAN_LEVEL[imset - 1], abs=0.1), imset
        assert abs(meanblev - scene.ccdbias) > 20


def test_science_flt_recovers_the_spectrum(science):
    """bias, superbias, temperature-scaled dark and the two flats are all removed: flt = truth + noise."""
    scene = science.scene
    on_trace = np.abs(np.arange(CCD) - scene.TRACE_ROW) <= 4
    for imset in (1, 2):
        sci, err, dq = science.flt["sci"][imset], science.flt["err"][imset], science.flt["dq"][imset]
        good = dq == 0
        residual = (sci - scene.signal)[good]
        assert abs(np.median(residual)) < 0.05
        assert 0.9 < np.std(residual / err[good]) < 1.1  # ERR is the noise actually there
        # the spectrum itself (summed over the trace, CR-free pixels only): within 0.2 %
        band = good & on_trace[:, None]
        assert sci[band].sum() == pytest.approx(scene.signal[band].sum(), rel=2e-3)
        # the flat (PFLTFILE x LFLTFILE) was divided out: no trace of signal * (flat - 1) is left
        # (the regression slope is 1 for data that were not flat-fielded)
        footprint = (scene.signal * (scene.flat - 1))[good]
        assert abs(np.sum(residual * footprint) / np.sum(footprint ** 2)) < 0.15
        # the superbias (2.5 DN on every 157th column) was subtracted
        columns = good & (np.arange(CCD) % 157 == 3)[None, :]
        assert abs(np.mean((sci - scene.signal)[columns])) < 0.2
        # hot dark pixels (up to ~270 DN of dark) come out at the noise level
        hot = [p for p in scene.dark_hot if dq[p] == 0]
        assert len(hot) > 10
        assert max(abs(sci[p] - scene.signal[p]) for p in hot) < 5 * max(err[p] for p in hot)
        assert min(scene.dark_dn()[p] for p in hot) > 50
        assert science.flt["headers"][imset]["MEANDARK"] == pytest.approx(
            np.median(scene.dark_dn()), rel=1e-3)


def test_science_cosmic_rays_flagged_in_flt(science):
    scene = science.scene
    for imset, other in ((1, 2), (2, 1)):
        dq, dq_other = science.flt["dq"][imset], science.flt["dq"][other]
        for ray in scene.rays(imset):
            assert dq[ray.y, ray.x] & DQ_CR, (imset, ray)
            assert not dq_other[ray.y, ray.x] & DQ_CR, (imset, ray)
            assert science.flt["sci"][imset][ray.y, ray.x] > scene.signal[ray.y, ray.x] + 0.5 * ray.dn


def test_science_crj_is_the_cr_free_sum(science):
    """S4: crj = flt1 + flt2 where nothing was rejected; where one exposure was rejected, twice the other."""
    scene = science.scene
    flt1, flt2, crj = science.flt["sci"][1], science.flt["sci"][2], science.crj["sci"]
    rejected1 = (science.flt["dq"][1] & DQ_CR) > 0
    rejected2 = (science.flt["dq"][2] & DQ_CR) > 0
    differs = np.abs(crj - (flt1 + flt2)) > 1e-3 * np.maximum(1.0, np.abs(crj))
    assert np.array_equal(differs, rejected1 | rejected2)
    assert differs.sum() >= len(scene.cosmic_rays)
    only1, only2 = rejected1 & ~rejected2, rejected2 & ~rejected1
    np.testing.assert_allclose(crj[only1], 2 * flt2[only1], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(crj[only2], 2 * flt1[only2], rtol=1e-5, atol=1e-3)
    for ray in scene.cosmic_rays:  # no injected cosmic ray survives in the crj
        assert crj[ray.y, ray.x] < (flt1 + flt2)[ray.y, ray.x] - 0.5 * ray.dn, ray
        assert abs(crj[ray.y, ray.x] - 2 * scene.signal[ray.y, ray.x]) < 6 * science.crj["err"][ray.y, ray.x], ray
    # the limit of CRSPLIT=2: a hit on the same pixel in both exposures looks like the source and stays
    yy, xx = scene.double_hit
    assert not rejected1[yy, xx] and not rejected2[yy, xx]
    assert crj[yy, xx] > 2 * scene.signal[yy, xx] + 4000
    # 8192 stays in the crj only where every exposure was rejected (none here)
    assert not (science.crj["dq"] & DQ_CR).any()
    assert not (rejected1 & rejected2).any()
    good = science.crj["dq"] == 0
    residual = (crj - 2 * scene.signal)[good]
    assert abs(np.median(residual)) < 0.1
    assert 0.9 < np.std(residual / science.crj["err"][good]) < 1.1


def test_science_data_quality(science):
    scene = science.scene
    for dq in (science.flt["dq"][1], science.flt["dq"][2], science.crj["dq"]):
        assert np.all(dq[:, scene.bad_column] & DQ_BAD_DETECTOR)  # BPIXTAB column, G430L
        assert np.count_nonzero(dq & DQ_BAD_DETECTOR) == CCD  # and nothing else
        assert dq[scene.hot_pixel] & DQ_HOT
        assert dq[scene.other_element_pixel] == 0  # a G750L row of the BPIXTAB (S6)
        assert dq[scene.saturated] & DQ_SATURATED  # raw DN above CCDTAB's SATURATE
        assert np.count_nonzero(dq & DQ_SATURATED) == 1
        assert dq[scene.bad_flat] & DQ_BAD_FLAT  # from the PFLTFILE's DQ
        assert np.count_nonzero(dq & (DQ_HOT | DQ_BAD_FLAT)) == 2


def test_science_previews(science):
    previews = science.products / "previews"
    for suffix in ("raw", "flt", "crj"):
        for name in (f"{SCIENCE}_{suffix}.jpg", f"{SCIENCE}_{suffix}_thumb.jpg"):
            assert (previews / name).is_file(), name
