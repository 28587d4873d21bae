"""caldp-install-{all,conda,cal,fitscut}, run against a fake host: nothing is installed.

Every outside program the scripts call (conda, apt-get, sudo, python3's `-m pip`, docker, podman) is a
stub on PATH that records its command line; PATH holds nothing else but a few coreutils, so what the
real machine has installed (fitscut, docker, conda) cannot leak in.
"""

import configparser
import os
import shlex
import subprocess
import sys

import pytest

from ..conftest import REPO

SCRIPTS = REPO / "scripts"
INSTALL_SCRIPTS = ["caldp-install-all", "caldp-install-conda", "caldp-install-cal", "caldp-install-fitscut"]
COREUTILS = ["bash", "sh", "env", "dirname", "basename", "realpath", "tail", "sed", "id", "mkdir", "rm", "cat",
             "cp", "chmod", "touch", "awk"]

RECORD = '#!/bin/bash\n{ printf %s "$(basename "$0")"; printf " %q" "$@"; echo; } >> "$FAKE_LOG"\n'

# conda: `create -p P` makes an environment whose python is a recording stub; `install` puts calacs.e
# there; FAKE_CONDA_FAIL=create|install makes that subcommand fail as without network.
CONDA = RECORD + r'''
prefix=
args=("$@")
for i in "${!args[@]}"; do [[ ${args[$i]} == -p ]] && prefix=${args[$((i + 1))]}; done
[[ ${FAKE_CONDA_FAIL:-} == "$1" ]] && { echo "CondaHTTPError: no network" >&2; exit 1; }
case $1 in
    create) mkdir -p "$prefix/conda-meta" "$prefix/bin"; cp "$FAKE_BIN/python3" "$prefix/bin/python" ;;
    install) touch "$prefix/bin/calacs.e"; chmod +x "$prefix/bin/calacs.e" ;;
    env) rm -rf "$prefix" ;;
esac
'''
# python3 (and an environment's python): `-m pip ...` is recorded and answers FAKE_PIP_STATUS;
# anything else runs the real interpreter (so the scripts can read caldp's metadata).
PYTHON = RECORD + f'''
[[ $1 == -m ]] && exit "${{FAKE_PIP_STATUS:-0}}"
exec {sys.executable} "$@"
'''
# apt-get `install` puts a fitscut on PATH; it fails while FAKE_APT_NO_LISTS exists (until an `update`), or
# always with FAKE_APT_FAIL=1.
APT_GET = RECORD + '''
[[ ${FAKE_APT_FAIL:-} == 1 ]] && exit 100
if [[ $1 == update ]]; then rm -f "$FAKE_APT_NO_LISTS"; exit 0; fi
[[ -n ${FAKE_APT_NO_LISTS:-} && -e $FAKE_APT_NO_LISTS ]] && { echo "E: Unable to locate package" >&2; exit 100; }
[[ ${FAKE_APT_NO_FITSCUT:-} == 1 ]] || { echo '#!/bin/sh' > "$FAKE_BIN/fitscut"; chmod +x "$FAKE_BIN/fitscut"; }
'''
SUDO = RECORD + 'exec "$@"\n'
ID = RECORD + '[[ $1 == -u || $1 == -g ]] && echo "${FAKE_UID:-0}" || exec /usr/bin/id "$@"\n'


def cal_pins():
    """The `cal` extra's requirements, as setup.cfg pins them."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser["options.extras_require"]["cal"].split()


class FakeHost:
    """A PATH of recording stubs and a HOME, in a temporary directory."""

    def __init__(self, root):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.log"
        self.log.touch()
        self.home = root / "home"
        self.home.mkdir()
        for tool in COREUTILS:
            for directory in ("/usr/bin", "/bin"):
                if os.path.exists(f"{directory}/{tool}"):
                    (self.bin / tool).symlink_to(f"{directory}/{tool}")
                    break
        self.stub("python3", PYTHON)

    def stub(self, name, text=RECORD, directory=None):
        path = (directory or self.bin) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
        path.chmod(0o755)
        return path

    def env(self, **extra):
        return {"PATH": str(self.bin), "HOME": str(self.home), "FAKE_LOG": str(self.log), "FAKE_BIN": str(self.bin),
                **{key: str(value) for key, value in extra.items()}}

    def run(self, script, *args, cwd=None, **env):
        return subprocess.run([str(SCRIPTS / script), *map(str, args)], env=self.env(**env), cwd=cwd or self.root,
                              capture_output=True, text=True, timeout=120)

    def calls(self, program=None):
        lines = [shlex.split(line) for line in self.log.read_text().splitlines()]
        return [line for line in lines if program is None or line[0] == program]


@pytest.fixture
def host(tmp_path):
    return FakeHost(tmp_path)


@pytest.fixture
def conda_dir(host):
    """A Miniconda in $HOME/miniconda3 (the default CONDA_DIR) whose conda is the recording stub."""
    directory = host.home / "miniconda3"
    host.stub("conda", CONDA, directory / "bin")
    return directory


@pytest.mark.parametrize("script", INSTALL_SCRIPTS)
def test_help(host, script):
    result = host.run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith(script) and not host.calls()
    text = (SCRIPTS / script).read_text()
    assert "set -euo pipefail" in text


def test_help_names_the_parameters_and_defaults(host):
    usage = host.run("caldp-install-all", "-h").stdout.splitlines()[0]
    assert usage == ("caldp-install-all [--force] [--from-source SRC] [HSTCAL=latest] [PY_VER=3.11] "
                     "[CONDA_ENV=caldp] [CONDA_DIR=$HOME/miniconda3]")


# caldp-install-conda

def test_conda_absent_says_so_and_carries_on(host):
    result = host.run("caldp-install-conda")
    assert result.returncode == 0 and result.stdout == ""
    assert "no conda" in result.stderr and "caldp.native" in result.stderr
    assert not host.calls()


def test_conda_creates_the_environment(host, conda_dir):
    result = host.run("caldp-install-conda")
    prefix = conda_dir / "envs" / "caldp"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(prefix)
    assert host.calls("conda") == [["conda", "create", "-y", "-p", str(prefix), "python=3.11"]]


def test_conda_parameters(host, tmp_path):
    directory = tmp_path / "opt" / "conda"
    host.stub("conda", CONDA, directory / "bin")
    result = host.run("caldp-install-conda", "3.12", "hst", directory)
    assert result.returncode == 0, result.stderr
    assert host.calls("conda") == [["conda", "create", "-y", "-p", str(directory / "envs" / "hst"), "python=3.12"]]


def test_conda_on_path(host):
    """A conda found on PATH (no CONDA_DIR): its own base's envs/ holds the environment."""
    base = host.root / "base"
    host.stub("conda", CONDA, base / "bin")
    (host.bin / "conda").symlink_to(base / "bin" / "conda")
    result = host.run("caldp-install-conda")
    assert result.returncode == 0 and result.stdout.strip() == str(base / "envs" / "caldp")


def test_conda_reuses_an_existing_environment(host, conda_dir):
    keep = conda_dir / "envs" / "caldp" / "conda-meta" / "keep"
    keep.parent.mkdir(parents=True)
    keep.touch()
    result = host.run("caldp-install-conda")
    assert result.returncode == 0 and "reusing" in result.stderr
    assert result.stdout.strip() == str(conda_dir / "envs" / "caldp")
    assert not host.calls("conda") and keep.exists()


@pytest.mark.parametrize("how", [("--force",), {"CALDP_INSTALL_FORCE": "1"}])
def test_conda_force_recreates_the_environment(host, conda_dir, how):
    prefix = conda_dir / "envs" / "caldp"
    (prefix / "conda-meta").mkdir(parents=True)
    args, env = (how, {}) if isinstance(how, tuple) else ((), how)
    result = host.run("caldp-install-conda", *args, **env)
    assert result.returncode == 0, result.stderr
    assert [call[:3] for call in host.calls("conda")] == [["conda", "env", "remove"], ["conda", "create", "-y"]]
    assert conda_dir.exists()  # the environment is recreated; CONDA_DIR itself stays


def test_conda_dir_without_conda_is_left_alone(host):
    directory = host.home / "miniconda3"
    (directory / "something").mkdir(parents=True)
    result = host.run("caldp-install-conda")
    assert result.returncode == 0 and "leaving it alone" in result.stderr and "caldp.native" in result.stderr
    assert (directory / "something").exists() and not host.calls()


def test_conda_from_a_downloaded_installer(host):
    """With CALDP_CONDA_INSTALLER, Miniconda's batch install (-b -p CONDA_DIR); nothing is downloaded."""
    installer = host.root / "Miniconda3.sh"
    installer.write_text(RECORD.replace("$(basename \"$0\")", "installer") +
                         f'mkdir -p "$3/bin" && cp "{host.root}/conda.stub" "$3/bin/conda"\n')
    host.stub("conda.stub", CONDA, host.root)
    result = host.run("caldp-install-conda", CALDP_CONDA_INSTALLER=installer)
    directory = host.home / "miniconda3"
    assert result.returncode == 0, result.stderr
    assert host.calls()[0] == ["installer", "-b", "-p", str(directory)]
    assert host.calls("conda")[0][:2] == ["conda", "create"]


def test_conda_create_failure_falls_back(host, conda_dir):
    result = host.run("caldp-install-conda", FAKE_CONDA_FAIL="create")
    assert result.returncode == 0 and result.stdout == "" and "caldp.native" in result.stderr


def test_conda_unknown_option(host):
    assert host.run("caldp-install-conda", "--frobnicate").returncode == 2


# caldp-install-cal

PINNED_SOURCE = "https://github.com/spacetelescope/hstcal/archive/5c1c17759397d0c2ee41275bc0254b44277c8b9b.tar.gz"


def builds(host, python="python3"):
    """The hstcal source builds the script asked caldp.hstcal for."""
    return [call[4:] for call in host.calls(python) if call[1:4] == ["-m", "caldp.hstcal", "build"]]


def test_cal_without_conda_builds_hstcal_from_the_pinned_source(host):
    result = host.run("caldp-install-cal")
    assert result.returncode == 0, result.stderr
    pips = [call for call in host.calls("python3") if call[1:3] == ["-m", "pip"]]
    assert pips == [["python3", "-m", "pip", "install", *cal_pins()]]
    assert builds(host) == [[PINNED_SOURCE]]
    assert "no conda environment 'caldp': building hstcal from source" in result.stderr
    assert not host.calls("conda")


@pytest.mark.parametrize("how", [("--from-source", "/src/hstcal.tar.gz"), ("--from-source=/src/hstcal.tar.gz",),
                                 {"HSTCAL_SOURCE": "/src/hstcal.tar.gz"}])
def test_cal_from_source_when_asked_even_with_conda(host, conda_dir, how):
    host.run("caldp-install-conda")
    host.log.write_text("")
    args, env = (how, {}) if isinstance(how, tuple) else ((), how)
    result = host.run("caldp-install-cal", *args, **env)
    assert result.returncode == 0, result.stderr
    assert builds(host, "python") == [["/src/hstcal.tar.gz"]] and not host.calls("conda")


@pytest.mark.parametrize("how", [("--force",), {"CALDP_INSTALL_FORCE": "1"}])
def test_cal_force_rebuilds(host, how):
    args, env = (how, {}) if isinstance(how, tuple) else ((), how)
    result = host.run("caldp-install-cal", *args, "--from-source", "/src", **env)
    assert result.returncode == 0 and builds(host) == [["/src", "--force"]]


def test_cal_failed_build_fails_and_says_what_still_works(host):
    host.stub("python3", RECORD + f'[[ $2 == caldp.hstcal ]] && exit 1\n[[ $1 == -m ]] && exit 0\nexec {sys.executable} "$@"\n')
    result = host.run("caldp-install-cal", "--from-source", "/src")
    assert result.returncode == 1 and "hstcal was not installed" in result.stderr and "WFC3 and STIS" in result.stderr


def test_cal_builds_with_the_checkouts_module_when_caldp_is_not_installed(host):
    """A python without caldp (-c 'import caldp.hstcal' fails) runs the checkout's caldp/hstcal.py file."""
    host.stub("python3", RECORD + '[[ $1 == -c && $2 == *caldp.hstcal* ]] && exit 1\nexit 0\n')
    result = host.run("caldp-install-cal", "--from-source", "/src")
    assert result.returncode == 0, result.stderr
    assert [call[1:] for call in host.calls("python3") if call[-2:] == ["build", "/src"]] == [
        [str(SCRIPTS / ".." / "caldp" / "hstcal.py"), "build", "/src"]]


def test_cal_bad_options(host):
    assert host.run("caldp-install-cal", "--frobnicate").returncode == 2
    assert host.run("caldp-install-cal", "--from-source").returncode == 2


def test_cal_into_the_conda_environment(host, conda_dir):
    host.run("caldp-install-conda")
    host.log.write_text("")
    result = host.run("caldp-install-cal")
    prefix = conda_dir / "envs" / "caldp"
    assert result.returncode == 0, result.stderr
    assert [call for call in host.calls("python") if call[1] == "-m"] == [["python", "-m", "pip", "install",
                                                                           *cal_pins()]]
    assert host.calls("conda") == [["conda", "install", "-y", "-p", str(prefix), "-c", "conda-forge", "hstcal"]]
    assert not [call for call in host.calls("python3") if call[1] == "-m"]


@pytest.mark.parametrize("hstcal, spec", [("2.7.4", ["hstcal=2.7.4"]), ("none", None)])
def test_cal_hstcal_versions(host, conda_dir, hstcal, spec):
    host.run("caldp-install-conda")
    host.log.write_text("")
    result = host.run("caldp-install-cal", hstcal)
    assert result.returncode == 0, result.stderr
    conda = host.calls("conda")
    assert (conda[0][-1:] if conda else None) == spec


def test_cal_hstcal_unreachable_says_how_to_build_it(host, conda_dir):
    host.run("caldp-install-conda")
    result = host.run("caldp-install-cal", FAKE_CONDA_FAIL="install")
    assert result.returncode == 1 and "could not install hstcal" in result.stderr
    assert "caldp-install-cal --from-source" in result.stderr


def test_cal_pip_failure_fails(host):
    result = host.run("caldp-install-cal", FAKE_PIP_STATUS=1)
    assert result.returncode == 1


def test_cal_uses_caldp_python(host):
    other = host.stub("other-python", PYTHON)
    result = host.run("caldp-install-cal", CALDP_PYTHON=other)
    assert result.returncode == 0, result.stderr
    assert [call[0] for call in host.calls() if call[1:2] == ["-m"]] == ["other-python"] * 2  # pip, hstcal build


# caldp-install-fitscut

def test_fitscut_with_apt_get(host):
    host.stub("apt-get", APT_GET)
    result = host.run("caldp-install-fitscut")
    assert result.returncode == 0, result.stderr
    assert host.calls("apt-get") == [["apt-get", "install", "-y", "fitscut"]]


def test_fitscut_updates_the_lists_when_needed(host):
    host.stub("apt-get", APT_GET)
    marker = host.root / "no-lists"
    marker.touch()
    result = host.run("caldp-install-fitscut", FAKE_APT_NO_LISTS=marker)
    assert result.returncode == 0, result.stderr
    assert [call[1] for call in host.calls("apt-get")] == ["install", "update", "install"]


def test_fitscut_checked_after_the_install(host):
    host.stub("apt-get", APT_GET)
    result = host.run("caldp-install-fitscut", FAKE_APT_NO_FITSCUT=1)
    assert result.returncode == 1 and "no fitscut is on PATH" in result.stderr


def test_fitscut_already_installed(host):
    host.stub("apt-get", APT_GET)
    host.stub("fitscut")
    result = host.run("caldp-install-fitscut")
    assert result.returncode == 0 and "already installed" in result.stderr and not host.calls("apt-get")
    assert host.run("caldp-install-fitscut", "--force").returncode == 0
    assert host.calls("apt-get") == [["apt-get", "install", "-y", "fitscut"]]


def test_fitscut_without_a_package_manager(host):
    result = host.run("caldp-install-fitscut")
    assert result.returncode == 1 and "no supported package manager" in result.stderr


def test_fitscut_apt_failure(host):
    host.stub("apt-get", APT_GET)
    result = host.run("caldp-install-fitscut", FAKE_APT_FAIL=1)
    assert result.returncode == 1 and "could not install fitscut" in result.stderr


def test_fitscut_uses_sudo_when_not_root(host):
    host.stub("apt-get", APT_GET)
    host.stub("id", ID)
    host.stub("sudo", SUDO)
    result = host.run("caldp-install-fitscut", FAKE_UID=1000)
    assert result.returncode == 0, result.stderr
    assert host.calls("sudo") == [["sudo", "apt-get", "install", "-y", "fitscut"]]
    (host.bin / "sudo").unlink()
    (host.bin / "fitscut").unlink()
    result = host.run("caldp-install-fitscut", FAKE_UID=1000)
    assert result.returncode == 1 and "needs root" in result.stderr


# caldp-install-all

def pip_calls(host):
    return [call[4:] for call in host.calls() if call[1:4] == ["-m", "pip", "install"]]


def test_all_without_conda(host):
    host.stub("apt-get", APT_GET)
    result = host.run("caldp-install-all")
    assert result.returncode == 0, result.stderr
    # caldp with its test tools, then the calibration programs in a call of their own
    assert pip_calls(host) == [["-e", f"{REPO}[test]"], cal_pins()]
    assert builds(host) == [[PINNED_SOURCE]]  # hstcal from source: there is no conda
    assert host.calls("apt-get") == [["apt-get", "install", "-y", "fitscut"]]
    assert not host.calls("conda")
    assert "caldp will use caldp.native" in result.stderr.splitlines()[-1]  # the stub built nothing


def test_all_reports_hstcal_when_it_is_there(host):
    calwf3 = host.home / ".local" / "hstcal" / "bin" / "calwf3.e"
    host.stub("calwf3.e", directory=calwf3.parent)
    result = host.run("caldp-install-all", "--from-source", "/src/hstcal.tar.gz")
    assert result.returncode == 0, result.stderr
    assert builds(host) == [["/src/hstcal.tar.gz"]]
    assert "stage 1 will run hstcal's calacs.e, calwf3.e and cs0.e" in result.stderr.splitlines()[-1]


def test_all_carries_on_when_hstcal_fails_and_says_so(host):
    host.stub("apt-get", APT_GET)
    host.stub("python3", PYTHON.replace('[[ $1 == -m ]]', '[[ $2 == caldp.hstcal ]] && exit 1\n[[ $1 == -m ]]'))
    result = host.run("caldp-install-all")
    assert result.returncode == 1 and "hstcal was not installed" in result.stderr
    assert host.calls("apt-get")  # the fitscut step still ran


def test_all_with_conda(host, conda_dir):
    host.stub("apt-get", APT_GET)
    result = host.run("caldp-install-all", "latest", "3.11", "caldp", conda_dir)
    prefix = conda_dir / "envs" / "caldp"
    assert result.returncode == 0, result.stderr
    assert [call[:2] for call in host.calls("conda")] == [["conda", "create"], ["conda", "install"]]
    assert [call[0] for call in host.calls() if call[1:3] == ["-m", "pip"]] == ["python", "python"]
    assert pip_calls(host) == [["-e", f"{REPO}[test]"], cal_pins()]
    assert "calacs.e" in result.stderr and f"conda activate {prefix}" in result.stderr


def test_all_reuses_and_forces(host, conda_dir):
    host.stub("apt-get", APT_GET)
    assert host.run("caldp-install-all").returncode == 0
    host.log.write_text("")
    assert host.run("caldp-install-all").returncode == 0
    assert [call[1] for call in host.calls("conda")] == ["install"]  # the environment was reused
    host.log.write_text("")
    assert host.run("caldp-install-all", "--force").returncode == 0
    assert [call[1] for call in host.calls("conda")] == ["env", "create", "install"]


def test_all_carries_on_without_fitscut(host):
    result = host.run("caldp-install-all")
    assert result.returncode == 0 and "carrying on without fitscut" in result.stderr


def test_all_needs_a_checkout(host, tmp_path):
    result = host.run("caldp-install-all", CALDP_SOURCE=tmp_path / "nowhere")
    assert result.returncode == 2 and "no caldp checkout" in result.stderr and not host.calls()


def test_all_stops_when_caldp_does_not_install(host):
    result = host.run("caldp-install-all", FAKE_PIP_STATUS=1)
    assert result.returncode == 1 and len(pip_calls(host)) == 1


def test_all_notes_another_python_version(host):
    result = host.run("caldp-install-all", "latest", "3.9")
    assert result.returncode == 0 and "not PY_VER=3.9" in result.stderr


def test_scripts_are_executable_and_parse():
    for script in INSTALL_SCRIPTS:
        path = SCRIPTS / script
        assert os.access(path, os.X_OK), path
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_no_single_pip_call_resolves_everything():
    """Never calcos/drizzlepac in the same pip call as caldp's other extras (pip once backtracked 15+ min)."""
    for script in INSTALL_SCRIPTS:
        for line in (SCRIPTS / script).read_text().splitlines():
            if "pip install" in line and not line.lstrip().startswith("#"):
                assert not ("cal" in line.split("pip install")[1] and "test" in line), (script, line)
