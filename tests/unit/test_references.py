"""CRDS bestrefs in-process on the real raws, with a private copy of the real offline cache."""

import shutil

import pytest
from astropy.io import fits

from caldp.exit_codes import CaldpError, ExitCode
from caldp.references import assign_references, cache_layout, reference_environment, resolve_reference

from ..conftest import copy_inputs

# What hst_0729 selects for these raws (the goldens' references carry several of these names).
SELECTED = {
    ("acs", "j8bt05njq_raw.fits"): {"PFLTFILE": "jref$o3u1448rj_pfl.fits", "CCDTAB": "jref$o1515069j_ccd.fits",
                                    "BIASFILE": "jref$m4r1753rj_bia.fits", "DARKFILE": "jref$n3o1059hj_drk.fits",
                                    "OSCNTAB": "jref$14s1737dj_osc.fits", "BPIXTAB": "jref$m8r09169j_bpx.fits",
                                    "IMPHTTAB": "jref$2391649pj_imp.fits", "IDCTAB": "jref$p7d1548qj_idc.fits",
                                    "NPOLFILE": "jref$v9718263j_npl.fits", "GRAPHTAB": "mtab$u921351jm_tmg.fits"},
    ("acs", "j8bt06o6q_raw.fits"): {"PFLTFILE": "jref$o3u1449dj_pfl.fits"},
    ("acs", "j6gp01mkq_raw.fits"): {"PFLTFILE": "jref$o3u1448ij_pfl.fits", "CCDTAB": "jref$o151506ej_ccd.fits"},
    ("acs", "jbz504eoq_raw.fits"): {"PFLTFILE": "jref$36h22012j_pfl.fits", "MLINTAB": "jref$k9c13374j_lin.fits",
                                    "BPIXTAB": "jref$u451251ej_bpx.fits", "IMPHTTAB": "jref$xb61855jj_imp.fits"},
    ("acs", "jbz504elq_raw.fits"): {"PFLTFILE": "jref$36h2200gj_pfl.fits"},
    ("wfc3", "ibxy01aoq_raw.fits"): {"CCDTAB": "iref$t2c16200i_ccd.fits", "NLINFILE": "iref$u1k1727mi_lin.fits"},
    ("stis", "oc7w11viq_raw.fits"): {"CCDTAB": "oref$16j1600do_ccd.fits", "BPIXTAB": "oref$h1v11475o_bpx.fits"},
    ("cos", "ldfd01vnq_rawtag_a.fits"): {"DEADTAB": "lref$s7g1700gl_dead.fits", "WCPTAB": "lref$u1t1616ql_wcp.fits",
                                        "LAMPTAB": "lref$24914347l_lamp.fits"},
    ("cos", "ldfd01vlq_rawacq.fits"): {"FLATFILE": "lref$x5v1944hl_flat.fits"},
}


@pytest.fixture(scope="module")
def assigned(crds_cache, tmp_path_factory):
    """bestrefs once over every raw in SELECTED (one CRDS load, as a pipeline run would)."""
    import os

    env_before = dict(os.environ)
    from ..conftest import offline_crds_env

    os.environ.update(offline_crds_env(crds_cache))
    os.environ.pop("CRDS_CONTEXT", None)
    try:
        work = tmp_path_factory.mktemp("bestrefs")
        paths = []
        for subdir, name in SELECTED:
            copy_inputs([name], work, subdir)
            paths.append(work / name)
        assignment = assign_references(paths, ref_env=reference_environment(crds_cache))
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return work, assignment


@pytest.mark.parametrize("key", sorted(SELECTED), ids=lambda k: k[1])
def test_selected_references(assigned, key):
    work, assignment = assigned
    _, name = key
    header = fits.getheader(work / name)
    for keyword, value in SELECTED[key].items():
        assert header[keyword] == value, keyword
        assert assignment.references[name][keyword] == value
    assert header["CRDS_CTX"] == "hst_0729.pmap"


def test_reference_counts_and_missing(assigned):
    _, assignment = assigned
    assert assignment.context == "hst_0729.pmap"
    assert len(assignment.references["j8bt05njq_raw.fits"]) == 13
    assert len(assignment.references["ldfd01vnq_rawtag_a.fits"]) == 20
    missing = {(f, k) for f, k, _ in assignment.missing}
    assert ("j8bt05njq_raw.fits", "PFLTFILE") in missing
    # The three real COS tables are in the cache, so they are not reported missing.
    assert ("ldfd01vnq_rawtag_a.fits", "DEADTAB") not in missing
    assert ("ldfd01vnq_rawtag_a.fits", "LAMPTAB") not in missing
    assert ("ldfd01vnq_rawtag_a.fits", "FLATFILE") in missing


def test_missing_reference_is_a_warning_per_reference(crds_env, crds_cache, tmp_path, caplog):
    copy_inputs(["j8bt05njq_raw.fits"], tmp_path, "acs")
    assign_references([tmp_path / "j8bt05njq_raw.fits"], ref_env=reference_environment(crds_cache))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "read-only CRDS cache" in r.getMessage()]
    assert len(warnings) == 13
    assert any("PFLTFILE=jref$o3u1448rj_pfl.fits" in w for w in warnings)


def test_reference_environment_flat_and_instrument(crds_cache, tmp_path):
    assert cache_layout(crds_cache) == "flat"
    env = reference_environment(crds_cache)
    assert set(env) == {"jref", "iref", "oref", "lref", "nref", "uref", "mtab"}
    assert all(v == f"{crds_cache}/references/hst/" for v in env.values())
    (tmp_path / "config" / "hst").mkdir(parents=True)
    (tmp_path / "config" / "hst" / "ref_cache_subdir_mode").write_text("instrument\n")
    env = reference_environment(tmp_path)
    assert env["jref"] == f"{tmp_path}/references/hst/acs/"
    assert env["uref"] == f"{tmp_path}/references/hst/wfpc2/"
    assert env["mtab"] == f"{tmp_path}/references/hst/synphot/"
    assert cache_layout(tmp_path / "nowhere") == "instrument"


def test_resolve_reference():
    env = {"jref": "/c/"}
    assert str(resolve_reference("jref$x_bia.fits", env)) == "/c/x_bia.fits"
    assert resolve_reference("N/A", env) is None
    assert resolve_reference("zref$x.fits", env) is None


def test_cache_without_mappings_is_27(crds_env, crds_cache, tmp_path, monkeypatch):
    empty = tmp_path / "cache"
    shutil.copytree(crds_cache / "config", empty / "config")
    monkeypatch.setenv("CRDS_PATH", str(empty))
    copy_inputs(["j8bt05njq_raw.fits"], tmp_path, "acs")
    with pytest.raises(CaldpError) as info:
        assign_references([tmp_path / "j8bt05njq_raw.fits"], ref_env=reference_environment(empty))
    assert info.value.code == ExitCode.BESTREFS_ERROR and "no HST mappings" in info.value.cause


def test_unknown_context_is_27(crds_env, crds_cache, tmp_path):
    copy_inputs(["j8bt05njq_raw.fits"], tmp_path, "acs")
    with pytest.raises(CaldpError) as info:
        assign_references([tmp_path / "j8bt05njq_raw.fits"], context="hst_9999.pmap",
                          ref_env=reference_environment(crds_cache))
    assert info.value.code == ExitCode.BESTREFS_ERROR and "hst_9999.pmap" in info.value.cause


def test_sync_without_server_is_27(crds_env, crds_cache, tmp_path, monkeypatch):
    """A writable cache with no server: CRDS tries to fetch what is missing and fails -> 27."""
    cache = tmp_path / "cache"
    shutil.copytree(crds_cache, cache)
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_READONLY_CACHE", "0")
    copy_inputs(["j8bt05njq_raw.fits"], tmp_path, "acs")
    with pytest.raises(CaldpError) as info:
        assign_references([tmp_path / "j8bt05njq_raw.fits"], sync=True, ref_env=reference_environment(cache))
    assert info.value.code == ExitCode.BESTREFS_ERROR
