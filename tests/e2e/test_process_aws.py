"""caldp-process-aws, the AWS Batch job command, end to end: MAST input (the local MAST portal
stand-in, real astroquery), S3 output (moto over real HTTP), CRDS configured by caldp-config-aws
from an S3 mirror (CRDSBUCKET) with a warm local cache."""

import json
import shutil
import subprocess
import sys

import pytest
from astropy.io import fits

from caldp.locations import S3Location

from ..conftest import REPO, shared_path
from ..support.servers.fixtures import serve_mast, subprocess_env
from ..support.servers.s3 import make_area

pytestmark = pytest.mark.slow
DATASET = "jbz504eoq"


def test_caldp_process_aws(acs_ref_cache, moto_url, tmp_path):
    pytest.importorskip("astroquery.mast", reason="astroquery: input needs astroquery: pip install 'caldp[mast]'")
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(shared_path("hst-data", "acs", f"{DATASET}_raw.fits"), served / f"{DATASET}_raw.fits")
    (served / f"{DATASET}_raw.fits").chmod(0o644)
    with fits.open(served / f"{DATASET}_raw.fits", mode="update") as hdul:
        hdul[0].header["DRIZCORR"] = "OMIT"
    area = make_area(moto_url, tmp_path)
    client = area.client()
    mirror = S3Location(area.outputs.bucket, area.outputs.key("crds-mirror"))
    for path in shared_path("crds-cache", "config", "hst").iterdir():
        client.upload_file(str(path), mirror.bucket, mirror.key("config", "hst", path.name))
    cache = tmp_path / "crds_cache"  # a warm cache: the mirror's config, the references already fetched
    shutil.copytree(acs_ref_cache, cache)
    # DGEOFILE is selected but read by no program here: a placeholder, so the warm cache lacks nothing.
    (cache / "references" / "hst" / "s5f20000j_dxy.fits").write_bytes(b"")
    output = S3Location(area.outputs.bucket, area.outputs.key("job"))
    script = shutil.which("caldp-process-aws") or str(REPO / "scripts" / "caldp-process-aws")
    try:
        with serve_mast([served], tmp_path / "xdg") as mast:
            env = subprocess_env(area.env, mast.env, {"CRDSBUCKET": str(mirror), "CRDS_PATH": str(cache),
                                                      "CALDP_HOME": str(tmp_path), "CALDP_CAL": "native",
                                                      "CALDP_PYTHON": sys.executable, "CALDP_RETRY_DELAY": "0.1",
                                                      "HOME": str(tmp_path),
                                                      "CRDS_CLIENT_RETRY_DELAY_SECONDS": "1"})
            for key in ("CRDS_SERVER_URL", "CRDS_MODE", "CRDS_READONLY_CACHE", "CRDS_CONTEXT", "CALDP_CONFIG"):
                env.pop(key, None)  # caldp-config-aws decides these
            result = subprocess.run([script, str(output), DATASET], env=env, cwd=tmp_path, capture_output=True,
                                    text=True, timeout=300)
            downloads = mast.downloads()
        assert result.returncode == 0, result.stderr[-3000:]
        assert [d.split()[0] for d in downloads] == [f"{DATASET}_raw.fits"]  # exactly the calibration input
        keys = area.keys(output)
        processed = area.read(output, f"messages/dataset-processed/{DATASET}").decode().splitlines()
        assert f"data/acs/{DATASET}/{DATASET}_flt.fits" in processed[1:]
        assert f"data/acs/{DATASET}/previews/{DATASET}_flt.jpg" in processed[1:]
        assert set(processed[1:]) <= set(keys)
        provenance = json.loads(area.read(output, f"data/acs/{DATASET}/logs/provenance.json"))
        assert provenance["crds_context"] == "hst_0729.pmap" and provenance["calibration"] == "native"
        log = area.read(output, f"data/acs/{DATASET}/logs/process.log").decode()
        assert "astroquery" in log.lower() or "mast" in log.lower()
        assert not any(k.startswith("messages/dataset-error/") for k in keys)
        usage = subprocess.run([script], capture_output=True, text=True)
        assert usage.returncode == 2 and "usage: caldp-process-aws" in usage.stderr
    finally:
        area.remove_all()
