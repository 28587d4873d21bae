"""Errors raised by caldp's native calacs reimplementation.

calacs.e reports every fatal condition with a one-line message and exits with
ERROR_RETURN (2).  Library code raises :class:`CalibrationError` instead, and
the command line turns it into the same one-line message and exit status.
"""

ERROR_RETURN = 2


class CalibrationError(Exception):
    """A condition under which calacs.e stops with ERROR_RETURN.

    ``message`` is a single line that names the cause (a file, a keyword,
    a table row); ``exit_status`` is what the command line exits with.
    """

    def __init__(self, message: str, exit_status: int = ERROR_RETURN):
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status

    def __str__(self) -> str:
        return self.message


class CombineError(CalibrationError):
    """A combined product cannot be made (it already exists, inputs disagree, ...)."""
