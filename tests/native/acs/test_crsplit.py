"""combine_association on a synthetic two-chip CR-SPLIT association (acsrej -> _crj)."""

import numpy as np
import pytest
from astropy.io import fits

from ..calacs_helpers import write_asn
from caldp.native.acs.acsrej import RejectionError
from caldp.native.acs.association import MissingMemberError
from caldp.native.acs.combine import combine_association, flag_rejected_pixels

SHAPE = (40, 48)
MEMBERS = ("j8zz01a1q", "j8zz01a2q", "j8zz01a3q")
EXPSTARTS = (52000.10, 52000.20, 52000.30)


def write_crrejtab(path, crmask=True):
    columns = [
        fits.Column(name="CRSPLIT", format="J", array=np.array([2, 3, 4])),
        fits.Column(name="MEANEXP", format="E", array=np.array([1000.0, 1000.0, 1000.0])),
        fits.Column(name="SCALENSE", format="E", array=np.full(3, 30.0)),
        fits.Column(name="INITGUES", format="3A", array=np.array(["med"] * 3)),
        fits.Column(name="SKYSUB", format="4A", array=np.array(["mode"] * 3)),
        fits.Column(name="CRSIGMAS", format="11A", array=np.array(["6,5"] * 3)),
        fits.Column(name="CRRADIUS", format="E", array=np.full(3, 1.5)),
        fits.Column(name="CRTHRESH", format="E", array=np.full(3, 0.5556)),
        fits.Column(name="BADINPDQ", format="I", array=np.full(3, 39)),
        fits.Column(name="CRMASK", format="L", array=np.full(3, crmask)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)


def write_flt(path, rootname, expstart, chips, chip_order=(1, 2), **switches):
    """A calibrated WFC-like _flt with one imset per chip (SCI/ERR/DQ)."""
    primary = fits.PrimaryHDU()
    header = primary.header
    for key, value in {
        "NEXTEND": 6, "FILENAME": path.name, "ROOTNAME": rootname, "INSTRUME": "ACS", "DETECTOR": "WFC",
        "APERTURE": "WFC", "FILTER1": "F606W", "FILTER2": "CLEAR2L", "IMAGETYP": "EXT", "CCDAMP": "ABCD",
        "ATODGNA": 2.0, "ATODGNB": 2.0, "ATODGNC": 2.0, "ATODGND": 2.0, "EXPTIME": 100.0,
        "EXPSTART": expstart, "EXPEND": expstart + 100 / 86400, "DARKTIME": 101.0, "FLASHDUR": 0.0,
        "CRCORR": "PERFORM", "RPTCORR": "OMIT", "FLSHCORR": "OMIT", "SHADCORR": "OMIT",
        "CRREJTAB": "jref$synth_crr.fits", "ASN_MTYP": "EXP-CRJ", "CAL_VER": "caldp native",
        "MEANEXP": 0.0, "SCALENSE": 0.0, "INITGUES": "", "SKYSUB": "", "SKYSUM": 0.0, "CRSIGMAS": "",
        "CRRADIUS": 0.0, "CRTHRESH": 0.0, "BADINPDQ": 0, "REJ_RATE": 0.0, "CRMASK": False,
        **switches,
    }.items():
        header[key] = value
    hdus = [primary]
    for extver, chip in enumerate(chip_order, start=1):
        sci, err, dq = chips[chip]
        for name, data in (("SCI", sci), ("ERR", err), ("DQ", dq)):
            hdu = fits.ImageHDU(data=data, name=name, ver=extver)
            hdu.header["CCDCHIP"] = chip
            hdu.header["EXPNAME"] = rootname
            hdu.header["SDQFLAGS"] = 31743
            hdu.header["BUNIT"] = "ELECTRONS" if name != "DQ" else "UNITLESS"
            hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)


def write_crsplit_asn(path):
    rows = [(m.upper(), "EXP-CRJ", True) for m in MEMBERS] + [("J8ZZ01011", "PROD-CRJ", False)]
    write_asn(path, rows, detector="WFC")


@pytest.fixture()
def crsplit_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    # A sky of 80 e- (its mode is what acsrej subtracts) with a few sources.
    scene = {
        chip: (80 + sum(
            rng.uniform(200, 2000) * np.exp(-((yy - rng.uniform(0, SHAPE[0])) ** 2 + (xx - rng.uniform(0, SHAPE[1])) ** 2) / 6)
            for _ in range(6)
        )).astype(np.float32)
        for chip in (1, 2)
    }
    hits = {}
    clean = {}
    for index, (member, expstart) in enumerate(zip(MEMBERS, EXPSTARTS)):
        chips = {}
        for chip in (1, 2):
            frame = rng.normal(scene[chip], np.sqrt(scene[chip] + 16)).astype(np.float32)
            clean[member, chip] = frame.copy()
            mine = np.zeros(SHAPE, bool)
            mine.flat[rng.choice(mine.size, 8, replace=False)] = True
            frame[mine] += 4000
            hits[member, chip] = mine
            err = np.sqrt(np.maximum(frame, 0) + 16).astype(np.float32)
            chips[chip] = (frame, err, np.zeros(SHAPE, np.int16))
        # The second member stores its chips in the other order; calacs.e matches CCDCHIP.
        order = (2, 1) if index == 1 else (1, 2)
        write_flt(tmp_path / f"{member}_flt.fits", member, expstart, chips, chip_order=order)
        (tmp_path / f"{member}.tra").write_text(f"\nCALBEG*** ACS2D -- {member}\n*** ACS2D complete ***\n")
    for member in (MEMBERS[0], MEMBERS[2]):
        spt = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(4, np.int16), name="UDL")])
        spt[0].header.update({"ROOTNAME": member, "NEXTEND": 1, "FILENAME": f"{member}_spt.fits"})
        spt.writeto(tmp_path / f"{member}_spt.fits")
    write_crsplit_asn(tmp_path / "j8zz01010_asn.fits")
    refs = tmp_path / "refs"
    refs.mkdir()
    write_crrejtab(refs / "synth_crr.fits")
    monkeypatch.setenv("jref", str(refs) + "/")
    return tmp_path, hits, clean


def run(directory):
    return combine_association(directory / "j8zz01010_asn.fits", [directory / f"{m}_flt.fits" for m in MEMBERS])


def test_cr_split_makes_a_crj_with_calacs_keywords(crsplit_dir):
    directory, _, _ = crsplit_dir
    assert run(directory) == [directory / "j8zz01011_crj.fits"]
    with fits.open(directory / "j8zz01011_crj.fits") as crj:
        header = crj[0].header
        assert header["FILENAME"] == "j8zz01011_crj.fits"
        assert header["ROOTNAME"] == "J8ZZ01011"
        assert header["ASN_MTYP"] == "PROD-CRJ"
        assert header["EXPTIME"] == pytest.approx(300.0)
        assert header["TEXPTIME"] == pytest.approx(300.0)
        assert header["EXPSTART"] == pytest.approx(min(EXPSTARTS))
        assert header["EXPEND"] == pytest.approx(max(EXPSTARTS) + 100 / 86400)
        assert header["DARKTIME"] == pytest.approx(303.0)
        assert header.comments["DARKTIME"] == "Cumulative dark time in seconds"
        assert header["CRCORR"] == "COMPLETE"
        assert header["CRSIGMAS"] == "6,5"
        assert header["INITGUES"] == "med" and header["SKYSUB"] == "mode"
        assert header["CRRADIUS"] == pytest.approx(1.5) and header["CRTHRESH"] == pytest.approx(0.5556)
        assert header["MEANEXP"] == pytest.approx(100.0) and header["SCALENSE"] == pytest.approx(30.0)
        assert header["BADINPDQ"] == 39 and header["CRMASK"] is True
        assert header["NEXTEND"] == 6
        assert header["SKYSUM"] > 0 and header["REJ_RATE"] > 0
        assert header["CAL_VER"] == "caldp native"
        for extver in (1, 2):
            assert crj["SCI", extver].header["NCOMBINE"] == 3
            assert crj["SCI", extver].header["EXPNAME"] == "j8zz01011"
            assert crj["SCI", extver].header["NGOODPIX"] > 0


def test_each_chip_is_the_sum_of_its_clean_exposures(crsplit_dir):
    directory, hits, clean = crsplit_dir
    run(directory)
    with fits.open(directory / "j8zz01011_crj.fits") as crj:
        for extver, chip in ((1, 1), (2, 2)):
            assert crj["SCI", extver].header["CCDCHIP"] == chip
            expected = sum(clean[m, chip] for m in MEMBERS)
            noise = np.sqrt(sum(clean[m, chip] + 16 for m in MEMBERS))
            assert np.all(np.abs(crj["SCI", extver].data - expected) < 6 * noise)
            assert not np.any(crj["DQ", extver].data & 8192)


def test_crmask_flags_the_rejected_pixels_in_the_members(crsplit_dir):
    directory, hits, _ = crsplit_dir
    run(directory)
    for member in MEMBERS:
        with fits.open(directory / f"{member}_flt.fits") as flt:
            for extver in (1, 2):
                chip = flt["SCI", extver].header["CCDCHIP"]
                flagged = (flt["DQ", extver].data & 8192) != 0
                assert np.all(flagged[hits[member, chip]])
                # Only the hits and their SPILL neighbours are flagged.
                assert flagged.sum() <= 9 * hits[member, chip].sum()


def test_trailers_spt_and_table_are_written(crsplit_dir):
    directory, _, _ = crsplit_dir
    run(directory)
    product_trailer = (directory / "j8zz01011.tra").read_text()
    # Member trailers first (calacs.e repeats each one's last line), then the ACSREJ block.
    assert product_trailer.count("*** ACS2D complete ***") == 6
    assert "CALBEG*** ACSREJ -- Version" in product_trailer
    assert "CRCORR   PERFORM" in product_trailer and "CRCORR   COMPLETE" in product_trailer
    assert product_trailer.count("CRREJTAB jref$synth_crr.fits") == 2
    assert 'Warning    Can\'t find input file "j8zz01a2q_spt.fits"' in product_trailer
    assert product_trailer.rstrip().endswith("*** ACSREJ complete ***")
    asn_trailer = (directory / "j8zz01010.tra").read_text()
    assert asn_trailer.startswith(product_trailer)
    assert "No DTH product name specified. No product created." in asn_trailer
    assert asn_trailer.rstrip().endswith("CALACS completion for j8zz01010_asn.fits")
    with fits.open(directory / "j8zz01011_spt.fits") as spt:
        assert spt[0].header["ROOTNAME"] == "J8ZZ01011"
        assert spt[0].header["ASN_MTYP"] == "PROD-CRJ"
        assert spt[0].header["NEXTEND"] == 3
        assert [h.header["EXTVER"] for h in spt[1:]] == [1, 2]
    with fits.open(directory / "j8zz01010_asn.fits") as asn:
        assert asn[0].header["ASN_PROD"] is True
        assert list(asn[1].data["MEMPRSNT"]) == [True, True, True, True]


def test_shutter_shading_inside_acsrej_is_refused(tmp_path, monkeypatch):
    chips = {c: (np.ones(SHAPE, np.float32), np.ones(SHAPE, np.float32), np.zeros(SHAPE, np.int16)) for c in (1, 2)}
    for member, expstart in zip(MEMBERS, EXPSTARTS):
        write_flt(tmp_path / f"{member}_flt.fits", member, expstart, chips, SHADCORR="PERFORM")
    write_crsplit_asn(tmp_path / "j8zz01010_asn.fits")
    with pytest.raises(RejectionError, match="SHADCORR"):
        run(tmp_path)
    assert not (tmp_path / "j8zz01011_crj.fits").exists()


def test_crmask_leaves_the_last_partial_byte_of_columns_alone():
    dq = np.zeros((2, 11), np.int16)
    dq[:, 10] = 8192
    rejected = np.ones((2, 11), bool)
    flagged = flag_rejected_pixels(dq, rejected)
    assert np.all(flagged[:, :8] == 8192)
    assert np.all(flagged[:, 8:10] == 0) and np.all(flagged[:, 10] == 8192)
    assert np.all(flag_rejected_pixels(flagged, ~rejected)[:, :8] == 0)


def test_pure_dither_association_makes_no_pixels_but_closes_its_trailer(tmp_path):
    chips = {c: (np.ones(SHAPE, np.float32), np.ones(SHAPE, np.float32), np.zeros(SHAPE, np.int16)) for c in (1, 2)}
    for member, expstart in zip(MEMBERS[:2], EXPSTARTS):
        write_flt(tmp_path / f"{member}_flt.fits", member, expstart, chips, CRCORR="OMIT")
        (tmp_path / f"{member}.tra").write_text(f"trailer of {member}\n")
    spt = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(4, np.int16), name="UDL")])
    spt.writeto(tmp_path / f"{MEMBERS[0]}_spt.fits")
    rows = [(m.upper(), "EXP-DTH", True) for m in MEMBERS[:2]] + [("J8ZZ01010", "PROD-DTH", False)]
    write_asn(tmp_path / "j8zz01010_asn.fits", rows, detector="WFC")

    made = combine_association(tmp_path / "j8zz01010_asn.fits", [tmp_path / f"{m}_flt.fits" for m in MEMBERS[:2]])
    assert made == []
    trailer = (tmp_path / "j8zz01010.tra").read_text()
    assert trailer.startswith(f"trailer of {MEMBERS[0]}\ntrailer of {MEMBERS[0]}\ntrailer of {MEMBERS[1]}\n")
    assert "CALBEG*** ACSDTH -- Version" in trailer and "*** ACSDTH complete ***" in trailer
    assert "Created output SPT rootname j8zz01010_spt.fits..." in trailer
    with fits.open(tmp_path / "j8zz01010_asn.fits") as asn:
        assert bool(asn[1].data["MEMPRSNT"][2]) and asn[0].header["ASN_PROD"] is True
    with fits.open(tmp_path / "j8zz01010_spt.fits") as product_spt:
        assert product_spt[0].header["ASN_MTYP"] == "PROD-DTH"


def test_a_member_without_its_flt_stops_the_step(crsplit_dir):
    directory, _, _ = crsplit_dir
    with pytest.raises(MissingMemberError, match=MEMBERS[2]):
        combine_association(directory / "j8zz01010_asn.fits", [directory / f"{m}_flt.fits" for m in MEMBERS[:2]])
    assert not (directory / "j8zz01011_crj.fits").exists()
