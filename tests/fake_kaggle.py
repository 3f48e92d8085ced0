"""A fake Kaggle API on loopback, for the real kaggle client (reached through HTTP_PROXY).

Modes: ``ok`` (redirect to the zip, Range supported), ``drop_once`` (the first body is cut in
the middle and the connection closed), ``stall_once`` (the first body stops in the middle and
hangs there until ``release`` is set: a download to kill), ``403``, ``404``. Requests are recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

DATASET = {"title": "Tiny shapes", "licenseName": "CC0: Public Domain", "currentVersionNumber": 3}


class FakeKaggle(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, payload: bytes, mode: str = "ok"):
        super().__init__(("127.0.0.1", 0), Handler)
        self.payload, self.mode = payload, mode
        self.requests: list[dict] = []
        self.body_gets = 0
        self.half_sent, self.release = threading.Event(), threading.Event()

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: FakeKaggle

    def log_message(self, *args):
        pass

    def _json(self, status: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        path = urlparse(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"path": path, "body": body, "auth": self.headers.get("Authorization", "")})
        if self.server.mode in ("403", "404"):
            code = int(self.server.mode)
            return self._json(code, {"code": code, "message": "Permission denied" if code == 403 else "Not found"})
        if path.endswith("/GetDataset"):
            return self._json(200, DATASET)
        if path.endswith("/DownloadDataset"):
            self.send_response(302)
            self.send_header("Location", "http://localhost/files/tiny-shapes.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._json(404, {"code": 404, "message": f"no route {path}"})

    def do_GET(self):
        data = self.server.payload
        self.server.body_gets += 1
        self.server.requests.append({"path": urlparse(self.path).path, "range": self.headers.get("Range")})
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"v3"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.server.mode in ("drop_once", "stall_once") and self.server.body_gets == 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.server.half_sent.set()
            if self.server.mode == "stall_once":
                self.server.release.wait(120)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])
