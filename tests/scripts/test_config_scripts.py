"""The CRDS configuration scripts, sourced by bash exactly as caldp-process sources them."""

import subprocess

import pytest

from caldp.references import reference_environment

from ..conftest import REPO

SCRIPTS = REPO / "scripts"


def sourced(config, env):
    """Environment after `source <config>` in a clean bash (only HOME and PATH inherited)."""
    script = f'source "{SCRIPTS / config}" || exit $?; env -0'
    result = subprocess.run(["bash", "-c", script], env={"HOME": "/home/someone", "PATH": "/usr/bin:/bin", **env},
                            capture_output=True)
    if result.returncode:
        return result.returncode, result.stderr.decode()
    pairs = [item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item]
    return 0, dict(pairs)


def test_onsite_defaults():
    code, env = sourced("caldp-config-onsite", {})
    assert code == 0
    assert env["CRDS_PATH"] == "/grp/crds/cache"
    assert env["CRDS_READONLY_CACHE"] == "1" and env["CRDS_OBSERVATORY"] == "hst" and env["CRDS_MODE"] == "local"
    assert "jref" not in env  # caldp derives the *ref variables itself, from the cache layout


def test_onsite_respects_callers_crds_path(tmp_path):
    code, env = sourced("caldp-config-onsite", {"CRDS_PATH": str(tmp_path), "CRDS_SERVER_URL": "https://localhost:1"})
    assert env["CRDS_PATH"] == str(tmp_path) and env["CRDS_SERVER_URL"] == "https://localhost:1"


def test_offsite_defaults():
    code, env = sourced("caldp-config-offsite", {})
    assert code == 0
    assert env["CRDS_PATH"] == "/home/someone/crds_cache"
    assert env["CRDS_SERVER_URL"] == "https://hst-crds.stsci.edu" and env["CRDS_READONLY_CACHE"] == "0"


def test_aws_needs_a_bucket():
    code, message = sourced("caldp-config-aws", {})
    assert code == 2 and "CRDSBUCKET" in message


def test_aws_uris():
    code, env = sourced("caldp-config-aws", {"CRDSBUCKET": "s3://crds-mirror/"})
    assert code == 0
    assert env["CRDS_CONFIG_URI"] == "s3://crds-mirror/config/hst/"
    assert env["CRDS_REFERENCE_URI"] == "s3://crds-mirror/references/hst/"
    assert env["CRDS_PICKLE_URI"] == "s3://crds-mirror/pickles/hst/"
    assert env["CRDS_DOWNLOAD_MODE"] == "plugin" and env["CRDS_READONLY_CACHE"] == "0"
    assert env["CRDS_PATH"] == "/home/someone/crds_cache"


@pytest.mark.parametrize("config", ["caldp-config-onsite", "caldp-config-offsite"])
def test_ref_variables_follow_each_configs_cache(config, tmp_path):
    """Each config's CRDS_PATH, through caldp's one rule, gives *ref variables with a trailing '/'."""
    (tmp_path / "config" / "hst").mkdir(parents=True)
    (tmp_path / "config" / "hst" / "ref_cache_subdir_mode").write_text("flat")
    _, env = sourced(config, {"CRDS_PATH": str(tmp_path)})
    refs = reference_environment(env["CRDS_PATH"])
    assert refs["jref"] == f"{tmp_path}/references/hst/" and refs["lref"].endswith("/")
