"""A private work directory per run, under $CALDP_HOME; removed when the run ends.

<home>/caldp-work/ is shared by every run using that CALDP_HOME (caldp-batch --workers N runs many
at once). A run creates its own <id>-XXXX/ in it while holding a shared flock on the CALDP_HOME
directory; a run that ends removes its own dir, then removes caldp-work/ only if it is empty *and*
it gets that flock exclusively, so it never removes the parent between another run's mkdir of
caldp-work/ and the mkdtemp inside it. (A non-empty caldp-work/ is never removed: rmdir refuses.)
"""

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def _home_lock(home, exclusive):
    """flock on the CALDP_HOME directory itself (no lock file left in the user's directory).
    Yields False when an exclusive lock is busy (someone is creating a work dir right now)."""
    fd = os.open(home, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_SH)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock


class Workspace:
    """<home>/caldp-work/<id>-XXXX/ with cal/ (programs run here), logs/ and result/."""

    def __init__(self, home, dataset, keep=False):
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        base = home / "caldp-work"
        with _home_lock(home, exclusive=False):
            base.mkdir(exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix=f"{dataset.name}-", dir=base))
        self.keep = keep
        try:
            for sub in ("cal", "logs", "result"):
                (self.root / sub).mkdir()
        except BaseException:
            self._remove()
            raise

    cal = property(lambda self: self.root / "cal")
    logs = property(lambda self: self.root / "logs")
    result = property(lambda self: self.root / "result")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.keep:
            self._remove()

    def _remove(self):
        shutil.rmtree(self.root, ignore_errors=True)
        base = self.root.parent
        try:
            with _home_lock(base.parent, exclusive=True) as free:
                if free:
                    base.rmdir()  # fails while any other run's dir is in it
        except OSError:
            pass
