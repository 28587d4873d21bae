"""A small MAST stand-in on 127.0.0.1 that speaks the portal protocol astroquery.mast 0.4.11 uses.

Endpoints (paths as astroquery builds them from [mast] server):

    POST /portal/Mashup/Mashup.asmx/columnsconfig   colConfigId=Mast.Caom.Cone | Mast.Caom.Products
    POST /api/v0/invoke                              request={"service": "Mast.Caom.Filtered", ...}
                                                     request={"service": "Mast.Caom.Products", ...}
    HEAD/GET /api/v0.1/Download/file?uri=mast:HST/product/<file>

Observations and products come from folders of real HST files: every <id>_<suffix>.fits makes a
product of observation <id> (productSubGroupDescription = SUFFIX), and every <asn>_asn.fits makes
an association observation whose product list carries the table and its members' files, as MAST's
does. Each observation also lists products caldp must not download (an FLT and a preview JPEG the
server cannot serve: asking for one is a 404 the test sees).

Fault injection per file name: `fail[name] = n` answers 503 to the next n GETs (-1: always);
`truncate[name] = n` cuts the next n GET bodies in half; names in `gone` answer 404 although they
are listed. `requests` records every call.
"""

import json
import re
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .background import BackgroundHTTPServer

INSTRUMENTS = {"j": "ACS", "i": "WFC3", "o": "STIS", "l": "COS"}
OBSERVATION_FIELDS = {
    "intentType": "string", "obs_collection": "string", "provenance_name": "string",
    "instrument_name": "string", "project": "string", "filters": "string", "target_name": "string",
    "obs_id": "string", "dataproduct_type": "string", "calib_level": "int", "t_exptime": "float",
    "proposal_id": "string", "dataRights": "string", "obsid": "string", "objID": "string",
}
PRODUCT_FIELDS = {
    "obsID": "string", "obs_collection": "string", "dataproduct_type": "string", "obs_id": "string",
    "description": "string", "type": "string", "dataURI": "string", "productType": "string",
    "productGroupDescription": "string", "productSubGroupDescription": "string",
    "productDocumentationURL": "string", "project": "string", "prvversion": "string",
    "proposal_id": "string", "productFilename": "string", "size": "long", "parent_obsid": "string",
    "dataRights": "string", "calib_level": "int", "filters": "string",
}
URI_PREFIX = "mast:HST/product/"


class MastArchive:
    """Observations and their products, from folders of HST files."""

    def __init__(self, folders, split_associations=()):
        self.files = {}
        for folder in folders:
            for path in sorted(Path(folder).glob("*.fits")):
                self.files[path.name] = path
        self.observations = {}  # obs_id -> observation row
        self.products = {}  # obsid -> [product rows]
        for name in sorted(self.files):
            self.add_product(name.split("_", 1)[0], name)
        # Members of a split association are not in its product list: caldp has to ask for them.
        for name in sorted(self.files):
            if name.endswith("_asn.fits"):
                asn_id = name.split("_", 1)[0]
                if asn_id not in split_associations:
                    for member in read_members(self.files[name]):
                        for other in sorted(self.files):
                            if other.startswith(member + "_"):
                                self.add_product(asn_id, other, owner=member)

    def add_product(self, obs_id, name, owner=None):
        observation = self.observations.get(obs_id)
        if observation is None:
            observation = self.observations[obs_id] = make_observation(obs_id, len(self.observations) + 1)
            rows = self.products[observation["obsid"]] = []
            rows += [make_product(observation, obs_id, f"{obs_id}_flt.fits", 0),  # must not be fetched
                     make_product(observation, obs_id, f"{obs_id}_flt.jpg", 0)]
        size = self.files[name].stat().st_size
        self.products[observation["obsid"]].append(make_product(observation, owner or obs_id, name, size))


def read_members(asn_path):
    """Every EXP-* member, present or not: MAST lists an association's members whatever MEMPRSNT says."""
    from caldp.hstfile import read_association_table

    return [row.name for row in read_association_table(asn_path).rows if row.is_exposure]


def make_observation(obs_id, number):
    return {
        "intentType": "science", "obs_collection": "HST", "provenance_name": "CALIBRATED",
        "instrument_name": INSTRUMENTS.get(obs_id[0], "UNKNOWN"), "project": "HST", "filters": "CLEAR",
        "target_name": "CALDP-TEST", "obs_id": obs_id, "dataproduct_type": "image", "calib_level": 3,
        "t_exptime": 100.0, "proposal_id": "12345", "dataRights": "PUBLIC", "obsid": str(24000000 + number),
        "objID": str(1000 + number),
    }


def make_product(observation, obs_id, name, size):
    suffix = name.split("_", 1)[1].rsplit(".", 1)[0].upper()
    return {
        "obsID": observation["obsid"], "obs_collection": "HST", "dataproduct_type": "image", "obs_id": obs_id,
        "description": f"DADS {suffix} file", "type": "S", "dataURI": URI_PREFIX + name,
        "productType": "SCIENCE" if suffix.startswith("RAW") else "AUXILIARY",
        "productGroupDescription": "Minimum Recommended Products" if suffix == "FLT" else "",
        "productSubGroupDescription": "PREVIEW" if name.endswith(".jpg") else suffix,
        "productDocumentationURL": "", "project": "CALACS", "prvversion": "", "proposal_id": "12345",
        "productFilename": name, "size": size, "parent_obsid": observation["obsid"], "dataRights": "PUBLIC",
        "calib_level": 1, "filters": "CLEAR",
    }


def column_config(fields):
    return {name: {"text": name, "type": kind, "vot.datatype": kind} for name, kind in fields.items()}


def table_response(fields, rows):
    return {
        "status": "COMPLETE", "msg": "", "fields": [{"name": n, "type": t} for n, t in fields.items()],
        "data": rows,
        "paging": {"page": 1, "pageSize": max(1, len(rows)), "pagesFiltered": 1, "rows": len(rows),
                   "rowsFiltered": len(rows), "rowsTotal": len(rows)},
    }


class MastServer(BackgroundHTTPServer):
    """The archive served over HTTP from a thread; use as a context manager."""

    def __init__(self, archive):
        self.archive = archive
        self.fail = {}
        self.truncate = {}
        self.stall = {}  # name -> seconds to wait before answering a GET (a server that stops answering)
        self.gone = set()
        self.requests = []  # (method, what): "invoke Mast.Caom.Filtered", "GET x_raw.fits 200", ...
        super().__init__(_handler(self))

    def reset(self):
        with self.lock:
            self.fail.clear()
            self.truncate.clear()
            self.stall.clear()
            self.gone.clear()
            self.requests.clear()

    def downloads(self, name=None):
        """GETs of files (optionally of one name), as 'name status' strings."""
        return [w for m, w in self.requests if m == "GET" and (name is None or w.startswith(name + " "))]

    def record(self, method, what):
        with self.lock:
            self.requests.append((method, what))

    def take_fault(self, table, name):
        with self.lock:
            count = table.get(name, 0)
            if count and count > 0:
                table[name] = count - 1
            return count != 0

    def write_config(self, config_home):
        """An XDG_CONFIG_HOME whose astroquery.cfg points astroquery.mast at this server."""
        folder = Path(config_home) / "astropy"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "astroquery.cfg").write_text(f"[mast]\nserver = {self.url}\n")
        return Path(config_home)


def _handler(server):
    archive = server.archive

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stalls

        def log_message(self, *args):  # quiet: tests read server.requests instead
            pass

        def send_json(self, payload, status=200):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def form(self):
            length = int(self.headers.get("Content-Length", 0))
            return urllib.parse.parse_qs(self.rfile.read(length).decode())

        def do_POST(self):
            path = urllib.parse.urlparse(self.path).path
            if path == "/portal/Mashup/Mashup.asmx/columnsconfig":
                config_id = self.form().get("colConfigId", [""])[0]
                server.record("POST", f"columnsconfig {config_id}")
                fields = PRODUCT_FIELDS if config_id == "Mast.Caom.Products" else OBSERVATION_FIELDS
                return self.send_json(column_config(fields))
            if path == "/api/v0/invoke":
                request = json.loads(self.form()["request"][0])
                server.record("POST", f"invoke {request['service']}")
                return self.send_json(self.invoke(request["service"], request.get("params", {})))
            self.send_error(404)

        def invoke(self, service, params):
            if service == "Mast.Caom.Filtered":
                rows = [o for o in archive.observations.values() if matches(o, params.get("filters", []))]
                return table_response(OBSERVATION_FIELDS, rows)
            if service == "Mast.Caom.Products":
                rows = [p for obsid in str(params.get("obsid", "")).split(",") for p in archive.products.get(obsid, [])]
                return table_response(PRODUCT_FIELDS, rows)
            return {"status": "ERROR", "msg": f"service {service} is not served by the test MAST"}

        def do_HEAD(self):
            self.serve_file(body=False)

        def do_GET(self):
            self.serve_file(body=True)

        def serve_file(self, body):
            parsed = urllib.parse.urlparse(self.path)
            uri = urllib.parse.parse_qs(parsed.query).get("uri", [""])[0]
            name = uri[len(URI_PREFIX):] if uri.startswith(URI_PREFIX) else ""
            path = archive.files.get(name)
            if parsed.path != "/api/v0.1/Download/file" or path is None or name in server.gone:
                server.record(self.command, f"{name or self.path} 404")
                return self.send_error(404, "no such product")
            if body and name in server.stall:
                server.record("GET", f"{name} stalled")
                time.sleep(server.stall[name])
                return
            if body and server.take_fault(server.fail, name):
                server.record("GET", f"{name} 503")
                return self.send_error(503, "Service Unavailable")
            data = path.read_bytes()
            cut = body and server.take_fault(server.truncate, name)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Disposition", f"attachment; filename={name}")
            self.end_headers()
            if body:
                server.record("GET", f"{name} {'cut' if cut else 200}")
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.close_connection = True

    return Handler


def matches(row, filters):
    """The portal's filter semantics for the discrete string columns caldp uses (values, freeText %)."""
    for entry in filters:
        value = str(row.get(entry["paramName"], ""))
        wanted = [str(v) for v in entry.get("values", [])]
        pattern = entry.get("freeText")
        if pattern and re.fullmatch(re.escape(pattern).replace("%", ".*"), value, re.IGNORECASE):
            continue
        if value.lower() not in [w.lower() for w in wanted]:
            return False
    return True
