"""A synthetic WFC3/UVIS full frame and the stand-in references calwf3.e reads for it.

No real UVIS raw is shipped with the project, so this module makes one with the archive's layout
and the structure hstcal's calwf3 3.7.3 reads on the UVIS CCD path (pkg/wfc3 of the vendored
hstcal source is the authority; nothing of it is copied here):

* Two imsets (SCI/ERR/DQ) of 4206 x 2070 raw pixels, read through four amplifiers (CCDAMP=ABCD).
  SCI,1 is CCDCHIP 2 (amplifiers C left, D right) with its 19 parallel virtual overscan rows
  below the data (LTV2=19); SCI,2 is CCDCHIP 1 (A left, B right) with them above (LTV2=0). Each
  row holds 25 prescan columns, 2048 data columns and 30 serial virtual overscan columns for the
  left amplifier, then the same mirrored for the right one (LTV1=25). Trimmed: 4096 x 2051.
* A bias level per amplifier (a pedestal plus a slope along the rows) in every raw pixel the
  amplifier reads, read noise, a superbias pattern, dark current (with hot pixels and a hot block),
  a flat-field pattern (with a dust-mote dip), sky, stars (two saturated), cosmic rays.

Every number calwf3 applies is kept in a UvisTruth so the tests can compute the expected _flt
independently, pixel by pixel, from the raw pixels and these inputs.

What calwf3 reads from each stand-in (the references are written under the names CRDS hst_0729
bestrefs selects for the raw's header):

* CCDTAB (FILETYPE 'CCD PARAMETERS', DETECTOR UVIS): the row matching CCDAMP, CCDGAIN (float),
  CCDCHIP, CCDOFST[A-D] and BINAXIS1/2; ATODGN/READNSE/CCDBIAS of the amplifiers in CCDAMP, AMPX
  (2048: first trimmed column of the right amplifier), AMPY 0, SATURATE (DN; used as a scalar
  full-well threshold on the raw because hst_0729 selects no SATUFILE). The gain that converts to
  electrons in FLATCORR is the mean of the row's four ATODGN values.
* OSCNTAB ('OVERSCAN'): 28 columns; for a full frame the row is matched on CCDAMP, CCDCHIP and
  BINX/BINY only. With both serial virtual sections (BIASSECTC/D) given, each amplifier's level is
  the median of its virtual section per row, fitted by a line along the rows; VX/VY name the
  parallel virtual boxes used for the (here flat) drift along the columns.
* BPIXTAB ('BAD PIXELS'): PIX1/PIX2 (1-based, trimmed coordinates; calwf3 adds 60 columns for
  PIX1-1 >= AMPX), LENGTH, AXIS, VALUE, CCDCHIP, CCDGAIN, CCDAMP (-999 / 'N/A' wildcards) and
  SIZAXIS1/2 in the table header.
* SNKCFILE (opened whenever DQICORR=PERFORM, so it must exist even with PCTECORR=OMIT): raw-shaped
  SCI,1 and SCI,2 read by imset number; a value > 50000 is a sink pixel's turn-on MJD, -1 below it
  flags the pixel downstream, values in (0, 1000) above it are thresholds for the trail.
* BIASFILE ('BIAS', CCDGAIN must equal the science's): raw-shaped imsets with the raw's LTV, in DN,
  subtracted after BLEVCORR.
* DARKFILE ('DARK'), PFLTFILE ('PIXEL-TO-PIXEL FLAT', FILTER): trimmed imsets (LTV 0). The dark is
  in e-/s, scaled by EXPTIME (calwf3 3.7.3 never reads DARKTIME) and divided by each amplifier's
  ATODGN; the flat is divided by the mean gain and divided into the data.
* IMPHTTAB: NEXTEND=5 (PHOTFLAM, PHOTPLAM, PHOTBW, PHTFLAM1, PHTFLAM2), PARNUM, PHOTZPT; rows
  'wfc3,uvis1,<filter>,mjd#' and 'wfc3,uvis2,<filter>,mjd#'. FLUXCORR multiplies chip 2 by
  PHTRATIO = PHTFLAM2 / PHTFLAM1.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOTNAME = "iuvis01aq"
PEDIGREE = "INFLIGHT 01/01/2019 01/01/2020"

# ---------------------------------------------------------------------------- geometry
PRESCAN = 25  # serial physical overscan columns at each outer edge of a chip
SERIAL_VIRTUAL = 30  # serial virtual overscan columns per amplifier, in the middle of a chip
PARALLEL_VIRTUAL = 19  # parallel virtual overscan rows of a chip
AMP_NX = 2048  # data columns per amplifier
NX, NY = 2 * AMP_NX, 2051  # a trimmed chip
RAW_NX = NX + 2 * PRESCAN + 2 * SERIAL_VIRTUAL  # 4206
RAW_NY = NY + PARALLEL_VIRTUAL  # 2070
SPLIT = PRESCAN + AMP_NX + SERIAL_VIRTUAL  # 2103: first raw column read by the right amplifier
RIGHT_DATA = SPLIT + SERIAL_VIRTUAL  # 2133: first raw data column of the right amplifier


@dataclasses.dataclass(frozen=True)
class Chip:
    extver: int  # imset number in the raw and in the products
    ccdchip: int
    amps: tuple  # (left, right) amplifier
    ltv2: int  # parallel virtual rows below the data (19), or 0 when they are above it

    @property
    def data_rows(self):
        return slice(self.ltv2, self.ltv2 + NY)

    @property
    def trimy(self):
        """(TRIMY1, TRIMY2) of OSCNTAB."""
        return (PARALLEL_VIRTUAL, 0) if self.ltv2 else (0, PARALLEL_VIRTUAL)

    @property
    def virtual_rows(self):
        return slice(0, PARALLEL_VIRTUAL) if self.ltv2 else slice(NY, RAW_NY)


CHIPS = (Chip(1, 2, ("C", "D"), PARALLEL_VIRTUAL), Chip(2, 1, ("A", "B"), 0))


def trim(raw_chip, chip):
    """The 2051 x 4096 data region of a raw-shaped chip array (what BLEVCORR keeps)."""
    rows = raw_chip[chip.data_rows]
    return np.hstack([rows[:, PRESCAN:PRESCAN + AMP_NX], rows[:, RIGHT_DATA:RIGHT_DATA + AMP_NX]])


def untrim(data, chip, fill=0.0, dtype=np.float32):
    """A raw-shaped chip array holding `data` (2051 x 4096) in its data region."""
    raw = np.full((RAW_NY, RAW_NX), fill, dtype=dtype)
    rows = raw[chip.data_rows]
    rows[:, PRESCAN:PRESCAN + AMP_NX] = data[:, :AMP_NX]
    rows[:, RIGHT_DATA:RIGHT_DATA + AMP_NX] = data[:, AMP_NX:]
    return raw


def trimmed_column(raw_column):
    """Trimmed (0-based) column of a raw data column."""
    return raw_column - PRESCAN if raw_column < SPLIT else raw_column - RIGHT_DATA + AMP_NX


def per_amp(chip, values, shape=(NY, NX)):
    """A trimmed-shaped array holding values[amp] in each amplifier's half."""
    out = np.empty(shape, dtype=np.float64)
    out[:, :AMP_NX] = values[chip.amps[0]]
    out[:, AMP_NX:] = values[chip.amps[1]]
    return out


# ---------------------------------------------------------------------------- detector and exposure
CCDGAIN = 1.5
GAIN = {"A": 1.56, "B": 1.55, "C": 1.57, "D": 1.54}  # ATODGN, e-/DN
READNOISE = {"A": 3.10, "B": 3.05, "C": 3.15, "D": 3.08}  # e-
BIAS_LEVEL = {"A": 2520.3, "B": 2488.6, "C": 2531.8, "D": 2474.2}  # DN at raw row 0
BIAS_SLOPE = {"A": 4.0e-4, "B": -3.0e-4, "C": 2.5e-4, "D": -1.5e-4}  # DN per raw row
CCDBIAS = {amp: round(level) for amp, level in BIAS_LEVEL.items()}  # CCDTAB's default bias, DN
SATURATE = 63000.0  # DN, CCDTAB SATURATE (scalar full-well flag on the raw)
ATOD_SATURATE = 65534  # calwf3 flags raw values above this with 2048
MEAN_GAIN = sum(GAIN.values()) / 4.0  # calwf3 converts to electrons with the mean of the four ATODGN
EXPTIME = 600.0
SKY_DN = 40.0  # sky in DN per pixel before the flat (so the flt holds SKY_DN * MEAN_GAIN e-)
EXPSTART = 58923.421632  # 2020-03-15 10:07:09
FILTER = "F606W"

# Photometry: PHTFLAM1 (chip 1) and PHTFLAM2 (chip 2) on an MJD grid; their ratio is constant.
MJD_GRID = np.array([54900.0, 56000.0, 57000.0, 58000.0, 59000.0, 60000.0, 61000.0])
PHTFLAM1 = 1.1183e-19 * (1.0 + 0.0015 * (MJD_GRID - 55000.0) / 1000.0)
PHTRATIO = 1.0135
PHTFLAM2 = PHTFLAM1 * PHTRATIO
PHOTPLAM = 5889.2
PHOTBW = 656.3
PHOTZPT = -21.1

BIAS_BLOCK_DN = 20.0  # a superbias block, DN
DUST_MOTE = 0.85  # flat-field depth of a dust mote

# Reference-image error planes (constant arrays).
BIAS_ERR_DN = 0.1
DARK_ERR = 0.0004  # e-/s
FLAT_ERR = 0.003

# Sink pixels: (extver, raw row, raw column, turn-on MJD, downstream value, upstream values).
# "Downstream" is toward the chip's amplifiers: raw row - 1 for SCI,1 (chip 2, read at the
# bottom), raw row + 1 for SCI,2 (chip 1, read at the top).
SINKS = (
    (1, 1019, 611, 55500.0, -1.0, (999.0, 999.0, 5.0, 999.0)),
    (1, 700, 3500, 56000.0, -1.0, (999.0,)),
    (1, 1500, 1500, 60000.0, -1.0, (999.0, 999.0)),  # turns on after the exposure: never flagged
    (2, 800, 900, 55800.0, -1.0, (999.0, 999.0)),
)


@dataclasses.dataclass(frozen=True)
class BadPixelRow:
    pix1: int
    pix2: int
    length: int
    axis: int
    value: int
    ccdchip: int = -999
    ccdamp: str = "N/A"
    ccdgain: float = -999.0
    applies: bool = True  # whether calwf3 selects the row for this exposure

    def pixels(self):
        """(row, column) pairs, 0-based trimmed coordinates, that the row flags."""
        x0, y0 = self.pix1 - 1, self.pix2 - 1
        if self.axis == 1:
            return [(y0, x) for x in range(x0, x0 + self.length)]
        return [(y, x0) for y in range(y0, y0 + self.length)]


@dataclasses.dataclass
class UvisTruth:
    """Everything the synthesis put in, per imset (extver) where it differs between chips."""

    raw: Path
    superbias: dict  # extver -> raw-shaped DN (float32, as written)
    dark: dict  # extver -> trimmed e-/s (float32)
    flat: dict  # extver -> trimmed (float32)
    sources: dict  # extver -> trimmed expected e- from stars and cosmic rays (float32)
    boxes: dict  # "<name><extver>" -> (extver, y0, y1, x0, x1): trimmed regions with one strong feature each
    bad_pixels: list  # BadPixelRow
    sinks: tuple = SINKS


# ---------------------------------------------------------------------------- the raw
def primary_header(rootname=ROOTNAME):
    """A plausible primary header of a UVIS full-frame raw as the archive serves it (before bestrefs)."""
    expend = EXPSTART + (EXPTIME + 2.0) / 86400.0
    cards = [
        ("NEXTEND", 6, "Number of standard extensions"),
        ("DATE", "2020-03-15", "date this file was written (yyyy-mm-dd)"),
        ("FILENAME", f"{rootname}_raw.fits", "name of file"),
        ("FILETYPE", "SCI", "type of data found in data file"),
        ("TELESCOP", "HST", "telescope used to acquire data"),
        ("INSTRUME", "WFC3", "identifier for instrument used to acquire data"),
        ("EQUINOX", 2000.0, "equinox of celestial coord. system"),
        ("ROOTNAME", rootname, "rootname of the observation set"),
        ("IMAGETYP", "EXT", "type of exposure identifier"),
        ("PRIMESI", "WFC3", "instrument designated as prime"),
        ("TARGNAME", "SYNTHETIC-FIELD", "proposer's target name"),
        ("RA_TARG", 150.1163, "right ascension of the target (deg) (J2000)"),
        ("DEC_TARG", 2.2058, "declination of the target (deg) (J2000)"),
        ("PROPOSID", 99999, "PEP proposal identifier"),
        ("LINENUM", "01.001", "proposal logsheet line number"),
        ("DATE-OBS", "2020-03-15", "UT date of start of observation (yyyy-mm-dd)"),
        ("TIME-OBS", "10:07:09", "UT time of start of observation (hh:mm:ss)"),
        ("EXPSTART", EXPSTART, "exposure start time (Modified Julian Date)"),
        ("EXPEND", expend, "exposure end time (Modified Julian Date)"),
        ("EXPTIME", EXPTIME, "exposure duration (seconds)--calculated"),
        ("TEXPTIME", EXPTIME, "total exposure time (seconds)"),
        ("DARKTIME", EXPTIME, "dark time (seconds)"),
        ("EXPFLAG", "NORMAL", "Exposure interruption indicator"),
        ("PA_V3", 121.3, "position angle of V3-axis of HST (deg)"),
        ("POSTARG1", 0.0, "POSTARG in axis 1 direction"),
        ("POSTARG2", 0.0, "POSTARG in axis 2 direction"),
        ("OPUS_VER", "HSTDP 2020_1", "data processing software system version"),
        ("CAL_VER", "", "CALWF3 code version"),
        ("OBSTYPE", "IMAGING", "observation type - imaging or spectroscopic"),
        ("OBSMODE", "ACCUM", "operating mode"),
        ("CTEIMAGE", "NONE", "type of Charge Transfer Image, if applicable"),
        ("SCLAMP", "NONE", "lamp status, NONE or name of lamp which is on"),
        ("NRPTEXP", 1, "number of repeat exposures in set: default 1"),
        ("SUBARRAY", False, "data from a subarray (T) or full frame (F)"),
        ("DETECTOR", "UVIS", "detector in use: UVIS or IR"),
        ("FILTER", FILTER, "element selected from filter wheel"),
        ("APERTURE", "UVIS", "aperture name"),
        ("PROPAPER", "UVIS", "proposed aperture name"),
        ("DIRIMAGE", "NONE", "direct image for grism or prism exposure"),
        ("CTEDIR", "NONE", "CTE measurement direction: serial or parallel"),
        ("CRSPLIT", 1, "number of cosmic ray split exposures"),
        ("FLASHDUR", 0.0, "Exposure time in seconds: 0.1 to 409.5"),
        ("FLASHCUR", "OFF", "Post flash current (zero, low, medium, high)"),
        ("FLASHLVL", 0, "Post flash requested flash level"),
        ("FLASHSTA", "NOT PERFORMED", "Status: SUCCESSFUL, ABORTED, NOT PERFORMED"),
        ("SHUTRPOS", "A", "Shutter position: A or B"),
        ("CHINJECT", "NONE", "Charge Injection Mode"),
        # Calibration switches: everything calwf3 can do here with the stand-ins below.
        ("DQICORR", "PERFORM", "data quality initialization"),
        ("ATODCORR", "OMIT", "correct for A to D conversion errors"),
        ("BLEVCORR", "PERFORM", "subtract bias level computed from overscan img"),
        ("BIASCORR", "PERFORM", "Subtract bias image"),
        ("FLSHCORR", "OMIT", "post flash correction"),
        ("CRCORR", "OMIT", "combine observations to reject cosmic rays"),
        ("EXPSCORR", "OMIT", "process individual observations after cr-reject"),
        ("SHADCORR", "OMIT", "apply shutter shading correction"),
        ("DARKCORR", "PERFORM", "Subtract dark image"),
        ("FLATCORR", "PERFORM", "flat field data"),
        ("PCTECORR", "OMIT", "cte correction"),
        ("PHOTCORR", "PERFORM", "populate photometric header keywords"),
        ("FLUXCORR", "PERFORM", "scale UVIS2 to match UVIS1 using PHTRATIO"),
        ("DRIZCORR", "OMIT", "drizzle processing"),
        ("CCDAMP", "ABCD", "CCD Amplifier Readout Configuration"),
        ("CCDGAIN", CCDGAIN, "commanded gain of CCD"),
        ("CCDOFSTA", 3, "commanded CCD bias offset for amplifier A"),
        ("CCDOFSTB", 3, "commanded CCD bias offset for amplifier B"),
        ("CCDOFSTC", 3, "commanded CCD bias offset for amplifier C"),
        ("CCDOFSTD", 3, "commanded CCD bias offset for amplifier D"),
    ]
    for amp in "ABCD":
        cards.append((f"ATODGN{amp}", 0.0, f"calibrated gain for amplifier {amp}"))
    for amp in "ABCD":
        cards.append((f"READNSE{amp}", 0.0, f"calibrated read noise for amplifier {amp}"))
    for amp in "ABCD":
        cards.append((f"BIASLEV{amp}", 0.0, f"bias level for amplifier {amp}"))
    # Reference keywords as the archive's raws carry them; bestrefs overwrites those hst_0729 selects.
    # calwf3 refuses a run (exit 115) when one it collects is absent (a blank name), e.g. DFLTFILE.
    for key in ("BPIXTAB", "CCDTAB", "ATODTAB", "OSCNTAB", "BIASFILE", "FLSHFILE", "CRREJTAB", "SHADFILE",
                "DARKFILE", "PFLTFILE", "DFLTFILE", "LFLTFILE", "GRAPHTAB", "COMPTAB", "IMPHTTAB", "IDCTAB",
                "DGEOFILE", "MDRIZTAB", "NPOLFILE", "D2IMFILE", "PCTETAB", "DRKCFILE", "BIACFILE", "SNKCFILE",
                "SATUFILE"):
        cards.append((key, "N/A", "reference file"))
    cards += [
        ("ASN_ID", "NONE", "unique identifier assigned to association"),
        ("ASN_TAB", "NONE", "name of the association table"),
        ("ASN_MTYP", "", "Role of the Member in the Association"),
    ]
    return cards


def _sci_header(chip, rootname):
    h = fits.Header()
    h["ROOTNAME"] = rootname
    h["EXPNAME"] = rootname
    h["BUNIT"] = "COUNTS"
    h["WCSAXES"] = 2
    h["CRPIX1"] = 2048.0 + PRESCAN
    h["CRPIX2"] = 1026.0 + chip.ltv2
    h["CRVAL1"] = 150.1163 + (0.0 if chip.ccdchip == 1 else 0.0011)
    h["CRVAL2"] = 2.2058 + (0.0 if chip.ccdchip == 1 else -0.0225)
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CD1_1"], h["CD1_2"] = -1.02e-5, 9.6e-6
    h["CD2_1"], h["CD2_2"] = 9.3e-6, 1.08e-5
    h["LTV1"] = float(PRESCAN)
    h["LTV2"] = float(chip.ltv2)
    h["LTM1_1"] = 1.0
    h["LTM2_2"] = 1.0
    h["ORIENTAT"] = 41.7
    h["CCDCHIP"] = chip.ccdchip
    h["NCOMBINE"] = 1
    h["CENTERA1"] = 2073
    h["CENTERA2"] = 1035 if chip.ccdchip == 2 else 3086
    h["SIZAXIS1"] = RAW_NX
    h["SIZAXIS2"] = RAW_NY
    h["BINAXIS1"] = 1
    h["BINAXIS2"] = 1
    h["SDQFLAGS"] = 31743
    h["MEANDARK"] = 0.0
    h["MEANBLEV"] = 0.0
    return h


def _in_box(y, x, boxes, margin):
    return any(y0 - margin <= y < y1 + margin and x0 - margin <= x < x1 + margin for (y0, y1, x0, x1) in boxes)


def _add_stamp(image, y, x, flux, sigma, half=10):
    """Add a Gaussian star of total `flux` centred at (y, x) (fractional) to `image`."""
    iy, ix = int(round(y)), int(round(x))
    y0, y1 = max(iy - half, 0), min(iy + half + 1, image.shape[0])
    x0, x1 = max(ix - half, 0), min(ix + half + 1, image.shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    profile = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma * sigma))
    image[y0:y1, x0:x1] += flux * profile / (2 * np.pi * sigma * sigma)


def _sources(rng, keep_out, n_stars=250, n_saturated=2, n_cosmic=1200):
    """Expected electrons of stars and cosmic rays on one trimmed chip, away from the keep-out boxes."""
    image = np.zeros((NY, NX), dtype=np.float32)

    def position(margin):
        while True:
            y, x = rng.uniform(15, NY - 15), rng.uniform(15, NX - 15)
            if not _in_box(y, x, keep_out, margin):
                return y, x

    for flux in np.exp(rng.uniform(np.log(2e3), np.log(4e5), n_stars)):
        _add_stamp(image, *position(25), flux, sigma=1.0)
    for _ in range(n_saturated):  # peak ~1.3e6 e-: well above 65535 DN
        _add_stamp(image, *position(40), 8e6, sigma=1.0, half=14)
    for _ in range(n_cosmic):
        y, x = (int(v) for v in position(8))
        dy, dx = [(0, 1), (1, 0), (1, 1), (1, -1)][rng.integers(4)]
        for step in range(int(rng.integers(1, 5))):
            image[y + step * dy, x + step * dx] += rng.uniform(200, 3000)
    return image


def _normal(rng, sigma, shape):
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _chip_inputs(chip, rng):
    """Superbias, dark, flat and boxes of one chip, each box a region with one known effect."""
    yy, xx = np.ogrid[0:NY, 0:NX]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    if chip.ccdchip == 2:
        boxes = {"hot_dark": (300, 340, 700, 740), "bias_block": (1600, 1640, 2500, 2540),
                 "flat_dip": (1170, 1230, 3070, 3130)}
        hot_rate, mote = 0.25, (1200, 3100, 30)
    else:
        boxes = {"hot_dark": (1500, 1540, 3000, 3040), "bias_block": (400, 440, 1400, 1440),
                 "flat_dip": (1770, 1830, 570, 630)}
        hot_rate, mote = 0.40, (1800, 600, 30)

    superbias = _normal(rng, 0.6, (NY, NX)) + _normal(rng, 0.4, NX)[None, :]
    superbias[:, int(rng.integers(100, AMP_NX - 100))] += 12.0  # a warm bias column
    y0, y1, x0, x1 = boxes["bias_block"]
    superbias[y0:y1, x0:x1] += BIAS_BLOCK_DN

    dark = np.abs(_normal(rng, 0.0004, (NY, NX)))
    dark += np.float32(0.0015) * (1 + np.float32(0.2) * xx / NX)
    hot = rng.choice(NY * NX, 300, replace=False)
    dark.flat[hot] += rng.uniform(0.02, 1.0, hot.size).astype(np.float32)
    y0, y1, x0, x1 = boxes["hot_dark"]
    dark[y0:y1, x0:x1] = hot_rate

    flat = _normal(rng, 0.006, (NY, NX))
    flat += 1 + np.float32(0.03) * (xx / NX - np.float32(0.5)) - np.float32(0.04) * (yy / NY - np.float32(0.5)) ** 2
    cy, cx, radius = mote
    flat[(yy - cy) ** 2 + (xx - cx) ** 2 < radius * radius] *= np.float32(DUST_MOTE)
    return untrim(superbias, chip), dark, flat, boxes


def _sink_keep_out(chip):
    out = []
    for extver, row, col, *_ in SINKS:
        if extver == chip.extver:
            y, x = row - chip.ltv2, trimmed_column(col)
            out.append((y - 6, y + 7, x - 1, x + 2))
    return out


def make_uvis_raw(directory, *, seed=2020, rootname=ROOTNAME):
    """Write <directory>/<rootname>_raw.fits; return the UvisTruth of everything in it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    primary = fits.PrimaryHDU()
    for key, value, comment in primary_header(rootname):
        primary.header[key] = (value, comment)
    hdus = [primary]
    truth = UvisTruth(raw=directory / f"{rootname}_raw.fits", superbias={}, dark={}, flat={}, sources={}, boxes={},
                      bad_pixels=bad_pixel_rows())
    rows = np.arange(RAW_NY, dtype=np.float64)[:, None]
    for chip in CHIPS:
        superbias, dark, flat, boxes = _chip_inputs(chip, rng)
        keep_out = list(boxes.values()) + _sink_keep_out(chip) + [
            (r.pix2 - 3, r.pix2 + 3, r.pix1 - 3, r.pix1 + 3) for r in truth.bad_pixels if r.length == 1]
        sources = _sources(rng, keep_out)
        gain = per_amp(chip, GAIN, shape=(1, NX)).astype(np.float32)
        # Photon and dark-current shot noise (Gaussian: every pixel holds tens of electrons or more).
        electrons = flat * np.float32(SKY_DN) * gain + dark * np.float32(EXPTIME) + sources
        electrons += np.sqrt(electrons) * rng.standard_normal(electrons.shape, dtype=np.float32)
        image = np.empty((RAW_NY, RAW_NX), dtype=np.float32)
        for side, amp in enumerate(chip.amps):
            columns = slice(0, SPLIT) if side == 0 else slice(SPLIT, RAW_NX)
            width = columns.stop - columns.start
            image[:, columns] = (BIAS_LEVEL[amp] + BIAS_SLOPE[amp] * rows).astype(np.float32)
            image[:, columns] += _normal(rng, READNOISE[amp] / GAIN[amp], (RAW_NY, width))
        image += superbias
        electrons /= gain
        rows_in = image[chip.data_rows]
        rows_in[:, PRESCAN:PRESCAN + AMP_NX] += electrons[:, :AMP_NX]
        rows_in[:, RIGHT_DATA:RIGHT_DATA + AMP_NX] += electrons[:, AMP_NX:]
        data = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
        header = _sci_header(chip, rootname)
        hdus.append(fits.ImageHDU(data, header=header, name="SCI", ver=chip.extver))
        for name in ("ERR", "DQ"):
            h = fits.Header()
            h["NPIX1"], h["NPIX2"], h["PIXVALUE"] = RAW_NX, RAW_NY, 0.0
            for key in ("CCDCHIP", "LTV1", "LTV2", "LTM1_1", "LTM2_2", "BINAXIS1", "BINAXIS2"):
                h[key] = header[key]
            if name == "ERR":
                h["BUNIT"] = "COUNTS"
            hdus.append(fits.ImageHDU(None, header=h, name=name, ver=chip.extver))
        truth.superbias[chip.extver] = superbias
        truth.dark[chip.extver] = dark
        truth.flat[chip.extver] = flat
        truth.sources[chip.extver] = sources
        for name, box in boxes.items():
            truth.boxes[f"{name}{chip.extver}"] = (chip.extver, *box)
    fits.HDUList(hdus).writeto(truth.raw, overwrite=True)
    return truth


def bad_pixel_rows():
    """BPIXTAB rows: those calwf3 applies to this exposure, and two it must not (another gain, another CCDAMP)."""
    rng = np.random.default_rng(77)
    rows = [
        BadPixelRow(1201, 1, NY, 2, 4, ccdchip=1),  # a bad column read by amplifier A
        BadPixelRow(3001, 101, 500, 2, 4, ccdchip=1),  # part of a column read by B (raw offset +60)
        BadPixelRow(2101, 999, 40, 1, 4, ccdchip=2),  # a row segment read by D
        BadPixelRow(51, 61, 1, 1, 64),  # a warm pixel on both chips (CCDCHIP wildcard)
        BadPixelRow(501, 1, NY, 2, 8, ccdchip=1, ccdgain=2.0, applies=False),
        BadPixelRow(11, 11, 5, 1, 8, ccdchip=1, ccdamp="A", applies=False),
    ]
    for chip in (1, 2):
        for _ in range(40):
            rows.append(BadPixelRow(int(rng.integers(40, NX - 40)), int(rng.integers(40, NY - 40)), 1, 1, 16,
                                    ccdchip=chip))
    return rows


# ---------------------------------------------------------------------------- references
def _ref_primary(filetype, descrip, **extra):
    primary = fits.PrimaryHDU()
    h = primary.header
    h["INSTRUME"] = "WFC3"
    h["DETECTOR"] = "UVIS"
    h["FILETYPE"] = filetype
    h["PEDIGREE"] = PEDIGREE
    h["DESCRIP"] = descrip
    h["USEAFTER"] = "May 11 2009 00:00:00"
    for key, value in extra.items():
        h[key] = value
    return primary


def _ref_imset(name, chip, data=None, *, shape=None, pixvalue=0.0, ltv=(0.0, 0.0), bunit=None):
    h = fits.Header()
    if data is None:
        h["NPIX1"], h["NPIX2"], h["PIXVALUE"] = shape[1], shape[0], pixvalue
    h["CCDCHIP"] = chip.ccdchip
    h["LTV1"], h["LTV2"] = float(ltv[0]), float(ltv[1])
    h["LTM1_1"], h["LTM2_2"] = 1.0, 1.0
    h["BINAXIS1"], h["BINAXIS2"] = 1, 1
    if bunit:
        h["BUNIT"] = bunit
    return fits.ImageHDU(data, header=h, name=name, ver=chip.extver)


def _image_reference(path, primary, planes, *, err, ltv_raw, bunit):
    """An imset per chip: SCI from planes[extver], constant ERR and DQ."""
    hdus = [primary]
    primary.header["NEXTEND"] = 3 * len(CHIPS)
    for chip in CHIPS:
        sci = planes[chip.extver]
        ltv = (PRESCAN, chip.ltv2) if ltv_raw else (0.0, 0.0)
        hdus.append(_ref_imset("SCI", chip, sci, ltv=ltv, bunit=bunit))
        hdus.append(_ref_imset("ERR", chip, shape=sci.shape, pixvalue=err, ltv=ltv, bunit=bunit))
        hdus.append(_ref_imset("DQ", chip, shape=sci.shape, pixvalue=0, ltv=ltv))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def _table(path, primary, extname, columns, **table_keywords):
    table = fits.BinTableHDU.from_columns(columns, name=extname)
    for key, value in table_keywords.items():
        table.header[key] = value
    fits.HDUList([primary, table]).writeto(path, overwrite=True)


def write_ccdtab(path):
    rows = []
    for ccdchip in (1, 2):
        for gain, scale in ((CCDGAIN, 1.0), (2.0, 1.33), (4.0, 2.6)):  # other gains: rows not to be chosen
            row = {"CCDAMP": "ABCD", "CCDCHIP": ccdchip, "CCDGAIN": gain, "AMPX": AMP_NX, "AMPY": 0,
                   "SATURATE": SATURATE}
            for amp in "ABCD":
                row[f"CCDOFST{amp}"] = 3
                row[f"CCDBIAS{amp}"] = float(CCDBIAS[amp])
                row[f"ATODGN{amp}"] = GAIN[amp] * scale
                row[f"READNSE{amp}"] = READNOISE[amp]
            rows.append(row)

    def column(name, fmt):
        return fits.Column(name=name, format=fmt, array=np.array([r.get(name, 1) for r in rows]))

    columns = [fits.Column(name="CCDAMP", format="8A", array=np.array([r["CCDAMP"] for r in rows])),
               column("CCDCHIP", "I"), column("CCDGAIN", "E"), column("BINAXIS1", "I"), column("BINAXIS2", "I")]
    for stem, fmt in (("CCDOFST", "I"), ("CCDBIAS", "E"), ("ATODGN", "E"), ("READNSE", "E")):
        columns += [column(f"{stem}{amp}", fmt) for amp in "ABCD"]
    columns += [column("AMPX", "I"), column("AMPY", "I"), column("SATURATE", "E"),
                fits.Column(name="PEDIGREE", format="30A", array=np.array([PEDIGREE] * len(rows))),
                fits.Column(name="DESCRIP", format="60A",
                            array=np.array(["synthetic UVIS CCD parameters"] * len(rows)))]
    _table(path, _ref_primary("CCD PARAMETERS", "Synthetic WFC3/UVIS CCD parameters table"), "CCDTAB", columns)


def oscntab_rows():
    rows = []
    for chip in CHIPS:
        virtual = chip.virtual_rows
        vy = (virtual.start + 3, virtual.stop - 2)  # 1-based, inside the parallel virtual overscan
        rows.append({
            "CCDAMP": "ABCD", "CCDCHIP": chip.ccdchip, "BINX": 1, "BINY": 1, "NX": RAW_NX, "NY": RAW_NY,
            "TRIMX1": PRESCAN, "TRIMX2": PRESCAN, "TRIMX3": SERIAL_VIRTUAL, "TRIMX4": SERIAL_VIRTUAL,
            "TRIMY1": chip.trimy[0], "TRIMY2": chip.trimy[1],
            "VX1": PRESCAN + 51, "VX2": PRESCAN + AMP_NX - 50, "VY1": vy[0], "VY2": vy[1],
            "VX3": RIGHT_DATA + 51, "VX4": RIGHT_DATA + AMP_NX - 50, "VY3": vy[0], "VY4": vy[1],
            # 1-based columns: physical prescan (A, B) and serial virtual overscan (C left, D right)
            "BIASSECTA1": 6, "BIASSECTA2": 22, "BIASSECTB1": RAW_NX - 21, "BIASSECTB2": RAW_NX - 5,
            "BIASSECTC1": PRESCAN + AMP_NX + 3, "BIASSECTC2": SPLIT - 2,
            "BIASSECTD1": SPLIT + 3, "BIASSECTD2": RIGHT_DATA - 2,
        })
    return rows


def write_oscntab(path):
    rows = oscntab_rows()
    columns = [fits.Column(name="CCDAMP", format="8A", array=np.array([r["CCDAMP"] for r in rows]))]
    columns += [fits.Column(name=k, format="I", array=np.array([r[k] for r in rows])) for k in rows[0] if k != "CCDAMP"]
    _table(path, _ref_primary("OVERSCAN", "Synthetic WFC3/UVIS overscan table"), "OSCNTAB", columns)


def write_bpixtab(path, rows):
    def column(name, fmt, attr):
        return fits.Column(name=name, format=fmt, array=np.array([getattr(r, attr) for r in rows]))

    columns = [column("PIX1", "I", "pix1"), column("PIX2", "I", "pix2"), column("LENGTH", "I", "length"),
               column("AXIS", "I", "axis"), column("VALUE", "I", "value"), column("CCDCHIP", "I", "ccdchip"),
               column("CCDAMP", "8A", "ccdamp"), column("CCDGAIN", "E", "ccdgain")]
    _table(path, _ref_primary("BAD PIXELS", "Synthetic WFC3/UVIS bad pixel table"), "BPIXTAB", columns,
           SIZAXIS1=NX, SIZAXIS2=NY)


def sink_planes():
    """extver -> raw-shaped sink reference values (0 where nothing is)."""
    planes = {chip.extver: np.zeros((RAW_NY, RAW_NX), dtype=np.float64) for chip in CHIPS}
    for extver, row, col, mjd, downstream, upstream in SINKS:
        toward_amp = -1 if extver == 1 else 1
        plane = planes[extver]
        plane[row, col] = mjd
        plane[row + toward_amp, col] = downstream
        for k, value in enumerate(upstream, start=1):
            plane[row - toward_amp * k, col] = value
    return planes


def write_snkcfile(path):
    hdus = [_ref_primary("SINK PIXELS", "Synthetic WFC3/UVIS sink pixel map", NEXTEND=2 * len(CHIPS))]
    for chip, (extver, plane) in zip(CHIPS, sorted(sink_planes().items())):
        sci = _ref_imset("SCI", chip, plane, ltv=(PRESCAN, chip.ltv2))
        sci.scale("int16", bzero=30000)  # -1 .. 60000 fit 16 bits around 30000
        hdus.append(sci)
        hdus.append(_ref_imset("DQ", chip, shape=plane.shape, pixvalue=0, ltv=(PRESCAN, chip.ltv2)))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def write_imphttab(path):
    modes = {f"wfc3,uvis1,{FILTER.lower()},mjd#": PHTFLAM1, f"wfc3,uvis2,{FILTER.lower()},mjd#": PHTFLAM2}
    values = {
        "PHOTFLAM": list(modes.values()),
        "PHOTPLAM": [np.full(MJD_GRID.size, PHOTPLAM)] * 2,
        "PHOTBW": [np.full(MJD_GRID.size, PHOTBW)] * 2,
        "PHTFLAM1": [PHTFLAM1] * 2,
        "PHTFLAM2": [PHTFLAM2] * 2,
    }
    n = MJD_GRID.size
    hdus = [_ref_primary("PHOTOMETRY", "Synthetic WFC3/UVIS IMPHTTAB", NEXTEND=5, PARNUM=1, PHOTZPT=PHOTZPT,
                         DBTABLE="IMPHTTAB")]
    for quantity, arrays in values.items():
        columns = [
            fits.Column(name="OBSMODE", format="40A", array=np.array(list(modes))),
            fits.Column(name="DATACOL", format="12A", array=np.array([f"{quantity}1"] * 2)),
            fits.Column(name=quantity, format="D", array=np.array([a[0] for a in arrays])),
            fits.Column(name="PEDIGREE", format="30A", array=np.array([PEDIGREE] * 2)),
            fits.Column(name="DESCRIP", format="60A", array=np.array(["synthetic"] * 2)),
            fits.Column(name="NELEM1", format="J", array=np.array([n] * 2)),
            fits.Column(name="PAR1NAMES", format="12A", array=np.array(["mjd#"] * 2)),
            fits.Column(name="PAR1VALUES", format=f"{n}D", array=np.array([MJD_GRID] * 2)),
            fits.Column(name=f"{quantity}1", format=f"{n}D", array=np.array(arrays)),
        ]
        hdus.append(fits.BinTableHDU.from_columns(columns, name=quantity))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def write_references(header, ref_dir, truth):
    """Write every reference calwf3.e opens for this raw under the name `header` (after bestrefs) gives it.

    Returns {keyword: path}. Raises KeyError naming a keyword bestrefs did not set.
    """
    ref_dir = Path(ref_dir)

    def target(keyword):
        value = str(header[keyword]).strip()
        if "$" not in value:
            raise KeyError(f"{keyword}={value!r}: bestrefs selected no reference")
        return ref_dir / value.split("$", 1)[1]

    written = {}
    writers = {
        "CCDTAB": write_ccdtab,
        "OSCNTAB": write_oscntab,
        "BPIXTAB": lambda p: write_bpixtab(p, truth.bad_pixels),
        "SNKCFILE": write_snkcfile,
        "BIASFILE": lambda p: _image_reference(
            p, _ref_primary("BIAS", "Synthetic WFC3/UVIS superbias", CCDAMP="ABCD", CCDGAIN=CCDGAIN),
            truth.superbias, err=BIAS_ERR_DN, ltv_raw=True, bunit="COUNTS"),
        "DARKFILE": lambda p: _image_reference(
            p, _ref_primary("DARK", "Synthetic WFC3/UVIS superdark", CCDAMP="ABCD", CCDGAIN=-1.0),
            truth.dark, err=DARK_ERR, ltv_raw=False, bunit="ELECTRONS/S"),
        "PFLTFILE": lambda p: _image_reference(
            p, _ref_primary("PIXEL-TO-PIXEL FLAT", f"Synthetic WFC3/UVIS {FILTER} flat", FILTER=FILTER,
                            CCDAMP="ABCD"),
            truth.flat, err=FLAT_ERR, ltv_raw=False, bunit="UNITLESS"),
        "IMPHTTAB": write_imphttab,
    }
    for keyword, write in writers.items():
        path = target(keyword)
        write(path)
        written[keyword] = path
    return written


# ---------------------------------------------------------------------------- what calwf3 should make
def subtracted_bias_level(chip, amp):
    """Per raw row, the level BLEVCORR removes from `amp` (DN), as calwf3 3.7.3 computes it.

    The serial fit is accumulated against the trimmed row index but evaluated at the raw row
    index, so on the chip whose data start after TRIMY1 rows the fitted line is shifted by
    TRIMY1 rows (a few hundredths of a DN here).
    """
    rows = np.arange(RAW_NY, dtype=np.float64)
    return BIAS_LEVEL[amp] + BIAS_SLOPE[amp] * (rows + chip.trimy[0])


def expected_flt(chip, raw_sci, truth):
    """(sci, err) in electrons that calwf3 should write for one imset, from the raw pixels and the inputs."""
    data = trim(raw_sci, chip).astype(np.float64)
    rows = np.arange(chip.ltv2, chip.ltv2 + NY)
    level = np.hstack([np.repeat(subtracted_bias_level(chip, amp)[rows][:, None], AMP_NX, axis=1)
                       for amp in chip.amps])
    gain = per_amp(chip, GAIN, shape=(1, NX))
    readnoise = per_amp(chip, READNOISE, shape=(1, NX))
    ccdbias = per_amp(chip, CCDBIAS, shape=(1, NX))
    # ERR is initialised on the raw DN with CCDTAB's default bias (doNoise), then propagated.
    variance = np.maximum((data - ccdbias) * gain, 0.0)
    variance += readnoise ** 2
    variance /= gain ** 2
    variance += BIAS_ERR_DN ** 2 + (DARK_ERR * EXPTIME / gain) ** 2
    sci = data
    sci -= level
    sci -= trim(truth.superbias[chip.extver], chip)
    sci -= truth.dark[chip.extver] * (EXPTIME / gain)
    flat = truth.flat[chip.extver] / MEAN_GAIN  # PFLTFILE divided by the mean gain, as calwf3 does
    flat_err = FLAT_ERR / MEAN_GAIN
    variance /= flat ** 2
    variance += (flat_err * sci / flat ** 2) ** 2
    sci /= flat
    factor = PHTRATIO if chip.ccdchip == 2 else 1.0  # FLUXCORR scales chip 2
    return sci * factor, np.sqrt(variance) * factor


def expected_dq(chip, raw_sci, truth):
    """The DQ calwf3 should write for one imset (trimmed), from the raw pixels and the references."""
    data = trim(raw_sci, chip)
    dq = np.zeros((NY, NX), dtype=np.int32)
    dq[data > SATURATE] |= 256
    dq[data > ATOD_SATURATE] |= 2048
    for row in truth.bad_pixels:
        if row.applies and row.ccdchip in (-999, chip.ccdchip):
            for y, x in row.pixels():
                dq[y, x] |= row.value
    # Sink pixels: active ones, their downstream neighbour, and the upstream trail whose threshold
    # is at least the sink pixel's value after BLEVCORR and BIASCORR (DN).
    level = {amp: subtracted_bias_level(chip, amp) for amp in chip.amps}
    for extver, row, col, mjd, downstream, upstream in truth.sinks:
        if extver != chip.extver or mjd >= EXPSTART:
            continue
        amp = chip.amps[0] if col < SPLIT else chip.amps[1]
        value = float(raw_sci[row, col]) - level[amp][row] - float(truth.superbias[extver][row, col])
        toward_amp = -1 if extver == 1 else 1
        x = trimmed_column(col)
        dq[row - chip.ltv2, x] |= 1024
        if downstream < 0:
            dq[row + toward_amp - chip.ltv2, x] |= 1024
        for k, threshold in enumerate(upstream, start=1):
            if value <= threshold:
                dq[row - toward_amp * k - chip.ltv2, x] |= 1024
    return dq


def blev_tolerance_dn():
    """A 5-sigma bound (DN) on calwf3's error in the bias level it removes from a pixel.

    Per row, BLEVCORR takes the median of an amplifier's serial virtual section (26 columns of
    integer DN with read noise) and fits a line along the 2051 rows: at the ends of the line its
    error is 2/sqrt(2051) of one median's. Across the columns it fits the slope of the medians of
    the parallel virtual box (14 rows x 1948 columns) and removes it relative to the middle of the
    bias section, up to ~2060 columns away. The medians of n values carry sqrt(pi/2) sigma/sqrt(n).
    """
    rn_dn = max(READNOISE[a] / GAIN[a] for a in GAIN)
    sigma = np.hypot(rn_dn, np.sqrt(1.0 / 12.0))  # read noise and the rounding to integer DN
    oscn = oscntab_rows()[0]
    n_serial = oscn["BIASSECTC2"] - oscn["BIASSECTC1"] + 1
    n_rows = oscn["VY2"] - oscn["VY1"]
    n_cols = oscn["VX2"] - oscn["VX1"] + 1
    line_end = np.sqrt(np.pi / 2) * sigma / np.sqrt(n_serial) * 2.0 / np.sqrt(NY)
    reach = (oscn["BIASSECTC1"] + oscn["BIASSECTC2"]) / 2.0 - 1 - PRESCAN  # first data column to the section
    drift = np.sqrt(np.pi / 2) * sigma / np.sqrt(n_rows) / np.sqrt(n_cols ** 3 / 12.0) * abs(reach)
    return 5.0 * float(np.hypot(line_end, drift))


def photflam(chip):
    """PHOTFLAM calwf3 should interpolate for a chip at EXPSTART."""
    return float(np.interp(EXPSTART, MJD_GRID, PHTFLAM1 if chip.ccdchip == 1 else PHTFLAM2))
