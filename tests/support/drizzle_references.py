"""Stand-ins for the distortion references runastrodriz reads (IDCTAB, NPOLFILE, MDRIZTAB).

None of the HRC/SBC files hst_0729 selects is public in small form, so tests write schema-correct
ones under the selected names: an IDCTAB with the column layout of the real WFC table in the
cache (a linear model at the detector's plate scale), a zero NPOLFILE grid, and an MDRIZTAB row
that builds a single _drz file (drizzlepac reads the row for the number of images; build=T asks for
one combined product).
"""

import numpy as np
from astropy.io import fits

from ..conftest import shared_path

PLATE_SCALE = {"HRC": 0.025, "SBC": 0.032}
V2V3_REF = {"HRC": (206.0, 471.0), "SBC": (205.0, 471.5)}


def _name(header, keyword):
    value = str(header.get(keyword, "N/A")).strip()
    return None if value.upper() in ("N/A", "") else value.split("$")[-1]


def make_idctab(path, header):
    """A FORWARD row for chip 1 and the exposure's filters, columns as in the real WFC table.

    Several exposures (filters) may share one IDCTAB name: an existing stand-in gets a row added.
    """
    template = fits.open(shared_path("crds-cache", "references", "hst", "0461802ej_idc.fits"))
    detector = header["DETECTOR"]
    scale = PLATE_SCALE[detector]
    rows = []
    if path.exists():
        with fits.open(path) as old:
            rows = [dict(zip(old[1].columns.names, r)) for r in old[1].data.tolist()]
        if any((r["FILTER1"], r["FILTER2"]) == (header["FILTER1"], header["FILTER2"]) for r in rows):
            return
    row = {c.name: 0 for c in template[1].columns}
    row.update(DETCHIP=1, DIRECTION="FORWARD", FILTER1=header["FILTER1"], FILTER2=header["FILTER2"],
               XSIZE=1024, YSIZE=1024, XREF=512.0, YREF=512.0, V2REF=V2V3_REF[detector][0],
               V3REF=V2V3_REF[detector][1], SCALE=scale, CX11=scale, CY10=scale)
    rows.append(row)
    columns = [fits.Column(name=c.name, format=c.format, array=np.array([r[c.name] for r in rows]))
               for c in template[1].columns]
    primary = fits.PrimaryHDU()
    primary.header.update(INSTRUME="ACS", DETECTOR=detector, NORDER=1, PARITY=-1, FILETYPE="DISTORTION COEFFICIENTS",
                          PEDIGREE="INFLIGHT 01/03/2002", DESCRIP="stand-in linear distortion model",
                          USEAFTER="Mar 01 2002 00:00:00")
    fits.HDUList([primary, fits.BinTableHDU.from_columns(columns)]).writeto(path, overwrite=True)


def make_npolfile(path, header):
    """A zero non-polynomial correction on a 16x16 grid (smaller than the image, as drizzlepac requires)."""
    primary = fits.PrimaryHDU()
    primary.header.update(INSTRUME="ACS", DETECTOR=header["DETECTOR"], FILTER1=header["FILTER1"],
                          FILTER2=header["FILTER2"], FILETYPE="DXY GRID", NEXTEND=2,
                          USEAFTER="Mar 01 2002 00:00:00", PEDIGREE="INFLIGHT 01/03/2002")
    hdus = [primary]
    for name in ("DX", "DY"):
        grid = fits.ImageHDU(np.zeros((16, 16), np.float32), name=name, ver=1)
        grid.header.update(ONAXIS1=1024, ONAXIS2=1024, CDELT1=64, CDELT2=64, CCDCHIP=1)
        hdus.append(grid)
    fits.HDUList(hdus).writeto(path)


def make_mdriztab(path, header):
    """Drizzle parameters for any filter and any number of images; build=T gives one _drz.fits."""
    columns = [
        fits.Column(name="filter", format="24A", array=np.array(["ANY"])),
        fits.Column(name="numimages", format="J", array=np.array([1])),
        fits.Column(name="build", format="L", array=np.array([True])),
        fits.Column(name="driz_sep_kernel", format="24A", array=np.array(["turbo"])),
        fits.Column(name="final_wht_type", format="24A", array=np.array(["EXP"])),
        fits.Column(name="final_kernel", format="24A", array=np.array(["square"])),
        fits.Column(name="final_pixfrac", format="E", array=np.array([1.0])),
    ]
    primary = fits.PrimaryHDU()
    primary.header.update(INSTRUME="ACS", DETECTOR=header["DETECTOR"], FILETYPE="MULTIDRIZZLE PARAMETERS",
                          USEAFTER="Mar 01 2002 00:00:00", PEDIGREE="INFLIGHT 01/03/2002")
    fits.HDUList([primary, fits.BinTableHDU.from_columns(columns)]).writeto(path)


MAKERS = {"IDCTAB": make_idctab, "NPOLFILE": make_npolfile, "MDRIZTAB": make_mdriztab}


def synthesize_drizzle_references(header, ref_dir):
    written = []
    for keyword, maker in MAKERS.items():
        name = _name(header, keyword)
        if name and (keyword == "IDCTAB" or not (ref_dir / name).exists()):
            maker(ref_dir / name, header)
            written.append(ref_dir / name)
    return written
