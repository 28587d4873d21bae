"""Stand-ins for the COS reference files calcos 3.6 reads, under the names CRDS selects.

Only three of the twenty references hst_0729 selects for the COS/FUV association ldfd01010 are
public in small form (DEADTAB s7g1700gl, WCPTAB u1t1616ql, LAMPTAB 24914347l); the rest, and the
three NUV files of the acquisition image ldfd01vlq, are made here: the exact structure calcos
reads (HDUs, columns, keywords, value ranges; calcos's own source is the authority) with smooth,
plausible, seeded values. Real tables in the cache that hst_0729 does not select (the older
1dx/2zx/lamp/wcp/dead tables) are the value sources where they hold the right rows.

    synthesize_cos_references(raw_headers, ref_dir) -> {file name: path written}

`raw_headers` are post-bestrefs headers (a primary header, optionally merged with the EVENTS /
SCI header so HVLEVELA and EXPSTART are known). Only what is missing from `ref_dir` is written.
Every file is deterministic: its random numbers are seeded from its own name.

What the values are based on (FUVA, G140L/1105, lifetime position 3):
- XTRACTAB/TWOZXTAB rows: copied from the real cache tables (z2d19237l_1dx, z2d1925ql_2zx).
- DISPTAB: linear, 0.07994 A/pixel (the archive's G140L/1105 grid), zero point so that the
  Lyman-alpha airglow of FPOFFSET=0 (raw column 2378, 2343 after that exposure's SHIFT1 of +35)
  falls at 1215.67 A; the same coefficients for every FPOFFSET (SHIFT1 removes the FP step).
- TRACETAB: a straight tilt of 0.00085 pixel/pixel, as the science spectrum shows in raw
  coordinates (y 452 at x 1500 to y 460 at x 10000), plus the offset that puts the spectrum on
  the profile centre after the wavecal SHIFT2 (the real XTRACTAB rows belong to the real, unknown
  geometric correction; with a near-identity GEOFILE the WCA sits 24 rows below its row, so
  SHIFT2 lifts the science spectrum 18 rows above the TWOZXTAB centre, and ALGNCORR gives up
  beyond 20); PROFTAB: a double Gaussian centred on the TWOZXTAB B_SPEC.
- BRFTAB: the stim reference positions where these exposures' stims are, so the thermal
  correction is a small drift (TIMESTEP 30 s: ~60 stim counts per interval); the active area of
  FUVA (1060-15250, 296-734).
- GEOFILE, XWLKFILE, YWLKFILE, FLATFILE: sub-pixel smooth corrections and a flat close to 1
  (a cut-out: 96 rows around the spectrum, columns 800-15499).
- BPIXTAB, GSAGTAB, SPOTTAB: active-area edges (DQ 8), grid wires (4), a few dead spots (16) off
  the extraction bands; gain-sag holes (8192) at lifetime position 1, per HV level; one hot spot (2)
  active during the exposures and one that ended before them.
- FLUXTAB, TDSTAB, SPWCSTAB: an effective-area-like sensitivity (peak ~7e12 counts/s/pixel per
  erg/s/cm2/A), a slow decline of ~1%/yr, and the FUV plate scale (0.0212"/pixel).
"""

import zlib
from pathlib import Path

import numpy as np
from astropy.io import fits

VCALCOS = "3.4"  # within [minimum, 3.6.2] for every reference type (the walk files need >= 3.1)
USEAFTER = "May 11 2009 00:00:00"
PEDIGREE = "DUMMY"  # calcos ignores the primary PEDIGREE; only a TDSTAB row PEDIGREE=DUMMY skips TDSCORR
DESCRIP = "caldp test stand-in: synthetic values with the structure calcos reads"

FILETYPES = {
    "FLATFILE": "FLAT FIELD REFERENCE IMAGE",
    "DEADTAB": "DEADTIME REFERENCE TABLE",
    "BPIXTAB": "DATA QUALITY INITIALIZATION TABLE",
    "SPOTTAB": "TRANSIENT BAD PIXEL REFERENCE TABLE",
    "GSAGTAB": "GAIN SAG REFERENCE TABLE",
    "BRFTAB": "BASELINE REFERENCE FRAME TABLE",
    "GEOFILE": "GEOMETRIC DISTORTION REFERENCE IMAGE",
    "TRACETAB": "1D SPECTRAL TRACE TABLE",
    "PROFTAB": "2D SPECTRUM PROFILE TABLE",
    "TWOZXTAB": "TWO-ZONE SPECTRAL EXTRACTION PARAMETERS TABLE",
    "XWLKFILE": "X WALK CORRECTION LOOKUP REFERENCE IMAGE",
    "YWLKFILE": "Y WALK CORRECTION LOOKUP REFERENCE IMAGE",
    "PHATAB": "PULSE HEIGHT PARAMETERS REFERENCE TABLE",
    "XTRACTAB": "1-D EXTRACTION PARAMETERS TABLE",
    "LAMPTAB": "TEMPLATE CAL LAMP SPECTRA TABLE",
    "DISPTAB": "DISPERSION RELATION REFERENCE TABLE",
    "FLUXTAB": "PHOTOMETRIC SENSITIVITY REFERENCE TABLE",
    "WCPTAB": "WAVECAL PARAMETERS REFERENCE TABLE",
    "TDSTAB": "TIME DEPENDENT SENSITIVITY TABLE",
    "SPWCSTAB": "SPECTROSCOPIC WCS PARAMETERS TABLE",
}

FUV_X, FUV_Y, NUV_SIZE = 16384, 1024, 1024
TRACE_LENGTH = 16448  # calcos interpolates at int(XCORR)+1, and XCORR can pass 16384 after TEMPCORR
FPOFFSETS = (-2, -1, 0, 1)
APERTURES = ("PSA", "WCA", "BOA", "FCA")
PHA_LIMITS = {"FUVA": (2, 23), "FUVB": (2, 23)}  # LLT, ULT
PHARANGE = "2_23"

# Active area and stim reference positions (raw pixels) per segment.
BRF = {
    "FUVA": dict(A_LEFT=1060, A_RIGHT=15250, A_LOW=296, A_HIGH=734,
                 SX1=408.5, SY1=975.5, SX2=16045.5, SY2=22.8, XWIDTH=25, YWIDTH=20),
    "FUVB": dict(A_LEFT=1000, A_RIGHT=15100, A_LOW=360, A_HIGH=785,
                 SX1=380.0, SY1=998.0, SX2=16000.0, SY2=60.0, XWIDTH=25, YWIDTH=20),
}

# Dispersion (A/pixel, first order) and a zero point per (grating, cenwave, segment); G140L/1105
# FUVA is measured from this association, the others are rough generic values.
DISPERSION = {"G140L": 0.079943, "G130M": 0.00997, "G160M": 0.01223}
# Lyman-alpha airglow of the FPOFFSET=0 exposure: raw column 2378, i.e. 2343 in the frame of the
# real LAMPTAB templates (the tagflash wavecal measures SHIFT1 = +35 pixels for that exposure), the
# frame in which calcos evaluates the dispersion relation.
LYA_COLUMN_G140L_1105 = 2343.0
SPEC_TILT = 0.00085  # pixel/pixel: the spectrum's rise along the dispersion in raw coordinates
# The trace's mean: where the spectrum sits after the wavecal SHIFT2 (-24.4: the WCA is 24 rows
# below its real XTRACTAB row with this near-identity GEOFILE) relative to the profile centre, so
# that ALGNCORR has only a small residual to remove (calcos gives up beyond 20 rows).
TRACE_OFFSET = 18.2


# ------------------------------------------------------------------------------ the entry point
def synthesize_cos_references(raw_headers, ref_dir, sources=None):
    """Write a stand-in for every COS reference the headers name and `ref_dir` lacks.

    Headers calcos does not calibrate (acquisitions other than ACQ/IMAGE: calcos exits 5 without
    opening a reference) are skipped. Keywords that are N/A, or have no builder here (HVTAB,
    DGEOFILE, BADTTAB, BRSTTAB, PHAFILE, IMPHTTAB, HVDSTAB: none is used by these datasets), are
    skipped. `sources` are directories searched for real tables to copy values from (default:
    `ref_dir`). Returns {file name: path} of the files written.
    """
    ref_dir = Path(ref_dir)
    ref_dir.mkdir(parents=True, exist_ok=True)
    sources = [Path(s) for s in (sources or [ref_dir])]
    wanted = {}
    for header in raw_headers:
        if not calibrated_by_calcos(header):
            continue
        for keyword in BUILDERS:
            name = reference_name(header.get(keyword))
            if name:
                wanted.setdefault(name, (keyword, []))[1].append(header)
    written = {}
    for name, (keyword, headers) in sorted(wanted.items()):
        path = ref_dir / name
        if path.exists():
            continue
        modes = [Mode.from_header(h) for h in headers]
        hdul = BUILDERS[keyword](name, modes, sources)
        _finish_primary(hdul[0].header, keyword, modes)
        tmp = path.with_name(path.name + ".part")
        hdul.writeto(tmp, overwrite=True)
        tmp.replace(path)
        written[name] = path
    return written


def calibrated_by_calcos(header):
    """False for acquisitions calcos skips with exit 5 (every ACQ/* but ACQ/IMAGE)."""
    exptype = str(header.get("EXPTYPE", "")).strip().upper()
    return not exptype.startswith("ACQ/") or exptype == "ACQ/IMAGE"


def reference_name(value):
    """'lref$x_flat.fits' -> 'x_flat.fits'; None for N/A, blanks and non-reference values."""
    text = str(value or "").strip()
    if "$" not in text:
        return None
    name = text.split("$", 1)[1].strip()
    return name or None


class Mode:
    """What one exposure asks of the tables: segment(s), grating, cenwave, aperture, FP offset."""

    def __init__(self, header):
        self.detector = str(header.get("DETECTOR", "FUV")).strip().upper()
        segment = str(header.get("SEGMENT", "N/A")).strip().upper()
        if self.detector == "FUV":
            self.segments = ("FUVA", "FUVB") if segment == "BOTH" else (segment,)
        else:
            self.segments = ("NUV",)
        self.opt_elem = str(header.get("OPT_ELEM", "")).strip().upper()
        self.cenwave = int(header.get("CENWAVE", 0) or 0)
        self.aperture = str(header.get("APERTURE", "PSA")).strip().upper()
        self.fpoffset = int(header.get("FPOFFSET", 0) or 0)
        self.life_adj = int(header.get("LIFE_ADJ", 3) or 3)
        self.hvlevel = {s: header.get(f"HVLEVEL{s[-1]}") for s in ("FUVA", "FUVB")}
        self.expstart = header.get("EXPSTART")
        self.expend = header.get("EXPEND")

    @classmethod
    def from_header(cls, header):
        return cls(header)

    @property
    def setting(self):
        return self.opt_elem, self.cenwave


# ------------------------------------------------------------------------------ helpers
def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def _primary(**cards):
    hdu = fits.PrimaryHDU()
    for key, value in cards.items():
        hdu.header[key] = value
    return hdu


def _finish_primary(header, keyword, modes):
    header["FILETYPE"] = FILETYPES[keyword]
    header["VCALCOS"] = VCALCOS
    header["INSTRUME"] = "COS"
    if "DETECTOR" not in header:
        header["DETECTOR"] = modes[0].detector
    header["USEAFTER"] = USEAFTER
    header["PEDIGREE"] = PEDIGREE
    header["DESCRIP"] = DESCRIP
    if modes[0].detector == "FUV" and "LIFE_ADJ" not in header:
        header["LIFE_ADJ"] = modes[0].life_adj  # TRACETAB: calcos stops unless it equals the raw's


def _table(columns, rows, **header):
    """A BinTableHDU from [(name, format, dim or None)] and a list of row dicts."""
    cols = []
    for name, fmt, dim in columns:
        values = [row[name] for row in rows]
        if fmt.endswith("A"):
            array = np.array(values, dtype=f"U{int(fmt[:-1])}") if values else np.array([], dtype="U1")
        else:
            array = np.array(values) if values else np.zeros(0)
        kwargs = {"dim": dim} if dim else {}
        cols.append(fits.Column(name=name, format=fmt, array=array, **kwargs))
    hdu = fits.BinTableHDU.from_columns(cols)
    for key, value in header.items():
        hdu.header[key] = value
    return hdu


def _settings(modes):
    """Sorted unique (segment, opt_elem, cenwave) of the spectroscopic modes."""
    return sorted({(s, m.opt_elem, m.cenwave) for m in modes for s in m.segments})


def _real_rows(sources, pattern, filetype, want):
    """Rows of the first real table (newest CRDS name first) holding every (seg, grating, cenwave, aperture)."""
    for directory in sources:
        for path in sorted(Path(directory).glob(pattern), reverse=True):
            try:
                with fits.open(path) as hdul:
                    if hdul[0].header.get("FILETYPE") != filetype:
                        continue
                    data = hdul[1].data
                    have = {(str(r["SEGMENT"]).strip(), str(r["OPT_ELEM"]).strip(), int(r["CENWAVE"]),
                             str(r["APERTURE"]).strip()) for r in data}
                    if set(want) <= have:
                        return path, fits.BinTableHDU(data=data.copy(), header=hdul[1].header.copy())
            except (OSError, KeyError, IndexError, TypeError):
                continue
    return None, None


def _dispersion(segment, opt_elem, cenwave):
    """(c0, c1) of lambda = c0 + c1*x for a setting (x in raw/corrected pixels)."""
    c1 = DISPERSION.get(opt_elem, 0.01)
    if (opt_elem, cenwave) == ("G140L", 1105) and segment == "FUVA":
        return 1215.67 - c1 * LYA_COLUMN_G140L_1105, c1
    # generic, rough: the cenwave falls in the gap between the segments, FUVB below FUVA
    if segment == "FUVA":
        return cenwave + c1 * 1000, c1
    return cenwave - c1 * (FUV_X + 1000), c1


def _extraction_rows(sources, modes):
    """XTRACTAB rows as a {(seg, grating, cenwave, aperture): row} dict (real values where possible)."""
    want = [(s, g, c, a) for s, g, c in _settings(modes) for a in ("PSA", "WCA")]
    _, hdu = _real_rows(sources, "*_1dx.fits", FILETYPES["XTRACTAB"], want)
    rows = {}
    if hdu is not None:
        for r in hdu.data:
            key = (str(r["SEGMENT"]).strip(), str(r["OPT_ELEM"]).strip(), int(r["CENWAVE"]),
                   str(r["APERTURE"]).strip())
            rows[key] = {n.upper(): r[n] for n in hdu.data.names}
    return rows


def _psa_centre(sources, modes, segment, opt_elem, cenwave):
    row = _extraction_rows(sources, modes).get((segment, opt_elem, cenwave, "PSA"))
    if row is None:
        return 460.0
    return float(row["B_SPEC"]) + float(row["SLOPE"]) * FUV_X / 2


# ------------------------------------------------------------------------------ builders
FLAT_ORIGIN_X, FLAT_COLUMNS, FLAT_ROWS = 800, 14700, 96


def build_flatfile(name, modes, sources):
    rng = _rng(name)
    if modes[0].detector == "NUV":
        y, x = np.mgrid[0:NUV_SIZE, 0:NUV_SIZE] / NUV_SIZE
        flat = 1 + 0.02 * np.cos(2.3 * x + 1.1) * np.cos(1.7 * y) + rng.normal(0, 0.01, (NUV_SIZE, NUV_SIZE))
        image = fits.ImageHDU(np.clip(flat, 0.9, 1.1).astype(np.float32), name="SCI")
        image.header["ORIGIN_X"], image.header["ORIGIN_Y"] = 0, 0
        return fits.HDUList([_primary(DETECTOR="NUV"), image])
    hdus = [_primary(DETECTOR="FUV", PHARANGE=PHARANGE)]
    # A cut-out (events outside it are left alone): 96 rows around the science spectrum, and the
    # columns of the active area with a margin, narrow enough that the x1dsum step can shift it by
    # the FP-POS SHIFT1 (up to +-800 pixels) without truncating it. 5.6 MB instead of 64.
    for segment in sorted({s for m in modes for s in m.segments}):
        centre = _psa_centre(sources, modes, segment, modes[0].opt_elem, modes[0].cenwave)
        origin_x, origin_y = FLAT_ORIGIN_X, int(round(centre)) - FLAT_ROWS // 2
        x = (origin_x + np.arange(FLAT_COLUMNS)) / FUV_X
        rows = np.arange(FLAT_ROWS)[:, None] / FLAT_ROWS
        smooth = 1 + 0.03 * np.sin(2 * np.pi * (x * 3.0 + 0.2)) * np.cos(np.pi * rows) \
            + 0.01 * np.sin(2 * np.pi * x * 17)  # a gentle large-scale and hex-scale pattern
        flat = smooth + rng.normal(0, 0.008, (FLAT_ROWS, FLAT_COLUMNS))
        image = fits.ImageHDU(np.clip(flat, 0.85, 1.15).astype(np.float32), name=segment, ver=1)
        image.header["ORIGIN_X"], image.header["ORIGIN_Y"] = origin_x, origin_y
        image.header["SEGMENT"] = segment
        hdus.append(image)
    return fits.HDUList(hdus)


def build_deadtab(name, modes, sources):
    detector = modes[0].detector
    if detector == "FUV":
        for directory in sources:  # a real FUV dead-time table, if the cache has one
            for path in sorted(Path(directory).glob("*_dead.fits"), reverse=True):
                with fits.open(path) as hdul:
                    if hdul[0].header.get("DETECTOR") == "FUV" and "TIMESTEP" in hdul[1].header:
                        return fits.HDUList([_primary(DETECTOR="FUV"),
                                             fits.BinTableHDU(hdul[1].data.copy(), hdul[1].header.copy())])
    tau = 8.1e-6 if detector == "FUV" else 2.8e-7  # s: a non-paralysable-like live-time curve
    rates = [0.0, 1e4, 2e4, 3e4, 4.5e4] if detector == "FUV" else [0.0, 1e4, 5e4, 1e5, 3e5, 1e6]
    segments = ("FUVA", "FUVB") if detector == "FUV" else ("NUV",)
    rows = [dict(SEGMENT=s, OBS_RATE=r, LIVETIME=float(np.exp(-r * tau))) for s in segments for r in rates]
    table = _table([("SEGMENT", "4A", None), ("OBS_RATE", "D", None), ("LIVETIME", "D", None)], rows)
    if detector == "FUV":
        table.header["TIMESTEP"] = 10.0
    return fits.HDUList([_primary(DETECTOR=detector), table])


def build_bpixtab(name, modes, sources):
    rng = _rng(name)
    rows = []
    if modes[0].detector == "NUV":
        # vignetted corners (4, harmless) and a few low-response spots (16)
        for lx, ly in ((0, 0), (0, 960), (960, 0), (960, 960)):
            rows.append(dict(SEGMENT="NUV", LX=lx, LY=ly, DX=64, DY=64, DQ=4))
        for _ in range(6):
            rows.append(dict(SEGMENT="NUV", LX=int(rng.integers(50, 950)), LY=int(rng.integers(50, 950)),
                             DX=int(rng.integers(3, 9)), DY=int(rng.integers(3, 9)), DQ=16))
    else:
        for segment in ("FUVA", "FUVB"):
            area = BRF[segment]
            left, right, low, high = area["A_LEFT"], area["A_RIGHT"], area["A_LOW"], area["A_HIGH"]
            # poorly calibrated edges of the active area (8)
            rows += [dict(SEGMENT=segment, LX=left, LY=low, DX=right - left, DY=12, DQ=8),
                     dict(SEGMENT=segment, LX=left, LY=high - 12, DX=right - left, DY=12, DQ=8),
                     dict(SEGMENT=segment, LX=left, LY=low, DX=60, DY=high - low, DQ=8),
                     dict(SEGMENT=segment, LX=right - 60, LY=low, DX=60, DY=high - low, DQ=8)]
            # grid-wire shadows (4, not a serious flag)
            for lx in range(left + 700, right - 100, 1000):
                rows.append(dict(SEGMENT=segment, LX=lx, LY=low, DX=8, DY=high - low, DQ=4))
            # a few low-response spots (16) away from the PSA and WCA bands
            for _ in range(5):
                ly = int(rng.choice([rng.integers(low + 20, 410), rng.integers(600, high - 30)]))
                rows.append(dict(SEGMENT=segment, LX=int(rng.integers(left + 100, right - 100)), LY=ly,
                                 DX=int(rng.integers(5, 40)), DY=int(rng.integers(3, 10)), DQ=16))
    cols = [("SEGMENT", "4A", None), ("LX", "I", None), ("LY", "I", None), ("DX", "I", None),
            ("DY", "I", None), ("DQ", "I", None)]
    extra = {} if modes[0].detector == "NUV" else {"PHARANGE": PHARANGE}
    return fits.HDUList([_primary(DETECTOR=modes[0].detector, **extra), _table(cols, rows)])


def _time_window(modes, margin=30.0):
    starts = [float(m.expstart) for m in modes if m.expstart]
    ends = [float(m.expend) for m in modes if m.expend]
    if starts and ends:
        return min(starts) - margin, max(ends) + margin
    return 54900.0, 62000.0


def build_spottab(name, modes, sources):
    start, stop = _time_window(modes)
    rows = []
    for segment in ("FUVA", "FUVB"):
        # one hot spot active during the exposures (in neither extraction nor background zone) ...
        rows.append(dict(SEGMENT=segment, START=start, STOP=stop, LX=5200, LY=690, DX=12, DY=8, DQ=2))
        # ... and one that ended long before them (must not be applied)
        rows.append(dict(SEGMENT=segment, START=55200.0, STOP=55230.0, LX=9000, LY=470, DX=10, DY=6, DQ=2))
    cols = [("SEGMENT", "4A", None), ("START", "D", None), ("STOP", "D", None), ("LX", "I", None),
            ("LY", "I", None), ("DX", "I", None), ("DY", "I", None), ("DQ", "I", None)]
    low, high = PHA_LIMITS["FUVA"]
    return fits.HDUList([_primary(DETECTOR="FUV", PHAMIN=low, PHAMAX=high), _table(cols, rows)])


def build_gsagtab(name, modes, sources):
    levels = {"FUVA": {163, 167, 169, 171, 173, 175, 178}, "FUVB": {163, 167, 169, 171, 175}}
    for mode in modes:
        for segment, hv in mode.hvlevel.items():
            if hv is not None:
                levels[segment].add(int(hv))
    hdus = [_primary(DETECTOR="FUV")]
    cols = [("DATE", "D", None), ("LX", "I", None), ("LY", "I", None), ("DX", "I", None), ("DY", "I", None),
            ("DQ", "I", None)]
    for segment in ("FUVA", "FUVB"):
        for hv in sorted(levels[segment]):
            # Gain-sagged holes burnt in at lifetime position 1 (above LP3): the Lyman-alpha and
            # O I airglow columns, growing over time; one dated after these exposures.
            rows = [dict(DATE=55500.0, LX=2250, LY=478, DX=260, DY=10, DQ=8192),
                    dict(DATE=56200.0, LX=3350, LY=479, DX=160, DY=8, DQ=8192),
                    dict(DATE=56900.0, LX=7000, LY=480, DX=90, DY=6, DQ=8192),
                    dict(DATE=61000.0, LX=11000, LY=480, DX=80, DY=6, DQ=8192)]
            if hv < 167:
                rows = rows[:1]  # fewer sagged regions at a lower high voltage
            table = _table(cols, rows, SEGMENT=segment, **{f"HVLEVEL{segment[-1]}": hv})
            table.header["EXTNAME"] = f"{segment}_{hv}"
            hdus.append(table)
    return fits.HDUList(hdus)


def build_brftab(name, modes, sources):
    rows = [dict(SEGMENT=segment, **values) for segment, values in BRF.items()]
    cols = [("SEGMENT", "4A", None)] + [(k, "J", None) for k in ("A_LEFT", "A_RIGHT", "A_LOW", "A_HIGH")] + \
        [(k, "D", None) for k in ("SX1", "SY1", "SX2", "SY2")] + [("XWIDTH", "J", None), ("YWIDTH", "J", None)]
    return fits.HDUList([_primary(DETECTOR="FUV"), _table(cols, rows, TIMESTEP=30.0)])


def build_geofile(name, modes, sources):
    """Binned (16x16) X and Y corrections, sub-pixel and smooth, for both segments."""
    hdus = [_primary(DETECTOR="FUV")]
    y, x = np.mgrid[0:FUV_Y // 16, 0:FUV_X // 16].astype(float)
    u, v = x / (FUV_X // 16), y / (FUV_Y // 16)
    corrections = (0.6 * np.sin(np.pi * u) * np.cos(np.pi * v) + 0.2 * np.sin(6 * np.pi * u),  # X
                   0.3 * np.cos(np.pi * u) * (v - 0.5))  # Y
    for segment in ("FUVA", "FUVB"):
        for ver, data in enumerate(corrections, start=1):
            image = fits.ImageHDU(data.astype(np.float32), name=segment, ver=ver)
            for key, value in (("ORIGIN_X", 0), ("ORIGIN_Y", 0), ("XBIN", 16), ("YBIN", 16), ("SEGMENT", segment)):
                image.header[key] = value
            hdus.append(image)
    return fits.HDUList(hdus)


def _walk(name, modes, shape, amplitude):
    hdus = [_primary(DETECTOR="FUV")]
    pha = np.arange(shape[0], dtype=float)[:, None]
    across = np.linspace(-1, 1, shape[1])[None, :]
    for segment in ("FUVA", "FUVB"):
        data = amplitude * (pha - 10) / 10 * (1 + 0.2 * across ** 2)
        image = fits.ImageHDU(data.astype(np.float32), name=segment)
        image.header["SEGMENT"] = segment
        hdus.append(image)
    return fits.HDUList(hdus)


def build_xwlkfile(name, modes, sources):
    return _walk(name, modes, (32, FUV_X), 0.4)  # PHA x XCORR: the full width, so XCORR is not clipped


def build_ywlkfile(name, modes, sources):
    return _walk(name, modes, (32, FUV_Y), 0.6)  # PHA x YCORR: the 32x1024 shape calcos expects


def build_phatab(name, modes, sources):
    rows = [dict(SEGMENT=s, LLT=lo, ULT=hi, MIN_PEAK=4.0, MAX_PEAK=15.0) for s, (lo, hi) in PHA_LIMITS.items()]
    cols = [("SEGMENT", "4A", None), ("LLT", "J", None), ("ULT", "J", None), ("MIN_PEAK", "E", None),
            ("MAX_PEAK", "E", None)]
    return fits.HDUList([_primary(DETECTOR="FUV"), _table(cols, rows)])


def _generic_1dx_row(segment, opt_elem, cenwave, aperture):
    wca = aperture == "WCA"
    return dict(SEGMENT=segment, OPT_ELEM=opt_elem, CENWAVE=cenwave, APERTURE=aperture,
                SLOPE=0.00015 if wca else 0.00014, B_SPEC=564.3 if wca else 459.1,
                B_BKG1=537.3 if wca else 410.0, B_BKG2=591.3 if wca else 606.3,
                HEIGHT=27 if wca else 51, B_HGT1=27 if wca else 32, B_HGT2=27 if wca else 48, BWIDTH=100,
                PEDIGREE="MODEL")


def build_xtractab(name, modes, sources):
    want = [(s, g, c, a) for s, g, c in _settings(modes) for a in ("PSA", "WCA")]
    path, hdu = _real_rows(sources, "*_1dx.fits", FILETYPES["XTRACTAB"], want)
    if hdu is None:
        cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
                ("SLOPE", "D", None), ("B_SPEC", "D", None), ("B_BKG1", "D", None), ("B_BKG2", "D", None),
                ("HEIGHT", "J", None), ("B_HGT1", "J", None), ("B_HGT2", "J", None), ("BWIDTH", "J", None),
                ("PEDIGREE", "8A", None)]
        rows = [_generic_1dx_row(*key) for key in want]
        hdu = _table(cols, rows)
    else:
        hdu.header["HISTORY"] = f"rows copied from the real table {path.name}"
    return fits.HDUList([_primary(DETECTOR="FUV"), hdu])


def build_twozxtab(name, modes, sources):
    want = [(s, g, c, "PSA") for s, g, c in _settings(modes)]
    path, hdu = _real_rows(sources, "*_2zx.fits", FILETYPES["TWOZXTAB"], want)
    if hdu is None:
        cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None)] \
            + [(k, "D", None) for k in ("B_SPEC", "B_BKG1", "B_BKG2")] \
            + [(k, "J", None) for k in ("HEIGHT", "BHEIGHT", "BWIDTH")] \
            + [(k, "D", None) for k in ("LOWER_OUTER", "UPPER_OUTER", "LOWER_INNER", "UPPER_INNER", "YERRMAX")]
        rows = [dict(SEGMENT=s, OPT_ELEM=g, CENWAVE=c, APERTURE=a, B_SPEC=463.1, B_BKG1=414.1, B_BKG2=606.3,
                     HEIGHT=51, BHEIGHT=31, BWIDTH=100, LOWER_OUTER=0.005, UPPER_OUTER=0.995, LOWER_INNER=0.1,
                     UPPER_INNER=0.9, YERRMAX=0.8) for s, g, c, a in want]
        hdu = _table(cols, rows)
    else:
        hdu.header["HISTORY"] = f"rows copied from the real table {path.name}"
    return fits.HDUList([_primary(DETECTOR="FUV"), hdu])


def _twozone_centre(sources, modes, segment, opt_elem, cenwave):
    _, hdu = _real_rows(sources, "*_2zx.fits", FILETYPES["TWOZXTAB"], [(segment, opt_elem, cenwave, "PSA")])
    if hdu is None:
        return 463.1
    for r in hdu.data:
        if (str(r["SEGMENT"]).strip(), str(r["OPT_ELEM"]).strip(), int(r["CENWAVE"]), str(r["APERTURE"]).strip()) \
                == (segment, opt_elem, cenwave, "PSA"):
            return float(r["B_SPEC"])
    return 463.1


PROFILE_ROWS, PROFILE_BELOW = 256, 80  # spans the 2zx background zones (-65 and +160 rows)


def build_proftab(name, modes, sources):
    """A double Gaussian (core sigma 3 to 4.5 pixels, 15% wing three times wider) per column."""
    rows = []
    x = np.linspace(-1, 1, FUV_X)
    sigma = 3.0 + 1.5 * x ** 2
    for segment, opt_elem, cenwave in _settings(modes):
        centre = _twozone_centre(sources, modes, segment, opt_elem, cenwave)
        row_0 = int(round(centre)) - PROFILE_BELOW
        dy = (np.arange(PROFILE_ROWS) + row_0 - centre)[:, None]
        core = np.exp(-0.5 * (dy / sigma) ** 2) / sigma
        wing = np.exp(-0.5 * (dy / (3 * sigma)) ** 2) / (3 * sigma)
        profile = 0.85 * core + 0.15 * wing
        profile /= profile.sum(axis=0)
        rows.append(dict(SEGMENT=segment, OPT_ELEM=opt_elem, CENWAVE=cenwave, APERTURE="PSA", ROW_0=row_0,
                         CENTER=centre, PROFILE=profile.astype(np.float32)))
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
            ("ROW_0", "J", None), ("CENTER", "D", None),
            ("PROFILE", f"{PROFILE_ROWS * FUV_X}E", f"({FUV_X},{PROFILE_ROWS})")]
    return fits.HDUList([_primary(DETECTOR="FUV"), _table(cols, rows)])


def build_tracetab(name, modes, sources):
    rows = []
    x = np.arange(TRACE_LENGTH, dtype=float)
    for segment, opt_elem, cenwave in _settings(modes):
        area = BRF.get(segment, BRF["FUVA"])
        trace = TRACE_OFFSET + SPEC_TILT * (x - FUV_X / 2)
        trace[(x < area["A_LEFT"] - 60) | (x > area["A_RIGHT"] + 60)] = -999.0  # no value off the active area
        for aperture in ("PSA", "BOA"):
            rows.append(dict(SEGMENT=segment, OPT_ELEM=opt_elem, CENWAVE=cenwave, APERTURE=aperture,
                             TRACE=trace.astype(np.float32)))
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
            ("TRACE", f"{TRACE_LENGTH}E", None)]
    life_adj = sorted({m.life_adj for m in modes})
    return fits.HDUList([_primary(DETECTOR="FUV", LIFE_ADJ=life_adj[0]), _table(cols, rows)])


def build_lamptab(name, modes, sources):
    """A real lamp table from the cache when one holds the rows (its templates match the real lamp)."""
    want = {(s, g, c) for s, g, c in _settings(modes)}
    for directory in sources:
        for path in sorted(Path(directory).glob("*_lamp.fits"), reverse=True):
            with fits.open(path) as hdul:
                data = hdul[1].data
                have = {(str(r["SEGMENT"]).strip(), str(r["OPT_ELEM"]).strip(), int(r["CENWAVE"])) for r in data}
                if want <= have:
                    table = fits.BinTableHDU(data.copy(), hdul[1].header.copy())
                    table.header["HISTORY"] = f"copied from the real table {path.name}"
                    return fits.HDUList([_primary(DETECTOR="FUV"), table])
    # No real template: a synthetic emission-line spectrum (calcos then reports every flash "not found").
    rng = _rng(name)
    lines = rng.uniform(200, FUV_X - 200, 60)
    strengths = rng.uniform(5, 100, 60)
    pixel = np.arange(FUV_X)
    template = sum(s * np.exp(-0.5 * ((pixel - c) / 2.5) ** 2) for c, s in zip(lines, strengths))
    rows = [dict(SEGMENT=s, OPT_ELEM=g, CENWAVE=c, FPOFFSET=fp, FP_PIXEL_SHIFT=0.0, INTENSITY=template)
            for s, g, c in sorted(want) for fp in FPOFFSETS]
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("FPOFFSET", "J", None),
            ("FP_PIXEL_SHIFT", "D", None), ("INTENSITY", f"{FUV_X}D", None)]
    return fits.HDUList([_primary(DETECTOR="FUV"), _table(cols, rows)])


def build_wcptab(name, modes, sources):
    gratings = {m.opt_elem for m in modes}
    for directory in sources:
        for path in sorted(Path(directory).glob("*_wcp.fits"), reverse=True):
            with fits.open(path) as hdul:
                if hdul[0].header.get("DETECTOR") != modes[0].detector:
                    continue
                data = hdul[1].data
                if gratings <= {str(g).strip() for g in data["OPT_ELEM"]}:
                    return fits.HDUList([_primary(DETECTOR=modes[0].detector),
                                         fits.BinTableHDU(data.copy(), hdul[1].header.copy())])
    rows = [dict(OPT_ELEM=g, XC_RANGE=269 if g == "G140L" else 60, RESWIDTH=6.0, MAX_TIME_DIFF=0.067,
                 STEPSIZE=244 if g == "G140L" else 2000, XD_RANGE=50, BOX=7) for g in sorted(gratings)]
    cols = [("OPT_ELEM", "8A", None), ("XC_RANGE", "J", None), ("RESWIDTH", "D", None), ("MAX_TIME_DIFF", "D", None),
            ("STEPSIZE", "J", None), ("XD_RANGE", "J", None), ("BOX", "J", None)]
    return fits.HDUList([_primary(DETECTOR=modes[0].detector), _table(cols, rows)])


def build_disptab(name, modes, sources):
    fpoffsets = sorted(set(FPOFFSETS) | {m.fpoffset for m in modes})
    rows = []
    for segment, opt_elem, cenwave in _settings(modes):
        c0, c1 = _dispersion(segment, opt_elem, cenwave)
        for aperture in APERTURES:
            for fp in fpoffsets:  # the same coefficients for every FPOFFSET: SHIFT1 removes the FP step
                rows.append(dict(SEGMENT=segment, OPT_ELEM=opt_elem, CENWAVE=cenwave, APERTURE=aperture, FPOFFSET=fp,
                                 NELEM=2, COEFF=np.array([c0, c1, 0.0, 0.0]), D_TV03=0.0, D=0.0))
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
            ("FPOFFSET", "J", None), ("NELEM", "J", None), ("COEFF", "4D", None), ("D_TV03", "D", None),
            ("D", "D", None)]
    return fits.HDUList([_primary(DETECTOR="FUV"), _table(cols, rows)])


FLUX_GRID = np.linspace(900.0, 2500.0, 1601)


def _sensitivity(wavelength, aperture):
    """counts/s/pixel per erg/s/cm2/A: G140L-like, peaking near 1250 A, never zero."""
    peak = 7.0e12 if aperture == "PSA" else 7.0e10  # the BOA attenuates ~100x
    shape = np.exp(-0.5 * ((wavelength - 1250.0) / 330.0) ** 2) * (1 - np.exp(-(wavelength - 880.0) / 60.0))
    return peak * np.clip(shape, 3e-3, None)


def build_fluxtab(name, modes, sources):
    rows = [dict(SEGMENT=s, OPT_ELEM=g, CENWAVE=c, APERTURE=a, WAVELENGTH=FLUX_GRID,
                 SENSITIVITY=_sensitivity(FLUX_GRID, a))
            for s, g, c in _settings(modes) for a in ("PSA", "BOA")]
    n = len(FLUX_GRID)
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
            ("WAVELENGTH", f"{n}D", None), ("SENSITIVITY", f"{n}D", None)]
    return fits.HDUList([_primary(DETECTOR="FUV", PHARANGE=PHARANGE), _table(cols, rows)])


TDS_WAVELENGTHS = np.array([900.0, 1100.0, 1300.0, 1500.0, 1700.0, 1900.0, 2100.0, 2300.0, 2500.0])
TDS_TIMES = np.array([54980.0, 55800.0, 56800.0, 58000.0, 62000.0])  # MJD; the last is after every exposure here
TDS_REF_TIME = 54980.0


def _tds_arrays():
    """Slope (%/yr) per interval and wavelength; intercepts chosen so the factor is continuous in time."""
    nt, nwl = len(TDS_TIMES), len(TDS_WAVELENGTHS)
    slope = np.empty((nt, nwl))
    intercept = np.empty((nt, nwl))
    factor = np.ones(nwl)  # the factor at TDS_TIMES[0]
    for i in range(nt):
        slope[i] = -(0.6 + 0.6 * (TDS_WAVELENGTHS - 900.0) / 1600.0) * (1.5 if i == 1 else 1.0)
        years = (TDS_TIMES[i] - TDS_REF_TIME) / 365.25
        intercept[i] = factor - years * slope[i] / 100.0
        if i + 1 < nt:
            factor = (TDS_TIMES[i + 1] - TDS_REF_TIME) / 365.25 * slope[i] / 100.0 + intercept[i]
    return slope, intercept


def build_tdstab(name, modes, sources):
    slope, intercept = _tds_arrays()
    nt, nwl = slope.shape
    rows = [dict(SEGMENT=s, OPT_ELEM=g, CENWAVE=c, APERTURE=a, NWL=nwl, NT=nt, WAVELENGTH=TDS_WAVELENGTHS,
                 TIME=TDS_TIMES, SLOPE=slope, INTERCEPT=intercept, PEDIGREE="MODEL")
            for s, g, c in _settings(modes) for a in ("PSA", "BOA")]
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
            ("NWL", "J", None), ("NT", "J", None), ("WAVELENGTH", f"{nwl}D", None), ("TIME", f"{nt}D", None),
            ("SLOPE", f"{nt * nwl}D", f"({nwl},{nt})"), ("INTERCEPT", f"{nt * nwl}D", f"({nwl},{nt})"),
            ("PEDIGREE", "8A", None)]
    return fits.HDUList([_primary(DETECTOR="FUV", PHARANGE=PHARANGE), _table(cols, rows, REF_TIME=TDS_REF_TIME)])


def build_spwcstab(name, modes, sources):
    rows = []
    for segment, opt_elem, cenwave in _settings(modes):
        c0, c1 = _dispersion(segment, opt_elem, cenwave)
        crpix1 = FUV_X / 2 + 0.5
        for aperture in ("PSA", "BOA"):
            rows.append(dict(SEGMENT=segment, OPT_ELEM=opt_elem, CENWAVE=cenwave, APERTURE=aperture,
                             CTYPE1="WAVE-GRI", CRPIX1=crpix1, CRVAL1=c0 + c1 * (crpix1 - 1), CDELT1=c1,
                             CDELT2=0.0212 / 3600, CDELT3=0.1 / 3600, G=80000.0 if opt_elem == "G140L" else 3.8e6,
                             SPORDER=1, ALPHA=7.3, THETA=11.2, SPECRES=2000.0 if opt_elem == "G140L" else 18000.0))
    cols = [("SEGMENT", "4A", None), ("OPT_ELEM", "5A", None), ("CENWAVE", "J", None), ("APERTURE", "3A", None),
            ("CTYPE1", "8A", None), ("CRPIX1", "D", None), ("CRVAL1", "D", None), ("CDELT1", "D", None),
            ("CDELT2", "D", None), ("CDELT3", "D", None), ("G", "D", None), ("SPORDER", "J", None),
            ("ALPHA", "D", None), ("THETA", "D", None), ("SPECRES", "D", None)]
    return fits.HDUList([_primary(DETECTOR="FUV"), _table(cols, rows)])


BUILDERS = {
    "FLATFILE": build_flatfile,
    "DEADTAB": build_deadtab,
    "BPIXTAB": build_bpixtab,
    "SPOTTAB": build_spottab,
    "GSAGTAB": build_gsagtab,
    "BRFTAB": build_brftab,
    "GEOFILE": build_geofile,
    "TRACETAB": build_tracetab,
    "PROFTAB": build_proftab,
    "TWOZXTAB": build_twozxtab,
    "XWLKFILE": build_xwlkfile,
    "YWLKFILE": build_ywlkfile,
    "PHATAB": build_phatab,
    "XTRACTAB": build_xtractab,
    "LAMPTAB": build_lamptab,
    "DISPTAB": build_disptab,
    "FLUXTAB": build_fluxtab,
    "WCPTAB": build_wcptab,
    "TDSTAB": build_tdstab,
    "SPWCSTAB": build_spwcstab,
}
