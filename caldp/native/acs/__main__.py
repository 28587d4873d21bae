"""``python -m caldp.native.acs``: run caldp's calacs.e replacement."""

import sys

from .cli import main

sys.exit(main())
