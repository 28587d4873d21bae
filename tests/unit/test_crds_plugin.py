"""caldp's CRDS download plugin against a moto S3 server over real HTTP, driven by the real crds
client under caldp-config-aws (issue 7)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from caldp import crds_plugin
from caldp.references import reference_environment

from ..conftest import REPO, shared_path

REFS = "crds-cache", "references", "hst"


@pytest.fixture(scope="module")
def s3_mirror():
    """A moto S3 server holding a CRDS mirror: the real config, one real reference, one corrupted."""
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from ..support.servers.s3 import local_aws

    with local_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="crds-mirror")
        for path in shared_path("crds-cache", "config", "hst").iterdir():
            client.upload_file(str(path), "crds-mirror", f"config/hst/{path.name}")
        client.upload_file(str(shared_path(*REFS, "s7g1700gl_dead.fits")), "crds-mirror",
                           "references/hst/s7g1700gl_dead.fits")
        corrupted = bytearray(shared_path(*REFS, "u1t1616ql_wcp.fits").read_bytes())
        corrupted[5000] ^= 0xFF
        client.put_object(Bucket="crds-mirror", Key="references/hst/u1t1616ql_wcp.fits", Body=bytes(corrupted))
        yield client


def test_backoff_is_jittered_and_capped():
    """caldp.retry's Backoff with full jitter: a random wait up to 1, 2, 4 ... s, capped at 20 s."""
    backoff = crds_plugin.CRDS_PLUGIN_BACKOFF
    assert backoff.attempts == 3 and crds_plugin.parse_args(["s3://b/k", "/x"]).max_retries == 3
    assert backoff.delay(1, rng=lambda: 1.0) == 1.0
    assert backoff.delay(3, rng=lambda: 0.5) == 2.0
    assert backoff.delay(10, rng=lambda: 1.0) == 20.0
    assert backoff.delay(10, rng=lambda: 0.5) == 10.0  # capped, then jittered (as botocore waits)
    assert backoff.delay(2, rng=lambda: 0.0) == 0.0


def test_argument_styles():
    args = crds_plugin.parse_args(["s3://b/k", "-d", "/x/y", "-s", "10", "-c", "abc"])
    assert (args.source_url, args.output_path, args.file_size, args.file_sha1sum) == ("s3://b/k", "/x/y", 10, "abc")
    args = crds_plugin.parse_args(["s3://b/k", "/x/y", "--file-size", "3"])
    assert args.output_path == "/x/y" and args.file_size == 3
    assert crds_plugin.main(["s3://b/k"]) == crds_plugin.BAD_ARGUMENTS


def test_fetch_verifies_size_and_sha1(s3_mirror, tmp_path):
    real = shared_path(*REFS, "s7g1700gl_dead.fits")
    size, sha1 = real.stat().st_size, crds_plugin.sha1_of(real)
    dest = tmp_path / "refs" / "s7g1700gl_dead.fits"
    assert crds_plugin.fetch("s3://crds-mirror/references/hst/s7g1700gl_dead.fits", dest, size=size, sha1=sha1) == 0
    assert dest.read_bytes() == real.read_bytes()
    sleeps = []
    status = crds_plugin.fetch("s3://crds-mirror/references/hst/s7g1700gl_dead.fits", tmp_path / "bad", size=size,
                               sha1="0" * 40, sleep=sleeps.append)
    assert status == crds_plugin.BAD_CHECKSUM and len(sleeps) == 2 and not (tmp_path / "bad").exists()
    assert crds_plugin.fetch("s3://crds-mirror/references/hst/s7g1700gl_dead.fits", tmp_path / "short",
                             size=size + 1, sleep=lambda s: None) == crds_plugin.BAD_SIZE
    assert crds_plugin.fetch("s3://crds-mirror/references/hst/nope.fits", tmp_path / "n") == crds_plugin.NOT_FOUND
    assert list(tmp_path.glob(".*part*")) == [] and list((tmp_path / "refs").glob(".*")) == []


def aws_config_environment(cache):
    """The environment caldp-config-aws exports (sourced by bash, as caldp-process does)."""
    script = f'source "{REPO / "scripts" / "caldp-config-aws"}" && env -0'
    result = subprocess.run(["bash", "-c", script], capture_output=True, check=True,
                            env={"HOME": str(cache.parent), "PATH": os.environ["PATH"], "CRDSBUCKET": "s3://crds-mirror",
                                 "CRDS_PATH": str(cache)})
    pairs = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs.items() if k.startswith("CRDS")}


# Run in a process of its own: crds keeps configuration (server mode, cache layout) in module state,
# which must not leak into the other tests' bestrefs.
SYNC_SCRIPT = """
import json, os, sys
from crds.client import api
from caldp.references import _with_download_plugin, crds_environment
outcome = {}
with _with_download_plugin(dict(os.environ)) as lent, crds_environment(lent):
    for name in sys.argv[1:]:
        try:
            api.dump_references("hst_0729.pmap", baserefs=[name])
            outcome[name] = "ok"
        except Exception as exc:
            outcome[name] = f"{type(exc).__name__}: {exc}"
outcome["PATH"] = os.environ["PATH"]
print(json.dumps(outcome))
"""


def test_crds_syncs_through_caldps_plugin(s3_mirror, tmp_path):
    """The real crds client, configured by caldp-config-aws, downloads a real reference through
    caldp's plugin (size and sha1 from the cached download metadata) and refuses a corrupted one."""
    import json
    import sys

    cache = tmp_path / "crds_cache"
    shutil.copytree(shared_path("crds-cache", "mappings"), cache / "mappings")
    (cache / "config" / "hst").mkdir(parents=True)
    shutil.copyfile(shared_path("crds-cache", "config", "hst", "ref_cache_subdir_mode"),
                    cache / "config" / "hst" / "ref_cache_subdir_mode")
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    environment = aws_config_environment(cache)
    assert environment["CRDS_DOWNLOAD_MODE"] == "plugin" and environment["CRDS_DOWNLOAD_PLUGIN"] == "crds_s3_get"
    env = {**os.environ, **environment, "CRDS_CLIENT_RETRY_DELAY_SECONDS": "0", "CRDS_CLIENT_RETRY_COUNT": "1"}
    result = subprocess.run([sys.executable, "-c", SYNC_SCRIPT, "s7g1700gl_dead.fits", "u1t1616ql_wcp.fits"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    lref = Path(reference_environment(cache)["lref"])  # where caldp's *ref rule looks
    assert outcome["s7g1700gl_dead.fits"] == "ok"
    assert (lref / "s7g1700gl_dead.fits").read_bytes() == shared_path(*REFS, "s7g1700gl_dead.fits").read_bytes()
    assert "u1t1616ql_wcp.fits" in outcome["u1t1616ql_wcp.fits"] and outcome["u1t1616ql_wcp.fits"] != "ok"
    assert not (lref / "u1t1616ql_wcp.fits").exists()
    assert "caldp-crds-plugin-" not in outcome["PATH"]  # the shim lived only while bestrefs ran
    assert "sha1 does not match" in result.stderr  # caldp's plugin said why
