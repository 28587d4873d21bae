"""HST file conventions, each with one policy (standard library, numpy and astropy only).

* Dataset ids: :data:`DATASET_ID`, a lower-case ipppssoot.
* Association tables: :func:`read_association_table` returns every row as it is written;
  what to do with absent members or other member types is each caller's decision.
* Reference names: :func:`reference_path` turns ``jref$name`` into a path using the
  environment mapping it is given (never ``os.environ`` behind the caller's back).
* Constant extensions: :func:`expand_constant` builds the array a data-less extension stands for.
* File names: :func:`rootname` and :func:`product_suffix`.
* Calibration switches: :func:`switch`.
* Header keywords: :func:`put_float`, :func:`put_int`, :func:`put_str` write keywords the way
  hstio does for calacs's per-exposure products; :func:`put_card`, :func:`put_card_float` and
  :func:`put_card_double` write them the way acssum and acsrej format their combined products.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from astropy.io import fits

# -- dataset ids ----------------------------------------------------------------------------

#: A dataset id (ipppssoot) once lower-cased: a letter, then 8 letters or digits. Use fullmatch.
DATASET_ID = re.compile(r"[a-z][a-z0-9]{8}")


# -- association tables ---------------------------------------------------------------------

class AssociationTableError(ValueError):
    """The file has no association table, or the table lacks MEMNAME or MEMTYPE."""


@dataclass(frozen=True)
class AssociationRow:
    """One row of an ``_asn.fits`` table.

    ``name`` is MEMNAME stripped and lower-cased (file names use the lower-case rootname);
    ``memtype`` is MEMTYPE stripped and upper-cased, otherwise as written (``EXP_CRJ`` keeps
    its underscore); ``present`` is MEMPRSNT, or None when the table has no MEMPRSNT column.
    """

    name: str
    memtype: str
    present: bool | None

    @property
    def is_exposure(self) -> bool:
        return self.memtype.startswith("EXP")


@dataclass(frozen=True)
class AssociationTable:
    header: fits.Header  # the primary header
    rows: tuple[AssociationRow, ...]

    @property
    def has_presence(self) -> bool:
        return all(r.present is not None for r in self.rows)


def read_association_table(path) -> AssociationTable:
    """Every row of the first binary table extension of ``path``, in table order.

    Raises AssociationTableError when there is no binary table or MEMNAME/MEMTYPE is missing,
    and lets OSError (and astropy's ValueError/TypeError for a damaged file) through.
    """
    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header.copy()
        hdu = next((h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)), None)
        if hdu is None:
            raise AssociationTableError(f"{path.name} has no association table extension")
        columns = {c.upper() for c in hdu.columns.names}
        missing = {"MEMNAME", "MEMTYPE"} - columns
        if missing:
            raise AssociationTableError(f"{path.name}: column(s) {', '.join(sorted(missing))} not found")
        table = hdu.data
        names = [str(v).strip().lower() for v in table["MEMNAME"]]
        types = [str(v).strip().upper() for v in table["MEMTYPE"]]
        present = ([bool(v) for v in table["MEMPRSNT"]] if "MEMPRSNT" in columns
                   else [None] * len(names))
    return AssociationTable(header, tuple(AssociationRow(n, t, p) for n, t, p in zip(names, types, present)))


# -- reference file names -------------------------------------------------------------------

_REFERENCE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\$(.+)$")


def split_reference(value: str) -> tuple[str, str] | None:
    """``'jref$x_bia.fits'`` -> ``('jref', 'x_bia.fits')``; None for a plain file name."""
    match = _REFERENCE.match(str(value).strip())
    return (match.group(1), match.group(2)) if match else None


def reference_path(value: str, environ: Mapping[str, str]) -> Path | None:
    """The file a ``<var>$<name>`` reference value names, or None when ``var`` is not in ``environ``.

    The path is ``environ[var] + name``, a plain concatenation as calacs.e makes it: the directory
    carries its own trailing ``/``. A value without ``$`` is a path already.
    """
    parts = split_reference(value)
    if parts is None:
        return Path(str(value).strip())
    directory = environ.get(parts[0])
    if directory is None:
        return None
    return Path(directory + parts[1])


# -- constant (PIXVALUE) extensions ---------------------------------------------------------

def constant_shape(header) -> tuple[int, int]:
    """(NPIX2, NPIX1): the shape a data-less image extension declares."""
    return int(header.get("NPIX2", 0)), int(header.get("NPIX1", 0))


def expand_constant(header, shape: tuple[int, int] | None, dtype) -> np.ndarray:
    """The array a data-less extension stands for: PIXVALUE (0 when absent or undefined)
    everywhere, over ``shape`` or, without one, the extension's own NPIX2 x NPIX1."""
    return np.full(shape if shape is not None else constant_shape(header),
                   header.get("PIXVALUE", 0) or 0, dtype=dtype)


# -- file names -----------------------------------------------------------------------------

#: Suffixes that end an HST rootname in calacs's file names, tried in this order.
ROOTNAME_SUFFIXES = ("_raw", "_asn", "_crj_tmp", "_crj", "_blv_tmp", "_blv", "_flt", "_flc",
                     "_sfl", "_dth", "_spt")


def rootname(filename: str) -> str:
    """The rootname of a file name, case kept: the text before the first suffix of
    :data:`ROOTNAME_SUFFIXES` found (case-insensitively) after its first character, else the
    name up to its first dot. ``'J8BT05NJQ_flt.fits'`` -> ``'J8BT05NJQ'``."""
    name = Path(filename).name
    lower = name.lower()
    for suffix in ROOTNAME_SUFFIXES:
        index = lower.find(suffix)
        if index > 0:
            return name[:index]
    return name.split(".", 1)[0]


def product_suffix(filename: str) -> str:
    """The product type a file name ends with: the text after the last ``_`` before the first dot.
    ``'j8bt05njq_flt.fits'`` -> ``'flt'``; ``'ldfd01010_x1dsum3.fits'`` -> ``'x1dsum3'``."""
    return filename.split(".", 1)[0].rsplit("_", 1)[-1]


# -- calibration switches -------------------------------------------------------------------

PERFORM = "PERFORM"
COMPLETE = "COMPLETE"
OMIT = "OMIT"


def switch(header, key: str) -> str:
    """A calibration switch: PERFORM or COMPLETE (read case-insensitively, blanks stripped);
    anything else, a missing or an undefined keyword included, is OMIT."""
    value = str(header.get(key, "") or "").strip().upper()
    return value if value in (PERFORM, COMPLETE) else OMIT


# -- header keywords: hstio's way (calacs's per-exposure products) --------------------------

def as_float32(value: float) -> float:
    """A Python float holding exactly the C float calacs.e would write (8 significant digits)."""
    return float("%.8g" % float(np.float32(value)))


def put_float(header: fits.Header, key: str, value: float, comment: str = "") -> None:
    """hstio's PutKeyFlt: the value as a C float; an existing card keeps its place and comment,
    a new one is appended."""
    if key in header:
        header[key] = as_float32(value)
    else:
        header.append((key, as_float32(value), comment), end=True)


def put_int(header: fits.Header, key: str, value: int, comment: str = "") -> None:
    """hstio's PutKeyInt (placement and comment as :func:`put_float`)."""
    if key in header:
        header[key] = int(value)
    else:
        header.append((key, int(value), comment), end=True)


def put_str(header: fits.Header, key: str, value: str, comment: str = "") -> None:
    """hstio's PutKeyStr: an existing card keeps its old comment, cut to fit 80 columns."""
    if key in header:
        comment = header.comments[key]
    else:
        header.append((key, value, comment), end=True)
    room = 80 - len(fits.Card(key, value).image.rstrip()) - 3
    header[key] = (value, comment[:max(room, 0)])


# -- header keywords: acssum's and acsrej's way (combined products) -------------------------

def put_card(header: fits.Header, key: str, value, comment: str) -> None:
    """Set a keyword; an existing card keeps its place and comment, a new one goes last."""
    if key in header:
        header[key] = value
    else:
        header.append(fits.Card(key, value, comment), bottom=True)


def put_card_float(header: fits.Header, key: str, value, comment: str, *,
                   replace_comment: bool = False) -> None:
    """A single-precision value written as ``%.7E`` (the combination tasks' header library)."""
    _put_formatted(header, key, f"{float(np.float32(value)):.7E}", comment, replace_comment)


def put_card_double(header: fits.Header, key: str, value, comment: str) -> None:
    """A double-precision value written as ``%.12E``; an existing card keeps its comment."""
    _put_formatted(header, key, f"{float(value):.12E}", comment, False)


def _put_formatted(header, key, text, comment, replace_comment) -> None:
    if key in header and not replace_comment:
        comment = header.comments[key]
    image = f"{key:<8}= {text:>20}" + (f" / {comment}" if comment else "")
    card = fits.Card.fromstring(image[:80].ljust(80))
    if key in header:
        index = header.index(key)
        del header[index]
        header.insert(index, card)
    else:
        header.append(card, bottom=True)
