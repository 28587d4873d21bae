"""CRDS: the reference-file environment and best-reference assignment, in-process.

caldp decides the IRAF-style reference variables (jref, iref, ...) from CRDS_PATH and the cache's
own layout record, so the config scripts only choose CRDS behaviour (one rule, one place).
"""

import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path

from astropy.io import fits

from . import hstfile
from .exit_codes import CaldpError, ExitCode
from .instruments import INSTRUMENTS

log = logging.getLogger(__name__)

# IRAF variable -> the CRDS instrument sub-directory it names in an "instrument" layout cache: each
# calibrated instrument's own (the instrument table), and those of references they may name.
REFERENCE_VARIABLES = {
    **{instrument.ref_variable: instrument.name for instrument in INSTRUMENTS.values()},
    "nref": "nicmos",
    "uref": "wfpc2",
    "mtab": "synphot",
}


def offline_environment(cache):
    """CRDS settings for using the cache at `cache` with no server: local mode, a read-only cache (so
    crds fetches nothing and says what is missing), and a server address nothing answers at."""
    return {
        "CRDS_PATH": str(cache),
        "CRDS_SERVER_URL": "https://localhost:1",
        "CRDS_MODE": "local",
        "CRDS_OBSERVATORY": "hst",
        "CRDS_READONLY_CACHE": "1",
    }


def crds_path(environ=os.environ):
    """The CRDS cache, as an absolute path: the stage programs run in the work dir, where a
    relative CRDS_PATH would name nothing (Settings.from_environ has already made it absolute)."""
    from .settings import absolute_path

    return absolute_path(environ.get("CRDS_PATH") or Path.home() / "crds_cache")


def cache_layout(cache):
    """'flat' or 'instrument', as recorded by CRDS in config/hst/ref_cache_subdir_mode."""
    record = Path(cache) / "config" / "hst" / "ref_cache_subdir_mode"
    try:
        mode = record.read_text().strip()
    except OSError:
        return "instrument"  # what CRDS itself makes of a new cache
    return "flat" if mode == "flat" else "instrument"


def reference_environment(cache, layout=None):
    """{jref: '<cache>/references/hst/[acs/]', ...}, each with the trailing '/' calacs.e needs."""
    layout = layout or cache_layout(cache)
    root = Path(cache) / "references" / "hst"
    return {
        var: f"{root}/" if layout == "flat" else f"{root / subdir}/"
        for var, subdir in REFERENCE_VARIABLES.items()
    }


def resolve_reference(value, ref_env):
    """'jref$x_bia.fits' -> a path, or None for N/A and values that are not reference names."""
    parts = hstfile.split_reference(value)
    if parts is None or parts[0] not in ref_env:
        return None
    return hstfile.reference_path(value, ref_env)


@dataclasses.dataclass(frozen=True)
class ReferenceAssignment:
    context: str
    references: dict  # file basename -> {keyword: value}
    missing: tuple  # (file, keyword, value) of selected references absent from the cache


def assign_references(paths, *, context=None, sync=False, ref_env, environ=None):
    """Run CRDS bestrefs on `paths` (updating their headers) and check what was selected.

    `environ` is the run's environment (CRDS_*, PATH, AWS_*); default: this process's.
    """
    environ = os.environ if environ is None else environ
    paths = [Path(p) for p in paths]
    if not paths:
        return ReferenceAssignment(context or "", {}, ())
    cache = crds_path(environ)
    _check_mappings(cache, context, readonly=not sync)
    errors = _run_bestrefs(paths, context, sync, environ)
    if errors:
        raise CaldpError(ExitCode.BESTREFS_ERROR, f"CRDS bestrefs failed: {errors[0]}")
    references, used_context = {}, context or ""
    missing = []
    for path in paths:
        header = fits.getheader(path)
        used_context = str(header.get("CRDS_CTX", used_context))
        selected = {
            key: str(value).strip()
            for key, value in header.items()
            if isinstance(value, str) and resolve_reference(value, ref_env) is not None
        }
        references[path.name] = selected
        for key, value in selected.items():
            if not resolve_reference(value, ref_env).exists():
                missing.append((path.name, key, value))
    for name, key, value in missing:
        if sync:
            raise CaldpError(ExitCode.BESTREFS_ERROR, f"{name}: selected reference {key}={value} could not be synced")
        log.warning("%s: selected reference %s=%s is not in the read-only CRDS cache", name, key, value)
    return ReferenceAssignment(used_context, references, tuple(missing))


def _check_mappings(cache, context, readonly):
    mappings = Path(cache) / "mappings" / "hst"
    if not readonly:
        return  # crds may download what is missing; it reports its own failures
    if not mappings.is_dir() or not any(mappings.glob("*.pmap")):
        raise CaldpError(ExitCode.BESTREFS_ERROR, f"CRDS cache {cache} has no HST mappings ({mappings})")
    if context and not (mappings / context).exists():
        raise CaldpError(ExitCode.BESTREFS_ERROR, f"CRDS context {context} is not in the cache {mappings}")


class _Collect(logging.Handler):
    """Forward CRDS's own log records to caldp's log and keep its errors for the exit cause."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.errors = []

    def emit(self, record):
        message = " ".join(record.getMessage().split())
        logging.getLogger("caldp.crds").log(record.levelno, "%s", message)
        if record.levelno >= logging.ERROR:
            self.errors.append(message)


@contextlib.contextmanager
def _crds_log_captured():
    crds_logger = logging.getLogger("CRDS")
    saved = crds_logger.handlers[:]
    collector = _Collect()
    crds_logger.handlers = [collector]
    try:
        yield collector
    finally:
        crds_logger.handlers = saved


def _run_bestrefs(paths, context, sync, environ):
    """Return CRDS's error messages (empty on success)."""
    from crds.bestrefs import BestrefsScript  # imported first: crds installs its console handler on import
    from crds.core import log as crds_log

    with _crds_log_captured() as collector, _with_download_plugin(environ) as lent, crds_environment(lent):
        try:
            old = crds_log.set_verbose(0)
            try:
                command = "crds.bestrefs --update-bestrefs"
                if context:
                    command += f" --new-context {context}"
                if sync:
                    command += " --sync-references=1"
                command += " --files " + " ".join(str(p) for p in paths)
                error_count = BestrefsScript(command)()
            finally:
                crds_log.set_verbose(old)
        except SystemExit as exc:  # crds scripts exit on bad configuration
            return collector.errors or [f"crds exited with status {exc.code}"]
        except Exception as exc:
            return collector.errors + [f"{type(exc).__name__}: {exc}"]
    if error_count:
        return collector.errors or [f"{error_count} errors"]
    return []


# What the crds library (and the boto3 it uses for s3:// mirrors) reads from the process environment.
_LENT_PREFIXES = ("CRDS_", "AWS_")
_LENT_NAMES = ("PATH",)


@contextlib.contextmanager
def crds_environment(environ):
    """The one place a run lends its environment to the crds library, which reads os.environ only.

    For the duration of the call the run's CRDS_*, AWS_* and PATH values are in force in the process
    environment; the process's own are put back afterwards, whatever happens. A key the run does not
    set keeps the process's value: crds itself writes its defaults into os.environ when it is
    imported (CRDS_CONFIG_URI and others) and fails without them. Every CRDS call caldp makes goes
    through here, so one process can serve datasets with different settings.
    """
    keys = [k for k in environ if k.startswith(_LENT_PREFIXES) or k in _LENT_NAMES]
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for key in keys:
            os.environ[key] = environ[key]
        yield
    finally:
        for key, value in saved.items():
            _put(key, value)


def _put(key, value):
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@contextlib.contextmanager
def _with_download_plugin(environ):
    """`environ`, with caldp's plugin as CRDS's `crds_s3_get` when bestrefs syncs from an S3 mirror.

    CRDS runs its plugin as `crds_s3_get <url> -d <path> -s <size> -c <sha1>` found on PATH; a
    private directory first on PATH points that name at caldp.crds_plugin (boto3, verification,
    retries with jitter) for the duration of the call only.
    """
    wanted = environ.get("CRDS_DOWNLOAD_MODE") == "plugin" and environ.get("CRDS_DOWNLOAD_PLUGIN", "").startswith(
        "crds_s3_get")
    if not wanted:
        yield environ
        return
    with tempfile.TemporaryDirectory(prefix="caldp-crds-plugin-") as bindir:
        shim = Path(bindir) / "crds_s3_get"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m caldp.crds_plugin "$@"\n')
        shim.chmod(0o755)
        yield {**environ, "PATH": f"{bindir}{os.pathsep}{environ.get('PATH', '')}"}
