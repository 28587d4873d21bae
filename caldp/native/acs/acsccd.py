"""The ACSCCD stage: DQICORR, BIASCORR, electrons, BLEVCORR, saturation, errors.

The order, messages and header updates follow calacs.e's DoCCD; the array
work is done by the step functions in ccd.py, overscan.py and postsm4.py.
The stage ends with trimmed imsets in memory (calacs.e's ``_blv_tmp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from astropy.io import fits

from ..detector import ccd, overscan, sink
from .darktime import SM4MJD, compute_darktime
from ..common import fitsread
from . import postsm4
from ..common.keywords import (COMPLETE, DUMMY, OMIT, PERFORM, add_history, put_float, put_int,
                          put_str, ref_history, to_short, update_switch)
from ..common.errors import CalibrationError
from .steps import Step, StepContext, name_reference, run_step
from .exposure import (ExposureInfo, Switches, known_reference, raise_missing, reference,
                       require_ccdtab, step_state)
from ..common.imageio import Exposure, Imset
from ..common.refs import (RefFile, RefSet, corner_and_bin, cut_reference, find_alignment, find_chip_extver,
                   read_ref_image)
from ..common.tables import CCDParams, OverscanLayout, read_bpixtab, read_ccdtab, read_oscntab
from ..common.trailer import Trailer


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
        levels = [float(np.float32(bias) * np.float32(gain)) if bias > 0 else 0.0
                  for bias, gain in zip(params.ccdbias, params.atodgain)]
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


def flag_bad_pixels(dq: np.ndarray, bpix: RefFile, info: ExposureInfo, chip: ImsetInfo,
                    trailer: Trailer) -> np.ndarray:
    """DQICORR's BPIXTAB flags for one imset (with calacs.e's place-holder message)."""
    rows = read_bpixtab(bpix, info.ccdamp, info.ccdgain, chip.chip)
    ltv0 = (chip.ltv[0] + chip.ltm[0] - 1.0, chip.ltv[1] + chip.ltm[1] - 1.0)
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


@dataclass
class CcdPlan:
    """The ACSCCD step states and the overscan table (calacs.e's GetACSFlags)."""

    dqicorr: str
    biascorr: str
    blevcorr: str
    sinkcorr: str
    oscntab: RefFile


def ccd_plan(primary: fits.Header, switches: Switches, refs: RefSet, env,
             trailer: Trailer) -> CcdPlan:
    """The step states, after checking the references ACSCCD itself insists on."""
    def ref(key):
        return known_reference(refs, primary, key, env)

    def added(key):
        return refs.add(reference(primary, key, env))

    missing: list[str] = []
    require_ccdtab(ref("CCDTAB"), missing)
    oscntab = ref("OSCNTAB")
    if not oscntab.exists and oscntab.given:
        missing.append(f"OSCNTAB `{oscntab.name}'")
    dqicorr = OMIT
    if switches.perform("DQICORR"):
        bpix = ref("BPIXTAB")
        if not bpix.exists and bpix.given:
            missing.append(f"BPIXTAB `{bpix.name}'")
        dqicorr = step_state(switches, "DQICORR", bpix)
    biascorr = OMIT
    if switches.perform("BIASCORR"):
        biasfile = ref("BIASFILE")
        if not biasfile.exists:
            missing.append(f"BIASFILE `{biasfile.name}'")
        biascorr = step_state(switches, "BIASCORR", biasfile)
        satufile = added("SATUFILE")
        if not satufile.exists:
            missing.append(f"SATUFILE `{satufile.name}'")
    sinkcorr = OMIT
    if switches.perform("SINKCORR"):
        snkcfile = added("SNKCFILE")
        if not snkcfile.exists:
            missing.append(f"SNKCFILE `{snkcfile.name}'")
        sinkcorr = step_state(switches, "SINKCORR", snkcfile)
    blevcorr = OMIT
    if switches.perform("BLEVCORR"):
        blevcorr = DUMMY if (oscntab.exists and oscntab.dummy) else PERFORM
    for item in missing:
        trailer.warn(f"{item} not found or can't open.")
    raise_missing(missing)
    if not oscntab.exists:
        raise CalibrationError(f"OSCNTAB `{oscntab.name}' not found.")
    return CcdPlan(dqicorr=dqicorr, biascorr=biascorr, blevcorr=blevcorr, sinkcorr=sinkcorr,
                   oscntab=oscntab)


@dataclass
class BlevOutcome:
    """What BLEVCORR did: HISTORY wording, the BIASLEV[A-D] values and which imsets to trim."""

    from_overscan: bool = False          # a bias level was measured (else the CCDTAB default)
    driftcorr: bool = False
    levels: list[float] = field(default_factory=lambda: [0.0] * 4)
    trimmed: list[bool] = field(default_factory=list)


def run_ccd_stage(exposure: Exposure, info: ExposureInfo, switches: Switches, refs: RefSet,
                  env: dict[str, str] | None, trailer: Trailer, version: str,
                  output_name: str) -> Exposure:
    """Run ACSCCD on every imset; returns the trimmed exposure (blv_tmp).

    Each step runs on all imsets before the next starts (calacs.e's DoCCD order). The stage
    takes the raw imsets over and each step replaces an imset in the list as soon as its
    successor exists, so a full WFC frame is never held twice.
    """
    primary = exposure.primary
    begin_stage(trailer, "ACSCCD", version, exposure, info, output_name)
    plan = ccd_plan(primary, switches, refs, env, trailer)
    imsets, exposure.imsets = exposure.imsets, []
    ctx = _stage_context(imsets, primary, info, plan, refs, trailer)
    for step in STEPS_CCD:
        imsets = run_step(step, imsets, ctx)
    _write_bias_levels(primary, ctx.blev.levels, trailer)
    trailer.message("\n")
    trailer.end("ACSCCD")
    return Exposure(path=exposure.path, primary=primary, imsets=imsets)


def _stage_context(imsets: list[Imset], primary: fits.Header, info: ExposureInfo, plan: CcdPlan,
                   refs: RefSet, trailer: Trailer) -> StepContext:
    """Per-imset CCDTAB and OSCNTAB rows and amplifier layouts, with their trailer lines."""
    chips = [ImsetInfo.from_header(imset.sci_hdr) for imset in imsets]
    params = [ccd_parameters(refs, info, chip.chip, imset.shape[1])
              for chip, imset in zip(chips, imsets)]
    for index, chip_params in enumerate(params):
        if chip_params.row_dummy:
            trailer.warn(f"Row of CCDTAB for imset {index + 1} is DUMMY.")
    write_amp_keywords(primary, params[0])
    ccdtab_message(trailer, primary, refs["CCDTAB"], history=True)
    overscans = [read_oscntab(plan.oscntab, info.ccdamp, chip.chip, imset.shape[1],
                              imset.shape[0])
                 for chip, imset in zip(chips, imsets)]
    for overscan_layout in overscans:
        if not overscan_layout.found:
            trailer.warn("Could not find appropriate row from OSCNTAB.")
    amps = [acs_amp_layout(info, chip, chip_params, imset.shape)
            for chip, chip_params, imset in zip(chips, params, imsets)]
    return StepContext(primary=primary, info=info, refs=refs, trailer=trailer,
                       extra=dict(plan=plan, chips=chips, params=params, overscans=overscans,
                                  amps=amps, blev=BlevOutcome(trimmed=[False] * len(imsets))))


def acs_amp_layout(info: ExposureInfo, chip: ImsetInfo, params: CCDParams,
                   shape: tuple[int, int]) -> ccd.AmpLayout:
    """The amplifier quadrants and slot values of one ACS CCD imset."""
    return ccd.amp_layout(params.ampx, params.ampy, params.atodgain, params.readnoise, shape,
                          chip.ltv, order=wfc_slot_order(info.detector, chip.chip))


def wfc_slot_order(detector: str, chip: int) -> tuple[int, int, int, int] | None:
    """A WFC chip's quadrant slots hold its own two amplifiers (CD on chip 2, AB on chip 1);
    the HRC's follow from the readout."""
    if detector != "WFC":
        return None
    return ccd.CD_SLOTS if chip == 2 else ccd.AB_SLOTS


def _each(step: Callable[[Imset, int, StepContext], Imset]):
    """The step applied to every imset in turn, each replaced in the stage's list."""
    def apply(imsets: list[Imset], ctx: StepContext) -> tuple[list[Imset], str]:
        for index in range(len(imsets)):
            imsets[index] = step(imsets[index], index, ctx)
        return imsets, PERFORM
    return apply


def _with_state(apply, state: Callable[[StepContext], str]):
    """``apply``'s outcome is the step's state (a DUMMY step keeps DUMMY in the header)."""
    def applied(imsets: list[Imset], ctx: StepContext) -> tuple[list[Imset], str]:
        return apply(imsets, ctx)[0], state(ctx)
    return applied


# -- the steps ------------------------------------------------------------------------------

def _dqicorr(imset: Imset, index: int, ctx: StepContext) -> Imset:
    """A-to-D saturation and, unless BPIXTAB is a dummy, its bad pixels."""
    if ctx.plan.dqicorr not in (PERFORM, DUMMY):
        return imset
    dq = ccd.flag_atod_saturation(imset.sci, imset.dq, ctx.params[index].atod_saturate)
    bpix = ctx.refs.get("BPIXTAB")
    if ctx.plan.dqicorr == PERFORM and bpix is not None and bpix.exists:
        dq = flag_bad_pixels(dq, bpix, ctx.info, ctx.chips[index], ctx.trailer)
    return imset.replace(dq=dq)


def name_dqitab(ctx: StepContext) -> None:
    """DQICORR names its BPIXTAB ``dqitab`` in the trailer."""
    name_reference(ctx.trailer, ctx.refs.get("BPIXTAB"), table=True, label="dqitab")


def _dqicorr_history(ctx: StepContext, outcome: str) -> None:
    dqicorr_history(ctx.primary, ctx.refs.get("BPIXTAB"), saturation_checked=True)


def _biascorr(imset: Imset, index: int, ctx: StepContext) -> Imset:
    if ctx.plan.biascorr != PERFORM:
        return imset
    ref = read_ref_image(ctx.refs["BIASFILE"], ctx.chips[index].chip)
    align = find_alignment(imset.sci_hdr, imset.shape, ref.header, ref.sci.shape)
    cut = cut_reference(ref, align, imset.shape, "biascorr")
    sci, err, dq = ccd.subtract_bias(imset.sci, imset.err, imset.dq, cut.sci, cut.err, cut.dq)
    return imset.replace(sci=sci, err=err, dq=dq)


def _electrons(imset: Imset, index: int, ctx: StepContext) -> Imset:
    sci, err = ccd.convert_to_electrons(imset.sci, imset.err, ctx.amps[index])
    put_str(imset.sci_hdr, "BUNIT", "ELECTRONS")
    put_str(imset.err_hdr, "BUNIT", "ELECTRONS")
    return imset.replace(sci=sci, err=err)


def _blevcorr_step(imsets: list[Imset], ctx: StepContext) -> tuple[list[Imset], str]:
    ctx.extra["blev"] = _blevcorr(imsets, ctx)
    return imsets, PERFORM


def _name_oscntab(ctx: StepContext) -> None:
    oscntab = ctx.plan.oscntab
    ctx.trailer.refinfo("oscntab", oscntab.name, oscntab.pedigree, oscntab.descrip)


def _blevcorr_history(ctx: StepContext, outcome: str) -> None:
    primary, blev = ctx.primary, ctx.blev
    put_str(primary, "BLEVCORR", COMPLETE)
    add_history(primary, "BLEVCORR complete; bias level from overscan was subtracted."
                if blev.from_overscan else
                "BLEVCORR complete, but default bias level was subtracted.")
    add_history(primary, "BLEVCORR includes correction for drift along lines."
                if blev.driftcorr else
                "BLEVCORR does not include correction for drift along lines.")
    add_history(primary, "  Overscan region table: ")
    ref_history(primary, ctx.plan.oscntab, table=True)


def _darktime(imsets: list[Imset], ctx: StepContext) -> tuple[list[Imset], str]:
    info, params, trailer = ctx.info, ctx.params[0], ctx.trailer
    darktime, offset, note = compute_darktime(
        info.darktime, info.expstart, info.subarray, info.aperture, info.flashdur,
        info.flashstatus, params.overhead_unflashed, params.overhead_postflashed)
    if note:
        trailer.message(note)
    trailer.message(f"DARKTIME from SCI header: {np.float32(info.darktime):f}  Offset from CCDTAB: "
                    f"{offset:f}  Final DARKTIME: {darktime:f}")
    put_float(ctx.primary, "DARKTIME", darktime)
    return imsets, PERFORM


def _full_well(imset: Imset, index: int, ctx: StepContext) -> Imset:
    if not (ctx.plan.biascorr == PERFORM and ctx.plan.blevcorr == PERFORM):
        ctx.trailer.warn(f"\nNo Full-well saturation flagging being performed for imset "
                         f"{index + 1}.\n")
        return imset
    ctx.trailer.message(f"\nFull-well saturation flagging being performed for imset {index + 1}.\n")
    return imset.replace(dq=_flag_full_well(imset, ctx.chips[index], ctx.refs["SATUFILE"],
                                            ctx.overscans[index], ctx.trailer))


def _errors(imset: Imset, index: int, ctx: StepContext) -> Imset:
    if imset.sci_hdr.get("NCOMBINE", 1) and int(imset.sci_hdr.get("NCOMBINE", 1)) > 1:
        ctx.trailer.warn("NCOMBINE > 1 before the error array was initialized.")
    readnoise_only = ctx.info.targname.startswith("BIAS")
    return imset.replace(err=ccd.init_ccd_errors(imset.sci, imset.err, ctx.amps[index],
                                                 readnoise_only))


def _errors_done(imsets: list[Imset], ctx: StepContext) -> tuple[list[Imset], str]:
    add_history(ctx.primary, "Uncertainty array initialized.")
    ctx.trailer.message("")
    noise_message(ctx.trailer, ctx.params[0], bias_levels=True, indent="    ")
    return imsets, PERFORM


def _sinkcorr(imset: Imset, index: int, ctx: StepContext) -> Imset:
    return imset.replace(dq=_sink(imset, ctx.chips[index], ctx.refs["SNKCFILE"]))


def _trim_step(imset: Imset, index: int, ctx: StepContext) -> Imset:
    """Trim what BLEVCORR allows (calacs.e's blv_tmp)."""
    return _trim(imset, ctx.overscans[index]) if ctx.blev.trimmed[index] else imset


def _plan_state(key: str) -> Callable[[StepContext], str]:
    return lambda ctx: getattr(ctx.plan, key)


def _nothing(ctx: StepContext, *ignored) -> None:
    pass


def _always(state: str, ctx: StepContext) -> bool:
    return True


#: ACSCCD's steps in calacs.e's order (doccd.c).  DQICORR and BIASCORR report COMPLETE
#: whatever their state, as calacs.e does.
STEPS_CCD = (
    Step("DQICORR", _each(_dqicorr), _plan_state("dqicorr"), ("BPIXTAB",), table=True,
         runs=_always, names=name_dqitab, history=_dqicorr_history),
    Step("BIASCORR", _with_state(_each(_biascorr), _plan_state("biascorr")),
         _plan_state("biascorr"), ("BIASFILE",), runs=_always),
    Step(None, _each(_electrons)),
    Step("BLEVCORR", _blevcorr_step, _plan_state("blevcorr"), ("OSCNTAB",), table=True,
         names=_name_oscntab, complete=_nothing, history=_blevcorr_history),
    Step(None, _darktime),
    Step(None, _each(_full_well)),
    Step(None, _each(_errors)),
    Step(None, _errors_done),
    Step("SINKCORR", _each(_sinkcorr), _plan_state("sinkcorr"), ("SNKCFILE",)),
    Step(None, _each(_trim_step)),
)


def _write_bias_levels(primary: fits.Header, levels: list[float], trailer: Trailer) -> None:
    if "BIASLEVA" in primary:
        for index, amp in enumerate("ABCD"):
            if levels[index] != 0.0:
                put_float(primary, f"BIASLEV{amp}", levels[index], "mean of amp's bias level")
    else:
        trailer.message("  NO bias level keywords found to be updated.\n"
                        "  Reporting values in trailer file only!")


# -- BLEVCORR ----------------------------------------------------------------------------

def _blevcorr(imsets: list[Imset], ctx: StepContext) -> BlevOutcome:
    """performBlevCorr: choose the post-SM4 path or the classic overscan fit.

    Corrected imsets replace the untrimmed ones in ``imsets``.
    """
    info, trailer = ctx.info, ctx.trailer
    wfc_post_sm4 = info.detector == "WFC" and info.expstart >= SM4MJD
    if wfc_post_sm4 and not info.subarray:
        if len(imsets) == 2 and all(layout.found for layout in ctx.overscans):
            return _blevcorr_full_frame(imsets, ctx)
        trailer.message("Overscan missing, no destriping or bias level subtraction possible "
                        "for full frame data.")
        return BlevOutcome(trimmed=[False] * len(imsets))
    if wfc_post_sm4 and info.subarray:
        if postsm4.supports_bias_shift_subarray(info.aperture, ctx.overscans[0].virtual_overscan) \
                and _bias_shift(info):
            return _blevcorr_subarray(imsets, ctx)
        trailer.message("WFC readout is not a supported subarray or type/gain not set as needed "
                        "for new bias level algorithm for subarray data.")
        trailer.message("Data to be processed with original bias level algorithm.")
    return _blevcorr_overscan(imsets, ctx)


def _bias_shift(info: ExposureInfo) -> bool:
    """Dual-slope integrator data at gain 2 need the bias-shift correction."""
    return info.jwrotype == "DS_INT" and info.ccdgain == 2


def _blevcorr_full_frame(imsets: list[Imset], ctx: StepContext) -> BlevOutcome:
    """Post-SM4 WFC full frame: destriping and bias shift over both chips."""
    trailer = ctx.trailer
    trailer.switch("blevcorr", PERFORM)
    result = postsm4.full_frame_blevcorr(imsets[0].sci, imsets[1].sci,
                                         bias_shift=_bias_shift(ctx.info))
    trailer.extend(result.messages)
    for index in range(2):
        imsets[index] = imsets[index].replace(sci=result.chips[index])
        put_float(imsets[index].sci_hdr, "MEANBLEV", result.meanblev[index],
                  "mean of bias levels subtracted in electrons")
    for line in result.history:
        add_history(ctx.primary, line)
    trailer.switch("blevcorr", COMPLETE)
    return BlevOutcome(from_overscan=True, levels=[0.0 + level for level in result.blev[:4]],
                       trimmed=[True, True])


def _blevcorr_subarray(imsets: list[Imset], ctx: StepContext) -> BlevOutcome:
    """A post-SM4 WFC subarray supported by the bias-shift correction."""
    trailer = ctx.trailer
    trailer.message("This subarray data is supported for the bias shift correction.")
    trailer.switch("blevcorr", PERFORM)
    result = postsm4.subarray_blevcorr(imsets[0].sci, ctx.info.ccdamp)
    trailer.extend(result.messages)
    imsets[0] = imsets[0].replace(sci=result.chips[0])
    put_float(imsets[0].sci_hdr, "MEANBLEV", result.meanblev[0],
              "mean of bias levels subtracted in electrons")
    trailer.switch("blevcorr", COMPLETE)
    trimmed = [False] * len(imsets)
    trimmed[0] = True
    return BlevOutcome(from_overscan=ctx.overscans[0].found,
                       levels=[0.0 + level for level in result.blev[:4]], trimmed=trimmed)


def _blevcorr_overscan(imsets: list[Imset], ctx: StepContext) -> BlevOutcome:
    """The classic fit of each chip's overscan (or the CCDTAB bias where there is none)."""
    info, trailer = ctx.info, ctx.trailer
    outcome = BlevOutcome(trimmed=[True] * len(imsets))
    for index, (chip, params) in enumerate(zip(ctx.chips, ctx.params)):
        imset = imsets[index]
        result = overscan.subtract_overscan(
            imset.sci, imset.dq, ctx.overscans[index],
            amps=overscan_amps(info.detector, info.ccdamp, chip.chip),
            default_amp=default_bias_amp(info.detector, info.ccdamp, chip.chip),
            ampx=params.ampx, ampy=params.ampy, readnoise=params.readnoise,
            ccdbias=params.ccdbias, atodgain=params.atodgain, sdqflags=chip.sdqflags)
        imsets[index] = imset.replace(sci=result.sci)
        if result.from_overscan:
            _blev_messages(trailer, result, ctx.overscans[index])
            put_float(imset.sci_hdr, "MEANBLEV", result.meanblev,
                      "mean of bias levels subtracted in electrons")
            amp_levels = {amp.amp: amp.mean_level for amp in result.amps}
            outcome.from_overscan = True
            outcome.driftcorr = result.driftcorr
        else:
            trailer.warn("Overscan region is too small to do BLEVCORR;")
            trailer.message(f"     bias from CCDTAB of {result.default_bias:g} will be subtracted.")
            trailer.message("Default bias level from CCDTAB was subtracted.")
            amp_levels = {"ABCD"[result.default_amp_index]: result.default_bias}
        for amp, level in amp_levels.items():
            if level != 0.0:
                trailer.message(f"     bias level of {level:.6g} electrons was subtracted for AMP {amp}.")
                outcome.levels["ABCD".index(amp)] = level
    trailer.switch("blevcorr", COMPLETE)
    return outcome


def _blev_messages(trailer: Trailer, result: overscan.BlevResult, layout: OverscanLayout) -> None:
    trailer.extend(result.messages)
    for amp in result.amps:
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
                    f"     mean of bias levels subtracted was {result.meanblev:.6g} electrons.")


def _flag_full_well(imset: Imset, chip: ImsetInfo, satufile: RefFile, layout: OverscanLayout,
               trailer: Trailer) -> np.ndarray:
    ref = read_ref_image(satufile, chip.chip, sci_only=True)
    align = find_alignment(imset.sci_hdr, imset.shape, ref.header, ref.sci.shape)
    sci_corner, _ = corner_and_bin(imset.sci_hdr)
    ny, nx = imset.shape
    trimmed_shape = (ny - layout.trimy[0] - layout.trimy[1], nx - layout.trimx[0] - layout.trimx[1])
    kind = "Full-frame" if align.same_size else "Subarray"
    trailer.message(f"{kind} full-well saturation image flagging step being performed.")
    dq = ccd.flag_full_well_saturation(imset.sci, imset.dq, ref.sci, align.same_size, sci_corner,
                                       trimmed_shape, (align.x0, align.y0))
    trailer.message(f"{kind} full-well saturation image flagging step done.")
    return dq


def _sink(imset: Imset, chip: ImsetInfo, snkcfile: RefFile) -> np.ndarray:
    """SinkDetect for one imset; the reference is an untrimmed full frame."""
    # DetSinkChip: SCI,n for n up to NEXTEND (not NEXTEND/3) with the chip.
    nextend = int(snkcfile.hdus[0].header.get("NEXTEND", 1))
    extver = find_chip_extver(snkcfile.hdus, chip.chip, snkcfile.name, last=nextend)
    hdu = fitsread.find_hdu(snkcfile.hdus, ("SCI", extver))
    ref = fitsread.image_data(hdu, np.float32)
    align = find_alignment(imset.sci_hdr, imset.shape, hdu.header, ref.shape)
    if align.rx != 1 or align.ry != 1:
        raise CalibrationError("(sinkcorr) binned data is not supported.")
    ny, nx = imset.shape
    x0, y0 = (0, 0) if align.same_size else (align.x0, align.y0)
    if x0 < 0 or y0 < 0 or y0 + ny > ref.shape[0] or x0 + nx > ref.shape[1]:
        raise CalibrationError("(sinkcorr) the SNKCFILE does not cover the science array.")
    cut = ref[y0:y0 + ny, x0:x0 + nx]
    dq, _ = sink.flag_sink_pixels(imset.sci, imset.dq, cut, downward=extver != 1)
    return dq


def _trim(imset: Imset, layout: OverscanLayout) -> Imset:
    x0, y0 = layout.trimx[0], layout.trimy[0]
    sci = overscan.trim_overscan(imset.sci, layout)
    for header in (imset.sci_hdr, imset.err_hdr, imset.dq_hdr):
        for axis, shift in ((1, x0), (2, y0)):
            if shift:
                for key in (f"LTV{axis}", f"CRPIX{axis}"):
                    if key in header:
                        header[key] = float(header[key]) - shift
    put_int(imset.sci_hdr, "SIZAXIS1", sci.shape[1])
    put_int(imset.sci_hdr, "SIZAXIS2", sci.shape[0])
    return imset.replace(sci=np.ascontiguousarray(sci),
                      err=np.ascontiguousarray(overscan.trim_overscan(imset.err, layout)),
                      dq=np.ascontiguousarray(overscan.trim_overscan(imset.dq, layout)))


def overscan_amps(detector: str, ccdamp: str, chip: int) -> str:
    """The amplifiers of CCDAMP that read this chip (parseWFCamps for WFC)."""
    if detector == "WFC":
        candidates = "CD" if chip == 2 else "AB"
        return "".join(amp for amp in candidates if amp in ccdamp)
    return ccdamp


def default_bias_amp(detector: str, ccdamp: str, chip: int) -> int:
    """The CCDTAB column whose bias is subtracted where there is no overscan: the first amp
    of CCDAMP, or on WFC chip 2 of a multi-amp readout the amp two further on."""
    index = "ABCD".index(ccdamp[0])
    if len(ccdamp) > 1 and detector == "WFC" and chip == 2:
        index += 2
    return index


__all__ = ["run_ccd_stage", "ImsetInfo", "to_short", "ccd_parameters", "write_amp_keywords",
           "ccdtab_message", "noise_message"]
