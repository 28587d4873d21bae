"""Helpers shared by the caldp.native (calacs.e replacement) tests."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ..conftest import SHARED


def shared_dir() -> Path:
    """The project's shared data directory (tests/conftest.py locates it)."""
    return SHARED


def golden(name: str) -> Path:
    path = shared_dir() / "golden" / name
    if not path.is_dir():
        pytest.skip(f"golden {name} not found under {shared_dir()} (the project's ../shared data; "
                    "set CALDP_SHARED to use another copy)")
    return path


def write_asn(path: Path, rows, detector: str = "HRC", instrument: str = "ACS") -> Path:
    """A minimal ACS association table: rows of (MEMNAME, MEMTYPE, MEMPRSNT)."""
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = instrument
    primary.header["DETECTOR"] = detector
    primary.header["ASN_PROD"] = False
    names, types, present = zip(*rows)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="MEMNAME", format="14A", array=np.array(names)),
            fits.Column(name="MEMTYPE", format="14A", array=np.array(types)),
            fits.Column(name="MEMPRSNT", format="L", array=np.array(present)),
        ],
        name="ASN",
    )
    fits.HDUList([primary, table]).writeto(path)
    return path


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy shared data into a writable temporary place (shared/ is read-only)."""
    shutil.copytree(src, dest, dirs_exist_ok=True)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return dest


def stage_golden(name: str, work: Path) -> tuple[Path, str]:
    """Copy a golden's input/ and refs/ into ``work``; returns (work, jref)."""
    src = golden(name)
    copy_tree(src / "input", work)
    copy_tree(src / "refs", work / "refs")
    return work, str(work / "refs") + "/"


def assert_sci_parity(ours: np.ndarray, theirs: np.ndarray) -> None:
    """|ours - calacs.e| <= max(0.01 e-, 1e-5 |calacs.e|) for every pixel."""
    a = ours.astype(np.float64)
    b = theirs.astype(np.float64)
    tol = np.maximum(0.01, 1e-5 * np.abs(b))
    bad = np.abs(a - b) > tol
    assert not bad.any(), f"{int(bad.sum())} SCI pixels off; worst {np.abs(a - b).max():.4g}"


def assert_err_parity(ours: np.ndarray, theirs: np.ndarray) -> None:
    a = ours.astype(np.float64)
    b = theirs.astype(np.float64)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
    assert rel.max() <= 1e-5, f"ERR relative difference {rel.max():.3g}"


def same_to_6_digits(a: float, b: float) -> bool:
    if a == b:
        return True
    return float(f"{float(a):.6g}") == float(f"{float(b):.6g}") or \
        abs(a - b) <= 5e-7 * max(abs(a), abs(b))


def hdu_layout(hdul: fits.HDUList):
    return [(h.name, h.ver, None if h.data is None else (h.data.shape, h.data.dtype.kind,
                                                         h.data.dtype.itemsize))
            for h in hdul]
