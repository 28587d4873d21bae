"""caldp-image-{config,build,push} and caldp-docker-run-{container,pipeline}, without a container engine.

A recording `docker` (or `podman`) on PATH checks the exact command lines the scripts build: mounts,
user, environment, image. The real build is .ci/container-check's job (podman, in CI).
"""

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ..conftest import REPO
from .test_install_scripts import ID, RECORD, FakeHost

SCRIPTS = REPO / "scripts"
DOCKER_SCRIPTS = ["caldp-image-build", "caldp-image-push", "caldp-docker-run-container", "caldp-docker-run-pipeline"]
HOME_INSIDE, CACHE_INSIDE = "/home/developer", "/grp/crds/cache"


@pytest.fixture
def host(tmp_path):
    host = FakeHost(tmp_path)
    host.stub("docker", RECORD)
    host.stub("id", ID)  # FAKE_UID (default 0) is the caller's uid and gid
    return host


def engine_calls(host):
    return [call for call in host.calls() if call[0] in ("docker", "podman")]


def config(host, **env):
    """The variables caldp-image-config sets, sourced by bash as the scripts source it."""
    script = f'source "{SCRIPTS / "caldp-image-config"}" && env'
    result = subprocess.run(["bash", "-c", script], env=host.env(**env), capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def run_args(docker_call):
    """`docker run` options as (name, value) pairs, and the image with its command."""
    args, pairs = docker_call[2:], []
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("--user", "--volume", "--workdir", "--env"):
            pairs.append((option, args.pop(0)))
        else:
            pairs.append((option, None))
    return pairs, args


# caldp-image-config

def test_image_config_defaults(host):
    env = config(host)
    assert env["CALDP_IMAGE_REPO"] == "caldp" and env["CALDP_IMAGE_TAG"] == "latest"
    assert env["CALDP_DOCKER_IMAGE"] == "caldp:latest"
    assert env["BASE_IMAGE_TAG"] == "bookworm-slim"
    assert env["CALDP_BASE_IMAGE"] == "docker.io/library/debian:bookworm-slim"
    assert env["CALDP_CONTAINER_ENGINE"] == "docker"


def test_image_config_respects_exported_values(host):
    env = config(host, CALDP_IMAGE_REPO="docker.io/me/caldp", CALDP_IMAGE_TAG="v1", BASE_IMAGE_TAG="bookworm",
                 CALDP_CONTAINER_ENGINE="podman")
    assert env["CALDP_DOCKER_IMAGE"] == "docker.io/me/caldp:v1"
    assert env["CALDP_BASE_IMAGE"] == "docker.io/library/debian:bookworm"
    assert env["CALDP_CONTAINER_ENGINE"] == "podman"
    env = config(host, CALDP_DOCKER_IMAGE="registry.example/caldp:ci", CALDP_BASE_IMAGE="localhost/base")
    assert env["CALDP_DOCKER_IMAGE"] == "registry.example/caldp:ci" and env["CALDP_BASE_IMAGE"] == "localhost/base"


def test_image_config_engine_on_path(host):
    (host.bin / "docker").unlink()
    assert config(host)["CALDP_CONTAINER_ENGINE"] == ""
    host.stub("podman", RECORD)
    assert config(host)["CALDP_CONTAINER_ENGINE"] == "podman"


# caldp-image-build, caldp-image-push

@pytest.fixture
def clone(tmp_path):
    """A checkout for the build: the Dockerfile and caldp's hstcal module (the build context's inputs here)."""
    root = tmp_path / "clone"
    for part in ("docker/Dockerfile", "caldp/hstcal.py"):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / part, root / part)
    return root


@pytest.fixture
def hstcal_source(tmp_path):
    """A small tarball standing in for hstcal's source (the builder checks its shape, not its code)."""
    tree = tmp_path / "hstcal-src" / "hstcal-9.9"
    (tree / "pkg").mkdir(parents=True)
    (tree / "CMakeLists.txt").write_text("project(hstcal)\n")
    tarball = tmp_path / "hstcal-9.9.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return tarball


def test_image_build(host, clone, hstcal_source):
    result = host.run("caldp-image-build", CALDP_CLONE=clone, HSTCAL_SOURCE=hstcal_source)
    assert result.returncode == 0, result.stderr
    context = clone / ".hstcal-source" / "hstcal.tar.gz"
    assert context.read_bytes() == hstcal_source.read_bytes()
    sha256 = hashlib.sha256(context.read_bytes()).hexdigest()
    assert f"{hstcal_source} not verified (no sha256 given)" in result.stderr
    assert engine_calls(host) == [[
        "docker", "build", "-f", f"{clone}/docker/Dockerfile",
        "--build-arg", "BASE_IMAGE=docker.io/library/debian:bookworm-slim", "--build-arg", "CSYS_VER=caldp:latest",
        "--build-arg", f"HSTCAL_SHA256={sha256}", "-t", "caldp:latest", str(clone)]]


def test_image_build_with_podman_options_extras_and_ca(host, clone, hstcal_source, tmp_path):
    host.stub("podman", RECORD)
    bundle = tmp_path / "ca.pem"
    sha256 = hashlib.sha256(hstcal_source.read_bytes()).hexdigest()
    result = host.run("caldp-image-build", "--isolation", "chroot", CALDP_CONTAINER_ENGINE="podman",
                      CALDP_IMAGE_TAG="v2", CALDP_EXTRAS="aws cal", CALDP_BUILD_CA_BUNDLE=bundle, CALDP_CLONE=clone,
                      HSTCAL_SOURCE=hstcal_source, HSTCAL_SHA256=sha256)
    assert result.returncode == 0, result.stderr
    assert "not verified" not in result.stderr
    assert engine_calls(host) == [[
        "podman", "build", "-f", f"{clone}/docker/Dockerfile",
        "--build-arg", "BASE_IMAGE=docker.io/library/debian:bookworm-slim", "--build-arg", "CSYS_VER=caldp:v2",
        "--build-arg", f"HSTCAL_SHA256={sha256}",
        "--build-arg", "CALDP_EXTRAS=aws cal", "--secret", f"id=ca-bundle,src={bundle}",
        "-t", "caldp:v2", "--isolation", "chroot", str(clone)]]


def test_image_build_packs_a_source_directory(host, clone, hstcal_source):
    with tarfile.open(hstcal_source) as tar:
        tar.extractall(clone.parent / "unpacked", filter="data")
    result = host.run("caldp-image-build", CALDP_CLONE=clone, HSTCAL_SOURCE=clone.parent / "unpacked")
    assert result.returncode == 0, result.stderr
    with tarfile.open(clone / ".hstcal-source" / "hstcal.tar.gz") as tar:
        assert "hstcal-9.9/CMakeLists.txt" in tar.getnames()


def test_image_build_takes_pips_ca_bundle(host, clone, hstcal_source):
    host.run("caldp-image-build", PIP_CERT="/etc/ssl/site.pem", CALDP_CLONE=clone, HSTCAL_SOURCE=hstcal_source)
    assert "id=ca-bundle,src=/etc/ssl/site.pem" in engine_calls(host)[0]


def test_image_build_failures(host, clone, hstcal_source, tmp_path):
    result = host.run("caldp-image-build", CALDP_CLONE=tmp_path / "nowhere")
    assert result.returncode == 2 and "no docker/Dockerfile" in result.stderr
    result = host.run("caldp-image-build", CALDP_CLONE=clone, HSTCAL_SOURCE=hstcal_source, HSTCAL_SHA256="00ff")
    assert result.returncode == 1 and "not the expected 00ff" in result.stderr
    assert "no hstcal source for the image" in result.stderr
    result = host.run("caldp-image-build", CALDP_CLONE=clone, HSTCAL_SOURCE=tmp_path / "absent.tar.gz")
    assert result.returncode == 1 and "does not exist" in result.stderr
    (host.bin / "docker").unlink()
    result = host.run("caldp-image-build", CALDP_CLONE=clone, HSTCAL_SOURCE=hstcal_source)
    assert result.returncode == 2 and "neither docker nor podman" in result.stderr
    assert not engine_calls(host)


def test_image_push(host):
    result = host.run("caldp-image-push")
    assert result.returncode == 2 and "CALDP_IMAGE_REPO" in result.stderr and not engine_calls(host)
    result = host.run("caldp-image-push", CALDP_IMAGE_REPO="docker.io/me/caldp", CALDP_IMAGE_TAG="v1")
    assert result.returncode == 0, result.stderr
    assert engine_calls(host) == [["docker", "push", "docker.io/me/caldp:v1"]]


# caldp-docker-run-container

def test_run_container_defaults(host, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = host.run("caldp-docker-run-container", "caldp-demo", "out", cwd=work)
    assert result.returncode == 0, result.stderr
    cache = host.home / "crds_cache"  # caldp-config-offsite's default, created empty (a dynamic cache)
    assert cache.is_dir()
    assert engine_calls(host) == [[
        "docker", "run", "--rm", "--user", "0:0",
        "--volume", f"{work.resolve()}:{HOME_INSIDE}", "--workdir", HOME_INSIDE, "--env", f"HOME={HOME_INSIDE}",
        "--env", f"CALDP_HOME={HOME_INSIDE}", "--env", "CALDP_CONFIG=caldp-config-offsite",
        "--volume", f"{cache}:{CACHE_INSIDE}", "--env", f"CRDS_PATH={CACHE_INSIDE}", "--env", "CRDS_READONLY_CACHE=0",
        "caldp:latest", "caldp-demo", "out"]]


def test_run_container_caldp_home_and_callers_uid(host, tmp_path):
    home = tmp_path / "caldp-home"  # made when missing
    result = host.run("caldp-docker-run-container", "true", CALDP_HOME=home, FAKE_UID=1234)
    assert result.returncode == 0, result.stderr
    options, command = run_args(engine_calls(host)[0])
    assert ("--user", "1234:1234") in options and ("--volume", f"{home.resolve()}:{HOME_INSIDE}") in options
    assert command == ["caldp:latest", "true"]


def test_run_container_as_the_images_user(host):
    host.run("caldp-docker-run-container", "true", CALDP_DOCKER_USER="developer", FAKE_UID=1234)
    options, _ = run_args(engine_calls(host)[0])
    assert ("--user", "developer") in options and ("--user", "1234:1234") not in options


def test_run_container_rootless_podman_keeps_the_uid(host):
    host.stub("podman", RECORD)
    host.run("caldp-docker-run-container", "true", CALDP_CONTAINER_ENGINE="podman", FAKE_UID=1234)
    call = engine_calls(host)[0]
    assert call[:2] == ["podman", "run"] and "--userns=keep-id" in call and "1234:1234" in call
    host.log.write_text("")
    host.run("caldp-docker-run-container", "true", CALDP_CONTAINER_ENGINE="podman")  # root: no user namespace
    assert "--userns=keep-id" not in engine_calls(host)[0]


def test_run_container_read_only_cache(host, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    result = host.run("caldp-docker-run-container", "true", CRDS_PATH=cache, CRDS_READONLY_CACHE=1)
    assert result.returncode == 0, result.stderr
    options, _ = run_args(engine_calls(host)[0])
    assert ("--volume", f"{cache}:{CACHE_INSIDE}:ro") in options
    assert ("--env", f"CRDS_PATH={CACHE_INSIDE}") in options and ("--env", "CRDS_READONLY_CACHE=1") in options
    assert ("--env", "CRDS_PATH") not in options  # the host's path means nothing inside


def test_run_container_onsite_config_chooses_a_read_only_cache(host, tmp_path):
    """The configuration decides: onsite is read-only whatever the caller says, and its cache must exist."""
    result = host.run("caldp-docker-run-container", "true", CALDP_CONFIG="caldp-config-onsite",
                      CRDS_PATH=tmp_path / "missing")
    assert result.returncode == 2 and "read-only CRDS cache" in result.stderr and not engine_calls(host)
    result = host.run("caldp-docker-run-container", "true", CALDP_CONFIG="caldp-config-onsite", CRDS_PATH=tmp_path)
    options, _ = run_args(engine_calls(host)[0])
    assert ("--volume", f"{tmp_path}:{CACHE_INSIDE}:ro") in options
    assert ("--env", "CALDP_CONFIG=caldp-config-onsite") in options


def test_run_container_aws_config_needs_its_bucket(host):
    result = host.run("caldp-docker-run-container", "true", CALDP_CONFIG="caldp-config-aws")
    assert result.returncode == 2 and "CRDSBUCKET" in result.stderr and not engine_calls(host)
    result = host.run("caldp-docker-run-container", "true", CALDP_CONFIG="caldp-config-aws",
                      CRDSBUCKET="s3://mirror")
    options, _ = run_args(engine_calls(host)[0])
    assert ("--env", "CRDSBUCKET") in options and ("--env", "CRDS_READONLY_CACHE=0") in options


def test_run_container_relative_cache(host, tmp_path):
    (tmp_path / "cache").mkdir()
    host.run("caldp-docker-run-container", "true", CRDS_PATH="cache", cwd=tmp_path)
    options, _ = run_args(engine_calls(host)[0])
    assert ("--volume", f"{tmp_path}/cache:{CACHE_INSIDE}") in options


def test_run_container_without_a_cache(host):
    host.run("caldp-docker-run-container", "true", CRDS_PATH="none")
    options, _ = run_args(engine_calls(host)[0])
    assert not [value for option, value in options if value and CACHE_INSIDE in value]


def test_run_container_passes_caldp_and_crds_settings(host):
    host.run("caldp-docker-run-container", "true", CRDS_CONTEXT="hst_0729.pmap", CALDP_CAL="native",
             CALDP_SIMULATE_ERROR="23", ASTROMETRY_STEP_CONTROL="on", CALDP_IMAGE_TAG="v1", SECRET_THING="x")
    options, command = run_args(engine_calls(host)[0])
    passed = {value for option, value in options if option == "--env" and "=" not in value}
    assert passed == {"CRDS_CONTEXT", "CALDP_CAL", "CALDP_SIMULATE_ERROR", "ASTROMETRY_STEP_CONTROL"}
    assert command == ["caldp:v1", "true"]


def test_run_container_options(host):
    host.run("caldp-docker-run-container", "true", CALDP_DOCKER_RUN_PARS="--rm --memory 4g")
    assert engine_calls(host)[0][:5] == ["docker", "run", "--rm", "--memory", "4g"]
    host.log.write_text("")
    host.run("caldp-docker-run-container", "true", CALDP_DOCKER_RUN_PARS="")
    assert engine_calls(host)[0][2] == "--user"


def test_run_container_usage(host):
    result = host.run("caldp-docker-run-container")
    assert result.returncode == 2 and "caldp-docker-run-container <command>" in result.stdout
    assert host.run("caldp-docker-run-container", "--help").returncode == 0 and not engine_calls(host)


# caldp-docker-run-pipeline

def test_run_pipeline_defaults(host, tmp_path):
    result = host.run("caldp-docker-run-pipeline", "j8cb010b0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    options, command = run_args(engine_calls(host)[0])
    assert command == ["caldp:latest", "caldp-process", "j8cb010b0", "file:.", "file:.", "caldp-config-offsite"]
    assert ("--volume", f"{tmp_path.resolve()}:{HOME_INSIDE}") in options
    assert ("--env", "CALDP_CONFIG=caldp-config-offsite") in options


def test_run_pipeline_locations(host, tmp_path):
    home = tmp_path / "home"
    (home / "in").mkdir(parents=True)
    result = host.run("caldp-docker-run-pipeline", "la8q99030", f"file:{home}/in", "file:out", "caldp-config-onsite",
                      CALDP_HOME=home, CRDS_PATH=tmp_path)
    assert result.returncode == 0, result.stderr
    options, command = run_args(engine_calls(host)[0])
    assert command[1:] == ["caldp-process", "la8q99030", f"file:{HOME_INSIDE}/in", "file:out", "caldp-config-onsite"]
    assert ("--env", "CALDP_CONFIG=caldp-config-onsite") in options
    assert ("--volume", f"{tmp_path}:{CACHE_INSIDE}:ro") in options
    host.log.write_text("")
    result = host.run("caldp-docker-run-pipeline", "la8q99030", "s3://bucket/in", f"file:{home}", CALDP_HOME=home)
    assert run_args(engine_calls(host)[0])[1][3:5] == ["s3://bucket/in", f"file:{HOME_INSIDE}"]


def test_run_pipeline_refuses_paths_the_container_cannot_see(host, tmp_path):
    home = tmp_path / "home"
    result = host.run("caldp-docker-run-pipeline", "la8q99030", f"file:{tmp_path}/elsewhere", CALDP_HOME=home)
    assert result.returncode == 2 and "outside CALDP_HOME" in result.stderr and not engine_calls(host)


@pytest.mark.parametrize("args", [(), ("a", "b", "c", "d", "e")])
def test_run_pipeline_usage(host, args):
    result = host.run("caldp-docker-run-pipeline", *args)
    assert result.returncode == 2 and "caldp-docker-run-pipeline <ipppssoot>" in result.stdout


# the scripts and the Dockerfile themselves

@pytest.mark.parametrize("script", DOCKER_SCRIPTS)
def test_scripts_parse_and_help(host, script):
    path = SCRIPTS / script
    assert os.access(path, os.X_OK) and "set -euo pipefail" in path.read_text()
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    result = host.run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith(script) and not engine_calls(host)


def test_dockerfile():
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim\n" in text
    build, final = text.split("\nFROM ${BASE_IMAGE} AS hstcal\n")[1].split("\nFROM ${BASE_IMAGE}\n")
    # hstcal is compiled in its own stage; the final stage has its libraries, not the compilers.
    assert "hstcal.py build /build/hstcal.tar.gz --prefix /opt/hstcal" in build
    assert {"cmake", "gcc", "gfortran", "libcfitsio-dev"} <= set(build.split())
    assert "COPY --from=hstcal /opt/hstcal /opt/hstcal" in final
    apt = re.search(r"apt-get install -y --no-install-recommends ((?:.|\n)*?)\n \&\&", final).group(1).split()
    assert {"python3", "python3-venv", "fitscut", "ca-certificates", "time", "libcfitsio10", "libgomp1"} <= set(apt)
    assert not {"cmake", "gcc", "gfortran", "make", "libcfitsio-dev"} & set(apt)
    # A production image: the extras a job uses, not the test tools.
    assert re.search(r'^ARG CALDP_EXTRAS="aws mast cal previews"$', text, re.M)
    assert 'for extra in ${CALDP_EXTRAS}; do pip install "/opt/caldp/src[${extra}]"' in text
    assert "useradd --create-home --home-dir /home/developer" in text
    assert "USER developer" in text and "WORKDIR /home/developer" in text and "CALDP_HOME=/home/developer" in text
    assert "ENTRYPOINT" not in text
    # every COPY source exists (the build context is the checkout's root)
    for line in re.findall(r"^COPY (?!--from)(.*) \S+$", text, re.M):
        for source in line.split():
            if not source.startswith(".hstcal-source/"):  # put there by caldp-image-build
                assert (REPO / source).exists(), source


def test_container_check():
    path = REPO / ".ci" / "container-check"
    text = path.read_text()
    assert os.access(path, os.X_OK) and subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert "debootstrap --variant=minbase bookworm" in text and "--isolation chroot" in text
    assert "dataset-processed" in text and "_flt.fits" in text
    assert Path(SCRIPTS / "caldp-image-build").name in text
