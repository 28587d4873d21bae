"""Version strings of caldp's native calacs (written to CAL_VER)."""

from caldp import __version__ as _caldp_version

CALACS_COMPAT = "10.5.0"
VERSION_STRING = f"caldp-native {_caldp_version} (calacs.e {CALACS_COMPAT} compatible)"
