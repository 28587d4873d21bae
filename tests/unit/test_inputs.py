"""Input discovery on every real dataset in ../shared/hst-data, and the ways inputs go wrong."""

import io
import shutil
import tarfile

import pytest
from astropy.io import fits

from caldp.dataset import DatasetId
from caldp.exit_codes import CaldpError, ExitCode
from caldp.inputs import association_members, select_inputs, verify_fits
from caldp.instruments import INSTRUMENTS
from caldp.process import fetch_inputs
from caldp.storage.files import FileStorage

from ..conftest import shared_path

EXPECTED = {
    # dataset: (subdir, association members, input files)
    "j8bt05njq": ("acs", (), ["j8bt05njq_raw.fits"]),
    "j8bt06o6q": ("acs", (), ["j8bt06o6q_raw.fits"]),
    "j6gp01mkq": ("acs", (), ["j6gp01mkq_raw.fits"]),
    "jbz504eoq": ("acs", (), ["jbz504eoq_raw.fits"]),
    "jbz504020": ("acs", ("jbz504elq", "jbz504emq", "jbz504enq"),
                  ["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"]),
    "ibxy01aoq": ("wfc3", (), ["ibxy01aoq_raw.fits"]),
    "ibxy04s4q": ("wfc3", (), ["ibxy04s4q_raw.fits"]),
    "ibh7a7lsq": ("wfc3", (), ["ibh7a7lsq_raw.fits"]),
    "ibh7a7m2q": ("wfc3", (), ["ibh7a7m2q_raw.fits"]),
    "oc7w11viq": ("stis", (), ["oc7w11viq_raw.fits", "oc7w11viq_spt.fits"]),
    "octka7jeq": ("stis", (), ["octka7jeq_raw.fits", "octka7jeq_spt.fits"]),
    "octr11h4q": ("stis", (), ["octr11h4q_raw.fits", "octr11h4q_spt.fits"]),
    "ocmv0lw6q": ("stis", (), ["ocmv0lw6q_raw.fits", "ocmv0lw6q_spt.fits"]),
    "ocoa03q2q": ("stis", (), ["ocoa03q2q_raw.fits", "ocoa03q2q_spt.fits"]),
    "ocu252cmq": ("stis", (), ["ocu252cmq_raw.fits", "ocu252cmq_spt.fits"]),
    "ldfd01010": ("cos", ("ldfd01vnq", "ldfd01vpq", "ldfd01vrq", "ldfd01vtq"),
                  ["ldfd01010_asn.fits"] + [f"ldfd01{m}q_{s}" for m in ("vn", "vp", "vr", "vt")
                                             for s in ("rawtag_a.fits", "spt.fits")]),
    "ldfd01vlq": ("cos", (), ["ldfd01vlq_rawacq.fits", "ldfd01vlq_spt.fits"]),
    "lb4l02m1q": ("cos", (), ["lb4l02m1q_rawacq.fits", "lb4l02m1q_spt.fits"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_discovery_on_real_datasets(name, tmp_path):
    subdir, members, files = EXPECTED[name]
    source = shared_path("hst-data", subdir)
    dataset = DatasetId.parse(name)
    instrument = INSTRUMENTS[dataset.instrument]
    workdir = tmp_path / "work"
    workdir.mkdir()
    inputs = fetch_inputs(FileStorage(source), dataset, instrument, workdir)
    assert sorted(inputs.files) == sorted(files)
    assert inputs.members == members
    assert (inputs.asn is not None) == bool(members)
    assert sorted(p.name for p in workdir.iterdir()) == sorted(files)  # neighbours were not kept


def test_real_association_table():
    members = association_members(shared_path("hst-data", "acs", "jbz504020_asn.fits"))
    assert members == ("jbz504elq", "jbz504emq", "jbz504enq")


def _acs():
    return INSTRUMENTS["acs"]


def test_association_with_missing_member(tmp_path):
    for name in ("jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits"):
        shutil.copyfile(shared_path("hst-data", "acs", name), tmp_path / name)
    with pytest.raises(CaldpError) as info:
        select_inputs(DatasetId.parse("jbz504020"), _acs(), tmp_path)
    assert info.value.code == ExitCode.INPUT_TAR_FILE_ERROR
    assert "jbz504enq" in info.value.cause


def test_no_files_and_missing_dir(tmp_path):
    dataset = DatasetId.parse("j8bt05njq")
    with pytest.raises(CaldpError) as info:
        FileStorage(tmp_path / "nowhere").fetch_inputs(dataset, _acs(), tmp_path)
    assert info.value.code == 21 and "does not exist" in info.value.cause
    (tmp_path / "in").mkdir()
    with pytest.raises(CaldpError) as info:
        FileStorage(tmp_path / "in").fetch_inputs(dataset, _acs(), tmp_path)
    assert info.value.code == 21 and "no input files for j8bt05njq" in info.value.cause


def test_tarball_input(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    with tarfile.open(source / "jbz504020.tar.gz", "w:gz") as tar:
        for name in ("jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"):
            tar.add(shared_path("hst-data", "acs", name), arcname=f"jbz504020/{name}")
    workdir = tmp_path / "work"
    workdir.mkdir()
    inputs = fetch_inputs(FileStorage(source), DatasetId.parse("jbz504020"), _acs(), workdir)
    assert len(inputs.files) == 4 and inputs.asn == "jbz504020_asn.fits"


def test_unsafe_tarball_is_refused(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    with tarfile.open(source / "j8bt05njq.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../../escape_raw.fits")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(CaldpError) as info:
        FileStorage(source).fetch_inputs(DatasetId.parse("j8bt05njq"), _acs(), workdir)
    assert info.value.code == 21 and "path traversal" in info.value.cause
    assert not (tmp_path / "escape_raw.fits").exists() and list(workdir.iterdir()) == []


def test_two_tarballs_are_ambiguous(tmp_path):
    for name in ("j8bt05njq.tar.gz", "j8bt05njq_v2.tar.gz"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(CaldpError) as info:
        FileStorage(tmp_path).fetch_inputs(DatasetId.parse("j8bt05njq"), _acs(), tmp_path / "x")
    assert info.value.code == 21 and "several tarballs" in info.value.cause


def test_truncated_fits(tmp_path):
    data = shared_path("hst-data", "acs", "j8bt05njq_raw.fits").read_bytes()
    path = tmp_path / "j8bt05njq_raw.fits"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaldpError) as info:
        verify_fits(path, _acs())
    assert info.value.code == 21 and "j8bt05njq_raw.fits" in info.value.cause


def test_corrupt_header(tmp_path):
    path = tmp_path / "j8bt05njq_raw.fits"
    path.write_bytes(b"NOT A FITS FILE" * 300)
    with pytest.raises(CaldpError) as info:
        verify_fits(path, _acs())
    assert info.value.code == 21 and "unreadable FITS file j8bt05njq_raw.fits" in info.value.cause


def test_raw_of_another_instrument(tmp_path):
    path = tmp_path / "j8bt05njq_raw.fits"
    shutil.copyfile(shared_path("hst-data", "wfc3", "ibxy01aoq_raw.fits"), path)
    path.chmod(0o644)
    with pytest.raises(CaldpError) as info:
        verify_fits(path, _acs())
    assert info.value.code == 21 and "is a WFC3 file" in info.value.cause


def test_inputs_are_never_modified(tmp_path):
    source = shared_path("hst-data", "acs")
    before = (source / "j8bt05njq_raw.fits").read_bytes()
    workdir = tmp_path / "work"
    workdir.mkdir()
    inputs = fetch_inputs(FileStorage(source), DatasetId.parse("j8bt05njq"), _acs(), workdir)
    with fits.open(inputs.paths[0], mode="update") as hdul:
        hdul[0].header["TESTKEY"] = 1
    assert (source / "j8bt05njq_raw.fits").read_bytes() == before
