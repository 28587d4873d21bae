"""Reading ACS association tables the way calacs.e groups and combines their members."""

import logging

import pytest
from astropy.io import fits

from ..calacs_helpers import shared_dir, write_asn
from caldp.native.acs.association import (
    AssociationError,
    Combination,
    MissingMemberError,
    check_member_switches,
    locate_members,
    read_association,
)


def test_real_sbc_repeat_obs_table_sums_three_members_into_sfl():
    asn = shared_dir() / "hst-data" / "acs" / "jbz504020_asn.fits"
    if not asn.is_file():
        pytest.skip(f"real association table not found at {asn} (set CALDP_SHARED)")
    association = read_association(asn)
    assert association.rootname == "jbz504020"
    assert association.detector == "SBC"
    assert (association.rptcorr, association.crcorr) == (True, False)
    assert [m.name for m in association.exposures] == ["jbz504elq", "jbz504emq", "jbz504enq"]
    (product,) = association.products
    assert product.name == "jbz504021"
    assert product.memtype == "PROD-RPT"
    assert product.members == ("jbz504elq", "jbz504emq", "jbz504enq")
    assert product.combination is Combination.SUM_REPEATS
    assert product.filename == "jbz504021_sfl.fits"
    assert product.row == 4
    assert association.dither_product is None


def test_cr_split_table_rejects_cosmic_rays_into_crj(tmp_path):
    asn = write_asn(
        tmp_path / "j8ab01010_asn.fits",
        [("J8AB01A1Q", "EXP-CRJ", True), ("J8AB01A2Q", "EXP-CRJ", True), ("J8AB01011", "PROD-CRJ", False)],
    )
    association = read_association(asn)
    assert (association.crcorr, association.rptcorr) == (True, False)
    (product,) = association.products
    assert product.combination is Combination.REJECT_COSMIC_RAYS
    assert product.filename == "j8ab01011_crj.fits"
    assert product.members == ("j8ab01a1q", "j8ab01a2q")


def test_ccd_repeat_obs_goes_through_acsrej_into_crj(tmp_path):
    asn = write_asn(
        tmp_path / "j8ab02010_asn.fits",
        [("J8AB02B1Q", "EXP-RPT", True), ("J8AB02B2Q", "EXP-RPT", True), ("J8AB02011", "PROD-RPT", True)],
        detector="WFC",
    )
    (product,) = read_association(asn).products
    assert product.combination is Combination.REJECT_COSMIC_RAYS
    assert product.suffix == "crj"


def test_dithered_cr_split_groups_members_by_position(tmp_path):
    asn = write_asn(
        tmp_path / "j8ab03010_asn.fits",
        [
            ("J8AB03C1Q", "EXP-CR1", True),
            ("J8AB03C2Q", "EXP-CR1", True),
            ("J8AB03C3Q", "EXP-CR2", True),
            ("J8AB03C4Q", "EXP-CR2", True),
            ("J8AB03011", "PROD-CR1", False),
            ("J8AB03012", "PROD-CR2", False),
            ("J8AB03010", "PROD-DTH", False),
        ],
    )
    association = read_association(asn)
    assert [(p.name, p.position, p.members) for p in association.products] == [
        ("j8ab03011", 1, ("j8ab03c1q", "j8ab03c2q")),
        ("j8ab03012", 2, ("j8ab03c3q", "j8ab03c4q")),
    ]
    assert association.dither_product.name == "j8ab03010"


def test_pure_dither_table_combines_nothing(tmp_path):
    asn = write_asn(
        tmp_path / "j8ab04010_asn.fits",
        [("J8AB04D1Q", "EXP-DTH", True), ("J8AB04D2Q", "EXP-DTH", True), ("J8AB04010", "PROD-DTH", True)],
    )
    association = read_association(asn)
    assert association.products == ()
    assert (association.crcorr, association.rptcorr) == (False, False)
    assert [m.position for m in association.exposures] == [1, 2]


def test_memtype_with_underscore_is_accepted_with_a_warning(tmp_path, caplog):
    asn = write_asn(
        tmp_path / "j8ab05010_asn.fits",
        [("j8ab05e1q", "exp_crj", True), ("j8ab05e2q", "EXP-CRJ", True), ("j8ab05011", "prod_crj", True)],
    )
    with caplog.at_level(logging.WARNING, logger="caldp.native.acs.association"):
        association = read_association(asn)
    assert association.products[0].memtype == "PROD-CRJ"
    assert "needs to be corrected" in caplog.text


def test_member_flagged_absent_is_an_error_naming_it(tmp_path):
    asn = write_asn(
        tmp_path / "j8ab06010_asn.fits",
        [("J8AB06F1Q", "EXP-CRJ", True), ("J8AB06F2Q", "EXP-CRJ", False), ("J8AB06011", "PROD-CRJ", False)],
    )
    with pytest.raises(MissingMemberError, match="j8ab06f2q") as error:
        read_association(asn)
    assert error.value.member == "j8ab06f2q"


def test_member_file_absent_is_an_error_naming_it(tmp_path):
    asn = write_asn(
        tmp_path / "j8ab07010_asn.fits",
        [("J8AB07G1Q", "EXP-CRJ", True), ("J8AB07G2Q", "EXP-CRJ", True), ("J8AB07011", "PROD-CRJ", False)],
    )
    association = read_association(asn)
    present = tmp_path / "j8ab07g1q_flt.fits"
    present.write_bytes(b"")
    with pytest.raises(MissingMemberError, match="j8ab07g2q"):
        locate_members(association, [present])
    with pytest.raises(MissingMemberError, match="does not exist"):
        locate_members(association, [present, tmp_path / "J8AB07G2Q_flt.fits"])
    (tmp_path / "J8AB07G2Q_flt.fits").write_bytes(b"")
    located = locate_members(association, [present, tmp_path / "J8AB07G2Q_flt.fits"])
    assert list(located) == ["j8ab07g1q", "j8ab07g2q"]


def test_header_switches_must_agree_with_the_table(tmp_path):
    association = read_association(
        write_asn(
            tmp_path / "j8ab08010_asn.fits",
            [("J8AB08H1Q", "EXP-RPT", True), ("J8AB08H2Q", "EXP-RPT", True), ("J8AB08011", "PROD-RPT", True)],
        )
    )
    agreeing = fits.Header({"RPTCORR": "PERFORM", "CRCORR": "OMIT"})
    assert check_member_switches(association, agreeing) is association
    # calacs.e lets the table decide when the header says OMIT.
    assert check_member_switches(association, fits.Header({"RPTCORR": "OMIT"})) is association
    with pytest.raises(AssociationError, match="not consistent"):
        check_member_switches(association, fits.Header({"RPTCORR": "OMIT", "CRCORR": "PERFORM"}))
    with pytest.raises(AssociationError, match="both set to PERFORM"):
        check_member_switches(association, fits.Header({"RPTCORR": "PERFORM", "CRCORR": "PERFORM"}))


def test_one_exposure_repeat_obs_is_inconsistent(tmp_path):
    association = read_association(
        write_asn(
            tmp_path / "j8ab09010_asn.fits",
            [("J8AB09K1Q", "EXP-RPT", True), ("J8AB09011", "PROD-RPT", True)],
        )
    )
    with pytest.raises(AssociationError, match="1 exposure"):
        check_member_switches(association, fits.Header({"RPTCORR": "PERFORM"}))


def test_table_of_another_instrument_is_refused(tmp_path):
    asn = write_asn(
        tmp_path / "ldfd01010_asn.fits",
        [("LDFD01VNQ", "EXP-FP", True), ("LDFD01010", "PROD-FP", True)],
        instrument="COS",
        detector="FUV",
    )
    with pytest.raises(AssociationError, match="not an ACS association"):
        read_association(asn)
