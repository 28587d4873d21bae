"""Which files make up a dataset, decided from the data: its _asn table and its members."""

import dataclasses
import os
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


def candidate_names(dataset, instrument, names):
    """Names that may belong to the dataset: same ipppss (an association's members share it)."""
    suffixes = tuple("_" + s for s in instrument.input_suffixes)
    prefix = dataset.name[:6]
    return sorted(n for n in names if n.lower().startswith(prefix) and n.lower().endswith(suffixes))


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


def select_inputs(dataset, instrument, directory):
    """Decide the dataset's inputs among the candidate files in `directory`.

    An `<id>_asn.fits` makes the dataset an association: its table names the members, each of
    which must have at least one input file. Otherwise the inputs are the files named `<id>_*`.
    """
    directory = Path(directory)
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
                    f"association {dataset.name}: member {member} has no input file in {directory}",
                )
            files.extend(own)
        return DatasetInputs(directory, tuple(files), asn, members)
    files = [by_lower[n] for n in sorted(by_lower) if n.startswith(dataset.name + "_")]
    if not files:
        raise CaldpError(ExitCode.INPUT_TAR_FILE_ERROR, f"no input files for {dataset.name} in {directory}")
    return DatasetInputs(directory, tuple(files))


def verify_fits(path, instrument):
    """Check a file is a whole FITS file of the right instrument; raise CaldpError(21) naming it."""
    path = Path(path)
    try:
        with fits.open(path, lazy_load_hdus=False) as hdul:
            size = path.stat().st_size
            last = hdul.fileinfo(len(hdul) - 1)
            if last["datLoc"] + last["datSpan"] > size:
                raise OSError("file is truncated")
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
