"""astroquery: input — a dataset's calibration inputs downloaded from MAST with astroquery.mast.

The dataset's observation is looked up by obs_id, its product list is filtered to the
productSubGroupDescription values the instrument calibrates from (Instrument.mast_product_groups)
and those files are downloaded into the work dir. An association's product list normally carries
its members' files; members it lacks are looked up as observations of their own.

astroquery neither retries nor raises on a failed download (the manifest row says ERROR), so every
query and every file is retried here with backoff (caldp.retry), and every file is checked (size,
whole FITS) before it takes its final name. The MAST server is astroquery's configuration
([mast] server in astroquery.cfg), read once when astroquery.mast is imported.
"""

import contextlib
import logging
import os
import re
import time
import warnings
from pathlib import Path

from ..exit_codes import CaldpError, ExitCode
from ..inputs import association_members, verify_fits
from ..retry import Backoff, TransientError, call_with_retries, describe
from ..settings import DEFAULT_MAST_TIMEOUT, mast_timeout
from .base import InputSource, size_text

log = logging.getLogger("caldp.storage.mast")

# HTTP statuses worth retrying; any other 4xx is the archive's final answer.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
# requests has no session-wide timeout and astroquery passes none for downloads: a stalled server
# would hang the run forever without a default (connect, read) timeout; settings.mast_timeout reads it
# (CALDP_MAST_TIMEOUT sets the read timeout).


class MastStorage(InputSource):
    root = "astroquery:"

    def __init__(self, *, backoff=None, observations=None, timeout=None):
        self.backoff = backoff or Backoff.from_environ()
        self.timeout = timeout or mast_timeout(os.environ)
        self._observations = observations

    def __repr__(self):
        return "MastStorage()"

    @property
    def observations(self):
        if self._observations is None:
            self._observations = make_observations(self.timeout)
        return self._observations

    # ---------------------------------------------------------------- input side
    def fetch_inputs(self, dataset, instrument, workdir):
        workdir = Path(workdir)
        try:
            products = self.find_products([dataset.name], instrument)
            if not products:
                groups = ", ".join(instrument.mast_product_groups)
                raise CaldpError(ExitCode.ASTROQUERY_ERROR,
                                 f"MAST lists no calibration inputs ({groups}) for {dataset.name}")
            self.download_all(products, workdir, instrument)
            missing = missing_members(dataset, workdir)
            if missing:
                log.info("MAST: association %s: looking up members %s", dataset, " ".join(missing))
                self.download_all(self.find_products(missing, instrument), workdir, instrument)
        except CaldpError:
            raise
        except Exception as exc:  # astroquery and requests raise many types; all mean "MAST failed"
            raise CaldpError(ExitCode.ASTROQUERY_ERROR, f"MAST query for {dataset.name} failed: {type(exc).__name__}: "
                                                        f"{describe(exc)}")

    def find_products(self, obs_ids, instrument):
        """Product rows ({filename, uri, size}) of the calibration inputs of these HST observations."""
        from astroquery.exceptions import NoResultsWarning

        what = " ".join(obs_ids)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoResultsWarning)  # "nothing found" is checked below
            found = self.retry(lambda: self.observations.query_criteria(obs_id=list(obs_ids), obs_collection="HST"),
                               f"MAST query for {what}")
            if len(found) == 0:
                raise CaldpError(ExitCode.ASTROQUERY_ERROR, f"MAST has no HST observation {what}")
            products = self.retry(lambda: self.observations.get_product_list(found), f"MAST product list of {what}")
        wanted = self.observations.filter_products(
            products, productSubGroupDescription=list(instrument.mast_product_groups), extension="fits")
        rows = {}
        for row in wanted:
            name = Path(str(row["productFilename"])).name
            rows[name] = {"filename": name, "uri": str(row["dataURI"]), "size": _size(row["size"])}
        log.info("MAST: %s: %d calibration inputs of %d products", what, len(rows), len(products))
        return [rows[n] for n in sorted(rows)]

    def download_all(self, products, workdir, instrument):
        total = sum(p["size"] or 0 for p in products)
        log.info("MAST: downloading %d files (%s) into the work directory", len(products), size_text(total))
        for number, product in enumerate(products, 1):
            target = workdir / product["filename"]
            progress = f"[{number}/{len(products)}] {target.name}"
            if is_intact(target, product["size"], instrument):
                log.info("MAST: %s already present and intact, skipped", progress)
                continue
            started = time.monotonic()
            self.retry(lambda: self.download(product, target, instrument), f"MAST download of {target.name}")
            seconds = time.monotonic() - started
            log.info("MAST: %s (%s) in %.1f s", progress, size_text(target.stat().st_size), seconds)

    def download(self, product, target, instrument):
        """One file, into a .part name first so the work dir never holds a partial file."""
        part = target.with_name(f".{target.name}.part")  # a suffix tells astroquery this is a file path
        try:
            with quiet_astroquery():  # verbose=True streams to disk; quiet keeps its progress bar out of the log
                status, message, _url = self.observations.download_file(product["uri"], local_path=str(part),
                                                                        cache=False, verbose=True)
            if status != "COMPLETE":
                raise download_error(message or status)
            if not is_intact(part, product["size"], instrument):
                size = part.stat().st_size if part.exists() else 0
                raise TransientError(f"incomplete file: {size} of {product['size']} bytes, or not a whole FITS file")
            part.replace(target)
            target.chmod(0o644)
        finally:
            part.unlink(missing_ok=True)

    def retry(self, function, what):
        import requests
        from astroquery.exceptions import RemoteServiceError

        retriable = (TransientError, requests.exceptions.RequestException, RemoteServiceError, TimeoutError)
        try:
            return call_with_retries(function, backoff=self.backoff, what=what, retriable=retriable)
        except CaldpError:
            raise
        except Exception as exc:
            tries = f" after {self.backoff.attempts} attempts" if isinstance(exc, retriable) else ""
            raise CaldpError(ExitCode.ASTROQUERY_ERROR, f"{what} failed{tries}: {describe(exc)}")


def make_observations(timeout=DEFAULT_MAST_TIMEOUT):
    """A private astroquery Observations client whose session has a default (connect, read) timeout."""
    import requests.adapters
    from astroquery.mast import ObservationsClass

    class TimeoutAdapter(requests.adapters.HTTPAdapter):
        # astroquery passes its own conf.timeout (600 s) to some calls: the tighter of the two wins.
        def send(self, request, **kwargs):
            given = kwargs.get("timeout")
            if given is None:
                kwargs["timeout"] = timeout
            else:
                read = given[1] if isinstance(given, tuple) else given
                kwargs["timeout"] = (timeout[0], min(float(read), timeout[1]) if read is not None else timeout[1])
            return super().send(request, **kwargs)

    observations = ObservationsClass()
    for scheme in ("http://", "https://"):
        observations._session.mount(scheme, TimeoutAdapter())
    return observations


@contextlib.contextmanager
def quiet_astroquery():
    """astroquery draws its download progress bar on stdout unless its logger is above INFO."""
    from astroquery import log as astroquery_log

    level = astroquery_log.level
    astroquery_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        astroquery_log.setLevel(level)


def download_error(message):
    """astroquery reports 'HTTPError: 503 Server Error: ...' as text: keep 4xx answers final."""
    match = re.search(r"HTTPError: (\d{3})", message)
    if match and int(match.group(1)) not in TRANSIENT_STATUS:
        return CaldpError(ExitCode.ASTROQUERY_ERROR, f"MAST refused the download: {message}")
    return TransientError(message)


def is_intact(path, size, instrument):
    """Present, of the size MAST lists (when it lists one), and a whole FITS file of the instrument."""
    if not path.is_file() or (size and path.stat().st_size != size):
        return False
    try:
        verify_fits(path, instrument)
    except CaldpError:
        return False
    return True


def missing_members(dataset, workdir):
    """Members of the dataset's association table with no file in workdir (none for a singleton)."""
    asn = next((p for p in workdir.iterdir() if p.name.lower() == f"{dataset.name}_asn.fits"), None)
    if asn is None:
        return []
    names = [p.name.lower() for p in workdir.iterdir()]
    return [m for m in association_members(asn) if not any(n.startswith(m + "_") for n in names)]


def _size(value):
    try:
        return int(value) if int(value) > 0 else None
    except (TypeError, ValueError, OverflowError):  # masked or missing in the product list
        return None
