"""caldp-process: calibrate one HST dataset end to end.

    python -m caldp.process <ipppssoot> [input=file:.] [output=file:.]

The recipe (DatasetRun.recipe) is a short list of named steps; each maps its failures to one
exit code. Instrument differences come from caldp.instruments, storage from caldp.storage.
"""

import argparse
import logging
import shutil
import signal
import sys

from . import __version__, hstfile, messages
from .calibration import calibrate, drizzle
from .create_preview import make_previews
from .dataset import DatasetId
from .exit_codes import CaldpError, ExitCode, error_from_exception, explain, simulated_error
from .inputs import select_inputs, verify_fits
from .instruments import INSTRUMENTS
from .locations import parse_location
from .logsetup import DatasetLogFile, configure_console
from .metrics import RunMetrics
from .provenance import package_versions, stamp_products, write_provenance
from .references import assign_references, crds_path, reference_environment
from .settings import Settings
from .storage import input_storage, output_storage
from .workspace import Workspace

log = logging.getLogger("caldp.process")


# ------------------------------------------------------------------------------ the steps
def fetch_inputs(source, dataset, instrument, workdir):
    """Bring the dataset's inputs into the work dir; keep exactly the dataset's files; check them."""
    source.fetch_inputs(dataset, instrument, workdir)
    inputs = select_inputs(dataset, instrument, workdir, location=source.root)
    for path in workdir.iterdir():
        if path.name not in inputs.files:
            path.unlink()
    for path in inputs.paths:
        verify_fits(path, instrument)
    kind = f"an association of {len(inputs.members)} members" if inputs.asn else "a singleton"
    log.info("%s is %s: %s", dataset, kind, " ".join(inputs.files))
    return inputs


def assign_dataset_references(inputs, instrument, settings, ref_env):
    files = [inputs.directory / n for n in inputs.with_suffixes(instrument.bestrefs_suffixes)]
    assignment = assign_references(
        files, context=settings.crds_context or None, sync=settings.sync_references, ref_env=ref_env,
        environ={**settings.environ, "CRDS_PATH": str(crds_path(settings.environ))},
    )
    for name, refs in assignment.references.items():
        log.info("%s: %d references selected with %s", name, len(refs), assignment.context)
    return assignment


def collect_products(workdir, instrument, result_dir, *, crds_context, environ):
    """Move the archive products (.fits, .tra) into the result tree, stamped with provenance."""
    dropped = tuple("_" + s for s in instrument.dropped_suffixes)
    products = sorted(
        p for p in workdir.iterdir() if p.is_file() and p.suffix in (".fits", ".tra") and not p.name.endswith(dropped)
    )
    stamp_products([p for p in products if p.suffix == ".fits"], crds_context=crds_context, environ=environ)
    for path in products:
        shutil.move(str(path), result_dir / path.name)
    return [p.name for p in products]


# ------------------------------------------------------------------------------ the recipe
class DatasetRun:
    def __init__(self, dataset, source, destination, settings, command, whole_process=False):
        self.dataset = dataset
        self.instrument = INSTRUMENTS[dataset.instrument]
        self.source = source
        self.destination = destination
        self.settings = settings
        self.metrics = RunMetrics(command, include_startup=whole_process)
        cache = crds_path(settings.environ)
        self.ref_env = reference_environment(cache)
        self.env = {**settings.environ, **self.ref_env, "CRDS_PATH": str(cache)}
        self.provenance = {"dataset": dataset.name, "instrument": dataset.instrument, "caldp": __version__}
        self.previews = None  # the make_previews step's PreviewReport, for metrics.json
        self.program_versions = {}  # the C programs' own --version answers (package_versions has the rest)

    def recipe(self, workspace):
        inputs = self.step("fetch_inputs", ExitCode.INPUT_TAR_FILE_ERROR,
                           fetch_inputs, self.source, self.dataset, self.instrument, workspace.cal)
        references = self.step("assign_references", ExitCode.BESTREFS_ERROR,
                               assign_dataset_references, inputs, self.instrument, self.settings, self.ref_env)
        self.provenance.update(crds_context=references.context, references=references.references,
                               missing_references=references.missing)
        stage1 = self.step("calibrate", ExitCode.STAGE1_ERROR,
                           calibrate, inputs, self.instrument, self.settings, self.env, self.metrics)
        stage2 = self.step("drizzle", ExitCode.STAGE2_ERROR,
                           drizzle, inputs, self.instrument, self.settings, self.env, self.metrics)
        self.provenance.update(calibration=stage1.kind, stage1=stage1.program,
                               stage2=stage2.program if stage2.kind != "skipped" else "none")
        if stage1.version:
            self.program_versions[stage1.program] = stage1.version
        products = self.step("collect_products", ExitCode.GENERIC_ERROR,
                             collect_products, workspace.cal, self.instrument, workspace.result,
                             crds_context=references.context, environ=self.env)
        # A preview that fails is logged and counted in metrics.json; it never fails the dataset.
        self.previews = self.step("make_previews", ExitCode.CREATE_PREVIEWS_ERROR,
                                  make_previews, workspace.result, self.instrument, environ=self.env)
        self.step("publish", ExitCode.S3_UPLOAD_ERROR, self.publish, workspace, products)

    def step(self, name, exit_code, function, *args, **kwargs):
        log.info("---- %s ----", name)
        with self.metrics.step(name):
            simulated = simulated_error(exit_code, self.settings.environ)
            if simulated is not None:
                raise simulated
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                raise error_from_exception(exc, exit_code) from exc

    def execute(self):
        try:
            workspace = Workspace(self.settings.home, self.dataset, keep=self.settings.keep_workdir)
        except OSError as exc:  # CALDP_HOME full, read-only or not a directory: the output may be fine
            error = CaldpError(ExitCode.INPUT_TAR_FILE_ERROR,
                               f"cannot make a work directory in CALDP_HOME {self.settings.home}: {exc}")
            self.report_failure(None, error, None)
            return error.code
        with workspace:
            with DatasetLogFile(workspace.logs / "process.log") as logfile:
                log.info("caldp %s processing %s (%s)", __version__, self.dataset, self.dataset.instrument)
                try:
                    self.recipe(workspace)
                except BaseException as exc:  # SIGTERM arrives as CaldpError, Ctrl-C as KeyboardInterrupt
                    error = error_from_exception(exc, ExitCode.GENERIC_ERROR)
                    if not isinstance(exc, CaldpError):
                        log.exception("unexpected failure")
                    self.report_failure(workspace, error, logfile)
                    return error.code
                log.info("%s: %s", self.dataset, explain(ExitCode.SUCCESS))
                return ExitCode.SUCCESS

    def write_logs(self, workspace, exit_status):
        self.provenance["versions"] = {**package_versions(), **self.program_versions}
        extra = {"calibration": self.provenance.get("calibration", "")}
        if self.previews is not None:
            extra["previews"] = self.previews.as_dict()
        self.metrics.write(workspace.logs / "metrics.json", workspace.logs / "process_metrics.txt", exit_status,
                           extra=extra)
        write_provenance(workspace.logs / "provenance.json", **self.provenance)

    def publish(self, workspace, products):
        self.provenance["products"] = products
        log.info("publishing %d products of %s to %s", len(products), self.dataset, self.destination.root)
        self.write_logs(workspace, ExitCode.SUCCESS)
        shutil.copytree(workspace.logs, workspace.result / "logs")
        # Crash-safe order (caldp.storage.files): the old tree's messages go before the tree is
        # replaced and the new ones come after, so a message never names files that are absent.
        try:
            self.destination.remove_message(messages.PROCESSED, self.dataset)
            self.destination.remove_message(messages.SYNCED, self.dataset)
        except CaldpError as exc:  # reading the output's messages failed: an output failure (25)
            raise CaldpError(ExitCode.S3_UPLOAD_ERROR, exc.cause) from exc
        published = self.destination.publish(self.dataset, workspace.result)
        self.destination.remove_message(messages.ERROR, self.dataset)
        self.destination.write_message(messages.PROCESSED, self.dataset, published)
        synced = self.destination.synced_paths(published)  # None: the output has no dataset-synced (S3)
        if synced is not None:
            self.destination.write_message(messages.SYNCED, self.dataset, synced)

    def report_failure(self, workspace, error, logfile):
        """Each part on its own: a full CALDP_HOME may cost the logs, never the dataset-error message.
        The old tree's messages go first, so none names the logs/ that publish_logs replaces."""
        log_failure(error, self.dataset)
        parts = [("remove the earlier messages of", lambda: (
            self.destination.remove_message(messages.PROCESSED, self.dataset),
            self.destination.remove_message(messages.SYNCED, self.dataset)))]
        if workspace is not None:
            parts += [("write the metrics and provenance of", lambda: self.write_logs(workspace, error.code)),
                      ("publish the logs of", lambda: (logfile.flush(), self.destination.publish_logs(
                          self.dataset, workspace.logs)))]
        parts.append(("record the failure in the output of",
                      lambda: self.destination.write_message(messages.ERROR, self.dataset, messages.error_lines(error))))
        for what, part in parts:
            try:
                part()
            except Exception as exc:  # best effort once the output or the work dir itself fails
                log.error("could not %s %s: %s", what, self.dataset, exc)


# ------------------------------------------------------------------------------ command line
def run(dataset_text, input_text="file:.", output_text="file:.", environ=None, whole_process=False):
    """Calibrate one dataset; return its ExitCode. whole_process: this process is the command's own."""
    command = f"caldp-process {dataset_text} {input_text} {output_text}"
    destination = None
    try:
        settings = Settings.from_environ(environ)
        destination = output_storage(parse_location(output_text, role="output"), settings)
        dataset = DatasetId.parse(dataset_text)
        source = input_storage(parse_location(input_text, role="input"), settings)
    except CaldpError as error:  # before a run exists: no products, just say why
        report_early_failure(error, dataset_text, destination)
        return error.code
    try:
        with destination.lock(dataset):
            return DatasetRun(dataset, source, destination, settings, command, whole_process).execute()
    except CaldpError as error:  # locked by another run: that run's messages are not ours to touch
        return log_failure(error)
    except OSError as exc:  # the output root itself cannot be written (lock file)
        return log_failure(CaldpError(ExitCode.S3_UPLOAD_ERROR, f"output {output_text} is not writable: {exc}"))


def log_failure(error, subject=None):
    """The cause and the exit code's explanation, in the log; returns the code."""
    log.error("%s", f"{subject} failed: {error.cause}" if subject else error.cause)
    log.error("%s", explain(error.code))
    return error.code


def report_early_failure(error, dataset_text, destination):
    """Log the cause; for a well-formed id (safe as a file name) also write dataset-error."""
    log_failure(error)
    name = str(dataset_text).strip().lower()
    if destination is None or not hstfile.DATASET_ID.fullmatch(name):
        return
    try:
        destination.write_message(messages.ERROR, DatasetId(name, "unknown"), messages.error_lines(error))
    except Exception as exc:
        log.error("could not record the failure of %s in the output: %s", name, exc)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _terminate(signum, frame):
    """SIGTERM, SIGINT (Ctrl-C) and SIGHUP unwind the run like an error: a running program is stopped
    where it was started (stages.run_program), the work dir is removed, and the failure is reported."""
    for number in _STOP_SIGNALS:  # one clean-up is enough
        signal.signal(number, signal.SIG_IGN)
    raise CaldpError(ExitCode.GENERIC_ERROR, f"terminated by {signal.Signals(signum).name}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="caldp-process", description="Calibrate one HST dataset.")
    parser.add_argument("dataset", help="ipppssoot, e.g. j8bt05njq")
    parser.add_argument("input", nargs="?", default="file:.", help="file:<dir> | s3://bucket/prefix | astroquery:")
    parser.add_argument("output", nargs="?", default="file:.", help="file:<dir> | s3://bucket/prefix")
    parser.add_argument("--version", action="version", version=f"caldp {__version__}")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return ExitCode.SUCCESS if exc.code == 0 else ExitCode.CMDLINE_ERROR
    configure_console()
    for number in _STOP_SIGNALS:
        signal.signal(number, _terminate)
    return int(run(args.dataset, args.input, args.output, whole_process=True))


if __name__ == "__main__":
    sys.exit(main())
