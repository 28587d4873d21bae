"""Previews of a dataset's products: the make_previews step of caldp-process, and the command
that runs that step alone on products already published::

    caldp-create-previews <ipppssoot> [input=file:.] [output=<input>]

``input`` is ``file:<dir>``: the products are in ``<dir>/data/<instrument>/<ipppssoot>/`` (an
earlier caldp-process output) or, when that does not exist, loose in ``<dir>``. The previews are
written to ``<output>/data/<instrument>/<ipppssoot>/previews/``. Exit status: 0, 28 when some
preview failed (each is logged with its reason), 2 for a bad command line, 21 when the product
directory does not exist.

Which products: those whose suffix (the last ``_`` token before ``.fits``) is in the
instrument's ``preview_suffixes``. Images (a first extension that is an image) become
``<base>.jpg`` and ``<base>_thumb.jpg`` (128 pixels on the longer side), rendered by fitscut
when it is on PATH and by caldp's own renderer otherwise (``CALDP_PREVIEW_RENDERER=auto|native|
fitscut``); spectra (a first extension that is a table) go to spec-plots. A preview that fails
never fails the dataset: it is logged and listed in the report (metrics.json "previews").
"""

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from astropy.io import fits

from .dataset import DatasetId
from .exit_codes import CaldpError, ExitCode, explain
from .hstfile import product_suffix  # noqa: F401  (re-exported: the preview products are chosen by it)
from .instruments import INSTRUMENTS
from .locations import FileLocation, parse_location
from .logsetup import configure_console
from .previews.fitscut import write_fitscut_previews
from .previews.frames import read_frame
from .previews.spectra import spectrum_preview_names, write_spectrum_previews
from .previews.stretch import write_native_previews
from .stages import find_program
from .storage.files import FileStorage

log = logging.getLogger("caldp.create_preview")  # not __main__ under python -m

PREVIEW_DIR = "previews"
RENDERERS = ("auto", "native", "fitscut")


@dataclasses.dataclass
class PreviewReport:
    renderer: str  # "native", "fitscut" or "none (<why>)"
    made: list = dataclasses.field(default_factory=list)  # file names written under previews/
    failed: list = dataclasses.field(default_factory=list)  # (product name, one-line reason)

    def as_dict(self):
        return {
            "renderer": self.renderer,
            "made": len(self.made),
            "files": list(self.made),
            "failed": [{"product": product, "error": error} for product, error in self.failed],
        }


@dataclasses.dataclass(frozen=True)
class ImageRenderer:
    name: str
    executable: str = ""  # fitscut's path, for name == "fitscut"
    missing: str = ""  # why the requested renderer cannot run

    def render(self, frame, full_path, thumb_path, env):
        if self.missing:
            raise RuntimeError(self.missing)
        if self.name == "fitscut":
            write_fitscut_previews(frame, full_path, thumb_path, executable=self.executable, env=env)
        else:
            write_native_previews(frame, full_path, thumb_path)


def choose_renderer(environ):
    """fitscut when it is on PATH (or demanded), else caldp's native renderer."""
    wanted = environ.get("CALDP_PREVIEW_RENDERER", "auto").strip().lower() or "auto"
    if wanted not in RENDERERS:  # recorded against every image preview, like any preview failure
        return ImageRenderer(wanted, missing=f"CALDP_PREVIEW_RENDERER={wanted!r} is not one of {', '.join(RENDERERS)}")
    executable = "" if wanted == "native" else find_program("fitscut", environ)
    if executable:
        return ImageRenderer("fitscut", executable)
    if wanted == "fitscut":
        return ImageRenderer("fitscut", missing="fitscut is not installed (not on PATH); apt-get install fitscut")
    return ImageRenderer("native")


def preview_products(product_dir, instrument):
    return sorted(
        p
        for p in Path(product_dir).iterdir()
        if p.is_file() and p.name.endswith(".fits") and product_suffix(p.name) in instrument.preview_suffixes
    )


def is_spectrum(path):
    """A spectrum product's first extension is a table (x1d, sx1, x1dsum); an image's is not."""
    with fits.open(path) as hdul:
        return len(hdul) > 1 and hdul[1].header.get("XTENSION") == "BINTABLE" and hdul[1].name != "ASN"


def image_preview_names(base):
    return [f"{base}.jpg", f"{base}_thumb.jpg"]


def make_product_previews(product, preview_dir, renderer, env):
    """The previews of one product; returns the names written into `preview_dir`."""
    if is_spectrum(product):
        return write_spectrum_previews(product, preview_dir, env=env)
    frame = read_frame(product)
    full, thumb = image_preview_names(product.name.removesuffix(".fits"))
    renderer.render(frame, preview_dir / full, preview_dir / thumb, env)
    log.info("preview of %s (%s, %dx%d) by %s", product.name, frame.description, *frame.shape[::-1], renderer.name)
    return [full, thumb]


def make_previews(product_dir, instrument, preview_dir=None, *, environ=None):
    """Make the previews of every product in `product_dir` that gets one; never raises for a
    preview that fails (it is logged and listed in the returned PreviewReport)."""
    environ = dict(os.environ if environ is None else environ)
    preview_dir = Path(preview_dir) if preview_dir else Path(product_dir) / PREVIEW_DIR
    renderer = choose_renderer(environ)
    report = PreviewReport(renderer.name if not renderer.missing else f"none ({renderer.missing})")
    for product in preview_products(product_dir, instrument):
        try:
            preview_dir.mkdir(parents=True, exist_ok=True)
            report.made.extend(make_product_previews(product, preview_dir, renderer, environ))
        except Exception as exc:  # any failure stays this product's: the dataset goes on
            reason = " ".join(str(exc).split()) or type(exc).__name__
            log.error("preview of %s failed: %s", product.name, reason)
            report.failed.append((product.name, reason))
            remove_partial_previews(preview_dir, product)
    log.info("previews: %d files made, %d products failed", len(report.made), len(report.failed))
    return report


def remove_partial_previews(preview_dir, product):
    base = product.name.removesuffix(".fits")
    for name in (*image_preview_names(base), *spectrum_preview_names(base)):
        (preview_dir / name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------ command line
def run(dataset_text, input_text="file:.", output_text=None, environ=None):
    """Make the previews of one dataset's existing products; return an ExitCode."""
    try:
        dataset = DatasetId.parse(dataset_text)
        source = _file_location(input_text, "input")
        destination = _file_location(output_text or input_text, "output")
        published = FileStorage(source.path).dataset_dir(dataset)
        product_dir = published if published.is_dir() else source.path
        if not product_dir.is_dir():
            raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"product directory {product_dir} does not exist")
        preview_dir = FileStorage(destination.path).dataset_dir(dataset) / PREVIEW_DIR
        log.info("previews of %s: products in %s, previews to %s", dataset, product_dir, preview_dir)
        report = make_previews(product_dir, INSTRUMENTS[dataset.instrument], preview_dir, environ=environ)
    except CaldpError as error:
        log.error("%s", error.cause)
        log.error("%s", explain(error.code))
        return error.code
    return ExitCode.CREATE_PREVIEWS_ERROR if report.failed else ExitCode.SUCCESS


def _file_location(text, role):
    location = parse_location(text, role=role)
    if not isinstance(location, FileLocation):
        raise CaldpError(ExitCode.CMDLINE_ERROR, f"caldp-create-previews reads and writes file:<dir> only, not {text}")
    return location


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="caldp-create-previews", description="Make the previews of one dataset's existing products."
    )
    parser.add_argument("dataset", help="ipppssoot, e.g. j8bt05njq")
    parser.add_argument("input", nargs="?", default="file:.", help="file:<dir>: data/<instrument>/<id>/ or products")
    parser.add_argument("output", nargs="?", help="file:<dir> for data/<instrument>/<id>/previews/ (default: input)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return ExitCode.SUCCESS if exc.code == 0 else ExitCode.CMDLINE_ERROR
    configure_console()
    return int(run(args.dataset, args.input, args.output))


if __name__ == "__main__":
    sys.exit(main())
