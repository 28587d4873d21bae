"""caldp.native.acs: a numpy + astropy reimplementation of hstcal's calacs.e (ACS).

It calibrates single ACS exposures (HRC and WFC CCDs, SBC MAMA) into _flt
files the way calacs.e 10.5.0 does, for machines where hstcal is absent:

    from caldp.native.acs import calibrate_exposure
    flt = calibrate_exposure(Path("j8bt05njq_raw.fits"), jref="/refs/")

or, from a shell, ``python -m caldp.native.acs j8bt05njq_raw.fits`` (the console
script ``caldp-calacs``), which accepts calacs.e's options.  An _asn.fits
input calibrates every present member and then hands the _flt files to
``caldp.native.acs.combine.combine_association``.

Steps applied: DQICORR, BIASCORR, BLEVCORR (overscan fit; post-SM4 WFC bias
shift, cross talk and destriping), SATUFILE flags, DARKTIME, the error
array, SINKCORR, DARKCORR, FLSHCORR, FLATCORR, SHADCORR, PHOTCORR for the
CCDs; DQICORR, GLINCORR, LFLGCORR, FLATCORR, PHOTCORR (and DARKCORR) for SBC.
Parity with calacs.e is checked on the goldens in ../shared/golden (bit for
bit on SCI, ERR and DQ there).

Known differences from calacs.e 10.5.0:

* PCTECORR and ATODCORR are recognised but not applied: the trailer says
  "<step> requested but not applied by caldp's native calibration" and the
  switch stays PERFORM (the references calacs.e requires for them must
  still exist, as calacs.e checks that first).
* CFLTFILE/SPOTTAB (HRC coronagraphic spot flats) are not applied; a
  warning names the file.
* LFLTFILE is expanded and divided over the whole frame, where calacs.e's
  code divides by an unfilled buffer (see caldp.native.detector.flat).
* The post-SM4 WFC path (postsm4.py) follows calacs.e's algorithm but has
  no calacs.e run to compare with here; summation order differs.
* Products say ORIGIN = 'caldp.native (astropy)' and CAL_VER =
  VERSION_STRING; the trailer has no git/thread lines and blank-line
  spacing differs slightly.
"""

from ..common.errors import ERROR_RETURN, CalibrationError
from ..common.version import CALACS_COMPAT, VERSION_STRING
from .calibrate import NothingToDo, calibrate_association, calibrate_exposure
from .exposure import SWITCH_KEYWORDS

__all__ = [
    "calibrate_exposure", "calibrate_association", "CalibrationError", "NothingToDo",
    "ERROR_RETURN", "VERSION_STRING", "CALACS_COMPAT", "SWITCH_KEYWORDS",
]
