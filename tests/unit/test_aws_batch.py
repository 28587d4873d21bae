"""caldp-batch --aws-batch: the memory ladder (a pure function over AWS-shaped describe_jobs
records) and the submission path against moto's Batch API over real HTTP."""

import os
import sys

import pytest

from caldp import aws_batch
from caldp.aws_batch import MEMORY_BINS, Features, decide, first_bin, predict_gigabytes

from ..conftest import copy_inputs


def aws_job(status, exit_code=None, reason=None, status_reason="Essential container in task exited"):
    """A describe_jobs()["jobs"] element shaped as AWS Batch returns it."""
    container = {"image": "caldp:latest", "vcpus": 1, "memory": 1792, "command": ["caldp-process-aws"],
                 "logStreamName": "caldp-02g/default/abc"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason:
        container["reason"] = reason
    job = {"jobName": "j8bt05njq", "jobId": "11111111-2222-3333-4444-555555555555", "jobQueue": "arn:q",
           "status": status, "createdAt": 1, "jobDefinition": "arn:caldp-02g:1", "container": container,
           "attempts": [{"container": dict(container)}] if status in ("FAILED", "SUCCEEDED") else []}
    if status == "FAILED":
        job["statusReason"] = status_reason
    return job


@pytest.mark.parametrize("code", [31, 32, 33, 34])
def test_memory_exit_codes_climb_one_bin(code):
    decision = decide(aws_job("FAILED", code), bin_index=0, tries=1)
    assert decision.action == "retry" and decision.bin_index == 1 and "8 GB" in decision.reason


def test_container_oom_kill_climbs():
    job = aws_job("FAILED", 137, reason="OutOfMemoryError: Container killed due to memory usage")
    assert decide(job, bin_index=1, tries=2) == aws_batch.Decision(
        "retry", 2, "exit 137: memory failure, retrying with 16 GB")


def test_oom_reason_without_exit_code():
    job = aws_job("FAILED", None, reason=None, status_reason="OutOfMemoryError: Container killed due to memory usage")
    assert decide(job, 0, 1).action == "retry"


@pytest.mark.parametrize("code", [1, 2, 21, 23, 24, 27])
def test_other_failures_are_not_retried(code):
    decision = decide(aws_job("FAILED", code), bin_index=0, tries=1)
    assert decision.action == "give-up" and "not retried" in decision.reason


def test_ladder_ends_at_the_top_or_after_four_tries():
    assert decide(aws_job("FAILED", 33), bin_index=3, tries=1).action == "give-up"
    assert decide(aws_job("FAILED", 33), bin_index=1, tries=4).action == "give-up"


@pytest.mark.parametrize("status", ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"])
def test_running_jobs_wait(status):
    assert decide(aws_job(status), 0, 1).action == "wait"


def test_success():
    assert decide(aws_job("SUCCEEDED", 0), 2, 3) == aws_batch.Decision("done", 2, "succeeded")


def test_predictor_bins():
    assert first_bin(Features(n_files=1, total_mb=2.2, detector="HRC", drizcorr=True)) == 0
    wfc = Features(n_files=2, total_mb=170, detector="WFC", drizcorr=True, pctecorr=True, crsplit=1)
    assert predict_gigabytes(wfc) == pytest.approx(0.5 + 170 * 0.015 * 3 * 2 + 0.25)
    assert MEMORY_BINS[first_bin(wfc)].gigabytes == 64
    assert first_bin(Features(n_files=4, total_mb=300, detector="WFC", subarray=True)) == 1
    assert first_bin(Features(total_mb=10**6)) == 3


def test_features_from_real_files(tmp_path):
    paths = copy_inputs(["jbz504020_asn.fits", "jbz504elq_raw.fits", "jbz504emq_raw.fits"], tmp_path, "acs")
    features = aws_batch.features_from_files(sorted(paths.iterdir()))
    assert features.n_files == 3 and features.detector == "SBC" and features.drizcorr
    assert 4 < features.total_mb < 5


# ------------------------------------------------------------------ moto's Batch API over HTTP
@pytest.fixture(scope="module")
def moto_batch():
    """moto's Batch API (docker execution off: it accepts jobs but never runs them) and S3, over HTTP."""
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from ..support.servers.s3 import local_aws

    with local_aws():
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="caldp-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch_client = boto3.client("batch")
        ce = batch_client.create_compute_environment(computeEnvironmentName="caldp-ce", type="UNMANAGED",
                                                     state="ENABLED", serviceRole=role)
        batch_client.create_job_queue(jobQueueName="caldp-queue", state="ENABLED", priority=1,
                                      computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}])
        boto3.client("s3").create_bucket(Bucket="caldp-out")
        yield batch_client


def test_job_definitions_and_submission(moto_batch):
    names = aws_batch.ensure_job_definitions(moto_batch, "registry.example/caldp:1.0")
    assert names == ["caldp-02g", "caldp-08g", "caldp-16g", "caldp-64g"]
    definitions = {d["jobDefinitionName"]: d for d in moto_batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
    for memory_bin in MEMORY_BINS:
        properties = definitions[memory_bin.job_definition]["containerProperties"]
        assert properties["memory"] == memory_bin.memory_mib and properties["vcpus"] == memory_bin.vcpus
        assert properties["command"] == ["caldp-process-aws", "Ref::s3_output_path", "Ref::dataset"]
    tracked = aws_batch.run_aws(moto_batch, "caldp-queue", ["j8bt05njq", "jbz504020"], "s3://caldp-out/run1",
                                {"j8bt05njq": 0, "jbz504020": 1})
    jobs = moto_batch.describe_jobs(jobs=[t.job_ids[0] for t in tracked])["jobs"]
    assert sorted(j["jobName"] for j in jobs) == ["j8bt05njq", "jbz504020"]
    by_name = {j["jobName"]: j for j in jobs}
    assert by_name["jbz504020"]["jobDefinition"].split("/")[-1].startswith("caldp-08g")
    assert by_name["j8bt05njq"]["parameters"] == {"dataset": "j8bt05njq", "s3_output_path": "s3://caldp-out/run1"}


def test_ladder_with_simulated_memory_errors(moto_batch, crds_env, tmp_path):
    """Jobs whose caldp-process exits with CALDP_SIMULATE_ERROR's memory code climb the ladder.

    moto accepts the jobs but runs no container, so the exit code each attempt reports is the one
    a real local caldp-process returns under CALDP_SIMULATE_ERROR; moto's own record is the rest.
    """
    import subprocess

    aws_batch.ensure_job_definitions(moto_batch, "caldp:latest")
    source = copy_inputs(["jbz504eoq_raw.fits"], tmp_path / "in", "acs")
    simulated = {}

    def exit_code_of_attempt(attempt):
        code = {1: "33", 2: "31"}.get(attempt, "0")
        result = subprocess.run([sys.executable, "-m", "caldp.process", "jbz504eoq", f"file:{source}",
                                 f"file:{tmp_path / 'out'}"],
                                env={**os.environ, "CALDP_SIMULATE_ERROR": code, "CALDP_HOME": str(tmp_path)},
                                capture_output=True)
        return result.returncode

    def describe(job_ids):
        jobs = moto_batch.describe_jobs(jobs=job_ids)["jobs"]
        for job in jobs:
            attempt = simulated.setdefault(job["jobId"], len(simulated) + 1)
            code = exit_code_of_attempt(attempt) if attempt < 3 else 0
            job["status"] = "SUCCEEDED" if code == 0 else "FAILED"
            job.setdefault("container", {})["exitCode"] = code
            if code:
                job["statusReason"] = "Essential container in task exited"
        return jobs

    records = []
    tracked = aws_batch.run_aws(moto_batch, "caldp-queue", ["jbz504eoq"], "s3://caldp-out/run2", {"jbz504eoq": 0},
                                wait=True, describe=describe, record=lambda t: records.append(t.record()),
                                poll_seconds=0)
    (item,) = tracked
    assert item.state == "succeeded" and item.tries == 3
    assert MEMORY_BINS[item.bin_index].gigabytes == 16  # 2 GB -> 8 GB (exit 33) -> 16 GB (exit 31)
    submitted = moto_batch.describe_jobs(jobs=item.job_ids)["jobs"]
    assert [j["jobDefinition"].split("/")[-1].split(":")[0] for j in submitted] == ["caldp-02g", "caldp-08g", "caldp-16g"]
    assert any("exit 33: memory failure, retrying with 8 GB" in line for r in records for line in r)


def test_caldp_batch_command_line_submits_and_records_on_s3(moto_batch, tmp_path, capsys):
    """caldp-batch --aws-batch: features from the local inputs pick each first bin; the job state is
    recorded in the S3 output's messages tree; --wait follows moto's jobs to their end."""
    import boto3

    from caldp import batch

    source = copy_inputs(["j8bt05njq_raw.fits", "jbz504eoq_raw.fits"], tmp_path / "in", "acs")
    output = "s3://caldp-out/run3"
    assert batch.main(["j8bt05njq", "jbz504eoq", f"file:{source}", output, "--aws-batch", "caldp-queue",
                       "--image", "registry.example/caldp:2"]) == 0
    table = capsys.readouterr().out
    assert "j8bt05njq  submitted       2     1" in table
    s3 = boto3.client("s3")
    record = s3.get_object(Bucket="caldp-out", Key="run3/messages/batch-jobs/j8bt05njq")["Body"].read().decode()
    assert record.startswith("# caldp ") and "state: submitted" in record and "bin: 2 GB" in record

    # moto runs no container: its jobs end FAILED with no exit code, which is not a memory failure.
    status = batch.main(["jbz504eoq", f"file:{source}", output, "--aws-batch", "caldp-queue", "--wait",
                         "--force", "--poll-seconds", "0.2"])
    assert status == 1
    record = s3.get_object(Bucket="caldp-out", Key="run3/messages/batch-jobs/jbz504eoq")["Body"].read().decode()
    assert "state: failed" in record and "not retried" in record and "tries: 1" in record
    assert batch.main(["j8bt05njq", f"file:{source}", "file:/tmp/x", "--aws-batch", "caldp-queue"]) == 2
