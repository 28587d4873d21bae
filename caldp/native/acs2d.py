"""The ACS2D stage: DQICORR/GLINCORR/LFLGCORR (MAMA), DARKCORR, FLSHCORR,
FLATCORR, SHADCORR, PHOTCORR and the image statistics.

For the CCDs it runs on the trimmed output of ACSCCD; for SBC it runs on
the raw file directly (calacs.e's MAMA path has no ACSCCD).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from . import ccd, dark, flat, mama, photometry
from .acsccd import (ImsetInfo, begin_stage, ccd_parameters, ccdtab_message, dqicorr_history,
                     flag_bad_pixels, image_refinfo, image_step_history, noise_message,
                     write_amp_keywords)
from .bookkeeping import (COMPLETE, DUMMY, IGNORED, OMIT, PERFORM, add_history, image_statistics,
                          put_float, put_str, ref_history, shown_state, update_switch,
                          write_statistics)
from .errors import CalibrationError
from .exposure import ExposureInfo, Switches, known_reference, raise_missing, require_ccdtab
from .imageio import Exposure, Imset
from .refs import RefFile, RefSet, cut_reference, find_alignment, read_ref_image
from .tables import read_mlintab
from .trailer import Trailer, clock

FLATS = ("PFLTFILE", "DFLTFILE", "LFLTFILE")


def _state(sw: Switches, key: str, ref: RefFile | None, missing: list[str]) -> str:
    """GetImageRef/GetTabRef + MissingFile for one step."""
    if not sw.perform(key):
        return OMIT
    if ref is None or not ref.exists:
        missing.append(f"{ref.keyword if ref else key} `{ref.name if ref else ''}'")
        return PERFORM
    return DUMMY if ref.dummy else PERFORM


class Plan:
    """The ACS2D step states and references (calacs.e's Get2dFlags)."""

    def __init__(self, primary: fits.Header, info: ExposureInfo, sw: Switches, refs: RefSet,
                 env, ccd_stage_ran: bool, trailer: Trailer):
        def ref(key):
            return known_reference(refs, primary, key, env)

        missing: list[str] = []
        self.refs = refs
        if not info.is_mama:
            require_ccdtab(ref("CCDTAB"), missing)
        # The CCD's DQICORR is done in ACSCCD; calacs.e then omits it here.
        self.dqicorr = OMIT
        if sw.perform("DQICORR") and not (not info.is_mama and ccd_stage_ran):
            bpix = ref("BPIXTAB")
            if not bpix.exists and (info.is_mama or bpix.given):
                missing.append(f"BPIXTAB `{bpix.name}'")
            self.dqicorr = DUMMY if (bpix.exists and bpix.dummy) else PERFORM
        self.glincorr = self.lflgcorr = OMIT
        if info.is_mama and (sw.perform("GLINCORR") or sw.perform("LFLGCORR")):
            mlin = ref("MLINTAB")
            if not mlin.exists:
                missing.append(f"MLINTAB `{mlin.name}'")
            self.glincorr = PERFORM if sw.perform("GLINCORR") else OMIT
            self.lflgcorr = PERFORM if sw.perform("LFLGCORR") else OMIT
        self.darkcorr = _state(sw, "DARKCORR", ref("DARKFILE") if sw.perform("DARKCORR") else None,
                               missing)
        self.flshcorr = OMIT
        if sw.perform("FLSHCORR"):
            self.flshcorr = _state(sw, "FLSHCORR", ref("FLSHFILE"), missing)
        self.flatcorr = OMIT
        self.flat_states: dict[str, str] = {}
        if sw.perform("FLATCORR"):
            self.flatcorr = PERFORM
            for key in FLATS:
                r = ref(key)
                if r.exists:
                    self.flat_states[key] = DUMMY if r.dummy else PERFORM
                elif r.given:
                    missing.append(f"{key} `{r.name}'")
                else:
                    self.flat_states[key] = OMIT
            cflt = ref("CFLTFILE")
            if cflt.given:
                trailer.warn(f"CFLTFILE `{cflt.name}' (coronagraphic spot flat) is not applied "
                             "by caldp's native calibration.")
            used = [s for s in self.flat_states.values() if s != OMIT]
            if used and all(s == DUMMY for s in used):
                self.flatcorr = DUMMY
        self.shadcorr = _state(sw, "SHADCORR", ref("SHADFILE") if sw.perform("SHADCORR") else None,
                               missing)
        self.photcorr = _state(sw, "PHOTCORR", ref("IMPHTTAB") if sw.perform("PHOTCORR") else None,
                               missing)
        self.expscorr = PERFORM if sw.perform("EXPSCORR") else OMIT
        for item in missing:
            trailer.warn(f"{item} not found or can't open.")
        raise_missing(missing)
        if self.flshcorr == PERFORM:
            fl = read_ref_image(refs["FLSHFILE"], 1)
            if float(fl.header.get("LTV1", 0)) != 0 or float(fl.header.get("LTV2", 0)) != 0:
                raise CalibrationError(f"FLSHFILE `{refs['FLSHFILE'].name}' has untrimmed overscans.")


def run_2d_stage(exposure: Exposure, info: ExposureInfo, sw: Switches, refs: RefSet, env,
                 trailer: Trailer, version: str, cal_ver: str, output_name: str,
                 ccd_stage_ran: bool) -> Exposure:
    primary = exposure.primary
    begin_stage(trailer, "ACS2D", version, exposure, info, output_name)
    plan = Plan(primary, info, sw, refs, env, ccd_stage_ran, trailer)
    limits = None
    if plan.glincorr != OMIT or plan.lflgcorr != OMIT:
        limits = read_mlintab(refs["MLINTAB"], info.detector)
        if limits.dummy:
            plan.glincorr = DUMMY if plan.glincorr == PERFORM else plan.glincorr
            plan.lflgcorr = DUMMY if plan.lflgcorr == PERFORM else plan.lflgcorr
    darktime = float(primary.get("DARKTIME", 0.0)) if not info.is_mama else 0.0
    out = []
    # Take the imsets over so each one can be released once calibrated.
    imsets = exposure.imsets
    exposure.imsets = []
    for index in range(len(imsets)):
        im, imsets[index] = imsets[index], None
        extver = index + 1
        trailer.message("\n")
        trailer.message(f"{'Imset %d' % extver:<8} Begin {clock()}")
        out.append(_do2d(im, extver, primary, info, plan, refs, limits, darktime, trailer))
        trailer.message(f"{'Imset %d' % extver:<8} End {clock()}")
    put_str(primary, "CAL_VER", cal_ver)
    put_str(primary, "FILENAME", output_name)
    if plan.expscorr == PERFORM:
        update_switch(primary, "EXPSCORR", PERFORM)
    trailer.message("\n")
    trailer.end("ACS2D")
    return Exposure(path=exposure.path, primary=primary, imsets=out)


def _do2d(im: Imset, extver: int, primary, info: ExposureInfo, plan: Plan, refs: RefSet,
          limits, darktime: float, trailer: Trailer) -> Imset:
    first = extver == 1
    g = ImsetInfo.from_header(im.sci_hdr)
    sci, err, dq = im.sci, im.err, im.dq
    params = None
    if not info.is_mama:
        if (str(primary.get("BLEVCORR", "")).strip() != COMPLETE
                or g.ltv[0] > 0 or g.ltv[1] > 0):
            raise CalibrationError("Overscan region not trimmed.  Please perform BLEVCORR.")
        params = ccd_parameters(refs, info, g.chip, im.shape[1])
        write_amp_keywords(primary, params)
        ccdtab_message(trailer, primary, refs["CCDTAB"], history=first)

    # -- DQICORR (MAMA, or a CCD file that skipped ACSCCD) -------------------------
    trailer.message("\n")
    trailer.switch("dqicorr", shown_state(plan.dqicorr))
    bpix = refs.get("BPIXTAB")
    if first and plan.dqicorr != OMIT:
        trailer.refinfo("dqitab", bpix.name, bpix.pedigree, bpix.descrip, bpix.descrip2)
    if plan.dqicorr == PERFORM or (plan.dqicorr == DUMMY and not info.is_mama):
        if not info.is_mama:
            dq = ccd.flag_atod_saturation(sci, dq, params.atod_saturate)
        if plan.dqicorr == PERFORM and bpix is not None and bpix.exists:
            dq = flag_bad_pixels(dq, bpix, info, g, trailer)
        trailer.switch("dqicorr", COMPLETE)
    if first and plan.dqicorr != OMIT:
        dqicorr_history(primary, bpix, saturation_checked=not info.is_mama)

    # -- GLINCORR / LFLGCORR (MAMA) -------------------------------------------------
    if info.is_mama:
        trailer.message("\n")
        trailer.switch("glincorr", shown_state(plan.glincorr))
        trailer.switch("lflgcorr", shown_state(plan.lflgcorr))
    if plan.glincorr != OMIT or plan.lflgcorr != OMIT:
        mlin = refs["MLINTAB"]
        if first:
            trailer.refinfo("mlintab", mlin.name, mlin.pedigree, mlin.descrip, mlin.descrip2)
    if plan.glincorr == PERFORM or plan.lflgcorr == PERFORM:
        globrate = im.sci_hdr.get("GLOBRATE")
        if globrate is None:
            raise CalibrationError("Keyword `GLOBRATE' not found in the SCI header.")
        globrate = float(globrate)
        put_str(im.sci_hdr, "GLOBLIM", "NOT-EXCEEDED", "global count rate exceeded?")
        if globrate > limits.global_limit:
            put_str(im.sci_hdr, "GLOBLIM", "EXCEEDED", "global count rate exceeded")
        elif plan.glincorr == PERFORM:
            ratio = mama.global_linearity_ratio(globrate, limits.tau)
            sci, err = dark.scale_reference(sci, err, ratio)
        if plan.lflgcorr == PERFORM:
            dq, _ = mama.flag_local_nonlinearity(sci, dq, limits.local_limit, info.exptime,
                                                 limits.expand)
        if plan.glincorr == PERFORM:
            trailer.switch("glincorr", COMPLETE)
        if plan.lflgcorr == PERFORM:
            trailer.switch("lflgcorr", COMPLETE)
    if first and (plan.glincorr != OMIT or plan.lflgcorr != OMIT):
        logged = update_switch(primary, "GLINCORR", plan.glincorr) if plan.glincorr != OMIT else False
        logged |= update_switch(primary, "LFLGCORR", plan.lflgcorr) if plan.lflgcorr != OMIT else False
        if logged:
            ref_history(primary, refs["MLINTAB"], table=True)

    # -- electrons and the error array -------------------------------------------------
    layout = _amp_layout(info, g, params, sci.shape)
    if not str(im.sci_hdr.get("BUNIT", "")).startswith("ELECTR"):
        sci, err = ccd.convert_to_electrons(sci, err, layout)
        put_str(im.sci_hdr, "BUNIT", "ELECTRONS")
        put_str(im.err_hdr, "BUNIT", "ELECTRONS")
    if not err.any():
        if info.is_mama:
            if (sci < 0).any():
                trailer.warn("Negative value found in input MAMA data!")
            err = mama.init_mama_errors(sci)
        else:
            err = ccd.init_ccd_errors(sci, err, layout, info.targname.startswith("BIAS"))
        if first:
            add_history(primary, "Uncertainty array initialized.")
        if info.is_mama:
            trailer.message("         Uncertainty array initialized,")
        else:
            noise_message(trailer, params, bias_levels=False, indent="         ")

    # -- DARKCORR ----------------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("darkcorr", shown_state(plan.darkcorr))
    if first and plan.darkcorr != OMIT:
        image_refinfo(trailer, refs["DARKFILE"])
    if plan.darkcorr == PERFORM:
        trailer.message(f"Darktime from header {np.float32(darktime):f}")
        ref = _aligned(refs["DARKFILE"], g.chip, im, "darkcorr", whole_image=True)
        sci, err, dq, meandark = dark.subtract_dark(sci, err, dq, ref.sci, ref.err, ref.dq,
                                                   darktime, g.sdqflags)
        del ref
        trailer.message(f"Mean of dark image (MEANDARK) = {meandark:g}")
        put_float(im.sci_hdr, "MEANDARK", meandark, "mean of dark values subtracted")
        trailer.switch("darkcorr", COMPLETE)
    if first and plan.darkcorr != OMIT:
        image_step_history(primary, "DARKCORR", plan.darkcorr, refs["DARKFILE"])

    # -- FLSHCORR ----------------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("flshcorr", shown_state(plan.flshcorr))
    flash_flag = plan.flshcorr
    if first and plan.flshcorr != OMIT:
        image_refinfo(trailer, refs["FLSHFILE"])
    if plan.flshcorr == PERFORM:
        if info.flashdur <= 0:
            text = "Post-flash exposure was 0 seconds. FLSHCORR not performed."
            trailer.warn(text)
            add_history(primary, text)
            flash_flag = IGNORED
        else:
            if info.flashstatus == "ABORTED":
                text = "Post-flash STATUS was ABORTED. Post-flash may be compromised."
                trailer.warn(text)
                add_history(primary, text)
            ref = _aligned(refs["FLSHFILE"], g.chip, im, "flshcorr")
            sci, err, dq, meanflash = dark.subtract_flash(sci, err, dq, ref.sci, ref.err, ref.dq,
                                                         info.flashdur, g.sdqflags)
            del ref
            trailer.message(f"Mean of post-flash image (MEANFLSH) = {meanflash:g}")
            put_float(im.sci_hdr, "MEANFLSH", meanflash, "mean of post-flash values subtracted")
        trailer.switch("flshcorr", COMPLETE)
    if first and plan.flshcorr != OMIT:
        image_step_history(primary, "FLSHCORR", flash_flag, refs["FLSHFILE"])

    # -- FLATCORR ----------------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("flatcorr", shown_state(plan.flatcorr))
    if first and plan.flatcorr != OMIT:
        for key in FLATS:
            r = refs.get(key)
            if r is not None and r.given:
                image_refinfo(trailer, r)
    if plan.flatcorr == PERFORM:
        for key in FLATS:
            if plan.flat_states.get(key) != PERFORM:
                continue
            if key == "LFLTFILE":
                ref = read_ref_image(refs[key], g.chip)
                sci, err, dq = _apply_low_order_flat(sci, err, dq, ref, im)
            else:
                ref = _aligned(refs[key], g.chip, im, "flatcorr")
                sci, err, dq = flat.divide_flat(sci, err, dq, ref.sci, ref.err, ref.dq)
            del ref
        trailer.switch("flatcorr", COMPLETE)
        put_str(im.sci_hdr, "BUNIT", "ELECTRONS")
        put_str(im.err_hdr, "BUNIT", "ELECTRONS")
    if first and plan.flatcorr != OMIT and update_switch(primary, "FLATCORR", plan.flatcorr):
        for key in FLATS:
            r = refs.get(key)
            if r is not None and r.given:
                ref_history(primary, r, table=False)

    # -- SHADCORR ----------------------------------------------------------------------
    shad_flag = plan.shadcorr
    if not info.is_mama:
        trailer.message("\n")
        trailer.switch("shadcorr", shown_state(plan.shadcorr))
    if first and plan.shadcorr != OMIT:
        image_refinfo(trailer, refs["SHADFILE"])
    if plan.shadcorr == PERFORM:
        if info.exptime <= 0:
            trailer.warn("EXPTIME must be positive if SHADCORR = PERFORM.")
            shad_flag = IGNORED
        else:
            sci, err, dq = _shade(sci, err, dq, refs["SHADFILE"], g, im, info.exptime)
        trailer.switch("shadcorr", COMPLETE)
    if first and plan.shadcorr != OMIT:
        image_step_history(primary, "SHADCORR", shad_flag, refs["SHADFILE"])

    # -- PHOTCORR ----------------------------------------------------------------------
    trailer.message("\n")
    trailer.switch("photcorr", shown_state(plan.photcorr))
    photmode = photometry.build_photmode(info.detector, info.obstype, info.filter1, info.filter2,
                                         info.expstart, info.lrfwave)
    put_str(im.sci_hdr, "PHOTMODE", photmode, "list of components")
    phot_flag = plan.photcorr
    if plan.photcorr == PERFORM:
        imp = refs["IMPHTTAB"]
        phot = photometry.compute_photometry(imp, photmode)
        put_float(im.sci_hdr, "PHOTFLAM", phot.photflam, "inverse sensitivity")
        put_float(im.sci_hdr, "PHOTZPT", phot.photzpt, "zero point")
        put_float(im.sci_hdr, "PHOTPLAM", phot.photplam, "pivot wavelength")
        put_float(im.sci_hdr, "PHOTBW", phot.photbw, "RMS bandwidth")
        if phot.extrapolated_out:
            trailer.warn("IMPHTTAB extrapolation not supported, PHOTCORR skipped.")
            phot_flag = IGNORED
            trailer.switch("photcorr", "SKIPPED")
        else:
            trailer.refinfo("imphttab", imp.name, imp.pedigree, imp.descrip)
            trailer.switch("photcorr", COMPLETE)
    if first and plan.photcorr != OMIT and update_switch(primary, "PHOTCORR", phot_flag):
        ref_history(primary, refs["IMPHTTAB"], table=True)

    stats = image_statistics(sci, err, dq, g.sdqflags)
    if stats.note:
        trailer.warn(stats.note)
    write_statistics(im.sci_hdr, im.err_hdr, stats)
    return im.replace(sci=sci, err=err, dq=dq)


def _amp_layout(info: ExposureInfo, g: ImsetInfo, params, shape) -> ccd.AmpLayout:
    if info.is_mama:
        return ccd.AmpLayout(ampx=0, ampy=0, gain=[1.0] * 4, readnoise=[0.0] * 4)
    return ccd.amp_layout(info.detector, g.chip, params.ampx, params.ampy, params.atodgain,
                          params.readnoise, shape, g.ltv)


def _aligned(ref_file: RefFile, chip: int, im: Imset, step: str, whole_image: bool = False):
    ref = read_ref_image(ref_file, chip)
    align = find_alignment(im.sci_hdr, im.shape, ref.header, ref.sci.shape, whole_image=whole_image)
    if whole_image and align.ref_binned_more:
        raise CalibrationError(f"({step}) reference image is binned more than the science image.")
    return cut_reference(ref, align, im.shape, step)


def _apply_low_order_flat(sci, err, dq, ref, im: Imset):
    align = find_alignment(im.sci_hdr, im.shape, ref.header, ref.sci.shape)
    es, ee, ed = flat.expand_binned(ref.sci, ref.err, ref.dq, align.rx, align.ry)
    ny, nx = im.shape
    x0, y0 = max(align.x0, 0) * align.rx, max(align.y0, 0) * align.ry
    if es.shape[0] < y0 + ny or es.shape[1] < x0 + nx:
        raise CalibrationError("(flatcorr) LFLTFILE does not cover the science array.")
    s = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    return flat.divide_flat(sci, err, dq, es[s], ee[s], ed[s])


def _shade(sci, err, dq, shadfile: RefFile, g: ImsetInfo, im: Imset, exptime_total: float):
    ref = read_ref_image(shadfile, g.chip)
    align = find_alignment(im.sci_hdr, im.shape, ref.header, ref.sci.shape)
    exptime = float(np.float32(exptime_total / g.ncombine))
    if align.rx == 1 and align.ry == 1:
        cut = cut_reference(ref, align, im.shape, "doShad")
        s, e, d = cut.sci, cut.err, cut.dq
    else:
        s, e, d = flat.expand_in_sections(ref.sci, ref.err, ref.dq, align.rx, align.ry,
                                          align.x0, align.y0, im.shape)
    factor, ferr = flat.shading_factor(s, e, exptime)
    return flat.divide_flat(sci, err, dq, factor, ferr, d)
