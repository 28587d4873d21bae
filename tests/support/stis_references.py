"""Stand-ins for the STIS/CCD references cs0.e (calstis 3.5.0) reads, and a synthetic CCD spectrum.

None of the STIS/CCD references hst_0729 selects is in ../shared's cache (only APDESTAB 16j16005o
and IDCTAB o8g1508do are, which basic 2-D never opens). What calstis reads from each
(hstcal's pkg/stis/lib/cs1, cs2 are the authority):

- CCDTAB (cs1/getccdtab.c): CCDAMP, CCDGAIN, CCDOFFST, BINAXIS1/2 (an exact match on all five),
  ATODGAIN, CCDBIAS, READNSE (electrons), SATURATE (DN), optional BLEV_CLIP, PEDIGREE, DESCRIP.
  It must exist and must not be DUMMY even when nothing is calibrated.
- BPIXTAB (cs1/dodqi.c): PIX1, PIX2, LENGTH, AXIS, VALUE, OPT_ELEM (rows of another OPT_ELEM are
  skipped); header SIZAXIS1/2. Coordinates are 1-based physical CCD pixels (the raw's
  LTV places them).
- CRREJTAB (cs2/o_cal2_in.c): CRSPLIT, MEANEXP, CRSIGMAS, SKYSUB, CRRADIUS, CRTHRESH, INITGUES,
  SCALENSE (a string, parsed with atof), BADINPDQ, CRMASK. The row: CRSPLIT equal to the number of
  imsets, the smallest MEANEXP >= exposure time / CRSPLIT.
- BIASFILE (DN), DARKFILE (electrons/s; scaled by EXPTIME / ATODGAIN and, for side-2 data, by
  1 + DRK_VS_T * (OCCDHTAV - REF_TEMP)), PFLTFILE and LFLTFILE (multiplied together): one
  SCI/ERR/DQ imset each, trimmed 1024x1024 with LTV=0 (cropped references make BIASCORR,
  DARKCORR and FLATCORR abort). Reference DQ is ORed into the science DQ.

    write_ccdtab(path)                       every amp/gain/binning row, CCDOFFST 3
    write_bpixtab(path, rows)                rows of (PIX1, PIX2, LENGTH, AXIS, VALUE, OPT_ELEM)
    write_crrejtab(path)                     7 CRSPLIT x 6 MEANEXP rows
    SpectrumScene(seed).write_raw(template, path, rootname)
    SpectrumScene(seed).write_references({keyword: path})

SpectrumScene is one synthetic STIS/CCD G430L 52X2 ACCUM observation with CRSPLIT=2 (two
SCI/ERR/DQ imsets, 1062x1044 with overscan, amp D) and the references that calibrate it. It keeps
the truth (the spectrum in DN per exposure, the cosmic rays, the saturated and the flagged pixels)
so that tests can check calstis's flt and crj against it. Everything is seeded: the same seed
gives the same bytes.
"""

import dataclasses
from pathlib import Path

import numpy as np
from astropy.io import fits

PEDIGREE = "INFLIGHT 01/01/2016 01/01/2016"
USEAFTER = "Jan 01 1997 00:00:00"
DESCRIP = "caldp test stand-in: synthetic values with the structure calstis reads"

CCD = 1024  # physical CCD pixels on each axis (the trimmed size of references and products)
# Full-frame raw read through amp D: 19 serial overscan columns on each side, 20 virtual overscan
# rows at the bottom (cs1/findover.c with amp D), so the physical pixel (0, 0) is raw (19, 20).
RAW_NX, RAW_NY = 1062, 1044
LTV1, LTV2 = 19, 20

# CCDTAB values per commanded gain: ATODGAIN, READNSE (e-), CCDBIAS (DN), SATURATE (DN). Plausible
# STIS/CCD numbers, not the real 16j1600do's; calstis uses only the row matching the exposure.
GAINS = {1: (1.000, 4.9, 1380.0, 33000.0), 2: (2.008, 5.6, 1410.0, 33000.0),
         4: (4.016, 7.6, 1480.0, 36000.0), 8: (8.030, 12.0, 1500.0, 18000.0)}
BLEV_CLIP = 5.0

# CRREJTAB: one row per CRSPLIT 2..8 and MEANEXP bin (the real j3m1403io has 42 rows like these).
MEANEXP_BINS = (4.4, 50.0, 200.0, 1000.0, 3000.0, 3.0e5)
CRREJ = dict(CRSIGMAS="6,5,4", SKYSUB="mode", CRRADIUS=1.5, CRTHRESH=0.8, INITGUES="minimum",
             SCALENSE="0.0", BADINPDQ=0, CRMASK=True)

# Data-quality bits (STIS).
DQ_BAD_DETECTOR, DQ_HOT, DQ_SATURATED, DQ_BAD_FLAT, DQ_CR = 4, 16, 256, 512, 8192


def reference_name(value):
    """'oref$x_ccd.fits' -> 'x_ccd.fits'; None for N/A, blank and other values."""
    text = str(value or "").strip()
    if not text.startswith("oref$"):
        return None
    return text.split("$", 1)[1]


# ------------------------------------------------------------------------------ writing helpers
def _primary(filetype, **cards):
    hdu = fits.PrimaryHDU()
    header = hdu.header
    header["TELESCOP"] = "HST"
    header["INSTRUME"] = "STIS"
    header["DETECTOR"] = "CCD"
    header["FILETYPE"] = filetype
    header["USEAFTER"] = USEAFTER
    header["PEDIGREE"] = PEDIGREE
    header["DESCRIP"] = DESCRIP
    for key, value in cards.items():
        header[key] = value
    header["COMMENT"] = "Synthetic reference written by caldp's test suite (tests/support/stis_references.py)."
    return hdu


def _table(primary, columns, rows, **header):
    names = [name for name, _ in columns]
    cols = [fits.Column(name=name, format=fmt, array=[row[i] for row in rows])
            for i, (name, fmt) in enumerate(columns)]
    table = fits.BinTableHDU.from_columns(cols)
    for key, value in header.items():
        table.header[key] = value
    assert table.columns.names == names
    return fits.HDUList([primary, table])


def _image_reference(primary, sci, err, dq, bunit):
    """One SCI/ERR/DQ imset of a trimmed, full-size (LTV=0) reference image."""
    hdus = [primary]
    for name, data in (("SCI", sci.astype(np.float32)), ("ERR", err.astype(np.float32)),
                       ("DQ", dq.astype(np.int16))):
        ext = fits.ImageHDU(data, name=name, ver=1)
        ext.header["BUNIT"] = bunit if name != "DQ" else "UNITLESS"
        for key, value in (("LTV1", 0.0), ("LTV2", 0.0), ("LTM1_1", 1.0), ("LTM2_2", 1.0)):
            ext.header[key] = value
        hdus.append(ext)
    primary.header["NEXTEND"] = 3
    return fits.HDUList(hdus)


def _write(hdul, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdul.writeto(path, overwrite=True, checksum=True)
    return path


# ------------------------------------------------------------------------------ tables
def write_ccdtab(path):
    """CCD parameters for every amp, commanded gain and binning at CCDOFFST 3."""
    rows = []
    for amp in "ABCD":
        for gain, (atodgain, readnse, ccdbias, saturate) in GAINS.items():
            for bin1 in (1, 2, 4):
                for bin2 in (1, 2, 4):
                    rows.append((amp, gain, 3, bin1, bin2, atodgain, ccdbias, readnse, saturate,
                                 BLEV_CLIP, PEDIGREE, DESCRIP))
    columns = [("CCDAMP", "4A"), ("CCDGAIN", "J"), ("CCDOFFST", "J"), ("BINAXIS1", "J"), ("BINAXIS2", "J"),
               ("ATODGAIN", "E"), ("CCDBIAS", "E"), ("READNSE", "E"), ("SATURATE", "E"),
               ("BLEV_CLIP", "E"), ("PEDIGREE", "67A"), ("DESCRIP", "67A")]
    return _write(_table(_primary("CCD PARAMETERS"), columns, rows), path)


def ccd_parameters(ccdgain):
    """(ATODGAIN, READNSE in electrons, CCDBIAS, SATURATE) of the CCDTAB row for `ccdgain`."""
    return GAINS[int(ccdgain)]


def write_bpixtab(path, rows):
    """rows: (PIX1, PIX2, LENGTH, AXIS, VALUE, OPT_ELEM), 1-based physical pixels."""
    columns = [("PIX1", "J"), ("PIX2", "J"), ("LENGTH", "J"), ("AXIS", "J"), ("VALUE", "I"), ("OPT_ELEM", "8A")]
    return _write(_table(_primary("BAD PIXELS"), columns, list(rows), SIZAXIS1=RAW_NX, SIZAXIS2=RAW_NY), path)


def write_crrejtab(path):
    rows = [(crsplit, meanexp, CRREJ["CRSIGMAS"], CRREJ["SKYSUB"], CRREJ["CRRADIUS"], CRREJ["CRTHRESH"],
             CRREJ["INITGUES"], CRREJ["SCALENSE"], CRREJ["BADINPDQ"], CRREJ["CRMASK"])
            for crsplit in range(2, 9) for meanexp in MEANEXP_BINS]
    columns = [("CRSPLIT", "I"), ("MEANEXP", "E"), ("CRSIGMAS", "15A"), ("SKYSUB", "4A"), ("CRRADIUS", "E"),
               ("CRTHRESH", "E"), ("INITGUES", "8A"), ("SCALENSE", "8A"), ("BADINPDQ", "I"), ("CRMASK", "L")]
    return _write(_table(_primary("COSMIC RAY REJECTION"), columns, rows), path)


# ------------------------------------------------------------------------------ the scene
@dataclasses.dataclass(frozen=True)
class CosmicRay:
    imset: int  # 1 or 2
    y: int  # physical (trimmed) row, 0-based
    x: int  # physical column, 0-based
    dn: float


class SpectrumScene:
    """One synthetic G430L/4300 52X2 CRSPLIT=2 exposure pair on amp D at gain 4, and its references.

    Arrays are in physical (trimmed, 1024x1024, 0-based [y, x]) coordinates.
    signal:       the true spectrum, DN per exposure, as calstis's flt should give it back
    superbias:    residual bias after the overscan level, DN
    dark:         electrons per second; dark_hot lists its hot pixels (not flagged anywhere)
    pflt, lflt:   the flats, whose product divides the data
    cosmic_rays:  CosmicRay hits, one imset each; `double_hit` is a pixel hit in both exposures
                  (which rejection of two exposures cannot tell from the source)
    saturated:    (y, x) of a pixel above SATURATE in both exposures
    bad_column:   physical column flagged 4 (bad detector pixel) by BPIXTAB for G430L
    hot_pixel:    (y, x) flagged 16 by BPIXTAB for G430L
    other_element_pixel: (y, x) in a BPIXTAB row for G750L only (must stay unflagged)
    bad_flat:     (y, x) with DQ 512 in the PFLTFILE
    """

    OPT_ELEM, CENWAVE, APERTURE = "G430L", 4300, "52X2"
    CCDAMP, CCDGAIN, CCDOFFST = "D", 4, 3
    EXPTIME = 600.0  # seconds per exposure; CRSPLIT = 2
    OVERSCAN_LEVEL = (1510.3, 1512.8)  # DN per imset: far from CCDBIAS, so BLEVCORR must read the overscan
    OCCDHTAV = 21.37  # side-2 housing temperature (degC)
    REF_TEMP, DRK_VS_T = 18.0, 0.07
    TRACE_ROW = 511.6  # physical row of the spectrum's centre

    def __init__(self, seed=20240611):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.atodgain, self.readnoise, self.ccdbias, self.saturate = ccd_parameters(self.CCDGAIN)
        y, x = np.mgrid[0:CCD, 0:CCD].astype(float)
        # A stellar continuum with absorption lines along the dispersion, a Gaussian across it,
        # and a faint uniform sky filling the 52" slit.
        continuum = 900.0 * np.exp(-0.5 * ((x[0] - 430.0) / 330.0) ** 2) + 60.0
        for centre, depth, width in ((180, 0.6, 3.0), (402, 0.45, 2.0), (655, 0.7, 4.0), (820, 0.3, 2.5)):
            continuum *= 1.0 - depth * np.exp(-0.5 * ((x[0] - centre) / width) ** 2)
        trace_row = self.TRACE_ROW + 0.004 * (x - 512.0)  # a slight tilt
        profile = np.exp(-0.5 * ((y - trace_row) / 1.3) ** 2) / (1.3 * np.sqrt(2 * np.pi))
        self.signal = (continuum[None, :] * profile + 1.5).astype(np.float64)
        self.superbias = (0.8 * np.sin(x / 97.0) * np.cos(y / 131.0) + rng.normal(0.0, 0.3, (CCD, CCD))
                          + np.where(x % 157 == 3, 2.5, 0.0))
        self.dark = np.full((CCD, CCD), 0.012) * (1.0 + 0.1 * rng.standard_normal((CCD, CCD))).clip(0.5)
        hot = rng.integers(40, CCD - 40, size=(25, 2))
        self.dark_hot = [tuple(int(v) for v in p) for p in hot if abs(p[0] - self.TRACE_ROW) > 20]
        for yy, xx in self.dark_hot:
            self.dark[yy, xx] = rng.uniform(0.3, 1.5)
        self.pflt = 1.0 + 0.015 * rng.standard_normal((CCD, CCD)).clip(-4, 4)
        self.lflt = 1.0 + 0.02 * ((x - 512.0) / 512.0) - 0.015 * ((y - 512.0) / 512.0) ** 2
        self.saturated = (700, 300)
        self.bad_column = 840
        self.hot_pixel = (260, 610)
        self.other_element_pixel = (300, 150)
        self.bad_flat = (450, 720)
        # Cosmic rays: 150 per exposure, some on the trace, none within 3 pixels of another, of the
        # edges or of the special pixels; plus one pixel hit in both exposures.
        self.double_hit = (880, 95)
        taken = {self.saturated, self.hot_pixel, self.other_element_pixel, self.bad_flat, self.double_hit}
        rays = []
        for imset in (1, 2):
            placed = 0
            while placed < 150:
                if placed < 20:  # on the spectrum
                    yy = int(round(self.TRACE_ROW)) + int(rng.integers(-2, 3))
                    xx = int(rng.integers(20, CCD - 20))
                else:
                    yy, xx = (int(v) for v in rng.integers(10, CCD - 10, size=2))
                if xx == self.bad_column or any(abs(yy - a) <= 3 and abs(xx - b) <= 3 for a, b in taken):
                    continue
                taken.add((yy, xx))
                rays.append(CosmicRay(imset, yy, xx, float(rng.uniform(400.0, 4000.0))))
                placed += 1
        self.cosmic_rays = tuple(rays)

    # ------------------------------------------------------------------ derived values
    @property
    def dark_factor(self):
        """calstis's side-2 temperature scaling of the dark (cs1/dodark.c CCDFactor)."""
        return 1.0 + self.DRK_VS_T * (self.OCCDHTAV - self.REF_TEMP)

    @property
    def flat(self):
        return self.pflt * self.lflt

    def dark_dn(self, exptime=None):
        """The dark calstis subtracts, DN: dark * exptime * factor / atodgain."""
        return self.dark * (exptime or self.EXPTIME) * self.dark_factor / self.atodgain

    def rays(self, imset):
        return [r for r in self.cosmic_rays if r.imset == imset]

    def bpix_rows(self):
        """BPIXTAB rows (1-based physical coordinates)."""
        (hy, hx), (oy, ox) = self.hot_pixel, self.other_element_pixel
        return [
            (self.bad_column + 1, 1, CCD, 2, DQ_BAD_DETECTOR, self.OPT_ELEM),
            (hx + 1, hy + 1, 1, 1, DQ_HOT, self.OPT_ELEM),
            (ox + 1, oy + 1, 1, 1, DQ_HOT, "G750L"),
        ]

    # ------------------------------------------------------------------ the raw
    def exposure(self, imset):
        """The full raw frame (RAW_NY, RAW_NX) in DN for imset 1 or 2, as uint16."""
        rng = np.random.default_rng([self.seed, imset])
        electrons = rng.poisson(self.signal * self.flat * self.atodgain + self.dark * self.EXPTIME * self.dark_factor)
        physical = electrons / self.atodgain + self.superbias
        for ray in self.rays(imset):
            physical[ray.y, ray.x] += ray.dn
        yy, xx = self.double_hit
        physical[yy, xx] += 2500.0
        level = self.OVERSCAN_LEVEL[imset - 1]
        frame = level + rng.normal(0.0, self.readnoise / self.atodgain, (RAW_NY, RAW_NX))
        frame[LTV2:LTV2 + CCD, LTV1:LTV1 + CCD] += physical
        sy, sx = self.saturated
        frame[LTV2 + sy, LTV1 + sx] = self.saturate + 4000.0
        return np.clip(np.rint(frame), 0, 65535).astype(np.uint16)

    def write_raw(self, template, path, rootname):
        """A raw file for `rootname` built on a real STIS raw's headers (`template`)."""
        with fits.open(template) as real:
            primary = real[0].header.copy()
            sci_header = real["SCI", 1].header.copy()
            err_header = real["ERR", 1].header.copy()
            dq_header = real["DQ", 1].header.copy()
        texptime = 2 * self.EXPTIME
        start = float(sci_header["EXPSTART"])
        primary.update({
            "FILENAME": f"{rootname}_raw.fits", "ROOTNAME": rootname, "NEXTEND": 6,
            "OBSTYPE": "SPECTROSCOPIC", "OBSMODE": "ACCUM", "SUBARRAY": False, "DETECTOR": "CCD",
            "OPT_ELEM": self.OPT_ELEM, "CENWAVE": self.CENWAVE, "APERTURE": self.APERTURE,
            "PROPAPER": self.APERTURE, "APER_FOV": "52x2", "FILTER": "Clear", "CRSPLIT": 2, "NRPTEXP": 1,
            "CCDAMP": self.CCDAMP, "CCDGAIN": self.CCDGAIN, "CCDOFFST": self.CCDOFFST,
            "CENTERA1": 532, "CENTERA2": 523, "SIZAXIS1": RAW_NX, "SIZAXIS2": RAW_NY,
            "BINAXIS1": 1, "BINAXIS2": 1, "TEXPTIME": texptime, "TEXPSTRT": start,
            "TEXPEND": start + (texptime + 60.0) / 86400.0, "WAVECAL": "N/A", "ASN_ID": "NONE", "ASN_TAB": "",
            "STATFLAG": True, "SCLAMP": "NONE",
        })
        for switch in ("DQICORR", "BLEVCORR", "BIASCORR", "DARKCORR", "FLATCORR", "CRCORR", "EXPSCORR"):
            primary[switch] = "PERFORM"
        # Everything that needs a wavecal or references outside basic 2-D (cs0.e 3.5.0 segfaults
        # without the wavecal).
        for switch in ("RPTCORR", "ATODCORR", "SHADCORR", "PHOTCORR", "GEOCORR", "WAVECORR", "X1DCORR",
                       "X2DCORR", "SC2DCORR", "BACKCORR", "HELCORR", "DISPCORR", "FLUXCORR", "CTECORR",
                       "SGEOCORR", "DOPPCORR", "LORSCORR", "GLINCORR", "LFLGCORR"):
            primary[switch] = "OMIT"
        for key in ("PKSEARCH", "PEAKCENT", "NUMSTEPS", "PEAKSTEP", "PEDESTAL", "CRELIM", "CCDBIASS", "BIASLEV",
                    "CRDS_CTX", "CRDS_VER"):
            primary.remove(key, ignore_missing=True)
        hdus = [fits.PrimaryHDU(header=primary)]
        for imset in (1, 2):
            begin = start + (imset - 1) * (self.EXPTIME + 60.0) / 86400.0
            geometry = {"LTV1": float(LTV1), "LTV2": float(LTV2), "LTM1_1": 1.0, "LTM2_2": 1.0,
                        "CRPIX1": 512.0 + LTV1, "CRPIX2": 512.0 + LTV2, "CD1_1": 2.746, "CD2_2": 1.41056e-05}
            sci = fits.ImageHDU(self.exposure(imset), header=_strip(sci_header), name="SCI", ver=imset)
            sci.header.update({"EXPNAME": rootname, "ROOTNAME": rootname, "ASN_MTYP": "SCIENCE",
                               "EXPTIME": self.EXPTIME, "EXPSTART": begin,
                               "EXPEND": begin + self.EXPTIME / 86400.0, "OCCDHTAV": self.OCCDHTAV,
                               "NCOMBINE": 1, **geometry})
            hdus.append(sci)
            for name, header in (("ERR", err_header), ("DQ", dq_header)):
                ext = fits.ImageHDU(None, header=_strip(header), name=name, ver=imset)
                ext.header.update({"EXPNAME": rootname, "ROOTNAME": rootname, "NPIX1": RAW_NX, "NPIX2": RAW_NY,
                                   "PIXVALUE": 0.0, **geometry})
                hdus.append(ext)
        return _write(fits.HDUList(hdus), path)

    # ------------------------------------------------------------------ the references
    def write_references(self, names):
        """Write the stand-ins: `names` maps CCDTAB, BPIXTAB, CRREJTAB, BIASFILE, DARKFILE, PFLTFILE and
        LFLTFILE (those that are present) to the paths bestrefs selects. Returns the paths written."""
        rng = np.random.default_rng([self.seed, 99])
        written = {}
        modes = dict(CCDAMP=self.CCDAMP, CCDGAIN=self.CCDGAIN, BINAXIS1=1, BINAXIS2=1)
        for keyword, path in names.items():
            if keyword == "CCDTAB":
                written[keyword] = write_ccdtab(path)
            elif keyword == "BPIXTAB":
                written[keyword] = write_bpixtab(path, self.bpix_rows())
            elif keyword == "CRREJTAB":
                written[keyword] = write_crrejtab(path)
            elif keyword == "BIASFILE":
                err = np.full((CCD, CCD), 0.3)
                written[keyword] = _write(_image_reference(
                    _primary("CCD BIAS IMAGE", CCDOFFST=self.CCDOFFST, **modes),
                    self.superbias, err, np.zeros((CCD, CCD)), "COUNTS"), path)
            elif keyword == "DARKFILE":
                err = 0.002 + 0.05 * self.dark
                written[keyword] = _write(_image_reference(
                    _primary("DARK IMAGE", REF_TEMP=self.REF_TEMP, DRK_VS_T=self.DRK_VS_T, **modes),
                    self.dark, err, np.zeros((CCD, CCD)), "ELECTRONS/S"), path)
            elif keyword == "PFLTFILE":
                dq = np.zeros((CCD, CCD))
                dq[self.bad_flat] = DQ_BAD_FLAT
                err = np.full((CCD, CCD), 0.004) * (1 + 0.1 * rng.random((CCD, CCD)))
                written[keyword] = _write(_image_reference(
                    _primary("PIXEL-TO-PIXEL FLAT", OPT_ELEM=self.OPT_ELEM, CENWAVE=self.CENWAVE, **modes),
                    self.pflt, err, dq, "UNITLESS"), path)
            elif keyword == "LFLTFILE":
                written[keyword] = _write(_image_reference(
                    _primary("LOW-ORDER FLAT", OPT_ELEM=self.OPT_ELEM, CENWAVE=self.CENWAVE, **modes),
                    self.lflt, np.zeros((CCD, CCD)), np.zeros((CCD, CCD)), "UNITLESS"), path)
        return written


def _strip(header):
    """An extension header without the structural and scaling cards astropy writes itself."""
    header = header.copy()
    for key in ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "BSCALE", "BZERO",
                "EXTNAME", "EXTVER", "DATAMIN", "DATAMAX"):
        header.remove(key, ignore_missing=True, remove_all=True)
    return header


REFERENCE_KEYWORDS = ("CCDTAB", "BPIXTAB", "CRREJTAB", "BIASFILE", "DARKFILE", "PFLTFILE", "LFLTFILE")
