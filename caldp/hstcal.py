"""hstcal's C programs (calacs.e, calwf3.e, cs0.e): finding them, and building them from source.

    caldp-hstcal build SRC [--prefix P] [--sha256 HEX] [--force] [--jobs N]
    caldp-hstcal fetch SRC DEST [--sha256 HEX]
    caldp-hstcal find

SRC is an hstcal source tarball (.tar.gz), an unpacked source directory, or an https URL. The build is
CMake out of tree, exactly the line hstcal documents (no extra compiler flags, so the programs compute
what the archive's do), installed into a staging directory beside PREFIX and renamed into place: a
build that fails or is killed leaves any previous install untouched. An install is reused when its
recorded source digest (sha256 of the tarball, or of a directory's files) matches, unless --force.

caldp runs the programs it finds on PATH first, then in $HSTCAL_PREFIX/bin (default ~/.local/hstcal;
HSTCAL_PREFIX set to an empty value means PATH only). The binaries carry a $ORIGIN-relative run path,
so a prefix can be moved or copied whole (the Docker image copies it out of its build stage).

This module uses only the standard library: the image's build stage runs it before caldp's
dependencies exist.
"""

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PROGRAMS = ("calacs.e", "calwf3.e", "cs0.e")
STAMP = "caldp-hstcal-source.txt"
# The commands the build runs, and the Debian package that provides each.
# hstcal's CMake project declares C, C++ and Fortran, so all three compilers must be there.
BUILD_TOOLS = {"cmake": "cmake", "make": "make", "gcc": "gcc", "g++": "g++", "gfortran": "gfortran",
               "pkg-config": "pkg-config"}
CFITSIO_PACKAGE = "libcfitsio-dev"
DOWNLOAD_TIMEOUT = 120


class BuildError(Exception):
    """The build cannot go on; the message says why and what to do."""


def default_prefix(environ=None):
    environ = os.environ if environ is None else environ
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "hstcal"


def prefix(environ=None):
    """The install prefix caldp looks in: $HSTCAL_PREFIX, else the default; None when set empty."""
    environ = os.environ if environ is None else environ
    value = environ.get("HSTCAL_PREFIX")
    if value is None:
        return default_prefix(environ)
    return Path(value).expanduser() if value.strip() else None


def find_program(executable, environ=None):
    """The path of `executable` on PATH, else in the hstcal prefix's bin; None when neither has it."""
    environ = os.environ if environ is None else environ
    found = shutil.which(executable, path=environ.get("PATH", os.defpath))
    if found:
        return found
    where = prefix(environ)
    if where is not None:
        return shutil.which(executable, path=str(where / "bin"))
    return None


def program_version(path, timeout=10, env=None):
    """What `<program> --version` prints (first line), or "" when it cannot tell."""
    try:
        run = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = (run.stdout or run.stderr).strip().splitlines()
    return lines[0].strip() if run.returncode == 0 and lines else ""


# ------------------------------------------------------------------------------ source
def source_digest(source):
    """sha256 of a tarball's bytes, or of a directory's relative paths and file contents."""
    source = Path(source)
    digest = hashlib.sha256()
    if source.is_file():
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and ".git" not in p.relative_to(source).parts):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def fetch_source(source, scratch, log=print):
    """A local path for SRC: the path itself, or an https URL downloaded into `scratch`."""
    text = str(source)
    if text.startswith(("https://", "http://")):
        target = Path(scratch) / (text.rstrip("/").rsplit("/", 1)[-1] or "hstcal.tar.gz")
        log(f"downloading {text}")
        try:
            with urllib.request.urlopen(text, timeout=DOWNLOAD_TIMEOUT) as response, open(target, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise BuildError(f"cannot download {text}: {exc}") from exc
        return target
    path = Path(text).expanduser()
    if not path.exists():
        raise BuildError(f"hstcal source {path} does not exist (a tarball, a source directory or an https URL)")
    return path.resolve()


def unpack(source, scratch):
    """The directory holding CMakeLists.txt: `source` itself, its one top folder, or the unpacked tarball's."""
    if source.is_file():
        if not tarfile.is_tarfile(source):
            raise BuildError(f"{source} is neither a tar archive nor a directory")
        dest = Path(scratch) / "src"
        dest.mkdir()
        with tarfile.open(source, "r:*") as tar:
            _extract_source(tar, dest)
        source = dest
    for candidate in (source, *sorted(p for p in source.iterdir() if p.is_dir())):
        if (candidate / "CMakeLists.txt").is_file() and (candidate / "pkg").is_dir():
            return candidate
    raise BuildError(f"{source} does not look like hstcal's source (no CMakeLists.txt beside pkg/)")


def verified_digest(local, source, sha256, log):
    """The sha256 of `local` (fetched from `source`), checked against `sha256` when one is given; a
    tarball taken unverified says so, with its digest (a directory's digest is caldp's own key)."""
    digest = source_digest(local)
    if sha256 and digest != sha256.strip().lower():
        raise BuildError(f"sha256 of {source} is {digest}, not the expected {sha256}")
    if not sha256 and Path(local).is_file():
        log(f"source {source} not verified (no sha256 given); its sha256 is {digest}")
    return digest


def fetch_tarball(source, dest, *, sha256="", log=print):
    """SRC as one tarball at `dest` (copied, downloaded, or packed from a directory); returns its sha256.

    This is how an image build gets its source: the build context holds bytes, not a URL.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".caldp-hstcal-", dir=dest.parent) as scratch:
        local = fetch_source(source, scratch, log)
        partial = Path(scratch) / "partial.tar.gz"
        if local.is_dir():
            tree = unpack(local, scratch)
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(tree, arcname=tree.name)
        elif tarfile.is_tarfile(local):
            shutil.copyfile(local, partial)
        else:
            raise BuildError(f"{source} is neither a tar archive nor a directory")
        digest = verified_digest(partial, source, sha256, log)
        os.replace(partial, dest)
    return digest


def _extract_source(tar, dest):
    """Extract only plain files and folders with inward relative paths (a source tree has nothing else)."""
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise BuildError(f"refusing the source archive: unsafe member {member.name!r}")
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:  # Python before 3.11.4 (Debian bookworm's 3.11.2): the members were checked above
        tar.extractall(dest)


# ------------------------------------------------------------------------------ dependencies
def missing_build_dependencies(environ=None):
    """Debian packages the build needs that this machine lacks."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)
    missing = [package for tool, package in BUILD_TOOLS.items() if not shutil.which(tool, path=path)]
    pkg_config = shutil.which("pkg-config", path=path)
    if pkg_config is None or subprocess.run([pkg_config, "--exists", "cfitsio"], env=environ).returncode != 0:
        missing.append(CFITSIO_PACKAGE)
    return missing


def install_build_dependencies(packages, environ=None, log=print):
    """apt-get install them when this is root on a Debian-like system; else explain and fail."""
    environ = os.environ if environ is None else environ
    apt_get = shutil.which("apt-get", path=environ.get("PATH", os.defpath))
    if os.geteuid() != 0 or apt_get is None:
        why = "not root" if os.geteuid() != 0 else "no apt-get"
        raise BuildError(f"missing build dependencies ({why}): install {' '.join(packages)} "
                         f"(e.g. sudo apt-get install -y {' '.join(packages)}) and run this again")
    log(f"apt-get install -y {' '.join(packages)}")
    quiet = {**environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt_get, "update", "-qq"], [apt_get, "install", "-y", "-qq", *packages]):
        if subprocess.run(argv, env=quiet, stdin=subprocess.DEVNULL, stdout=2).returncode != 0:
            raise BuildError(f"{' '.join(argv[:2])} failed; install {' '.join(packages)} by hand")


# ------------------------------------------------------------------------------ build
def installed_digest(where):
    stamp = Path(where) / STAMP
    if not stamp.is_file():
        return ""
    for line in stamp.read_text().splitlines():
        if line.startswith("sha256 "):
            return line.split()[1]
    return ""


def complete(where):
    """True when every program is there and answers --version."""
    return all(program_version(Path(where) / "bin" / name) for name in PROGRAMS)


def build(source, where, *, sha256="", force=False, jobs=None, environ=None, log=print):
    """Build and install hstcal from `source` into `where` (see the module's text); return `where`."""
    environ = dict(os.environ if environ is None else environ)
    where = Path(where).expanduser().absolute()
    where.parent.mkdir(parents=True, exist_ok=True)
    with _one_build_at_a_time(where, log):
        return _build(source, where, sha256=sha256, force=force, jobs=jobs, environ=environ, log=log)


@contextlib.contextmanager
def _one_build_at_a_time(where, log):
    """Hold <parent>/.<name>.lock while building `where`: a second build of the same prefix waits, then
    finds the first one's install and reuses it. Holding it, scratch dirs a killed build left behind
    (.<name>.build-*) are removed: only a lock holder makes them."""
    with open(where.parent / f".{where.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another build of {where} is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in where.parent.glob(f".{where.name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


def _build(source, where, *, sha256, force, jobs, environ, log):
    with tempfile.TemporaryDirectory(prefix=f".{where.name}.build-", dir=where.parent) as scratch:
        local = fetch_source(source, scratch, log)
        digest = verified_digest(local, source, sha256, log)
        if not force and installed_digest(where) == digest and complete(where):
            log(f"hstcal from this source (sha256 {digest[:12]}) is already installed in {where}; reusing it")
            return where
        missing = missing_build_dependencies(environ)
        if missing:
            install_build_dependencies(missing, environ, log)
        tree = unpack(local, scratch)
        build_dir, staging = Path(scratch) / "build", Path(scratch) / "install"
        jobs = jobs or os.cpu_count() or 1
        steps = [
            ["cmake", "-S", str(tree), "-B", str(build_dir), f"-DCMAKE_INSTALL_PREFIX={staging}"],
            ["make", "-C", str(build_dir), f"-j{jobs}"],
            ["make", "-C", str(build_dir), "install"],
        ]
        # hstcal's CMake stamps `git describe` of its working directory into the programs' banners: run
        # outside any checkout (caldp's own included), so a tarball build says nothing rather than lies.
        environ["GIT_CEILING_DIRECTORIES"] = str(Path(scratch).parent)
        for argv in steps:
            log("+ " + " ".join(argv))
            # The tools' output goes to stderr: stdout is left for what the command line prints.
            if subprocess.run(argv, env=environ, stdin=subprocess.DEVNULL, stdout=2, cwd=scratch).returncode != 0:
                raise BuildError(f"hstcal build step failed: {' '.join(argv[:2])} (see its output above)")
        if not complete(staging):
            raise BuildError(f"the build did not produce working {', '.join(PROGRAMS)}")
        (staging / STAMP).write_text(f"sha256 {digest}\nsource {source}\n")
        _replace(staging, where, scratch)
    log(f"hstcal installed in {where}: " + ", ".join(f"{n} {program_version(where / 'bin' / n)}" for n in PROGRAMS))
    return where


def _replace(staging, where, scratch):
    """Put `staging` at `where`, swapping out an older install only once the new one is complete."""
    if where.exists() or where.is_symlink():
        old = Path(scratch) / "previous"
        os.rename(where, old)
    os.rename(staging, where)


# ------------------------------------------------------------------------------ command line
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="caldp-hstcal", description="Build hstcal (calacs.e, calwf3.e, cs0.e) from source, or show "
        "which programs caldp would run.", epilog="Environment: HSTCAL_PREFIX (install prefix and where caldp "
        f"looks; default {default_prefix()}), HSTCAL_SOURCE, HSTCAL_SHA256. Exit status: 0 done, 1 failed, "
        "2 bad command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="build and install from SRC")
    make.add_argument("source", nargs="?", default=os.environ.get("HSTCAL_SOURCE", ""),
                      help="tarball, source directory or https URL (default: $HSTCAL_SOURCE)")
    make.add_argument("--prefix", default=None, help="install prefix (default: $HSTCAL_PREFIX, else ~/.local/hstcal)")
    make.add_argument("--sha256", default=os.environ.get("HSTCAL_SHA256", ""),
                      help="expected sha256 of the source (default: $HSTCAL_SHA256)")
    make.add_argument("--force", action="store_true", help="rebuild even when a matching install exists")
    make.add_argument("--jobs", type=int, default=None, help="parallel make jobs (default: the number of cores)")
    copy = commands.add_parser("fetch", help="put SRC as one tarball at DEST (for an image's build context)")
    copy.add_argument("source", help="tarball, source directory or https URL")
    copy.add_argument("dest", help="the tarball to write")
    copy.add_argument("--sha256", default=os.environ.get("HSTCAL_SHA256", ""),
                      help="expected sha256 of the source (default: $HSTCAL_SHA256)")
    commands.add_parser("find", help="print where caldp finds each program and its version")
    args = parser.parse_args(argv)
    say = lambda text: print(f"caldp-hstcal: {text}", file=sys.stderr, flush=True)  # noqa: E731
    if args.command == "find":
        status = 0
        for name in PROGRAMS:
            path = find_program(name)
            print(f"{name}: {path} {program_version(path)}" if path else f"{name}: not found")
            status |= path is None
        return status
    if args.command == "fetch":
        try:
            print(fetch_tarball(args.source, args.dest, sha256=args.sha256, log=say))
        except BuildError as exc:
            say(f"error: {exc}")
            return 1
        return 0
    if not args.source:
        parser.error("no source given (SRC or HSTCAL_SOURCE)")
    where = Path(args.prefix) if args.prefix else (prefix() or default_prefix())
    try:
        build(args.source, where, sha256=args.sha256, force=args.force, jobs=args.jobs, log=say)
    except BuildError as exc:
        say(f"error: {exc}")
        return 1
    print(where / "bin")
    say(f"caldp finds the programs there; to run them yourself: export PATH={where / 'bin'}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
