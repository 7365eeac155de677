"""Loopback servers for source tests: moto S3, a fault-injecting proxy, a black hole, a file server.

Everything binds 127.0.0.1 on a free port and changes no global state: tests set
AWS credentials with ``monkeypatch.setenv``. Use the fixtures by importing them into
a test module, or re-export them from a conftest::

    from tests.s3_server import fixtures
    globals().update(fixtures())
"""

from __future__ import annotations

import base64
import http.client
import http.server
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest

__all__ = [
    "BlackHoleServer",
    "FaultProxy",
    "FileServer",
    "S3Server",
    "fixtures",
    "free_port",
    "http_file_server",
    "s3_server",
]

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_S3_CODES = {
    403: "AccessDenied",
    404: "NoSuchKey",
    429: "SlowDown",
    500: "InternalError",
    503: "SlowDown",
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "expect",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[_Quiet, threading.Thread]:
    server = _Quiet(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread


@dataclass
class S3Server:
    """A running moto S3 server; ``client()`` speaks to it with dummy credentials."""

    endpoint_url: str

    def client(self, endpoint_url: str | None = None) -> Any:
        import boto3

        return boto3.session.Session(region_name="us-east-1", **DUMMY_CREDENTIALS).client(
            "s3", endpoint_url=endpoint_url or self.endpoint_url
        )

    def bucket(self) -> str:
        """Create a fresh, uniquely named bucket (moto state is shared by the session)."""
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's ThreadedMotoServer on 127.0.0.1 for the whole test session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()


class FaultProxy:
    """An HTTP reverse proxy that fails the next N requests with a chosen status, then forwards.

    ``FaultProxy(url, fail_first=1, status=503)`` or ``fail_next(1, status=503)`` answers
    the next request with an S3-style XML error
    (``SlowDown`` for 503/429, ``InternalError`` for 500, ``AccessDenied`` for 403).
    ``requests`` counts every request seen, failed or forwarded. ``response_headers``
    overrides headers on forwarded responses (e.g. to publish a wrong
    ``x-amz-checksum-sha256``). Use as a context manager.
    """

    def __init__(
        self, upstream: str, *, fail_first: int = 0, status: int = 503, code: str | None = None
    ) -> None:
        target = upstream.split("://", 1)[-1].rstrip("/")
        host, _, port = target.partition(":")
        self._upstream = (host, int(port or 80))
        self._lock = threading.Lock()
        self._faults: list[tuple[int, str]] = []
        self.requests = 0
        self.response_headers: dict[str, str] = {}
        self.fail_next(fail_first, status=status, code=code)
        self._server, self._thread = _serve(self._handler())
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, count: int, *, status: int = 503, code: str | None = None) -> None:
        with self._lock:
            self._faults.extend([(status, code or _S3_CODES.get(status, "InternalError"))] * count)

    def _take(self) -> tuple[int, str] | None:
        with self._lock:
            self.requests += 1
            return self._faults.pop(0) if self._faults else None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._take()
                if fault is not None:
                    status, code = fault
                    xml = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>injected {code}</Message><RequestId>fault</RequestId></Error>"
                    )
                    payload = b"" if self.command == "HEAD" else xml.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=10)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    upstream = conn.getresponse()
                    payload = upstream.read()
                    self.send_response(upstream.status)
                    replaced = {k.lower(): (k, v) for k, v in proxy.response_headers.items()}
                    for key, value in upstream.getheaders():
                        if key.lower() not in _HOP_BY_HOP | {"content-length"} | set(replaced):
                            self.send_header(key, value)
                    for key, value in replaced.values():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlackHoleServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a hung server."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)  # hold it open, read nothing, write nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class FileServer:
    """Serves files under ``root``. ``statuses`` forces a status for a path (``"/x.csv": 500``);
    ``auth`` = (user, password) demands HTTP Basic auth; ``truncate`` sends only the first
    N bytes of a path after announcing its full length. ``seen`` lists request paths."""

    root: Path
    url: str = ""
    statuses: dict[str, int] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    truncate: dict[str, int] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def write(self, name: str, data: bytes) -> str:
        """Write ``root/name`` and return its URL."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{name}"


def _file_handler(state: FileServer) -> Callable[..., http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _gate(self) -> bool:
            path = self.path.split("?", 1)[0]
            state.seen.append(self.path)
            if state.auth is not None:
                token = base64.b64encode(":".join(state.auth).encode()).decode()
                if self.headers.get("Authorization") != f"Basic {token}":
                    self.send_error(401, "Unauthorized")
                    return False
            if path in state.statuses:
                self.send_error(state.statuses[path])
                return False
            return True

        def do_GET(self) -> None:
            if not self._gate():
                return
            path = self.path.split("?", 1)[0]
            if path not in state.truncate:
                super().do_GET()
                return
            data = (state.root / path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: state.truncate[path]])
            self.close_connection = True

        def do_HEAD(self) -> None:
            if self._gate():
                super().do_HEAD()

    def make(*args: Any, **kwargs: Any) -> http.server.BaseHTTPRequestHandler:
        return Handler(*args, directory=str(state.root), **kwargs)

    return make


@pytest.fixture
def http_file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A tiny HTTP server on 127.0.0.1 serving a fresh temp folder."""
    state = FileServer(root=tmp_path_factory.mktemp("http-root"))
    server, _ = _serve(_file_handler(state))  # type: ignore[arg-type]
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def fixtures() -> dict[str, Any]:
    """The pytest fixtures by name, for a conftest: ``globals().update(fixtures())``."""
    return {"s3_server": s3_server, "http_file_server": http_file_server}
