"""Reference files: name resolution, pedigree, imset selection and alignment.

This follows what calacs.e does when it opens a reference:

* ``jref$name.fits`` is the value of the ``jref`` environment variable
  concatenated with ``name.fits`` (no separator is added, so the variable must
  end in ``/``).  A name without ``$`` is used as a path as it stands.
* PEDIGREE and DESCRIP come from the primary header; a PEDIGREE starting with
  DUMMY turns the step into a skipped one.
* The imset used is the first ``SCI,n`` (n up to NEXTEND/3) whose CCDCHIP
  (default 1) matches the science chip.
* A reference is aligned with the science array through the corner and bin
  size derived from LTV/LTM: equal corners, bins and widths mean "same size";
  otherwise the reference is cut out at the corner offset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ...hstfile import expand_constant, reference_path
from . import fitsread
from .errors import CalibrationError


def got_filename(name: str | None) -> bool:
    """calacs.e's GotFileName: blank and ``N/A`` mean "no file"."""
    return bool(name) and name.strip() != "" and name.strip().upper() != "N/A" \
        and not name.startswith(" ")


def resolve_name(name: str, env: dict[str, str] | None = None) -> Path:
    """The file a reference keyword names (caldp.hstfile.reference_path, through ``env`` or else
    the process environment); with its variable unset, the raw name, which calacs.e cannot open."""
    path = reference_path(name, os.environ if env is None else env)
    return Path(name.strip()) if path is None else path


@dataclass
class RefFile:
    """One reference keyword with what calacs.e records about it."""

    keyword: str
    name: str                      # as written in the header, e.g. jref$x_bia.fits
    path: Path | None = None
    exists: bool = False
    unreadable: str = ""           # why a file that is there does not open (empty, truncated, not FITS)
    pedigree: str = ""
    descrip: str = ""
    descrip2: str = ""            # DESCRIP column of the selected table row
    is_table: bool = False
    hdus: list = field(default_factory=list, repr=False)       # fitsread.scan result
    tables: dict = field(default_factory=dict, repr=False)     # tables read so far

    @property
    def given(self) -> bool:
        return got_filename(self.name)

    @property
    def dummy(self) -> bool:
        return self.pedigree.startswith("DUMMY")


def open_reference(keyword: str, name: str, env: dict[str, str] | None = None,
                   is_table: bool = False) -> RefFile:
    """Resolve a reference name, check that it opens, read PEDIGREE/DESCRIP."""
    ref = RefFile(keyword=keyword, name=(name or "").strip(), is_table=is_table)
    if not ref.given:
        return ref
    ref.path = resolve_name(ref.name, env)
    try:
        ref.hdus = fitsread.scan(ref.path)
    except (OSError, ValueError, KeyError) as exc:
        if ref.path is not None and Path(ref.path).is_file():
            size = Path(ref.path).stat().st_size
            ref.unreadable = "an empty file" if size == 0 else f"not a readable FITS file ({exc})"
        return ref
    declared = int(ref.hdus[0].header.get("NEXTEND", 0) or 0)
    if declared > len(ref.hdus) - 1:  # cut at an HDU boundary: every HDU read is whole, some are gone
        ref.unreadable = f"truncated: NEXTEND={declared} but {len(ref.hdus) - 1} extensions"
        return ref
    ref.exists = True
    header = ref.hdus[0].header
    ref.pedigree = fitsread.header_str(header, "PEDIGREE")
    ref.descrip = fitsread.header_str(header, "DESCRIP")
    return ref


# -- images -------------------------------------------------------------------

@dataclass
class RefImage:
    """SCI/ERR/DQ planes of one reference imset plus its SCI header."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    header: dict
    extver: int = 1
    source: str = ""  # "PFLTFILE=jref$x_pfl.fits", so a failure can name the file


def find_chip_extver(hdus: list, chip: int, name: str = "", last: int | None = None) -> int:
    """DetCCDChip: EXTVER of the first SCI extension with the science CCDCHIP.

    SCI,1 to SCI,``last`` are searched; ``last`` is NEXTEND/3 unless given (DetSinkChip
    searches up to NEXTEND).
    """
    if last is None:
        last = int(hdus[0].header.get("NEXTEND", 3)) // 3
    for extver in range(1, last + 1):
        try:
            hdr = fitsread.find_hdu(hdus, ("SCI", extver)).header
        except KeyError:
            break
        if int(hdr.get("CCDCHIP", 1)) == chip:
            return extver
    raise CalibrationError(f"No Reference Data found for chip {chip} in {name}")


def _plane(hdus, name, extver, shape, dtype):
    """An extension's data, or its PIXVALUE constant when it has no data."""
    try:
        hdu = fitsread.find_hdu(hdus, (name, extver))
    except KeyError:
        return np.zeros(shape, dtype=dtype)
    data = fitsread.image_data(hdu, dtype)
    if data is None:
        return expand_constant(hdu.header, shape, dtype)
    if data.shape != shape:
        raise CalibrationError(f"{name},{extver} and SCI,{extver} differ in size.")
    return data


def read_ref_image(ref: RefFile, chip: int, sci_only: bool = False) -> RefImage:
    """Read the imset of an image reference that matches ``chip``.

    With ``sci_only`` the ERR and DQ planes are not read (they are zeros).
    """
    try:
        extver = find_chip_extver(ref.hdus, chip, ref.name)
        sci_hdu = fitsread.find_hdu(ref.hdus, ("SCI", extver))
        hdr = sci_hdu.header
        sci = fitsread.image_data(sci_hdu, np.float32)
        if sci is None:
            sci = expand_constant(hdr, None, np.float32)
        if sci_only:
            err = np.zeros(sci.shape, np.float32)
            dq = np.zeros(sci.shape, np.int16)
        else:
            err = _plane(ref.hdus, "ERR", extver, sci.shape, np.float32)
            dq = _plane(ref.hdus, "DQ", extver, sci.shape, np.int16)
    except (OSError, KeyError, ValueError) as exc:
        raise CalibrationError(f"Can't read {ref.keyword} `{ref.name}': {exc}") from exc
    for plane, values in (("SCI", sci), ("ERR", err)):
        if not np.isfinite(values).all():  # would spread into every product pixel and header statistic
            raise CalibrationError(f"{ref.keyword} `{ref.name}' {plane},{extver} holds NaN or infinite values.")
    return RefImage(sci=sci, err=err, dq=dq, header=hdr, extver=extver, source=f"{ref.keyword}={ref.name}")


# -- geometry (GetCorner / FindLine / FindBin) -----------------------------

def _nint(x: float) -> int:
    return int(x + 0.5) if x >= 0 else int(x - 0.5)


def corner_and_bin(header: fits.Header) -> tuple[tuple[int, int], tuple[int, int]]:
    """Corner (zero-indexed, unbinned pixels) and bin size from LTV/LTM."""
    ltm1 = float(header.get("LTM1_1", 1.0))
    ltm2 = float(header.get("LTM2_2", 1.0))
    if ltm1 <= 0 or ltm2 <= 0:
        raise CalibrationError(f"(LTM1_1, LTM2_2) = ({ltm1:.8g}, {ltm2:.8g}) is invalid")
    ltv1 = float(header.get("LTV1", 0.0))
    ltv2 = float(header.get("LTV2", 0.0))
    binx, biny = 1.0 / ltm1, 1.0 / ltm2
    corner = (_nint((binx - 1) - binx * ltv1), _nint((biny - 1) - biny * ltv2))
    return corner, (_nint(binx), _nint(biny))


@dataclass
class Alignment:
    same_size: bool
    x0: int = 0
    y0: int = 0
    rx: int = 1
    ry: int = 1
    ref_binned_more: bool = False


def find_alignment(sci_header: fits.Header, sci_shape: tuple[int, int],
                   ref_header: fits.Header, ref_shape: tuple[int, int],
                   whole_image: bool = False) -> Alignment:
    """FindLine (line-by-line steps) or FindBin (``whole_image``, the dark).

    The two differ only in the "same size" test: FindLine compares widths,
    FindBin compares both axes.
    """
    sci_corner, sci_bin = corner_and_bin(sci_header)
    ref_corner, ref_bin = corner_and_bin(ref_header)
    same = (sci_corner == ref_corner and sci_bin == ref_bin
            and sci_shape[1] == ref_shape[1]
            and (not whole_image or sci_shape[0] == ref_shape[0]))
    if same:
        return Alignment(True)
    if ref_bin[0] > sci_bin[0] or ref_bin[1] > sci_bin[1]:
        return Alignment(False,
                         x0=int((sci_corner[0] - ref_corner[0]) / ref_bin[0]),
                         y0=int((sci_corner[1] - ref_corner[1]) / ref_bin[1]),
                         rx=ref_bin[0] // sci_bin[0], ry=ref_bin[1] // sci_bin[1],
                         ref_binned_more=True)
    rx, ry = sci_bin[0] // ref_bin[0], sci_bin[1] // ref_bin[1]
    if rx * ref_bin[0] != sci_bin[0] or ry * ref_bin[1] != sci_bin[1]:
        raise CalibrationError("Reference image and science bin sizes are not commensurate "
                               "(SIZE_MISMATCH).")
    # C integer division truncates toward zero.
    x0 = int((sci_corner[0] - ref_corner[0]) / ref_bin[0])
    y0 = int((sci_corner[1] - ref_corner[1]) / ref_bin[1])
    return Alignment(False, x0=x0, y0=y0, rx=rx, ry=ry)


def cut_reference(ref: RefImage, align: Alignment, shape: tuple[int, int],
                  step: str) -> RefImage:
    """The part of a reference that overlays the science array.

    hstcal's trim1d/trim2d copy pixels without rebinning, so neither does
    this; a cut-out that falls outside the reference is a size mismatch.
    """
    ny, nx = shape
    which = f" ({ref.source})" if ref.source else ""
    if align.same_size:
        if ref.sci.shape[0] < ny or ref.sci.shape[1] != nx:
            raise CalibrationError(f"({step}) size mismatch: reference{which} is "
                                   f"{ref.sci.shape[1]}x{ref.sci.shape[0]}, science is {nx}x{ny}.")
        if ref.sci.shape[0] == ny:
            return ref
        sl = (slice(0, ny), slice(0, nx))
    else:
        x0, y0 = align.x0, align.y0
        if (x0 < 0 or y0 < 0 or x0 + nx * align.rx > ref.sci.shape[1]
                or y0 + ny > ref.sci.shape[0]):
            raise CalibrationError(
                f"({step}) size mismatch: subset at ({x0 + 1},{y0 + 1}) of size {nx}x{ny} "
                f"is out of bounds of the {ref.sci.shape[1]}x{ref.sci.shape[0]} reference{which}.")
        sl = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    return RefImage(sci=ref.sci[sl], err=ref.err[sl], dq=ref.dq[sl], header=ref.header,
                    extver=ref.extver, source=ref.source)


# -- tables -------------------------------------------------------------------

def read_table(ref: RefFile, ext: int | str = 1):
    """The rows of a binary-table reference (the first extension by default)."""
    if ext in ref.tables:
        return ref.tables[ext]
    try:
        hdu = fitsread.find_hdu(ref.hdus, ext)
    except (KeyError, IndexError) as exc:
        raise CalibrationError(f"{ref.keyword} `{ref.name}' has no extension {ext}.") from exc
    try:
        table = fitsread.table_data(hdu)
    except fitsread.Unsupported:
        # Fall back on astropy for table layouts the fast reader skips.
        index = ref.hdus.index(hdu)
        with fits.open(ref.path, memmap=False) as hdul:
            table = hdul[index].data
            if table is None:
                table = fits.FITS_rec.from_columns(hdul[index].columns)
    ref.tables[ext] = table
    return table


def column_names(table) -> list[str]:
    return [name.upper() for name in table.columns.names]


def get_column(table, name: str):
    """A column by case-insensitive name (FITS column names are case-free)."""
    for actual in table.columns.names:
        if actual.upper() == name.upper():
            return table[actual]
    raise KeyError(name)


def text(value) -> str:
    """A table string cell as calacs.e sees it (trailing blanks dropped)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).rstrip()


@dataclass
class RefSet:
    """All reference keywords calacs.e considered for one exposure."""

    refs: dict[str, RefFile] = field(default_factory=dict)

    def __getitem__(self, keyword: str) -> RefFile:
        return self.refs[keyword]

    def get(self, keyword: str) -> RefFile | None:
        return self.refs.get(keyword)

    def add(self, ref: RefFile) -> RefFile:
        self.refs[ref.keyword] = ref
        return ref
