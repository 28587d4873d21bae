"""sum_repeats (acssum) on synthetic exposures: arithmetic, chip matching, headers, purity."""

import logging

import numpy as np
import pytest
from astropy.io import fits

from caldp.native.acs.combine import CombineError, sum_repeats

SHAPE = (6, 8)


def exposure(seed, expstart, chip_order=(1, 2), empty_err=False, nrptexp=3):
    rng = np.random.default_rng(seed)
    primary = fits.PrimaryHDU()
    primary.header.update({
        "NEXTEND": 3 * len(chip_order), "ROOTNAME": f"jzz{seed:03d}q", "FILENAME": f"jzz{seed:03d}q_flt.fits",
        "EXPTIME": 100.0 + seed, "EXPSTART": expstart, "EXPEND": expstart + 0.01, "NRPTEXP": nrptexp,
        "RPTCORR": "PERFORM", "ASN_MTYP": "EXP-RPT", "DETECTOR": "SBC",
    })
    hdus = [primary]
    data = {}
    for extver, chip in enumerate(chip_order, start=1):
        sci = rng.uniform(0, 50, SHAPE).astype(np.float32)
        err = rng.uniform(1, 3, SHAPE).astype(np.float32)
        dq = rng.choice(np.array([0, 0, 0, 16, 512], np.int16), SHAPE)
        data[chip] = (sci, err, dq)
        for name, array in (("SCI", sci), ("ERR", None if empty_err else err), ("DQ", dq)):
            hdu = fits.ImageHDU(data=array, name=name, ver=extver)
            hdu.header["CCDCHIP"] = chip
            hdu.header["EXPNAME"] = primary.header["ROOTNAME"]
            if array is None:
                hdu.header.update({"PIXVALUE": 2.0, "NPIX1": SHAPE[1], "NPIX2": SHAPE[0]})
            hdus.append(hdu)
    if empty_err:
        data = {c: (s, np.full(SHAPE, 2.0, np.float32), d) for c, (s, e, d) in data.items()}
    return fits.HDUList(hdus), data


def test_sum_matches_chips_and_adds_like_acssum():
    members = [exposure(1, 56000.0), exposure(2, 56000.1, chip_order=(2, 1)), exposure(3, 56000.2)]
    product = sum_repeats([m for m, _ in members], "jzz001021_sfl.fits", "PROD-RPT")
    for extver, chip in ((1, 1), (2, 2)):
        stacks = [data[chip] for _, data in members]
        assert product["SCI", extver].header["CCDCHIP"] == chip
        assert np.array_equal(product["SCI", extver].data, (stacks[0][0] + stacks[1][0]) + stacks[2][0])
        variance = (stacks[0][1] * stacks[0][1] + stacks[1][1] * stacks[1][1]) + stacks[2][1] * stacks[2][1]
        assert np.array_equal(product["ERR", extver].data, np.sqrt(variance))
        assert np.array_equal(product["DQ", extver].data, stacks[0][2] | stacks[1][2] | stacks[2][2])
        assert product["DQ", extver].data.dtype == np.int16
        for name in ("SCI", "ERR", "DQ"):
            assert product[name, extver].header["EXPNAME"] == "jzz001021"


def test_sum_header_follows_acssum():
    members = [exposure(1, 56000.0)[0], exposure(2, 56000.1)[0], exposure(3, 56000.2)[0]]
    header = sum_repeats(members, "jzz001021_sfl.fits", "PROD-RPT")[0].header
    assert header["EXPTIME"] == pytest.approx(306.0)
    assert header["EXPSTART"] == 56000.0
    assert header["EXPEND"] == pytest.approx(56000.21)
    assert header["NCOMBINE"] == 3
    assert header["RPTCORR"] == "COMPLETE"
    assert header["NEXTEND"] == 6
    assert header["FILENAME"] == "jzz001021_sfl.fits"
    assert header["ROOTNAME"] == "JZZ001021"
    assert header["ASN_MTYP"] == "PROD-RPT"
    assert list(header["HISTORY"])[-2:] == ["RPTCORR complete", "Statistics computed after rptcorr."]
    # calacs.e appends NCOMBINE after the history and prints doubles with 13 digits.
    assert list(header.keys())[-1] == "NCOMBINE"
    assert header.cards["EXPTIME"].image.startswith("EXPTIME =   3.060000000000E+02")


def test_statistics_of_the_sum_use_every_dq_bit():
    members = [exposure(1, 56000.0)[0], exposure(2, 56000.1)[0]]
    product = sum_repeats(members, "jzz001021_sfl.fits", "PROD-RPT")
    sci, err, dq = (product[name, 1].data for name in ("SCI", "ERR", "DQ"))
    good = (dq == 0) & (err > 0)
    assert product["SCI", 1].header["NGOODPIX"] == good.sum()
    assert product["SCI", 1].header["GOODMAX"] == pytest.approx(sci[good].max(), rel=1e-6)
    assert product["SCI", 1].header["SNRMEAN"] == pytest.approx(np.mean(sci[good] / err[good]), rel=1e-6)
    assert product["ERR", 1].header["GOODMIN"] == pytest.approx(err[good].min(), rel=1e-6)


def test_inputs_are_not_modified():
    members = [exposure(1, 56000.0)[0], exposure(2, 56000.1)[0]]
    before = [(str(m[0].header), [h.data.copy() for h in m[1:]]) for m in members]
    sum_repeats(members, "jzz001021_sfl.fits", "PROD-RPT")
    for member, (header, arrays) in zip(members, before):
        assert str(member[0].header) == header
        assert all(np.array_equal(h.data, a) for h, a in zip(member[1:], arrays))


def test_constant_err_extension_is_expanded():
    members = [exposure(1, 56000.0, empty_err=True), exposure(2, 56000.1, empty_err=True)]
    product = sum_repeats([m for m, _ in members], "jzz001021_sfl.fits", "PROD-RPT")
    assert np.allclose(product["ERR", 1].data, np.sqrt(8.0))
    assert "PIXVALUE" not in product["ERR", 1].header


def test_nrptexp_mismatch_is_a_warning_and_one_exposure_an_error(caplog):
    members = [exposure(1, 56000.0, nrptexp=4)[0], exposure(2, 56000.1)[0]]
    with caplog.at_level(logging.WARNING, logger="caldp.native.acs.acssum"):
        sum_repeats(members, "jzz001021_sfl.fits", "PROD-RPT")
    assert "NRPTEXP was 4" in caplog.text
    with pytest.raises(CombineError, match="only one input"):
        sum_repeats(members[:1], "jzz001021_sfl.fits", "PROD-RPT")
