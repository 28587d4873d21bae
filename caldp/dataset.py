"""HST dataset ids (ipppssoot) and the instruments they name."""

import dataclasses

from .exit_codes import CaldpError, ExitCode
from .hstfile import DATASET_ID
from .instruments import INSTRUMENTS

# First letter of an HST dataset id -> instrument (the archive's own map).
HST_INSTRUMENT_LETTERS = {
    "e": "engineering",
    "f": "fgs",
    "i": "wfc3",
    "j": "acs",
    "l": "cos",
    "n": "nicmos",
    "o": "stis",
    "u": "wfpc2",
    "v": "hsp",
    "w": "wfpc",
    "x": "foc",
    "y": "fos",
    "z": "hrs",
}
CALIBRATED_INSTRUMENTS = tuple(INSTRUMENTS)



@dataclasses.dataclass(frozen=True)
class DatasetId:
    """A validated, lower-cased ipppssoot and its instrument."""

    name: str
    instrument: str

    def __str__(self):
        return self.name

    @classmethod
    def parse(cls, text):
        """Validate an id; raise CaldpError(CMDLINE_ERROR) with a one-line reason otherwise.

        >>> DatasetId.parse("J8BT05NJQ")
        DatasetId(name='j8bt05njq', instrument='acs')
        """
        name = str(text).strip().lower()
        if not DATASET_ID.fullmatch(name):
            raise CaldpError(
                ExitCode.CMDLINE_ERROR,
                f"invalid dataset id {str(text)!r}: expected 9 characters ipppssoot (a letter, then 8 letters or digits)",
            )
        instrument = HST_INSTRUMENT_LETTERS.get(name[0])
        if instrument not in CALIBRATED_INSTRUMENTS:
            known = f"{instrument.upper()} " if instrument else ""
            raise CaldpError(
                ExitCode.CMDLINE_ERROR,
                f"dataset {name}: {known}instrument letter {name[0]!r} is not calibrated by caldp "
                f"(only j=ACS, i=WFC3, o=STIS, l=COS)",
            )
        return cls(name, instrument)
