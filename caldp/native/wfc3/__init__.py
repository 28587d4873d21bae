"""The place for caldp's calwf3.e: ``wfc3/uvis`` (ACSCCD-like WF3CCD and WF32D stages over
``caldp.native.detector``) and ``wfc3/ir`` (WF3IR), run as ``python -m caldp.native.wfc3``.

Nothing is implemented yet: WFC3 calibrates with hstcal's calwf3.e."""
