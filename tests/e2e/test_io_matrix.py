"""Every input kind x every output kind on one real ACS dataset, through the real caldp-process.

inputs {file:, astroquery: (local MAST stand-in), s3:// (moto or real buckets)} x outputs {file:, s3://}
on the SBC singleton jbz504eoq (DRIZCORR=OMIT in the served copies; caldp's native calibration when
calacs.e is absent). The six runs go at once, each with its own output root; their product trees
must be the same: the same relative file list, the same FITS data, the same dataset-processed list.
"""

import itertools
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from ..conftest import caldp_process_command, offline_crds_env, shared_path
from ..support.servers.fixtures import serve_mast, subprocess_env
from ..support.servers.s3 import MOTO_CREDENTIALS, make_area

pytestmark = pytest.mark.slow

DATASET = "jbz504eoq"
INPUTS = ("file", "astroquery", "s3")
OUTPUTS = ("file", "s3")
CELLS = list(itertools.product(INPUTS, OUTPUTS))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The dataset as every source serves it: the raw with DRIZCORR=OMIT, and its SPT (not an ACS input)."""
    folder = tmp_path_factory.mktemp("served")
    for name in (f"{DATASET}_raw.fits", f"{DATASET}_spt.fits"):
        shutil.copyfile(shared_path("hst-data", "acs", name), folder / name)
        (folder / name).chmod(0o644)
    with fits.open(folder / f"{DATASET}_raw.fits", mode="update") as hdul:
        hdul[0].header["DRIZCORR"] = "OMIT"
    return folder


@pytest.fixture(scope="module")
def matrix(served, acs_ref_cache, moto_url, tmp_path_factory):
    """Run the six cells concurrently; return {cell: (returncode, stderr, product dir, processed message)}."""
    pytest.importorskip("astroquery.mast", reason="astroquery: input needs astroquery: pip install 'caldp[mast]'")
    base = tmp_path_factory.mktemp("matrix")
    area = make_area(moto_url, base)
    client = area.client()
    for path in served.iterdir():
        client.upload_file(str(path), area.inputs.bucket, area.inputs.key(path.name))
    with serve_mast([served], base / "xdg") as mast:
        env = subprocess_env(offline_crds_env(acs_ref_cache), area.env, mast.env,
                             {"CALDP_CAL": "native", "CALDP_PYTHON": sys.executable, "CALDP_RETRY_DELAY": "0.1"})
        sources = {"file": f"file:{served}", "astroquery": "astroquery:", "s3": str(area.inputs)}
        runs = {}
        for source, sink in CELLS:
            home = base / f"{source}-{sink}"
            home.mkdir()
            target = f"file:{home / 'out'}" if sink == "file" else str(area.outputs).rstrip("/") + f"/{source}"
            # Output to files, not pipes: a full pipe would stall a run until its turn to be read.
            with open(home / "stderr", "w") as stderr:
                runs[source, sink] = subprocess.Popen(
                    [*caldp_process_command(), DATASET, sources[source], target],
                    env={**env, "CALDP_HOME": str(home), "TMPDIR": str(home)}, cwd=home,
                    stdout=subprocess.DEVNULL, stderr=stderr)
        results = {}
        for cell, run in runs.items():
            run.wait(timeout=300)
            stderr = (base / "-".join(cell) / "stderr").read_text()
            results[cell] = (run.returncode, stderr, *collect(cell, base, area))
        mast_downloads = mast.downloads()
    yield results, mast_downloads
    area.remove_all()


def collect(cell, base, area):
    """(local copy of the product tree, dataset-processed lines) of one cell's output."""
    source, sink = cell
    if sink == "file":
        out = base / f"{source}-{sink}" / "out"
        message = out / "messages" / "dataset-processed" / DATASET
        return out / "data" / "acs" / DATASET, message.read_text().splitlines() if message.exists() else None
    from caldp.locations import S3Location

    location = S3Location(area.outputs.bucket, area.outputs.key(source))
    copy = base / f"{source}-{sink}" / "downloaded"
    for key in area.keys(location, f"data/acs/{DATASET}/"):
        (copy / key).parent.mkdir(parents=True, exist_ok=True)
        (copy / key).write_bytes(area.read(location, key))
    keys = area.keys(location, "messages/")
    message = area.read(location, f"messages/dataset-processed/{DATASET}").decode().splitlines() \
        if f"messages/dataset-processed/{DATASET}" in keys else None
    return copy / "data" / "acs" / DATASET, message


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("cell", CELLS, ids=[f"{i}-to-{o}" for i, o in CELLS])
def test_cell_succeeds(matrix, cell):
    returncode, stderr, products, message = matrix[0][cell]
    assert returncode == 0, stderr[-3000:]
    assert message is not None and message[0].startswith("# caldp ") and " dataset-processed " in message[0]
    assert f"{DATASET}_flt.fits" in tree(products)
    for secret in MOTO_CREDENTIALS.values():  # credentials never reach the log
        assert secret not in stderr and secret not in (products / "logs" / "process.log").read_text()


def test_same_products_everywhere(matrix):
    results, _ = matrix
    if any(r[0] != 0 for r in results.values()):
        pytest.fail("a cell failed; see test_cell_succeeds")
    reference = results["file", "file"]
    expected_tree, expected_message = tree(reference[2]), reference[3][1:]
    assert f"{DATASET}_raw.fits" in expected_tree and "logs/process.log" in expected_tree
    assert f"{DATASET}_spt.fits" not in expected_tree  # not an ACS calibration input
    for cell, (_, _, products, message) in results.items():
        assert tree(products) == expected_tree, cell
        assert message[1:] == expected_message, cell  # paths relative to the output root, so equal
        for name in expected_tree:
            if name.endswith(".fits"):
                assert_same_fits_data(products / name, reference[2] / name)


def test_mast_served_only_the_raw(matrix):
    _, downloads = matrix
    assert sorted(downloads) == [f"{DATASET}_raw.fits 200"] * 2  # astroquery -> file and -> s3


def assert_same_fits_data(path, expected):
    with fits.open(path) as ours, fits.open(expected) as theirs:
        assert [h.name for h in ours] == [h.name for h in theirs], path
        for a, b in zip(ours, theirs):
            if a.data is None or b.data is None:
                assert a.data is None and b.data is None, path
            elif isinstance(a.data, np.ndarray) and a.data.dtype.names is None:
                assert np.array_equal(a.data, b.data, equal_nan=True), (path, a.name)
            else:
                assert a.data.tobytes() == b.data.tobytes(), (path, a.name)
