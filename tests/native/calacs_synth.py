"""Synthetic ACS raw files and reference files for caldp.native tests.

The references have exactly the structure calacs.e reads: imset images with NEXTEND/CCDCHIP/LTV
keywords, and binary tables with the required columns.  Values are
plausible, not real calibration data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

PEDIGREE = "INFLIGHT 01/01/2010 01/01/2010"

# Real WFC raw geometry: per chip 4144 x 2068 (24 prescan columns on each side,
# 20 virtual-overscan rows: on top of SCI,1 = CCDCHIP 2, below SCI,2 = CCDCHIP 1).
WFC_NX, WFC_NY = 4144, 2068
HRC_NX, HRC_NY = 1062, 1044


# -- generic writers --------------------------------------------------------------

def ref_primary(descrip: str, nextend: int | None = None, pedigree: str = PEDIGREE,
                **extra) -> fits.PrimaryHDU:
    hdu = fits.PrimaryHDU()
    hdu.header["PEDIGREE"] = pedigree
    hdu.header["DESCRIP"] = descrip
    if nextend is not None:
        hdu.header["NEXTEND"] = nextend
    for key, value in extra.items():
        hdu.header[key] = value
    return hdu


def image_ext(name: str, extver: int, data, chip: int, ltv=(0.0, 0.0), ltm=(1.0, 1.0),
              shape=None, pixvalue=0, **extra) -> fits.ImageHDU:
    """One extension; ``data=None`` makes an empty one with PIXVALUE/NPIX."""
    hdu = fits.ImageHDU(data=data, name=name, ver=extver)
    h = hdu.header
    if data is None:
        h["NPIX1"] = shape[1]
        h["NPIX2"] = shape[0]
        h["PIXVALUE"] = pixvalue
    h["CCDCHIP"] = chip
    h["LTV1"] = float(ltv[0])
    h["LTV2"] = float(ltv[1])
    h["LTM1_1"] = float(ltm[0])
    h["LTM2_2"] = float(ltm[1])
    for key, value in extra.items():
        h[key] = value
    return hdu


@dataclass
class RefPlane:
    """One chip of an image reference."""

    sci: np.ndarray
    chip: int
    ltv: tuple[float, float] = (0.0, 0.0)
    ltm: tuple[float, float] = (1.0, 1.0)
    err: np.ndarray | None = None
    dq: np.ndarray | None = None


def write_image_ref(path: Path, planes: list[RefPlane], descrip: str, pedigree: str = PEDIGREE,
                    sci_constant: float | None = None) -> Path:
    hdus = [ref_primary(descrip, nextend=3 * len(planes), pedigree=pedigree)]
    for k, p in enumerate(planes, start=1):
        shape = p.sci.shape
        if sci_constant is not None:
            hdus.append(image_ext("SCI", k, None, p.chip, p.ltv, p.ltm, shape=shape,
                                  pixvalue=sci_constant))
        else:
            hdus.append(image_ext("SCI", k, p.sci.astype(np.float32), p.chip, p.ltv, p.ltm))
        hdus.append(image_ext("ERR", k, None if p.err is None else p.err.astype(np.float32),
                              p.chip, p.ltv, p.ltm, shape=shape))
        hdus.append(image_ext("DQ", k, None if p.dq is None else p.dq.astype(np.int16),
                              p.chip, p.ltv, p.ltm, shape=shape))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_table(path: Path, columns: list[fits.Column], extname: str, descrip: str,
                pedigree: str = PEDIGREE, **primary_extra) -> Path:
    table = fits.BinTableHDU.from_columns(columns, name=extname)
    fits.HDUList([ref_primary(descrip, pedigree=pedigree, **primary_extra), table]).writeto(
        path, overwrite=True)
    return path


# -- tables ------------------------------------------------------------------------

def write_ccdtab(path: Path, rows: list[dict], int_gain: bool = False) -> Path:
    """CCDTAB with the 27 required columns (+ PEDIGREE/DESCRIP)."""
    def col(name, fmt, key=None, default=0):
        return fits.Column(name=name, format=fmt,
                           array=np.array([r.get(key or name, default) for r in rows]))
    columns = [
        fits.Column(name="CCDAMP", format="4A", array=np.array([r["CCDAMP"] for r in rows])),
        col("CCDCHIP", "I", default=1),
        col("CCDGAIN", "I" if int_gain else "E", default=2.0),
        col("BINAXIS1", "I", default=1), col("BINAXIS2", "I", default=1),
    ]
    columns += [col(f"CCDOFST{a}", "I", default=3) for a in "ABCD"]
    columns += [col(f"CCDBIAS{a}", "E") for a in "ABCD"]
    columns += [col(f"ATODGN{a}", "E") for a in "ABCD"]
    columns += [col(f"READNSE{a}", "E") for a in "ABCD"]
    columns += [col("AMPX", "I"), col("AMPY", "I"), col("ATODSAT", "J", default=65535),
                col("SATURATE", "E", default=80000.0), col("OVRHFLS", "E"), col("OVRHUFLS", "E"),
                fits.Column(name="PEDIGREE", format="30A", array=np.array([PEDIGREE] * len(rows))),
                fits.Column(name="DESCRIP", format="40A",
                            array=np.array(["synthetic CCD row"] * len(rows)))]
    return write_table(path, columns, "CCDTAB", "Synthetic CCD parameters table")


OSCN_COLUMNS = ("CCDCHIP", "BINX", "BINY", "NX", "NY", "TRIMX1", "TRIMX2", "TRIMY1", "TRIMY2",
                "VX1", "VX2", "VY1", "VY2", "BIASSECTA1", "BIASSECTA2", "BIASSECTB1", "BIASSECTB2")


def write_oscntab(path: Path, rows: list[dict]) -> Path:
    columns = [fits.Column(name="CCDAMP", format="4A", array=np.array([r["CCDAMP"] for r in rows]))]
    columns += [fits.Column(name=c, format="I", array=np.array([r.get(c, 0 if c not in ("BINX", "BINY")
                                                                         else 1) for r in rows]))
                for c in OSCN_COLUMNS]
    return write_table(path, columns, "OSCNTAB", "Synthetic overscan table")


def write_bpixtab(path: Path, rows: list[tuple], with_amp=True) -> Path:
    """rows: (pix1, pix2, length, axis, value, ccdchip[, ccdamp[, ccdgain]])."""
    get = lambda k, d: np.array([r[k] if len(r) > k else d for r in rows])
    columns = [fits.Column(name="PIX1", format="I", array=get(0, 0)),
               fits.Column(name="PIX2", format="I", array=get(1, 0)),
               fits.Column(name="LENGTH", format="I", array=get(2, 1)),
               fits.Column(name="AXIS", format="I", array=get(3, 1)),
               fits.Column(name="VALUE", format="I", array=get(4, 4)),
               fits.Column(name="CCDCHIP", format="I", array=get(5, -999)),
               fits.Column(name="CCDGAIN", format="I", array=get(7, -999))]
    if with_amp:
        columns.append(fits.Column(name="CCDAMP", format="4A", array=get(6, "N/A")))
    return write_table(path, columns, "BPX", "Synthetic bad pixel table")


def write_imphttab(path: Path, rows: list[tuple], photzpt=-21.1, extrap=None, parnum=1) -> Path:
    """rows: (obsmode, mjds, photflam values, photplam, photbw) for mjd# rows,
    or (obsmode, None, photflam, photplam, photbw) for scalar rows."""
    nmax = max(len(r[1]) for r in rows if r[1] is not None) if any(r[1] is not None for r in rows) else 1
    hdus = [ref_primary("Synthetic IMPHTTAB", nextend=3, PARNUM=parnum, PHOTZPT=photzpt)]
    if extrap is not None:
        hdus[0].header["EXTRAP"] = extrap
    for ext, index in (("PHOTFLAM", 2), ("PHOTPLAM", 3), ("PHOTBW", 4)):
        modes, datacol, scalar, nelem, parnames, parvalues, arrays = [], [], [], [], [], [], []
        for r in rows:
            modes.append(r[0])
            value = r[index]
            if r[1] is None:
                datacol.append(ext)
                scalar.append(float(value))
                nelem.append(0)
                parnames.append("")
                parvalues.append(np.zeros(nmax))
                arrays.append(np.zeros(nmax))
            else:
                datacol.append(ext + "1")
                vals = np.broadcast_to(np.asarray(value, dtype=float), (len(r[1]),))
                scalar.append(float(vals[0]))
                nelem.append(len(r[1]))
                parnames.append("mjd#")
                parvalues.append(np.pad(np.asarray(r[1], float), (0, nmax - len(r[1]))))
                arrays.append(np.pad(vals, (0, nmax - len(r[1]))))
        cols = [fits.Column(name="OBSMODE", format="40A", array=np.array(modes)),
                fits.Column(name="DATACOL", format="12A", array=np.array(datacol)),
                fits.Column(name=ext, format="D", array=np.array(scalar)),
                fits.Column(name="NELEM1", format="J", array=np.array(nelem)),
                fits.Column(name="PAR1NAMES", format="12A", array=np.array(parnames)),
                fits.Column(name="PAR1VALUES", format=f"{nmax}D", array=np.array(parvalues)),
                fits.Column(name=ext + "1", format=f"{nmax}D", array=np.array(arrays))]
        hdus.append(fits.BinTableHDU.from_columns(cols, name=ext))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_mlintab(path: Path, detector="SBC", global_limit=200000.0, local_limit=22.0,
                  tau=5.27e-7, expand=1.5) -> Path:
    cols = [fits.Column(name="DETECTOR", format="12A", array=np.array([detector])),
            fits.Column(name="GLOBAL_LIMIT", format="D", array=np.array([global_limit])),
            fits.Column(name="LOCAL_LIMIT", format="D", array=np.array([local_limit])),
            fits.Column(name="TAU", format="D", array=np.array([tau])),
            fits.Column(name="EXPAND", format="E", array=np.array([expand]))]
    return write_table(path, cols, "MLINTAB", "Synthetic MAMA linearity table")


# -- raw exposures -------------------------------------------------------------------

SWITCHES_OFF = {k: "OMIT" for k in ("DQICORR", "ATODCORR", "BLEVCORR", "BIASCORR", "FLSHCORR",
                                    "CRCORR", "EXPSCORR", "SHADCORR", "DARKCORR", "FLATCORR",
                                    "PHOTCORR", "RPTCORR", "DRIZCORR", "PCTECORR", "SINKCORR",
                                    "GLINCORR", "LFLGCORR")}


@dataclass
class RawChip:
    sci: np.ndarray                  # DN, will be stored as uint16
    chip: int
    ltv: tuple[float, float]
    ltm: tuple[float, float] = (1.0, 1.0)
    extra: dict = field(default_factory=dict)


def write_raw(path: Path, primary: dict, chips: list[RawChip]) -> Path:
    phdu = fits.PrimaryHDU()
    h = phdu.header
    h["NEXTEND"] = 3 * len(chips)
    h["FILENAME"] = path.name
    for key, value in primary.items():
        h[key] = value
    for amp in "ABCD":
        h[f"BIASLEV{amp}"] = 0.0
        h[f"ATODGN{amp}"] = 0.0
        h[f"READNSE{amp}"] = 0.0
    hdus = [phdu]
    for k, c in enumerate(chips, start=1):
        extra = {"BUNIT": "COUNTS", "SDQFLAGS": 31743, "MEANBLEV": 0.0, "MEANDARK": 0.0,
                 "CRPIX1": 100.0, "CRPIX2": 100.0, **c.extra}
        data = np.clip(np.rint(c.sci), 0, 65535).astype(np.uint16)
        hdus.append(image_ext("SCI", k, data, c.chip, c.ltv, c.ltm, **extra))
        hdus.append(image_ext("ERR", k, None, c.chip, c.ltv, c.ltm, shape=data.shape,
                              BUNIT="COUNTS", CRPIX1=100.0, CRPIX2=100.0))
        hdus.append(image_ext("DQ", k, None, c.chip, c.ltv, c.ltm, shape=data.shape,
                              CRPIX1=100.0, CRPIX2=100.0))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def acs_primary(detector: str, rootname: str, **switches) -> dict:
    p = {"ROOTNAME": rootname, "INSTRUME": "ACS", "DETECTOR": detector, "EXPTIME": 100.0,
         "EXPSTART": 53000.5, "EXPEND": 53000.5012, "SUBARRAY": False, "FILTER1": "F606W",
         "FILTER2": "CLEAR2L", "OBSTYPE": "IMAGING", "TARGNAME": "FIELD", "APERTURE": "WFC",
         "CCDAMP": "ABCD", "CCDGAIN": 2.0, "CCDOFSTA": 3, "CCDOFSTB": 3, "CCDOFSTC": 3,
         "CCDOFSTD": 3, "BINAXIS1": 1, "BINAXIS2": 1, "FLASHDUR": 0.0, "FLASHSTA": "NOT PERFORMED",
         "DARKTIME": 100.0, "JWROTYPE": "DS_INT", "LRFWAVE": 0.0, "CAL_VER": ""}
    p.update(SWITCHES_OFF)
    p.update(switches)
    return p


# -- complete synthetic datasets ------------------------------------------------------

WFC_GAIN = {"A": 2.02, "B": 1.98, "C": 2.01, "D": 2.00}
WFC_RN = {"A": 4.3, "B": 3.9, "C": 4.1, "D": 4.6}
WFC_LEVEL_DN = {"A": 2210.0, "B": 2195.0, "C": 2230.0, "D": 2185.0}


def wfc_chip_geometry(chip: int, nx: int = WFC_NX, ny: int = WFC_NY):
    """(ltv, trimy, virtual-overscan rows) of a WFC raw chip."""
    if chip == 2:        # SCI,1: virtual overscan rows at the top
        return (24.0, 0.0), (0, 20), (ny - 20, ny)
    return (24.0, 20.0), (20, 0), (0, 20)


def wfc_oscn_rows(nx=WFC_NX, ny=WFC_NY, ccdamp="ABCD"):
    rows = []
    for chip in (1, 2):
        _, trimy, vrows = wfc_chip_geometry(chip, nx, ny)
        rows.append({"CCDAMP": ccdamp, "CCDCHIP": chip, "NX": nx, "NY": ny,
                     "TRIMX1": 24, "TRIMX2": 24, "TRIMY1": trimy[0], "TRIMY2": trimy[1],
                     "VX1": 30, "VX2": nx - 30, "VY1": vrows[0] + 3, "VY2": vrows[1] - 2,
                     "BIASSECTA1": 19, "BIASSECTA2": 24,
                     "BIASSECTB1": nx - 23, "BIASSECTB2": nx - 18})
    return rows


def wfc_ccdtab_rows(gain=2.0, ampx=2048):
    rows = []
    for chip in (1, 2):
        row = {"CCDAMP": "ABCD", "CCDCHIP": chip, "CCDGAIN": gain, "AMPX": ampx, "AMPY": 0,
               "ATODSAT": 65535, "OVRHUFLS": 22.0, "OVRHFLS": 25.0}
        for a in "ABCD":
            row[f"CCDBIAS{a}"] = WFC_LEVEL_DN[a]
            row[f"ATODGN{a}"] = WFC_GAIN[a]
            row[f"READNSE{a}"] = WFC_RN[a]
        rows.append(row)
    return rows


@dataclass
class Dataset:
    raw: Path
    jref: str
    truth: dict


def amp_stripe_field(stripes: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Stripes as a function of readout time, as calacs.e's destriping models them."""
    i = np.arange(rows, dtype=np.float64)[:, None]
    j = np.arange(cols, dtype=np.float64)[None, :]
    t = i + (j - 11.5) / float(cols + 146)
    lower = np.clip(np.floor(t).astype(int), 0, rows - 2)
    return stripes[lower] + (t - lower) * (stripes[lower + 1] - stripes[lower])


def make_wfc_full_frame(directory: Path, *, post_sm4: bool = True, ds_int: bool = True,
                        seed: int = 1, rootname: str = "jsynwfc1q", sky_e: float = 120.0,
                        stripe_amplitude_dn: float = 1.5) -> Dataset:
    """A full-size two-chip WFC raw plus every reference its switches need."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    refs = directory / "refs"
    refs.mkdir(exist_ok=True)
    nx, ny = WFC_NX, WFC_NY
    half = nx // 2
    stripes = rng.normal(0.0, stripe_amplitude_dn, ny)           # common to all amps (row of readout)
    chips = []
    bias_planes, sat_planes, dark_planes, flat_planes = [], [], [], []
    for chip in (2, 1):                                          # SCI,1 is CCDCHIP 2
        ltv, trimy, _ = wfc_chip_geometry(chip)
        amps = ("C", "D") if chip == 2 else ("A", "B")
        superbias = rng.normal(0.0, 1.0, (ny, nx)).astype(np.float32)
        dark_rate = np.full((2048, 4096), 0.002, dtype=np.float32)
        pflat = (1.0 + 0.02 * rng.standard_normal((2048, 4096))).astype(np.float32)
        sci = np.empty((ny, nx), dtype=np.float64)
        for side, amp in enumerate(amps):
            # The stripe pattern drifts with readout time, the same for every
            # amplifier; build it in the amplifier's own orientation.
            field_amp = amp_stripe_field(stripes, ny, half) + WFC_LEVEL_DN[amp]
            if amp in ("A", "B"):
                field_amp = field_amp[::-1]
            if amp in ("B", "D"):
                sci[:, half:] = field_amp[:, ::-1]
            else:
                sci[:, :half] = field_amp
        illum = np.zeros((ny, nx))
        y0 = trimy[0]
        signal_e = sky_e + rng.normal(0, np.sqrt(sky_e), (2048, 4096))
        gain_map = np.empty((2048, 4096))
        gain_map[:, :2048] = WFC_GAIN[amps[0]]
        gain_map[:, 2048:] = WFC_GAIN[amps[1]]
        illum[y0:y0 + 2048, 24:24 + 4096] = signal_e * pflat / gain_map
        read = rng.normal(0, 2.0, (ny, nx))
        sci = sci + superbias + illum + read
        sci[100 + chip, 500:510] = 65535                       # an A-to-D saturated run
        chips.append(RawChip(sci=sci, chip=chip, ltv=ltv))
        bias_planes.append(RefPlane(superbias, chip, ltv))
        sat_planes.append(RefPlane(np.full((ny, nx), 70000.0, np.float32), chip, ltv))
        dark_planes.append(RefPlane(dark_rate, chip))
        flat_planes.append(RefPlane(pflat, chip))
    expstart = 55500.3 if post_sm4 else 53500.3
    primary = acs_primary("WFC", rootname, EXPSTART=expstart, EXPEND=expstart + 0.001,
                          JWROTYPE="DS_INT" if ds_int else "SL_INT",
                          DQICORR="PERFORM", BIASCORR="PERFORM", BLEVCORR="PERFORM",
                          DARKCORR="PERFORM", FLATCORR="PERFORM", PHOTCORR="PERFORM",
                          CCDTAB="jref$syn_ccd.fits", OSCNTAB="jref$syn_osc.fits",
                          BPIXTAB="jref$syn_bpx.fits", BIASFILE="jref$syn_bia.fits",
                          SATUFILE="jref$syn_sat.fits", DARKFILE="jref$syn_drk.fits",
                          PFLTFILE="jref$syn_pfl.fits", DFLTFILE="N/A", LFLTFILE="N/A",
                          IMPHTTAB="jref$syn_imp.fits")
    raw = write_raw(directory / f"{rootname}_raw.fits", primary, chips)
    write_ccdtab(refs / "syn_ccd.fits", wfc_ccdtab_rows())
    write_oscntab(refs / "syn_osc.fits", wfc_oscn_rows())
    write_bpixtab(refs / "syn_bpx.fits", [(100, 200, 50, 1, 4, 1), (300, 10, 30, 2, 16, 2),
                                          (4000, 2000, 200, 1, 32, -999)])
    write_image_ref(refs / "syn_bia.fits", bias_planes, "Synthetic WFC superbias")
    write_image_ref(refs / "syn_sat.fits", sat_planes, "Synthetic WFC saturation map",
                    sci_constant=70000.0)
    write_image_ref(refs / "syn_drk.fits", dark_planes, "Synthetic WFC dark", sci_constant=0.002)
    write_image_ref(refs / "syn_pfl.fits", flat_planes, "Synthetic WFC flat")
    write_imphttab(refs / "syn_imp.fits",
                   [("acs,wfc1,f606w,mjd#", [52000.0, 60000.0], [7.8e-20, 7.9e-20], 5900.0, 670.0)])
    return Dataset(raw=raw, jref=str(refs) + "/",
                   truth={"sky_e": sky_e, "stripes": stripes, "gain": WFC_GAIN,
                          "level_dn": WFC_LEVEL_DN})
