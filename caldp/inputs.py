"""Which files make up a dataset, decided from the data: its _asn table and its members."""

import dataclasses
import os
import warnings
from pathlib import Path

from astropy.io import fits

from .exit_codes import CaldpError, ExitCode
from .hstfile import read_association_table


@dataclasses.dataclass(frozen=True)
class DatasetInputs:
    """The calibration inputs of one dataset, all inside one directory."""

    directory: Path
    files: tuple  # basenames
    asn: str = None  # basename of the association table, if the dataset is an association
    members: tuple = ()  # lower-case member ids (EXP-* rows), empty for a singleton

    @property
    def paths(self):
        return [self.directory / name for name in self.files]

    def with_suffixes(self, suffixes):
        return [name for name in self.files if name.endswith(tuple("_" + s for s in suffixes))]


def candidate_names(dataset, instrument, names, compressed=False):
    """Names that may belong to the dataset: same ipppss (an association's members share it),
    compared ignoring case; compressed: `<name>.gz` too (a file: source decompresses them)."""
    suffixes = tuple("_" + s for s in instrument.input_suffixes)
    prefix = dataset.name[:6]

    def base(n):
        n = n.lower()
        return n[: -len(".gz")] if compressed and n.endswith(".fits.gz") else n

    return sorted(n for n in names if base(n).startswith(prefix) and base(n).endswith(suffixes))


def dataset_tarball(dataset, names, where):
    """The one `<id>*.tar.gz` among `names`, or None; several are ambiguous (21)."""
    tarballs = sorted(n for n in names if n.lower().startswith(dataset.name) and n.lower().endswith(".tar.gz"))
    if len(tarballs) > 1:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"several tarballs for {dataset.name} in {where}: {tarballs}")
    return tarballs[0] if tarballs else None


def association_members(asn_path):
    """Member ids of an association table, lower-cased: its EXP-* rows that are present
    (every EXP-* row when the table has no MEMPRSNT column)."""
    try:
        rows = read_association_table(asn_path).rows
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"unreadable association table {asn_path.name}: {exc}")
    return tuple(r.name for r in rows if r.is_exposure and r.present is not False)


def select_inputs(dataset, instrument, directory, location=None):
    """Decide the dataset's inputs among the candidate files in `directory`.

    An `<id>_asn.fits` makes the dataset an association: its table names the members, each of
    which must have at least one input file. Otherwise the inputs are the files named `<id>_*`.
    `location`: where the files came from, as an operator named it, for the causes (the work dir
    they were copied into is gone by the time anyone reads them); default: `directory`.
    """
    directory = Path(directory)
    where = location or directory
    names = candidate_names(dataset, instrument, os.listdir(directory))
    by_lower = {n.lower(): n for n in names}
    asn = by_lower.get(f"{dataset.name}_asn.fits")
    if asn:
        members = association_members(directory / asn)
        files = [asn]
        for member in members:
            own = [by_lower[n] for n in sorted(by_lower) if n.startswith(member + "_") and not n.endswith("_asn.fits")]
            if not own:
                raise CaldpError(
                    ExitCode.INPUT_TAR_FILE_ERROR,
                    f"association {dataset.name}: member {member} has no input file in {where}",
                )
            files.extend(own)
        return DatasetInputs(directory, tuple(files), asn, members)
    files = [by_lower[n] for n in sorted(by_lower) if n.startswith(dataset.name + "_")]
    if not files:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"no input files for {dataset.name} in {where}")
    return DatasetInputs(directory, tuple(files))


def _opened(path):
    warnings.simplefilter("ignore")  # inside the caller's catch_warnings, before astropy parses anything
    return fits.open(path, lazy_load_hdus=False)


def check_extension_boundaries(path, hdul):
    """Every extension must start where the one before says its data end: a header whose NAXISn
    are smaller than its data makes astropy read the next header out of the middle of the data."""
    with open(path, "rb") as raw:
        for index in range(1, len(hdul)):
            raw.seek(hdul.fileinfo(index)["hdrLoc"])
            if raw.read(9) != b"XTENSION=":
                before = hdul[index - 1]
                raise OSError(f"extension {index - 1} ({before.name},{before.ver}): its NAXISn do not match its data")


def verify_fits(path, instrument):
    """Check a file is a whole FITS file of the right instrument; raise CaldpError(21) naming it."""
    path = Path(path)
    try:
        # A damaged header makes astropy warn once per garbled card (thousands of log lines); the one
        # line that matters is the cause raised below.
        with warnings.catch_warnings(), _opened(path) as hdul:
            size = path.stat().st_size
            last = hdul.fileinfo(len(hdul) - 1)
            if last["datLoc"] + last["datSpan"] > size:
                raise OSError("file is truncated")
            check_extension_boundaries(path, hdul)
            instrume = str(hdul[0].header.get("INSTRUME", "")).strip().upper()
    except CaldpError:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"unreadable FITS file {path.name}: {exc}")
    expected = instrument.instrume
    if instrume and instrume != expected:
        raise CaldpError(
            ExitCode.INPUT_TAR_FILE_ERROR,
            f"{path.name} is a {instrume} file, but the dataset id names {expected}",
        )
