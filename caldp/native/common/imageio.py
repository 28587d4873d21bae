"""Reading raw ACS exposures and writing calibrated products.

An exposure is a primary header plus one or more imsets (SCI, ERR, DQ).  Raw
ERR and DQ extensions are often empty (NAXIS=0 with PIXVALUE); they become
constant arrays.  Products are written the way hstio writes them: float32 SCI
and ERR, int16 DQ, ORIGIN and DATE at the top of each header, and the
keywords that only describe the raw encoding (BSCALE, DATAMIN, PIXVALUE...)
removed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ...hstfile import expand_constant
from .errors import CalibrationError

ORIGIN = "caldp.native (astropy)"

# Keywords describing how the raw arrays were stored, not what they contain.
_ENCODING_KEYS = ("BSCALE", "BZERO", "DATAMIN", "DATAMAX", "NPIX1", "NPIX2", "PIXVALUE")


@dataclass
class Imset:
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    sci_hdr: fits.Header
    err_hdr: fits.Header
    dq_hdr: fits.Header
    extver: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.sci.shape

    def replace(self, **arrays) -> "Imset":
        """A copy with some planes replaced (headers are shared on purpose)."""
        values = dict(sci=self.sci, err=self.err, dq=self.dq, sci_hdr=self.sci_hdr,
                      err_hdr=self.err_hdr, dq_hdr=self.dq_hdr, extver=self.extver)
        values.update(arrays)
        return Imset(**values)


@dataclass
class Exposure:
    path: Path
    primary: fits.Header
    imsets: list[Imset] = field(default_factory=list)


def _plane(hdu, shape, dtype):
    if hdu.data is None:
        return expand_constant(hdu.header, shape, dtype)
    data = hdu.data
    if data.shape != shape:
        raise CalibrationError(f"{hdu.name},{hdu.ver} has shape {data.shape[::-1]}, "
                               f"SCI has {shape[::-1]}.")
    return np.asarray(data, dtype=dtype)


def read_exposure(path: Path) -> Exposure:
    """Read every imset of a raw (or calibrated) ACS file into memory."""
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"Can't open input file `{path}': {exc}") from exc
    with hdul:
        primary = hdul[0].header.copy()
        nimsets = int(primary.get("NEXTEND", 3)) // 3
        if nimsets < 1:
            raise CalibrationError(f"NEXTEND = {primary.get('NEXTEND')}; must be at least 3.")
        exposure = Exposure(path=Path(path), primary=primary)
        for extver in range(1, nimsets + 1):
            try:
                sci_hdu = hdul["SCI", extver]
                err_hdu = hdul["ERR", extver]
                dq_hdu = hdul["DQ", extver]
            except KeyError as exc:
                raise CalibrationError(f"Imset {extver} of `{path}' is incomplete.") from exc
            if sci_hdu.data is None:
                sci = expand_constant(sci_hdu.header, None, np.float32)
                shape = sci.shape
            else:
                sci = np.asarray(sci_hdu.data, dtype=np.float32)
                shape = sci.shape
            exposure.imsets.append(Imset(
                sci=sci,
                err=_plane(err_hdu, shape, np.float32),
                dq=_plane(dq_hdu, shape, np.int16),
                sci_hdr=sci_hdu.header.copy(),
                err_hdr=err_hdu.header.copy(),
                dq_hdr=dq_hdu.header.copy(),
                extver=extver,
            ))
    return exposure


def _stamp(header: fits.Header, after: str) -> None:
    for key in ("ORIGIN", "DATE"):
        while key in header:
            del header[key]
    date = time.strftime("%Y-%m-%d", time.gmtime())
    header.insert(after, ("ORIGIN", ORIGIN, "FITS file originator"), after=True)
    header.insert("ORIGIN", ("DATE", date, "date this file was written (yyyy-mm-dd)"),
                  after=True)


def _clean_extension(header: fits.Header) -> fits.Header:
    header = header.copy()
    for key in _ENCODING_KEYS:
        while key in header:
            del header[key]
    return header


def build_hdulist(exposure: Exposure) -> fits.HDUList:
    primary = exposure.primary.copy()
    for key in ("GROUPS",):
        while key in primary:
            del primary[key]
    phdu = fits.PrimaryHDU(header=primary)
    _stamp(phdu.header, "EXTEND" if "EXTEND" in phdu.header else "NAXIS")
    hdus = [phdu]
    for imset in exposure.imsets:
        for name, data, hdr, dtype in (("SCI", imset.sci, imset.sci_hdr, np.float32),
                                       ("ERR", imset.err, imset.err_hdr, np.float32),
                                       ("DQ", imset.dq, imset.dq_hdr, np.int16)):
            hdu = fits.ImageHDU(data=np.ascontiguousarray(data, dtype=dtype),
                                header=_clean_extension(hdr), name=name, ver=imset.extver)
            _stamp(hdu.header, "GCOUNT")
            hdus.append(hdu)
    return fits.HDUList(hdus)


def write_product(exposure: Exposure, path: Path) -> None:
    """Write a product; calacs.e never overwrites, so neither does this."""
    if path.exists():
        raise CalibrationError(f"Output file `{path.name}' already exists.")
    build_hdulist(exposure).writeto(path, output_verify="silentfix")


# -- imsets of an open FITS file (the combination tasks read their inputs this way) ---------

EXT_PER_IMSET = 3


def count_imsets(hdul: fits.HDUList) -> int:
    nextend = hdul[0].header.get("NEXTEND")
    if nextend is None:
        return sum(1 for h in hdul[1:] if h.header.get("EXTNAME", "").strip().upper() == "SCI")
    return max(int(nextend) // EXT_PER_IMSET, 1)


def extver_of_chip(hdul: fits.HDUList, chip: int) -> int:
    for extver in range(1, count_imsets(hdul) + 1):
        if hdul["SCI", extver].header.get("CCDCHIP", 1) == chip:
            return extver
    raise CalibrationError(f"{hdul.filename()}: no imset for CCDCHIP {chip}")


def read_imset_arrays(hdul: fits.HDUList, extver: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of SCI, ERR (float32) and DQ (int16); a data-less extension means PIXVALUE."""
    sci = _array_of(hdul["SCI", extver], None, np.float32)
    err = _array_of(hdul["ERR", extver], sci.shape, np.float32)
    dq = _array_of(hdul["DQ", extver], sci.shape, np.int16)
    return sci, err, dq


def _array_of(hdu, shape, dtype) -> np.ndarray:
    if hdu.data is not None:
        return np.array(hdu.data, dtype=dtype)
    return expand_constant(hdu.header, shape, dtype)


def new_imset_hdus(template: fits.HDUList, extver: int, sci, err, dq) -> list[fits.ImageHDU]:
    """SCI/ERR/DQ extensions with the template imset's headers and new data."""
    hdus = []
    for name, data, dtype in (("SCI", sci, np.float32), ("ERR", err, np.float32), ("DQ", dq, np.int16)):
        header = template[name, extver].header.copy()
        for keyword in ("PIXVALUE", "NPIX1", "NPIX2"):
            header.remove(keyword, ignore_missing=True)
        hdus.append(fits.ImageHDU(data=np.asarray(data, dtype=dtype), header=header))
    return hdus
