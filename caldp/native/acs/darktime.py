"""DARKTIME as ACSCCD writes it: the header value plus the CCDTAB overhead where calacs.e adds one."""

from __future__ import annotations

import numpy as np

SM4MJD = 54962
CYCLE24 = 57662

DARK_SUBARRAY_APERTURES = (
    "WFC1A-2K", "WFC1B-2K", "WFC2C-2K", "WFC2D-2K",
    "WFC1A-1K", "WFC1B-1K", "WFC2C-1K", "WFC2D-1K",
    "WFC1A-512", "WFC1B-512", "WFC2C-512", "WFC2D-512",
    "WFC1-IRAMPQ", "WFC1-MRAMPQ", "WFC2-ORAMPQ",
    "WFC1-POL0UV", "WFC1-POL0V", "WFC1-POL60UV", "WFC1-POL60V",
    "WFC1-POL120UV", "WFC1-POL120V", "WFC1-SMFL",
)


def compute_darktime(header_darktime: float, expstart: float, subarray: bool, aperture: str,
                     flashdur: float, flashstatus: str, overhead_unflashed: float,
                     overhead_postflashed: float) -> tuple[float, float, str | None]:
    """DARKTIME after the CCDTAB overhead (returns darktime, offset, note).

    The overhead is added for full frames from SM4 on, and for the supported
    WFC subarrays from Cycle 24 on; everything is a C float.
    """
    base = float(np.float32(header_darktime))
    offset = overhead_unflashed
    if flashdur > 0.0 and flashstatus == "SUCCESSFUL":
        offset = overhead_postflashed
    darktime = base
    note = None
    if not subarray:
        if expstart >= SM4MJD:
            darktime = float(np.float32(base + offset))
        note = f"Full Frame adjusted Darktime: {darktime:f}"
    elif expstart >= CYCLE24 and aperture in DARK_SUBARRAY_APERTURES:
        darktime = float(np.float32(base + offset))
        note = f"Supported Subarray adjusted Darktime: {darktime:f} for aperture: {aperture}"
    return darktime, offset, note
