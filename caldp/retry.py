"""Retrying transient failures with exponential backoff (MAST downloads, S3 transfers).

    CALDP_RETRY_ATTEMPTS  tries in all, including the first (default 4)
    CALDP_RETRY_DELAY     seconds before the first retry (default 2); each next wait doubles, up to
                          60 s, with +-25 % jitter so that many batch jobs do not retry in lockstep
"""

import dataclasses
import logging
import os
import random
import time

log = logging.getLogger("caldp.retry")


class TransientError(Exception):
    """A failure worth trying again (a 5xx, a cut connection, a truncated file)."""


@dataclasses.dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    first_delay: float = 2.0
    max_delay: float = 60.0

    @classmethod
    def from_environ(cls, environ=None):
        environ = os.environ if environ is None else environ
        try:
            attempts = int(environ.get("CALDP_RETRY_ATTEMPTS", cls.attempts))
            delay = float(environ.get("CALDP_RETRY_DELAY", cls.first_delay))
        except ValueError:
            log.warning("ignoring a non-numeric CALDP_RETRY_ATTEMPTS or CALDP_RETRY_DELAY")
            return cls()
        return cls(attempts=max(1, attempts), first_delay=max(0.0, delay))

    def delay(self, retry_number):
        """Seconds to wait before retry number 1, 2, ..."""
        base = min(self.max_delay, self.first_delay * 2 ** (retry_number - 1))
        return base * random.uniform(0.75, 1.25)


def call_with_retries(function, *, backoff, what, retriable=(TransientError,), sleep=time.sleep):
    """Call function() until it succeeds or backoff.attempts are used; re-raise the last failure.

    Only exceptions in `retriable` are retried; anything else is a permanent failure and is
    raised at once. `what` names the operation in the warnings ("MAST download of x_raw.fits").
    """
    for attempt in range(1, backoff.attempts + 1):
        try:
            return function()
        except retriable as exc:
            if attempt == backoff.attempts:
                raise
            wait = backoff.delay(attempt)
            log.warning("%s failed (%s); retry %d of %d in %.1f s",
                        what, describe(exc), attempt, backoff.attempts - 1, wait)
            sleep(wait)


def describe(exc):
    """One line for an exception: its message, else its type."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
