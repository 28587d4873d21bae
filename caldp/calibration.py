"""Stage 1 (calxxx) and stage 2 (runastrodriz) on a dataset's files, as the instrument table says."""

import dataclasses
import logging

from astropy.io import fits

from . import hstcal
from .exit_codes import CaldpError, ExitCode
from .instruments import stage_inputs
from .stages import check_exit, find_program, run_program

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    program: str  # what ran, e.g. "calacs.e" or "caldp native calacs.e"
    kind: str  # "hstcal", "native", "pypi" or "skipped"
    version: str = ""  # what the program says of its version, where it says it


def raw_names(inputs):
    return [n for n in inputs.files if "_raw" in n]


def wav_names(inputs):
    return [n for n in inputs.files if n.endswith("_wav.fits")]


def apply_header_edits(inputs, instrument):
    """Keyword edits the table asks for (e.g. COS RANDSEED=1) in the bestrefs inputs."""
    if not instrument.header_edits:
        return
    for name in inputs.with_suffixes(instrument.bestrefs_suffixes):
        with fits.open(inputs.directory / name, mode="update") as hdul:
            for key, value in instrument.header_edits:
                hdul[0].header[key] = value


def choose_stage1(program, settings, env):
    """(argv, name, kind) of what calibrates: the program itself, or caldp's native implementation."""
    executable = None if settings.cal_mode == "native" else _find(program, env)
    if executable:
        return executable, program.executable, program.kind
    if program.native_module and settings.cal_mode != "hstcal":
        if settings.cal_mode == "auto":
            log.info("%s is not installed: calibrating with caldp's native implementation", program.executable)
        return None, f"caldp native {program.executable}", "native"
    if settings.cal_mode == "native":
        why = f"CALDP_CAL=native, but caldp has no native implementation of {program.executable}"
    else:
        why = f"{program.executable} is not installed (not on PATH, nor in $HSTCAL_PREFIX/bin)"
        if program.native_module:
            why += "; CALDP_CAL=auto would use caldp's native implementation"
    raise CaldpError(ExitCode.STAGE1_ERROR, f"{why}; {program.install_hint}")


def calibrate(inputs, instrument, settings, env, metrics):
    """Run the stage-1 program; raise CaldpError(23 or memory class) when it fails."""
    program = instrument.stage1
    files = stage_inputs(program, inputs.asn, raw_names(inputs), wav_names(inputs))
    apply_header_edits(inputs, instrument)
    executable, name, kind = choose_stage1(program, settings, env)
    argv = program.argv(files, executable) if executable else program.native_argv(files)
    version = hstcal.program_version(executable, env=env) if kind == "hstcal" else ""
    log.info("stage 1: %s%s (%s) on %s", name, f" {version}" if version else "", kind, " ".join(files))
    before = set(p.name for p in inputs.directory.iterdir())
    # A program that writes no trailer (cs0.e) gets its output saved as the first input's <rootname>.tra.
    transcript = inputs.directory / f"{files[0].split('_')[0]}.tra" if program.trailer_from_output else None
    run = run_program(argv, cwd=inputs.directory, env=env, transcript=transcript)
    metrics.add_program("calibrate", run, kind=kind)
    check_exit(run, program, ExitCode.STAGE1_ERROR, name)
    written = {p.name for p in inputs.directory.iterdir()} - before - {transcript.name if transcript else ""}
    if run.returncode == 0 and not written:
        # calstis on a target acquisition: every switch is OMIT, so the raw itself is the product.
        said = f" ({run.last_line})" if run.last_line else ""
        log.info("%s had nothing to calibrate and wrote no product%s; the inputs are the products", name, said)
    return StageOutcome(name, kind, version)


def _find(program, env):
    return hstcal.find_program(program.executable, env) if program.kind == "hstcal" else find_program(
        program.executable, env)


def drizzle(inputs, instrument, settings, env, metrics):
    """Stage 2 where the instrument has one and the data ask for it (DRIZCORR=PERFORM)."""
    program = instrument.stage2
    if program is None:
        return StageOutcome("", "skipped")
    files = stage_inputs(program, inputs.asn, raw_names(inputs), wav_names(inputs))
    if not _switch_requested(inputs, files, program.switch):
        log.info("stage 2 (%s) skipped: %s is not PERFORM", program.executable, program.switch)
        return StageOutcome(program.executable, "skipped")
    executable = find_program(program.executable, env)
    if not executable:
        raise CaldpError(
            ExitCode.STAGE2_ERROR, f"{program.executable} is not installed (not on PATH); {program.install_hint}"
        )
    args = ["-n", str(settings.drizzle_processes)] if program.args[:1] == ("-n",) else list(program.args)
    argv = [executable, *args, *files]
    program_env = {**dict(program.environment), **env}
    alignment = [k for k, v in program.environment if program_env[k] == v]
    if alignment:
        log.info("stage 2: absolute astrometric alignment skipped (%s)", ", ".join(f"{k}=off" for k in alignment))
    log.info("stage 2: %s on %s", program.executable, " ".join(files))
    run = run_program(argv, cwd=inputs.directory, env=program_env)
    metrics.add_program("drizzle", run, kind="pypi")
    check_exit(run, program, ExitCode.STAGE2_ERROR, program.executable)
    if program.expected_product and not any(inputs.directory.glob(program.expected_product)):
        detail = f": {run.last_error_line}" if run.last_error_line else ""
        raise CaldpError(ExitCode.STAGE2_ERROR,
                         f"{program.executable} exited 0 but wrote no {program.expected_product} product{detail}")
    return StageOutcome(program.executable, program.kind)


def _switch_requested(inputs, files, switch):
    """True when any stage-2 input (or, for an association, any member raw) says switch=PERFORM."""
    names = set(files) | set(raw_names(inputs))
    for name in sorted(names):
        value = fits.getheader(inputs.directory / name, ext=0).get(switch, "OMIT")
        if str(value).strip().upper() == "PERFORM":
            return True
    return False
