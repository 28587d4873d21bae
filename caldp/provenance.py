"""Provenance of a run, recorded in one place: the products' headers and logs/provenance.json."""

import json
import logging
import platform
from importlib import metadata

from astropy.io import fits

from . import __version__

log = logging.getLogger(__name__)


def package_versions(names=("caldp", "crds", "astropy", "numpy", "calcos", "drizzlepac", "astroquery", "boto3")):
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions.setdefault("caldp", __version__)
    versions["python"] = platform.python_version()
    return versions


def stamp_products(paths, *, crds_context, environ):
    """Write CALDPVER and the CRDS context into every product's primary header."""
    cards = {
        "CALDPVER": (__version__, "caldp version that produced this file"),
        "CSYS_VER": (environ.get("CSYS_VER", "UNDEFINED"), "calibration software system version"),
    }
    if crds_context:
        cards["CRDS_CTX"] = (crds_context, "CRDS context used for best references")
    for path in paths:
        try:
            with fits.open(path, mode="update") as hdul:
                for key, value in cards.items():
                    hdul[0].header[key] = value
        except OSError as exc:
            log.warning("could not stamp provenance into %s: %s", path.name, exc)


def write_provenance(path, **record):
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
