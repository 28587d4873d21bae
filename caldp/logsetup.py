"""stdlib logging for a run: to stderr and to the dataset's log file.

A dataset's log file takes the records emitted while that dataset's run is the current one (a
context variable, so it holds per thread and per task), and records from threads that belong to no
run. Two datasets calibrated in one process never write into each other's process.log.

A log file whose disk is full (or gone) turns itself off at the first OSError with one line on
stderr; the run goes on logging to stderr, with no "--- Logging error ---" tracebacks.
"""

import contextvars
import logging
import sys

FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"
_ROOT = "caldp"


def configure_console(level=logging.INFO):
    logger = logging.getLogger(_ROOT)
    logger.setLevel(level)
    if not any(getattr(h, "_caldp_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._caldp_console = True
        logger.addHandler(handler)
    return logger


_CURRENT_LOG = contextvars.ContextVar("caldp_dataset_log", default=None)


class _QuietFileHandler(logging.FileHandler):
    """A FileHandler that disables itself at its first OSError (ENOSPC, EROFS, ...), saying so once."""

    failed = False

    def emit(self, record):
        if not self.failed:
            super().emit(record)

    def handleError(self, record):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            self._fail(exc)
        else:
            super().handleError(record)

    def flush(self):
        if self.failed:
            return
        try:
            super().flush()
        except OSError as exc:
            self._fail(exc)

    def close(self):
        try:
            super().close()
        except OSError as exc:
            self._fail(exc)
            self.stream = None

    def _fail(self, exc):
        if not self.failed:
            self.failed = True
            print(f"caldp: logging to {self.baseFilename} stopped: {exc}", file=sys.stderr, flush=True)


class DatasetLogFile:
    """Context manager: also log everything under 'caldp' into `path` while a run lasts."""

    def __init__(self, path):
        self.handler = _QuietFileHandler(path, encoding="utf-8", delay=True)
        self.handler.setFormatter(logging.Formatter(FORMAT))
        self.handler.addFilter(lambda record: _CURRENT_LOG.get() in (None, self))
        self._token = None

    def __enter__(self):
        logger = logging.getLogger(_ROOT)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)  # the dataset log always has the INFO record of the run
        self._token = _CURRENT_LOG.set(self)
        logger.addHandler(self.handler)
        return self

    def flush(self):
        self.handler.flush()

    def __exit__(self, *exc):
        logging.getLogger(_ROOT).removeHandler(self.handler)
        _CURRENT_LOG.reset(self._token)
        self.handler.close()
