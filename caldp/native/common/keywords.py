"""Header bookkeeping: calibration switches, HISTORY and keyword formats.

The keyword writers (hstio's PutKeyFlt/Int/Str) and the switch reader are caldp.hstfile's:
calacs.e writes most numeric keywords through C floats, stored rounded to float32 precision
and shown with 8 significant digits, as hstio prints them.
"""

from __future__ import annotations

from astropy.io import fits

from ...hstfile import as_float32, put_float, put_int, put_str
from ...hstfile import switch as header_switch
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


def add_history(header: fits.Header, text: str) -> None:
    header.add_history(text)


# -- switches -------------------------------------------------------------------

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


__all__ = ["PERFORM", "OMIT", "COMPLETE", "DUMMY", "IGNORED", "SKIPPED", "to_short", "as_float32",
           "put_float", "put_int", "put_str", "add_history", "header_switch", "shown_state",
           "update_switch", "ref_history"]
