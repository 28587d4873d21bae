"""``python -m caldp.native``: run caldp's calacs.e replacement."""

import sys

from .cli import main

sys.exit(main())
