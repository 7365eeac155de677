"""A real HTTP endpoint on 127.0.0.1 for alert tests: records every POST, can fail on demand."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A real webhook endpoint that records every request and can fail on demand."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0
        self.fail_status = 500
        self.status = 200
        self.reply = b"ok"
        self.reply_headers: dict[str, str] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers),
                     "raw": raw.decode("utf-8"), "json": json.loads(raw)}
                )
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(receiver.fail_status if failing else receiver.status)
                for key, value in receiver.reply_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._up = True

    def down(self) -> None:
        if self._up:
            self.server.shutdown()
            self.server.server_close()
            self._up = False

    def bodies(self) -> list[str]:
        return [r["raw"] for r in self.requests]

    def to(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies posted to ``path`` (one server stands in for several endpoints)."""
        return [r["json"] for r in self.requests if r["path"] == path]
