"""Row selection in the CCD parameter, overscan, bad pixel and MAMA linearity tables.

Each reader checks the columns calacs.e requires (a missing one is fatal) and
selects rows the way calacs.e does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CalibrationError
from .refs import RefFile, column_names, get_column, read_table, text

AMPS = "ABCD"

CCDTAB_COLUMNS = (
    "CCDAMP", "CCDCHIP", "CCDGAIN", "BINAXIS1", "BINAXIS2",
    "CCDOFSTA", "CCDOFSTB", "CCDOFSTC", "CCDOFSTD",
    "CCDBIASA", "CCDBIASB", "CCDBIASC", "CCDBIASD",
    "ATODGNA", "ATODGNB", "ATODGNC", "ATODGND",
    "READNSEA", "READNSEB", "READNSEC", "READNSED",
    "AMPX", "AMPY", "ATODSAT", "SATURATE", "OVRHFLS", "OVRHUFLS",
)

OSCNTAB_COLUMNS = (
    "CCDAMP", "CCDCHIP", "BINX", "BINY", "NX", "NY",
    "TRIMX1", "TRIMX2", "TRIMY1", "TRIMY2", "VX1", "VX2", "VY1", "VY2",
    "BIASSECTA1", "BIASSECTA2", "BIASSECTB1", "BIASSECTB2",
)

BPIXTAB_COLUMNS = ("PIX1", "PIX2", "LENGTH", "AXIS", "VALUE", "CCDCHIP")

MLINTAB_COLUMNS = ("DETECTOR", "GLOBAL_LIMIT", "LOCAL_LIMIT", "TAU", "EXPAND")


def require_columns(table, required, tabname: str) -> None:
    present = set(column_names(table))
    missing = [name for name in required if name not in present]
    if missing:
        raise CalibrationError(
            f"{len(missing)} columns not found in {tabname}: " + ", ".join(missing) + ".")


def _is_int_column(table, name: str) -> bool:
    return np.issubdtype(np.asarray(get_column(table, name)).dtype, np.integer)


def _f32(x) -> float:
    """A value as calacs.e holds it in a C float."""
    return float(np.float32(x))


def row_pedigree(ref: RefFile, table, row: int) -> None:
    """RowPedigree: a PEDIGREE/DESCRIP column overrides or adds to the header."""
    names = column_names(table)
    if "PEDIGREE" in names:
        ref.pedigree = text(get_column(table, "PEDIGREE")[row])
    if "DESCRIP" in names:
        ref.descrip2 = text(get_column(table, "DESCRIP")[row])


# -- CCDTAB ---------------------------------------------------------------------

@dataclass
class CCDParams:
    """The matching CCDTAB row, restricted to the amplifiers in CCDAMP."""

    atodgain: list[float]
    readnoise: list[float]
    ccdbias: list[float]          # DN
    ampx: int
    ampy: int
    atod_saturate: int
    saturate: float
    overhead_postflashed: float
    overhead_unflashed: float
    row_dummy: bool = False


def read_ccdtab(ref: RefFile, ccdamp: str, ccdgain: float, chip: int,
                ccdofst: tuple[int, int, int, int], nx: int) -> CCDParams:
    table = read_table(ref)
    require_columns(table, CCDTAB_COLUMNS, "CCDTAB")
    # An int CCDGAIN column is a pre-SM4 table, matched as an integer.
    gains = np.asarray(get_column(table, "CCDGAIN"))
    if _is_int_column(table, "CCDGAIN"):
        gain_match = gains == int(ccdgain)
    else:
        gain_match = gains.astype(np.float32) == np.float32(ccdgain)
    amps = [text(a) for a in get_column(table, "CCDAMP")]
    chips = np.asarray(get_column(table, "CCDCHIP"))
    offsets = [np.asarray(get_column(table, f"CCDOFST{a}")) for a in AMPS]
    for row in range(len(table)):
        if (amps[row] == ccdamp and gain_match[row] and chips[row] == chip
                and all(offsets[k][row] == ccdofst[k] for k in range(4))):
            break
    else:
        raise CalibrationError(
            f"Matching row not found in CCDTAB `{ref.name}'. CCDAMP {ccdamp}, "
            f"CCDGAIN {ccdgain:4.1f}, CCDOFFST {ccdofst[0]},{ccdofst[1]},{ccdofst[2]},{ccdofst[3]}.")
    row_pedigree(ref, table, row)

    def per_amp(prefix):
        return [_f32(get_column(table, prefix + a)[row]) if a in ccdamp else 0.0 for a in AMPS]

    ampx = int(get_column(table, "AMPX")[row])
    return CCDParams(
        atodgain=per_amp("ATODGN"),
        readnoise=per_amp("READNSE"),
        ccdbias=per_amp("CCDBIAS"),
        ampx=min(ampx, nx),
        ampy=int(get_column(table, "AMPY")[row]),
        atod_saturate=int(get_column(table, "ATODSAT")[row]),
        saturate=_f32(get_column(table, "SATURATE")[row]),
        overhead_postflashed=_f32(get_column(table, "OVRHFLS")[row]),
        overhead_unflashed=_f32(get_column(table, "OVRHUFLS")[row]),
        row_dummy=ref.dummy,
    )


# -- OSCNTAB --------------------------------------------------------------------

SZ_VIRTOVERSCAN = 20


@dataclass
class OverscanLayout:
    """Trim widths and zero-indexed overscan sections from OSCNTAB.

    ``found`` is False when no row matched: then nothing is trimmed and the
    CCDTAB default bias is subtracted (calacs.e only warns).
    """

    found: bool
    trimx: tuple[int, int] = (0, 0)
    trimy: tuple[int, int] = (0, 0)
    vx: tuple[int, int] = (0, 0)
    vy: tuple[int, int] = (0, 0)
    biassecta: tuple[int, int] = (0, 0)
    biassectb: tuple[int, int] = (0, 0)
    virtual_overscan: bool = False


def read_oscntab(ref: RefFile, ccdamp: str, chip: int, nx: int, ny: int,
                 binx: int = 1, biny: int = 1) -> OverscanLayout:
    table = read_table(ref)
    require_columns(table, OSCNTAB_COLUMNS, "OSCNTAB")
    col = {name: np.asarray(get_column(table, name)) for name in OSCNTAB_COLUMNS[1:]}
    amps = [text(a) for a in get_column(table, "CCDAMP")]
    for row in range(len(table)):
        if (amps[row] == ccdamp and col["CCDCHIP"][row] == chip and col["BINX"][row] == binx
                and col["BINY"][row] == biny and col["NX"][row] == nx and col["NY"][row] == ny):
            c = {k: int(v[row]) for k, v in col.items()}
            return OverscanLayout(
                found=True,
                trimx=(c["TRIMX1"], c["TRIMX2"]),
                trimy=(c["TRIMY1"], c["TRIMY2"]),
                vx=(c["VX1"] - 1, c["VX2"] - 1),
                vy=(c["VY1"] - 1, c["VY2"] - 1),
                biassecta=(c["BIASSECTA1"] - 1, c["BIASSECTA2"] - 1),
                biassectb=(c["BIASSECTB1"] - 1, c["BIASSECTB2"] - 1),
                virtual_overscan=(c["TRIMY1"] == SZ_VIRTOVERSCAN or c["TRIMY2"] == SZ_VIRTOVERSCAN),
            )
    return OverscanLayout(found=False)


# -- BPIXTAB --------------------------------------------------------------------

@dataclass
class BadPixelRows:
    """The BPIXTAB rows that apply to one chip (zero-indexed starts)."""

    x: np.ndarray
    y: np.ndarray
    length: np.ndarray
    axis: np.ndarray
    value: np.ndarray


def read_bpixtab(ref: RefFile, ccdamp: str, ccdgain: float, chip: int) -> BadPixelRows:
    table = read_table(ref)
    require_columns(table, BPIXTAB_COLUMNS, "BPIXTAB")
    names = column_names(table)
    n = len(table)
    select = np.ones(n, dtype=bool)
    if "CCDAMP" in names:
        amps = np.array([text(a) for a in get_column(table, "CCDAMP")], dtype=object)
        select &= (amps == "N/A") | (amps == ccdamp)
    if "CCDGAIN" in names:
        gains = np.asarray(get_column(table, "CCDGAIN"))
        if _is_int_column(table, "CCDGAIN"):
            select &= (gains == -999) | (gains == int(ccdgain))
        else:
            g = gains.astype(np.float32)
            select &= (g == np.float32(-999.0)) | (g == np.float32(ccdgain))
    chips = np.asarray(get_column(table, "CCDCHIP"))
    select &= (chips == -999) | (chips == chip)
    axis = np.asarray(get_column(table, "AXIS")).astype(np.int64)
    length = np.asarray(get_column(table, "LENGTH")).astype(np.int64)
    # calacs.e validates every row it reads, selected or not.
    bad_axis = np.flatnonzero((axis != 1) & (axis != 2))
    if bad_axis.size:
        raise CalibrationError(f"Axis = {axis[bad_axis[0]]} in BPIXTAB, but it must be 1 or 2.")
    bad_len = np.flatnonzero(length <= 0)
    if bad_len.size:
        raise CalibrationError(f"Length = {length[bad_len[0]]} in BPIXTAB, but it must be positive.")
    return BadPixelRows(
        x=np.asarray(get_column(table, "PIX1")).astype(np.int64)[select] - 1,
        y=np.asarray(get_column(table, "PIX2")).astype(np.int64)[select] - 1,
        length=length[select],
        axis=axis[select],
        value=np.asarray(get_column(table, "VALUE")).astype(np.int16)[select],
    )


# -- MLINTAB --------------------------------------------------------------------

@dataclass
class LinearityLimits:
    global_limit: float
    local_limit: float
    tau: float
    expand: float
    dummy: bool = False


def read_mlintab(ref: RefFile, detector: str) -> LinearityLimits:
    table = read_table(ref)
    require_columns(table, MLINTAB_COLUMNS, "MLINTAB")
    detectors = [text(d) for d in get_column(table, "DETECTOR")]
    for row, det in enumerate(detectors):
        if det == detector:
            row_pedigree(ref, table, row)
            return LinearityLimits(
                global_limit=float(get_column(table, "GLOBAL_LIMIT")[row]),
                local_limit=float(get_column(table, "LOCAL_LIMIT")[row]),
                tau=float(get_column(table, "TAU")[row]),
                expand=_f32(get_column(table, "EXPAND")[row]),
                dummy=ref.dummy,
            )
    raise CalibrationError(f"Detector `{detector}' not found in MLINTAB `{ref.name}'.")
