"""caldp-batch --aws-batch QUEUE: one AWS Batch job per dataset, with a memory ladder.

Each job runs `caldp-process-aws <s3 output> <id>` in the caldp image under one of four job
definitions, one per memory bin. The first bin comes from a small documented predictor; a job
that fails for memory (exit 31-34, or ECS's "OutOfMemoryError: Container killed") is resubmitted
one bin up, at most MAX_TRIES times in all; any other failure is reported and not retried.
"""

import dataclasses
import logging
import time

from .exit_codes import is_memory_error
from .hstfile import PERFORM, switch

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MemoryBin:
    gigabytes: int
    memory_mib: int  # what the job may use: ECS keeps 128 MiB per GiB for itself
    vcpus: int

    @property
    def job_definition(self):
        return f"caldp-{self.gigabytes:02d}g"


MEMORY_BINS = (MemoryBin(2, 1792, 1), MemoryBin(8, 7168, 2), MemoryBin(16, 14336, 2), MemoryBin(64, 57344, 8))
MAX_TRIES = 4


# --------------------------------------------------------------------------------- the predictor
@dataclasses.dataclass(frozen=True)
class Features:
    """The features the archive's memory model uses, from a dataset's inputs."""

    n_files: int = 1
    total_mb: float = 10.0
    detector: str = ""
    subarray: bool = False
    drizcorr: bool = False
    pctecorr: bool = False
    crsplit: int = 0  # 0: none, 1: CR-SPLIT 2, 2: more


def predict_gigabytes(features):
    """Predicted peak memory in GB.

    A linear model in the size of the inputs: calibration holds a few float copies of each input
    (x 0.015 GB/MB); drizzling and pixel-based CTE correction each add about as much again;
    full-frame WFC/UVIS frames double the working set of both; CR-SPLIT stacks add a quarter GB
    per level. Plus 0.5 GB for the interpreter, astropy, crds and drizzlepac.
    """
    per_mb = 0.015 * (1 + features.drizcorr + features.pctecorr)
    if features.detector.upper() in ("WFC", "UVIS") and not features.subarray:
        per_mb *= 2
    return 0.5 + features.total_mb * per_mb + 0.25 * features.crsplit


def first_bin(features):
    """Index of the smallest bin that holds the prediction with 10 % headroom."""
    need = predict_gigabytes(features) * 1.1
    for index, memory_bin in enumerate(MEMORY_BINS):
        if need <= memory_bin.gigabytes:
            return index
    return len(MEMORY_BINS) - 1


def features_from_files(paths):
    """Features from local input files (sizes and primary headers)."""
    from astropy.io import fits

    paths = list(paths)
    headers = [fits.getheader(p) for p in paths if str(p).endswith(".fits") and "_asn" not in str(p)]
    first = headers[0] if headers else {}
    crsplit = max((int(h.get("CRSPLIT", 1) or 1) for h in headers), default=1)
    return Features(
        n_files=len(paths),
        total_mb=sum(p.stat().st_size for p in paths) / 1e6,
        detector=str(first.get("DETECTOR", "")),
        subarray=bool(first.get("SUBARRAY", False)),
        drizcorr=any(switch(h, "DRIZCORR") == PERFORM for h in headers),
        pctecorr=any(switch(h, "PCTECORR") == PERFORM for h in headers),
        crsplit=0 if crsplit <= 1 else 1 if crsplit == 2 else 2,
    )


# ---------------------------------------------------------------------------------- the ladder
@dataclasses.dataclass(frozen=True)
class Decision:
    action: str  # "wait", "done", "retry", "give-up"
    bin_index: int = None
    reason: str = ""


def decide(job, bin_index, tries):
    """What to do after a describe_jobs record of the dataset's latest job (a pure function).

    `job` is one element of describe_jobs()["jobs"], shaped as AWS returns it; `tries` counts the
    jobs submitted so far for the dataset.
    """
    status = job.get("status")
    if status == "SUCCEEDED":
        return Decision("done", bin_index, "succeeded")
    if status != "FAILED":
        return Decision("wait", bin_index, status or "unknown")
    container = job.get("container") or {}
    exit_code = container.get("exitCode")
    reasons = " ".join(str(r) for r in (job.get("statusReason"), container.get("reason")) if r)
    memory = (exit_code is not None and is_memory_error(exit_code)) or "OutOfMemoryError: Container killed" in reasons
    why = f"exit {exit_code}" if exit_code is not None else (reasons or "failed")
    if not memory:
        return Decision("give-up", bin_index, f"{why} (not a memory failure: not retried)")
    if tries >= MAX_TRIES or bin_index + 1 >= len(MEMORY_BINS):
        return Decision("give-up", bin_index, f"{why}: memory failure after {tries} tries, no larger bin left")
    return Decision("retry", bin_index + 1, f"{why}: memory failure, retrying with "
                                            f"{MEMORY_BINS[bin_index + 1].gigabytes} GB")


# ------------------------------------------------------------------------------- the AWS side
def ensure_job_definitions(client, image, environment=()):
    """Register the four job definitions (one per memory bin) for `image`; return their names."""
    names = []
    for memory_bin in MEMORY_BINS:
        client.register_job_definition(
            jobDefinitionName=memory_bin.job_definition,
            type="container",
            parameters={"dataset": "", "s3_output_path": ""},
            containerProperties={
                "image": image,
                "vcpus": memory_bin.vcpus,
                "memory": memory_bin.memory_mib,
                "command": ["caldp-process-aws", "Ref::s3_output_path", "Ref::dataset"],
                "user": "developer",
                "environment": [{"name": k, "value": v} for k, v in environment],
            },
        )
        names.append(memory_bin.job_definition)
    return names


def submit(client, queue, dataset, output, bin_index, environment=()):
    memory_bin = MEMORY_BINS[bin_index]
    response = client.submit_job(
        jobName=dataset,
        jobQueue=queue,
        jobDefinition=memory_bin.job_definition,
        parameters={"dataset": dataset, "s3_output_path": output},
        containerOverrides={"environment": [{"name": k, "value": v} for k, v in environment]},
    )
    return response["jobId"]


@dataclasses.dataclass
class Tracked:
    dataset: str
    bin_index: int
    job_ids: list = dataclasses.field(default_factory=list)
    state: str = "submitted"
    reason: str = ""

    @property
    def tries(self):
        return len(self.job_ids)

    def record(self):
        bins = MEMORY_BINS[self.bin_index].gigabytes
        return [f"state: {self.state}", f"bin: {bins} GB", f"tries: {self.tries}",
                f"jobs: {' '.join(self.job_ids)}", f"reason: {self.reason}"]


def run_aws(client, queue, datasets, output, first_bins, *, wait=False, environment=(), describe=None,
            record=None, poll_seconds=30.0, timeout_seconds=None):
    """Submit every dataset at its first bin; with wait, follow the jobs and climb the ladder.

    `describe(job_ids)` returns describe_jobs()["jobs"] (default: the client's); `record(tracked)`
    is called after every change (caldp-batch writes it to messages/batch-jobs/<id>).
    """
    describe = describe or (lambda ids: client.describe_jobs(jobs=ids)["jobs"])
    record = record or (lambda tracked: None)
    tracked = {}
    for dataset in datasets:
        item = Tracked(dataset, first_bins[dataset])
        item.job_ids.append(submit(client, queue, dataset, output, item.bin_index, environment))
        tracked[dataset] = item
        record(item)
    if not wait:
        return list(tracked.values())
    start = time.monotonic()
    while any(t.state in ("submitted", "running") for t in tracked.values()):
        active = {t.job_ids[-1]: t for t in tracked.values() if t.state in ("submitted", "running")}
        for job in describe(list(active)):
            item = active[job["jobId"]]
            decision = decide(job, item.bin_index, item.tries)
            if decision.action == "wait":
                if item.state != "running" and job.get("status") in ("STARTING", "RUNNING"):
                    item.state = "running"
                    record(item)
                continue
            item.reason = decision.reason
            if decision.action == "retry":
                item.bin_index = decision.bin_index
                item.job_ids.append(submit(client, queue, item.dataset, output, item.bin_index, environment))
                item.state = "submitted"
                log.info("%s: %s", item.dataset, decision.reason)
            else:
                item.state = "succeeded" if decision.action == "done" else "failed"
            record(item)
        if timeout_seconds is not None and time.monotonic() - start > timeout_seconds:
            for item in tracked.values():
                if item.state in ("submitted", "running"):
                    item.state, item.reason = "unknown", f"still {item.state} after {timeout_seconds} s"
                    record(item)
            break
        if any(t.state in ("submitted", "running") for t in tracked.values()):
            time.sleep(poll_seconds)
    return list(tracked.values())
