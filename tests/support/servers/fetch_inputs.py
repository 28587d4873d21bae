"""Run caldp's fetch_inputs step alone for several datasets, in a process of its own.

    python tests/support/servers/fetch_inputs.py <input location> <workdir> <id> [<id> ...]

astroquery.mast reads its server from astroquery.cfg once, at import, so tests point a fresh
process at the local MAST (XDG_CONFIG_HOME) instead of patching the test process. Prints one JSON
line per dataset: {"dataset", "code", "cause", "files"}; logs go to stderr.
"""

import json
import sys
from pathlib import Path

from caldp.dataset import DatasetId
from caldp.exit_codes import CaldpError
from caldp.instruments import INSTRUMENTS
from caldp.locations import parse_location
from caldp.logsetup import configure_console
from caldp.process import fetch_inputs
from caldp.storage import input_storage


def main(location, workdir, *names):
    configure_console()
    source = input_storage(parse_location(location, role="input"))
    for name in names:
        dataset = DatasetId.parse(name)
        target = Path(workdir) / name
        target.mkdir(parents=True, exist_ok=True)
        result = {"dataset": name, "code": 0, "cause": "", "files": []}
        try:
            inputs = fetch_inputs(source, dataset, INSTRUMENTS[dataset.instrument], target)
            result["files"] = list(inputs.files)
        except CaldpError as error:
            result.update(code=int(error.code), cause=error.cause)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
