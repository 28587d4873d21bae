import string

import pytest
from hypothesis import given, strategies as st

from caldp.dataset import DatasetId
from caldp.exit_codes import CaldpError, ExitCode


@pytest.mark.parametrize(
    "text, name, instrument",
    [
        ("j8bt05njq", "j8bt05njq", "acs"),
        ("J8BT05NJQ", "j8bt05njq", "acs"),
        ("ibxy01aoq", "ibxy01aoq", "wfc3"),
        ("OC7W11VIQ", "oc7w11viq", "stis"),
        ("ldfd01010", "ldfd01010", "cos"),
        (" jbz504020 ", "jbz504020", "acs"),
    ],
)
def test_valid_ids(text, name, instrument):
    dataset = DatasetId.parse(text)
    assert (dataset.name, dataset.instrument) == (name, instrument)
    assert str(dataset) == name


@pytest.mark.parametrize("text", ["u2ab0101t", "n8xy01abq", "w0000000a", "x1234567b", "y12345678", "zabcdefgh", "e12345678"])
def test_other_hst_letters_exit_2(text):
    with pytest.raises(CaldpError) as info:
        DatasetId.parse(text)
    assert info.value.code == ExitCode.CMDLINE_ERROR
    assert "not calibrated by caldp" in info.value.cause


@pytest.mark.parametrize("text", ["", "j8bt05nj", "j8bt05njqq", "j8bt05nj_", "18bt05njq", "j8bt-5njq", "acs_8ph_01", "j8bt05njq/"])
def test_malformed_ids_exit_2(text):
    with pytest.raises(CaldpError) as info:
        DatasetId.parse(text)
    assert info.value.code == ExitCode.CMDLINE_ERROR
    assert "\n" not in info.value.cause


@given(st.text(max_size=20))
def test_parser_never_crashes(text):
    try:
        dataset = DatasetId.parse(text)
    except CaldpError as error:
        assert error.code == ExitCode.CMDLINE_ERROR
        assert "\n" not in error.cause
    else:
        assert len(dataset.name) == 9 and dataset.name == dataset.name.lower()
        assert set(dataset.name) <= set(string.ascii_lowercase + string.digits)
        assert dataset.instrument in ("acs", "wfc3", "stis", "cos")
