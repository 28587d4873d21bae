"""Shared fixtures: locating ../shared, a private CRDS cache copy, the offline CRDS environment."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from caldp import hstcal
from caldp.references import offline_environment

# The local S3 (moto) and MAST servers' fixtures, registered once for every test module.
pytest_plugins = ["tests.support.servers.fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CALDP_SHARED", REPO.parent / "shared"))
# The programs the tests start (caldp-process, caldp-calacs, python -m caldp...) import caldp from this
# checkout, whichever checkout an editable install happens to point at.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


# The real hstcal programs, wherever caldp would find them as the suite starts (.ci/run builds them).
# Then the suite's own processes look on PATH only: a test gets hstcal by asking for hstcal_env, so
# the stand-in and "not installed" tests cannot pick up the real programs by accident.
_FOUND = [hstcal.find_program(name) for name in hstcal.PROGRAMS]
HSTCAL_BIN = Path(_FOUND[0]).parent if all(_FOUND) and len({Path(f).parent for f in _FOUND}) == 1 else None
os.environ["HSTCAL_PREFIX"] = ""


@pytest.fixture(scope="session")
def hstcal_env():
    """Environment entries that let caldp find the real calacs.e, calwf3.e and cs0.e; skip without them."""
    if HSTCAL_BIN is None:
        pytest.skip("needs hstcal's calacs.e, calwf3.e and cs0.e: build them with "
                    "`caldp-install-cal --from-source <hstcal tarball>` (README.rst, 'Calibration programs')")
    return {"HSTCAL_PREFIX": str(HSTCAL_BIN.parent)}


def shared_path(*parts):
    """A path inside ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's ../shared data: real HST files, CRDS cache, goldens)")
    return path


def pytest_configure(config):
    # The coverage floor applies where ../shared is present (CI, developers); a user's clone
    # without it skips the data tests, so a floor would only measure what was skipped.
    if not SHARED.exists() and getattr(config.option, "cov_fail_under", None):
        config.option.cov_fail_under = 0
        print(f"caldp tests: {SHARED} is absent: data tests skip and the coverage floor is off")


@pytest.fixture(scope="session")
def crds_cache(tmp_path_factory):
    """A writable-by-us copy of ../shared/crds-cache (CRDS must never write into shared/)."""
    source = shared_path("crds-cache")
    dest = tmp_path_factory.mktemp("crds") / "cache"
    shutil.copytree(source, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return dest


offline_crds_env = offline_environment


@pytest.fixture
def crds_env(crds_cache, monkeypatch):
    """The offline CRDS environment (no server, a read-only cache copy), applied to this process."""
    env = offline_crds_env(crds_cache)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)
    return env


def copy_inputs(names, dest, subdir):
    """Copy real files from ../shared/hst-data/<subdir> into dest; return dest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = dest / name
        shutil.copyfile(shared_path("hst-data", subdir, name), target)
        target.chmod(0o644)
    return dest


def caldp_process_command():
    """The installed caldp-process script (tests run the real command line)."""
    script = shutil.which("caldp-process")
    if script is None:
        script = str(REPO / "scripts" / "caldp-process")
    return ["bash", script] if script.endswith("caldp-process") and not os.access(script, os.X_OK) else [script]


def run_caldp_process(args, env, cwd, timeout=300):
    full_env = {**os.environ, **env}
    full_env.setdefault("CALDP_PYTHON", sys.executable)
    return subprocess.run(
        [*caldp_process_command(), *args], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


STANDIN = REPO / "tests" / "support" / "standin" / "calprogram.py"


@pytest.fixture
def standin_bin(tmp_path):
    """A directory holding stand-in programs; call install(name) to put one on it."""
    bindir = tmp_path / "standin-bin"
    bindir.mkdir()

    def install(name):
        path = bindir / name
        path.write_text(f"#!/bin/sh\nSTANDIN_NAME={name} exec {sys.executable} {STANDIN} \"$@\"\n")
        path.chmod(0o755)
        return path

    install.dir = bindir
    # Only the stand-ins and the system's basic tools: real calibration programs that happen to
    # be installed (runastrodriz, calcos) must not be picked up instead.
    install.path = f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return install


HRC = ["j8bt05njq", "j8bt06o6q", "j6gp01mkq"]
SBC_SINGLETON = "jbz504eoq"
SBC_ASSOCIATION = ["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"]


@pytest.fixture(scope="session")
def acs_ref_cache(crds_cache, tmp_path_factory):
    """A cache copy holding the golden references plus stand-ins for everything else ACS selects
    (calacs.e's references via caldp.synthetic, runastrodriz's via tests/support/drizzle_references.py)."""
    from astropy.io import fits

    from caldp.references import assign_references, reference_environment
    from caldp.synthetic import synthesize_acs_references

    from .support.drizzle_references import synthesize_drizzle_references

    cache = tmp_path_factory.mktemp("refcache") / "cache"
    shutil.copytree(crds_cache, cache)
    references = cache / "references" / "hst"
    for golden in ("acs-hrc-j8bt05njq", "acs-sbc-jbz504eoq", "acs-sbc-jbz504020"):
        for ref in shared_path("golden", golden, "refs").iterdir():
            shutil.copyfile(ref, references / ref.name)
    scratch = tmp_path_factory.mktemp("names")
    raws = [f"{name}_raw.fits" for name in HRC + [SBC_SINGLETON]] + SBC_ASSOCIATION[1:]
    copy_inputs(raws, scratch, "acs")
    saved = dict(os.environ)
    os.environ.update(offline_crds_env(cache))
    try:
        assign_references([scratch / r for r in raws], ref_env=reference_environment(cache))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for raw in raws:
        header = fits.getheader(scratch / raw)
        header["SATUFILE"] = "jref$synth_hrc_sat.fits"
        synthesize_acs_references(header, references)
        synthesize_drizzle_references(header, references)
    return cache
