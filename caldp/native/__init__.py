"""caldp.native: numpy + astropy reimplementations of HST calibration programs.

One package per program over a shared core:

* ``common``   -- FITS and imset I/O, reference and table readers, the trailer, header keywords,
  switches and HISTORY, image statistics, errors and the version string;
* ``detector`` -- pure CCD/MAMA array algorithms without instrument knowledge of their own
  (overscan, bias, dark, flat, gain and electrons, sink pixels, MAMA linearity);
* ``acs``      -- calacs.e (``python -m caldp.native.acs``, the console script ``caldp-calacs``);
* ``wfc3``     -- the place for calwf3.e.

``python -m caldp.native`` is an alias of ``python -m caldp.native.acs``, and the names below are
calacs's, kept here for callers that import them from ``caldp.native``.
"""

import logging as _logging

from .acs import (CALACS_COMPAT, ERROR_RETURN, VERSION_STRING, CalibrationError, NothingToDo,
                  calibrate_association, calibrate_exposure)

_logging.getLogger("caldp.native").addHandler(_logging.NullHandler())

__all__ = [
    "calibrate_exposure", "calibrate_association", "CalibrationError", "NothingToDo",
    "ERROR_RETURN", "VERSION_STRING", "CALACS_COMPAT",
]
