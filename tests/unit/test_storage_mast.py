"""astroquery: input against a local MAST stand-in (tests/support/servers/mast.py) with the real astroquery client.

astroquery reads its MAST server from astroquery.cfg once, when astroquery.mast is imported, so
caldp runs in processes of its own pointed at the stand-in through XDG_CONFIG_HOME. One process
fetches every dataset of the scenario (tests/support/servers/fetch_inputs.py runs caldp's fetch_inputs
step); the tests below each check one case of it.
"""

import json
import shutil
import subprocess
import sys

import pytest

from caldp.exit_codes import CaldpError, ExitCode
from caldp.instruments import INSTRUMENTS
from caldp.retry import Backoff, TransientError, call_with_retries
from caldp.storage import mast

from ..conftest import REPO, offline_crds_env, run_caldp_process, shared_path
from ..support.servers.fixtures import subprocess_env

FAST_RETRIES = {"CALDP_RETRY_ATTEMPTS": "3", "CALDP_RETRY_DELAY": "0.05"}
SCENARIO = ["j8bt05njq", "jbz504eoq", "jbz504020", "ldfd01010", "lb4l02m1q", "j6gp01mkq", "j8bt06o6q",
            "ldfd01vlq", "j0000000q"]


@pytest.fixture(scope="module")
def scenario(hst_mast, tmp_path_factory):
    """Fetch every SCENARIO dataset once, with the faults each case is about."""
    hst_mast.reset()
    hst_mast.fail["j6gp01mkq_raw.fits"] = 1  # fails once, then works
    hst_mast.fail["j8bt06o6q_raw.fits"] = -1  # keeps failing
    hst_mast.truncate["ldfd01vpq_rawtag_a.fits"] = 1  # connection cut mid-file once
    hst_mast.gone.add("ldfd01vlq_rawacq.fits")  # listed, but the archive answers 404
    work = tmp_path_factory.mktemp("mast-work")
    # Already in the work dir: one intact file (not fetched again) and one truncated (fetched again).
    present = work / "jbz504020"
    present.mkdir()
    shutil.copyfile(shared_path("hst-data", "acs", "jbz504elq_raw.fits"), present / "jbz504elq_raw.fits")
    truncated = shared_path("hst-data", "acs", "jbz504emq_raw.fits").read_bytes()[:5000]
    (present / "jbz504emq_raw.fits").write_bytes(truncated)
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "support" / "servers" / "fetch_inputs.py"), "astroquery:", str(work), *SCENARIO],
        env=subprocess_env(hst_mast.env, FAST_RETRIES), capture_output=True, text=True, timeout=120, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = {r["dataset"]: r for r in map(json.loads, result.stdout.splitlines())}
    return {"outcomes": outcomes, "log": result.stderr, "server": hst_mast, "work": work}


def outcome(scenario, name):
    return scenario["outcomes"][name]


def test_acs_singleton_gets_its_raw_only(scenario):
    expected = {"dataset": "j8bt05njq", "code": 0, "cause": "", "files": ["j8bt05njq_raw.fits"]}
    assert outcome(scenario, "j8bt05njq") == expected
    assert outcome(scenario, "jbz504eoq")["files"] == ["jbz504eoq_raw.fits"]
    server = scenario["server"]
    # The product lists also offer an FLT, a preview and (jbz504eoq) an SPT: ACS calibrates from ASN + RAW.
    assert server.downloads("jbz504eoq_spt.fits") == []
    assert not [w for _, w in server.requests if "_flt." in w]
    got = scenario["work"] / "j8bt05njq" / "j8bt05njq_raw.fits"
    assert got.read_bytes() == shared_path("hst-data", "acs", "j8bt05njq_raw.fits").read_bytes()
    assert "MAST: [1/1] j8bt05njq_raw.fits" in scenario["log"]  # progress


def test_sbc_association_brings_its_members_and_skips_intact_files(scenario):
    assert outcome(scenario, "jbz504020")["files"] == [
        "jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"]
    server = scenario["server"]
    assert server.downloads("jbz504elq_raw.fits") == []  # already present and intact
    assert server.downloads("jbz504emq_raw.fits") == ["jbz504emq_raw.fits 200"]  # present but truncated
    assert "jbz504elq_raw.fits already present and intact, skipped" in scenario["log"]
    emq = scenario["work"] / "jbz504020" / "jbz504emq_raw.fits"
    assert emq.read_bytes() == shared_path("hst-data", "acs", "jbz504emq_raw.fits").read_bytes()


def test_cos_association_members_and_cos_inputs(scenario):
    files = outcome(scenario, "ldfd01010")["files"]
    members = ["ldfd01vnq", "ldfd01vpq", "ldfd01vrq", "ldfd01vtq"]
    assert files == ["ldfd01010_asn.fits"] + [f"{m}_{s}.fits" for m in members for s in ("rawtag_a", "spt")]
    # This stand-in lists the members only as observations of their own: caldp asked for them.
    assert "association ldfd01010: looking up members ldfd01vnq ldfd01vpq ldfd01vrq ldfd01vtq" in scenario["log"]
    # A connection cut mid-file: the partial file was dropped and the file fetched again.
    assert scenario["server"].downloads("ldfd01vpq_rawtag_a.fits") == ["ldfd01vpq_rawtag_a.fits cut",
                                                                       "ldfd01vpq_rawtag_a.fits 200"]
    assert not list((scenario["work"] / "ldfd01010").glob(".*"))  # no .part file left
    assert outcome(scenario, "lb4l02m1q")["files"] == ["lb4l02m1q_rawacq.fits", "lb4l02m1q_spt.fits"]


def test_unknown_dataset_is_22(scenario):
    assert outcome(scenario, "j0000000q")["code"] == 22
    assert outcome(scenario, "j0000000q")["cause"] == "MAST has no HST observation j0000000q"


def test_download_failing_once_is_retried(scenario):
    assert outcome(scenario, "j6gp01mkq")["files"] == ["j6gp01mkq_raw.fits"]
    assert scenario["server"].downloads("j6gp01mkq_raw.fits") == ["j6gp01mkq_raw.fits 503", "j6gp01mkq_raw.fits 200"]
    assert "MAST download of j6gp01mkq_raw.fits failed (HTTPError: 503" in scenario["log"]
    assert "retry 1 of 2" in scenario["log"]


def test_download_that_keeps_failing_is_22(scenario):
    result = outcome(scenario, "j8bt06o6q")
    assert result["code"] == 22
    assert result["cause"].startswith("MAST download of j8bt06o6q_raw.fits failed after 3 attempts: HTTPError: 503")
    assert scenario["server"].downloads("j8bt06o6q_raw.fits") == ["j8bt06o6q_raw.fits 503"] * 3


def test_a_404_is_final_and_not_retried(scenario):
    result = outcome(scenario, "ldfd01vlq")
    assert result["code"] == 22 and result["cause"].startswith("MAST refused the download: HTTPError: 404")
    assert [w for m, w in scenario["server"].requests if "ldfd01vlq_rawacq" in w] == ["ldfd01vlq_rawacq.fits 404"]


def test_command_line_unknown_dataset_exit_22(hst_mast, crds_cache, tmp_path):
    """The real caldp-process: exit 22 and a dataset-error message with the cause."""
    out = tmp_path / "out"
    env = {**hst_mast.env, **FAST_RETRIES, **offline_crds_env(crds_cache), "CALDP_HOME": str(tmp_path)}
    result = run_caldp_process(["j0000001q", "astroquery:", f"file:{out}"], env, cwd=tmp_path, timeout=120)
    assert result.returncode == 22, result.stderr[-3000:]
    error = (out / "messages" / "dataset-error" / "j0000001q").read_text().splitlines()
    assert error[1:] == ["exit: 22 ASTROQUERY_ERROR", "cause: MAST has no HST observation j0000001q"]
    assert "EXIT - ASTROQUERY_ERROR[22]" in result.stderr


# ------------------------------------------------------------------------ without a server
def test_download_errors_are_classified():
    assert isinstance(mast.download_error("HTTPError: 503 Server Error: x"), TransientError)
    assert isinstance(mast.download_error("File was not downloaded"), TransientError)
    refused = mast.download_error("HTTPError: 404 Client Error: Not Found for url: http://h:5404/x")
    assert isinstance(refused, CaldpError) and refused.code == ExitCode.ASTROQUERY_ERROR


def test_is_intact(tmp_path):
    acs = INSTRUMENTS["acs"]
    raw = tmp_path / "j8bt05njq_raw.fits"
    shutil.copyfile(shared_path("hst-data", "acs", "j8bt05njq_raw.fits"), raw)
    assert mast.is_intact(raw, raw.stat().st_size, acs) and mast.is_intact(raw, None, acs)
    assert not mast.is_intact(raw, raw.stat().st_size + 1, acs)
    assert not mast.is_intact(raw, None, INSTRUMENTS["cos"])  # an ACS file is no COS input
    assert not mast.is_intact(tmp_path / "absent.fits", None, acs)


def test_retries_back_off_and_stop():
    calls, waits = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503")
        return "done"

    backoff = Backoff(attempts=3, first_delay=1.0)
    assert call_with_retries(flaky, backoff=backoff, what="x", sleep=waits.append) == "done"
    assert len(waits) == 2 and 0.75 <= waits[0] <= 1.25 and 1.5 <= waits[1] <= 2.5
    with pytest.raises(TransientError):
        call_with_retries(lambda: (_ for _ in ()).throw(TransientError("no")), backoff=backoff, what="y",
                          sleep=waits.append)
    with pytest.raises(ValueError):  # not retriable: raised at once
        call_with_retries(lambda: int("x"), backoff=backoff, what="z", sleep=lambda s: pytest.fail("slept"))
    assert Backoff.from_environ({"CALDP_RETRY_ATTEMPTS": "0", "CALDP_RETRY_DELAY": "0.5"}) == Backoff(1, 0.5)
    assert Backoff.from_environ({"CALDP_RETRY_ATTEMPTS": "many"}) == Backoff()
