#!/usr/bin/env python3
"""A stand-in calibration program for testing caldp's subprocess contract (not a calibration).

Driven by environment variables:
  STANDIN_RECORD    append a JSON line {"argv", "cwd", "env"} to this file
  STANDIN_PRODUCTS  "1": for each input <root>_raw.fits write <root>_flt.fits and <root>.tra
                    (runastrodriz: <root>_drz.fits)
  STANDIN_EXIT      exit with this status (after printing an ERROR line when non-zero)
  STANDIN_SIGNAL    kill itself with this signal number
  STANDIN_SLEEP     sleep this many seconds first (for SIGTERM tests)
`<program> --version` prints "<program> stand-in 1.0" and exits 0, as hstcal's programs answer it.
"""

import json
import os
import shutil
import sys
import time

name = os.environ.get("STANDIN_NAME") or os.path.basename(sys.argv[0])
if sys.argv[1:] == ["--version"]:  # hstcal's programs answer this; caldp records it in provenance.json
    print(f"{name} stand-in 1.0")
    sys.exit(0)
if os.environ.get("STANDIN_RECORD"):
    with open(os.environ["STANDIN_RECORD"], "a") as record:
        env = {k: os.environ.get(k) for k in ("jref", "iref", "oref", "lref", "mtab", "CRDS_PATH")}
        record.write(json.dumps({"program": name, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}) + "\n")
print(f"{name}: stand-in started with {' '.join(sys.argv[1:])}", flush=True)
if os.environ.get("STANDIN_SLEEP"):
    time.sleep(float(os.environ["STANDIN_SLEEP"]))
if os.environ.get("STANDIN_SIGNAL"):
    os.kill(os.getpid(), int(os.environ["STANDIN_SIGNAL"]))
if os.environ.get("STANDIN_PRODUCTS") == "1" and name.startswith("runastrodriz"):
    from astropy.io import fits

    for arg in sys.argv[1:]:
        if arg.endswith(".fits"):
            fits.PrimaryHDU().writeto(arg.split("_")[0] + "_drz.fits")
if os.environ.get("STANDIN_PRODUCTS") == "1" and not name.startswith("runastrodriz"):
    import glob

    args = sys.argv[1:]
    if any(a.endswith("_asn.fits") for a in args):
        args = sorted(glob.glob("*_raw.fits"))  # an association: its members are beside the table
    for arg in args:
        if arg.endswith("_raw.fits"):
            root = arg[: -len("_raw.fits")]
            shutil.copyfile(arg, f"{root}_flt.fits")
            with open(f"{root}.tra", "w") as trailer:
                trailer.write(f"{name} stand-in trailer for {arg}\n")
code = int(os.environ.get("STANDIN_EXIT", "0"))
if code:
    print(f"ERROR: {name} stand-in failed on purpose", flush=True)
print(f"{name}: stand-in done", flush=True)
sys.exit(code)
