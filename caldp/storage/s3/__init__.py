"""s3://bucket/prefix storage: the dataset's objects in; the data/ + messages/ tree out.

boto3 finds the endpoint (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), the credentials and the region
itself; caldp never reads, logs or passes credentials.

Output layout under the prefix is the file: layout: data/<instrument>/<id>/... and
messages/<state>/<id>. The parts:

    transfer.py   one bucket through one client: uploads and downloads, each verified (sizes,
                  ETag and flexible-checksum rules, local digests); listing; deleting
    tree.py       replacing the objects under a prefix: stage, commit, restore (why a failure
                  never leaves a half-written tree where the previous one was)
    inputs.py     a dataset's loose objects or its tarball, into the work directory
    messages.py   messages/<state>/<id> objects (the rules are storage.base.MessageBox's)

Locking is local to the machine (a lock file per output root and dataset under the temporary
directory); runs on different machines are kept apart by the batch layer, which submits one job
per dataset. An S3 lock object could not be told apart from one left by a run killed for memory,
and would block that run's retry.
"""

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path

from ..base import Destination, InputSource
from ..files import FileStorage
from . import inputs, messages, tree
from .transfer import Bucket


class S3Storage(InputSource, Destination):
    def __init__(self, location, *, client=None, transfer_config=None, backoff=None, limits=None):
        self.location = location
        self.limits = limits  # Settings.input_limits; None: the defaults
        self.root = str(location)  # printable; never holds credentials
        self.bucket = Bucket(location.bucket, client=client, transfer_config=transfer_config, backoff=backoff)

    def __repr__(self):
        return f"S3Storage({self.root!r})"

    # ---------------------------------------------------------------- input side
    def fetch_inputs(self, dataset, instrument, workdir):
        """Download the dataset's loose objects, else its one <id>*.tar.gz, from directly under the prefix."""
        inputs.fetch_inputs(self.bucket, self.location, dataset, instrument, workdir, self.limits)

    def list_dataset_objects(self, dataset):
        """{name: (key, size)} of the dataset's objects directly under the prefix."""
        return inputs.list_dataset_objects(self.bucket, self.location, dataset)

    # --------------------------------------------------------------- output side
    def dataset_prefix(self, dataset):
        return self.location.key("data", dataset.instrument, dataset.name) + "/"

    def publish(self, dataset, result_dir):
        """Make data/<instrument>/<id>/ exactly the files of result_dir; return their paths relative to the root."""
        files = tree.local_files(result_dir)
        prefix = self.dataset_prefix(dataset)
        tree.replace_tree(self.bucket, self.location, dataset.name, files, prefix)
        base = self.location.key()
        return sorted(_relative(prefix + rel, base) for rel in files)

    def publish_logs(self, dataset, logs_dir):
        """A failed run: its logs replace logs/, beside whatever products an earlier run left."""
        # process.log is still being written (these very log lines): upload a snapshot of it.
        with tempfile.TemporaryDirectory(prefix="caldp-logs-") as scratch:
            snapshot = Path(scratch) / "logs"
            shutil.copytree(logs_dir, snapshot)
            tree.replace_tree(self.bucket, self.location, dataset.name, tree.local_files(snapshot),
                              self.dataset_prefix(dataset) + "logs/")

    def synced_paths(self, published):
        """None: S3 output has no dataset-synced message (its files are not on this machine)."""
        return None

    @contextlib.contextmanager
    def lock(self, dataset):
        """One run per dataset and output root on this machine (see the module docstring)."""
        with FileStorage(local_lock_root(self.location)).lock(dataset):
            yield

    # ------------------------------------------------------------------------------ messages
    def get_message_bytes(self, state, name):
        return messages.get(self.bucket, self.location, state, name)

    def put_message_bytes(self, state, name, data):
        messages.put(self.bucket, self.location, state, name, data)

    def delete_message_bytes(self, state, name):
        messages.delete(self.bucket, self.location, state, name)


def local_lock_root(location):
    digest = hashlib.sha256(str(location).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "caldp-locks" / f"s3-{digest}"


def _relative(key, base):
    return key[len(base) + 1:] if base else key
