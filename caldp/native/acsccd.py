"""The ACSCCD stage: DQICORR, BIASCORR, electrons, BLEVCORR, saturation, errors.

The order, messages and header updates follow calacs.e's DoCCD; the array
work is done by the step functions in ccd.py, overscan.py and postsm4.py.
The stage ends with trimmed imsets in memory (calacs.e's ``_blv_tmp``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from . import ccd, fitsread, overscan, postsm4, sink
from .bookkeeping import (COMPLETE, DUMMY, IGNORED, OMIT, PERFORM, add_history, put_float, put_int,
                          put_str, ref_history, shown_state, to_short, update_switch)
from .errors import CalibrationError
from .exposure import (ExposureInfo, Switches, known_reference, raise_missing, reference,
                       require_ccdtab, step_state)
from .imageio import Exposure, Imset
from .refs import (RefFile, RefSet, corner_and_bin, cut_reference, find_alignment, find_chip_extver,
                   read_ref_image)
from .tables import CCDParams, OverscanLayout, read_bpixtab, read_ccdtab, read_oscntab
from .trailer import Trailer


@dataclass
class ImsetInfo:
    """Extension-header values calacs.e reads per imset (GetACSGrp)."""

    chip: int
    sdqflags: int
    ltv: tuple[float, float]
    ltm: tuple[float, float]
    ncombine: int

    @classmethod
    def from_header(cls, hdr: fits.Header) -> "ImsetInfo":
        ncombine = int(hdr.get("NCOMBINE", 1))
        return cls(chip=int(hdr.get("CCDCHIP", 1)),
                   sdqflags=to_short(hdr.get("SDQFLAGS", 65535)),
                   ltv=(float(hdr.get("LTV1", 0.0)), float(hdr.get("LTV2", 0.0))),
                   ltm=(float(hdr.get("LTM1_1", 1.0)), float(hdr.get("LTM2_2", 1.0))),
                   ncombine=max(ncombine, 1))


def ccd_parameters(refs: RefSet, info: ExposureInfo, chip: int, nx: int) -> CCDParams:
    return read_ccdtab(refs["CCDTAB"], info.ccdamp, info.ccdgain, chip, info.ccdofst, nx)


def write_amp_keywords(primary: fits.Header, params: CCDParams) -> None:
    for k, amp in enumerate("ABCD"):
        put_float(primary, f"ATODGN{amp}", params.atodgain[k])
    for k, amp in enumerate("ABCD"):
        put_float(primary, f"READNSE{amp}", params.readnoise[k])


def ccdtab_message(trailer: Trailer, primary: fits.Header, ref: RefFile, history: bool) -> None:
    trailer.message("\n")
    trailer.refinfo("ccdtab", ref.name, ref.pedigree, ref.descrip, ref.descrip2)
    if history:
        add_history(primary, "CCD parameters table: ")
        ref_history(primary, ref, table=True)


def noise_message(trailer: Trailer, params: CCDParams, bias_levels: bool, indent: str) -> None:
    def joined(values):
        parts = ["%.5g," % v for v in values[:3] if v > 0]
        if values[3] > 0:
            parts.append("%.5g" % values[3])
        return "".join(parts)

    trailer.message(f"{indent}Uncertainty array initialized,")
    trailer.message("    readnoise =" + joined(params.readnoise))
    trailer.message("    gain =" + joined(params.atodgain))
    if bias_levels:
        levels = [float(np.float32(b) * np.float32(g)) if b > 0 else 0.0
                  for b, g in zip(params.ccdbias, params.atodgain)]
        trailer.message("   default bias levels =" + joined(levels))


def begin_stage(trailer: Trailer, label: str, version: str, exposure: Exposure,
                info: ExposureInfo, output_name: str) -> None:
    """The opening lines of ACSCCD's and ACS2D's trailer sections."""
    trailer.begin(label, version)
    trailer.filename("input", exposure.path.name)
    trailer.filename("output", output_name)
    trailer.message(f"Trying to open {exposure.path.name}...\n"
                    f"Read in Primary header from {exposure.path.name}...")
    trailer.message(f"APERTURE {info.aperture}\nFILTER1 {info.filter1}\n"
                    f"FILTER2 {info.filter2}\nDETECTOR {info.detector}")


def flag_bad_pixels(dq: np.ndarray, bpix: RefFile, info: ExposureInfo, g: ImsetInfo,
                    trailer: Trailer) -> np.ndarray:
    """DQICORR's BPIXTAB flags for one imset (with calacs.e's place-holder message)."""
    rows = read_bpixtab(bpix, info.ccdamp, info.ccdgain, g.chip)
    ltv0 = (g.ltv[0] + g.ltm[0] - 1.0, g.ltv[1] + g.ltm[1] - 1.0)
    dq, placeholder = ccd.apply_bad_pixel_table(dq, rows, ltv0)
    if placeholder:
        trailer.warn("No rows from BPIXTAB applied to DQ array.")
        trailer.message("Inserting single-pixel DQ place-holder at (1,1).")
    return dq


def dqicorr_history(primary: fits.Header, bpix: RefFile | None, saturation_checked: bool) -> None:
    """Mark DQICORR done (SKIPPED for a dummy BPIXTAB) and add its HISTORY lines."""
    bpix_exists = bpix is not None and bpix.exists
    if update_switch(primary, "DQICORR", DUMMY if (bpix_exists and bpix.dummy) else PERFORM):
        if saturation_checked:
            add_history(primary, "  values checked for saturation")
        if bpix_exists:
            add_history(primary, "  DQ array initialized ...")
            ref_history(primary, bpix, table=True)


def image_refinfo(trailer: Trailer, ref: RefFile) -> None:
    """The trailer lines naming an image reference: name, PEDIGREE, DESCRIP."""
    trailer.refinfo(ref.keyword.lower(), ref.name, ref.pedigree, ref.descrip)


def image_step_history(primary: fits.Header, key: str, flag: str, ref: RefFile) -> None:
    """UpdateSwitch, then the reference's HISTORY unless the step was IGNORED."""
    if update_switch(primary, key, flag) and flag != IGNORED:
        ref_history(primary, ref, table=False)


def run_ccd_stage(exposure: Exposure, info: ExposureInfo, sw: Switches, refs: RefSet,
                  env: dict[str, str] | None, trailer: Trailer, version: str,
                  output_name: str) -> Exposure:
    """Run ACSCCD on every imset; returns the trimmed exposure (blv_tmp)."""
    primary = exposure.primary
    begin_stage(trailer, "ACSCCD", version, exposure, info, output_name)

    # -- GetACSFlags: states and the references ACSCCD itself insists on.
    missing: list[str] = []
    ccdtab = known_reference(refs, primary, "CCDTAB", env)
    require_ccdtab(ccdtab, missing)
    oscntab = known_reference(refs, primary, "OSCNTAB", env)
    if not oscntab.exists and oscntab.given:
        missing.append(f"OSCNTAB `{oscntab.name}'")
    dqi = OMIT
    if sw.perform("DQICORR"):
        bpix = known_reference(refs, primary, "BPIXTAB", env)
        if not bpix.exists and bpix.given:
            missing.append(f"BPIXTAB `{bpix.name}'")
        dqi = step_state(sw, "DQICORR", bpix)
    bias = OMIT
    satufile = None
    if sw.perform("BIASCORR"):
        biasfile = known_reference(refs, primary, "BIASFILE", env)
        if not biasfile.exists:
            missing.append(f"BIASFILE `{biasfile.name}'")
        bias = step_state(sw, "BIASCORR", biasfile)
        satufile = refs.add(reference(primary, "SATUFILE", env))
        if not satufile.exists:
            missing.append(f"SATUFILE `{satufile.name}'")
    sink_state = OMIT
    if sw.perform("SINKCORR"):
        snkcfile = refs.add(reference(primary, "SNKCFILE", env))
        if not snkcfile.exists:
            missing.append(f"SNKCFILE `{snkcfile.name}'")
        sink_state = step_state(sw, "SINKCORR", snkcfile)
    blev = OMIT
    if sw.perform("BLEVCORR"):
        blev = DUMMY if (oscntab.exists and oscntab.dummy) else PERFORM
    for item in missing:
        trailer.warn(f"{item} not found or can't open.")
    raise_missing(missing)
    if not oscntab.exists:
        raise CalibrationError(f"OSCNTAB `{oscntab.name}' not found.")

    # The stage takes the raw arrays over, so a full WFC frame is not held twice.
    imsets = exposure.imsets
    exposure.imsets = []
    ginfo = [ImsetInfo.from_header(im.sci_hdr) for im in imsets]
    params = [ccd_parameters(refs, info, g.chip, im.shape[1]) for g, im in zip(ginfo, imsets)]
    for k, p in enumerate(params):
        if p.row_dummy:
            trailer.warn(f"Row of CCDTAB for imset {k + 1} is DUMMY.")
    write_amp_keywords(primary, params[0])
    ccdtab_message(trailer, primary, ccdtab, history=True)

    layouts = [read_oscntab(oscntab, info.ccdamp, g.chip, im.shape[1], im.shape[0])
               for g, im in zip(ginfo, imsets)]
    for layout in layouts:
        if not layout.found:
            trailer.warn("Could not find appropriate row from OSCNTAB.")

    # -- DQICORR ------------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("dqicorr", shown_state(dqi))
    if dqi != OMIT and refs.get("BPIXTAB") is not None:
        b = refs["BPIXTAB"]
        trailer.refinfo("dqitab", b.name, b.pedigree, b.descrip, b.descrip2)
    work = []
    for g, p, im in zip(ginfo, params, imsets):
        dq = im.dq
        if dqi in (PERFORM, DUMMY):
            dq = ccd.flag_atod_saturation(im.sci, dq, p.atod_saturate)
            bpix = refs.get("BPIXTAB")
            if dqi == PERFORM and bpix is not None and bpix.exists:
                dq = flag_bad_pixels(dq, bpix, info, g, trailer)
        work.append(im.replace(dq=dq))
    # Drop every reference to superseded arrays: a WFC chip is 85 MB.
    im = dq = imsets = None
    trailer.switch("dqicorr", COMPLETE)
    if dqi != OMIT:
        dqicorr_history(primary, refs.get("BPIXTAB"), saturation_checked=True)

    # -- BIASCORR -----------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("biascorr", shown_state(bias))
    if bias != OMIT:
        image_refinfo(trailer, refs["BIASFILE"])
    if bias == PERFORM:
        for k, (g, im) in enumerate(zip(ginfo, work)):
            ref = read_ref_image(refs["BIASFILE"], g.chip)
            align = find_alignment(im.sci_hdr, im.shape, ref.header, ref.sci.shape)
            cut = cut_reference(ref, align, im.shape, "biascorr")
            sci, err, dq = ccd.subtract_bias(im.sci, im.err, im.dq, cut.sci, cut.err, cut.dq)
            work[k] = im.replace(sci=sci, err=err, dq=dq)
            del ref, cut, im, sci, err, dq      # a full-frame bias is large
    trailer.switch("biascorr", COMPLETE)
    if bias != OMIT:
        image_step_history(primary, "BIASCORR", bias, refs["BIASFILE"])

    # -- conversion to electrons ---------------------------------------------------
    layouts_amp = []
    for k, (g, p, im) in enumerate(zip(ginfo, params, work)):
        amp = ccd.amp_layout(info.detector, g.chip, p.ampx, p.ampy, p.atodgain, p.readnoise,
                             im.shape, g.ltv)
        layouts_amp.append(amp)
        sci, err = ccd.convert_to_electrons(im.sci, im.err, amp)
        put_str(im.sci_hdr, "BUNIT", "ELECTRONS")
        put_str(im.err_hdr, "BUNIT", "ELECTRONS")
        work[k] = im.replace(sci=sci, err=err)
    im = sci = err = None

    # -- BLEVCORR -------------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("blevcorr", shown_state(blev))
    if blev != OMIT:
        trailer.refinfo("oscntab", oscntab.name, oscntab.pedigree, oscntab.descrip)
    blev_levels = [0.0] * 4
    trimmed = [False] * len(work)
    done = False
    driftcorr = False
    if blev == PERFORM:
        done, driftcorr = _blevcorr(work, ginfo, params, layouts, info, trailer, blev_levels,
                                    trimmed, primary)
    if blev != OMIT:
        put_str(primary, "BLEVCORR", COMPLETE)
        add_history(primary, "BLEVCORR complete; bias level from overscan was subtracted."
                    if done else "BLEVCORR complete, but default bias level was subtracted.")
        add_history(primary, "BLEVCORR includes correction for drift along lines."
                    if driftcorr else "BLEVCORR does not include correction for drift along lines.")
        add_history(primary, "  Overscan region table: ")
        ref_history(primary, oscntab, table=True)

    # -- DARKTIME ---------------------------------------------------------------------
    darktime, offset, note = ccd.compute_darktime(
        info.darktime, info.expstart, info.subarray, info.aperture, info.flashdur,
        info.flashstatus, params[0].overhead_unflashed, params[0].overhead_postflashed)
    if note:
        trailer.message(note)
    trailer.message(f"DARKTIME from SCI header: {np.float32(info.darktime):f}  Offset from CCDTAB: "
                    f"{offset:f}  Final DARKTIME: {darktime:f}")
    put_float(primary, "DARKTIME", darktime)

    # -- full-well saturation ---------------------------------------------------------
    for k, (g, im) in enumerate(zip(ginfo, work)):
        if bias == PERFORM and blev == PERFORM:
            trailer.message(f"\nFull-well saturation flagging being performed for imset {k + 1}.\n")
            work[k] = im.replace(dq=_full_well(im, g, refs["SATUFILE"], layouts[k], trailer))
        else:
            trailer.warn(f"\nNo Full-well saturation flagging being performed for imset {k + 1}.\n")
    im = None

    # -- error array ------------------------------------------------------------------
    readnoise_only = info.targname.startswith("BIAS")
    for k, (p, im) in enumerate(zip(params, work)):
        if im.sci_hdr.get("NCOMBINE", 1) and int(im.sci_hdr.get("NCOMBINE", 1)) > 1:
            trailer.warn("NCOMBINE > 1 before the error array was initialized.")
        err = ccd.init_ccd_errors(im.sci, im.err, layouts_amp[k], readnoise_only)
        work[k] = im.replace(err=err)
    im = err = None
    add_history(primary, "Uncertainty array initialized.")
    trailer.message("")
    noise_message(trailer, params[0], bias_levels=True, indent="    ")

    # -- SINKCORR (WFC sink pixels, on the untrimmed frame) ------------------------
    trailer.message("\n")
    trailer.switch("sinkcorr", shown_state(sink_state))
    if sink_state != OMIT:
        image_refinfo(trailer, refs["SNKCFILE"])
    if sink_state == PERFORM:
        for k, (g, im) in enumerate(zip(ginfo, work)):
            work[k] = im.replace(dq=_sink(im, g, refs["SNKCFILE"]))
        im = None
        trailer.switch("sinkcorr", COMPLETE)
    if sink_state != OMIT:
        image_step_history(primary, "SINKCORR", sink_state, refs["SNKCFILE"])

    # -- output: trim what BLEVCORR allows -------------------------------------------
    out = []
    for k, (im, layout) in enumerate(zip(work, layouts)):
        if trimmed[k]:
            out.append(_trim(im, layout))
        else:
            out.append(im)
    if "BIASLEVA" in primary:
        for k, amp in enumerate("ABCD"):
            if blev_levels[k] != 0.0:
                put_float(primary, f"BIASLEV{amp}", blev_levels[k], "mean of amp's bias level")
    else:
        trailer.message("  NO bias level keywords found to be updated.\n"
                        "  Reporting values in trailer file only!")
    trailer.message("\n")
    trailer.end("ACSCCD")
    return Exposure(path=exposure.path, primary=primary, imsets=out)


def _blevcorr(work, ginfo, params, layouts, info, trailer, blev_levels, trimmed, primary):
    """performBlevCorr: choose the post-SM4 path or the classic overscan fit."""
    done = False
    driftcorr = False
    wfc_post_sm4 = info.detector == "WFC" and info.expstart >= ccd.SM4MJD
    ds_gain2 = info.jwrotype == "DS_INT" and info.ccdgain == 2
    if wfc_post_sm4 and not info.subarray:
        if len(work) == 2 and all(l.found for l in layouts):
            trailer.switch("blevcorr", PERFORM)
            res = postsm4.full_frame_blevcorr(work[0].sci, work[1].sci, bias_shift=ds_gain2)
            trailer.extend(res.messages)
            for k in range(2):
                work[k] = work[k].replace(sci=res.chips[k])
                put_float(work[k].sci_hdr, "MEANBLEV", res.meanblev[k],
                          "mean of bias levels subtracted in electrons")
                trimmed[k] = True
            for k in range(4):
                blev_levels[k] += res.blev[k]
            for line in res.history:
                add_history(primary, line)
            trailer.switch("blevcorr", COMPLETE)
            return True, False
        trailer.message("Overscan missing, no destriping or bias level subtraction possible "
                        "for full frame data.")
        return False, False
    if wfc_post_sm4 and info.subarray:
        if postsm4.supports_bias_shift_subarray(info.aperture, layouts[0].virtual_overscan) \
                and ds_gain2:
            trailer.message("This subarray data is supported for the bias shift correction.")
            trailer.switch("blevcorr", PERFORM)
            res = postsm4.subarray_blevcorr(work[0].sci, info.ccdamp)
            trailer.extend(res.messages)
            work[0] = work[0].replace(sci=res.chips[0])
            put_float(work[0].sci_hdr, "MEANBLEV", res.meanblev[0],
                      "mean of bias levels subtracted in electrons")
            for k in range(4):
                blev_levels[k] += res.blev[k]
            trimmed[0] = True
            trailer.switch("blevcorr", COMPLETE)
            return layouts[0].found, False
        trailer.message("WFC readout is not a supported subarray or type/gain not set as needed "
                        "for new bias level algorithm for subarray data.")
        trailer.message("Data to be processed with original bias level algorithm.")
    for k, (g, p, im) in enumerate(zip(ginfo, params, work)):
        res = overscan.subtract_overscan(
            im.sci, im.dq, layouts[k], detector=info.detector, ccdamp=info.ccdamp, chip=g.chip,
            ampx=p.ampx, ampy=p.ampy, readnoise=p.readnoise, ccdbias=p.ccdbias,
            atodgain=p.atodgain, sdqflags=g.sdqflags)
        work[k] = im.replace(sci=res.sci)
        if res.from_overscan:
            _blev_messages(trailer, res, layouts[k])
            put_float(im.sci_hdr, "MEANBLEV", res.meanblev,
                      "mean of bias levels subtracted in electrons")
            amp_levels = {a.amp: a.mean_level for a in res.amps}
            done = True
        else:
            trailer.warn("Overscan region is too small to do BLEVCORR;")
            trailer.message(f"     bias from CCDTAB of {res.default_bias:g} will be subtracted.")
            trailer.message("Default bias level from CCDTAB was subtracted.")
            amp_levels = {"ABCD"[res.default_amp_index]: res.default_bias}
        driftcorr = res.driftcorr if res.from_overscan else driftcorr
        for amp, level in amp_levels.items():
            if level != 0.0:
                trailer.message(f"     bias level of {level:.6g} electrons was subtracted for AMP {amp}.")
                blev_levels["ABCD".index(amp)] = level
        trimmed[k] = True
    trailer.switch("blevcorr", COMPLETE)
    return done, driftcorr


def _blev_messages(trailer: Trailer, res: overscan.BlevResult, layout: OverscanLayout) -> None:
    trailer.extend(res.messages)
    for amp in res.amps:
        if amp.npix_first_row is not None:
            b = amp.biassect
            trailer.message(f"(FitToOverscan) biassecta=({b[0]},{b[1]}) biassectb=({b[2]},{b[3]}) "
                            f"npix={amp.npix_first_row}")
        trailer.message(f"(blevcorr) Rejected {amp.rejected} bias values from fit.")
        if amp.too_few:
            plural = " has" if amp.too_few == 1 else "s have"
            trailer.warn(f"(blevcorr) {amp.too_few} image line{plural} too few usable overscan pixels.")
        if amp.fit.ok:
            trailer.message(f"Computed a fit with slope of {amp.fit.slope:g} and intercept of "
                            f"{amp.fit.intercept:g}")
        else:
            trailer.warn("No bias level data, or singular fit;")
            trailer.message("            bias from CCDTAB will be subtracted.")
    trailer.message("Bias level from overscan has been subtracted;\n"
                    f"     mean of bias levels subtracted was {res.meanblev:.6g} electrons.")


def _full_well(im: Imset, g: ImsetInfo, satufile: RefFile, layout: OverscanLayout,
               trailer: Trailer) -> np.ndarray:
    ref = read_ref_image(satufile, g.chip, sci_only=True)
    align = find_alignment(im.sci_hdr, im.shape, ref.header, ref.sci.shape)
    sci_corner, _ = corner_and_bin(im.sci_hdr)
    ny, nx = im.shape
    trimmed_shape = (ny - layout.trimy[0] - layout.trimy[1], nx - layout.trimx[0] - layout.trimx[1])
    kind = "Full-frame" if align.same_size else "Subarray"
    trailer.message(f"{kind} full-well saturation image flagging step being performed.")
    dq = ccd.flag_full_well_saturation(im.sci, im.dq, ref.sci, align.same_size, sci_corner,
                                       trimmed_shape, (align.x0, align.y0))
    trailer.message(f"{kind} full-well saturation image flagging step done.")
    return dq


def _sink(im: Imset, g: ImsetInfo, snkcfile: RefFile) -> np.ndarray:
    """SinkDetect for one imset; the reference is an untrimmed full frame."""
    # DetSinkChip: SCI,n for n up to NEXTEND (not NEXTEND/3) with the chip.
    nextend = int(snkcfile.hdus[0].header.get("NEXTEND", 1))
    extver = find_chip_extver(snkcfile.hdus, g.chip, snkcfile.name, last=nextend)
    hdu = fitsread.find_hdu(snkcfile.hdus, ("SCI", extver))
    ref = fitsread.image_data(hdu, np.float32)
    align = find_alignment(im.sci_hdr, im.shape, hdu.header, ref.shape)
    if align.rx != 1 or align.ry != 1:
        raise CalibrationError("(sinkcorr) binned data is not supported.")
    ny, nx = im.shape
    x0, y0 = (0, 0) if align.same_size else (align.x0, align.y0)
    if x0 < 0 or y0 < 0 or y0 + ny > ref.shape[0] or x0 + nx > ref.shape[1]:
        raise CalibrationError("(sinkcorr) the SNKCFILE does not cover the science array.")
    cut = ref[y0:y0 + ny, x0:x0 + nx]
    dq, _ = sink.flag_sink_pixels(im.sci, im.dq, cut, downward=extver != 1)
    return dq


def _trim(im: Imset, layout: OverscanLayout) -> Imset:
    x0, y0 = layout.trimx[0], layout.trimy[0]
    sci = overscan.trim_overscan(im.sci, layout)
    headers = []
    for hdr in (im.sci_hdr, im.err_hdr, im.dq_hdr):
        for axis, shift in ((1, x0), (2, y0)):
            if shift:
                for key in (f"LTV{axis}", f"CRPIX{axis}"):
                    if key in hdr:
                        hdr[key] = float(hdr[key]) - shift
        headers.append(hdr)
    put_int(im.sci_hdr, "SIZAXIS1", sci.shape[1])
    put_int(im.sci_hdr, "SIZAXIS2", sci.shape[0])
    return im.replace(sci=np.ascontiguousarray(sci),
                      err=np.ascontiguousarray(overscan.trim_overscan(im.err, layout)),
                      dq=np.ascontiguousarray(overscan.trim_overscan(im.dq, layout)))


__all__ = ["run_ccd_stage", "ImsetInfo", "to_short", "ccd_parameters", "write_amp_keywords",
           "ccdtab_message", "noise_message"]
