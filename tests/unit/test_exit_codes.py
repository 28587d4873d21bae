import errno
import signal

import pytest

from caldp import exit_codes
from caldp.exit_codes import CaldpError, ExitCode, error_from_exception, explain, is_memory_error, simulated_error


def test_table_matches_the_archive_numbers():
    expected = {0, 1, 2, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33, 34, 40, 41}
    assert {int(c) for c in ExitCode} == expected


@pytest.mark.parametrize("code", list(ExitCode))
def test_explain_every_code(code):
    text = explain(code)
    assert text.startswith(f"EXIT - {code.name}[{int(code)}]: ")
    assert explain(str(int(code))) == text == explain(code.name)


def test_explain_unknown():
    assert explain(99) == "EXIT - unhandled exit code: 99"
    assert explain("BOGUS") == "EXIT - unhandled exit code: BOGUS"


def test_memory_class():
    assert [c for c in ExitCode if is_memory_error(c)] == [31, 32, 33, 34]
    assert is_memory_error("SUBPROCESS_MEMORY_ERROR") and not is_memory_error("STAGE1_ERROR")


def test_explain_signal():
    assert exit_codes.explain_signal(9).startswith("killed by signal SIGKILL[9]")
    assert exit_codes.explain_signal(-signal.SIGSEGV).startswith("killed by signal SIGSEGV[11]")


def test_exception_mapping():
    assert error_from_exception(MemoryError(), 23).code == ExitCode.CALDP_MEMORY_ERROR
    assert error_from_exception(OSError(errno.ENOMEM, "Cannot allocate memory"), 23).code == ExitCode.OS_MEMORY_ERROR
    assert error_from_exception(OSError(errno.ENOENT, "nope"), 23).code == ExitCode.STAGE1_ERROR
    original = CaldpError(27, "x")
    assert error_from_exception(original, 23) is original
    assert error_from_exception(ValueError("a\nb"), 21).cause == "ValueError: a b"


@pytest.mark.parametrize("value, step, expected", [
    ("32", 21, MemoryError), ("34", 21, OSError), ("31", 21, CaldpError), ("33", 27, CaldpError),
    ("23", 23, CaldpError), ("23", 21, type(None)), ("", 21, type(None)), ("junk", 21, type(None)), ("0", 21, type(None)),
])
def test_simulated_errors(value, step, expected):
    error = simulated_error(step, {"CALDP_SIMULATE_ERROR": value})
    assert isinstance(error, expected)
    if isinstance(error, CaldpError):
        assert int(error.code) == int(value)
