"""An HTTP server on a free 127.0.0.1 port, served from a daemon thread; a context manager."""

import threading
from http.server import ThreadingHTTPServer


class BackgroundHTTPServer:
    def __init__(self, handler_class):
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
