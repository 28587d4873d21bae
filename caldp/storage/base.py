"""The storage interfaces the recipe is written against, and what the backends share.

    InputSource   where a dataset's inputs come from (file:, s3://, astroquery:)
    OutputTree    where a dataset's product tree goes (file:, s3://)
    MessageBox    messages/<state>/<ipppssoot> beside the output tree: caldp's rules for its own
                  messages, written once here over three byte operations a backend provides

They are typing Protocols: a backend conforms by having the methods (FileStorage, S3Storage and
MastStorage also name them as bases, so a reader sees which roles each plays, and MessageBox's
rules are inherited rather than copied).
"""

from pathlib import Path
from typing import ContextManager, Iterable, List, Optional, Protocol, runtime_checkable

from .. import messages


@runtime_checkable
class InputSource(Protocol):
    """A place a dataset's raw inputs come from."""

    root: object  # printable location (str or Path), for the log; never holds credentials

    def fetch_inputs(self, dataset, instrument, workdir: Path) -> None:
        """Bring the dataset's candidate input files into workdir (selection and checks come after).

        Failures are CaldpErrors with the backend's exit code (21 file:, 26 s3://, 22 astroquery:).
        """


@runtime_checkable
class OutputTree(Protocol):
    """A place products are published: data/<instrument>/<ipppssoot>/ under `root`."""

    root: object

    def publish(self, dataset, result_dir: Path) -> List[str]:
        """Make the dataset's product tree exactly the files of result_dir, as atomically as the
        backend allows; return the published files relative to the root."""

    def publish_logs(self, dataset, logs_dir: Path) -> None:
        """A failed run: replace the tree's logs/ only, leaving an earlier run's products in place."""

    def lock(self, dataset) -> ContextManager[None]:
        """One run per dataset and output root at a time; CaldpError(GENERIC_ERROR) when held."""

    def synced_paths(self, published: Iterable[str]) -> Optional[List[str]]:
        """The dataset-synced message's lines for these published files (absolute local paths),
        or None where the backend has no such message (S3: the files are not on this machine)."""


@runtime_checkable
class MessageBox(Protocol):
    """messages/<state>/<ipppssoot>: the archive's hand-off between tools (caldp.messages).

    A backend provides get/put/delete of one message's bytes; the rules live here, once:
    every message caldp writes carries its signature line, and caldp never removes a message it
    did not write (dataset-synced and dataset-archived also belong to downstream tools).
    """

    # ---------------------------------------------------------- what a backend provides
    def get_message_bytes(self, state: str, name: str) -> Optional[bytes]:
        """The message's bytes, or None when there is none."""
        raise NotImplementedError

    def put_message_bytes(self, state: str, name: str, data: bytes) -> None:
        """Write the message whole (a reader never sees part of it)."""
        raise NotImplementedError

    def delete_message_bytes(self, state: str, name: str) -> None:
        """Remove the message; no error when it is already gone."""
        raise NotImplementedError

    # ------------------------------------------------------------ caldp's rules, once
    def write_message(self, state, dataset, lines) -> None:
        self.put_message_bytes(state, dataset.name, messages.render(state, dataset, lines).encode())

    def read_message(self, state, dataset) -> Optional[str]:
        """The message's text, or None when there is none."""
        data = self.get_message_bytes(state, dataset.name)
        return None if data is None else data.decode(errors="replace")

    def has_message(self, state, dataset) -> bool:
        """True when caldp's own `state` message for the dataset exists."""
        text = self.read_message(state, dataset)
        return text is not None and messages.written_by_caldp(text)

    def remove_message(self, state, dataset) -> None:
        """Remove a message only if caldp wrote it; downstream tools own theirs."""
        if self.has_message(state, dataset):
            self.delete_message_bytes(state, dataset.name)


@runtime_checkable
class Destination(OutputTree, MessageBox, Protocol):
    """What the recipe publishes to: an output tree with its message box (output_storage's result)."""


# ------------------------------------------------------------------ shared by the backends
class VerificationError(Exception):
    """A transferred file is not what was expected. kind: "size" or "checksum"."""

    def __init__(self, message, kind="size"):
        super().__init__(message)
        self.kind = kind


def size_text(size):
    """A byte count for the log, in SI units: '12.6 MB', '5.0 kB' (1 MB = 10**6 bytes)."""
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
