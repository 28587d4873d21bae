"""PHOTCORR: PHOTMODE and the IMPHTTAB look-up.

PHOTMODE is "ACS <detector> [CORON] <filters> MJD#<expstart>" (WFC is
always "WFC1"); CLEAR* and N/A filters are left out, POL* filters become
POL_UV or POL_V, ramp filters get "#<LRFWAVE>".  The IMPHTTAB obsmode is the
lower-case, comma-separated PHOTMODE with the values of parameterised
elements ("mjd#52377.7615" -> "mjd#") split off.

A row matches when its OBSMODE has the same length as the obsmode and each
of its comma-separated elements occurs in the obsmode; the first match is
used.  Parameterised rows are interpolated (multi-)linearly in their PAR
values, using the MJD as written in PHOTMODE (4 decimals) like calacs.e.
Outside the tabulated range the value is -9999 (PHOTCORR is then skipped)
unless the primary header has EXTRAP = T and the parameter is mjd#.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..common.errors import CalibrationError
from ..common.refs import RefFile, get_column, read_table, text

PHOT_NAMES = ("PHOTZPT", "PHOTFLAM", "PHOTPLAM", "PHOTBW", "PHTFLAM1", "PHTFLAM2")
OUT_OF_RANGE = -9999.0


def _filter_part(name: str, lrfwave: float) -> str:
    if name.startswith("N/A") or name.startswith("CLEAR"):
        return ""
    if name.startswith("POL"):
        part = "POL_UV" if "UV" in name else "POL_V"
    else:
        part = name
    if name.startswith("FR"):
        part += "#%0.4g" % lrfwave
    return " " + part


def build_photmode(detector: str, obstype: str, filter1: str, filter2: str,
                   expstart: float, lrfwave: float = -1.0) -> str:
    mode = "ACS" + {"SBC": " SBC", "HRC": " HRC", "WFC": " WFC1"}.get(detector, "")
    if obstype.startswith("CORON"):
        mode += " CORON"
    lrf = float(np.float32(lrfwave))
    mode += _filter_part(filter1, lrf) + _filter_part(filter2, lrf)
    return mode + " MJD#%0.4f" % expstart


def photmode_to_obsmode(photmode: str) -> tuple[str, dict[str, float]]:
    """(obsmode used for matching, {parameter name: value})."""
    lowered = photmode.replace(" ", ",").lower()
    elements = [tok for tok in lowered.split(",") if tok]
    names = []
    params: dict[str, float] = {}
    for tok in elements:
        if "#" in tok:
            name, value = tok.split("#", 1)
            names.append(name + "#")
            params[name + "#"] = _atof(value)
        else:
            names.append(tok)
    return ",".join(names), params


def _atof(s: str) -> float:
    """C atof: the longest numeric prefix, 0.0 if there is none."""
    m = re.match(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s)
    return float(m.group(0)) if m else 0.0


def obsmodes_match(row_mode: str, obsmode: str) -> bool:
    if len(row_mode) != len(obsmode):
        return False
    row_l, obs_l = row_mode.lower(), obsmode.lower()
    return all(tok in obs_l for tok in row_l.split(",") if tok)


def _bounds(x: np.ndarray, val: float) -> tuple[int, int]:
    """computebounds from getphttab.c."""
    nx = len(x)
    if x[nx - 1] <= val:
        return nx - 2, nx - 1
    i0, i1 = 0, 1
    for n in range(nx):
        if x[n] <= val:
            i0 = n
        else:
            if 0 < n < nx - 1:
                i1 = n
            elif n == 0:
                i0, i1 = 0, 1
            else:
                i0, i1 = nx - 2, nx - 1
            break
    return i0, i1


def _linterp(x, fx, xpos: float) -> float:
    i0, i1 = _bounds(np.asarray(x, dtype=np.float64), xpos)
    if x[i1] - x[i0] == 0:
        raise CalibrationError("IMPHTTAB linear interpolation reached a singularity.")
    return fx[i0] + (xpos - x[i0]) * (fx[i1] - fx[i0]) / (x[i1] - x[i0])


@dataclass
class PhotRow:
    parnames: list[str]
    parvalues: list[np.ndarray]
    results: np.ndarray


def _interpolate(row: PhotRow, params: dict[str, float], extrap: bool) -> float:
    ndim = len(row.parnames)
    if ndim == 0:
        return float(row.results[0])
    obsvals = []
    for name, values in zip(row.parnames, row.parvalues):
        value = 0.0
        for pname, pvalue in params.items():
            if pname[:len(name)].lower() == name.lower():
                value = pvalue
                break
        if value == 0.0:
            raise CalibrationError(f"No obsmode value found for IMPHTTAB parameter {name}.")
        if (value < values[0] or value > values[-1]) and (not extrap or name.lower() != "mjd#"):
            return OUT_OF_RANGE
        obsvals.append(value)
    # Corner values of the enclosing cell, dimension 0 varying fastest
    # (the results array is stored that way).
    nelem = [len(v) for v in row.parvalues]
    lower = []
    for values, obs in zip(row.parvalues, obsvals):
        nx = len(values)
        if obs < values[0]:
            index = 0.0
        elif obs > values[-1]:
            index = float(nx - 1)
        else:
            index = _linterp(values, np.arange(nx, dtype=np.float64), obs)
        b0, _ = _bounds(np.arange(nx, dtype=np.float64), float(np.floor(index)))
        lower.append(b0)
    points = []
    for bits in range(2 ** ndim):
        pos = [lower[d] + ((bits >> d) & 1) for d in range(ndim)]
        flat, stride = 0, 1
        for d in range(ndim):
            flat += stride * pos[d]
            stride *= nelem[d]
        points.append((pos, float(row.results[flat])))
    # Collapse one dimension at a time, dimension 0 first.
    for d in range(ndim):
        merged = []
        for k in range(0, len(points), 2):
            (pa, va), (pb, vb) = points[k], points[k + 1]
            xa, xb = row.parvalues[d][pa[d]], row.parvalues[d][pb[d]]
            value = _linterp([xa, xb], [va, vb], obsvals[d])
            merged.append((pa, value))
        points = merged
    return points[0][1]


@dataclass
class Photometry:
    photflam: float
    photplam: float
    photbw: float
    photzpt: float
    extrapolated_out: bool
    phtflam1: float | None = None
    phtflam2: float | None = None


def compute_photometry(ref: RefFile, photmode: str) -> Photometry:
    """Look PHOTFLAM/PHOTPLAM/PHOTBW (and PHOTZPT) up in IMPHTTAB."""
    obsmode, params = photmode_to_obsmode(photmode)
    if not ref.hdus:
        raise CalibrationError(f"IMPHTTAB `{ref.name}' not found.")
    phdr = ref.hdus[0].header
    for key in ("PARNUM", "PHOTZPT", "NEXTEND"):
        if key not in phdr:
            raise CalibrationError(f"Keyword `{key}' not found in IMPHTTAB `{ref.name}' "
                                   "primary header.")
    extrap = bool(phdr.get("EXTRAP", False))
    parnum = int(phdr["PARNUM"])
    values: dict[str, float] = {}
    for extn in range(1, int(phdr["NEXTEND"]) + 1):
        name = PHOT_NAMES[extn]
        try:
            table = read_table(ref, name)
        except CalibrationError as exc:
            raise CalibrationError(f"IMPHTTAB extension `{ref.name}[{name}]' not found.") from exc
        cols = [c.upper() for c in table.columns.names]
        required = [f"{name}{n}" for n in range(1, parnum + 1)] + ["OBSMODE", "DATACOL"]
        missing = [c for c in required if c not in cols]
        if missing:
            raise CalibrationError(f"{len(missing)} columns not found in IMPHTTAB: "
                                   + ", ".join(missing) + ".")
        modes = [text(m) for m in get_column(table, "OBSMODE")]
        for row_index, mode in enumerate(modes):
            if obsmodes_match(mode, obsmode):
                break
        else:
            raise CalibrationError(f"Matching row not found in IMPHTTAB `{ref.name}' "
                                   f"for OBSMODE {obsmode}.")
        values[name] = _interpolate(_read_row(table, row_index, name), params, extrap)
    photzpt = float(phdr["PHOTZPT"])
    return Photometry(
        photflam=values.get("PHOTFLAM", 0.0), photplam=values.get("PHOTPLAM", 0.0),
        photbw=values.get("PHOTBW", 0.0), photzpt=photzpt,
        extrapolated_out=values.get("PHOTFLAM", 0.0) == OUT_OF_RANGE,
        phtflam1=values.get("PHTFLAM1"), phtflam2=values.get("PHTFLAM2"),
    )


def _read_row(table, row: int, photvar: str) -> PhotRow:
    datacol = text(get_column(table, "DATACOL")[row])
    parnum = int(_atof(datacol[len(photvar):])) if len(datacol) > len(photvar) else 0
    if parnum == 0:
        return PhotRow([], [], np.array([float(get_column(table, photvar)[row])]))
    names, pvalues, total = [], [], 1
    for n in range(1, parnum + 1):
        names.append(text(get_column(table, f"PAR{n}NAMES")[row]))
        nelem = int(get_column(table, f"NELEM{n}")[row])
        pvalues.append(np.asarray(get_column(table, f"PAR{n}VALUES")[row], dtype=np.float64)[:nelem])
        total *= nelem
    results = np.asarray(get_column(table, f"{photvar}{parnum}")[row], dtype=np.float64).ravel()
    if results.size < total:
        raise CalibrationError(f"IMPHTTAB row {row + 1} of {photvar} has too few values.")
    return PhotRow(names, pvalues, results[:total])
