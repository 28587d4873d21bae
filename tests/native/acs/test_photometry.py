"""PHOTMODE construction and the IMPHTTAB look-up."""

from __future__ import annotations

import pytest

from .. import calacs_synth as syn
from caldp.native import CalibrationError
from caldp.native.acs.photometry import (OUT_OF_RANGE, build_photmode, compute_photometry,
                                     obsmodes_match, photmode_to_obsmode)
from caldp.native.common.refs import open_reference


@pytest.mark.parametrize("args,expected", [
    (("HRC", "IMAGING", "F555W", "CLEAR2S", 52377.76152356), "ACS HRC F555W MJD#52377.7615"),
    (("SBC", "IMAGING", "F165LP", "N/A", 56197.84963103), "ACS SBC F165LP MJD#56197.8496"),
    (("WFC", "IMAGING", "CLEAR1L", "F814W", 55000.0), "ACS WFC1 F814W MJD#55000.0000"),
    (("WFC", "IMAGING", "F606W", "POL60UV", 55000.0), "ACS WFC1 F606W POL_UV MJD#55000.0000"),
    (("HRC", "CORON", "F435W", "POL0V", 53000.0), "ACS HRC CORON F435W POL_V MJD#53000.0000"),
    (("WFC", "IMAGING", "FR656N", "CLEAR2L", 54000.0, 6563.0),
     "ACS WFC1 FR656N#6563 MJD#54000.0000"),
])
def test_photmode(args, expected):
    assert build_photmode(*args) == expected


def test_obsmode_splits_parameters_and_matches_in_any_order():
    obsmode, params = photmode_to_obsmode("ACS HRC F555W MJD#52377.7615")
    assert obsmode == "acs,hrc,f555w,mjd#" and params == {"mjd#": 52377.7615}
    assert obsmodes_match("acs,f555w,hrc,mjd#", obsmode)
    assert not obsmodes_match("acs,hrc,f555w", obsmode)            # different length
    assert not obsmodes_match("acs,hrc,f550m,mjd#", obsmode)


def _imphttab(tmp_path, **kw):
    path = syn.write_imphttab(tmp_path / "x_imp.fits", [
        ("acs,hrc,f435w,mjd#", [52000.0, 53000.0, 54000.0], [1.0e-19, 2.0e-19, 4.0e-19],
         [4300.0, 4310.0, 4320.0], 300.0),
        ("acs,hrc,f555w,mjd#", [52000.0, 53000.0], [3.0e-19, 3.1e-19], 5356.0, 374.9),
        ("acs,hrc,f814w", None, 7.0e-20, 8000.0, 650.0),
    ], **kw)
    return open_reference("IMPHTTAB", str(path), {})


def test_interpolates_linearly_in_mjd(tmp_path):
    ref = _imphttab(tmp_path)
    phot = compute_photometry(ref, "ACS HRC F435W MJD#53250.0000")
    assert phot.photflam == pytest.approx(2.5e-19)
    assert phot.photplam == pytest.approx(4312.5)
    assert phot.photbw == pytest.approx(300.0)
    assert phot.photzpt == -21.1 and not phot.extrapolated_out


def test_scalar_rows(tmp_path):
    phot = compute_photometry(_imphttab(tmp_path), "ACS HRC F814W")
    assert (phot.photflam, phot.photplam, phot.photbw) == (7.0e-20, 8000.0, 650.0)


def test_outside_the_table_without_extrap_gives_minus_9999(tmp_path):
    phot = compute_photometry(_imphttab(tmp_path), "ACS HRC F555W MJD#55000.0000")
    assert phot.photflam == OUT_OF_RANGE and phot.extrapolated_out


def test_extrap_true_extrapolates_mjd(tmp_path):
    phot = compute_photometry(_imphttab(tmp_path, extrap=True), "ACS HRC F555W MJD#54000.0000")
    assert phot.photflam == pytest.approx(3.2e-19)


def test_no_matching_row_is_an_error(tmp_path):
    with pytest.raises(CalibrationError, match="Matching row not found in IMPHTTAB"):
        compute_photometry(_imphttab(tmp_path), "ACS HRC F220W MJD#53000.0000")
