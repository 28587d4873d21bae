"""Parity of the association step with calacs.e on the SBC REPEAT-OBS golden jbz504020.

The golden's own member flts (calacs.e's) are combined here, so any difference is the
association step's alone.
"""

import re
import shutil

import numpy as np
import pytest
from astropy.io import fits

from ..calacs_helpers import shared_dir
from caldp.native.acs.combine import CombineError, combine_association


GOLDEN = shared_dir() / "golden" / "acs-sbc-jbz504020"
MEMBERS = ("jbz504elq", "jbz504emq", "jbz504enq")
STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT"}
NAMED_KEYWORDS = {
    0: ["NCOMBINE", "EXPTIME", "EXPSTART", "EXPEND", "RPTCORR", "FILENAME", "ROOTNAME", "ASN_MTYP", "NEXTEND"],
    1: ["BUNIT", "PHOTMODE", "PHOTFLAM", "PHOTZPT", "PHOTPLAM", "PHOTBW", "EXPNAME", "NGOODPIX", "GOODMEAN",
        "SNRMAX"],
    2: ["BUNIT", "GOODMIN", "GOODMAX", "GOODMEAN"],
    3: ["EXPNAME"],
}


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    if not (GOLDEN / "expected" / "jbz504021_sfl.fits").is_file():
        pytest.skip(f"golden jbz504020 not found under {GOLDEN} (set CALDP_SHARED)")
    work = tmp_path_factory.mktemp("jbz504020")
    shutil.copyfile(GOLDEN / "input" / "jbz504020_asn.fits", work / "jbz504020_asn.fits")
    for member in MEMBERS:
        for name in (f"{member}_flt.fits", f"{member}.tra"):
            shutil.copyfile(GOLDEN / "expected" / name, work / name)
    products = combine_association(work / "jbz504020_asn.fits", [work / f"{m}_flt.fits" for m in MEMBERS])
    with fits.open(work / "jbz504021_sfl.fits") as ours, fits.open(GOLDEN / "expected" / "jbz504021_sfl.fits") as theirs:
        yield work, products, ours, theirs


def test_the_product_is_named_from_the_prod_rpt_row(combined):
    work, products, _, _ = combined
    assert products == [work / "jbz504021_sfl.fits"]


def test_science_is_within_the_parity_tolerance(combined):
    _, _, ours, theirs = combined
    expected = theirs["SCI"].data.astype(np.float64)
    difference = np.abs(ours["SCI"].data - expected)
    assert np.all(difference <= np.maximum(0.01, 1e-5 * np.abs(expected)))


def test_data_quality_is_identical(combined):
    _, _, ours, theirs = combined
    assert ours["DQ"].data.dtype == theirs["DQ"].data.dtype
    assert np.array_equal(ours["DQ"].data, theirs["DQ"].data)


def test_error_is_within_1e_5_relative(combined):
    _, _, ours, theirs = combined
    expected = theirs["ERR"].data.astype(np.float64)
    assert np.all(np.abs(ours["ERR"].data - expected) <= 1e-5 * np.abs(expected))


def test_every_keyword_matches_calacs(combined):
    _, _, ours, theirs = combined
    assert len(ours) == len(theirs)
    for index, (mine, reference) in enumerate(zip(ours, theirs)):
        for keyword in NAMED_KEYWORDS[index]:
            assert keyword in mine.header, f"HDU {index} lacks {keyword}"
        keys = [k for k in reference.header if k not in STRUCTURAL and k not in ("HISTORY", "COMMENT", "")]
        assert sorted(set(keys)) == sorted(
            {k for k in mine.header if k not in STRUCTURAL and k not in ("HISTORY", "COMMENT", "")}
        )
        for keyword in keys:
            _assert_same_value(index, keyword, mine.header[keyword], reference.header[keyword])
        assert list(mine.header.get("HISTORY", [])) == list(reference.header.get("HISTORY", []))


def test_trailers_match_calacs_apart_from_time_stamps_and_version(combined):
    work, _, _, _ = combined
    for name in ("jbz504021.tra", "jbz504020.tra"):
        assert _without_times((work / name).read_text()) == _without_times((GOLDEN / "expected" / name).read_text())


def test_association_table_is_valid_and_its_data_unchanged(combined):
    work, _, _, _ = combined
    with fits.open(work / "jbz504020_asn.fits") as ours, fits.open(GOLDEN / "input" / "jbz504020_asn.fits") as given:
        assert ours[0].header["ASN_PROD"] is True
        assert bool(ours[1].data["MEMPRSNT"][3]) is True
        assert np.array_equal(ours[1].data, given[1].data)
        # calacs.e adds one more NEXTEND card each time it updates the table; caldp does not.
        count = [card.keyword for card in ours[0].header.cards].count("NEXTEND")
        assert count == [card.keyword for card in given[0].header.cards].count("NEXTEND")


def test_member_files_are_left_untouched(combined):
    work, _, _, _ = combined
    for member in MEMBERS:
        name = f"{member}_flt.fits"
        assert (work / name).read_bytes() == (GOLDEN / "expected" / name).read_bytes()


def test_a_second_run_refuses_to_overwrite_the_product(combined):
    work, _, _, _ = combined
    before = (work / "jbz504020.tra").read_text()
    with pytest.raises(CombineError, match="already exists"):
        combine_association(work / "jbz504020_asn.fits", [work / f"{m}_flt.fits" for m in MEMBERS])
    assert (work / "jbz504020.tra").read_text() == before


def _assert_same_value(index, keyword, mine, reference):
    where = f"HDU {index} {keyword}"
    if isinstance(reference, str):
        assert mine == reference, where
    elif isinstance(reference, bool):
        assert mine is reference, where
    else:
        assert float(mine) == pytest.approx(float(reference), rel=5e-6, abs=1e-30), where


def _without_times(text: str) -> str:
    """Time stamps and the program's version string are the only expected differences."""
    text = re.sub(r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \w+", "<date>", text)
    text = re.sub(r"-- Version .* \*\*\*$", "-- Version <version> ***", text, flags=re.M)
    return re.sub(r"\d\d:\d\d:\d\d \w+", "<time>", text)
