"""SINKCORR: flag WFC sink pixels and their trails (DQ 1024).

The SNKCFILE (one untrimmed, full-frame SCI image per chip) marks a sink
pixel with its depth (a value below -1), the pixel downstream of it with -1
and the pixels upstream of it with the signal level below which they are
affected.  Walking each column from the sink towards its trail (upwards for
the reference's first extension, downwards for the second), calacs.e flags:

* every sink and downstream pixel (negative value), which also starts a
  trail and, for the sink itself, records the science value there;
* each following upstream pixel (positive value) whose reference value
  exceeds the science value recorded at the sink, until one does not;
* nothing after a zero, which ends the trail.

Columns are independent, so the walk is done one row at a time over all
columns at once.
"""

from __future__ import annotations

import numpy as np

SINKPIXEL = np.int16(1024)


def flag_sink_pixels(sci: np.ndarray, dq: np.ndarray, sink: np.ndarray,
                     downward: bool) -> tuple[np.ndarray, int]:
    """DQ with sink pixels and trails flagged; also returns the number flagged.

    ``sink`` is the reference already cut to the science array's shape.
    """
    out = dq.copy()
    ny, nx = sci.shape
    keep_going = np.zeros(nx, dtype=bool)
    level = np.zeros(nx, dtype=np.float32)
    flagged = 0
    rows = range(ny - 1, -1, -1) if downward else range(ny)
    for j in rows:
        s = sink[j]
        negative = s < 0
        positive = s > 0
        sink_itself = s < -1
        level[sink_itself] = sci[j][sink_itself]
        trail = positive & keep_going
        above = trail & (s > level)
        flag = negative | above
        out[j][flag] |= SINKPIXEL
        flagged += int(flag.sum())
        keep_going = (keep_going | negative) & ~(trail & ~above) & ~(s == 0)
    return out, flagged
