"""The ACS2D stage: DQICORR/GLINCORR/LFLGCORR (MAMA), DARKCORR, FLSHCORR,
FLATCORR, SHADCORR, PHOTCORR and the image statistics.

For the CCDs it runs on the trimmed output of ACSCCD; for SBC it runs on
the raw file directly (calacs.e's MAMA path has no ACSCCD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from astropy.io import fits

from ..detector import ccd, dark, flat, mama
from . import photometry
from .acsccd import (ImsetInfo, acs_amp_layout, begin_stage, ccd_parameters, ccdtab_message, dqicorr_history,
                     flag_bad_pixels, name_dqitab, noise_message, write_amp_keywords)
from ..common.keywords import (COMPLETE, DUMMY, IGNORED, OMIT, PERFORM, add_history, put_float,
                              put_str, ref_history, shown_state, update_switch)
from ..common.statistics import image_statistics, write_statistics
from ..common.errors import CalibrationError
from .exposure import ExposureInfo, Switches, known_reference, raise_missing, require_ccdtab
from ..common.imageio import Exposure, Imset
from ..common.refs import RefFile, RefSet, cut_reference, find_alignment, read_ref_image
from ..common.tables import read_mlintab
from ..common.trailer import Trailer, clock
from .steps import Step, StepContext, name_reference, run_step

FLATS = ("PFLTFILE", "DFLTFILE", "LFLTFILE")


@dataclass
class Planning:
    """What the steps' planners see while ACS2D's states are decided (Get2dFlags)."""

    primary: fits.Header
    info: ExposureInfo
    switches: Switches
    refs: RefSet
    env: Any
    ccd_stage_ran: bool
    trailer: Trailer
    missing: list[str] = field(default_factory=list)     # MissingFile, in calacs.e's order

    def ref(self, key: str) -> RefFile:
        return known_reference(self.refs, self.primary, key, self.env)


class Plan:
    """The ACS2D step states and references: each step's planner gives its own states."""

    def __init__(self, primary: fits.Header, info: ExposureInfo, switches: Switches,
                 refs: RefSet, env, ccd_stage_ran: bool, trailer: Trailer):
        planning = Planning(primary, info, switches, refs, env, ccd_stage_ran, trailer)
        self.refs = refs
        self.flat_states: dict[str, str] = {}
        if not info.is_mama:
            require_ccdtab(planning.ref("CCDTAB"), planning.missing)
        for step in STEPS_2D:
            if step.plan is not None:
                for name, value in step.plan(step, planning).items():
                    setattr(self, name, value)
        self.expscorr = PERFORM if switches.perform("EXPSCORR") else OMIT
        for item in planning.missing:
            trailer.warn(f"{item} not found or can't open.")
        raise_missing(planning.missing)
        if self.flshcorr == PERFORM:
            _check_flash_trimmed(refs["FLSHFILE"])


def _check_flash_trimmed(flshfile: RefFile) -> None:
    flash = read_ref_image(flshfile, 1)
    if float(flash.header.get("LTV1", 0)) != 0 or float(flash.header.get("LTV2", 0)) != 0:
        raise CalibrationError(f"FLSHFILE `{flshfile.name}' has untrimmed overscans.")


# -- the planners: a step's states from its switch and references ---------------------------

def _plan_by_reference(step: Step, planning: Planning) -> dict[str, str]:
    """GetImageRef/GetTabRef + MissingFile: PERFORM, DUMMY (a dummy reference) or OMIT."""
    key = step.switch
    if not planning.switches.perform(key):
        return {key.lower(): OMIT}
    ref = planning.ref(step.references[0])
    if not ref.exists:
        planning.missing.append(f"{ref.keyword} `{ref.name}'")
        return {key.lower(): PERFORM}
    return {key.lower(): DUMMY if ref.dummy else PERFORM}


def _plan_dqicorr(step: Step, planning: Planning) -> dict[str, str]:
    """The CCD's DQICORR is done in ACSCCD; calacs.e then omits it here."""
    mama = planning.info.is_mama
    if not planning.switches.perform("DQICORR") or (not mama and planning.ccd_stage_ran):
        return {"dqicorr": OMIT}
    bpix = planning.ref("BPIXTAB")
    if not bpix.exists and (mama or bpix.given):
        planning.missing.append(f"BPIXTAB `{bpix.name}'")
    return {"dqicorr": DUMMY if (bpix.exists and bpix.dummy) else PERFORM}


def _plan_linearity(step: Step, planning: Planning) -> dict[str, str]:
    switches = planning.switches
    wanted = {key: switches.perform(key) for key in ("GLINCORR", "LFLGCORR")}
    if not (planning.info.is_mama and any(wanted.values())):
        return {"glincorr": OMIT, "lflgcorr": OMIT}
    mlin = planning.ref("MLINTAB")
    if not mlin.exists:
        planning.missing.append(f"MLINTAB `{mlin.name}'")
    return {key.lower(): PERFORM if perform else OMIT for key, perform in wanted.items()}


def _plan_flatcorr(step: Step, planning: Planning) -> dict:
    """FLATCORR and the state of each flat; DUMMY when every flat used is a dummy."""
    if not planning.switches.perform("FLATCORR"):
        return {"flatcorr": OMIT, "flat_states": {}}
    flat_states: dict[str, str] = {}
    for key in FLATS:
        ref = planning.ref(key)
        if ref.exists:
            flat_states[key] = DUMMY if ref.dummy else PERFORM
        elif ref.given:
            planning.missing.append(f"{key} `{ref.name}'")
        else:
            flat_states[key] = OMIT
    cflt = planning.ref("CFLTFILE")
    if cflt.given:
        planning.trailer.warn(f"CFLTFILE `{cflt.name}' (coronagraphic spot flat) is not applied "
                              "by caldp's native calibration.")
    used = [state for state in flat_states.values() if state != OMIT]
    flatcorr = DUMMY if used and all(state == DUMMY for state in used) else PERFORM
    return {"flatcorr": flatcorr, "flat_states": flat_states}


def run_2d_stage(exposure: Exposure, info: ExposureInfo, switches: Switches, refs: RefSet, env,
                 trailer: Trailer, version: str, cal_ver: str, output_name: str,
                 ccd_stage_ran: bool) -> Exposure:
    primary = exposure.primary
    begin_stage(trailer, "ACS2D", version, exposure, info, output_name)
    plan = Plan(primary, info, switches, refs, env, ccd_stage_ran, trailer)
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
        imset, imsets[index] = imsets[index], None
        extver = index + 1
        trailer.message("\n")
        trailer.message(f"{'Imset %d' % extver:<8} Begin {clock()}")
        ctx = _prepare_imset(imset, extver, primary, info, plan, refs, limits, darktime, trailer)
        out.append(_do2d(imset, ctx))
        trailer.message(f"{'Imset %d' % extver:<8} End {clock()}")
    put_str(primary, "CAL_VER", cal_ver)
    put_str(primary, "FILENAME", output_name)
    if plan.expscorr == PERFORM:
        update_switch(primary, "EXPSCORR", PERFORM)
    trailer.message("\n")
    trailer.end("ACS2D")
    return Exposure(path=exposure.path, primary=primary, imsets=out)


def _prepare_imset(imset: Imset, extver: int, primary, info: ExposureInfo, plan: Plan, refs: RefSet,
                   limits, darktime: float, trailer: Trailer) -> StepContext:
    """The step context of one imset; for the CCDs, check the trim and name the CCDTAB."""
    chip = ImsetInfo.from_header(imset.sci_hdr)
    params = None
    if not info.is_mama:
        if (str(primary.get("BLEVCORR", "")).strip() != COMPLETE
                or chip.ltv[0] > 0 or chip.ltv[1] > 0):
            raise CalibrationError("Overscan region not trimmed.  Please perform BLEVCORR.")
        params = ccd_parameters(refs, info, chip.chip, imset.shape[1])
        write_amp_keywords(primary, params)
        ccdtab_message(trailer, primary, refs["CCDTAB"], history=extver == 1)
    return StepContext(primary=primary, info=info, refs=refs, trailer=trailer, first=extver == 1,
                       extra=dict(plan=plan, chip=chip, params=params, limits=limits,
                                  darktime=darktime))


def _do2d(imset: Imset, ctx: StepContext) -> Imset:
    for step in STEPS_2D:
        imset = run_step(step, imset, ctx)
    stats = image_statistics(imset.sci, imset.err, imset.dq, ctx.chip.sdqflags)
    if stats.note:
        ctx.trailer.warn(stats.note)
    write_statistics(imset.sci_hdr, imset.err_hdr, stats)
    return imset


# -- the steps ------------------------------------------------------------------------------

def _dqicorr(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    """DQICORR for the MAMA, or for a CCD file that skipped ACSCCD."""
    dq = imset.dq
    if not ctx.info.is_mama:
        dq = ccd.flag_atod_saturation(imset.sci, dq, ctx.params.atod_saturate)
    bpix = ctx.refs.get("BPIXTAB")
    if ctx.plan.dqicorr == PERFORM and bpix is not None and bpix.exists:
        dq = flag_bad_pixels(dq, bpix, ctx.info, ctx.chip, ctx.trailer)
    return imset.replace(dq=dq), PERFORM


def _dqicorr_history(ctx: StepContext, outcome: str) -> None:
    dqicorr_history(ctx.primary, ctx.refs.get("BPIXTAB"), saturation_checked=not ctx.info.is_mama)


def _linearity_state(ctx: StepContext) -> str:
    states = (ctx.plan.glincorr, ctx.plan.lflgcorr)
    if PERFORM in states:
        return PERFORM
    return OMIT if states == (OMIT, OMIT) else DUMMY


def _linearity_announce(ctx: StepContext, state: str) -> None:
    if ctx.info.is_mama:
        ctx.trailer.message("\n")
        ctx.trailer.switch("glincorr", shown_state(ctx.plan.glincorr))
        ctx.trailer.switch("lflgcorr", shown_state(ctx.plan.lflgcorr))


def _linearity(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    """GLINCORR and LFLGCORR (MAMA): global count-rate linearity and local-rate flags."""
    plan, limits = ctx.plan, ctx.limits
    sci, err, dq = imset.sci, imset.err, imset.dq
    globrate = imset.sci_hdr.get("GLOBRATE")
    if globrate is None:
        raise CalibrationError("Keyword `GLOBRATE' not found in the SCI header.")
    globrate = float(globrate)
    put_str(imset.sci_hdr, "GLOBLIM", "NOT-EXCEEDED", "global count rate exceeded?")
    if globrate > limits.global_limit:
        put_str(imset.sci_hdr, "GLOBLIM", "EXCEEDED", "global count rate exceeded")
    elif plan.glincorr == PERFORM:
        ratio = mama.global_linearity_ratio(globrate, limits.tau)
        sci, err = dark.scale_reference(sci, err, ratio)
    if plan.lflgcorr == PERFORM:
        dq, _ = mama.flag_local_nonlinearity(sci, dq, limits.local_limit, ctx.info.exptime,
                                             limits.expand)
    return imset.replace(sci=sci, err=err, dq=dq), PERFORM


def _linearity_complete(ctx: StepContext, state: str) -> None:
    for key, step_state in (("glincorr", ctx.plan.glincorr), ("lflgcorr", ctx.plan.lflgcorr)):
        if step_state == PERFORM:
            ctx.trailer.switch(key, COMPLETE)


def _linearity_history(ctx: StepContext, outcome: str) -> None:
    logged = False
    for key in ("GLINCORR", "LFLGCORR"):
        step_state = getattr(ctx.plan, key.lower())
        if step_state != OMIT:
            logged |= update_switch(ctx.primary, key, step_state)
    if logged:
        ref_history(ctx.primary, ctx.refs["MLINTAB"], table=True)


def _errors(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    """Electrons, and the error array where the input has none."""
    info, sci, err = ctx.info, imset.sci, imset.err
    layout = _amp_layout(info, ctx.chip, ctx.params, sci.shape)
    if not str(imset.sci_hdr.get("BUNIT", "")).startswith("ELECTR"):
        sci, err = ccd.convert_to_electrons(sci, err, layout)
        put_str(imset.sci_hdr, "BUNIT", "ELECTRONS")
        put_str(imset.err_hdr, "BUNIT", "ELECTRONS")
    if not err.any():
        if info.is_mama:
            if (sci < 0).any():
                ctx.trailer.warn("Negative value found in input MAMA data!")
            err = mama.init_mama_errors(sci)
        else:
            err = ccd.init_ccd_errors(sci, err, layout, info.targname.startswith("BIAS"))
        if ctx.first:
            add_history(ctx.primary, "Uncertainty array initialized.")
        if info.is_mama:
            ctx.trailer.message("         Uncertainty array initialized,")
        else:
            noise_message(ctx.trailer, ctx.params, bias_levels=False, indent="         ")
    return imset.replace(sci=sci, err=err), PERFORM


def _darkcorr(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    ctx.trailer.message(f"Darktime from header {np.float32(ctx.darktime):f}")
    ref = _aligned(ctx.refs["DARKFILE"], ctx.chip.chip, imset, "darkcorr", whole_image=True)
    sci, err, dq, meandark = dark.subtract_dark(imset.sci, imset.err, imset.dq, ref.sci, ref.err, ref.dq,
                                               ctx.darktime, ctx.chip.sdqflags)
    ctx.trailer.message(f"Mean of dark image (MEANDARK) = {meandark:g}")
    put_float(imset.sci_hdr, "MEANDARK", meandark, "mean of dark values subtracted")
    return imset.replace(sci=sci, err=err, dq=dq), PERFORM


def _flshcorr(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    info, trailer = ctx.info, ctx.trailer
    if info.flashdur <= 0:
        text = "Post-flash exposure was 0 seconds. FLSHCORR not performed."
        trailer.warn(text)
        add_history(ctx.primary, text)
        return imset, IGNORED
    if info.flashstatus == "ABORTED":
        text = "Post-flash STATUS was ABORTED. Post-flash may be compromised."
        trailer.warn(text)
        add_history(ctx.primary, text)
    ref = _aligned(ctx.refs["FLSHFILE"], ctx.chip.chip, imset, "flshcorr")
    sci, err, dq, meanflash = dark.subtract_flash(imset.sci, imset.err, imset.dq, ref.sci, ref.err, ref.dq,
                                                 info.flashdur, ctx.chip.sdqflags)
    trailer.message(f"Mean of post-flash image (MEANFLSH) = {meanflash:g}")
    put_float(imset.sci_hdr, "MEANFLSH", meanflash, "mean of post-flash values subtracted")
    return imset.replace(sci=sci, err=err, dq=dq), PERFORM


def _flatcorr(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    sci, err, dq = imset.sci, imset.err, imset.dq
    for key in FLATS:
        if ctx.plan.flat_states.get(key) != PERFORM:
            continue
        if key == "LFLTFILE":
            ref = read_ref_image(ctx.refs[key], ctx.chip.chip)
            sci, err, dq = _apply_low_order_flat(sci, err, dq, ref, imset)
        else:
            ref = _aligned(ctx.refs[key], ctx.chip.chip, imset, "flatcorr")
            sci, err, dq = flat.divide_flat(sci, err, dq, ref.sci, ref.err, ref.dq)
        del ref                     # a full-frame flat is large
    put_str(imset.sci_hdr, "BUNIT", "ELECTRONS")
    put_str(imset.err_hdr, "BUNIT", "ELECTRONS")
    return imset.replace(sci=sci, err=err, dq=dq), PERFORM


def _shadcorr(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    if ctx.info.exptime <= 0:
        ctx.trailer.warn("EXPTIME must be positive if SHADCORR = PERFORM.")
        return imset, IGNORED
    sci, err, dq = _shade(imset.sci, imset.err, imset.dq, ctx.refs["SHADFILE"], ctx.chip, imset,
                          ctx.info.exptime)
    return imset.replace(sci=sci, err=err, dq=dq), PERFORM


def _photmode(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    """PHOTMODE is written whatever PHOTCORR says."""
    info = ctx.info
    photmode = photometry.build_photmode(info.detector, info.obstype, info.filter1, info.filter2,
                                         info.expstart, info.lrfwave)
    put_str(imset.sci_hdr, "PHOTMODE", photmode, "list of components")
    ctx.extra["photmode"] = photmode
    return imset, PERFORM


def _photcorr(imset: Imset, ctx: StepContext) -> tuple[Imset, str]:
    imp = ctx.refs["IMPHTTAB"]
    phot = photometry.compute_photometry(imp, ctx.photmode)
    put_float(imset.sci_hdr, "PHOTFLAM", phot.photflam, "inverse sensitivity")
    put_float(imset.sci_hdr, "PHOTZPT", phot.photzpt, "zero point")
    put_float(imset.sci_hdr, "PHOTPLAM", phot.photplam, "pivot wavelength")
    put_float(imset.sci_hdr, "PHOTBW", phot.photbw, "RMS bandwidth")
    if phot.extrapolated_out:
        ctx.trailer.warn("IMPHTTAB extrapolation not supported, PHOTCORR skipped.")
        ctx.trailer.switch("photcorr", "SKIPPED")
        return imset, IGNORED
    name_reference(ctx.trailer, imp, table=False)
    ctx.trailer.switch("photcorr", COMPLETE)
    return imset, PERFORM


def _plan_state(key: str) -> Callable[[StepContext], str]:
    return lambda ctx: getattr(ctx.plan, key)


def _nothing(ctx: StepContext, *ignored) -> None:
    pass


def _is_ccd(ctx: StepContext) -> bool:
    return not ctx.info.is_mama


#: ACS2D's steps in calacs.e's order (do2d.c).
STEPS_2D = (
    Step("DQICORR", _dqicorr, _plan_state("dqicorr"), ("BPIXTAB",), table=True, plan=_plan_dqicorr,
         runs=lambda state, ctx: state == PERFORM or (state == DUMMY and not ctx.info.is_mama),
         names=name_dqitab, history=_dqicorr_history),
    Step("GLINCORR", _linearity, _linearity_state, ("MLINTAB",), table=True, plan=_plan_linearity,
         announce=_linearity_announce, complete=_linearity_complete, history=_linearity_history),
    Step(None, _errors),
    Step("DARKCORR", _darkcorr, _plan_state("darkcorr"), ("DARKFILE",), plan=_plan_by_reference),
    Step("FLSHCORR", _flshcorr, _plan_state("flshcorr"), ("FLSHFILE",), plan=_plan_by_reference),
    Step("FLATCORR", _flatcorr, _plan_state("flatcorr"), FLATS, plan=_plan_flatcorr),
    Step("SHADCORR", _shadcorr, _plan_state("shadcorr"), ("SHADFILE",), plan=_plan_by_reference,
         shown=_is_ccd),
    Step(None, _photmode),
    Step("PHOTCORR", _photcorr, _plan_state("photcorr"), ("IMPHTTAB",), table=True, plan=_plan_by_reference,
         names=_nothing, complete=_nothing),
)


def _amp_layout(info: ExposureInfo, chip: ImsetInfo, params, shape) -> ccd.AmpLayout:
    if info.is_mama:
        return ccd.AmpLayout(ampx=0, ampy=0, gain=[1.0] * 4, readnoise=[0.0] * 4)
    return acs_amp_layout(info, chip, params, shape)


def _aligned(ref_file: RefFile, chip: int, imset: Imset, step: str, whole_image: bool = False):
    ref = read_ref_image(ref_file, chip)
    align = find_alignment(imset.sci_hdr, imset.shape, ref.header, ref.sci.shape, whole_image=whole_image)
    if whole_image and align.ref_binned_more:
        raise CalibrationError(f"({step}) reference image is binned more than the science image.")
    return cut_reference(ref, align, imset.shape, step)


def _apply_low_order_flat(sci, err, dq, ref, imset: Imset):
    align = find_alignment(imset.sci_hdr, imset.shape, ref.header, ref.sci.shape)
    es, ee, ed = flat.expand_binned(ref.sci, ref.err, ref.dq, align.rx, align.ry)
    ny, nx = imset.shape
    x0, y0 = max(align.x0, 0) * align.rx, max(align.y0, 0) * align.ry
    if es.shape[0] < y0 + ny or es.shape[1] < x0 + nx:
        raise CalibrationError("(flatcorr) LFLTFILE does not cover the science array.")
    s = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    return flat.divide_flat(sci, err, dq, es[s], ee[s], ed[s])


def _shade(sci, err, dq, shadfile: RefFile, chip: ImsetInfo, imset: Imset, exptime_total: float):
    ref = read_ref_image(shadfile, chip.chip)
    align = find_alignment(imset.sci_hdr, imset.shape, ref.header, ref.sci.shape)
    exptime = float(np.float32(exptime_total / chip.ncombine))
    if align.rx == 1 and align.ry == 1:
        cut = cut_reference(ref, align, imset.shape, "doShad")
        s, e, d = cut.sci, cut.err, cut.dq
    else:
        s, e, d = flat.expand_in_sections(ref.sci, ref.err, ref.dq, align.rx, align.ry,
                                          align.x0, align.y0, imset.shape)
    factor, ferr = flat.shading_factor(s, e, exptime)
    return flat.divide_flat(sci, err, dq, factor, ferr, d)
