"""Previews: which products, what an image preview shows, the native renderer, fitscut
(Debian's 1.4.4 or STScI's fork), spec-plots, the make_previews step and caldp-create-previews.

Real frames come from ../shared (raws in hst-data/, calacs.e's flt/sfl in golden/); multi-chip
and drizzled geometry, which ../shared has no file of, is made from a real frame.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from caldp import create_preview
from caldp.create_preview import choose_renderer, make_previews, preview_products, product_suffix
from caldp.exit_codes import ExitCode
from caldp.instruments import INSTRUMENTS
from caldp.previews import fitscut as fitscut_module
from caldp.previews.fitscut import DEBIAN, STSCI, debian_zoom, fitscut_argv, write_fitscut_previews
from caldp.previews.frames import PREVIEW_BAD_DQ, Frame, NoImageData, read_frame
from caldp.previews.stretch import bin_frame, stretch_pixels, thumbnail_shape, write_native_previews

from ..conftest import shared_path

Image = pytest.importorskip("PIL.Image", reason="the native renderer needs Pillow (pip install 'caldp[previews]')")

HRC_FLT = ("golden", "acs-hrc-j8bt05njq", "expected", "j8bt05njq_flt.fits")
SBC_SFL = ("golden", "acs-sbc-jbz504020", "expected", "jbz504021_sfl.fits")
# Real frames rendered both ways: HRC raw (with overscan) and flt, SBC raw, flt and summed sfl,
# WFC3/IR MULTIACCUM raw, a STIS acquisition (smaller than a thumbnail) and a 32x1022 peak-up.
REAL_FRAMES = [
    ("hst-data", "acs", "j8bt05njq_raw.fits"),
    ("hst-data", "acs", "j6gp01mkq_raw.fits"),
    ("hst-data", "acs", "jbz504eoq_raw.fits"),
    HRC_FLT,
    ("golden", "acs-sbc-jbz504eoq", "expected", "jbz504eoq_flt.fits"),
    SBC_SFL,
    ("hst-data", "wfc3", "ibxy01aoq_raw.fits"),
    ("hst-data", "stis", "ocmv0lw6q_raw.fits"),
    ("hst-data", "stis", "oc7w11viq_raw.fits"),
]


def fitscut_or_skip():
    path = shutil.which("fitscut")
    if path is None:
        pytest.skip("needs fitscut on PATH (apt-get install fitscut)")
    return path


def spec_plots_or_skip():
    if shutil.which("make_hst_spec_previews") is None:
        pytest.skip("needs spec-plots' make_hst_spec_previews (pip install 'caldp[previews]')")


def jpeg(path):
    with Image.open(path) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("L"))


def correlation(a, b):
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def assert_looks_like_a_picture(pixels):
    """Not blank, not saturated: the stretch put most pixels between black and white."""
    assert pixels.std() > 3, "blank"
    assert (pixels >= 250).mean() < 0.03, "saturated"
    assert (pixels > 0).mean() > 0.001, "black"


def write_image_file(path, planes, primary=None):
    """A FITS file with SCI/DQ (or WHT) extensions: planes is a list of (extver, sci, extra, header)."""
    hdus = [fits.PrimaryHDU(header=primary)]
    for ver, sci, extra, header in planes:
        hdus.append(fits.ImageHDU(sci, header=header, name="SCI", ver=ver))
        for name, array in extra.items():
            hdus.append(fits.ImageHDU(array, name=name, ver=ver))
    fits.HDUList(hdus).writeto(path)
    return path


# ------------------------------------------------------------------------------ which products
def test_product_suffixes_follow_the_instrument_table(tmp_path):
    names = ["j8bt05njq_raw.fits", "j8bt05njq_flt.fits", "j8bt05njq_drz.fits", "j8bt05njq.tra",
             "jbz504021_sfl.fits", "j8bt05njq_spt.fits", "jbz504020_asn.fits"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert product_suffix("ldfd01010_x1dsum3.fits") == "x1dsum3"
    assert [p.name for p in preview_products(tmp_path, INSTRUMENTS["acs"])] == [
        "j8bt05njq_drz.fits", "j8bt05njq_flt.fits", "j8bt05njq_raw.fits", "jbz504021_sfl.fits"]
    assert preview_products(tmp_path, INSTRUMENTS["cos"]) == []


# ------------------------------------------------------------------------------ what is shown
def test_two_chips_are_shown_in_detector_layout(tmp_path):
    """ACS/WFC and WFC3/UVIS: SCI,1 is chip 2, the lower half; chip 1 (SCI,2) goes on top."""
    sci = fits.getdata(shared_path(*HRC_FLT), "SCI")
    dq = fits.getdata(shared_path(*HRC_FLT), "DQ")
    lower, upper = np.split(sci, 2)
    path = write_image_file(tmp_path / "jsynth01q_flt.fits", [
        (1, lower, {"DQ": np.split(dq, 2)[0]}, fits.Header({"CCDCHIP": 2})),
        (2, upper, {"DQ": np.split(dq, 2)[1]}, fits.Header({"CCDCHIP": 1})),
    ])
    frame = read_frame(path)
    whole = read_frame(shared_path(*HRC_FLT))
    assert frame.description == "SCI,1+SCI,2"
    np.testing.assert_array_equal(frame.data, whole.data)
    np.testing.assert_array_equal(stretch_pixels(frame), stretch_pixels(whole))


def test_multiaccum_raw_shows_its_last_read():
    path = shared_path("hst-data", "wfc3", "ibxy01aoq_raw.fits")
    with fits.open(path) as hdul:
        times = {h.ver: h.header["SAMPTIME"] for h in hdul if h.name == "SCI"}
        last = max(times, key=times.get)
        expected = hdul["SCI", last].data.astype(np.float32)
    frame = read_frame(path)
    assert frame.description == f"SCI,{last}" and len(times) == 14
    np.testing.assert_array_equal(frame.data, expected)


def test_raw_dq_placeholder_masks_nothing_and_tables_have_no_image():
    frame = read_frame(shared_path("hst-data", "acs", "j8bt05njq_raw.fits"))
    assert frame.shape == (1044, 1062) and not frame.mask.any()
    with pytest.raises(NoImageData):
        read_frame(shared_path("hst-data", "cos", "ldfd01vnq_rawtag_a.fits"))


def test_bad_dq_bits_and_unweighted_drizzle_pixels_are_masked(tmp_path):
    sci = np.arange(64, dtype=np.float32).reshape(8, 8)
    dq = np.zeros((8, 8), np.int16)
    dq[0, 0], dq[0, 1], dq[0, 2] = 4, 256, 16 | 8192  # bad pixel, saturated, hot + CR
    flt = read_frame(write_image_file(tmp_path / "a_flt.fits", [(1, sci, {"DQ": dq}, None)]))
    assert flt.mask[0, :3].tolist() == [True, False, True] and flt.mask.sum() == 2
    assert 256 & PREVIEW_BAD_DQ == 0  # star cores stay visible
    wht = np.ones((8, 8), np.float32)
    wht[:2] = 0
    drz = read_frame(write_image_file(tmp_path / "a_drz.fits", [(1, sci, {"WHT": wht}, None)]))
    assert drz.mask.sum() == 16 and drz.mask[:2].all()


# ------------------------------------------------------------------------------ native renderer
def test_stretch_orientation_percentiles_and_mask():
    data = np.tile(np.linspace(0, 1000, 100, dtype=np.float32), (50, 1))  # 0 to 1000 left to right
    data[0, 50] = 5000.0  # in FITS row 1: the bottom row of the picture
    mask = np.zeros(data.shape, bool)
    mask[10, 10] = True
    pixels = stretch_pixels(Frame(data, mask, "test"))
    assert pixels[-1, 50] == 255 and pixels[0, 50] < 255  # flipped: row 1 at the bottom
    assert pixels[:, 0].max() == 0  # the 0.5 percentile is black
    assert pixels[-11, 10] == 0 and pixels[-11, 11] > 0  # the masked pixel
    ramp = pixels[5, :]
    assert np.all(np.diff(ramp.astype(int)) >= 0)
    assert ramp[50] > 128  # asinh lifts the middle of a linear ramp above half grey


def test_thumbnail_geometry():
    assert thumbnail_shape((1024, 1024)) == (128, 128)
    assert thumbnail_shape((1044, 1062)) == (126, 128)
    assert thumbnail_shape((2 * 2048, 4096)) == (128, 128)
    assert thumbnail_shape((32, 1022)) == (4, 128)
    assert thumbnail_shape((100, 100)) == (128, 128)  # a small frame is enlarged
    assert thumbnail_shape((1, 5000)) == (1, 128)


def test_binning_ignores_masked_pixels():
    data = np.ones((4, 4), np.float32)
    data[0, 0] = 1e6
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    mask[2:, 2:] = True
    binned = bin_frame(Frame(data, mask, "t"), (2, 2))
    np.testing.assert_array_equal(binned.data[~binned.mask], [1, 1, 1])
    assert binned.mask.tolist() == [[False, False], [False, True]]


@pytest.mark.parametrize("parts", [HRC_FLT, ("hst-data", "acs", "j8bt05njq_raw.fits"),
                                   ("hst-data", "wfc3", "ibxy01aoq_raw.fits"), SBC_SFL])
def test_native_previews_of_real_frames(parts, tmp_path):
    frame = read_frame(shared_path(*parts))
    write_native_previews(frame, tmp_path / "full.jpg", tmp_path / "thumb.jpg")
    full, thumb = jpeg(tmp_path / "full.jpg"), jpeg(tmp_path / "thumb.jpg")
    assert full.shape == frame.shape
    assert thumb.shape == thumbnail_shape(frame.shape) and max(thumb.shape) == 128
    assert_looks_like_a_picture(full)
    assert_looks_like_a_picture(thumb)


def test_masked_pixels_of_a_real_frame_are_black(tmp_path):
    """The SBC sfl has a bad detector row and vignetted corners flagged 4 in DQ."""
    frame = read_frame(shared_path(*SBC_SFL))
    assert frame.mask.sum() > 5000
    pixels = stretch_pixels(frame)
    flipped_mask = frame.mask[::-1]
    assert pixels[flipped_mask].max() == 0
    assert np.median(pixels[~flipped_mask]) > 30  # the sky around them is grey, not black
    write_native_previews(frame, tmp_path / "full.jpg", tmp_path / "thumb.jpg")
    assert np.median(jpeg(tmp_path / "full.jpg")[flipped_mask]) < 10  # still black after JPEG


# ------------------------------------------------------------------------------ fitscut
def test_fitscut_command_lines():
    stsci = fitscut_argv("fitscut", STSCI, "f.fits", "o.jpg", (1024, 1024), 128)
    # no --badpix: with it the fork paints every 0.0 pixel white (all the empty pixels of a MAMA frame)
    assert stsci == ["fitscut", "--all", "--jpg", "--autoscale=99.5", "--asinh-scale", "--output-size=128",
                     "--badvalue=-3e+38", "f.fits", "o.jpg"]
    assert "--output-size=-1" in fitscut_argv("fitscut", STSCI, "f.fits", "o.jpg", (1024, 1024))
    assert fitscut_argv("fitscut", DEBIAN, "f.fits", "o.jpg", (1024, 1024)) == [
        "fitscut", "--all", "--jpg", "--autoscale=99.5", "--asinh-scale", "f.fits", "o.jpg"]
    debian_thumb = fitscut_argv("fitscut", DEBIAN, "f.fits", "o.jpg", (1044, 1062), 128)
    assert debian_thumb[5].startswith("--zoom=0.12") and "--png" not in debian_thumb
    assert "--png" in fitscut_argv("fitscut", DEBIAN, "f.fits", "o.png", (100, 100), 128)  # cannot enlarge


@pytest.mark.parametrize("shape", [(1024, 1024), (1044, 1062), (4096, 4144), (2048, 4096), (266, 266),
                                   (138, 138), (32, 1022), (1014, 1014), (512, 513), (300, 77), (128, 128)])
def test_debian_zoom_hits_the_thumbnail_shape(shape):
    """fitscut 1.4.4 sizes each axis as (int)(float zoom * n)."""
    target = thumbnail_shape(shape)
    zoom, exact = debian_zoom(shape, target)
    made = tuple(int(np.float32(zoom) * np.float32(n)) for n in shape)
    assert exact and made == target


def test_fitscut_flavour_is_detected_from_its_usage(tmp_path):
    fake = tmp_path / "fitscut"
    fake.write_text("#!/bin/sh\necho 'Usage: fitscut [options] file' >&2\n"
                    "echo '      --badpix  ignore bad pixels' >&2\necho '      --output-size=value' >&2\n")
    fake.chmod(0o755)
    assert fitscut_module.fitscut_flavour(str(fake)) == STSCI
    fake.write_text("#!/bin/sh\necho 'Usage: fitscut [options] file' >&2\necho '      --zoom=factor' >&2\n")
    fitscut_module.fitscut_flavour.cache_clear()
    assert fitscut_module.fitscut_flavour(str(fake)) == DEBIAN
    fitscut_module.fitscut_flavour.cache_clear()


def test_fitscut_and_native_renderers_agree_on_real_frames(tmp_path):
    executable = fitscut_or_skip()
    if fitscut_module.fitscut_flavour(executable) != DEBIAN:
        pytest.skip("the native stretch is Debian fitscut 1.4.4's; STScI's fork adds its own median correction "
                    "and binning (measured r >= 0.83 full size, >= 0.71 thumbnails)")
    for parts in REAL_FRAMES:
        frame = read_frame(shared_path(*parts))
        name = parts[-1].removesuffix(".fits")
        native = (tmp_path / f"{name}_n.jpg", tmp_path / f"{name}_n_thumb.jpg")
        cut = (tmp_path / f"{name}_f.jpg", tmp_path / f"{name}_f_thumb.jpg")
        write_native_previews(frame, *native)
        write_fitscut_previews(frame, *cut, executable=executable, env={"PATH": "/usr/bin:/bin"})
        for ours, theirs in zip(native, cut):
            a, b = jpeg(ours), jpeg(theirs)
            assert a.shape == b.shape, ours.name
            assert correlation(a, b) >= 0.95, f"{ours.name}: r={correlation(a, b):.3f}"


def test_fitscut_previews_mask_bad_pixels_too(tmp_path):
    """Debian's fitscut has no --badpix: the staged copy makes masked pixels the lowest value."""
    executable = fitscut_or_skip()
    frame = read_frame(shared_path(*SBC_SFL))
    write_fitscut_previews(frame, tmp_path / "f.jpg", tmp_path / "t.jpg", executable=executable, env={})
    full = jpeg(tmp_path / "f.jpg")
    assert full.shape == frame.shape
    assert np.median(full[frame.mask[::-1]]) < 10 and np.median(full[~frame.mask[::-1]]) > 30


# ------------------------------------------------------------------------------ spectra
def write_cos_x1dsum(path, n=2048):
    wavelengths = [np.linspace(1120, 2000, n), np.linspace(900, 1100, n)]
    flux = [1e-14 * (1.2 + np.sin(w / 40)) for w in wavelengths]
    columns = [
        fits.Column("SEGMENT", "4A", array=["FUVA", "FUVB"]),
        fits.Column("NELEM", "J", array=[n, n]),
        fits.Column("WAVELENGTH", f"{n}D", array=np.array(wavelengths)),
        fits.Column("FLUX", f"{n}E", array=np.array(flux)),
        fits.Column("ERROR", f"{n}E", array=np.array(flux) * 0.05),
        fits.Column("DQ_WGT", f"{n}E", array=np.ones((2, n))),
        fits.Column("DQ", f"{n}I", array=np.zeros((2, n))),
    ]
    primary = fits.Header({"INSTRUME": "COS", "DETECTOR": "FUV", "OPT_ELEM": "G140L", "CENWAVE": 1105,
                           "TARGNAME": "SYNTHETIC", "APERTURE": "PSA"})
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.BinTableHDU.from_columns(columns, name="SCI")]).writeto(path)
    return path


def write_stis_sx1(path, n=1024):
    wavelengths = np.linspace(1600, 3200, n)
    flux = 1e-13 * (wavelengths / 2000.0) ** -2
    columns = [
        fits.Column("SPORDER", "I", array=[1]),
        fits.Column("NELEM", "I", array=[n]),
        fits.Column("WAVELENGTH", f"{n}D", array=[wavelengths]),
        fits.Column("FLUX", f"{n}E", array=[flux]),
        fits.Column("ERROR", f"{n}E", array=[flux * 0.03]),
        fits.Column("DQ", f"{n}I", array=[np.zeros(n)]),
    ]
    primary = fits.Header({"INSTRUME": "STIS", "DETECTOR": "NUV-MAMA", "OPT_ELEM": "G230L", "CENWAVE": 2376,
                           "TARGNAME": "SYNTHETIC", "APERTURE": "52X0.2", "OBSTYPE": "SPECTROSCOPIC"})
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.BinTableHDU.from_columns(columns, name="SCI")]).writeto(path)
    return path


def test_spectral_previews_with_spec_plots(tmp_path):
    spec_plots_or_skip()
    write_cos_x1dsum(tmp_path / "lsynth010_x1dsum.fits")
    bad = write_cos_x1dsum(tmp_path / "lsynth010_x1d.fits")
    with fits.open(bad, mode="update") as hdul:
        del hdul[0].header["OPT_ELEM"]  # spec-plots exits 1 without it
    report = make_previews(tmp_path, INSTRUMENTS["cos"])
    assert report.made == ["lsynth010_x1dsum.png", "lsynth010_x1dsum_thumb.png", "lsynth010_x1dsum_prev.fits"]
    assert [p for p, _ in report.failed] == ["lsynth010_x1d.fits"] and "OPT_ELEM" in report.failed[0][1]
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == sorted(report.made)
    with Image.open(tmp_path / "previews" / "lsynth010_x1dsum_thumb.png") as thumb:
        assert max(thumb.size) <= 200
    plot = np.asarray(Image.open(tmp_path / "previews" / "lsynth010_x1dsum.png").convert("L"))
    assert plot.std() > 10  # a drawn plot, not an empty canvas

    stis = tmp_path / "stis"
    stis.mkdir()
    write_stis_sx1(stis / "osynth010_sx1.fits")
    report = make_previews(stis, INSTRUMENTS["stis"])
    assert report.made == ["osynth010_sx1.png", "osynth010_sx1_thumb.png"] and not report.failed


# ------------------------------------------------------------------------------ the step and the command
def test_make_previews_records_failures_and_goes_on(tmp_path):
    shutil.copyfile(shared_path(*HRC_FLT), tmp_path / "j8bt05njq_flt.fits")
    (tmp_path / "j8bt05njq_crj.fits").write_bytes(b"SIMPLE  = not a FITS file")
    report = make_previews(tmp_path, INSTRUMENTS["acs"], environ={"CALDP_PREVIEW_RENDERER": "native"})
    assert report.renderer == "native"
    assert report.made == ["j8bt05njq_flt.jpg", "j8bt05njq_flt_thumb.jpg"]
    assert [p for p, _ in report.failed] == ["j8bt05njq_crj.fits"]
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == report.made
    summary = json.loads(json.dumps(report.as_dict()))
    assert summary["made"] == 2 and summary["failed"][0]["product"] == "j8bt05njq_crj.fits"


def test_renderer_choice(tmp_path):
    assert choose_renderer({"PATH": str(tmp_path), "CALDP_PREVIEW_RENDERER": "auto"}).name == "native"
    demanded = choose_renderer({"PATH": str(tmp_path), "CALDP_PREVIEW_RENDERER": "fitscut"})
    assert "not installed" in demanded.missing
    assert "not one of" in choose_renderer({"CALDP_PREVIEW_RENDERER": "gimp"}).missing
    (tmp_path / "fitscut").write_text("#!/bin/sh\n")
    (tmp_path / "fitscut").chmod(0o755)
    assert choose_renderer({"PATH": str(tmp_path)}).executable == str(tmp_path / "fitscut")
    assert choose_renderer({"PATH": str(tmp_path), "CALDP_PREVIEW_RENDERER": "native"}).name == "native"


def test_caldp_create_previews_on_a_published_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("CALDP_PREVIEW_RENDERER", "native")
    products = tmp_path / "out" / "data" / "acs" / "j8bt05njq"
    products.mkdir(parents=True)
    shutil.copyfile(shared_path(*HRC_FLT), products / "j8bt05njq_flt.fits")
    assert create_preview.main(["j8bt05njq", f"file:{tmp_path / 'out'}"]) == ExitCode.SUCCESS
    assert sorted(p.name for p in (products / "previews").iterdir()) == ["j8bt05njq_flt.jpg", "j8bt05njq_flt_thumb.jpg"]
    assert_looks_like_a_picture(jpeg(products / "previews" / "j8bt05njq_flt.jpg"))

    elsewhere = tmp_path / "previews-out"
    (products / "j8bt05njq_raw.fits").write_bytes(b"garbage")
    assert create_preview.main(["J8BT05NJQ", f"file:{tmp_path / 'out'}", f"file:{elsewhere}"]) == 28
    assert sorted(p.name for p in (elsewhere / "data/acs/j8bt05njq/previews").iterdir()) == [
        "j8bt05njq_flt.jpg", "j8bt05njq_flt_thumb.jpg"]
    assert create_preview.main(["j8bt05njq", f"file:{tmp_path / 'missing'}"]) == ExitCode.INPUT_TAR_FILE_ERROR
    assert create_preview.main(["u8bt05njq", "file:."]) == ExitCode.CMDLINE_ERROR
    assert create_preview.main(["j8bt05njq", "s3://bucket/x"]) == ExitCode.CMDLINE_ERROR
    assert create_preview.main(["--bogus"]) == ExitCode.CMDLINE_ERROR


def test_caldp_create_previews_runs_as_a_module(tmp_path):
    """The console script's target, as a process (python -m keeps it independent of installs)."""
    shutil.copyfile(shared_path("hst-data", "acs", "jbz504eoq_raw.fits"), tmp_path / "jbz504eoq_raw.fits")
    result = subprocess.run([sys.executable, "-m", "caldp.create_preview", "jbz504eoq", f"file:{tmp_path}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/acs/jbz504eoq/previews/jbz504eoq_raw_thumb.jpg").is_file()
    assert "previews: 2 files made, 0 products failed" in result.stderr
