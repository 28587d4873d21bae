"""caldp-batch: many datasets, each through the real caldp-process, N at a time.

    caldp-batch <ids-file | id ...> [input] [output] [config] --workers N [--force]

Each dataset runs as its own caldp-process (its own work directory, lock and messages), so
concurrent datasets sharing one output root never touch each other's files. Datasets already
in messages/dataset-processed/ are skipped unless --force. The exit status is 0 only if every
dataset succeeded (or was skipped); interrupted by SIGINT (Ctrl-C), SIGTERM or SIGHUP, it stops
starting datasets, stops the running ones, prints the summary and exits 128 + the signal's number
(130, 143, 129).
"""

import argparse
import concurrent.futures
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import tempfile
import time
from pathlib import Path

from . import messages
from .dataset import DatasetId
from .exit_codes import CaldpError, ExitCode, interrupted_status, to_exit_code
from .locations import FileLocation, parse_location

_LOCATION = re.compile(r"^(file:|s3://|astroquery:?$)", re.IGNORECASE)


@dataclasses.dataclass
class DatasetResult:
    dataset: str
    status: str  # processed | failed | skipped | interrupted | not started
    exit_code: int
    wall_seconds: float = 0.0
    max_rss_kb: int = 0
    cause: str = ""  # a failure's one-line cause (its dataset-error message, else its last ERROR line)
    log: str = ""  # where to read more: the dataset-error message, or caldp-process's captured output

    @property
    def exit_name(self):
        if self.status == "not started":
            return "-"
        code = to_exit_code(self.exit_code)
        return code.name if code is not None else "UNKNOWN"


@dataclasses.dataclass(frozen=True)
class BatchRequest:
    datasets: tuple
    input: str = "file:."
    output: str = "file:."
    config: str = "caldp-config-onsite"


def parse_request(positionals):
    """Split positionals into ids (or an ids file), then input, output and config.

    Ids are 9-character dataset names; a positional naming an existing file that is not a
    location is a file of ids (one per line, '#' comments). Locations come in input, output order.
    """
    ids, locations, rest = [], [], []
    for arg in positionals:
        if _LOCATION.match(arg):
            locations.append(arg)
        elif not locations and re.fullmatch(r"[A-Za-z][A-Za-z0-9]{8}", arg):
            ids.append(arg.lower())
        elif not locations and Path(arg).is_file():
            ids.extend(read_ids_file(Path(arg)))
        else:
            rest.append(arg)
    if not ids:
        raise CaldpError(ExitCode.CMDLINE_ERROR, "no dataset ids given")
    if len(locations) > 2 or len(rest) > 1:
        raise CaldpError(ExitCode.CMDLINE_ERROR, f"unexpected arguments: {' '.join(locations[2:] + rest[1:])}")
    for name in ids:
        DatasetId.parse(name)  # fail before anything runs
    unique = tuple(dict.fromkeys(ids))
    return BatchRequest(unique, *(locations + ["file:.", "file:."])[:2], *(rest or ["caldp-config-onsite"]))


def read_ids_file(path):
    ids = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        ids.extend(text.split())
    return [i.lower() for i in ids]


def already_processed(output, dataset):
    """True when caldp's own dataset-processed message for the dataset is in the output."""
    from .storage import output_storage

    location = parse_location(output, role="output")
    return output_storage(location).has_message(messages.PROCESSED, DatasetId.parse(dataset))


class Interrupt:
    """The batch's stop switch: the first SIGINT/SIGTERM/SIGHUP stops starting datasets and is passed
    on to the running caldp-process children (which stop their programs and clean up)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.signum = None
        self._children = set()
        self._lock = threading.Lock()

    @property
    def stopped(self):
        return self.signum is not None

    def install(self):
        for number in self.SIGNALS:
            signal.signal(number, self.handle)

    def handle(self, signum, frame=None):
        if self.signum is None:
            self.signum = signum
            print(f"caldp-batch: {signal.Signals(signum).name}: stopping the running datasets, starting no more",
                  file=sys.stderr, flush=True)
        with self._lock:
            children = list(self._children)
        for proc in children:  # caldp-process handles each of these signals once, like SIGTERM
            try:
                proc.send_signal(signum)
            except (ProcessLookupError, OSError):
                pass

    def started(self, proc):
        with self._lock:
            self._children.add(proc)
        if self.stopped:  # the signal came while it was being started
            self.handle(self.signum)

    def ended(self, proc):
        with self._lock:
            self._children.discard(proc)


def output_log_dir(env):
    """Where caldp-batch keeps each caldp-process's output: $CALDP_HOME/caldp-batch-logs (else a temp dir)."""
    base = Path(env.get("CALDP_HOME") or os.getcwd()) / "caldp-batch-logs"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="caldp-batch-logs-"))


def run_one(dataset, request, env, interrupt=None, log_dir=None):
    """Run caldp-process for one dataset; its rusage covers the whole process tree it waited for.
    Its output (stdout and stderr) goes to <log_dir>/<dataset>.log."""
    if interrupt is not None and interrupt.stopped:
        return DatasetResult(dataset, "not started", 0)
    command = [_caldp_process(), dataset, request.input, request.output, request.config]
    log_path = Path(log_dir or output_log_dir(env)) / f"{dataset}.log"
    start, started_at = time.monotonic(), time.time()
    with open(log_path, "wb") as output:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    if interrupt is not None:
        interrupt.started(proc)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if interrupt is not None:
            interrupt.ended(proc)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code < 0:  # caldp-process itself was killed: SIGKILL is the memory class
        code = int(ExitCode.CONTAINER_MEMORY_ERROR if -code == 9 else ExitCode.GENERIC_ERROR)
    result = DatasetResult(dataset, "processed" if code == 0 else "failed", code,
                           round(time.monotonic() - start, 2), int(usage.ru_maxrss), log=str(log_path))
    if code != 0:
        if interrupt is not None and interrupt.stopped:
            result.status = "interrupted"
        result.cause, message = failure_cause(dataset, request.output, log_path, started_at)
        result.log = message or result.log
    return result


_LOG_ERROR = re.compile(r"^\S+ \S+ - ERROR - \S+ - (?P<text>.*)$")


def failure_cause(dataset, output, log_path, since):
    """(one-line cause, dataset-error path or "") of a failed caldp-process: the "cause:" line of the
    dataset-error message it wrote (file: outputs), else the last ERROR line of its output (not the
    exit code's explanation), else its last line."""
    try:
        location = parse_location(output, role="output")
        message = Path(location.path) / "messages" / "dataset-error" / dataset
        if message.is_file() and message.stat().st_mtime >= since - 1:
            for line in message.read_text(errors="replace").splitlines():
                if line.startswith("cause:"):
                    return line[len("cause:"):].strip(), str(message)
    except (CaldpError, AttributeError, OSError):
        pass
    last_error, last_line = "", ""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        last_line = text
        match = _LOG_ERROR.match(text)
        if match and not match["text"].startswith("EXIT - "):
            last_error = match["text"].strip()
    cause = last_error or last_line
    if cause.startswith(f"{dataset} failed: "):
        cause = cause[len(f"{dataset} failed: "):]
    return " ".join(cause.split()), ""


def _caldp_process():
    """The caldp-process installed with this caldp (pip puts scripts in the interpreter's scripts dir)."""
    installed = Path(sysconfig.get_path("scripts")) / "caldp-process"
    return str(installed) if installed.exists() else (shutil.which("caldp-process") or "caldp-process")


class Progress:
    """One line per finished dataset, and a bar redrawn in place on a terminal."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.lock = threading.Lock()

    def update(self, result):
        with self.lock:
            self.done += 1
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            why = f": {result.cause} (see {result.log})" if result.status in ("failed", "interrupted") else ""
            self.stream.write(f"[{bar}] {self.done}/{self.total} {result.dataset} {result.status} "
                              f"({result.exit_code} {result.exit_name}, {result.wall_seconds:.1f} s){why}\n")
            self.stream.flush()


def reclaim_leftovers(output):
    """Before anything starts: put right what runs killed outright left in a file: output (half-swapped
    trees, staging, temporary messages); datasets a live run holds are skipped."""
    location = parse_location(output, role="output")
    if isinstance(location, FileLocation) and location.path.is_dir():
        from .storage.files import reclaim_output

        for name in reclaim_output(location.path):
            print(f"caldp-batch: reclaimed what a killed run of {name} left", file=sys.stderr)


def run_local(request, workers, force=False, env=None, progress=None, interrupt=None):
    """Run the datasets N at a time. interrupt (an Interrupt whose handlers are installed): once it
    is triggered, no dataset starts ("not started") and the running ones end "interrupted"."""
    env = dict(os.environ if env is None else env)
    interrupt = interrupt or Interrupt()
    reclaim_leftovers(request.output)
    results, todo = {}, []
    for dataset in request.datasets:
        if interrupt.stopped:
            results[dataset] = DatasetResult(dataset, "not started", 0)
        elif not force and already_processed(request.output, dataset):
            results[dataset] = DatasetResult(dataset, "skipped", 0)
        else:
            todo.append(dataset)
    progress = progress or Progress(len(todo))
    log_dir = output_log_dir(env) if todo else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_one, d, request, env, interrupt, log_dir): d for d in todo}
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results[result.dataset] = result
            if result.status != "not started":
                progress.update(result)
    return [results[d] for d in request.datasets]


def summary_table(results):
    header = f"{'dataset':<10} {'status':<10} {'exit':>4} {'name':<24} {'wall s':>8} {'peak RSS MB':>11}"
    lines = [header, "-" * len(header)]
    for r in results:
        code = "-" if r.status == "not started" else r.exit_code
        why = f"  {r.cause} (see {r.log})" if r.status in ("failed", "interrupted") else ""
        lines.append(f"{r.dataset:<10} {r.status:<10} {code:>4} {r.exit_name:<24} "
                     f"{r.wall_seconds:>8.1f} {r.max_rss_kb / 1024:>11.1f}{why}")
    counts = {s: sum(r.status == s for r in results) for s in ("processed", "skipped", "failed")}
    counts.update({s: n for s in ("interrupted", "not started") if (n := sum(r.status == s for r in results))})
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="caldp-batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("positionals", nargs="+", metavar="ARG",
                        help="ids or an ids file, then [input] [output] [config]")
    parser.add_argument("--workers", type=int, default=1, help="datasets run at once (local)")
    parser.add_argument("--force", action="store_true", help="rerun datasets already processed")
    parser.add_argument("--aws-batch", metavar="QUEUE", help="submit one AWS Batch job per dataset to QUEUE")
    parser.add_argument("--wait", action="store_true", help="with --aws-batch: follow the jobs, retrying memory failures")
    parser.add_argument("--image", default=os.environ.get("CALDP_DOCKER_IMAGE", "caldp:latest"),
                        help="with --aws-batch: the caldp image for the job definitions")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
    try:
        args = parser.parse_args(argv)
        request = parse_request(args.positionals)
    except SystemExit as exc:
        return 0 if exc.code == 0 else int(ExitCode.CMDLINE_ERROR)
    except CaldpError as error:
        print(f"caldp-batch: {error.cause}", file=sys.stderr)
        return int(error.code)
    if args.aws_batch:
        return submit_to_aws(request, args)
    interrupt = Interrupt()
    interrupt.install()
    results = run_local(request, args.workers, force=args.force, interrupt=interrupt)
    print(summary_table(results), flush=True)
    if interrupt.stopped:
        return interrupted_status(interrupt.signum)
    return 0 if all(r.status == "processed" or r.status == "skipped" for r in results) else 1


def dataset_features(dataset, input_location):
    """Predictor features from local inputs; defaults where the inputs are remote."""
    from . import aws_batch
    from .instruments import INSTRUMENTS
    from .locations import FileLocation
    from .inputs import select_inputs

    location = parse_location(input_location, role="input")
    if isinstance(location, FileLocation) and location.path.is_dir():
        ident = DatasetId.parse(dataset)
        try:
            inputs = select_inputs(ident, INSTRUMENTS[ident.instrument], location.path)
        except CaldpError:
            return aws_batch.Features()
        return aws_batch.features_from_files(inputs.paths)
    return aws_batch.Features()


def submit_to_aws(request, args):
    import boto3

    from . import aws_batch
    from .storage import output_storage

    if not request.output.startswith("s3://"):
        print("caldp-batch: --aws-batch needs an s3:// output", file=sys.stderr)
        return int(ExitCode.CMDLINE_ERROR)
    destination = output_storage(parse_location(request.output, role="output"))
    todo = [d for d in request.datasets if args.force or not already_processed(request.output, d)]
    client = boto3.client("batch")
    aws_batch.ensure_job_definitions(client, args.image)
    first = {d: aws_batch.first_bin(dataset_features(d, request.input)) for d in todo}

    def record(tracked):
        destination.write_message("batch-jobs", DatasetId.parse(tracked.dataset), tracked.record())

    tracked = aws_batch.run_aws(client, args.aws_batch, todo, request.output, first, wait=args.wait,
                                record=record, poll_seconds=args.poll_seconds)
    print(aws_summary_table(tracked))
    return 0 if all(t.state in ("submitted", "running", "succeeded") for t in tracked) else 1


def aws_summary_table(tracked):
    from .aws_batch import MEMORY_BINS

    header = f"{'dataset':<10} {'state':<10} {'bin GB':>6} {'tries':>5}  reason"
    lines = [header, "-" * len(header)]
    for t in tracked:
        lines.append(f"{t.dataset:<10} {t.state:<10} {MEMORY_BINS[t.bin_index].gigabytes:>6} {t.tries:>5}  {t.reason}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
