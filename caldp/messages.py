"""Message files: messages/<state>/<ipppssoot>, the archive's hand-off between tools.

caldp writes dataset-processed (success: every output file, relative to the output root),
dataset-error (exit code, name and one-line cause) and, for file: output, dataset-synced (absolute
paths). Each starts with a header line so caldp can tell its own messages from downstream tools'.
The backends store them through storage.base.MessageBox, which holds the rule that caldp removes
only messages it wrote.
"""

import datetime

from . import __version__

PROCESSED = "dataset-processed"
ERROR = "dataset-error"
SYNCED = "dataset-synced"
_SIGNATURE = "# caldp "


def render(state, dataset, lines):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = "".join(f"{line}\n" for line in lines)
    return f"{_SIGNATURE}{__version__} {state} {dataset.name} {stamp}\n{body}"


def written_by_caldp(text):
    return text.startswith(_SIGNATURE)


def error_lines(error):
    """The dataset-error body: 'exit: 23 STAGE1_ERROR' and 'cause: ...'."""
    return [f"exit: {int(error.code)} {error.code.name}", f"cause: {error.cause}"]
