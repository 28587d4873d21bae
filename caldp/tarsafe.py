"""Extracting input tarballs without trusting them (CVE-2007-4559 and friends)."""

import shutil
import tarfile
from pathlib import Path, PurePosixPath


class UnsafeArchive(ValueError):
    pass


def check_member(member):
    """Raise UnsafeArchive unless `member` is a plain file or directory with a relative, inward path."""
    name = member.name
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or PurePosixPath(name).is_absolute():
        raise UnsafeArchive(f"absolute path {name!r}")
    if ".." in parts:
        raise UnsafeArchive(f"path traversal {name!r}")
    if "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"suspicious name {name!r}")
    if member.issym() or member.islnk():
        raise UnsafeArchive(f"link {name!r} -> {member.linkname!r}")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise UnsafeArchive(f"device or fifo {name!r}")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"unsupported member type {name!r}")
    if member.isfile() and PurePosixPath(name).name in ("", ".", ".."):
        raise UnsafeArchive(f"file member without a name {name!r}")


def extract_flat(archive, dest):
    """Extract the regular files of `archive` into `dest` by base name; return their paths.

    Every member is checked before anything is written, so an unsafe archive leaves `dest`
    untouched. Directory structure inside the archive is dropped (datasets are flat).
    """
    dest = Path(dest)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member)
        files = [m for m in members if m.isfile()]
        names = [PurePosixPath(m.name).name for m in files]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise UnsafeArchive(f"duplicate file names {sorted(duplicates)}")
        written = []
        for member, name in zip(files, names):
            target = dest / name
            with tar.extractfile(member) as source, open(target, "xb") as sink:
                shutil.copyfileobj(source, sink)
            written.append(target)
    return written
