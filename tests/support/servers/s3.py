"""S3 for the tests: a moto server in a process of its own, or real buckets; a faulty proxy for failures.

By default a moto server (`python -m moto.server`) listens on 127.0.0.1 and caldp reaches it the
way it reaches any S3 endpoint, through AWS_ENDPOINT_URL_S3, with throw-away credentials. Its own
process keeps its state apart from any mock_aws() used elsewhere in the test session.

With CALDP_S3_TEST_INPUTS=s3://bucket/prefix and/or CALDP_S3_TEST_OUTPUTS=s3://bucket/prefix the
same tests use those real buckets (with the caller's own AWS configuration), each test under a
fresh sub-prefix that it removes afterwards. Fault injection needs the local server and skips there.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlparse

from .background import BackgroundHTTPServer

from caldp.locations import S3Location, parse_location

REGION = "us-east-1"
MOTO_BUCKETS = ("caldp-test-inputs", "caldp-test-outputs")
# Recognizable on purpose: tests check these never reach a log or a message.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIACALDPTESTKEY0001", "AWS_SECRET_ACCESS_KEY": "caldp-secret-never-logged"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """`python -m moto.server` on a free 127.0.0.1 port; use as a context manager."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("the moto server did not start (pip install 'moto[server]')")
                time.sleep(0.1)

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class S3Area:
    """Where one test reads and writes: an input and an output location, and the environment to reach them."""

    def __init__(self, inputs, outputs, env, local):
        self.inputs = inputs
        self.outputs = outputs
        self.env = env  # what caldp (in or out of process) needs beyond os.environ
        self.local = local  # True: the moto server (fault injection possible)
        self._client = None

    def client(self):
        """A boto3 client for the test's own setup and checks (caldp builds its own)."""
        import boto3

        if self._client is None:
            if not self.local:
                self._client = boto3.session.Session().client("s3")
            else:
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.env["AWS_ENDPOINT_URL_S3"], region_name=REGION,
                    aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])
        return self._client

    def put(self, location, name, body):
        self.client().put_object(Bucket=location.bucket, Key=location.key(name), Body=body)

    def keys(self, location, under=""):
        """Keys under the location (relative to it), sorted."""
        client = self.client()
        base = location.key()
        prefix = location.key(under) if under else (base + "/" if base else "")
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
            found += [item["Key"][len(base) + 1 if base else 0:] for item in page.get("Contents", [])]
        return sorted(found)

    def read(self, location, name):
        return self.client().get_object(Bucket=location.bucket, Key=location.key(name))["Body"].read()

    def remove_all(self):
        client = self.client()
        for location in {self.inputs, self.outputs}:
            keys = [location.key(k) for k in self.keys(location)]
            for start in range(0, len(keys), 1000):
                client.delete_objects(Bucket=location.bucket,
                                      Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})


def moto_env(url, home):
    return {
        **MOTO_CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_DEFAULT_REGION": REGION,
        # Keep the developer's own AWS configuration out of the tests.
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }


# The developer's own AWS settings that would override the moto server's (removed, not emptied:
# boto3 treats AWS_PROFILE="" as a profile name).
MOTO_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


def real_locations():
    """(inputs, outputs) from CALDP_S3_TEST_INPUTS / _OUTPUTS, or None for the local moto server."""
    inputs = os.environ.get("CALDP_S3_TEST_INPUTS", "").strip()
    outputs = os.environ.get("CALDP_S3_TEST_OUTPUTS", "").strip()
    if not (inputs or outputs):
        return None
    return parse_location(inputs or outputs), parse_location(outputs or inputs)


def make_area(moto_url, home):
    """A fresh S3Area under unique prefixes (real buckets when configured, else the moto buckets)."""
    run = f"caldp-test-{uuid.uuid4().hex[:10]}"
    real = real_locations()
    if real:
        inputs, outputs = (S3Location(loc.bucket, loc.key(run, role)) for loc, role in zip(real, ("in", "out")))
        return S3Area(inputs, outputs, {}, local=False)
    env = moto_env(moto_url, home)
    area = S3Area(S3Location(MOTO_BUCKETS[0], f"{run}/in"), S3Location(MOTO_BUCKETS[1], f"{run}/out"), env, local=True)
    client = area.client()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in MOTO_BUCKETS:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    return area


class FaultyProxy(BackgroundHTTPServer):
    """An HTTP proxy in front of an S3 endpoint that fails chosen requests.

    fail(method, pattern, times=-1, status=500): requests whose method matches and whose path
    matches the regex get an S3 error instead of an answer: InternalError (which botocore retries)
    for a 5xx, AccessDenied for 403, the status's own name otherwise.
    """

    def __init__(self, upstream):
        self.upstream = urlparse(upstream)
        self.rules = []
        self.seen = []  # (method, path, status)
        super().__init__(_proxy_handler(self))

    def fail(self, method, pattern, times=-1, status=500):
        with self.lock:
            self.rules.append({"method": method, "pattern": re.compile(pattern), "times": times, "status": status})

    def clear(self):
        with self.lock:
            self.rules.clear()

    def injected(self, method, path):
        with self.lock:
            for rule in self.rules:
                if rule["method"] == method and rule["pattern"].search(path) and rule["times"] != 0:
                    rule["times"] -= 1 if rule["times"] > 0 else 0
                    return rule["status"]
        return None


def _read_body(handler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", 0)))


def _proxy_handler(proxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms delayed-ACK stalls

        def log_message(self, *args):
            pass

        def forward(self):
            body = _read_body(self)
            status = proxy.injected(self.command, self.path)
            if status:
                code = {403: "AccessDenied", 404: "NoSuchKey"}.get(status, "InternalError" if status >= 500 else str(status))
                error = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                         "<Message>injected by the test proxy</Message></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                proxy.seen.append((self.command, self.path, status))
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            upstream = HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                # A HEAD answer carries the object's length, not that of its (empty) body.
                length = response.getheader("Content-Length", "0") if self.command == "HEAD" else len(payload)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                proxy.seen.append((self.command, self.path, response.status))
            finally:
                upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    return Handler


@contextlib.contextmanager
def local_aws():
    """A private moto server (every AWS service moto has, over HTTP) with this process's environment
    pointed at it while the block runs: throw-away credentials, AWS_ENDPOINT_URL(_S3)."""
    with MotoServer() as server:
        env = {**MOTO_CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": server.url,
               "AWS_ENDPOINT_URL_S3": server.url}
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            yield server.url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
