"""A scripted Anthropic Messages API on 127.0.0.1 that drives the real Claude Code CLI offline.

Tests never reach a real model: the CLI bundled in ``claude-agent-sdk`` is pointed at this
server (see :func:`cli_env`) and each model reply is a scripted *turn*::

    script = [
        reply(tool_use("mcp__t__add", {"a": 2, "b": 3})),
        lambda req: reply(text("sum is " + tool_result_text(tool_results(req)[0]))),
    ]
    with ScriptedModelServer(script) as server:
        ...run the CLI with cli_env(server.url, tmp_path)...
    assert tool_names(server.turn_requests[0]) == ["mcp__t__add"]

Every conversation request consumes exactly one turn, retries included: with retries on,
``[error(529), reply(text("ok"))]`` is an overload followed by a successful retry.

Measured with the bundled CLI 2.1.332 (claude-agent-sdk 0.2.189), ``-p`` and SDK runs:

- Only ``POST /v1/messages?beta=true`` with ``stream: true``. No GET/HEAD and no
  ``count_tokens`` were seen; they get a 404 (``GET /`` a 200) rather than a crash.
- A conversation request: ``system`` is a list of text blocks, the first being the line
  ``x-anthropic-billing-header: cc_version=...``, then "You are a Claude agent, built on
  Anthropic's Claude Agent SDK.", then the agent's own prompt if any. ``tools`` lists
  built-in and MCP tools and is ``[]`` when there are none, so the tools list cannot tell
  a turn apart; ``max_tokens`` 128000; ``output_config`` ``{"effort": "medium"}``. The
  prompt is the first user message (a plain string from the SDK). ``messages`` may END
  with a ``role: "system"`` message (environment, skill listing); tool results are in
  the user message after the last assistant one (``content`` is a string for built-in
  tools, a list of blocks for MCP tools; see :func:`tool_result_text`).
- Errors, with ``CLAUDE_CODE_MAX_RETRIES=0``: 401/403/413/429/500/529 end the run at
  once (``ResultMessage.is_error``). A 400 is re-sent once unchanged, and a 404 is
  re-sent once with ``stream: false`` and ``max_tokens`` 64000, so each of those takes
  two turns. A stream cut short (:func:`broken_stream`) is re-sent the same way, even
  with retries off, so the server answers both streaming and non-streaming requests.
- Side requests: with ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` none were observed
  (single queries, tool round trips with MCP and built-in tools, hooks, ``max_turns``,
  ``max_budget_usd``, errors, a two-query ``ClaudeSDKClient`` session). The CLI's code
  does hold some: a quota probe (``max_tokens: 1``, user message ``"quota"``), one-shot
  helpers such as session titles (own system prompt, ``output_config.format`` JSON
  schema, no tools) and forks that replay the conversation and append one instruction
  (prompt suggestions, away and agent summaries; interactive mode). They would share the
  billing line, so :func:`is_conversation_turn` rejects them by those markers; they are
  answered with ``side_text`` and kept in :attr:`ScriptedModelServer.side_requests`,
  never consuming a turn.
- Any model name is accepted; ``ResultMessage.total_cost_usd`` is priced from the
  ``usage`` we return (see :func:`reply`), which is how a test trips ``max_budget_usd``.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

__all__ = [
    "EXHAUSTED_TEXT",
    "ScriptedModelServer",
    "Turn",
    "broken_stream",
    "claude_cli_path",
    "cli_env",
    "error",
    "is_conversation_turn",
    "reply",
    "text",
    "tool_names",
    "tool_result_text",
    "tool_results",
    "tool_use",
]

Reply = dict[str, Any]
#: A scripted turn: a reply, or a function of the request body that returns one.
Turn = Reply | Callable[[dict[str, Any]], Reply]

EXHAUSTED_TEXT = "(script exhausted)"
_BILLING_PREFIX = "x-anthropic-billing-header:"
#: Openings of the instructions the CLI appends when it forks the conversation for a helper.
_FORK_MARKERS = (
    "[SUGGESTION MODE",
    "The user stepped away and is coming back.",
    "Describe your most recent action in 3-5 words",
    "Describe the agent's most recent action in 3-5 words",
)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


# -- building replies -------------------------------------------------------------------


def text(value: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": value}


def tool_use(
    name: str, input: dict[str, Any] | None = None, *, id: str | None = None
) -> dict[str, Any]:
    """A tool_use content block; ``id`` defaults to a fresh ``toolu_...``."""
    return {
        "type": "tool_use",
        "id": id or f"toolu_{uuid.uuid4().hex[:24]}",
        "name": name,
        "input": dict(input or {}),
    }


def reply(
    *blocks: dict[str, Any],
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> Reply:
    """A model reply; stop_reason is ``tool_use`` when any block is one, else ``end_turn``.

    ``usage`` overrides the token counts reported (``input_tokens``, ``output_tokens``,
    ...), which is what the CLI prices a turn from: use it to exercise budgets.
    """
    if stop_reason is None:
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {
        "content": [dict(b) for b in blocks],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 10, "output_tokens": 5, **(usage or {})},
    }


def error(status: int, message: str = "scripted error", *, error_type: str | None = None) -> Reply:
    """An HTTP error answer for this turn.

    The CLI retries 429/500/529 with backoff unless ``CLAUDE_CODE_MAX_RETRIES=0``; it
    re-sends a 400 once and a 404 once (non-streaming) even then, consuming a turn each.
    """
    kind = error_type or _ERROR_TYPES.get(status, "api_error")
    return {"error": {"status": status, "type": kind, "message": message}}


def broken_stream() -> Reply:
    """A turn whose SSE stream stops after ``message_start`` and one block start, then the
    connection closes. The CLI re-sends the request without streaming, and that request
    takes the next turn (a non-streaming request given this turn gets a text reply)."""
    return {**reply(text("(stream broken)")), "broken": True}


def _check_reply(answer: object) -> Reply:
    """Fail in the test, not in the handler thread, when a turn is not a reply."""
    if not isinstance(answer, dict) or not ({"content", "error"} & answer.keys()):
        raise TypeError(f"a scripted turn must be reply(...) or error(...), got {answer!r}")
    return answer


# -- reading requests -------------------------------------------------------------------


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks sent after the last assistant message (the conversation may
    end with a ``role: "system"`` message, so the last message is not enough)."""
    messages = request.get("messages", [])
    last_assistant = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
    )
    found = []
    for message in messages[last_assistant + 1 :]:
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, list):
            found.extend(b for b in content if b.get("type") == "tool_result")
    return found


def tool_result_text(block: dict[str, Any]) -> str:
    """The text of one tool_result (a string for built-in tools, text blocks for MCP)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


def tool_names(request: dict[str, Any]) -> list[str]:
    """Names in the request's ``tools`` list (empty when the key is absent)."""
    return [t["name"] for t in request.get("tools", []) if "name" in t]


def _system_blocks(request: dict[str, Any]) -> list[str]:
    system = request.get("system")
    if isinstance(system, str):
        return [system]
    if isinstance(system, list):
        return [b.get("text", "") for b in system if isinstance(b, dict)]
    return []


def _last_user_text(request: dict[str, Any]) -> str:
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content or [] if b.get("type") == "text"]
    return texts[-1] if texts else ""


def is_conversation_turn(request: dict[str, Any]) -> bool:
    """Whether a /v1/messages body is a turn of the main agent, not a CLI side request.

    A turn's system prompt starts with the CLI's billing line. Side requests: the quota
    probe (``max_tokens: 1``), one-shot helpers asking for JSON-schema output (session
    titles), and forks whose last user message is a known helper instruction.
    """
    if request.get("max_tokens") == 1:
        return False
    if (request.get("output_config") or {}).get("format") or request.get("output_format"):
        return False
    blocks = _system_blocks(request)
    if not blocks or not blocks[0].startswith(_BILLING_PREFIX):
        return False
    return not _last_user_text(request).lstrip().startswith(_FORK_MARKERS)


# -- running the CLI ---------------------------------------------------------------------


def claude_cli_path() -> Path:
    """The Claude Code CLI bundled inside the installed ``claude_agent_sdk`` package."""
    import claude_agent_sdk

    return Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


def cli_env(
    server_url: str, home_dir: str | os.PathLike[str], *, max_retries: int | None = None
) -> dict[str, str]:
    """Environment variables that run the CLI offline against ``server_url``.

    Pass as ``ClaudeAgentOptions(env=...)`` (merged over ``os.environ`` by the SDK) or as
    ``subprocess.run(env={"PATH": ..., **cli_env(...)})``. ``home_dir`` receives the CLI's
    config, transcripts and sockets.
    """
    home = Path(home_dir)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {
        "ANTHROPIC_BASE_URL": server_url,
        "ANTHROPIC_API_KEY": "test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_TMPDIR": str(home / "tmp"),
        "ENABLE_TOOL_SEARCH": "false",
    }
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    return env


# -- the server ------------------------------------------------------------------------


class ScriptedModelServer:
    """Answers /v1/messages from a script of turns, one turn per conversation request.

    ``requests`` holds every /v1/messages body in arrival order, ``turn_requests`` those
    that consumed a turn and ``side_requests`` the rest. When the script runs out the
    server answers :data:`EXHAUSTED_TEXT` so a misbehaving run ends instead of hanging.
    An exception raised by a callable turn is recorded, every later turn is answered
    with a 400 so the run ends, and the ``with`` block re-raises it on exit (see
    :meth:`raise_failures`).
    """

    def __init__(
        self, script: Sequence[Turn] = (), *, side_text: str = "ok", model: str | None = None
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.turn_requests: list[dict[str, Any]] = []
        self.side_requests: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.failures: list[str] = []
        self._script = [t if callable(t) else _check_reply(t) for t in script]
        self._next = 0
        self._side_text = side_text
        self._model = model
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="model-server", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def remaining(self) -> int:
        """Scripted turns not consumed yet."""
        return len(self._script) - self._next

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def raise_failures(self) -> None:
        """Raise if a callable turn failed (e.g. an assert inside it)."""
        if self.failures:
            raise AssertionError("a scripted turn raised:\n" + "\n".join(self.failures))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()
        if exc_type is None:
            self.raise_failures()

    # Called from handler threads.
    def _answer(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if not is_conversation_turn(body):
                self.side_requests.append(body)
                return reply(text(self._side_text))
            self.turn_requests.append(body)
            if self.failures:
                return error(400, "a scripted turn raised; see ScriptedModelServer.failures")
            if self._next >= len(self._script):
                return reply(text(EXHAUSTED_TEXT))
            turn = self._script[self._next]
            self._next += 1
            if not callable(turn):
                return turn
            # Boundary: a failing test callable must reach the test, not kill this thread.
            try:
                return _check_reply(turn(body))
            except Exception:  # noqa: BLE001
                self.failures.append(traceback.format_exc())
                return error(400, "a scripted turn raised; see ScriptedModelServer.failures")

    def _message(self, body: dict[str, Any], answer: Reply) -> dict[str, Any]:
        return {
            "id": f"msg_{next(self._ids):04d}{uuid.uuid4().hex[:12]}",
            "type": "message",
            "role": "assistant",
            "model": self._model or body.get("model") or "claude-test",
            "content": answer["content"],
            "stop_reason": answer["stop_reason"],
            "stop_sequence": None,
            "usage": answer["usage"],
        }


def _sse_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = dict(message["usage"])
    start_usage = {**usage, "output_tokens": 1}
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
        },
    )
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            start = {**block, "input": {}}
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (raw[:half], raw[half:])
            ]
        elif block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block["text"]}]
        else:
            start, deltas = block, []
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _handler_for(server: ScriptedModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _send(
            self, status: int, payload: bytes, content_type: str = "application/json"
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _send_json(self, status: int, value: object) -> None:
            self._send(status, json.dumps(value).encode())

        def _send_error(self, status: int, kind: str, message: str) -> None:
            self._send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

        def _not_found(self) -> None:
            self._send_error(404, "not_found_error", f"no route for {self.command} {self.path}")

        def do_GET(self) -> None:
            server.calls.append((self.command, self.path))
            if self.path == "/":
                self._send_json(200, {})
            else:
                self._not_found()

        do_HEAD = do_GET

        def do_POST(self) -> None:
            server.calls.append((self.command, self.path))
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            path = self.path.split("?", 1)[0]
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send_error(400, "invalid_request_error", "request body is not JSON")
                return
            if path == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            elif path == "/v1/messages":
                self._messages(body)
            else:
                self._not_found()

        def _messages(self, body: dict[str, Any]) -> None:
            answer = server._answer(body)
            if "error" in answer:
                err = answer["error"]
                self._send_error(err["status"], err["type"], err["message"])
                return
            message = server._message(body, answer)
            if not body.get("stream"):
                self._send_json(200, message)
                return
            events = list(_sse_events(message))
            if answer.get("broken"):
                self._send_cut_stream(events[:2])
                return
            stream = "".join(_sse(name, data) for name, data in events)
            self._send(200, stream.encode(), "text/event-stream")

        def _send_cut_stream(self, events: list[tuple[str, dict[str, Any]]]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write("".join(_sse(name, data) for name, data in events).encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler
