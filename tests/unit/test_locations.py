import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from caldp.exit_codes import CaldpError, ExitCode
from caldp.locations import AstroqueryLocation, FileLocation, S3Location, parse_location
from caldp.tarsafe import UnsafeArchive, check_member, extract_flat


def test_file_locations_relative_and_absolute(tmp_path):
    assert parse_location("file:/a/b/") == FileLocation(Path("/a/b"))
    assert parse_location("file:in", cwd=tmp_path) == FileLocation(tmp_path / "in")
    assert parse_location("file:", cwd=tmp_path) == FileLocation(tmp_path)
    assert str(parse_location("file:/x")) == "file:/x"


def test_s3_locations_keep_their_prefix():
    location = parse_location("s3://bucket/outputs/run1/")
    assert location == S3Location("bucket", "outputs/run1")
    assert location.key("data", "acs", "j8bt05njq") == "outputs/run1/data/acs/j8bt05njq"
    assert S3Location("bucket").key("messages", "x") == "messages/x"
    assert str(location) == "s3://bucket/outputs/run1"


def test_astroquery_is_input_only():
    assert isinstance(parse_location("astroquery:"), AstroqueryLocation)
    with pytest.raises(CaldpError) as info:
        parse_location("astroquery:", role="output")
    assert info.value.code == ExitCode.CMDLINE_ERROR


@pytest.mark.parametrize("text", ["/plain/path", "http://x", "s3://", "ftp:x", ""])
def test_bad_locations(text):
    with pytest.raises(CaldpError) as info:
        parse_location(text)
    assert info.value.code == ExitCode.CMDLINE_ERROR


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def test_extract_flat_good(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [_file("j1/j1_raw.fits", b"abc"), _file("j1_asn.fits", b"d")])
    out = tmp_path / "out"
    out.mkdir()
    written = extract_flat(archive, out)
    assert sorted(p.name for p in written) == ["j1_asn.fits", "j1_raw.fits"]
    assert (out / "j1_raw.fits").read_bytes() == b"abc"


@pytest.mark.parametrize("member", [
    _file("/etc/evil"), _file("../evil"), _file("a/../../evil"),
    _special("link", tarfile.SYMTYPE, "/etc/passwd"), _special("hard", tarfile.LNKTYPE, "x"),
    _special("dev", tarfile.CHRTYPE), _special("blk", tarfile.BLKTYPE), _special("fifo", tarfile.FIFOTYPE),
])
def test_extract_flat_rejects_unsafe_members_before_writing(tmp_path, member):
    archive = _tar(tmp_path / "a.tar.gz", [_file("ok_raw.fits"), member])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchive):
        extract_flat(archive, out)
    assert list(out.iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab./\\\x00-_")), min_size=1, max_size=12),
       st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]))
def test_member_check_fuzz(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    try:
        check_member(info)
    except UnsafeArchive:
        return
    # Whatever passes is a plain file or directory whose path stays inside the destination.
    assert kind in (tarfile.REGTYPE, tarfile.DIRTYPE)
    resolved = (Path("/dest") / name).resolve()
    assert str(resolved).startswith("/dest")


_NAMES = st.lists(st.text(alphabet=st.sampled_from(list("ab./_")), min_size=1, max_size=10), min_size=1, max_size=4)
_KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_NAMES, _KINDS), min_size=1, max_size=4))
def test_extract_flat_fuzz(tmp_path_factory, members):
    """Whatever the archive holds, extraction either refuses it having written nothing, or writes
    regular files only, directly inside the destination."""
    base = tmp_path_factory.mktemp("fuzz")
    archive = base / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for parts, kind in members:
            info = tarfile.TarInfo("/".join(parts))
            info.type = kind
            info.linkname = "../target" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            data = b"payload" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    dest = base / "dest"
    dest.mkdir()
    outside_before = sorted(p.name for p in base.iterdir())
    try:
        written = extract_flat(archive, dest)
    except UnsafeArchive:
        assert list(dest.iterdir()) == []  # refused before anything was written
    else:
        assert all(p.parent == dest and p.is_file() and not p.is_symlink() for p in written)
    assert sorted(p.name for p in base.iterdir()) == outside_before  # nothing escaped


def test_non_utf8_locations_are_refused_with_2():
    import os

    with pytest.raises(CaldpError) as info:
        parse_location(os.fsdecode(b"file:/data/in\xff"), role="input")
    assert info.value.code == ExitCode.CMDLINE_ERROR
    assert "file:/data/in\\xff is not valid UTF-8" in info.value.cause


def test_extract_flat_stops_at_the_limits_before_writing(tmp_path):
    from caldp.settings import InputLimits
    from caldp.tarsafe import InputTooLarge

    archive = _tar(tmp_path / "a.tar.gz", [_file("A_RAW.FITS", b"x" * 2000), _file("b_raw.fits", b"y" * 2000)])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputTooLarge, match="CALDP_INPUT_MAX_FILE_SIZE"):
        extract_flat(archive, out, InputLimits(max_file=1000))
    with pytest.raises(InputTooLarge, match="CALDP_INPUT_MAX_TOTAL_SIZE"):
        extract_flat(archive, out, InputLimits(max_total=3000))
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in extract_flat(archive, out)) == ["a_raw.fits", "b_raw.fits"]
