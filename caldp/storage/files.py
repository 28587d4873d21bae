"""file:<dir> storage: loose files or one tarball in, a data/ + messages/ tree out."""

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

from ..exit_codes import CaldpError, ExitCode
from ..inputs import candidate_names, dataset_tarball
from ..tarsafe import UnsafeArchive, extract_flat
from .base import Destination, InputSource


class FileStorage(InputSource, Destination):
    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self):
        return f"FileStorage({str(self.root)!r})"

    # ---------------------------------------------------------------- input side
    def fetch_inputs(self, dataset, instrument, workdir):
        if not self.root.is_dir():
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"input directory {self.root} does not exist")
        names = os.listdir(self.root)
        loose = candidate_names(dataset, instrument, names)
        if loose:
            for name in loose:
                copy_input(self.root / name, Path(workdir) / name)
            return
        tarball = dataset_tarball(dataset, names, self.root)
        if tarball is None:
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"no input files for {dataset.name} in {self.root}")
        unpack_tarball(self.root / tarball, workdir)

    # --------------------------------------------------------------- output side
    def dataset_dir(self, dataset):
        return self.root / "data" / dataset.instrument / dataset.name

    def publish(self, dataset, result_dir):
        """Replace data/<instrument>/<id>/ with `result_dir` as atomically as POSIX allows.

        The new tree is staged beside the target (same file system), then swapped in by renames,
        so readers see either the old complete tree or the new complete tree.
        """
        target = self.dataset_dir(dataset)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{dataset.name}.staging-{os.getpid()}"
        _remove(staging)
        try:
            _copy_or_move_tree(Path(result_dir), staging)
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
        shutil.copytree(logs_dir, staging)
        _swap_into_place(staging, target)

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
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def delete_message_bytes(self, state, name):
        self.message_path(state, name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, dataset):
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
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)


def copy_input(source, dest):
    """Copy an input into the work dir, writable (bestrefs edits headers), leaving the original untouched."""
    shutil.copyfile(source, dest)
    os.chmod(dest, 0o644)


def unpack_tarball(tarball, workdir):
    try:
        extract_flat(tarball, workdir)
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


def _swap_into_place(staging, target):
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        if old.exists():
            os.rename(old, target)
        raise
    _remove(old)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
