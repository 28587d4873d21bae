"""A private work directory per run, under $CALDP_HOME; removed when the run ends."""

import shutil
import tempfile
from pathlib import Path


class Workspace:
    """<home>/caldp-work/<id>-XXXX/ with cal/ (programs run here), logs/ and result/."""

    def __init__(self, home, dataset, keep=False):
        base = Path(home) / "caldp-work"
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f"{dataset.name}-", dir=base))
        self.keep = keep
        for sub in ("cal", "logs", "result"):
            (self.root / sub).mkdir()

    cal = property(lambda self: self.root / "cal")
    logs = property(lambda self: self.root / "logs")
    result = property(lambda self: self.root / "result")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
            try:
                self.root.parent.rmdir()  # only when no other run is using it
            except OSError:
                pass
