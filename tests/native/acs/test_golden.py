"""Parity of caldp.native with calacs.e 10.5.0 on the goldens in ../shared/golden.

Tolerances: SCI within max(0.01 e-, 1e-5 relative), DQ
identical, ERR within 1e-5 relative, keywords to 6 significant digits.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ..calacs_helpers import (assert_err_parity, assert_sci_parity, golden, hdu_layout,
                            same_to_6_digits, stage_golden)
from caldp.native import VERSION_STRING, calibrate_association, calibrate_exposure
from caldp.native.acs.cli import main

HRC = "acs-hrc-j8bt05njq"
SBC = "acs-sbc-jbz504eoq"
SBC_ASN = "acs-sbc-jbz504020"

# Keywords whose values calacs.e writes (or keeps) in each HDU, compared exactly
# or, for numbers, to 6 significant digits.
HRC_KEYWORDS = {
    0: ["DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR", "PHOTCORR", "ATODCORR",
        "SHADCORR", "FLSHCORR", "CRCORR", "RPTCORR", "PCTECORR", "DARKTIME", "FILENAME",
        "ATODGNA", "ATODGNB", "ATODGNC", "ATODGND", "READNSEA", "READNSEB", "READNSEC",
        "READNSED", "BIASLEVA", "BIASLEVB", "BIASLEVC", "BIASLEVD", "NEXTEND", "ROOTNAME"],
    1: ["BUNIT", "MEANBLEV", "MEANDARK", "PHOTMODE", "PHOTFLAM", "PHOTZPT", "PHOTPLAM", "PHOTBW",
        "NGOODPIX", "GOODMIN", "GOODMAX", "GOODMEAN", "SNRMIN", "SNRMAX", "SNRMEAN", "LTV1",
        "LTV2", "CRPIX1", "CRPIX2", "SIZAXIS1", "SIZAXIS2", "SDQFLAGS"],
    2: ["BUNIT", "NGOODPIX", "GOODMIN", "GOODMAX", "GOODMEAN", "LTV1", "LTV2", "CRPIX1", "CRPIX2"],
    3: ["LTV1", "LTV2", "CRPIX1", "CRPIX2"],
}
SBC_KEYWORDS = {
    0: ["DQICORR", "GLINCORR", "LFLGCORR", "FLATCORR", "PHOTCORR", "DARKCORR", "RPTCORR",
        "FILENAME", "NEXTEND"],
    1: ["BUNIT", "PHOTMODE", "PHOTFLAM", "PHOTZPT", "PHOTPLAM", "PHOTBW", "GLOBLIM", "NGOODPIX",
        "GOODMIN", "GOODMAX", "GOODMEAN", "SNRMIN", "SNRMAX", "SNRMEAN"],
    2: ["BUNIT", "NGOODPIX", "GOODMIN", "GOODMAX", "GOODMEAN"],
    3: [],
}


def compare_products(ours: Path, expected: Path, keywords: dict[int, list[str]]) -> None:
    with fits.open(ours) as a, fits.open(expected) as b:
        assert hdu_layout(a) == hdu_layout(b)
        for name in ("SCI", "ERR", "DQ"):
            x, y = a[name, 1].data, b[name, 1].data
            if name == "SCI":
                assert_sci_parity(x, y)
            elif name == "ERR":
                assert_err_parity(x, y)
            else:
                assert np.array_equal(x, y), f"{int((x != y).sum())} DQ pixels differ"
        for index, keys in keywords.items():
            for key in keys:
                assert (key in a[index].header) == (key in b[index].header), (index, key)
                if key not in b[index].header:
                    continue
                va, vb = a[index].header[key], b[index].header[key]
                if isinstance(vb, float) and not isinstance(vb, bool):
                    assert same_to_6_digits(va, vb), (index, key, va, vb)
                else:
                    assert va == vb, (index, key, va, vb)
        # HISTORY is written step by step exactly as calacs.e writes it.
        assert list(a[0].header["HISTORY"]) == list(b[0].header["HISTORY"])
        assert a[0].header["CAL_VER"] == VERSION_STRING
        # No keyword appears or disappears apart from the file-origin ones.
        for index in range(len(b)):
            ka = {k for k in a[index].header if k not in ("HISTORY", "COMMENT", "")}
            kb = {k for k in b[index].header if k not in ("HISTORY", "COMMENT", "")}
            assert ka == kb, (index, ka ^ kb)


def step_lines(trailer: Path) -> list[str]:
    """Trailer lines that carry results (no banners, times or versions)."""
    keep = []
    for line in trailer.read_text().splitlines():
        if re.search(r"Version|Begin|End|^git |HEAD @|threads|^\*\*\*|^Trying|^Read in", line):
            continue
        if line.strip():
            keep.append(line.rstrip())
    return keep


@pytest.fixture(scope="module")
def hrc_run(tmp_path_factory):
    work, jref = stage_golden(HRC, tmp_path_factory.mktemp("hrc"))
    flt = calibrate_exposure(work / "j8bt05njq_raw.fits", jref=jref, log=None)
    return work, jref, flt


def test_hrc_flt_matches_calacs(hrc_run):
    _, _, flt = hrc_run
    compare_products(flt, golden(HRC) / "expected" / "j8bt05njq_flt.fits", HRC_KEYWORDS)


def test_hrc_keywords_named_in_the_brief_to_six_digits(hrc_run):
    _, _, flt = hrc_run
    expected = golden(HRC) / "expected" / "j8bt05njq_flt.fits"
    a, b = fits.getheader(flt, 1), fits.getheader(expected, 1)
    for key in ("MEANBLEV", "MEANDARK", "PHOTFLAM", "PHOTPLAM", "PHOTBW"):
        assert same_to_6_digits(a[key], b[key]), key
    p, q = fits.getheader(flt, 0), fits.getheader(expected, 0)
    for key in ("BIASLEVA", "BIASLEVB", "BIASLEVC", "BIASLEVD"):
        assert same_to_6_digits(p[key], q[key]), key


def test_hrc_trailer_carries_calacs_step_messages(hrc_run):
    work, _, _ = hrc_run
    ours = step_lines(work / "j8bt05njq.tra")
    theirs = step_lines(golden(HRC) / "expected" / "j8bt05njq.tra")
    assert ours == theirs


def test_hrc_refuses_to_overwrite_an_existing_flt(hrc_run, monkeypatch, capsys):
    work, jref, flt = hrc_run
    before = flt.read_bytes()
    monkeypatch.chdir(work)
    monkeypatch.setenv("jref", jref)
    assert main(["j8bt05njq_raw.fits"]) == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ERROR: ") and "j8bt05njq_flt.fits" in last and "exists" in last
    assert flt.read_bytes() == before


def _edited_copy(tmp_path: Path, **edits) -> tuple[Path, str]:
    work, jref = stage_golden(HRC, tmp_path)
    with fits.open(work / "j8bt05njq_raw.fits", mode="update") as hdul:
        for key, value in edits.items():
            if value is None:
                del hdul[0].header[key]
            else:
                hdul[0].header[key] = value
    return work, jref


def _run_cli(work: Path, jref: str, monkeypatch, capsys, args=("j8bt05njq_raw.fits",)):
    monkeypatch.chdir(work)
    monkeypatch.setenv("jref", jref)
    status = main(list(args))
    return status, capsys.readouterr().out.strip().splitlines()


def test_missing_satufile_fails_like_calacs(tmp_path, monkeypatch, capsys):
    work, jref = _edited_copy(tmp_path, SATUFILE=None)
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 2
    assert lines[-1].startswith("ERROR: ") and "SATUFILE `'" in lines[-1]
    assert not (work / "j8bt05njq_flt.fits").exists()
    assert "SATUFILE" in (work / "j8bt05njq.tra").read_text()


def test_missing_reference_files_are_listed(tmp_path, monkeypatch, capsys):
    work, jref = stage_golden(HRC, tmp_path)
    (work / "refs" / "n3o1059hj_drk.fits").unlink()
    (work / "refs" / "2391649pj_imp.fits").unlink()
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 2
    assert "2 reference files were missing" in lines[-1]
    assert "DARKFILE `jref$n3o1059hj_drk.fits'" in lines[-1]
    assert "IMPHTTAB `jref$2391649pj_imp.fits'" in lines[-1]


def test_jref_is_concatenated_without_a_separator(tmp_path, monkeypatch, capsys):
    work, jref = stage_golden(HRC, tmp_path)
    status, lines = _run_cli(work, jref.rstrip("/"), monkeypatch, capsys)
    assert status == 2 and "reference files were missing" in lines[-1]


def test_no_imphttab_row_for_the_obsmode_is_fatal(tmp_path, monkeypatch, capsys):
    work, jref = _edited_copy(tmp_path, FILTER1="F999W")
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 2
    assert "Matching row not found in IMPHTTAB" in lines[-1] and "acs,hrc,f999w,mjd#" in lines[-1]


def test_pctecorr_is_logged_and_left_perform(tmp_path, monkeypatch, capsys):
    work, jref = _edited_copy(tmp_path, PCTECORR="PERFORM", PCTETAB="jref$14s1737dj_osc.fits",
                              DRKCFILE="jref$n3o1059hj_drk.fits")
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 0
    assert "PCTECORR requested but not applied by caldp's native calibration" in lines
    flt = work / "j8bt05njq_flt.fits"
    assert fits.getval(flt, "PCTECORR") == "PERFORM"
    expected = golden(HRC) / "expected" / "j8bt05njq_flt.fits"
    assert_sci_parity(fits.getdata(flt, 1), fits.getdata(expected, 1))


def test_pristine_darktime_defaults_to_zero(tmp_path):
    """A raw without DARKTIME subtracts no dark (MEANDARK=0), as calacs.e does."""
    work, jref = _edited_copy(tmp_path, DARKTIME=None)
    flt = calibrate_exposure(work / "j8bt05njq_raw.fits", jref=jref, log=None)
    assert fits.getval(flt, "MEANDARK", 1) == 0.0
    assert fits.getval(flt, "DARKTIME", 0) == 0.0


@pytest.fixture(scope="module")
def sbc_run(tmp_path_factory):
    work, jref = stage_golden(SBC, tmp_path_factory.mktemp("sbc"))
    lines: list[str] = []
    flt = calibrate_exposure(work / "jbz504eoq_raw.fits", jref=jref, log=lines.append)
    return work, flt, lines


def test_sbc_singleton_matches_calacs(sbc_run):
    _, flt, _ = sbc_run
    compare_products(flt, golden(SBC) / "expected" / "jbz504eoq_flt.fits", SBC_KEYWORDS)


def test_sbc_trailer_carries_calacs_step_messages(sbc_run):
    work, _, lines = sbc_run
    ours = step_lines(work / "jbz504eoq.tra")
    theirs = step_lines(golden(SBC) / "expected" / "jbz504eoq.tra")
    assert ours == theirs
    assert lines == (work / "jbz504eoq.tra").read_text().splitlines()


@pytest.mark.parametrize("member", ["jbz504elq", "jbz504emq", "jbz504enq"])
def test_sbc_association_members_match_calacs(tmp_path, member):
    work, jref = stage_golden(SBC_ASN, tmp_path)
    flt = calibrate_exposure(work / f"{member}_raw.fits", jref=jref, log=None, nimages=3)
    compare_products(flt, golden(SBC_ASN) / "expected" / f"{member}_flt.fits", SBC_KEYWORDS)


def test_sbc_association_through_the_command_line(tmp_path, monkeypatch, capsys):
    work, jref = stage_golden(SBC_ASN, tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("jref", jref)
    assert main(["jbz504020_asn.fits"]) == 0
    expected = golden(SBC_ASN) / "expected"
    for member in ("jbz504elq", "jbz504emq", "jbz504enq"):
        compare_products(work / f"{member}_flt.fits", expected / f"{member}_flt.fits",
                         SBC_KEYWORDS)
        assert (work / f"{member}.tra").exists()
    # The first member's trailer opens with the association preface, like calacs.e's.
    first = (work / "jbz504elq.tra").read_text()
    assert "LoadAsn:  Processing FULL Association" in first
    assert "LoadAsn" not in (work / "jbz504emq.tra").read_text()
    assert (work / "jbz504020.tra").exists()
    assert (work / "jbz504021_sfl.fits").exists()


def test_calibrate_association_returns_member_products(tmp_path):
    work, jref = stage_golden(SBC_ASN, tmp_path)
    outputs = calibrate_association(work / "jbz504020_asn.fits", jref=jref, log=None)
    names = [p.name for p in outputs]
    assert names[:3] == ["jbz504elq_flt.fits", "jbz504emq_flt.fits", "jbz504enq_flt.fits"]


@pytest.mark.parametrize("damage, cause", [
    (lambda path: path.write_bytes(b""), "Unreadable reference file: BIASFILE `jref$m4r1753rj_bia.fits' (an empty file)."),
    (lambda path: path.write_bytes(path.read_bytes()[:2880]),
     "Unreadable reference file: BIASFILE `jref$m4r1753rj_bia.fits' (truncated: NEXTEND=3 but 0 extensions)."),
])
def test_an_unreadable_reference_is_named_as_unreadable_not_missing(tmp_path, monkeypatch, capsys, damage, cause):
    work, jref = stage_golden(HRC, tmp_path)
    damage(work / "refs" / "m4r1753rj_bia.fits")
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 2 and lines[-1] == f"ERROR: {cause}"


def test_nan_in_a_reference_is_a_one_line_cause_naming_it(tmp_path, monkeypatch, capsys):
    work, jref = stage_golden(HRC, tmp_path)
    with fits.open(work / "refs" / "n3o1059hj_drk.fits", mode="update") as hdul:
        hdul["SCI", 1].data[10:20, 10:20] = np.nan
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 2
    assert lines[-1] == "ERROR: DARKFILE `jref$n3o1059hj_drk.fits' SCI,1 holds NaN or infinite values."


@pytest.mark.parametrize("value", ["abc", np.nan])
def test_a_non_numeric_exptime_is_a_one_line_cause_naming_it(tmp_path, monkeypatch, capsys, value):
    work, jref = stage_golden(HRC, tmp_path)
    with fits.open(work / "j8bt05njq_raw.fits", mode="update") as hdul:
        hdul[0].header["EXPTIME"] = "abc" if value == "abc" else "NaN"
    status, lines = _run_cli(work, jref, monkeypatch, capsys)
    assert status == 2 and lines[-1].startswith("ERROR: j8bt05njq_raw.fits: EXPTIME = ") and "is not a number" in lines[-1]
    assert not (work / "j8bt05njq_flt.fits").exists()
