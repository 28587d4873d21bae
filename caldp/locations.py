"""Input and output locations, parsed once from the command line into typed objects.

    file:<dir>            a local directory (relative or absolute)
    s3://bucket[/prefix]  an S3 prefix
    astroquery:           MAST, through astroquery (input only)

A location that is not valid UTF-8 (a path with an undecodable byte) is refused (2): the messages
and logs that name it are UTF-8 text. So is a relative file: location when the current directory
no longer exists.
"""

import dataclasses
from pathlib import Path

from .exit_codes import CaldpError, ExitCode
from .settings import current_directory, is_utf8, printable


@dataclasses.dataclass(frozen=True)
class FileLocation:
    path: Path

    def __str__(self):
        return f"file:{self.path}"


@dataclasses.dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""  # no leading or trailing "/"

    def key(self, *parts):
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def __str__(self):
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclasses.dataclass(frozen=True)
class AstroqueryLocation:
    def __str__(self):
        return "astroquery:"


def parse_location(text, *, role="input", cwd=None):
    """Parse a location string; raise CaldpError(CMDLINE_ERROR) for anything else.

    >>> parse_location("s3://bucket/some/prefix/")
    S3Location(bucket='bucket', prefix='some/prefix')
    >>> parse_location("file:/data/in")
    FileLocation(path=PosixPath('/data/in'))
    """
    text = str(text).strip()
    if not is_utf8(text):
        # Messages and logs are UTF-8 text naming these paths: refuse before anything is run.
        raise CaldpError(ExitCode.CMDLINE_ERROR, f"{role} location {printable(text)} is not valid UTF-8: rename it")
    if text.startswith("file:"):
        raw = text[len("file:") :] or "."
        path = Path(raw)
        if not path.is_absolute():
            path = Path(cwd or current_directory()) / path
        return FileLocation(Path(_normalize(path)))
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise CaldpError(ExitCode.CMDLINE_ERROR, f"{role} location {text!r} names no S3 bucket")
        return S3Location(bucket, prefix.strip("/"))
    if text.lower() == "astroquery:" or text.lower() == "astroquery":
        if role != "input":
            raise CaldpError(ExitCode.CMDLINE_ERROR, "astroquery: is an input location only")
        return AstroqueryLocation()
    raise CaldpError(
        ExitCode.CMDLINE_ERROR,
        f"{role} location {text!r} is not one of file:<dir>, s3://bucket/prefix" + (", astroquery:" if role == "input" else ""),
    )


def _normalize(path):
    import os.path

    return os.path.normpath(str(path))
