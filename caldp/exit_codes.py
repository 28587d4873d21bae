"""Exit codes shared by caldp-process and the batch layer (one table, one place).

The numbers are those of the archive's HST pipeline (caldp/calcloud), so operators' retry logic
keeps working: 31-34 are memory failures that a batch layer retries with more memory.
"""

import enum
import errno
import signal


class ExitCode(enum.IntEnum):
    SUCCESS = 0
    GENERIC_ERROR = 1
    CMDLINE_ERROR = 2
    INPUT_TAR_FILE_ERROR = 21
    ASTROQUERY_ERROR = 22
    STAGE1_ERROR = 23
    STAGE2_ERROR = 24
    S3_UPLOAD_ERROR = 25
    S3_DOWNLOAD_ERROR = 26
    BESTREFS_ERROR = 27
    CREATE_PREVIEWS_ERROR = 28
    SUBPROCESS_MEMORY_ERROR = 31
    CALDP_MEMORY_ERROR = 32
    CONTAINER_MEMORY_ERROR = 33
    OS_MEMORY_ERROR = 34
    SVM_ERROR = 40
    MVM_ERROR = 41


_EXPLANATIONS = {
    ExitCode.SUCCESS: "processing completed successfully",
    ExitCode.GENERIC_ERROR: "an error with no specific handling (an untrapped exception, a locked dataset, a signal)",
    ExitCode.CMDLINE_ERROR: "the command line or the dataset id is invalid",
    ExitCode.INPUT_TAR_FILE_ERROR: "the dataset's input files could not be found, read or unpacked",
    ExitCode.ASTROQUERY_ERROR: "downloading the inputs from MAST (astroquery) failed",
    ExitCode.STAGE1_ERROR: "stage-1 calibration (calacs.e, calwf3.e, cs0.e, calcos) failed",
    ExitCode.STAGE2_ERROR: "stage-2 processing (runastrodriz) failed",
    ExitCode.S3_UPLOAD_ERROR: "writing the outputs (S3 upload or local publish) failed",
    ExitCode.S3_DOWNLOAD_ERROR: "reading from S3 failed (the inputs, or a message read back)",
    ExitCode.BESTREFS_ERROR: "CRDS bestrefs failed: mappings, context or a reference could not be obtained",
    ExitCode.CREATE_PREVIEWS_ERROR: "preview creation failed",
    ExitCode.SUBPROCESS_MEMORY_ERROR: "a calibration program ran out of memory (or was killed for it)",
    ExitCode.CALDP_MEMORY_ERROR: "caldp itself raised MemoryError",
    ExitCode.CONTAINER_MEMORY_ERROR: "the container was killed for exceeding its memory limit",
    ExitCode.OS_MEMORY_ERROR: "the operating system could not allocate memory (e.g. fork failed)",
    ExitCode.SVM_ERROR: "single-visit mosaic processing (runsinglehap) failed",
    ExitCode.MVM_ERROR: "multi-visit mosaic processing (runmultihap) failed",
}

MEMORY_ERRORS = frozenset(
    {
        ExitCode.SUBPROCESS_MEMORY_ERROR,
        ExitCode.CALDP_MEMORY_ERROR,
        ExitCode.CONTAINER_MEMORY_ERROR,
        ExitCode.OS_MEMORY_ERROR,
    }
)


def to_exit_code(code_or_name):
    """Accept 23, "23", "STAGE1_ERROR" or an ExitCode; return the ExitCode or None when unknown."""
    if isinstance(code_or_name, ExitCode):
        return code_or_name
    text = str(code_or_name).strip()
    if text.lstrip("-").isdigit():
        try:
            return ExitCode(int(text))
        except ValueError:
            return None
    return ExitCode.__members__.get(text.upper())


def explain(code_or_name):
    """Return 'EXIT - NAME[code]: explanation' for a code or name.

    >>> explain(23)
    'EXIT - STAGE1_ERROR[23]: stage-1 calibration (calacs.e, calwf3.e, cs0.e, calcos) failed'
    >>> explain(99)
    'EXIT - unhandled exit code: 99'
    """
    code = to_exit_code(code_or_name)
    if code is None:
        return f"EXIT - unhandled exit code: {code_or_name}"
    return f"EXIT - {code.name}[{int(code)}]: {_EXPLANATIONS[code]}"


def is_memory_error(code_or_name):
    """True for the memory class (31-34): a batch layer retries these with more memory.

    >>> is_memory_error(33), is_memory_error("CALDP_MEMORY_ERROR"), is_memory_error(23)
    (True, True, False)
    """
    return to_exit_code(code_or_name) in MEMORY_ERRORS


def explain_signal(signum):
    """Describe a child's death by signal, e.g. 'killed by signal SIGKILL[9]: ...'."""
    signum = abs(int(signum))
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"SIG{signum}"
    text = signal.strsignal(signum) or "unknown signal"
    return f"killed by signal {name}[{signum}]: {text}"


def interrupted_status(signum):
    """caldp-batch's exit status when a signal stopped it: 128 + the signal's number, as a shell
    reports a command killed by it (130 SIGINT/Ctrl-C, 143 SIGTERM, 129 SIGHUP). Not an ExitCode:
    no dataset ends with it (caldp-process itself exits 1, GENERIC_ERROR, when terminated).

    >>> interrupted_status(2), interrupted_status(15)
    (130, 143)
    """
    return 128 + abs(int(signum))


class CaldpError(Exception):
    """A failure that ends a run with a documented exit code and a one-line cause."""

    def __init__(self, code, cause):
        super().__init__(cause)
        self.code = ExitCode(code)
        self.cause = " ".join(str(cause).split())  # always one line


def error_from_exception(exc, default_code):
    """Map any exception raised inside a step to a CaldpError (memory failures keep their class)."""
    if isinstance(exc, CaldpError):
        return exc
    if isinstance(exc, MemoryError):
        return CaldpError(ExitCode.CALDP_MEMORY_ERROR, f"MemoryError: {exc}")
    if isinstance(exc, OSError) and (exc.errno == errno.ENOMEM or "Cannot allocate memory" in str(exc)):
        return CaldpError(ExitCode.OS_MEMORY_ERROR, f"OSError: {exc}")
    return CaldpError(default_code, f"{type(exc).__name__}: {exc}")


def simulated_error(step_code, environ):
    """CALDP_SIMULATE_ERROR=N lets operators exercise their retry logic without real failures.

    A memory-class N fails the first step with that class; N equal to a step's own exit code
    fails that step. Returns the exception to raise, or None.
    """
    wanted = to_exit_code(environ.get("CALDP_SIMULATE_ERROR", ""))
    if wanted is None or wanted == ExitCode.SUCCESS:
        return None
    if wanted == ExitCode.CALDP_MEMORY_ERROR:
        return MemoryError("simulated by CALDP_SIMULATE_ERROR=32")
    if wanted == ExitCode.OS_MEMORY_ERROR:
        return OSError(errno.ENOMEM, "Cannot allocate memory (simulated by CALDP_SIMULATE_ERROR=34)")
    if wanted in MEMORY_ERRORS or wanted == step_code:
        return CaldpError(wanted, f"simulated by CALDP_SIMULATE_ERROR={int(wanted)}")
    return None
