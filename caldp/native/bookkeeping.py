"""Header bookkeeping: statistics, switches, HISTORY and keyword formats.

calacs.e writes most numeric keywords through C floats (PutKeyFlt); they are
stored here rounded to float32 precision and shown with 8 significant
digits, which is what hstio prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from .refs import RefFile

# Internal switch states (calacs.e's PERFORM / OMIT / COMPLETE / DUMMY / IGNORED)
PERFORM = "PERFORM"
OMIT = "OMIT"
COMPLETE = "COMPLETE"
DUMMY = "DUMMY"
IGNORED = "IGNORED"
SKIPPED = "SKIPPED"


def to_short(value: int) -> int:
    """An int as a C short (SDQFLAGS default 65535 is -1: every bit)."""
    return ((int(value) + 32768) % 65536) - 32768


def as_float32(value: float) -> float:
    """A Python float holding exactly the C float calacs.e would write."""
    return float("%.8g" % float(np.float32(value)))


def put_float(header: fits.Header, key: str, value: float, comment: str = "") -> None:
    """PutKeyFlt: update (keeping the comment) or append a float keyword."""
    if key in header:
        header[key] = as_float32(value)
    else:
        header.append((key, as_float32(value), comment), end=True)


def put_int(header: fits.Header, key: str, value: int, comment: str = "") -> None:
    if key in header:
        header[key] = int(value)
    else:
        header.append((key, int(value), comment), end=True)


def put_str(header: fits.Header, key: str, value: str, comment: str = "") -> None:
    if key in header:
        comment = header.comments[key]
    else:
        header.append((key, value, comment), end=True)
    # hstio keeps the old comment and cuts it to fit the 80-column card.
    room = 80 - len(fits.Card(key, value).image.rstrip()) - 3
    header[key] = (value, comment[:max(room, 0)])


def add_history(header: fits.Header, text: str) -> None:
    header.add_history(text)


# -- switches -------------------------------------------------------------------

def header_switch(header: fits.Header, key: str) -> str:
    """A calibration switch as calacs.e reads it: PERFORM, COMPLETE or OMIT."""
    value = str(header.get(key, "") or "").strip().upper()
    if value in (PERFORM, COMPLETE):
        return value
    return OMIT


def shown_state(state: str) -> str:
    """A step state as the trailer shows it: DUMMY and IGNORED steps are SKIPPED."""
    return SKIPPED if state in (DUMMY, IGNORED) else state


def update_switch(header: fits.Header, key: str, flag: str) -> bool:
    """UpdateSwitch: set COMPLETE/SKIPPED and add the HISTORY line.

    Returns True when the reference names should be logged too.
    """
    if flag == PERFORM:
        put_str(header, key, COMPLETE)
        add_history(header, f"{key} complete ...")
        return True
    if flag == DUMMY:
        put_str(header, key, SKIPPED)
        add_history(header, f"{key} skipped due to dummy reference file ...")
        return True
    if flag == IGNORED:
        put_str(header, key, SKIPPED)
        add_history(header, f"{key} not performed ...")
        return True
    return False


def ref_history(header: fits.Header, ref: RefFile, table: bool) -> None:
    """ImgHistory / TabHistory: name, pedigree and description(s)."""
    add_history(header, f"  reference {'table' if table else 'image'} {ref.name}")
    if ref.pedigree:
        add_history(header, f"    {ref.pedigree}")
    if ref.descrip:
        add_history(header, f"    {ref.descrip}")
    if table and ref.descrip2:
        add_history(header, f"    {ref.descrip2}")


# -- statistics -----------------------------------------------------------------

@dataclass
class ImageStats:
    ngoodpix: int
    goodmin: float = 0.0
    goodmax: float = 0.0
    goodmean: float = 0.0
    snrmin: float = 0.0
    snrmax: float = 0.0
    snrmean: float = 0.0
    errmin: float = 0.0
    errmax: float = 0.0
    errmean: float = 0.0
    note: str | None = None


def image_statistics(sci, err, dq, sdqflags: int) -> ImageStats:
    """doStat: statistics of pixels with no serious DQ bit and ERR > 0."""
    good = (dq & np.int16(sdqflags)) == 0
    positive = err > 0
    use = good & positive
    n = int(use.sum())
    if n == 0:
        if sci.size == 0:
            note = "Output image size is zero."
        elif int((good & ~positive).sum()) > 0:
            note = ("No ERR values > 0." if int((good & ~positive).sum()) == sci.size
                    else "All output pixels either flagged as bad or ERR <= 0.")
        else:
            note = "All output pixels flagged as bad."
        return ImageStats(ngoodpix=0, note=note)
    values = sci[use].astype(np.float64)
    errors = err[use].astype(np.float64)
    snr = values / errors
    return ImageStats(
        ngoodpix=n,
        goodmin=float(values.min()), goodmax=float(values.max()),
        goodmean=float(values.sum() / n),
        snrmin=float(snr.min()), snrmax=float(snr.max()), snrmean=float(snr.sum() / n),
        errmin=float(errors.min()), errmax=float(errors.max()), errmean=float(errors.sum() / n),
    )


# doStat's keywords: (SCI or ERR header, keyword, ImageStats field, comment), in writing order.
_STATISTICS_KEYWORDS = (
    ("sci", "GOODMIN", "goodmin", "minimum good data value"),
    ("sci", "GOODMAX", "goodmax", "maximum good data value"),
    ("sci", "GOODMEAN", "goodmean", "average of good data values"),
    ("sci", "SNRMIN", "snrmin", "minimum S/N of good data values"),
    ("sci", "SNRMAX", "snrmax", "maximum S/N of good data values"),
    ("sci", "SNRMEAN", "snrmean", "mean S/N of good data values"),
    ("err", "GOODMIN", "errmin", "minimum sigma for good data"),
    ("err", "GOODMAX", "errmax", "maximum sigma for good data"),
    ("err", "GOODMEAN", "errmean", "average of sigma for good data"),
)


def write_statistics(sci_hdr: fits.Header, err_hdr: fits.Header, stats: ImageStats, *,
                     put_int=put_int, put_float=put_float) -> None:
    """NGOODPIX and, when there are good pixels, the GOOD*/SNR* keywords.

    ``put_int``/``put_float`` write one keyword; the combination step passes its own, which
    format the cards as acssum/acsrej do.
    """
    put_int(sci_hdr, "NGOODPIX", stats.ngoodpix, "number of good pixels")
    put_int(err_hdr, "NGOODPIX", stats.ngoodpix, "number of good pixels")
    if stats.ngoodpix == 0:
        return
    headers = {"sci": sci_hdr, "err": err_hdr}
    for which, key, field, comment in _STATISTICS_KEYWORDS:
        put_float(headers[which], key, getattr(stats, field), comment)
