"""What acssum, acsrej and the SPT product share: opening the inputs together, the statistics
and names written to a combined product, and the trailer's label format."""

from __future__ import annotations

import logging

from astropy.io import fits

from ...hstfile import put_card, put_card_float, rootname
from ..common.keywords import to_short
from ..common.statistics import image_statistics, write_statistics

log = logging.getLogger(__name__)

ALL_DQ_BITS = -1  # acssum's default SDQFLAGS (65535 seen as a signed short)


class open_all:
    """Open several FITS files read-only and close them together."""

    def __init__(self, paths):
        self.paths = paths

    def __enter__(self) -> list[fits.HDUList]:
        self.opened = [fits.open(p) for p in self.paths]
        return self.opened

    def __exit__(self, *exc):
        for hdul in self.opened:
            hdul.close()


def put_statistics(imset: list[fits.ImageHDU], sdqflags: int) -> None:
    """NGOODPIX, GOODMIN/MAX/MEAN and SNRMIN/MAX/MEAN over good pixels with ERR > 0 (doStat)."""
    # calacs.e compares as 16-bit shorts: SDQFLAGS 65535 (or -1) means every bit.
    stats = image_statistics(imset[0].data, imset[1].data, imset[2].data, to_short(sdqflags))
    if stats.ngoodpix == 0:
        log.warning("All output pixels either flagged as bad or ERR <= 0.")
    write_statistics(imset[0].header, imset[1].header, stats, put_int=put_card, put_float=put_card_float)


def put_product_names(header: fits.Header, output_name: str, memtype: str) -> None:
    put_card(header, "FILENAME", output_name, "name of file")
    put_card(header, "ASN_MTYP", memtype.upper(), "Role of the Exposure in the Association")
    put_card(header, "ROOTNAME", rootname(output_name).upper(), "Rootname of the observation set")


def labelled(label: str, text: str) -> str:
    """calacs.e pads a trailer label to 8 characters, then one blank."""
    return f"{label:<8} {text}"
