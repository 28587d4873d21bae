"""Helpers shared by the benchmarks: locating ../shared and a private offline CRDS cache."""

import os
import shutil
import stat
import tempfile
from pathlib import Path

from caldp.references import offline_environment

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CALDP_SHARED", REPO.parent / "shared"))


def require_shared():
    if not SHARED.exists():
        raise SystemExit(f"benchmark needs {SHARED} (the project's shared data)")
    return SHARED


def private_crds_cache(workdir):
    cache = Path(workdir) / "crds-cache"
    shutil.copytree(require_shared() / "crds-cache", cache)
    for path in [cache, *cache.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return cache


offline_crds_env = offline_environment


def scratch():
    return Path(tempfile.mkdtemp(prefix="caldp-bench-"))
