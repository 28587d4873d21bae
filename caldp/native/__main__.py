"""``python -m caldp.native``: an alias of ``python -m caldp.native.acs`` (calacs.e)."""

import sys

from .acs.cli import main

sys.exit(main())
