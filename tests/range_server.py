"""A real HTTP file server on loopback for scenes given by reference: what object storage is to the
service. It answers GET and HEAD, single byte ranges (``Range: bytes=a-b``, 206 with ``Content-Range``;
GDAL's /vsicurl/ reads a COG that way), redirects configured per path, and records each request."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class RangeServer:
    """Serves the files in ``root``; ``redirects`` maps a path to the URL it redirects to (302)."""

    root: Path
    url: str = ""
    redirects: dict[str, str] = field(default_factory=dict)
    #: (method, path, Range header or None, Authorization header or None) of each request, in order.
    requests: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)


def _handler(server: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            server.requests.append(
                (self.command, path, self.headers.get("Range"), self.headers.get("Authorization"))
            )
            if path in server.redirects:
                self._send(302, {"Location": server.redirects[path], "Content-Length": "0"})
                return
            file = (server.root / path.lstrip("/")).resolve()
            if server.root.resolve() not in file.parents or not file.is_file():
                self._send(404, {"Content-Length": "0"})
                return
            size = file.stat().st_size
            start, end, status = 0, size - 1, 200
            match = RANGE.fullmatch(self.headers.get("Range", ""))
            if match and (match[1] or match[2]):
                if match[1]:
                    start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
                else:
                    start = max(0, size - int(match[2]))
                if start > end:
                    self._send(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
                    return
                status = 206
            headers = {"Content-Type": "image/tiff", "Content-Length": str(end - start + 1),
                       "Accept-Ranges": "bytes"}  # fmt: skip
            if status == 206:
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self._send(status, headers)
            if body:
                with file.open("rb") as f:
                    f.seek(start)
                    self.wfile.write(f.read(end - start + 1))

        def _send(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that stops reading early (the service, once a COG's first bytes told it enough) is
        # no error of the server's.
        pass


@contextmanager
def serve_files(root: Path) -> Iterator[RangeServer]:
    """A :class:`RangeServer` for ``root`` on a free loopback port, stopped at the end."""
    server = RangeServer(root)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="range-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
