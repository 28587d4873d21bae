"""Extracting input tarballs without trusting them (CVE-2007-4559 and friends)."""

import io
import tarfile
from pathlib import Path, PurePosixPath

from .settings import InputLimits

CHUNK = 1024 * 1024


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


class Budget:
    """What a dataset's inputs may still bring into the work dir (settings.InputLimits)."""

    def __init__(self, limits=None):
        self.limits = limits or InputLimits()
        self.total = 0

    def claim(self, name, size):
        """Account for `size` more bytes of file `name`; raise InputTooLarge past a limit."""
        limits = self.limits
        if size > limits.max_file:
            raise InputTooLarge(f"{name} is {_size(size)}, over the per-file limit "
                                f"CALDP_INPUT_MAX_FILE_SIZE={_size(limits.max_file)}")
        if self.total + size > limits.max_total:
            raise InputTooLarge(f"the inputs exceed the total-size limit CALDP_INPUT_MAX_TOTAL_SIZE="
                                f"{_size(limits.max_total)} at {name}")
        self.total += size

    def check_ratio(self, what, unpacked, packed):
        if unpacked > self.limits.RATIO_FLOOR and unpacked > self.limits.max_ratio * max(packed, 1):
            raise InputTooLarge(f"{what} unpacks {_size(unpacked)} from {_size(packed)}, over the compression-ratio "
                                f"limit CALDP_INPUT_MAX_RATIO={self.limits.max_ratio:g}")


class InputTooLarge(UnsafeArchive):
    pass


class CountingReader(io.RawIOBase):
    """A read-only file that knows how far into it reading has got (the compressed bytes consumed)."""

    def __init__(self, raw):
        self.raw, self.count = raw, 0

    def readable(self):
        return True

    def seekable(self):
        return self.raw.seekable()

    def seek(self, offset, whence=io.SEEK_SET):
        return self.raw.seek(offset, whence)

    def tell(self):
        return self.raw.tell()

    def readinto(self, buffer):
        n = self.raw.readinto(buffer)
        self.count = max(self.count, self.raw.tell())
        return n


def copy_bounded(source, sink, name, budget, packed=None, what=None):
    """Copy `source` to `sink` in chunks, at most the budget allows (never trusting a claimed size).

    packed: a CountingReader of the compressed stream `source` is unpacked from (for the ratio check).
    """
    copied = 0
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            break
        if copied + len(chunk) > budget.limits.max_file:
            budget.claim(name, copied + len(chunk))  # raises, naming the per-file limit
        if budget.total + len(chunk) > budget.limits.max_total:
            budget.claim(name, len(chunk))  # raises, naming the total-size limit
        budget.total += len(chunk)
        copied += len(chunk)
        if packed is not None:
            budget.check_ratio(what or name, copied, packed.count)
        sink.write(chunk)
    return copied


def extract_flat(archive, dest, limits=None, budget=None):
    """Extract the regular files of `archive` into `dest` by lower-case base name; return their paths.

    Every member is checked before anything is written (its kind, its path, its size against the
    per-file and total limits, the archive's compression ratio so far), so an unsafe or oversized
    archive leaves `dest` untouched; the copy itself is bounded too. Directory structure inside
    the archive is dropped (datasets are flat); names differing only in case are duplicates.
    """
    dest = Path(dest)
    budget = budget or Budget(limits)
    archive = Path(archive)
    with open(archive, "rb") as raw:
        packed = CountingReader(raw)
        with tarfile.open(fileobj=io.BufferedReader(packed), mode="r:*") as tar:
            members, claimed, planned = [], 0, Budget(budget.limits)
            planned.total = budget.total
            for member in tar:  # headers one by one: stop at the first that is too much
                check_member(member)
                if member.isfile():
                    planned.claim(PurePosixPath(member.name).name, member.size)
                    claimed += member.size
                    budget.check_ratio(f"tarball {archive.name}", claimed, packed.count)
                members.append(member)
            files = [m for m in members if m.isfile()]
            names = [PurePosixPath(m.name).name.lower() for m in files]
            duplicates = {n for n in names if names.count(n) > 1}
            if duplicates:
                raise UnsafeArchive(f"duplicate file names (ignoring case) {sorted(duplicates)}")
            written = []
            for member, name in zip(files, names):
                target = dest / name
                with tar.extractfile(member) as source, open(target, "xb") as sink:
                    copy_bounded(source, sink, name, budget)
                written.append(target)
    return written


def _size(n):
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
