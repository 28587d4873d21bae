"""Image statistics calacs.e writes to every calibrated imset (doStat)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from .keywords import put_float, put_int

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
