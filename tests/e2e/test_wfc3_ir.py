"""WFC3/IR end to end with the real calwf3.e (and runastrodriz): the four real MULTIACCUM raws.

Each dataset goes through the real command line, `caldp-process <id> file:<in> file:<out>`: CRDS
bestrefs (hst_0729, in-process, on a temp copy of ../shared/crds-cache with CRDS_READONLY_CACHE=1),
calwf3.e, runastrodriz where DRIZCORR=PERFORM, previews, publish. Each run happens once (module
fixtures, run two at a time) and many tests look at its products.

* Parity: the pristine raws with DRIZCORR=OMIT in the test's copy, against a cache holding the
  golden stand-in references (../shared/golden/wfc3-ir-<id>/refs). The golden products are
  calwf3.e 3.7.3's own output on the same raw after the same bestrefs, so caldp's _ima and _flt
  must be identical to them: every HDU's pixels, and every header card but the few that
  legitimately differ per run (HEADER_DIFFERENCES below says which and why).
* Stage 2: the pristine raws as the archive serves them (DRIZCORR=PERFORM), with stand-ins for the
  IDCTAB and MDRIZTAB hst_0729 selects (tests/support/wfc3_references.py): calwf3.e, then runastrodriz
  makes a _drz.fits whose astrometry agrees with the archive's own (OPUS) WCS.
"""

import concurrent.futures
import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from caldp import __version__ as CALDP_VERSION

from ..conftest import copy_inputs, offline_crds_env, run_caldp_process, shared_path
from ..support.wfc3_references import PLATE_SCALE, synthesize_wfc3_drizzle_references

pytestmark = pytest.mark.slow

IDS = ("ibxy01aoq", "ibxy04s4q", "ibh7a7lsq", "ibh7a7m2q")
CALWF3_VERSION = "3.7.3"
CONTEXT = "hst_0729.pmap"
WORKERS = max(1, min(len(IDS), os.cpu_count() or 1))
IR_BORDER = 5  # reference pixels on each edge of an IR raw/ima array
PREVIEW_BAD_DQ = 1 | 2 | 4 | 16 | 512  # README: pixels with these DQ bits are black in previews

# Header keywords whose values may differ from the golden's, and why; the parity test checks the
# value ours has instead. Everything else (CRDS_CTX's value, CRDS_VER, CAL_VER, FILENAME, ORIGIN,
# IRAF-TLM (calwf3 writes none), every HISTORY card, the card comments and the card order) was found
# identical and is compared.
HEADER_DIFFERENCES = {
    "DATE": "every HDU: the day the file was written (hstio stamps each HDU); the golden has its own day",
    "CALDPVER": "primary: caldp's version, stamped on every product after calwf3.e (provenance.stamp_products)",
    "CSYS_VER": "primary: the calibration system version from the environment, stamped with CALDPVER",
    "DRIZCORR": "primary: OMIT, the test's edit of its copy of the raw (stage 1 only)",
    "MDRIZTAB": "primary: N/A, what bestrefs makes of DRIZCORR=OMIT (the rmap's relevance is DRIZCORR != OMIT)",
}
# Cards caldp rewrites with the same value and its own comment (provenance.stamp_products): their
# values are compared, their comments are not.
RESTAMPED = {"CRDS_CTX"}


# ----------------------------------------------------------------------------------------- data
def golden(name, *parts):
    return shared_path("golden", f"wfc3-ir-{name}", *parts)


def golden_input_header(name):
    return fits.getheader(golden(name, "input", f"{name}_raw.fits.gz"))


def selected_references(header):
    """{keyword: 'iref$name'} of every reference a post-bestrefs header names (N/A excluded)."""
    return {k: str(v).strip() for k, v in header.items()
            if isinstance(v, str) and re.fullmatch(r"(iref|mtab)\$\S+", v.strip())}


def _sha256sums(name):
    sums = {}
    for line in golden(name, "SHA256SUMS").read_text().splitlines():
        if line and not line.startswith("#"):
            digest, path = line.split()
            sums[path] = digest
    return sums


def gunzip_checked(source, target, digest):
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest, f"{target.name}: not the golden's bytes"
    return target


@pytest.fixture(scope="module")
def wfc3_cache(crds_cache, tmp_path_factory):
    """A cache copy with the goldens' stand-ins (gunzipped, sha256-checked) and the drizzle stand-ins."""
    cache = tmp_path_factory.mktemp("wfc3-refs") / "cache"
    shutil.copytree(crds_cache, cache)
    references = cache / "references" / "hst"
    written = {}
    for name in IDS:
        sums = _sha256sums(name)
        for ref in sorted(golden(name, "refs").iterdir()):
            target = references / ref.name.removesuffix(".gz")
            digest = sums[f"refs/{target.name}"]
            if target.name in written:  # goldens share references: they must be the same file
                assert written[target.name] == digest, f"{target.name} differs between goldens"
                continue
            assert not target.exists(), f"{target.name} is already in the cache: a real file would be shadowed"
            gunzip_checked(ref, target, digest)
            written[target.name] = digest
    synthesize_wfc3_drizzle_references([golden_input_header(n) for n in IDS], references)
    return cache


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The goldens' expected products, uncompressed once (sha256-checked): {(id, suffix): path}."""
    where = tmp_path_factory.mktemp("wfc3-expected")
    files = {}
    for name in IDS:
        sums = _sha256sums(name)
        for suffix in ("_ima.fits", "_flt.fits", ".tra"):
            source = golden(name, "expected", f"{name}{suffix}" + (".gz" if suffix.endswith(".fits") else ""))
            files[name, suffix] = gunzip_checked(source, where / f"{name}{suffix}", sums[f"expected/{name}{suffix}"])
    return files


@dataclasses.dataclass
class Run:
    name: str
    returncode: int
    stderr: str
    out: Path

    @property
    def products(self):
        return self.out / "data" / "wfc3" / self.name

    def product(self, suffix):
        return self.products / f"{self.name}{suffix}"

    def json(self, log):
        return json.loads((self.products / "logs" / log).read_text())

    @property
    def log(self):
        return (self.products / "logs" / "process.log").read_text()

    def check(self):
        assert self.returncode == 0, f"caldp-process {self.name} exited {self.returncode}:\n{self.stderr[-4000:]}"


def run_all(root, cache, env, prepare=None):
    """caldp-process on every dataset (WORKERS at a time), each with its own input, output and home."""
    def one(name):
        base = root / name
        source = copy_inputs([f"{name}_raw.fits"], base / "in", "wfc3")
        if prepare:
            prepare(source / f"{name}_raw.fits")
        home, out = base / "home", base / "out"
        home.mkdir()
        result = run_caldp_process([name, f"file:{source}", f"file:{out}"],
                                   {**offline_crds_env(cache), **env, "CALDP_HOME": str(home)}, cwd=home,
                                   timeout=600)
        return Run(name, result.returncode, result.stdout + result.stderr, out)

    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        return {run.name: run for run in pool.map(one, IDS)}


def omit_drizzle(raw):
    with fits.open(raw, mode="update") as hdul:
        assert hdul[0].header["DRIZCORR"] == "PERFORM"
        hdul[0].header["DRIZCORR"] = "OMIT"


@pytest.fixture(scope="module")
def parity_runs(wfc3_cache, hstcal_env, tmp_path_factory):
    env = {**hstcal_env, "CALDP_CAL": "hstcal"}
    return run_all(tmp_path_factory.mktemp("wfc3-parity"), wfc3_cache, env, prepare=omit_drizzle)


@pytest.fixture(scope="module")
def drizzle_runs(wfc3_cache, hstcal_env, tmp_path_factory):
    if shutil.which("runastrodriz") is None:
        pytest.skip("runastrodriz is not installed (pip install 'caldp[cal]')")
    env = {**hstcal_env, "CALDP_CAL": "hstcal"}
    return run_all(tmp_path_factory.mktemp("wfc3-drizzle"), wfc3_cache, env)


# ----------------------------------------------------------------------------------------- FITS comparison
_BITPIX = {8: np.uint8, 16: np.int16, 32: np.int32, 64: np.int64, -32: np.float32, -64: np.float64}


def pixels(hdu):
    """An HDU's array; a constant array (NAXIS=0 with NPIX1, NPIX2, PIXVALUE) is expanded."""
    header = hdu.header
    if hdu.is_image and header.get("NAXIS", 0) == 0 and "PIXVALUE" in header:
        naxes = 3 if "NPIX3" in header else 2
        shape = tuple(header[f"NPIX{axis}"] for axis in range(naxes, 0, -1))
        return np.full(shape, header["PIXVALUE"], _BITPIX[header["BITPIX"]])
    return hdu.data


def data_differences(ours, expected):
    """Where two HDU lists' pixels differ (names, versions, shapes, dtypes, values incl. NaN)."""
    found = []
    if [(h.name, h.ver) for h in ours] != [(h.name, h.ver) for h in expected]:
        return [f"HDUs {[(h.name, h.ver) for h in ours]} != {[(h.name, h.ver) for h in expected]}"]
    for index, (a, b) in enumerate(zip(ours, expected)):
        where = f"HDU {index} {a.name},{a.ver}"
        da, db = pixels(a), pixels(b)
        if da is None or db is None:
            if not (da is None and db is None):
                found.append(f"{where}: one has no data")
            continue
        if da.shape != db.shape or da.dtype != db.dtype:
            found.append(f"{where}: {da.shape} {da.dtype} != {db.shape} {db.dtype}")
        elif not np.array_equal(da, db, equal_nan=da.dtype.kind == "f"):
            diff = da != db
            found.append(f"{where}: {int(diff.sum())} pixels differ, first at {np.argwhere(diff)[0].tolist()}")
    return found


def cards(header, skip):
    return [(c.keyword, c.value, "" if c.keyword in RESTAMPED else c.comment)
            for c in header.cards if c.keyword not in skip]


def header_differences(ours, expected, allowed=HEADER_DIFFERENCES):
    """Cards (keyword, value, comment, in order) that differ, leaving out the `allowed` keywords."""
    found = []
    for index, (a, b) in enumerate(zip(ours, expected)):
        ca, cb = cards(a.header, allowed), cards(b.header, allowed)
        if ca != cb:
            extra = [c for c in ca if c not in cb][:5]
            lost = [c for c in cb if c not in ca][:5]
            found.append(f"HDU {index} {a.name},{a.ver}: ours has {extra}, golden has {lost}")
    return found


# ----------------------------------------------------------------------------------------- previews
def rank_correlation(x, y):
    """Spearman's rank correlation (ties broken by position; fine for these large samples)."""
    def ranks(a):
        r = np.empty(a.size)
        r[np.argsort(a, kind="stable")] = np.arange(a.size)
        return r
    return float(np.corrcoef(ranks(np.ravel(x)), ranks(np.ravel(y)))[0, 1])


def picture(jpg):
    """A preview's grey levels in FITS order (README: FITS row 1 is at the bottom)."""
    with Image.open(jpg) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("L"), float)[::-1]


def shown_pixels(hdul, ver, border):
    """Pixels a preview is expected to show faithfully: no bad DQ bits, no reference pixels."""
    sci = hdul["SCI", ver]
    good = (pixels(hdul["DQ", ver]) & PREVIEW_BAD_DQ) == 0
    if border:
        good[:border] = good[-border:] = False
        good[:, :border] = good[:, -border:] = False
    return sci.data.astype(float), good


def read_correlations(jpg, fits_path, border):
    """{SCI version: rank correlation of the preview with that SCI over the shown pixels}."""
    pic = picture(jpg)
    with fits.open(fits_path) as hdul:
        result = {}
        for hdu in hdul:
            if hdu.name == "SCI":
                data, good = shown_pixels(hdul, hdu.ver, border)
                assert pic.shape == data.shape, f"{jpg.name} is {pic.shape}, the frame {data.shape}"
                result[hdu.ver] = rank_correlation(pic[good], data[good])
        times = {h.ver: h.header["SAMPTIME"] for h in hdul if h.name == "SCI" and "SAMPTIME" in h.header}
    longest = max(times, key=times.get) if times else 1
    return result, longest


def check_not_blank(jpg, shape=None):
    pic = picture(jpg)
    if shape is not None:
        assert pic.shape == shape, f"{jpg.name}: {pic.shape} != {shape}"
    assert pic.std() > 10 and np.unique(pic).size >= 32, f"{jpg.name} is (nearly) blank"
    return pic


# ============================================================================= 1. parity with the goldens
def test_comparison_helpers_see_one_changed_pixel_and_card(expected):
    """The parity checks below cannot pass vacuously: the helpers find a single-bit change."""
    path = expected["ibh7a7lsq", "_ima.fits"]
    with fits.open(path) as a, fits.open(path) as b:
        constant = [h for h in a if h.header.get("NAXIS") == 0 and "PIXVALUE" in h.header]
        assert constant, "the golden IMA should hold constant (PIXVALUE) SAMP/TIME arrays"
        assert data_differences(a, b) == [] and header_differences(a, b) == []
        b["DQ", 3].data[10, 20] ^= 8192
        b["SCI", 5].header["MEANBLEV"] += 1e-6
        b[constant[0].name, constant[0].ver].header["PIXVALUE"] += 1
        assert len(data_differences(a, b)) == 2
        assert len(header_differences(a, b)) == 2
        assert header_differences(a, b, allowed=set(HEADER_DIFFERENCES) | {"MEANBLEV", "PIXVALUE"}) == []


@pytest.mark.parametrize("name", IDS)
def test_processed_and_published(parity_runs, name):
    run = parity_runs[name]
    run.check()
    message = (run.out / "messages" / "dataset-processed" / name).read_text().splitlines()
    assert message[0].startswith(f"# caldp {CALDP_VERSION} dataset-processed {name}")
    published = sorted(str(p.relative_to(run.out)) for p in run.products.rglob("*") if p.is_file())
    assert sorted(message[1:]) == published
    products = {p.name for p in run.products.iterdir() if p.is_file()}
    assert products == {f"{name}_raw.fits", f"{name}_ima.fits", f"{name}_flt.fits", f"{name}.tra"}
    assert not (run.out / "messages" / "dataset-error" / name).exists()


@pytest.mark.parametrize("name", IDS)
def test_bestrefs_selects_the_golden_references(parity_runs, name):
    """hst_0729 on the pristine raw names exactly the goldens' stand-ins, and all of them are used."""
    run = parity_runs[name]
    run.check()
    provenance = run.json("provenance.json")
    assert provenance["crds_context"] == CONTEXT
    selected = provenance["references"][f"{name}_raw.fits"]
    expected = selected_references(golden_input_header(name))
    assert expected.pop("MDRIZTAB") == "iref$3562021pi_mdz.fits"  # not selected with DRIZCORR=OMIT
    assert selected == expected
    standins = {p.name.removesuffix(".gz") for p in golden(name, "refs").iterdir()}
    iref = {v.split("$")[1] for k, v in selected.items() if v.startswith("iref$") and k != "IDCTAB"}
    assert iref == standins and len(standins) == 8
    # Only the obsolete synphot tables (calwf3 uses IMPHTTAB) are absent from the cache.
    assert sorted(k for _, k, _ in provenance["missing_references"]) == ["COMPTAB", "GRAPHTAB"]


@pytest.mark.parametrize("suffix", ["_ima.fits", "_flt.fits"])
@pytest.mark.parametrize("name", IDS)
def test_products_identical_to_calwf3_golden(parity_runs, expected, name, suffix):
    run = parity_runs[name]
    run.check()
    with fits.open(run.product(suffix)) as ours, fits.open(expected[name, suffix]) as gold:
        assert len(ours) == len(gold) == (6 if suffix == "_flt.fits" else 1 + 5 * gold[0].header["NSAMP"])
        assert data_differences(ours, gold) == []
        assert header_differences(ours, gold) == []
        # The cards allowed to differ have the values they must have.
        assert set(ours[0].header) - set(gold[0].header) == {"CALDPVER", "CSYS_VER"}
        assert ours[0].header["CALDPVER"] == CALDP_VERSION
        assert ours[0].header["DRIZCORR"] == "OMIT" and gold[0].header["DRIZCORR"] == "PERFORM"
        assert ours[0].header["MDRIZTAB"] == "N/A" and gold[0].header["MDRIZTAB"] == "iref$3562021pi_mdz.fits"
        for a, b in zip(ours, gold):
            assert set(a.header) - set(b.header) <= {"CALDPVER", "CSYS_VER"} and set(b.header) <= set(a.header)
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", a.header["DATE"]) and a.header["DATE"] >= b.header["DATE"]
        # Not a vacuous match: calwf3 ran every IR step, with the stand-ins, on real signal.
        assert ours[0].header["CAL_VER"].startswith(CALWF3_VERSION)
        for switch in ("DQICORR", "ZSIGCORR", "ZOFFCORR", "BLEVCORR", "NLINCORR", "DARKCORR", "UNITCORR",
                       "PHOTCORR", "CRCORR", "FLATCORR"):
            assert ours[0].header[switch] == "COMPLETE", switch
        assert ours[0].header["CRDS_CTX"] == CONTEXT
        sci = ours["SCI", 1].data
        assert ours["SCI", 1].header["BUNIT"] == "ELECTRONS/S" and np.ptp(sci) > 100
        assert np.count_nonzero(pixels(ours["DQ", 1])) > 0


def trailer_lines(text):
    """The trailer without its time stamps and hstcal's build identity (git tag/branch/HEAD lines:
    what `git describe` said where that hstcal was built, not what it computes)."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("git tag:", "git branch:", "HEAD @:")):
            continue
        lines.append(re.sub(r"\d{2}-[A-Z][a-z]{2}-\d{4} \d{2}:\d{2}:\d{2} UTC", "<time>", line))
    return lines


def is_subsequence(short, long):
    it = iter(long)
    return all(any(line == other for other in it) for line in short)


@pytest.mark.parametrize("name", IDS)
def test_trailer_is_calwf3s(parity_runs, expected, name):
    """The .tra is calwf3.e's trailer: the golden's (run with -v) line for line, less the verbose lines."""
    run = parity_runs[name]
    run.check()
    ours = trailer_lines(run.product(".tra").read_text())
    gold = trailer_lines(expected[name, ".tra"].read_text())
    assert len(ours) > 100
    assert f"CALBEG*** CALWF3 -- Version {CALWF3_VERSION} (Jan-07-2026) ***" in ours
    assert ours[-1] == f"CALWF3 completion for {name}_raw.fits"
    assert is_subsequence(ours, gold), [line for line in ours if line not in gold][:5]


@pytest.mark.parametrize("name", IDS)
def test_metrics_and_provenance_name_calwf3(parity_runs, name):
    run = parity_runs[name]
    run.check()
    metrics = run.json("metrics.json")
    assert metrics["exit_status"] == 0 and metrics["calibration"] == "hstcal"
    (calwf3,) = [p for p in metrics["programs"] if Path(p["argv"][0]).name == "calwf3.e"]
    assert calwf3["kind"] == "hstcal" and calwf3["step"] == "calibrate" and calwf3["returncode"] == 0
    assert calwf3["argv"][1:] == [f"{name}_raw.fits"]
    assert 0 < calwf3["wall_seconds"] < 60
    # calwf3.e holds the full-frame NLINFILE (17 float 1024x1024 planes, 68 MB) whatever the subarray
    assert calwf3["max_rss_kb"] > 68_000
    assert [p["step"] for p in metrics["programs"]] == ["calibrate"]  # DRIZCORR=OMIT: no stage 2
    provenance = run.json("provenance.json")
    assert provenance["calibration"] == "hstcal" and provenance["stage1"] == "calwf3.e"
    assert provenance["versions"]["calwf3.e"] == CALWF3_VERSION
    log = run.log
    assert f"stage 1: calwf3.e {CALWF3_VERSION} (hstcal) on {name}_raw.fits" in log
    assert "stage 2 (runastrodriz) skipped: DRIZCORR is not PERFORM" in log


def test_provenance_says_no_stage2_when_it_was_skipped(parity_runs):
    run = parity_runs[IDS[0]]
    run.check()
    assert run.json("provenance.json")["stage2"] == "none"


# ============================================================================= 2. previews
@pytest.mark.parametrize("name", IDS)
def test_previews_of_the_ir_products(parity_runs, name):
    run = parity_runs[name]
    run.check()
    previews = run.products / "previews"
    expected = {f"{name}_{s}{t}.jpg" for s in ("raw", "ima", "flt") for t in ("", "_thumb")}
    assert {p.name for p in previews.iterdir()} == expected
    report = run.json("metrics.json")["previews"]
    assert report["failed"] == [] and sorted(report["files"]) == sorted(expected)
    for suffix, border in (("raw", IR_BORDER), ("ima", IR_BORDER), ("flt", 0)):
        shape = fits.getheader(run.product(f"_{suffix}.fits"), ("SCI", 1))
        shape = (shape["NAXIS2"], shape["NAXIS1"])
        check_not_blank(previews / f"{name}_{suffix}.jpg", shape)
        thumb = check_not_blank(previews / f"{name}_{suffix}_thumb.jpg")
        assert max(thumb.shape) == min(128, max(shape))
        if suffix != "ima":  # the IMA's picture: test_ima_preview_shows_the_longest_read
            correlations, longest = read_correlations(previews / f"{name}_{suffix}.jpg",
                                                      run.product(f"_{suffix}.fits"), border)
            assert correlations[longest] > 0.85, (suffix, correlations)
            assert correlations[longest] == max(correlations.values()), (suffix, correlations)


@pytest.mark.parametrize("name", IDS)
def test_ima_preview_shows_the_longest_read(parity_runs, name):
    """README: 'a WFC3/IR MULTIACCUM shows its longest read'; the picture must look like that read."""
    run = parity_runs[name]
    run.check()
    correlations, longest = read_correlations(run.products / "previews" / f"{name}_ima.jpg",
                                              run.product("_ima.fits"), IR_BORDER)
    assert longest == 1  # calwf3 writes the last read first
    assert correlations[longest] > 0.85, correlations
    assert correlations[longest] == max(correlations.values()), correlations


# ============================================================================= 3. stage 2: runastrodriz
@pytest.mark.parametrize("name", IDS)
def test_pristine_raw_is_calibrated_and_drizzled(drizzle_runs, expected, name):
    run = drizzle_runs[name]
    run.check()
    products = {p.name for p in run.products.iterdir() if p.is_file()}
    assert products == {f"{name}{s}" for s in ("_raw.fits", "_ima.fits", "_flt.fits", ".tra", "_drz.fits",
                                                "_flt_hlet.fits")}
    message = (run.out / "messages" / "dataset-processed" / name).read_text()
    assert f"data/wfc3/{name}/{name}_drz.fits" in message.splitlines()
    # bestrefs on the pristine raw selects exactly what the golden input header holds
    provenance = run.json("provenance.json")
    assert provenance["references"][f"{name}_raw.fits"] == selected_references(golden_input_header(name))
    assert provenance["stage1"] == "calwf3.e" and provenance["stage2"] == "runastrodriz"
    metrics = run.json("metrics.json")
    steps = [(p["step"], p["kind"], Path(p["argv"][0]).name) for p in metrics["programs"]]
    assert steps == [("calibrate", "hstcal", "calwf3.e"), ("drizzle", "pypi", "runastrodriz")]
    drizzle = metrics["programs"][1]
    assert drizzle["argv"][1:] == ["-n", "1", f"{name}_raw.fits"] and drizzle["wall_seconds"] > 0
    log = run.log
    assert log.index("stage 1: calwf3.e") < log.index(f"stage 2: runastrodriz on {name}_raw.fits")
    assert "absolute astrometric alignment skipped" in log
    # runastrodriz read the stand-ins (tests/support/wfc3_references.py): the G141 row, the single-image row
    assert f"IDCTAB: Distortion model from row 1 for chip 1 : {golden_input_header(name)['FILTER']}" in log
    assert "MDRIZTAB: AstroDrizzle parameters read from row 1." in log
    # stage 2 rewrites headers only: the pixels are still calwf3.e's, as in the golden
    for suffix in ("_ima.fits", "_flt.fits"):
        with fits.open(run.product(suffix)) as ours, fits.open(expected[name, suffix]) as gold:
            assert data_differences(ours, gold) == []
    # the trailer is calwf3.e's, with astrodrizzle's appended
    trailer = run.product(".tra").read_text()
    assert trailer.index(f"CALWF3 completion for {name}_raw.fits") < trailer.index("astrodrizzle completed")


@pytest.mark.parametrize("name", IDS)
def test_drizzled_product(drizzle_runs, name):
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    run = drizzle_runs[name]
    run.check()
    with fits.open(run.product("_drz.fits")) as drz:
        assert [h.name for h in drz][:4] == ["PRIMARY", "SCI", "WHT", "CTX"]
        assert drz[0].header["DRIZCORR"] == "COMPLETE"
        sci, wht, ctx = drz["SCI"].data, drz["WHT"].data, drz["CTX"].data
        covered = wht > 0
        assert covered.mean() > 0.8 and np.isfinite(sci[covered]).all() and (ctx[covered] == 1).all()
        assert np.ptp(sci[covered]) > 10  # the spectra, not an empty frame
        header = drz["SCI"].header
        assert header["CTYPE1"] == "RA---TAN" and header["CTYPE2"] == "DEC--TAN"
        cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]])
        assert np.sqrt(abs(np.linalg.det(cd))) * 3600 == pytest.approx(PLATE_SCALE, rel=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w_drz = WCS(header)
    with fits.open(run.product("_flt.fits")) as flt:
        assert flt[0].header["DRIZCORR"] == "COMPLETE"
        sci_header = flt["SCI"].header
        assert sci_header["WCSNAME"] == "IDC_w3m18525i" and sci_header["IDCSCALE"] == PLATE_SCALE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w_flt = WCS(sci_header, flt)
    # The distortion-corrected WCS from the stand-in IDCTAB agrees with the archive's OPUS WCS of the
    # raw (reference pixels included, hence the shift of 5) to a fraction of a pixel, and the
    # raw's corners land on the drizzled frame's edges.
    raw = shared_path("hst-data", "wfc3", f"{name}_raw.fits")
    raw_header = fits.getheader(raw, ("SCI", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w_opus = WCS(raw_header)
    n = raw_header["NAXIS1"]
    corners = np.array([[n / 2, n / 2], [IR_BORDER, IR_BORDER], [n - 1 - IR_BORDER, IR_BORDER],
                        [IR_BORDER, n - 1 - IR_BORDER], [n - 1 - IR_BORDER, n - 1 - IR_BORDER]], float)
    sky = w_opus.all_pix2world(corners, 0)
    ours = w_flt.all_pix2world(corners - IR_BORDER, 0)
    separation = np.hypot((ours[:, 0] - sky[:, 0]) * np.cos(np.radians(sky[:, 1])), ours[:, 1] - sky[:, 1]) * 3600
    assert separation.max() < 0.25, separation
    ny, nx = wht.shape
    on_drz = w_drz.all_world2pix(sky, 0)
    assert np.all((on_drz > -2) & (on_drz < np.array([nx, ny]) + 1)), on_drz
    assert covered[int(round(on_drz[0, 1])), int(round(on_drz[0, 0]))]


@pytest.mark.parametrize("name", IDS)
def test_drizzled_preview(drizzle_runs, name):
    run = drizzle_runs[name]
    run.check()
    previews = run.products / "previews"
    with fits.open(run.product("_drz.fits")) as drz:
        shape = drz["SCI"].data.shape
        sci, shown = drz["SCI"].data.astype(float), drz["WHT"].data > 0
    pic = check_not_blank(previews / f"{name}_drz.jpg", shape)
    check_not_blank(previews / f"{name}_drz_thumb.jpg")
    assert rank_correlation(pic[shown], sci[shown]) > 0.85
    assert run.json("metrics.json")["previews"]["failed"] == []
