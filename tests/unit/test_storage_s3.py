"""s3://bucket/prefix input and output with real boto3 over HTTP: a local moto server by default, or
the real buckets named by CALDP_S3_TEST_INPUTS / CALDP_S3_TEST_OUTPUTS (tests/support/servers/s3.py)."""

import io
import logging
import os
import sys
import tarfile

import pytest

from caldp import process
from caldp.dataset import DatasetId
from caldp.exit_codes import CaldpError, ExitCode
from caldp.instruments import INSTRUMENTS
from caldp.locations import parse_location
from caldp.storage import input_storage, output_storage
from caldp.storage.base import Destination, InputSource, MessageBox
from caldp.storage.s3 import S3Storage
from caldp.storage.s3.transfer import local_digests

from ..conftest import copy_inputs, shared_path
from ..support.servers.s3 import MOTO_CREDENTIALS

ACS = INSTRUMENTS["acs"]
SBC_ASSOCIATION = ["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits", "jbz504enq_raw.fits"]


def acs_file(name):
    return shared_path("hst-data", "acs", name)


def fetch(area, name, workdir):
    """caldp's own fetch_inputs step (storage, then selection and checks) from the area's input prefix."""
    source = input_storage(area.inputs)
    return process.fetch_inputs(source, DatasetId.parse(name), ACS, workdir)


def result_tree(tmp_path, files):
    """A result directory like the recipe's: {relative name: bytes}."""
    root = tmp_path / "result"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# ---------------------------------------------------------------------------------- input
def test_loose_objects_of_an_association(s3_env, tmp_path):
    for name in SBC_ASSOCIATION + ["jbz504eoq_raw.fits"]:  # another dataset's raw beside it
        s3_env.put(s3_env.inputs, name, acs_file(name).read_bytes())
    s3_env.put(s3_env.inputs, "jbz504020_notes.txt", b"not an input")
    s3_env.put(s3_env.inputs, "deeper/jbz504eoq_raw.fits", b"not directly under the prefix")
    inputs = fetch(s3_env, "jbz504020", tmp_path)
    assert list(inputs.files) == SBC_ASSOCIATION
    assert sorted(p.name for p in tmp_path.iterdir()) == SBC_ASSOCIATION
    assert (tmp_path / "jbz504elq_raw.fits").read_bytes() == acs_file("jbz504elq_raw.fits").read_bytes()


@pytest.mark.parametrize("limit, packed", [("CALDP_INPUT_MAX_FILE_SIZE", False), ("CALDP_INPUT_MAX_TOTAL_SIZE", True)])
def test_objects_over_the_input_limits_are_refused_before_download(s3_env, tmp_path, limit, packed):
    from caldp.settings import Settings

    if packed:
        tarball = tmp_path / "j8bt05njq.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(acs_file("j8bt05njq_raw.fits"), arcname="j8bt05njq_raw.fits")
        s3_env.put(s3_env.inputs, tarball.name, tarball.read_bytes())
    else:
        s3_env.put(s3_env.inputs, "j8bt05njq_raw.fits", acs_file("j8bt05njq_raw.fits").read_bytes())
    settings = Settings.from_environ({"CALDP_HOME": str(tmp_path), limit: "100K"})
    workdir = tmp_path / "work"
    workdir.mkdir()
    source = input_storage(s3_env.inputs, settings)
    with pytest.raises(CaldpError) as error:
        source.fetch_inputs(DatasetId.parse("j8bt05njq"), ACS, workdir)
    assert error.value.code == 21 and limit in error.value.cause and str(s3_env.inputs) in error.value.cause
    assert not any(workdir.iterdir())


def test_tarball(s3_env, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(acs_file("jbz504eoq_raw.fits"), arcname="jbz504eoq/jbz504eoq_raw.fits")
    s3_env.put(s3_env.inputs, "jbz504eoq.tar.gz", buffer.getvalue())
    inputs = fetch(s3_env, "JBZ504EOQ", tmp_path)
    assert list(inputs.files) == ["jbz504eoq_raw.fits"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jbz504eoq_raw.fits"]  # the tarball is gone


def test_unsafe_tarball_is_21(s3_env, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.fits")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    s3_env.put(s3_env.inputs, "jbz504eoq.tar.gz", buffer.getvalue())
    with pytest.raises(CaldpError) as error:
        fetch(s3_env, "jbz504eoq", tmp_path)
    assert error.value.code == ExitCode.INPUT_TAR_FILE_ERROR and "path traversal" in error.value.cause
    assert list(tmp_path.iterdir()) == []


def test_missing_inputs_are_26(s3_env, tmp_path):
    with pytest.raises(CaldpError) as error:
        fetch(s3_env, "jbz504eoq", tmp_path)
    assert error.value.code == ExitCode.S3_DOWNLOAD_ERROR
    assert error.value.cause == f"no input objects for jbz504eoq in {s3_env.inputs}"
    missing = parse_location("s3://caldp-no-such-bucket-4f1d/x")
    with pytest.raises(CaldpError) as error:
        S3Storage(missing).fetch_inputs(DatasetId.parse("jbz504eoq"), ACS, tmp_path)
    assert error.value.code == ExitCode.S3_DOWNLOAD_ERROR
    assert "cannot list s3://caldp-no-such-bucket-4f1d/x" in error.value.cause


def test_failed_download_is_26(faulty_s3, s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")
    s3_env.put(s3_env.inputs, "jbz504eoq_raw.fits", acs_file("jbz504eoq_raw.fits").read_bytes())
    faulty_s3.fail("GET", r"jbz504eoq_raw\.fits")
    with pytest.raises(CaldpError) as error:
        fetch(s3_env, "jbz504eoq", tmp_path)
    assert error.value.code == ExitCode.S3_DOWNLOAD_ERROR and "downloading s3://" in error.value.cause
    assert list(tmp_path.iterdir()) == []  # no partial file


# --------------------------------------------------------------------------------- output
def test_publish_multipart_verified_then_replaced(s3_env, tmp_path, caplog):
    big = os.urandom(12 * 1024 * 1024 + 3)  # above the 8 MB multipart threshold: two parts
    result = result_tree(tmp_path, {"x_flt.fits": big, "x.tra": b"trailer", "logs/process.log": b"log"})
    storage = output_storage(s3_env.outputs)
    dataset = DatasetId.parse("j8bt05njq")
    with caplog.at_level(logging.INFO, logger="caldp"):
        published = storage.publish(dataset, result)
    assert published == ["data/acs/j8bt05njq/logs/process.log", "data/acs/j8bt05njq/x.tra",
                         "data/acs/j8bt05njq/x_flt.fits"]
    assert s3_env.keys(s3_env.outputs) == published  # and no staging objects left
    assert s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/x_flt.fits") == big
    head = s3_env.client().head_object(Bucket=s3_env.outputs.bucket, Key=s3_env.outputs.key(published[2]))
    if s3_env.local:
        assert head["ETag"].endswith('-2"')  # really a multipart upload
        assert "x_flt.fits (12.6 MB, ChecksumCRC32 checked)" in caplog.text

    (result / "x.tra").unlink()
    (result / "x_flt.fits").write_bytes(b"new")
    assert storage.publish(dataset, result) == ["data/acs/j8bt05njq/logs/process.log", "data/acs/j8bt05njq/x_flt.fits"]
    assert s3_env.keys(s3_env.outputs) == ["data/acs/j8bt05njq/logs/process.log", "data/acs/j8bt05njq/x_flt.fits"]
    assert s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/x_flt.fits") == b"new"


def test_local_digests_match_s3s_rules(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 10 + b"b" * 10)
    full, composite = local_digests(path, "md5", part_size=10)
    import hashlib

    assert full == hashlib.md5(b"a" * 10 + b"b" * 10).digest()
    assert composite == hashlib.md5(hashlib.md5(b"a" * 10).digest() + hashlib.md5(b"b" * 10).digest()).digest()
    assert local_digests(path, "crc32")[0] == (__import__("zlib").crc32(path.read_bytes())).to_bytes(4, "big")


def test_verification_uses_the_etag_without_checksums_and_catches_differences(s3_env, tmp_path, caplog):
    from botocore.config import Config

    import boto3

    # A client that sends no flexible checksum (as with AWS_REQUEST_CHECKSUM_CALCULATION=when_required):
    # the object then has only its ETag, the MD5 of the data (of the parts' MD5s when multipart).
    client = boto3.session.Session().client("s3", config=Config(request_checksum_calculation="when_required"))
    storage = S3Storage(s3_env.outputs, client=client)
    big = os.urandom(9 * 1024 * 1024)
    result = result_tree(tmp_path, {"a.fits": big, "b.tra": b"small"})
    with caplog.at_level(logging.INFO, logger="caldp"):
        storage.publish(DatasetId.parse("j8bt05njq"), result)
    if s3_env.local:
        assert "a.fits (9.4 MB, ETag (MD5) checked)" in caplog.text
        assert "b.tra (0.0 kB, ETag (MD5) checked)" in caplog.text
    key = s3_env.outputs.key("data/acs/j8bt05njq/b.tra")
    (tmp_path / "same-size").write_bytes(b"SMALL")
    (tmp_path / "other-size").write_bytes(b"larger")
    with pytest.raises(Exception, match="differs from the local file"):
        storage.bucket.verify_object(key, tmp_path / "same-size")
    with pytest.raises(Exception, match="5 bytes in S3, 6 bytes locally"):
        storage.bucket.verify_object(key, tmp_path / "other-size")


def test_failed_upload_keeps_the_previous_products(faulty_s3, s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")
    storage = output_storage(s3_env.outputs)
    dataset = DatasetId.parse("j8bt05njq")
    first = storage.publish(dataset, result_tree(tmp_path / "1", {"a_flt.fits": b"old", "old.tra": b"t"}))
    faulty_s3.fail("PUT", r"/\.caldp-staging/.*/b_flt\.fits")
    with pytest.raises(CaldpError) as error:
        output_storage(s3_env.outputs).publish(dataset, result_tree(tmp_path / "2", {"a_flt.fits": b"new",
                                                                                      "b_flt.fits": b"new"}))
    assert error.value.code == ExitCode.S3_UPLOAD_ERROR and "uploading b_flt.fits" in error.value.cause
    assert s3_env.keys(s3_env.outputs) == first  # untouched, staging removed
    assert s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/a_flt.fits") == b"old"


def test_failed_commit_puts_the_previous_products_back(faulty_s3, s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "1")
    storage = output_storage(s3_env.outputs)
    dataset = DatasetId.parse("j8bt05njq")
    first = storage.publish(dataset, result_tree(tmp_path / "1", {"a_flt.fits": b"old", "c_flt.fits": b"old"}))
    # a_flt is copied into place first, then copying b_flt fails: a_flt must be the old one again.
    faulty_s3.fail("PUT", r"/data/acs/j8bt05njq/b_flt\.fits$")
    with pytest.raises(CaldpError) as error:
        storage.publish(dataset, result_tree(tmp_path / "2", {"a_flt.fits": b"new", "b_flt.fits": b"new"}))
    assert error.value.code == ExitCode.S3_UPLOAD_ERROR and "replacing the objects under" in error.value.cause
    assert s3_env.keys(s3_env.outputs) == first
    assert s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/a_flt.fits") == b"old"


def test_messages_only_caldps_own_are_removed(s3_env):
    storage = output_storage(s3_env.outputs)
    dataset = DatasetId.parse("j8bt05njq")
    storage.write_message("dataset-processed", dataset, ["data/acs/j8bt05njq/x.fits"])
    text = s3_env.read(s3_env.outputs, "messages/dataset-processed/j8bt05njq").decode()
    assert text.startswith("# caldp ") and text.endswith("\ndata/acs/j8bt05njq/x.fits\n")
    assert storage.has_message("dataset-processed", dataset)
    storage.remove_message("dataset-processed", dataset)
    storage.remove_message("dataset-error", dataset)  # absent: nothing to do
    s3_env.put(s3_env.outputs, "messages/dataset-error/j8bt05njq", b"written by an operator tool\n")
    storage.remove_message("dataset-error", dataset)
    assert s3_env.keys(s3_env.outputs) == ["messages/dataset-error/j8bt05njq"]


def test_reading_a_message_that_fails_is_26_not_an_upload_error(faulty_s3, s3_env, monkeypatch):
    """A message read is a download: S3_DOWNLOAD_ERROR (26), whether reading, checking or removing;
    a write or a delete that fails stays S3_UPLOAD_ERROR (25)."""
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")
    storage = output_storage(s3_env.outputs)
    dataset = DatasetId.parse("j8bt05njq")
    storage.write_message("dataset-error", dataset, ["exit: 23 STAGE1_ERROR"])
    faulty_s3.fail("GET", r"/messages/dataset-error/j8bt05njq")
    for call in (storage.read_message, storage.has_message, storage.remove_message):
        with pytest.raises(CaldpError) as error:
            call("dataset-error", dataset)
        assert error.value.code == ExitCode.S3_DOWNLOAD_ERROR
        assert error.value.cause.startswith("reading s3://") and "InternalError" in error.value.cause
    assert s3_env.keys(s3_env.outputs) == ["messages/dataset-error/j8bt05njq"]  # nothing removed blindly
    faulty_s3.clear()
    faulty_s3.fail("DELETE", r"/messages/dataset-error/j8bt05njq")
    faulty_s3.fail("PUT", r"/messages/dataset-processed/j8bt05njq")
    with pytest.raises(CaldpError) as error:
        storage.remove_message("dataset-error", dataset)
    assert error.value.code == ExitCode.S3_UPLOAD_ERROR and error.value.cause.startswith("removing s3://")
    with pytest.raises(CaldpError) as error:
        storage.write_message("dataset-processed", dataset, [])
    assert error.value.code == ExitCode.S3_UPLOAD_ERROR and error.value.cause.startswith("writing s3://")


def test_backends_declare_their_roles(tmp_path):
    """The recipe asks the interfaces, never hasattr: S3 output has no dataset-synced message."""
    from caldp.storage.files import FileStorage

    s3 = S3Storage(parse_location("s3://bucket/p"))
    files = FileStorage(tmp_path)
    for backend in (s3, files):
        assert all(isinstance(backend, role) for role in (InputSource, Destination, MessageBox))
    assert s3.synced_paths(["data/acs/j8bt05njq/x.fits"]) is None
    assert files.synced_paths(["data/acs/j8bt05njq/x.fits"]) == [str(tmp_path / "data/acs/j8bt05njq/x.fits")]


# --------------------------------------------------------------------- the recipe, in process
@pytest.fixture
def env(crds_env, standin_bin, tmp_path):
    """An in-process run: offline CRDS, stand-in calibration programs, a private CALDP_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    standin_bin("calacs.e")
    standin_bin("runastrodriz")
    values = {**os.environ, "PATH": standin_bin.path, "CALDP_HOME": str(home), "CALDP_CAL": "hstcal",
              "STANDIN_PRODUCTS": "1"}
    values.pop("CALDP_SIMULATE_ERROR", None)
    return values


def message(area, state, name):
    if f"messages/{state}/{name}" not in area.keys(area.outputs):
        return None
    return area.read(area.outputs, f"messages/{state}/{name}").decode().splitlines()


def test_recipe_to_s3_success_rerun_and_failed_rerun(env, s3_env, tmp_path, caplog):
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    out = str(s3_env.outputs)
    with caplog.at_level(logging.INFO, logger="caldp"):
        assert process.run("j8bt05njq", f"file:{source}", out, environ=env) == 0
    products = s3_env.keys(s3_env.outputs, "data/")
    assert set(products) >= {"data/acs/j8bt05njq/" + n for n in (
        "j8bt05njq.tra", "j8bt05njq_drz.fits", "j8bt05njq_flt.fits", "j8bt05njq_raw.fits", "logs/metrics.json",
        "logs/process.log", "logs/process_metrics.txt", "logs/provenance.json")}
    assert message(s3_env, "dataset-processed", "j8bt05njq")[1:] == products
    assert message(s3_env, "dataset-synced", "j8bt05njq") is None  # file: output only
    assert f"publishing 4 products of j8bt05njq to {out}" in caplog.text
    flt = s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/j8bt05njq_flt.fits")

    env["STANDIN_EXIT"] = "2"  # a failed re-run: previous products stay, processed -> error
    with caplog.at_level(logging.INFO, logger="caldp"):
        assert process.run("j8bt05njq", f"file:{source}", out, environ=env) == 23
    assert s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/j8bt05njq_flt.fits") == flt
    assert message(s3_env, "dataset-processed", "j8bt05njq") is None
    assert message(s3_env, "dataset-error", "j8bt05njq")[1] == "exit: 23 STAGE1_ERROR"
    log = s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/logs/process.log").decode()
    assert "j8bt05njq failed" in log  # the failed run's logs replaced the previous logs

    env["STANDIN_EXIT"] = "0"  # a successful re-run removes caldp's own dataset-error
    with caplog.at_level(logging.INFO, logger="caldp"):
        assert process.run("j8bt05njq", f"file:{source}", out, environ=env) == 0
    assert message(s3_env, "dataset-error", "j8bt05njq") is None
    assert message(s3_env, "dataset-processed", "j8bt05njq")[1:] == products

    # Credentials never appear in a log or a message.
    texts = [caplog.text] + [s3_env.read(s3_env.outputs, k).decode(errors="replace")
                             for k in s3_env.keys(s3_env.outputs) if not k.endswith((".fits", ".jpg"))]
    for secret in MOTO_CREDENTIALS.values():
        assert not [t for t in texts if secret in t]


def test_recipe_upload_failure_is_25_and_reports_nothing_processed(env, s3_env, faulty_s3, tmp_path, monkeypatch):
    monkeypatch.setenv("CALDP_RETRY_ATTEMPTS", "2")  # the backends read the process environment
    storage = output_storage(s3_env.outputs)
    dataset = DatasetId.parse("j8bt05njq")
    previous = storage.publish(dataset, result_tree(tmp_path / "previous", {"j8bt05njq_flt.fits": b"previous"}))
    storage.write_message("dataset-processed", dataset, previous)
    faulty_s3.fail("PUT", r"/\.caldp-staging/.*_flt\.fits")
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    assert process.run("j8bt05njq", f"file:{source}", str(s3_env.outputs), environ=env) == 25
    assert message(s3_env, "dataset-processed", "j8bt05njq") is None
    error = message(s3_env, "dataset-error", "j8bt05njq")
    assert error[1] == "exit: 25 S3_UPLOAD_ERROR"
    assert error[2].startswith("cause: uploading j8bt05njq_flt.fits to s3://") and "InternalError" in error[2]
    assert s3_env.read(s3_env.outputs, "data/acs/j8bt05njq/j8bt05njq_flt.fits") == b"previous"
    assert not [k for k in s3_env.keys(s3_env.outputs) if ".caldp-staging" in k]


def test_locked_dataset_on_s3_output(env, s3_env, tmp_path):
    source = copy_inputs(["j8bt05njq_raw.fits"], tmp_path / "in", "acs")
    with S3Storage(s3_env.outputs).lock(DatasetId.parse("j8bt05njq")):
        assert process.run("j8bt05njq", f"file:{source}", str(s3_env.outputs), environ=env) == 1
    assert s3_env.keys(s3_env.outputs) == []


def test_generic_endpoint_variable_is_honoured(s3_env, monkeypatch):
    """boto3 reads AWS_ENDPOINT_URL as well as AWS_ENDPOINT_URL_S3; caldp passes no endpoint of its own."""
    if not s3_env.local:
        pytest.skip("checks the local moto server's endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL_S3"])
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    s3_env.put(s3_env.inputs, "jbz504eoq_raw.fits", b"x")
    assert S3Storage(s3_env.inputs).list_dataset_objects(DatasetId.parse("jbz504eoq"))["jbz504eoq_raw.fits"][1] == 1


def test_dispatch(monkeypatch):
    pytest.importorskip("boto3")
    pytest.importorskip("astroquery")
    location = parse_location("s3://bucket/p")
    assert isinstance(input_storage(location), S3Storage) and output_storage(location).root == "s3://bucket/p"
    from caldp.storage.mast import MastStorage

    assert isinstance(input_storage(parse_location("astroquery:")), MastStorage)
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "astroquery", None)
    for make, text, code in ((input_storage, "s3://bucket/p", 26), (output_storage, "s3://bucket/p", 25),
                             (input_storage, "astroquery:", 22)):
        with pytest.raises(CaldpError) as error:
            make(parse_location(text))
        assert error.value.code == code and "pip install 'caldp[" in error.value.cause
