"""Retrying transient failures with exponential backoff: caldp's one retry policy.

    CALDP_RETRY_ATTEMPTS  tries in all, including the first (default 4)
    CALDP_RETRY_DELAY     seconds before the first retry (default 2); each next wait doubles, up to
                          60 s, with +-25 % jitter so that many batch jobs do not retry in lockstep

Who retries what, and how:

* MAST (storage/mast.py): every query and every file through call_with_retries with
  Backoff.from_environ(). astroquery neither retries nor raises on a failed download, so caldp must.
* The CRDS download plugin (crds_plugin.py): call_with_retries with CRDS_PLUGIN_BACKOFF (CRDS's
  own --max-retries tries, 1 s doubling, full jitter, 20 s cap: the plugin runs once per
  reference inside a bestrefs sync, so its waits stay short). A size or sha1 mismatch is retried
  as well as a transport failure; a missing object is not.
* S3 storage (storage/s3/): botocore's own retries (standard mode) with CALDP_RETRY_ATTEMPTS as
  their max_attempts; caldp does not wrap S3 calls in call_with_retries. botocore retries at the
  right grain, each HTTP request: one part of a multipart upload, one ranged GET of a download,
  one CopyObject, with the 5xx/throttling/cut-connection classification and Retry-After handling
  that AWS maintains, full jitter capped at 20 s, and a client-wide retry quota that stops a
  failing endpoint being hammered by eight parallel transfers. Retrying a whole managed transfer
  from here would send every part again for one failed part, and would retry on top of botocore
  (attempts squared). What botocore cannot see is verified by caldp after the transfer (sizes and
  checksums, storage/s3/transfer.py) and is a permanent failure: the bytes S3 holds are wrong.
"""

import dataclasses
import logging
import os
import random
import time

log = logging.getLogger("caldp.retry")


class TransientError(Exception):
    """A failure worth trying again (a 5xx, a cut connection, a truncated file)."""


PROPORTIONAL = "proportional"  # wait = base * uniform(0.75, 1.25): spread, never much shorter than base
FULL = "full"  # wait = base * uniform(0, 1): AWS's "full jitter", as botocore waits


@dataclasses.dataclass(frozen=True)
class Backoff:
    """How often to try and how long to wait: base = first_delay * 2**(retry - 1), capped at
    max_delay, then jittered."""

    attempts: int = 4
    first_delay: float = 2.0
    max_delay: float = 60.0
    jitter: str = PROPORTIONAL

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

    def delay(self, retry_number, rng=random.random):
        """Seconds to wait before retry number 1, 2, ...; rng() is a uniform number in [0, 1)."""
        base = min(self.max_delay, self.first_delay * 2 ** (retry_number - 1))
        if self.jitter == FULL:
            return base * rng()
        return base * (0.75 + 0.5 * rng())


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
