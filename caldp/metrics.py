"""Per-step and per-program resource use, written as JSON and as GNU time --verbose text.

The text file keeps the exact labels that archive tools scrape ("Elapsed (wall clock) time",
"Maximum resident set size (kbytes)", "Exit status").
"""

import contextlib
import dataclasses
import json
import os
import resource
import time


def process_age_seconds():
    """Seconds since this process started (Linux /proc), so the wall time covers interpreter start-up
    and imports as GNU time's does; None where /proc is not available."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), counted after the ")" of the command name
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _usage():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own, children


def own_peak_rss_kb():
    """This process's own peak RSS (VmHWM). ru_maxrss would do on a process started small, but Linux
    seeds it at exec with the launching process's high-water mark: caldp run in-process by a test or a
    batch driver would report that driver's size."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclasses.dataclass
class StepMetrics:
    name: str
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # caldp and its children
    max_rss_kb: int = 0  # caldp's own peak so far
    children_max_rss_kb: int = 0  # largest program so far (each program's own peak, see stages)
    status: str = "ok"


def reset_peak_rss():
    """Start this process's peak RSS (VmHWM) afresh at its current size, where Linux allows it, so a
    dataset run in a process that ran others reports its own peak, not theirs."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


class RunMetrics:
    def __init__(self, command, include_startup=False):
        """include_startup: the process is caldp's own (the command line), so its wall time starts
        when the process did, covering interpreter start-up and imports as GNU time's does; otherwise
        the run shares a process and its peak RSS is counted from now."""
        self.command = command
        if not include_startup:
            reset_peak_rss()
        age = process_age_seconds() if include_startup else None
        self.started = time.monotonic() - (age or 0.0)
        self.steps = []
        self.programs = []

    @contextlib.contextmanager
    def step(self, name):
        metrics = StepMetrics(name)
        self.steps.append(metrics)
        start = time.monotonic()
        own0, kids0 = _usage()
        try:
            yield metrics
        except BaseException:
            metrics.status = "failed"
            raise
        finally:
            own1, kids1 = _usage()
            metrics.wall_seconds = round(time.monotonic() - start, 3)
            metrics.cpu_seconds = round(
                (own1.ru_utime + own1.ru_stime + kids1.ru_utime + kids1.ru_stime)
                - (own0.ru_utime + own0.ru_stime + kids0.ru_utime + kids0.ru_stime),
                3,
            )
            metrics.max_rss_kb = own_peak_rss_kb()
            metrics.children_max_rss_kb = self.programs_peak_rss_kb()

    def add_program(self, step, run, *, kind):
        self.programs.append({"step": step, "kind": kind, **run.as_dict()})

    def programs_peak_rss_kb(self):
        # Not RUSAGE_CHILDREN: a child's ru_maxrss starts at its parent's size (the launcher's here).
        return max((p["max_rss_kb"] for p in self.programs), default=0)

    def totals(self):
        own, kids = _usage()
        caldp_peak, programs_peak = own_peak_rss_kb(), self.programs_peak_rss_kb()
        return {
            "wall_seconds": round(time.monotonic() - self.started, 3),
            "user_seconds": round(own.ru_utime + kids.ru_utime, 3),
            "system_seconds": round(own.ru_stime + kids.ru_stime, 3),
            "max_rss_kb": max(caldp_peak, programs_peak),
            "caldp_max_rss_kb": caldp_peak,
            "children_max_rss_kb": programs_peak,
        }

    def write(self, json_path, text_path, exit_status, extra=None):
        totals = self.totals()
        document = {
            "command": self.command,
            "exit_status": int(exit_status),
            "totals": totals,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "programs": self.programs,
            **(extra or {}),
        }
        json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        text_path.write_text(gnu_time_verbose(self.command, totals, exit_status))


def _clock(seconds):
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{int(hours)}:{int(minutes):02d}:{secs:05.2f}"
    return f"{int(minutes)}:{secs:05.2f}"


def gnu_time_verbose(command, totals, exit_status):
    wall = totals["wall_seconds"]
    cpu = totals["user_seconds"] + totals["system_seconds"]
    percent = int(round(100 * cpu / wall)) if wall > 0 else 0
    rows = [
        ("Command being timed", f'"{command}"'),
        ("User time (seconds)", f"{totals['user_seconds']:.2f}"),
        ("System time (seconds)", f"{totals['system_seconds']:.2f}"),
        ("Percent of CPU this job got", f"{percent}%"),
        ("Elapsed (wall clock) time (h:mm:ss or m:ss)", _clock(wall)),
        ("Maximum resident set size (kbytes)", str(totals["max_rss_kb"])),
        ("Exit status", str(int(exit_status))),
    ]
    return "".join(f"\t{label}: {value}\n" for label, value in rows)
