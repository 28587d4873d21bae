"""Running calibration programs: argv, cwd, environment, streamed output, exit-status meaning."""

import dataclasses
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .exit_codes import CaldpError, ExitCode, explain_signal

log = logging.getLogger(__name__)

# A child still running when run_program is left by an exception (SIGTERM or Ctrl-C reaching caldp)
# gets SIGTERM, then SIGKILL after this many seconds.
STOP_GRACE_SECONDS = 5.0
# The programs' own error lines ("ERROR:  The following reference file is missing:" in calcos,
# "ERROR: ..." in calacs.e, "[ERROR] IDCTAB file ... not found" in drizzlepac) say more than the
# traceback's last line.
_ERROR_LINE = re.compile(r"^\s*(ERROR|Error)\b[:\s]|\[ERROR\]")
_TRACEBACK = "Traceback (most recent call last)"


@dataclasses.dataclass(frozen=True)
class ProgramRun:
    argv: tuple
    returncode: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_kb: int
    last_error_line: str
    memory_error_seen: bool
    last_line: str = ""  # the program's last non-blank output line

    def as_dict(self):
        return dataclasses.asdict(self)


# The program runs under this small launcher: it forks it and reports the program's own rusage. A
# child forked straight from caldp starts with caldp's memory, and Linux keeps that high-water mark
# across exec in the child's ru_maxrss: /bin/true "peaks" at caldp's 100-400 MB. The launcher's own
# start (python -I -S, ~8 MB) is the floor of what is reported.
#
# Neither may outlive caldp, even when caldp is SIGKILLed: the launcher asks for SIGUSR2 when the
# thread that started it dies (PR_SET_PDEATHSIG) and then kills its whole process group (it leads
# its own session: the program and whatever the program started); the program itself gets SIGKILL
# when the launcher dies. Each checks getppid() after asking, in case the parent died before.
_LAUNCHER = r"""
import ctypes, os, signal, sys
report, parent, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def pdeathsig(number):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(number), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
def orphaned(received=None, frame=None):
    os.killpg(0, signal.SIGKILL)
    os._exit(128 + signal.SIGKILL)
signal.signal(signal.SIGUSR2, orphaned)
pdeathsig(signal.SIGUSR2)
if os.getppid() != parent:
    orphaned()
launcher = os.getpid()
pid = os.fork()
if pid == 0:
    try:
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        pdeathsig(signal.SIGKILL)
        if os.getppid() != launcher:
            os._exit(137)
        os.execv(argv[0], argv)
    except OSError as exc:
        os.write(2, ("cannot start %s: %s\n" % (argv[0], exc)).encode())
    os._exit(127)
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(number, lambda received, frame: os.kill(pid, received))
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    out.write("%d %r\n" % (usage.ru_maxrss, usage.ru_utime + usage.ru_stime))
if os.WIFSIGNALED(status):  # die the same way, so that caldp explains it (SIGKILL: memory)
    number = os.WTERMSIG(status)
    if number not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)
sys.exit(os.waitstatus_to_exitcode(status))
"""


class OutputScan:
    """What a program's output says about how it ended, read line by line.

    The cause of a failure is the program's own ERROR line: the first line of the *last* run of
    consecutive ERROR lines, with the next line when it ends in ":" (calcos: "ERROR: The following
    reference file is missing:" then the file). The last run, because calwf3.e reports conditions it
    recovers from as ERROR lines too (every UVIS run says "ERROR: SATUFILE 'N/A' not found" and goes
    on): the fatal one comes last. Without an ERROR line: the message of the last Python exception
    (the line that ends a traceback), else the last line mentioning an error, else the last line. The
    indented lines inside a traceback (frames and their source, e.g. "raise Exception(str(errorobj))")
    are never the cause.
    """

    def __init__(self):
        self.marked, self.continues, self.in_run = "", False, False
        self.last_error, self.last_line, self.memory_error = "", "", False
        self.in_traceback, self.exception = False, ""

    def feed(self, line):
        text = line.strip()
        self.memory_error = self.memory_error or "MemoryError" in line
        if text.startswith(_TRACEBACK):
            self.in_traceback, self.in_run = True, False
            return
        if self.in_traceback and text:
            if line[:1].isspace():  # a frame or its source line
                return
            self.in_traceback, self.exception = False, text
        if _ERROR_LINE.search(line):
            if not self.in_run:
                self.marked, self.continues = text, text.endswith(":")
            self.in_run = True
        elif text:
            if self.continues:
                self.marked, self.continues = f"{self.marked} {text}", False
            self.in_run = False
        if text:
            self.last_line = text
        if "error" in text.lower():
            self.last_error = text

    @property
    def cause(self):
        return self.marked or self.exception or self.last_error or self.last_line


def find_program(executable, environ):
    return shutil.which(executable, path=environ.get("PATH", os.defpath))


def run_program(argv, *, cwd, env, output_log=log, transcript=None):
    """Run argv without a shell in `cwd`, streaming its merged output line by line into the log
    (and into the file `transcript`, when given)."""
    start = time.monotonic()
    output_log.info("running: %s (in %s)", " ".join(argv), cwd)
    executable = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH", os.defpath))
    if not executable or not os.access(executable, os.X_OK):
        raise CaldpError(ExitCode.GENERIC_ERROR, f"{argv[0]} could not be started: not found or not executable")
    with tempfile.TemporaryDirectory(prefix="caldp-run-") as scratch:
        report = os.path.join(scratch, "rusage")
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, report, str(os.getpid()), executable, *argv[1:]],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group (launcher and program): stoppable as a whole
        )
        scan = OutputScan()
        saved = open(transcript, "w", encoding="utf-8") if transcript else None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip()
                output_log.info("%s", line)
                if saved:
                    saved.write(line + "\n")
                scan.feed(line)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if proc.returncode is None:  # left by an exception: the program must not outlive this call
                stop_group(proc)
            proc.stdout.close()
            if saved:
                saved.close()
        max_rss_kb, cpu_seconds = int(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
        try:
            with open(report) as handle:  # the program's own, as the launcher saw it
                words = handle.read().split()
            max_rss_kb, cpu_seconds = int(words[0]), float(words[1])
        except (OSError, IndexError, ValueError):
            pass  # the launcher itself was killed: fall back to its rusage
    return ProgramRun(
        argv=tuple(argv),
        returncode=proc.returncode,
        wall_seconds=round(time.monotonic() - start, 3),
        cpu_seconds=round(cpu_seconds, 3),
        max_rss_kb=max_rss_kb,
        last_error_line=scan.cause,
        memory_error_seen=scan.memory_error,
        last_line=scan.last_line,
    )


def check_exit(run, program, failure_code, name):
    """Turn a finished run into success, an ignored status, or a CaldpError with a one-line cause."""
    code = run.returncode
    if code == 0:
        return
    if code in program.ignored_exit_codes:
        log.info("Ignoring exit status %d of %s (not applicable to this dataset)", code, name)
        return
    if code < 0:
        why = explain_signal(-code)
        if -code == signal.SIGKILL:
            raise CaldpError(ExitCode.SUBPROCESS_MEMORY_ERROR, f"{name} {why} (probable out-of-memory kill)")
        raise CaldpError(failure_code, f"{name} {why}")
    if run.memory_error_seen:
        raise CaldpError(ExitCode.SUBPROCESS_MEMORY_ERROR, f"{name} exited with status {code} after a MemoryError")
    detail = f": {run.last_error_line}" if run.last_error_line else ""
    raise CaldpError(failure_code, f"{name} exited with status {code}{detail}")


def stop_group(proc, grace_seconds=STOP_GRACE_SECONDS):
    """Stop a child's whole process group: SIGTERM first, SIGKILL after a grace period; reap it."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)  # whatever of the group is left (the launcher's program)
    proc.wait()


def _signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
