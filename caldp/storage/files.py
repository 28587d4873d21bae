"""file:<dir> storage: loose files or one tarball in, a data/ + messages/ tree out.

Publishing is crash-safe at every instant (a reader sees the complete old tree or the complete new
tree, and a message never names a file that is absent), by the order of the operations:

1. the run removes caldp's own dataset-processed and dataset-synced messages (DatasetRun.publish);
2. the new tree is copied to data/<instr>/.<id>.staging-<pid> (same file system);
3. data/<instr>/<id> is renamed to .<id>.old-<pid>, then the staging tree to data/<instr>/<id>;
   SIGTERM/SIGINT/SIGHUP are held back between the two renames (delivered right after), so a
   signal never interrupts the swap half-way;
4. .<id>.old-<pid> is removed;
5. dataset-error is removed, then dataset-processed and dataset-synced are written (each whole:
   a temporary file renamed into place).

A run killed (kill -9) at any point leaves at worst a tree without its message and leftovers
named .<id>.staging-<pid>, .<id>.old-<pid>, <id>/.logs.staging-<pid>, <id>/.logs.old-<pid> and
messages/<state>/.<id>.tmp-<pid>. They are reclaimed (reclaim_dataset) by the next run of that
dataset as soon as it holds the dataset's lock, so a live run's files are never touched; when the
kill fell between the two renames the old tree is put back. The batch layer calls
reclaim_output(root) at start: it reclaims every dataset whose lock is free and skips the others.

CALDP_TEST_PAUSE_PUBLISH=<step>[:kill|:term|:pause] (read only by _checkpoint) is a test hook:
at that step the run SIGKILLs itself (default), sends itself SIGTERM, or sleeps.
"""

import contextlib
import errno
import fcntl
import filecmp
import gzip
import io
import logging
import os
import re
import shutil
import signal
import stat
import sys
import time
import zlib
from pathlib import Path

from ..exit_codes import CaldpError, ExitCode
from ..inputs import candidate_names, dataset_tarball
from ..settings import InputLimits
from ..tarsafe import Budget, CountingReader, InputTooLarge, UnsafeArchive, copy_bounded, extract_flat
from .base import Destination, InputSource

log = logging.getLogger("caldp.storage.files")


class FileStorage(InputSource, Destination):
    def __init__(self, root, limits=None):
        self.root = Path(root)
        self.limits = limits or InputLimits()  # Settings.input_limits: bounds on fetched inputs

    def __repr__(self):
        return f"FileStorage({str(self.root)!r})"

    # ---------------------------------------------------------------- input side
    def fetch_inputs(self, dataset, instrument, workdir):
        """Copy the dataset's loose files (bounded, under the lower-case names the programs expect;
        `<name>.gz` decompressed), else unpack its one tarball (bounded)."""
        if not self.root.is_dir():
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"input directory {self.root} does not exist")
        names = os.listdir(self.root)
        loose = candidate_names(dataset, instrument, names, compressed=True)
        budget = Budget(self.limits)
        if loose:
            for name in loose:
                copy_input(self.root / name, Path(workdir), budget)
            return
        tarball = dataset_tarball(dataset, names, self.root)
        if tarball is None:
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"no input files for {dataset.name} in {self.root}")
        unpack_tarball(self.root / tarball, workdir, self.limits)

    # --------------------------------------------------------------- output side
    def dataset_dir(self, dataset):
        return self.root / "data" / dataset.instrument / dataset.name

    def publish(self, dataset, result_dir):
        """Replace data/<instrument>/<id>/ with `result_dir` (the order of operations: module doc).

        The new tree is staged beside the target (same file system), then swapped in by two renames
        that no signal interrupts; the caller removes the old tree's messages before and writes the
        new ones after, so a message never names files that are absent.
        """
        target = self.dataset_dir(dataset)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{dataset.name}.staging-{os.getpid()}"
        _remove(staging)
        try:
            _copy_or_move_tree(Path(result_dir), staging)
            _checkpoint("staged")
            _swap_into_place(staging, target)
        except BaseException:
            _remove(staging)
            raise
        files = sorted(p for p in target.rglob("*") if p.is_file())
        return [str(p.relative_to(self.root)) for p in files]

    def synced_paths(self, published):
        """The dataset-synced message's lines: the published files' absolute paths."""
        return [str(self.root / p) for p in published]

    def publish_logs(self, dataset, logs_dir):
        """A failed run: put its logs beside whatever products an earlier run left (never touching them)."""
        target = self.dataset_dir(dataset) / "logs"
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".logs.staging-{os.getpid()}"
        _remove(staging)
        try:
            shutil.copytree(logs_dir, staging)
            _checkpoint("logs-staged")
            _swap_into_place(staging, target, step="logs-")
        except BaseException:
            _remove(staging)
            raise

    # ------------------------------------------ messages (the rules are base.MessageBox's)
    def message_path(self, state, name):
        return self.root / "messages" / state / name

    def get_message_bytes(self, state, name):
        path = self.message_path(state, name)
        if not path.is_file():
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:  # removed since
            return None

    def put_message_bytes(self, state, name, data):
        path = self.message_path(state, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{name}.tmp-{os.getpid()}"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _checkpoint(f"{state}-written")

    def delete_message_bytes(self, state, name):
        self.message_path(state, name).unlink(missing_ok=True)
        _checkpoint(f"{state}-removed")

    @contextlib.contextmanager
    def lock(self, dataset):
        """One run per dataset here; once held, a killed earlier run's leftovers are reclaimed."""
        lockdir = self.root / "messages" / ".locks"
        lockdir.mkdir(parents=True, exist_ok=True)
        path = lockdir / f"{dataset.name}.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise CaldpError(ExitCode.GENERIC_ERROR, f"dataset {dataset.name} locked by pid {holder}")
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                _reclaim_quietly(self.root, dataset.name)
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------- leftovers of killed runs
_LEFTOVER = re.compile(r"^\.(?P<name>[a-z0-9]{9})\.(?:staging|old|tmp)-\d+$")


def reclaim_dataset(root, name):
    """Remove (or put back) what killed runs of dataset `name` left under the file: output `root`.

    The caller must hold the dataset's lock (FileStorage.lock does), so no live run owns these.
    Returns the leftovers handled. An old tree whose swap was cut short is renamed back into place.
    """
    root = Path(root)
    handled = []
    data = root / "data"
    for parent in sorted(d for d in (data.iterdir() if data.is_dir() else []) if d.is_dir()):
        target = parent / name
        for old in sorted(parent.glob(f".{name}.old-*")):
            if not os.path.lexists(target):
                os.rename(old, target)  # killed between the two renames: the old tree goes back
            else:
                _remove(old)
            handled.append(old)
        for staging in sorted(parent.glob(f".{name}.staging-*")):
            _remove(staging)
            handled.append(staging)
        if target.is_dir() and not target.is_symlink():
            logs = target / "logs"
            for old in sorted(target.glob(".logs.old-*")):
                if not os.path.lexists(logs):
                    os.rename(old, logs)
                else:
                    _remove(old)
                handled.append(old)
            for staging in sorted(target.glob(".logs.staging-*")):
                _remove(staging)
                handled.append(staging)
    messages_dir = root / "messages"
    for state in sorted(d for d in (messages_dir.iterdir() if messages_dir.is_dir() else []) if d.is_dir()):
        for tmp in sorted(state.glob(f".{name}.tmp-*")):
            tmp.unlink(missing_ok=True)
            handled.append(tmp)
    return handled


def reclaim_output(root):
    """For the batch layer at start: reclaim every dataset's leftovers under the file: output `root`
    whose lock is free (a dataset being processed right now is skipped). Returns the dataset names
    reclaimed."""
    root = Path(root)
    names = set()
    for parent in [*(root / "data").glob("*"), *(root / "messages").glob("*")]:
        if parent.is_dir():
            names.update(m.group("name") for m in map(_LEFTOVER.match, os.listdir(parent)) if m)
    for dataset_dir in (root / "data").glob("*/*"):
        if dataset_dir.is_dir() and any(n.startswith((".logs.staging-", ".logs.old-")) for n in os.listdir(dataset_dir)):
            names.add(dataset_dir.name)
    reclaimed = []
    for name in sorted(names):
        lockdir = root / "messages" / ".locks"
        lockdir.mkdir(parents=True, exist_ok=True)
        with open(lockdir / f"{name}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run holds it: its files are its own
            try:
                if _reclaim_quietly(root, name):
                    reclaimed.append(name)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return reclaimed


def _reclaim_quietly(root, name):
    try:
        handled = reclaim_dataset(root, name)
    except OSError as exc:
        log.warning("could not reclaim what an earlier run of %s left in %s: %s", name, root, exc)
        return []
    for path in handled:
        log.info("reclaimed %s, left by a run that was killed", path)
    return handled


def copy_input(source, workdir, budget=None):
    """Copy one input into the work dir, writable (bestrefs edits headers), leaving the original
    untouched: only a regular file (after following links), within budget's limits, under its
    lower-case name (`.gz` decompressed). Two inputs landing on one name must hold the same data."""
    source, workdir = Path(source), Path(workdir)
    budget = budget or Budget()
    name = source.name.lower()
    compressed = name.endswith(".gz")
    name = name[: -len(".gz")] if compressed else name
    try:
        info = os.stat(source)
        if not stat.S_ISREG(info.st_mode):
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR,
                             f"input {source.name} is not a regular file ({_kind(info)})")
        if not compressed:
            budget.claim(source.name, info.st_size)  # refuse before copying anything
            budget.total -= info.st_size  # copy_bounded counts what is really copied
        target = workdir / name
        scratch = workdir / f".{name}.copy-{os.getpid()}"
        with open(source, "rb") as raw, open(scratch, "xb") as sink:
            if compressed:
                packed = CountingReader(raw)
                with gzip.GzipFile(fileobj=io.BufferedReader(packed), mode="rb") as unpacked:
                    copy_bounded(unpacked, sink, name, budget, packed=packed, what=source.name)
            else:
                copy_bounded(raw, sink, source.name, budget)
    except InputTooLarge as exc:
        _remove(workdir / f".{name}.copy-{os.getpid()}")
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"input too large: {exc}")
    except (OSError, EOFError, zlib.error) as exc:
        _remove(workdir / f".{name}.copy-{os.getpid()}")
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"unreadable input {source.name}: {exc}")
    if target.exists():
        same = filecmp.cmp(scratch, target, shallow=False)
        scratch.unlink()
        if not same:
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR,
                             f"inputs {source.name} and another file both give {name}, with different data: "
                             "remove one (names are compared ignoring case and .gz)")
        return target
    os.chmod(scratch, 0o644)
    os.rename(scratch, target)
    return target


def _kind(info):
    mode = info.st_mode
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return kind
    return "not a file"


def unpack_tarball(tarball, workdir, limits=None):
    try:
        extract_flat(tarball, workdir, limits)
    except InputTooLarge as exc:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"tarball {tarball.name} is too large: {exc}")
    except (UnsafeArchive, OSError, EOFError, ValueError) as exc:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"unsafe or unreadable tarball {tarball.name}: {exc}")
    except Exception as exc:  # tarfile.ReadError and friends
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"unreadable tarball {tarball.name}: {exc}")


def _copy_or_move_tree(source, dest):
    try:
        os.rename(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copytree(source, dest)


def _swap_into_place(staging, target, step=""):
    """Two renames with SIGTERM/SIGINT/SIGHUP held back between them: never a half-done swap."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    _remove(old)
    with _signals_held():
        moved = os.path.lexists(target)
        if moved:
            os.rename(target, old)
        _checkpoint(f"{step}old-moved")
        try:
            os.rename(staging, target)
        except OSError:
            if moved:
                os.rename(old, target)
            raise
    _checkpoint(f"{step}swapped")
    _remove(old)


@contextlib.contextmanager
def _signals_held():
    """Hold back the signals caldp turns into a clean-up; they are delivered when the block ends."""
    held = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _checkpoint(step):
    """Test hook: CALDP_TEST_PAUSE_PUBLISH=<step>[:kill|:term|:pause] acts at that publish step."""
    wanted = os.environ.get("CALDP_TEST_PAUSE_PUBLISH")
    if not wanted:
        return
    name, _, action = wanted.partition(":")
    if name != step:
        return
    action = action or "kill"
    print(f"caldp test hook: {action} at publish step {step}", file=sys.stderr, flush=True)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    elif action == "pause":
        time.sleep(float(os.environ.get("CALDP_TEST_PAUSE_SECONDS", "30")))


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
