"""pytest fixtures for the local servers (moto S3, the MAST portal stand-in), registered for the whole
suite by tests/conftest.py's ``pytest_plugins``; serve_mast and subprocess_env are plain helpers."""

import contextlib
import os
import tempfile

import pytest

from ...conftest import shared_path
from .mast import MastArchive, MastServer
from .s3 import MOTO_UNSET, FaultyProxy, MotoServer, make_area, real_locations


@pytest.fixture(scope="session")
def moto_url():
    """The local moto server's URL for the session, or None when real buckets are configured."""
    pytest.importorskip("boto3", reason="S3 storage needs boto3: pip install 'caldp[aws]'")
    if real_locations():
        yield None
        return
    try:
        import moto.server  # noqa: F401
        import flask  # noqa: F401
    except ImportError:
        pytest.skip("the local S3 needs moto's server: pip install 'moto[server]'")
    with MotoServer() as server:
        yield server.url


@pytest.fixture
def s3_area(moto_url, tmp_path):
    """Fresh input and output prefixes for one test; removed afterwards."""
    area = make_area(moto_url, tmp_path)
    yield area
    area.remove_all()


@pytest.fixture
def s3_env(s3_area, monkeypatch, tmp_path_factory):
    """s3_area, with its environment applied to this process (for in-process caldp runs)."""
    # S3 output locks are files under the temporary directory: keep each test's with its other files.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tmp")))
    for key, value in s3_area.env.items():
        monkeypatch.setenv(key, value)
    if s3_area.local:
        for key in MOTO_UNSET:
            monkeypatch.delenv(key, raising=False)
    return s3_area


@pytest.fixture
def faulty_s3(s3_env, moto_url, monkeypatch):
    """A proxy in front of the moto server that fails chosen requests; caldp's endpoint is the proxy."""
    if not s3_env.local:
        pytest.skip("fault injection needs the local moto server (CALDP_S3_TEST_* point at real buckets)")
    with FaultyProxy(moto_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        proxy.env = {**s3_env.env, "AWS_ENDPOINT_URL_S3": proxy.url}
        yield proxy


@contextlib.contextmanager
def serve_mast(folders, config_home, split_associations=()):
    """A MAST stand-in over these folders, and the XDG_CONFIG_HOME that points astroquery at it."""
    with MastServer(MastArchive(folders, split_associations)) as server:
        server.write_config(config_home)
        server.env = {"XDG_CONFIG_HOME": str(config_home)}
        yield server


@pytest.fixture(scope="session")
def hst_mast(tmp_path_factory):
    """MAST serving ../shared/hst-data (ACS and COS); ldfd01010's members are only listed as their own
    observations, so caldp's member look-up runs too."""
    folders = [shared_path("hst-data", "acs"), shared_path("hst-data", "cos")]
    pytest.importorskip("astroquery.mast", reason="astroquery: input needs astroquery: pip install 'caldp[mast]'")
    with serve_mast(folders, tmp_path_factory.mktemp("xdg"), split_associations={"ldfd01010"}) as server:
        yield server


def subprocess_env(*extra):
    """os.environ plus the servers' settings, for caldp run in a process of its own."""
    env = dict(os.environ)
    for values in extra:
        env.update(values)
    if "AWS_ENDPOINT_URL_S3" in env and any(v.get("AWS_ENDPOINT_URL_S3") for v in extra):
        for key in MOTO_UNSET:
            env.pop(key, None)
    return env
