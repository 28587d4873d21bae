"""Stand-ins for the WFC3/IR references runastrodriz reads (IDCTAB, MDRIZTAB), under the names CRDS selects.

hst_0729 selects for every WFC3/IR exposure here IDCTAB `w3m18525i_idc.fits` (the one IR row of
hst_wfc3_idctab_0254.rmap) and, while DRIZCORR is not OMIT, MDRIZTAB `3562021pi_mdz.fits`;
NPOLFILE and D2IMFILE are N/A for IR (their rmaps have UVIS rows only), and drizzlepac skips a
reference whose value is N/A. Neither file is public in small form, so the tests write
schema-correct ones (the columns and primary keywords of CRDS's own certify templates
wfc3_idc.tpn / wfc3_mdz.tpn, plus what stwcs and drizzlepac read):

- IDCTAB: primary INSTRUME=WFC3, DETECTOR=IR, FILETYPE, NORDER, USEAFTER, PEDIGREE; one table
  with a FORWARD row for DETCHIP 1 per filter in use. WFC3 tables have a single FILTER column
  (not ACS's FILTER1/FILTER2): stwcs (distortion/mutil.readIDCtab) then matches the row's FILTER
  against the primary FILTER and takes FILTER2 as CLEAR. The model is linear: the IR pixels are
  rectangular on the sky, 0.1355" along x and 0.1211" along y (the WFC3 Instrument Handbook's
  0.135 x 0.121, and what the OPUS CD matrices of these raws say), so CX11 and CY10 hold those
  two scales; SCALE, the drizzled output's pixel, is their mean 0.1283". The reference pixel is
  the centre of the 1014x1014 light-sensitive frame; V2REF/V3REF put it near the V1 axis, where
  the IR channel sits, and THETA=45 is the angle between the detector y axis and V3
  (ORIENTAT - PA_V3 of these raws is 44.8 deg).
- MDRIZTAB: drizzle parameters for any filter; one image means no separate drizzle, median, blot
  or cosmic-ray pass (as the archive's tables do for single exposures) and build=T, so that one
  `_drz.fits` comes out. Only A, L, J and E columns (drizzlepac refuses D and I).

    synthesize_wfc3_drizzle_references(headers, ref_dir) -> [paths written]
"""

from pathlib import Path

import numpy as np
from astropy.io import fits

IR_SIZE = 1014  # light-sensitive pixels per axis (1024 with the reference pixels)
X_SCALE, Y_SCALE = 0.1355, 0.1211  # arcsec per pixel along the detector's x and y
PLATE_SCALE = round((X_SCALE + Y_SCALE) / 2, 4)  # 0.1283
V2V3_REF = (-1.019, 0.523)
THETA = 45.0
USEAFTER = "May 11 2009 00:00:00"
PEDIGREE = "INFLIGHT 11/05/2009 11/05/2009"
ORDER_TERMS = [f"{i}{j}" for i in range(1, 6) for j in range(i + 1)]  # 10, 11, 20 ... 55


def reference_name(header, keyword):
    """'iref$w3m18525i_idc.fits' -> 'w3m18525i_idc.fits'; None for N/A, empty or absent."""
    value = str(header.get(keyword, "N/A")).strip()
    return None if value.upper() in ("N/A", "NONE", "") else value.split("$")[-1]


def _primary(filetype, descrip, **extra):
    primary = fits.PrimaryHDU()
    primary.header.update(INSTRUME="WFC3", DETECTOR="IR", FILETYPE=filetype, USEAFTER=USEAFTER,
                          PEDIGREE=PEDIGREE, DESCRIP=descrip, **extra)
    return primary


def make_idctab(path, filters):
    """A linear FORWARD model for chip 1, one row per filter (see the module's text)."""
    filters = sorted(set(filters))
    n = len(filters)
    coefficients = {f"C{axis}{term}": np.zeros(n) for axis in "XY" for term in ORDER_TERMS}
    coefficients["CX11"][:] = X_SCALE
    coefficients["CY10"][:] = Y_SCALE
    columns = [
        fits.Column(name="DETCHIP", format="I", array=np.ones(n, np.int16)),
        fits.Column(name="DIRECTION", format="8A", array=np.array(["FORWARD"] * n)),
        fits.Column(name="FILTER", format="8A", array=np.array(filters)),
        fits.Column(name="XSIZE", format="J", array=np.full(n, IR_SIZE, np.int32)),
        fits.Column(name="YSIZE", format="J", array=np.full(n, IR_SIZE, np.int32)),
        fits.Column(name="XREF", format="D", array=np.full(n, IR_SIZE / 2)),
        fits.Column(name="YREF", format="D", array=np.full(n, IR_SIZE / 2)),
        fits.Column(name="V2REF", format="D", array=np.full(n, V2V3_REF[0])),
        fits.Column(name="V3REF", format="D", array=np.full(n, V2V3_REF[1])),
        fits.Column(name="THETA", format="D", array=np.full(n, THETA)),
        fits.Column(name="SCALE", format="D", unit="arcsec", array=np.full(n, PLATE_SCALE)),
        *(fits.Column(name=name, format="D", array=values) for name, values in coefficients.items()),
    ]
    primary = _primary("DISTORTION COEFFICIENTS", "caldp test stand-in: linear WFC3/IR distortion model",
                       NORDER=1)
    fits.HDUList([primary, fits.BinTableHDU.from_columns(columns)]).writeto(path, overwrite=True)


def make_mdriztab(path):
    """Drizzle parameters for any filter; a single image skips the cosmic-ray passes; build=T."""
    rows = [("ANY", 1, False), ("ANY", 2, True)]  # the last row with numimages <= inputs is chosen
    flag = np.array([r[2] for r in rows])
    columns = [
        fits.Column(name="filter", format="24A", array=np.array([r[0] for r in rows])),
        fits.Column(name="numimages", format="J", array=np.array([r[1] for r in rows], np.int32)),
        fits.Column(name="build", format="L", array=np.ones(len(rows), bool)),
        fits.Column(name="driz_separate", format="L", array=flag),
        fits.Column(name="median", format="L", array=flag),
        fits.Column(name="blot", format="L", array=flag),
        fits.Column(name="driz_cr", format="L", array=flag),
        fits.Column(name="final_wht_type", format="24A", array=np.array(["EXP"] * len(rows))),
        fits.Column(name="final_kernel", format="24A", array=np.array(["square"] * len(rows))),
        fits.Column(name="final_pixfrac", format="E", array=np.ones(len(rows), np.float32)),
        fits.Column(name="final_units", format="24A", array=np.array(["cps"] * len(rows))),
    ]
    primary = _primary("MULTIDRIZZLE PARAMETERS", "caldp test stand-in: WFC3/IR drizzle parameters")
    fits.HDUList([primary, fits.BinTableHDU.from_columns(columns)]).writeto(path, overwrite=True)


def synthesize_wfc3_drizzle_references(headers, ref_dir):
    """Write the IDCTAB (rows for every filter of `headers`) and MDRIZTAB the headers name.

    `headers` are post-bestrefs primary headers of WFC3/IR exposures that may share the names.
    """
    ref_dir = Path(ref_dir)
    written = []
    idctabs, mdriztabs = {}, set()
    for header in headers:
        assert header["INSTRUME"] == "WFC3" and header["DETECTOR"] == "IR", "IR stand-ins only"
        for keyword in ("NPOLFILE", "D2IMFILE"):  # nothing to make: drizzlepac skips N/A
            assert reference_name(header, keyword) is None, f"{keyword}={header[keyword]} needs a stand-in"
        idctab = reference_name(header, "IDCTAB")
        if idctab:
            idctabs.setdefault(idctab, set()).add(str(header["FILTER"]).strip())
        mdriztab = reference_name(header, "MDRIZTAB")
        if mdriztab:
            mdriztabs.add(mdriztab)
    for name, filters in sorted(idctabs.items()):
        make_idctab(ref_dir / name, filters)
        written.append(ref_dir / name)
    for name in sorted(mdriztabs):
        make_mdriztab(ref_dir / name)
        written.append(ref_dir / name)
    return written
