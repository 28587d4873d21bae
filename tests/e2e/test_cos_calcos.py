"""caldp-process with the real calcos (PyPI) on the real COS data, offline, with reference stand-ins.

CRDS context hst_0729 selects 20 references for the FUV association ldfd01010; three are real and
in ../shared's cache, the other 17 (and the three NUV files of the acquisition image ldfd01vlq) are
synthesized by tests/support/cos_references.py under the selected names. The full chain (~1 minute of
calcos, ~1.2 GB) runs once, in a module-scoped fixture; the tests look at its products.
"""

import json
import os
import re
import shutil
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from caldp.references import assign_references, reference_environment

from ..conftest import copy_inputs, offline_crds_env, run_caldp_process, shared_path
from ..support.cos_references import FILETYPES, VCALCOS, reference_name, synthesize_cos_references

pytestmark = pytest.mark.slow

ASSOCIATION = "ldfd01010"
MEMBERS = ("ldfd01vnq", "ldfd01vpq", "ldfd01vrq", "ldfd01vtq")
ASSOCIATION_FILES = [f"{ASSOCIATION}_asn.fits"] + [f"{m}_{s}.fits" for m in MEMBERS for s in ("rawtag_a", "spt")]
ACQ_IMAGE, ACQ_PEAKXD = "ldfd01vlq", "lb4l02m1q"
RAWS = [f"{m}_rawtag_a.fits" for m in MEMBERS] + [f"{ACQ_IMAGE}_rawacq.fits", f"{ACQ_PEAKXD}_rawacq.fits"]
MEMBER_PRODUCTS = ("corrtag_a.fits", "flt_a.fits", "counts_a.fits", "lampflash.fits", "x1d.fits")
ASSOCIATION_PRODUCTS = [f"{ASSOCIATION}_x1dsum.fits"] + [f"{ASSOCIATION}_x1dsum{i}.fits" for i in range(1, 5)]


def _require_calcos():
    if shutil.which("calcos") is None:
        pytest.skip("needs the calcos program on PATH (pip install 'caldp[cal]')")


def _merged_header(path):
    """Primary header plus the first extension's cards (HVLEVELA, EXPSTART) for the synthesizer."""
    header = fits.getheader(path, 0).copy()
    for card in fits.getheader(path, 1).cards:
        if card.keyword not in header and card.keyword not in ("", "COMMENT", "HISTORY"):
            header[card.keyword] = card.value
    return header


@pytest.fixture(scope="module")
def cos_refs(crds_cache, tmp_path_factory):
    """A cache copy with stand-ins for every COS reference hst_0729 selects and the cache lacks."""
    shared_path("hst-data", "cos")
    cache = tmp_path_factory.mktemp("coscache") / "cache"
    shutil.copytree(crds_cache, cache)
    scratch = copy_inputs(RAWS, tmp_path_factory.mktemp("cosnames"), "cos")
    saved = dict(os.environ)
    os.environ.update(offline_crds_env(cache))
    os.environ.pop("CRDS_CONTEXT", None)
    try:
        assignment = assign_references([scratch / r for r in RAWS], ref_env=reference_environment(cache))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    headers = {raw: _merged_header(scratch / raw) for raw in RAWS}
    references = cache / "references" / "hst"
    written = synthesize_cos_references(list(headers.values()), references)
    return SimpleNamespace(cache=cache, references=references, headers=headers, written=written,
                           assignment=assignment)


def _process(dataset, source, out, cache, home):
    _require_calcos()
    env = {**offline_crds_env(cache), "CALDP_HOME": str(home)}
    return run_caldp_process([dataset, f"file:{source}", f"file:{out}"], env, cwd=home, timeout=600)


@pytest.fixture(scope="module")
def association(cos_refs, tmp_path_factory):
    """The one full run: caldp-process ldfd01010 with the real calcos."""
    _require_calcos()
    root = tmp_path_factory.mktemp("cosrun")
    inputs = copy_inputs(ASSOCIATION_FILES, root / "inputs", "cos")
    out = root / "out"
    result = _process(ASSOCIATION, inputs, out, cos_refs.cache, root)
    products = out / "data" / "cos" / ASSOCIATION
    log = (products / "logs" / "process.log").read_text() if (products / "logs" / "process.log").exists() else ""
    return SimpleNamespace(result=result, inputs=inputs, out=out, products=products, log=log)


def _message(out, state, name):
    path = out / "messages" / state / name
    return path.read_text().splitlines() if path.exists() else None


def _calcos_lines(log):
    """caldp's process.log from the start of the calcos run (calcos's output is streamed into it)."""
    start = log.find("running: ")
    assert start >= 0, "calcos did not run"
    return log[start:].splitlines()


# ------------------------------------------------------------------------------ the stand-ins
def test_bestrefs_names_and_standins(cos_refs):
    """hst_0729's selections: 3 real FUV files in the cache, 17 FUV + 3 NUV stand-ins written."""
    fuv = cos_refs.assignment.references["ldfd01vnq_rawtag_a.fits"]
    assert len(fuv) == 20
    real = {"DEADTAB": "s7g1700gl_dead.fits", "WCPTAB": "u1t1616ql_wcp.fits", "LAMPTAB": "24914347l_lamp.fits"}
    for keyword, name in real.items():
        assert reference_name(fuv[keyword]) == name
        assert name not in cos_refs.written  # real files are used as they are
    assert {reference_name(v) for k, v in fuv.items() if k not in real} <= set(cos_refs.written)
    nuv = {k: reference_name(v) for k, v in cos_refs.assignment.references["ldfd01vlq_rawacq.fits"].items()}
    assert nuv == {"FLATFILE": "x5v1944hl_flat.fits", "DEADTAB": "s7g1700ql_dead.fits",
                   "BPIXTAB": "uas19356l_bpix.fits"}
    assert len(cos_refs.written) == 20
    for name, path in cos_refs.written.items():
        header = fits.getheader(path)
        assert header["FILETYPE"] in FILETYPES.values(), name
        assert header["VCALCOS"] == VCALCOS and header["INSTRUME"] == "COS"
    # the acquisition calcos skips (ACQ/PEAKXD) gets no stand-ins of its own
    peakxd_only = {reference_name(v) for v in cos_refs.assignment.references["lb4l02m1q_rawacq.fits"].values()} \
        - {reference_name(v) for v in fuv.values()}
    assert not peakxd_only & set(cos_refs.written)


def test_standins_are_deterministic_and_only_fill_gaps(cos_refs, tmp_path):
    headers = [cos_refs.headers[r] for r in RAWS]
    again = tmp_path / "again"
    again.mkdir()
    for name in ("24914347l_lamp.fits", "z2d19237l_1dx.fits", "z2d1925ql_2zx.fits", "u1t1616ql_wcp.fits",
                 "z1r1943el_1dx.fits", "z1q2219el_2zx.fits", "23n1744jl_lamp.fits", "s7g1700gl_dead.fits"):
        shutil.copyfile(cos_refs.references / name, again / name)
    written = synthesize_cos_references(headers, again)
    assert set(written) == set(cos_refs.written)
    for name, path in written.items():
        assert path.read_bytes() == cos_refs.written[name].read_bytes(), f"{name} differs between runs"
    assert synthesize_cos_references(headers, again) == {}  # nothing missing any more


def test_standin_tables_have_what_calcos_selects(cos_refs):
    refs = cos_refs.references
    header = cos_refs.headers["ldfd01vnq_rawtag_a.fits"]
    name = {k: reference_name(header[k]) for k in FILETYPES if reference_name(header.get(k))}
    with fits.open(refs / name["TRACETAB"]) as hdul:
        assert hdul[0].header["LIFE_ADJ"] == header["LIFE_ADJ"] == 3
        assert hdul[1].data["TRACE"].shape[1] > 16385
    with fits.open(refs / name["XTRACTAB"]) as hdul:
        rows = hdul[1].data
        mode = (rows["SEGMENT"] == "FUVA") & (rows["OPT_ELEM"] == "G140L") & (rows["CENWAVE"] == 1105)
        assert {"PSA", "WCA"} <= set(rows["APERTURE"][mode])
    with fits.open(refs / name["TWOZXTAB"]) as hdul:
        assert "SLOPE" not in hdul[1].columns.names
        row = hdul[1].data[(hdul[1].data["APERTURE"] == "PSA") & (hdul[1].data["CENWAVE"] == 1105)][0]
        assert 0 <= row["LOWER_OUTER"] <= row["LOWER_INNER"] <= row["UPPER_INNER"] <= row["UPPER_OUTER"] <= 1
    with fits.open(refs / name["PROFTAB"]) as hdul:
        profile = hdul[1].data["PROFILE"][0]
        assert profile.shape[1] == 16384 and profile.shape[0] >= 226
        assert np.allclose(profile.sum(axis=0), 1, atol=1e-4)
    with fits.open(refs / name["DISPTAB"]) as hdul:
        rows = hdul[1].data
        psa = rows[(rows["APERTURE"] == "PSA") & (rows["CENWAVE"] == 1105)]
        assert sorted(psa["FPOFFSET"]) == [-2, -1, 0, 1]
        assert np.all(psa["COEFF"] == psa["COEFF"][0])  # one relation for every FP-POS
    with fits.open(refs / name["SPWCSTAB"]) as hdul:
        assert "SPECRES" in hdul[1].columns.names
    with fits.open(refs / name["TDSTAB"]) as hdul:
        assert "REF_TIME" in hdul[1].header and "DUMMY" not in set(hdul[1].data["PEDIGREE"])
    with fits.open(refs / name["BRFTAB"]) as hdul:
        assert hdul[1].header["TIMESTEP"] > 0
    with fits.open(refs / name["YWLKFILE"]) as hdul:
        assert [h.data.shape for h in hdul[1:] if h.header["SEGMENT"] == "FUVA"] == [(32, 1024)]
    with fits.open(refs / name["FLATFILE"]) as hdul:
        flat = hdul["FUVA", 1].data
        assert 0.95 < flat.mean() < 1.05 and 0.85 <= flat.min() and flat.max() <= 1.15


# ------------------------------------------------------------------------------ the association
def test_association_is_processed(association):
    result = association.result
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert _message(association.out, "dataset-processed", ASSOCIATION)
    assert _message(association.out, "dataset-error", ASSOCIATION) is None


def test_association_products_and_message(association):
    names = {p.name for p in association.products.iterdir()}
    expected = set(ASSOCIATION_PRODUCTS)
    for member in MEMBERS:
        expected |= {f"{member}_{suffix}" for suffix in MEMBER_PRODUCTS} | {f"{member}.tra"}
    assert expected <= names, sorted(expected - names)
    assert not any(n.endswith("_x1d_a.fits") for n in names)  # calcos removes its intermediate
    listed = _message(association.out, "dataset-processed", ASSOCIATION)[1:]
    for name in expected:
        assert f"data/cos/{ASSOCIATION}/{name}" in listed, name
    for member in MEMBERS:
        trailer = (association.products / f"{member}.tra").read_text()
        assert trailer.startswith(f"CALCOS version {metadata.version('calcos')}")


def test_every_step_completed(association):
    with fits.open(association.products / f"{MEMBERS[0]}_x1d.fits") as hdul:
        primary = hdul[0].header
        for switch in ("FLATCORR", "DEADCORR", "DQICORR", "TEMPCORR", "GEOCORR", "IGEOCORR", "RANDCORR", "XWLKCORR",
                       "YWLKCORR", "PHACORR", "TRCECORR", "ALGNCORR", "DOPPCORR", "HELCORR", "X1DCORR", "BACKCORR",
                       "WAVECORR", "FLUXCORR", "TDSCORR"):
            assert primary[switch] == "COMPLETE", switch
        assert primary["CAL_VER"].strip() == metadata.version("calcos")
        assert primary["CALDPVER"] and primary["CRDS_CTX"] == "hst_0729.pmap"
        assert 0.02 < primary["PLATESC"] < 0.03 and primary["SPECRES"] > 0


def test_wavelengths_and_fluxes(association):
    for name in [f"{m}_x1d.fits" for m in MEMBERS] + ASSOCIATION_PRODUCTS:
        with fits.open(association.products / name) as hdul:
            row = hdul[1].data[0]
            assert row["SEGMENT"] == "FUVA"
            wavelength, flux, good = row["WAVELENGTH"], row["FLUX"], row["DQ_WGT"] > 0
            assert len(wavelength) == 16384
            assert np.all(np.diff(wavelength) > 0), f"{name}: wavelengths not increasing"
            assert 1000 < wavelength[0] < 1100 and 2250 < wavelength[-1] < 2400  # G140L/1105 on FUVA
            assert good.sum() > 10000, name
            assert np.all(np.isfinite(flux[good])) and np.all(np.isfinite(row["ERROR"][good])), name
            assert np.median(flux[good & (wavelength > 1300) & (wavelength < 1800)]) > 0, name
    with fits.open(association.products / f"{ASSOCIATION}_x1dsum.fits") as hdul:
        row = hdul[1].data[0]
        airglow = (row["WAVELENGTH"] > 1150) & (row["WAVELENGTH"] < 1280)
        peak = row["WAVELENGTH"][airglow][np.argmax(row["GROSS"][airglow])]
        assert abs(peak - 1215.67) < 1.5, f"Lyman-alpha airglow at {peak:.2f} A"


def test_x1dsum_exptime_is_the_members_sum(association):
    members = []
    for member in MEMBERS:
        with fits.open(association.products / f"{member}_x1d.fits") as hdul:
            members.append(float(hdul[1].header["EXPTIME"]))
        raw = float(fits.getval(association.inputs / f"{member}_rawtag_a.fits", "EXPTIME", ext=1))
        assert members[-1] == pytest.approx(raw, abs=1.0)
    with fits.open(association.products / f"{ASSOCIATION}_x1dsum.fits") as hdul:
        assert float(hdul[1].header["EXPTIME"]) == pytest.approx(sum(members), abs=0.01)
        assert float(hdul[1].data["EXPTIME"][0]) == pytest.approx(sum(members), abs=0.01)


def test_member_products(association):
    for member in MEMBERS:
        for kind in ("flt_a", "counts_a"):
            with fits.open(association.products / f"{member}_{kind}.fits") as hdul:
                assert [h.name for h in hdul[1:4]] == ["SCI", "ERR", "DQ"]
                assert hdul["SCI"].data.shape == (1024, 16384)
        with fits.open(association.products / f"{member}_corrtag_a.fits") as hdul:
            events = hdul["EVENTS"].data
            for column in ("XCORR", "YCORR", "XFULL", "YFULL", "WAVELENGTH", "EPSILON", "DQ"):
                assert column in events.names
            assert "GTI" in hdul and "TIMELINE" in hdul
            assert hdul[0].header["RANDSEED"] == 1
        with fits.open(association.products / f"{member}_lampflash.fits") as hdul:
            flashes = hdul[1].data
            assert len(flashes) == hdul[1].header["NUMFLASH"] >= 2
            assert all(flashes["SPEC_FOUND"]), f"{member}: a tagflash wavecal was not found"


def test_randseed_set_by_caldp(association):
    for member in MEMBERS:
        assert fits.getval(association.products / f"{member}_rawtag_a.fits", "RANDSEED") == 1
        assert fits.getval(association.inputs / f"{member}_rawtag_a.fits", "RANDSEED") == -1  # input untouched


def test_provenance_and_metrics(association):
    logs = association.products / "logs"
    provenance = json.loads((logs / "provenance.json").read_text())
    assert provenance["versions"]["calcos"] == metadata.version("calcos")
    assert provenance["crds_context"] == "hst_0729.pmap"
    metrics = json.loads((logs / "metrics.json").read_text())
    runs = [p for p in metrics["programs"] if Path(p["argv"][0]).name == "calcos"]
    assert len(runs) == 1
    assert runs[0]["argv"][1:] == [f"{ASSOCIATION}_asn.fits"]
    assert runs[0]["returncode"] == 0 and runs[0]["wall_seconds"] > 0 and runs[0]["max_rss_kb"] > 0


def test_calcos_ran_clean(association):
    """With these stand-ins calcos prints no warning or error for the association."""
    lines = _calcos_lines(association.log)
    assert any("CALCOS version" in line for line in lines)
    noisy = [line for line in lines if re.search(r"\b(Warning|ERROR|Error):", line)]
    assert noisy == [], "\n".join(noisy[:20])
    assert not re.search(r"not found|no rows|Missing row", "\n".join(lines))


# ------------------------------------------------------------------------------ the acquisitions
def test_peakxd_acquisition_exit_5_is_ignored(cos_refs, tmp_path):
    inputs = copy_inputs([f"{ACQ_PEAKXD}_rawacq.fits", f"{ACQ_PEAKXD}_spt.fits"], tmp_path / "in", "cos")
    out = tmp_path / "out"
    result = _process(ACQ_PEAKXD, inputs, out, cos_refs.cache, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    log = (out / "data" / "cos" / ACQ_PEAKXD / "logs" / "process.log").read_text()
    assert "Ignoring exit status 5 of calcos" in log
    assert "not an ACQ/IMAGE" in log
    assert _message(out, "dataset-processed", ACQ_PEAKXD)


def test_image_acquisition_is_calibrated(cos_refs, tmp_path):
    inputs = copy_inputs([f"{ACQ_IMAGE}_rawacq.fits", f"{ACQ_IMAGE}_spt.fits"], tmp_path / "in", "cos")
    out = tmp_path / "out"
    result = _process(ACQ_IMAGE, inputs, out, cos_refs.cache, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    products = out / "data" / "cos" / ACQ_IMAGE
    listed = _message(out, "dataset-processed", ACQ_IMAGE)
    for name in (f"{ACQ_IMAGE}_flt.fits", f"{ACQ_IMAGE}_counts.fits", f"{ACQ_IMAGE}.tra"):
        assert (products / name).exists(), name
        assert f"data/cos/{ACQ_IMAGE}/{name}" in listed
    with fits.open(products / f"{ACQ_IMAGE}_flt.fits") as hdul:
        assert sum(h.name == "SCI" for h in hdul) == 2
        for switch in ("FLATCORR", "DEADCORR", "DQICORR"):
            assert hdul[0].header[switch] == "COMPLETE", switch
        assert np.all(np.isfinite(hdul["SCI", 1].data))
    log = (products / "logs" / "process.log").read_text()
    assert "Ignoring exit status" not in log
    assert "No further processing for this dataset (status = 0)" in log


# ------------------------------------------------------------------------------ a missing stand-in
@pytest.fixture(scope="module")
def missing_disptab(cos_refs, tmp_path_factory):
    """The association without the DISPTAB stand-in: calcos refuses it up front (a few seconds)."""
    _require_calcos()
    root = tmp_path_factory.mktemp("cosmissing")
    cache = root / "cache"
    shutil.copytree(cos_refs.cache, cache, copy_function=os.link)  # hard links: nothing here is written
    disptab = reference_name(cos_refs.headers["ldfd01vnq_rawtag_a.fits"]["DISPTAB"])
    (cache / "references" / "hst" / disptab).unlink()
    inputs = copy_inputs(ASSOCIATION_FILES, root / "in", "cos")
    out = root / "out"
    result = _process(ASSOCIATION, inputs, out, cache, root)
    log = out / "data" / "cos" / ASSOCIATION / "logs" / "process.log"
    return SimpleNamespace(result=result, out=out, path=cache / "references" / "hst" / disptab,
                           log=log.read_text() if log.exists() else "")


def test_missing_standin_fails_with_exit_23(missing_disptab):
    result = missing_disptab.result
    assert result.returncode == 23, (result.stdout + result.stderr)[-3000:]
    error = _message(missing_disptab.out, "dataset-error", ASSOCIATION)
    assert error[1] == "exit: 23 STAGE1_ERROR"
    assert error[2].startswith("cause: calcos exited with status 1")
    assert _message(missing_disptab.out, "dataset-processed", ASSOCIATION) is None
    assert sorted(p.name for p in (missing_disptab.out / "data" / "cos" / ASSOCIATION).iterdir()) == ["logs"]
    # calcos's own report is in the log: its ERROR line and the missing keyword=path
    assert "ERROR:  The following reference file is missing:" in missing_disptab.log
    assert f"disptab={missing_disptab.path}" in missing_disptab.log.lower()


def test_missing_standin_cause_is_calcos_error_line(missing_disptab):
    error = _message(missing_disptab.out, "dataset-error", ASSOCIATION)
    assert "The following reference file is missing" in error[2], error[2]
    assert "disptab=" in error[2].lower()
