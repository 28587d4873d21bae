"""The SPT file of a combined product: the first member's SPT primary header plus every
member's extensions (calacs.e's SPT step for acssum, acsrej and the dither product)."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from ...hstfile import put_card, rootname


def make_product_spt(inputs: list[Path], output: Path, memtype: str) -> list[str]:
    """The product's SPT file: first member's SPT primary header plus every member's UDL."""
    out_spt = output.with_name(rootname(output.name) + "_spt.fits")
    if out_spt.exists():
        return []
    lines, found = [], []
    for path in inputs:
        spt = path.with_name(rootname(path.name) + "_spt.fits")
        if spt.is_file():
            found.append(spt)
        else:
            lines.append(f'Warning    Can\'t find input file "{spt.name}"')
    if not found:
        return lines
    with fits.open(found[0]) as hdul:
        primary = hdul[0].header.copy()
    spt_root = rootname(out_spt.name).upper()
    put_card(primary, "FILENAME", out_spt.name, "")
    put_card(primary, "ASN_MTYP", memtype, "Role of the Exposure in the Association")
    put_card(primary, "ROOTNAME", spt_root, "")
    put_card(primary, "OBSERVTN", spt_root[6:9], "")
    put_card(primary, "NEXTEND", len(inputs), "")
    hdus = [fits.PrimaryHDU(header=primary)]
    for spt in found:
        with fits.open(spt) as hdul:
            for hdu in hdul[1:]:
                copy = hdu.copy()
                copy.header["EXTVER"] = len(hdus)
                hdus.append(copy)
    fits.HDUList(hdus).writeto(out_spt)
    lines += [
        f"Created output SPT rootname {out_spt.name}...",
        f"Updated output SPT file to reflect {len(inputs)} extensions...",
    ]
    return lines
