"""Per-instrument behaviour as one declarative table.

Everything the recipe needs to know about an instrument lives in INSTRUMENTS: which files make up
its inputs, which of them CRDS bestrefs updates, which programs calibrate it (and on which
files), which exit codes those programs use for "nothing to do", and which products get previews.
The recipe itself never asks "which instrument is this?".
"""

import dataclasses
import sys


@dataclasses.dataclass(frozen=True)
class Program:
    """A calibration program run as a subprocess on some of the dataset's files."""

    executable: str
    args: tuple = ()
    # Which input files the program is given; a name from STAGE_INPUT_RULES.
    inputs: str = "asn_else_raws"
    # Exit codes that mean "not applicable", not failure (calcos returns 5 for acquisitions).
    ignored_exit_codes: frozenset = frozenset()
    install_hint: str = ""
    # A module that reimplements the program in caldp, used when the executable is absent.
    native_module: str = ""
    # Header switch that must be PERFORM in the inputs for the program to run at all.
    switch: str = ""
    # Environment defaults for the program (a value the caller exported wins).
    environment: tuple = ()
    # A glob that must match a product afterwards: some programs exit 0 after swallowing errors.
    expected_product: str = ""
    # Where the program comes from: "hstcal" (C, found on PATH or in $HSTCAL_PREFIX/bin) or "pypi".
    kind: str = "pypi"
    # The program writes no trailer of its own (cs0.e): caldp saves its output as <rootname>.tra.
    trailer_from_output: bool = False

    def argv(self, files, executable=None):
        return [executable or self.executable, *self.args, *files]

    def native_argv(self, files):
        return [sys.executable, "-m", self.native_module, *self.args, *files]


@dataclasses.dataclass(frozen=True)
class Instrument:
    name: str
    instrume: str  # the INSTRUME keyword its files carry
    ref_variable: str  # the IRAF-style variable its reference names use (jref$...)
    input_suffixes: tuple  # file name suffixes (after "<id>_") that are calibration inputs
    bestrefs_suffixes: tuple  # inputs whose headers CRDS bestrefs updates
    stage1: Program
    stage2: Program = None
    header_edits: tuple = ()  # (keyword, value) set in every bestrefs input before stage 1
    dropped_suffixes: tuple = ()  # inputs that are not archived as outputs
    preview_suffixes: tuple = ()
    # MAST productSubGroupDescription values of the calibration inputs (what astroquery: downloads).
    mast_product_groups: tuple = ()


HSTCAL_HINT = (
    "build hstcal from source with `caldp-install-cal --from-source <hstcal tarball|dir|URL>` "
    "(installs into $HSTCAL_PREFIX, default ~/.local/hstcal, where caldp finds it) or put its bin on PATH"
)

RUNASTRODRIZ = Program(
    "runastrodriz",
    args=("-n", "1"),
    install_hint="pip install 'caldp[cal]' (drizzlepac)",
    switch="DRIZCORR",
    # Absolute (Gaia) alignment queries web services that may hang without a timeout; off unless
    # the operator turns it on by exporting these variables.
    environment=(
        ("ASTROMETRY_COMPUTE_APOSTERIORI", "off"),
        ("ASTROMETRY_APPLY_APRIORI", "off"),
        ("ASTROMETRY_STEP_CONTROL", "off"),
    ),
    expected_product="*_dr[zc].fits",
)

COS_RAW_SUFFIXES = tuple(
    f"{kind}{segment}.fits" for kind in ("rawtag", "rawaccum") for segment in ("", "_a", "_b")
) + ("rawacq.fits",)

INSTRUMENTS = {
    "acs": Instrument(
        name="acs",
        instrume="ACS",
        ref_variable="jref",
        input_suffixes=("asn.fits", "raw.fits"),
        bestrefs_suffixes=("raw.fits",),
        stage1=Program("calacs.e", install_hint=HSTCAL_HINT, native_module="caldp.native.acs", kind="hstcal"),
        stage2=RUNASTRODRIZ,
        preview_suffixes=("raw", "flt", "flc", "crj", "sfl", "drz", "drc"),
        mast_product_groups=("ASN", "RAW"),
    ),
    "wfc3": Instrument(
        name="wfc3",
        instrume="WFC3",
        ref_variable="iref",
        input_suffixes=("asn.fits", "raw.fits"),
        bestrefs_suffixes=("raw.fits",),
        stage1=Program("calwf3.e", install_hint=HSTCAL_HINT, kind="hstcal"),
        stage2=RUNASTRODRIZ,
        preview_suffixes=("raw", "ima", "flt", "flc", "drz", "drc"),
        mast_product_groups=("ASN", "RAW"),
    ),
    "stis": Instrument(
        name="stis",
        instrume="STIS",
        ref_variable="oref",
        input_suffixes=("asn.fits", "raw.fits", "wav.fits", "tag.fits", "epc.fits", "spt.fits"),
        bestrefs_suffixes=("raw.fits", "wav.fits", "tag.fits"),
        stage1=Program("cs0.e", args=("-tv",), inputs="raws_else_wavs", install_hint=HSTCAL_HINT, kind="hstcal",
                       trailer_from_output=True),
        dropped_suffixes=("epc.fits",),
        # A target acquisition's only product is its raw image, so raws get a preview too.
        preview_suffixes=("raw", "flt", "crj", "x1d", "sx1"),
        mast_product_groups=("ASN", "RAW", "EPC", "TAG", "WAV", "SPT"),
    ),
    "cos": Instrument(
        name="cos",
        instrume="COS",
        ref_variable="lref",
        input_suffixes=("asn.fits", *COS_RAW_SUFFIXES, "pha_a.fits", "pha_b.fits", "spt.fits", "epc.fits"),
        bestrefs_suffixes=COS_RAW_SUFFIXES,
        stage1=Program(
            "calcos",
            inputs="asn_else_first_raw",
            ignored_exit_codes=frozenset({5}),
            install_hint="pip install 'caldp[cal]' (calcos)",
        ),
        # calcos draws random numbers for pulse-height/time dithering; a fixed seed makes reruns identical.
        header_edits=(("RANDSEED", 1),),
        preview_suffixes=("x1d", "x1dsum", "x1dsum1", "x1dsum2", "x1dsum3", "x1dsum4"),
        mast_product_groups=(
            "ASN", "RAW", "EPC", "SPT", "RAWACCUM", "RAWACCUM_A", "RAWACCUM_B", "RAWACQ",
            "RAWTAG", "RAWTAG_A", "RAWTAG_B", "PHA_A", "PHA_B",
        ),
    ),
}


def _asn_else_raws(asn, raws, wavs):
    return [asn] if asn else raws


def _raws_else_wavs(asn, raws, wavs):
    # cs0.e finds association members itself from each raw; it is never given the asn table.
    return raws or wavs


def _asn_else_first_raw(asn, raws, wavs):
    return [asn] if asn else raws[:1]


STAGE_INPUT_RULES = {
    "asn_else_raws": _asn_else_raws,
    "raws_else_wavs": _raws_else_wavs,
    "asn_else_first_raw": _asn_else_first_raw,
}


def stage_inputs(program, asn, raws, wavs):
    """File names (basenames) a program is given, by its declared rule."""
    return STAGE_INPUT_RULES[program.inputs](asn, sorted(raws), sorted(wavs))
