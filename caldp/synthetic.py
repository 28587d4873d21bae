"""Synthetic ACS reference files: real structure, plausible values, under the names CRDS selects.

Only a few HST reference files are public in small form, so the demo and the tests make stand-ins
with exactly the structure calacs.e reads (hstcal pkg/acs is the authority): the columns,
imsets, geometry (LTV) and keywords, matched to a given raw header (amplifier, gain, offsets,
filters, detector). Values are smooth and seeded, so runs are reproducible.
"""

import numpy as np
from astropy.io import fits

PEDIGREE = "INFLIGHT 01/03/2002 01/06/2002"
MJD_GRID = np.array([52000.0, 53000.0, 54000.0, 55000.0, 56000.0, 57000.0, 58000.0, 61000.0])

# HRC raw geometry: 1062 x 1044 with 19 physical overscan columns each side and 20 virtual rows.
HRC_RAW = (1044, 1062)
HRC_OVERSCAN_ROWS = {  # amp: (TRIMY1, TRIMY2, VY1, VY2)
    "A": (20, 0, 3, 18), "B": (20, 0, 3, 18), "C": (0, 20, 1027, 1042), "D": (0, 20, 1027, 1042),
}
HRC_FILTERS = ("F220W", "F250W", "F330W", "F344N", "F435W", "F475W", "F502N", "F550M", "F555W", "F606W",
               "F625W", "F658N", "F660N", "F775W", "F814W", "F850LP", "F892N")
SBC_FILTERS = ("F115LP", "F122M", "F125LP", "F140LP", "F150LP", "F165LP")
# Rough pivot wavelengths (Angstrom) for plausible PHOTPLAM values.
PIVOTS = {"F220W": 2255, "F250W": 2716, "F330W": 3363, "F344N": 3434, "F435W": 4311, "F475W": 4776,
          "F502N": 5023, "F550M": 5580, "F555W": 5356, "F606W": 5888, "F625W": 6296, "F658N": 6582,
          "F660N": 6599, "F775W": 7665, "F814W": 8115, "F850LP": 9145, "F892N": 8916,
          "F115LP": 1406, "F122M": 1274, "F125LP": 1438, "F140LP": 1528, "F150LP": 1612, "F165LP": 1759}


def _primary(header, filetype, descrip, **extra):
    primary = fits.PrimaryHDU()
    h = primary.header
    h["INSTRUME"] = "ACS"
    h["DETECTOR"] = header["DETECTOR"]
    h["FILETYPE"] = filetype
    h["PEDIGREE"] = PEDIGREE
    h["DESCRIP"] = descrip
    h["USEAFTER"] = "Mar 01 2002 00:00:00"
    for key, value in extra.items():
        h[key] = value
    return primary


def _imset(header, filetype, descrip, sci, err=None, dq=None, *, ltv=(0.0, 0.0), bunit="UNITLESS", **extra):
    hdus = [_primary(header, filetype, descrip, NEXTEND=3, **extra)]
    planes = (("SCI", sci.astype(np.float32)),
              ("ERR", (np.zeros_like(sci) if err is None else err).astype(np.float32)),
              ("DQ", (np.zeros(sci.shape, np.int16) if dq is None else dq).astype(np.int16)))
    for name, data in planes:
        hdu = fits.ImageHDU(data, name=name, ver=1)
        hdu.header["CCDCHIP"] = 1
        hdu.header["LTV1"], hdu.header["LTV2"] = ltv
        hdu.header["LTM1_1"], hdu.header["LTM2_2"] = 1.0, 1.0
        hdu.header["BUNIT"] = bunit
        hdus.append(hdu)
    return fits.HDUList(hdus)


def _smooth(shape, rng, amplitude):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    gradient = (x / shape[1] - 0.5) * amplitude + (y / shape[0] - 0.5) * amplitude / 2
    return gradient + rng.normal(0, amplitude / 4, shape)


def make_ccdtab(header, rng):
    rows = []
    for amp in "ABCD":
        for gain in (1.0, 2.0, 4.0, 8.0):
            row = {"CCDAMP": amp, "CCDCHIP": 1, "CCDGAIN": gain, "BINAXIS1": 1, "BINAXIS2": 1}
            for a in "ABCD":
                row[f"CCDOFST{a}"] = int(header.get(f"CCDOFST{a}", 3))
                row[f"CCDBIAS{a}"] = 1850.0 if a == amp else 0.0
                row[f"ATODGN{a}"] = gain * 1.08 if a == amp else 0.0
                row[f"READNSE{a}"] = 4.7 if a == amp else 0.0
            row.update(AMPX=0, AMPY=0, ATODSAT=65535, SATURATE=155000.0, OVRHFLS=0.0, OVRHUFLS=0.0,
                       PEDIGREE=PEDIGREE, DESCRIP="synthetic HRC CCD parameters")
            rows.append(row)
    formats = {"CCDAMP": "4A", "CCDCHIP": "I", "CCDGAIN": "E", "BINAXIS1": "I", "BINAXIS2": "I", "AMPX": "I",
               "AMPY": "I", "ATODSAT": "J", "SATURATE": "E", "OVRHFLS": "E", "OVRHUFLS": "E",
               "PEDIGREE": "30A", "DESCRIP": "67A"}
    for a in "ABCD":
        formats.update({f"CCDOFST{a}": "I", f"CCDBIAS{a}": "E", f"ATODGN{a}": "E", f"READNSE{a}": "E"})
    order = ["CCDAMP", "CCDCHIP", "CCDGAIN", "BINAXIS1", "BINAXIS2", *[f"CCDOFST{a}" for a in "ABCD"],
             *[f"CCDBIAS{a}" for a in "ABCD"], *[f"ATODGN{a}" for a in "ABCD"], *[f"READNSE{a}" for a in "ABCD"],
             "AMPX", "AMPY", "ATODSAT", "SATURATE", "OVRHFLS", "OVRHUFLS", "PEDIGREE", "DESCRIP"]
    return _table(header, "CCD PARAMETERS", "Synthetic HRC CCD parameters table", "CCDTAB", rows, order, formats)


def make_oscntab(header, rng):
    rows = []
    for amp, (trimy1, trimy2, vy1, vy2) in HRC_OVERSCAN_ROWS.items():
        rows.append(dict(CCDAMP=amp, CCDCHIP=1, BINX=1, BINY=1, NX=HRC_RAW[1], NY=HRC_RAW[0], TRIMX1=19, TRIMX2=19,
                         TRIMY1=trimy1, TRIMY2=trimy2, VX1=25, VX2=1038, VY1=vy1, VY2=vy2,
                         BIASSECTA1=6, BIASSECTA2=19, BIASSECTB1=1046, BIASSECTB2=1061))
    order = list(rows[0])
    formats = {k: ("4A" if k == "CCDAMP" else "I") for k in order}
    return _table(header, "OVERSCAN", "Synthetic HRC overscan table", "OSCNTAB", rows, order, formats)


def make_bpixtab(header, rng):
    rows = []
    size = 1024
    for column in rng.choice(np.arange(40, size - 40), 6, replace=False):
        start = int(rng.integers(1, size // 2))
        rows.append(dict(PIX1=int(column), PIX2=start, LENGTH=int(rng.integers(20, size - start)), AXIS=2, VALUE=4))
    for _ in range(30):
        rows.append(dict(PIX1=int(rng.integers(1, size)), PIX2=int(rng.integers(1, size)), LENGTH=1, AXIS=1, VALUE=16))
    for row in rows:
        row.update(CCDAMP="N/A", CCDCHIP=-999, CCDGAIN=-999)
    order = ["CCDAMP", "PIX1", "PIX2", "LENGTH", "AXIS", "VALUE", "CCDCHIP", "CCDGAIN"]
    formats = {k: ("4A" if k == "CCDAMP" else "I") for k in order}
    detector = header["DETECTOR"]
    return _table(header, "BAD PIXELS", f"Synthetic {detector} bad pixel table", "BPX", rows, order, formats)


def make_mlintab(header, rng):
    rows = [dict(DETECTOR="SBC", GLOBAL_LIMIT=200000.0, LOCAL_LIMIT=22.0, TAU=5.27e-7, EXPAND=1.5,
                 PEDIGREE=PEDIGREE, DESCRIP="synthetic SBC MAMA linearity limits")]
    formats = {"DETECTOR": "12A", "GLOBAL_LIMIT": "D", "LOCAL_LIMIT": "D", "TAU": "D", "EXPAND": "E",
               "PEDIGREE": "30A", "DESCRIP": "67A"}
    return _table(header, "MAMA LINEARITY", "Synthetic SBC MAMA linearity table", "MLIN", rows, list(formats), formats)


def make_biasfile(header, rng):
    bias = np.clip(_smooth(HRC_RAW, rng, 1.0), -5, 5)
    return _imset(header, "BIAS", "Synthetic HRC superbias", bias, np.full(HRC_RAW, 0.5), ltv=(19.0, 0.0),
                  bunit="COUNTS", CCDAMP=header.get("CCDAMP", "C"), CCDGAIN=float(header.get("CCDGAIN", 2)))


def make_satufile(header, rng):
    saturation = 160000.0 + rng.normal(0, 1500, HRC_RAW)
    return _imset(header, "SATURATION", "Synthetic HRC full-well saturation map", saturation, ltv=(19.0, 0.0),
                  bunit="ELECTRONS")


def make_darkfile(header, rng):
    dark = np.abs(0.006 + rng.normal(0, 0.002, (1024, 1024)))
    hot = rng.choice(dark.size, 200, replace=False)
    dark.flat[hot] += rng.uniform(0.1, 2.0, hot.size)
    return _imset(header, "DARK", "Synthetic HRC superdark", dark, np.full(dark.shape, 0.001), bunit="ELECTRONS/S",
                  CCDAMP=header.get("CCDAMP", "C"), CCDGAIN=float(header.get("CCDGAIN", 2)))


def make_pfltfile(header, rng):
    flat = 1.0 + _smooth((1024, 1024), rng, 0.02)
    dq = np.zeros(flat.shape, np.int16)
    dead = rng.choice(flat.size, 20, replace=False)
    dq.flat[dead] = 512
    return _imset(header, "PIXEL-TO-PIXEL FLAT", f"Synthetic {header['DETECTOR']} pixel-to-pixel flat", flat,
                  np.full(flat.shape, 0.005), dq, FILTER1=header.get("FILTER1", "N/A"), FILTER2=header.get("FILTER2", "N/A"))


def obsmode(header):
    """The IMPHTTAB row key calacs.e matches for a plain imaging exposure (no polarizer or ramp)."""
    filters = [str(header.get(k, "N/A")).strip() for k in ("FILTER1", "FILTER2")]
    elements = [f.lower() for f in filters if f and f != "N/A" and not f.upper().startswith("CLEAR")]
    return ",".join(["acs", header["DETECTOR"].lower(), *elements, "mjd#"])


def make_imphttab(header, rng):
    detector = header["DETECTOR"].upper()
    filters = SBC_FILTERS if detector == "SBC" else HRC_FILTERS
    modes = {f"acs,{detector.lower()},{f.lower()},mjd#": f for f in filters}
    modes.setdefault(obsmode(header), next(iter(filters)))
    hdus = [_primary(header, "PHOTOMETRY", f"Synthetic {detector} IMPHTTAB", NEXTEND=3, PHOTZPT=-21.1, PARNUM=1,
                     DBTABLE="IMPHTTAB")]
    for quantity in ("PHOTFLAM", "PHOTPLAM", "PHOTBW"):
        rows = []
        for mode, filt in modes.items():
            pivot = PIVOTS.get(filt, 5000.0)
            if quantity == "PHOTFLAM":
                values = (1.5e-19 if detector != "SBC" else 2.6e-17) * (pivot / 5000.0) ** -1 * (
                    1 + 0.002 * (MJD_GRID - MJD_GRID[0]) / 1000.0)
            elif quantity == "PHOTPLAM":
                values = np.full(MJD_GRID.size, float(pivot))
            else:
                values = np.full(MJD_GRID.size, pivot * 0.08)
            rows.append({"OBSMODE": mode, "DATACOL": f"{quantity}1", quantity: values[0], "PEDIGREE": PEDIGREE,
                         "DESCRIP": "synthetic", "NELEM1": MJD_GRID.size, "PAR1NAMES": "mjd#",
                         "PAR1VALUES": MJD_GRID, f"{quantity}1": values})
        n = MJD_GRID.size
        formats = {"OBSMODE": "40A", "DATACOL": "12A", quantity: "D", "PEDIGREE": "30A", "DESCRIP": "67A",
                   "NELEM1": "J", "PAR1NAMES": "12A", "PAR1VALUES": f"{n}D", f"{quantity}1": f"{n}D"}
        hdus.append(_table_hdu(quantity, rows, list(formats), formats))
    return fits.HDUList(hdus)


def _table_hdu(extname, rows, order, formats):
    columns = [fits.Column(name=name, format=formats[name], array=np.array([row[name] for row in rows]))
               for name in order]
    return fits.BinTableHDU.from_columns(columns, name=extname)


def _table(header, filetype, descrip, extname, rows, order, formats):
    return fits.HDUList([_primary(header, filetype, descrip), _table_hdu(extname, rows, order, formats)])


REFERENCE_MAKERS = {
    "CCDTAB": make_ccdtab,
    "OSCNTAB": make_oscntab,
    "BPIXTAB": make_bpixtab,
    "MLINTAB": make_mlintab,
    "BIASFILE": make_biasfile,
    "SATUFILE": make_satufile,
    "DARKFILE": make_darkfile,
    "PFLTFILE": make_pfltfile,
    "IMPHTTAB": make_imphttab,
}


def synthesize_acs_references(raw_header, ref_dir, *, seed=2002, overwrite=False):
    """Write a stand-in for every reference the raw header names that calacs.e reads; return {keyword: path}.

    `raw_header` is the primary header after bestrefs (names like 'jref$o3u1448rj_pfl.fits').
    """
    written = {}
    for keyword, maker in REFERENCE_MAKERS.items():
        value = str(raw_header.get(keyword, "N/A")).strip()
        if value.upper() in ("N/A", "") or "$" not in value and not value.endswith(".fits"):
            continue
        path = ref_dir / value.split("$")[-1]
        if path.exists() and not overwrite:
            continue
        rng = np.random.default_rng(seed + sum(map(ord, keyword)))
        maker(raw_header, rng).writeto(path, overwrite=overwrite)
        written[keyword] = path
    return written
