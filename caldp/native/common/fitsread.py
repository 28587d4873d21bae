"""A small, fast reader for the FITS files calacs.e reads.

Reference files are opened once or twice per exposure, and astropy's
generic HDU and table machinery costs more than the calibration itself on
an HRC frame.  This reader parses headers into plain dicts and maps image
and binary-table data straight into numpy arrays.  Anything it does not
understand (variable-length arrays, bit columns, scaled table columns)
falls back to astropy, so behaviour never depends on the fast path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 2880
CARD = 80

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?$")


def _parse_value(text: str):
    """Value of a card's value field (comment stripped), or None."""
    s = text.strip()
    if not s:
        return None
    if s.startswith("'"):
        out, i = [], 1
        while i < len(s):
            ch = s[i]
            if ch == "'":
                if i + 1 < len(s) and s[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(ch)
            i += 1
        return "".join(out).rstrip()
    value = s.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    if _NUMBER.match(value):
        if re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        return float(value.replace("D", "E").replace("d", "e"))
    return value


class Header(dict):
    """Keyword -> value (first occurrence wins, like hstio's findKw)."""


def header_str(header, key: str, default: str = "") -> str:
    """A keyword of a Header (or an astropy header) as a stripped string; absent or
    undefined values give ``default``."""
    value = header.get(key, default)
    return default if value is None else str(value).strip()


@dataclass
class HDUInfo:
    header: Header
    data_offset: int
    path: str = ""


def scan(path: Path | str) -> list[HDUInfo]:
    """Headers and data locations of every HDU in a file (data not read)."""
    hdus: list[HDUInfo] = []
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        file_size = fh.tell()
        pos = 0
        while pos + BLOCK <= file_size:
            fh.seek(pos)
            header = Header()
            last_string_key = None
            ended = False
            while not ended:
                block = fh.read(BLOCK)
                if len(block) < BLOCK:
                    raise OSError(f"{path}: truncated header")
                pos += BLOCK
                text = block.decode("ascii", "replace")
                for k in range(0, BLOCK, CARD):
                    card = text[k:k + CARD]
                    key = card[:8].strip()
                    if key == "END":
                        ended = True
                        break
                    if key == "CONTINUE" and last_string_key is not None:
                        more = _parse_value(card[8:])
                        prev = header.get(last_string_key)
                        if isinstance(prev, str) and prev.endswith("&") and isinstance(more, str):
                            header[last_string_key] = prev[:-1] + more
                        continue
                    if card[8:10] != "= " or not key:
                        continue
                    value = _parse_value(card[10:])
                    if key not in header:
                        header[key] = value
                        last_string_key = key if isinstance(value, str) else None
            naxis = int(header.get("NAXIS", 0))
            size = 0
            if naxis > 0:
                bytes_per = abs(int(header.get("BITPIX", 8))) // 8
                size = bytes_per
                for n in range(1, naxis + 1):
                    size *= int(header.get(f"NAXIS{n}", 0))
                size = int(header.get("GCOUNT", 1)) * (size + int(header.get("PCOUNT", 0)) * bytes_per)
            if pos + size > file_size:
                raise OSError(f"{path}: truncated data")
            hdus.append(HDUInfo(header=header, data_offset=pos, path=str(path)))
            pos += ((size + BLOCK - 1) // BLOCK) * BLOCK
    if not hdus:
        raise OSError(f"{path}: not a FITS file")
    return hdus


def _read(hdu: "HDUInfo", dtype, count: int) -> np.ndarray:
    return np.fromfile(hdu.path, dtype=dtype, count=count, offset=hdu.data_offset)


def find_hdu(hdus: list[HDUInfo], ext) -> HDUInfo:
    """An HDU by index, by EXTNAME, or by (EXTNAME, EXTVER)."""
    if isinstance(ext, int):
        return hdus[ext]
    if isinstance(ext, tuple):
        name, ver = ext
    else:
        name, ver = ext, None
    for h in hdus[1:]:
        if str(h.header.get("EXTNAME", "")).strip().upper() != name.upper():
            continue
        if ver is None or int(h.header.get("EXTVER", 1)) == ver:
            return h
    raise KeyError(ext)


_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def image_data(hdu: HDUInfo, dtype=np.float32) -> np.ndarray | None:
    """An image extension's data (scaled by BSCALE/BZERO), or None when empty."""
    h = hdu.header
    naxis = int(h.get("NAXIS", 0))
    if naxis == 0:
        return None
    shape = tuple(int(h[f"NAXIS{n}"]) for n in range(naxis, 0, -1))
    raw = _read(hdu, _BITPIX[int(h["BITPIX"])], int(np.prod(shape))).reshape(shape)
    bscale = h.get("BSCALE", 1)
    bzero = h.get("BZERO", 0)
    if bscale not in (1, 1.0, None) or bzero not in (0, 0.0, None):
        return (raw.astype(np.float64) * float(bscale or 1) + float(bzero or 0)).astype(dtype)
    return raw.astype(dtype)


_TFORM = re.compile(r"^\s*(\d*)([LXBIJKAEDCMPQ])(.*)$")
_TYPES = {"L": "S1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}


class _Columns:
    def __init__(self, names):
        self.names = names


class Table:
    """Column access by name (case-insensitive) over a binary table's rows."""

    def __init__(self, columns: dict[str, np.ndarray], nrows: int):
        self._columns = columns
        self._upper = {name.upper(): name for name in columns}
        self.columns = _Columns(list(columns))
        self._nrows = nrows

    def __len__(self) -> int:
        return self._nrows

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[self._upper[name.upper()]]


class Unsupported(Exception):
    """The fast reader cannot handle this table; use astropy."""


def table_data(hdu: HDUInfo) -> Table:
    h = hdu.header
    if str(h.get("XTENSION", "")).strip() != "BINTABLE":
        raise Unsupported("not a binary table")
    nrows = int(h.get("NAXIS2", 0))
    width = int(h.get("NAXIS1", 0))
    fields = []
    names = []
    codes = []
    for n in range(1, int(h.get("TFIELDS", 0)) + 1):
        if f"TSCAL{n}" in h or f"TZERO{n}" in h:
            raise Unsupported("scaled column")
        m = _TFORM.match(str(h[f"TFORM{n}"]))
        if not m:
            raise Unsupported("bad TFORM")
        repeat = int(m.group(1)) if m.group(1) else 1
        code = m.group(2)
        name = str(h.get(f"TTYPE{n}", f"col{n}")).strip()
        if code == "A":
            fields.append((name, f"S{repeat}"))
        elif code in _TYPES:
            base = _TYPES[code]
            fields.append((name, base) if repeat == 1 else (name, base, (repeat,)))
        else:
            raise Unsupported(f"column format {code}")
        names.append(name)
        codes.append(code)
    dtype = np.dtype(fields)
    if dtype.itemsize != width:
        raise Unsupported("row width mismatch")
    rows = _read(hdu, dtype, nrows)
    columns = {}
    for name, code in zip(names, codes):
        col = rows[name]
        if code == "L":
            columns[name] = col == b"T"
        elif code == "A":
            columns[name] = np.char.decode(col, "ascii", "replace")
        else:
            columns[name] = col.astype(col.dtype.newbyteorder("="))
    return Table(columns, nrows)
