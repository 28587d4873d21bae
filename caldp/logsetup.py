"""stdlib logging for a run: to stderr and to the dataset's log file."""

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


class dataset_log_file:
    """Context manager: also log everything under 'caldp' into `path` while a run lasts."""

    def __init__(self, path):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter(FORMAT))

    def __enter__(self):
        logger = logging.getLogger(_ROOT)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)  # the dataset log always has the INFO record of the run
        logger.addHandler(self.handler)
        return self

    def flush(self):
        self.handler.flush()

    def __exit__(self, *exc):
        logging.getLogger(_ROOT).removeHandler(self.handler)
        self.handler.close()
