"""caldp.hstcal (caldp-hstcal): building hstcal from source, reusing an install, finding the programs.

The builds here run the real cmake and make on a small source tree shaped like hstcal's (CMakeLists.txt
beside pkg/) whose "programs" are scripts answering --version: the logic under test is fetching,
verifying, building out of tree, installing atomically and reusing; the real hstcal build is what
.ci/run does before the suite (and what the end-to-end WFC3/STIS/ACS tests then run).
"""

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tarfile
import threading

import pytest

from caldp import hstcal

CMAKE = """cmake_minimum_required(VERSION 3.10)
project(fakehstcal NONE)
{extra}
foreach(program calacs.e calwf3.e cs0.e)
  install(PROGRAMS bin/${{program}} DESTINATION bin)
endforeach()
"""
VERSIONS = {"calacs.e": "10.5.0 (16-Mar-2026)", "calwf3.e": "3.7.3", "cs0.e": "3.5.0"}

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("make") is None,
                                reason="needs cmake and make (apt-get install -y cmake make)")


def make_source(root, release="1", extra=""):
    """An hstcal-shaped source tree in root/hstcal-<release>/, and its tarball; returns (dir, tarball)."""
    tree = root / f"hstcal-{release}"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "README").write_text("calibration packages\n")
    (tree / "bin").mkdir()
    (tree / "CMakeLists.txt").write_text(CMAKE.format(extra=extra))
    for name, version in VERSIONS.items():
        program = tree / "bin" / name
        program.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && echo '{version}' && exit 0\necho release {release}\n")
        program.chmod(0o755)
    tarball = root / f"hstcal-{release}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return tree, tarball


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Log(list):
    def __call__(self, text):
        self.append(text)

    def says(self, words):
        return any(words in line for line in self)


@pytest.fixture
def prefix(tmp_path):
    return tmp_path / "opt" / "hstcal"


def test_build_from_a_tarball_installs_the_programs_and_records_the_source(tmp_path, prefix):
    _, tarball = make_source(tmp_path)
    log = Log()
    assert hstcal.build(tarball, prefix, sha256=sha256(tarball), log=log) == prefix
    for name, version in VERSIONS.items():
        assert hstcal.program_version(prefix / "bin" / name) == version
    assert hstcal.installed_digest(prefix) == sha256(tarball)
    assert log.says("hstcal installed in") and not log.says("not verified")
    # Out of tree and staged: nothing but the install (and the build lock) is left beside the prefix.
    assert sorted(p.name for p in prefix.parent.iterdir()) == [".hstcal.lock", "hstcal"]
    assert not (tmp_path / "hstcal-1" / "build").exists()


def test_caldp_finds_the_programs_in_hstcal_prefix_after_path(tmp_path, prefix):
    _, tarball = make_source(tmp_path)
    hstcal.build(tarball, prefix, log=Log())
    environ = {"PATH": "/usr/bin:/bin", "HSTCAL_PREFIX": str(prefix)}
    assert hstcal.find_program("calwf3.e", environ) == str(prefix / "bin" / "calwf3.e")
    on_path = tmp_path / "path"
    on_path.mkdir()
    shutil.copy(prefix / "bin" / "calwf3.e", on_path / "calwf3.e")
    assert hstcal.find_program("calwf3.e", {**environ, "PATH": str(on_path)}) == str(on_path / "calwf3.e")
    assert hstcal.find_program("calwf3.e", {**environ, "HSTCAL_PREFIX": ""}) is None  # PATH only
    home = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    assert hstcal.prefix(home) == tmp_path / ".local" / "hstcal"  # the documented default


def test_a_matching_install_is_reused_and_force_rebuilds(tmp_path, prefix):
    _, tarball = make_source(tmp_path)
    hstcal.build(tarball, prefix, log=Log())
    stamp = prefix / hstcal.STAMP
    os.utime(stamp, (0, 0))
    log = Log()
    hstcal.build(tarball, prefix, log=log)
    assert log.says("already installed") and stamp.stat().st_mtime == 0
    log = Log()
    hstcal.build(tarball, prefix, force=True, log=log)
    assert not log.says("already installed") and stamp.stat().st_mtime > 0


def test_another_source_replaces_the_install(tmp_path, prefix):
    _, first = make_source(tmp_path / "a", release="1")
    _, second = make_source(tmp_path / "b", release="2")
    hstcal.build(first, prefix, log=Log())
    hstcal.build(second, prefix, log=Log())
    assert hstcal.installed_digest(prefix) == sha256(second)
    assert subprocess.run([prefix / "bin" / "cs0.e"], capture_output=True, text=True).stdout == "release 2\n"


def test_a_wrong_sha256_is_refused_before_anything_is_built(tmp_path, prefix):
    _, tarball = make_source(tmp_path)
    with pytest.raises(hstcal.BuildError, match="sha256 of .* is [0-9a-f]{64}, not the expected 00ff"):
        hstcal.build(tarball, prefix, sha256="00ff", log=Log())
    assert not prefix.exists()


def test_a_failed_build_leaves_the_previous_install_untouched(tmp_path, prefix):
    _, good = make_source(tmp_path / "good")
    _, bad = make_source(tmp_path / "bad", release="2", extra='message(FATAL_ERROR "no cfitsio")')
    hstcal.build(good, prefix, log=Log())
    with pytest.raises(hstcal.BuildError, match="build step failed: cmake"):
        hstcal.build(bad, prefix, log=Log())
    assert hstcal.installed_digest(prefix) == sha256(good) and hstcal.complete(prefix)
    assert sorted(p.name for p in prefix.parent.iterdir()) == [".hstcal.lock", "hstcal"]  # no staging left over


def test_an_unpacked_source_directory_builds_and_is_keyed_by_its_content(tmp_path, prefix):
    tree, tarball = make_source(tmp_path / "src")
    tarball.unlink()
    hstcal.build(tree.parent, prefix, log=Log())  # the folder holding the one source folder
    digest = hstcal.installed_digest(prefix)
    assert digest == hstcal.source_digest(tree.parent)
    (tree / "pkg" / "README").write_text("changed\n")
    assert hstcal.source_digest(tree.parent) != digest


def test_a_download_is_built_and_says_it_was_not_verified(tmp_path, prefix):
    _, tarball = make_source(tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{tarball.name}"
        log = Log()
        hstcal.build(url, prefix, log=log)
        assert log.says("not verified (no sha256 given)") and hstcal.complete(prefix)
        with pytest.raises(hstcal.BuildError, match="cannot download"):
            hstcal.build(url.replace(tarball.name, "missing.tar.gz"), tmp_path / "other", log=Log())
    finally:
        server.shutdown()


@pytest.mark.parametrize("make_bad", [
    lambda root: root / "absent.tar.gz",
    lambda root: (root / "notes.txt").write_text("not a tarball") and root / "notes.txt",
    lambda root: (root / "empty").mkdir() or root / "empty",
], ids=["absent", "not-a-tarball", "not-hstcal"])
def test_what_is_not_hstcal_source_is_refused(tmp_path, prefix, make_bad):
    with pytest.raises(hstcal.BuildError):
        hstcal.build(make_bad(tmp_path), prefix, log=Log())
    assert not prefix.exists()


def test_missing_build_tools_are_named(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("cmake", "make"):
        (bindir / tool).symlink_to(shutil.which(tool))
    missing = hstcal.missing_build_dependencies({"PATH": str(bindir)})
    assert missing == ["gcc", "g++", "gfortran", "pkg-config", "libcfitsio-dev"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(hstcal.BuildError, match="not root.*apt-get install -y gcc g\\+\\+ gfortran pkg-config libcfitsio-dev"):
        hstcal.install_build_dependencies(missing, {"PATH": str(bindir)}, log=Log())


def test_a_failing_apt_get_is_reported(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    (bindir / "apt-get").chmod(0o755)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(hstcal.BuildError, match="apt-get update failed; install gfortran by hand"):
        hstcal.install_build_dependencies(["gfortran"], {"PATH": str(bindir)}, log=Log())


def test_command_line(tmp_path, prefix):
    _, tarball = make_source(tmp_path)
    env = {**os.environ, "HSTCAL_PREFIX": str(prefix), "HSTCAL_SOURCE": ""}
    command = [sys.executable, "-m", "caldp.hstcal"]
    built = subprocess.run([*command, "build", str(tarball)], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == str(prefix / "bin") and f"export PATH={prefix / 'bin'}" in built.stderr
    found = subprocess.run([*command, "find"], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert found.returncode == 0 and f"calwf3.e: {prefix / 'bin' / 'calwf3.e'} 3.7.3" in found.stdout
    failed = subprocess.run([*command, "build", str(tmp_path / "nowhere")], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "does not exist" in failed.stderr
    usage = subprocess.run([*command, "build"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "no source given" in usage.stderr
    helped = subprocess.run([*command, "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "HSTCAL_PREFIX" in helped.stdout


def test_a_source_archive_with_unsafe_members_is_refused(tmp_path, prefix):
    tree, _ = make_source(tmp_path)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
        tar.add(tree / "pkg" / "README", arcname="../outside")
    with pytest.raises(hstcal.BuildError, match="unsafe member '../outside'"):
        hstcal.build(evil, prefix, log=Log())
    assert not (tmp_path / "outside").exists() and not prefix.exists()


def test_fetch_puts_one_tarball_in_place(tmp_path):
    tree, tarball = make_source(tmp_path / "src")
    dest = tmp_path / "context" / "hstcal.tar.gz"
    assert hstcal.fetch_tarball(tarball, dest, sha256=sha256(tarball), log=Log()) == sha256(tarball)
    assert dest.read_bytes() == tarball.read_bytes()
    with pytest.raises(hstcal.BuildError, match="not the expected"):
        hstcal.fetch_tarball(tarball, tmp_path / "other.tar.gz", sha256="00", log=Log())
    assert not (tmp_path / "other.tar.gz").exists()


def test_concurrent_builds_of_one_prefix_wait_and_reuse_and_stale_scratch_is_reclaimed(tmp_path, prefix):
    import threading

    _, tarball = make_source(tmp_path)
    prefix.parent.mkdir(parents=True)
    stale = prefix.parent / ".hstcal.build-killed"  # what a build killed with SIGKILL leaves behind
    (stale / "build").mkdir(parents=True)
    logs = [Log(), Log()]
    threads = [threading.Thread(target=hstcal.build, args=(tarball, prefix), kwargs={"log": log}) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert hstcal.complete(prefix) and not stale.exists()
    assert sum(log.says("already installed") for log in logs) == 1  # the second waited, then reused
    assert sorted(p.name for p in prefix.parent.iterdir()) == [".hstcal.lock", "hstcal"]
