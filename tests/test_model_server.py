"""The scripted model server, driven by the real Claude Code CLI bundled in the Agent SDK."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ResultMessage,
    create_sdk_mcp_server,
    query,
    tool,
)

try:
    from tests.model_server import (
        EXHAUSTED_TEXT,
        ScriptedModelServer,
        broken_stream,
        claude_cli_path,
        cli_env,
        error,
        is_conversation_turn,
        reply,
        text,
        tool_names,
        tool_result_text,
        tool_results,
        tool_use,
    )
except ModuleNotFoundError as exc:  # tests/ itself is on sys.path (pytest's rootdir mode)
    if exc.name not in ("tests", "tests.model_server"):
        raise
    from model_server import (
        EXHAUSTED_TEXT,
        ScriptedModelServer,
        broken_stream,
        claude_cli_path,
        cli_env,
        error,
        is_conversation_turn,
        reply,
        text,
        tool_names,
        tool_result_text,
        tool_results,
        tool_use,
    )

TIMEOUT = 15.0


def run_query(prompt: str, options: ClaudeAgentOptions) -> tuple[list[Any], BaseException | None]:
    """Every message query() yields, and the exception that ended it, if any."""
    seen: list[Any] = []

    async def collect() -> None:
        async for message in query(prompt=prompt, options=options):
            seen.append(message)

    async def bounded() -> BaseException | None:
        try:
            await asyncio.wait_for(collect(), TIMEOUT)
        except TimeoutError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the SDK raises is the outcome
            return exc
        return None

    return seen, asyncio.run(bounded())


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url + "/v1/messages?beta=true",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def turn_body(prompt: str = "hi", *, stream: bool = False) -> dict[str, Any]:
    """A request shaped like the CLI's main-agent turns."""
    return {
        "model": "claude-test",
        "max_tokens": 1000,
        "stream": stream,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=test;"}],
        "tools": [{"name": "mcp__t__add", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": prompt}],
    }


# -- through the Agent SDK ---------------------------------------------------------------


def test_sdk_query_runs_an_in_process_tool_and_returns_the_scripted_text(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    @tool("add", "Add two integers.", {"a": int, "b": int})
    async def add(args: dict[str, Any]) -> dict[str, Any]:
        calls.append(args)
        return {"content": [{"type": "text", "text": str(args["a"] + args["b"])}]}

    script = [
        reply(text("Adding."), tool_use("mcp__t__add", {"a": 2, "b": 3}, id="toolu_add_1")),
        lambda request: reply(text(f"The sum is {tool_result_text(tool_results(request)[0])}.")),
    ]
    with ScriptedModelServer(script) as server:
        options = ClaudeAgentOptions(
            tools=[],
            mcp_servers={"t": create_sdk_mcp_server("t", tools=[add])},
            allowed_tools=["mcp__t__add"],
            setting_sources=[],
            cwd=tmp_path,
            env=cli_env(server.url, tmp_path / "home", max_retries=0),
        )
        messages, raised = run_query("Add 2 and 3.", options)

    assert raised is None
    assert calls == [{"a": 2, "b": 3}]
    first, second = server.turn_requests
    assert tool_names(first) == ["mcp__t__add"]
    assert tool_results(first) == []
    [result_block] = tool_results(second)
    assert result_block["tool_use_id"] == "toolu_add_1"
    assert tool_result_text(result_block) == "5"
    assert not result_block.get("is_error")
    [result] = [m for m in messages if isinstance(m, ResultMessage)]
    assert (result.is_error, result.result, result.num_turns) == (False, "The sum is 5.", 2)
    tool_calls = [b for m in messages if isinstance(m, AssistantMessage) for b in m.content]
    assert any(getattr(b, "name", None) == "mcp__t__add" for b in tool_calls)
    assert server.side_requests == [] and server.remaining == 0


def test_sdk_query_ends_in_an_error_on_a_500_without_retries(tmp_path: Path) -> None:
    with ScriptedModelServer([error(500, "boom")]) as server:
        options = ClaudeAgentOptions(
            tools=[],
            setting_sources=[],
            cwd=tmp_path,
            env=cli_env(server.url, tmp_path / "home", max_retries=0),
        )
        started = time.monotonic()
        messages, raised = run_query("Say hi.", options)

    assert time.monotonic() - started < 10
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert raised is not None or (results and results[-1].is_error)
    assert any(r.is_error and "500" in (r.result or "") for r in results) or "500" in str(raised)
    assert len(server.turn_requests) == 1


# -- the bundled CLI as a subprocess -----------------------------------------------------


def run_cli(server: ScriptedModelServer, home: Path, *args: str) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **cli_env(server.url, home)}
    env["CLAUDE_CODE_MAX_RETRIES"] = "0"
    done = subprocess.run(
        [str(claude_cli_path()), *args, "--output-format", "json", "--no-session-persistence"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_print_mode_returns_the_scripted_text(tmp_path: Path) -> None:
    with ScriptedModelServer([reply(text("hi there"))]) as server:
        out = run_cli(server, tmp_path, "-p", "say hi")

    assert (out["result"], out["is_error"], out["num_turns"]) == ("hi there", False, 1)
    [request] = server.requests
    assert request["stream"] is True and is_conversation_turn(request)
    prompts = [m["content"] for m in request["messages"] if m["role"] == "user"]
    assert "say hi" in json.dumps(prompts)
    assert server.calls == [("POST", "/v1/messages?beta=true")]


def test_cli_recovers_from_a_broken_stream_with_a_non_streaming_retry(tmp_path: Path) -> None:
    with ScriptedModelServer([broken_stream(), reply(text("recovered"))]) as server:
        out = run_cli(server, tmp_path, "-p", "say hi")

    assert out["result"] == "recovered"
    assert [r["stream"] for r in server.turn_requests] == [True, False]


# -- the HTTP surface, without the CLI ---------------------------------------------------


def test_non_streaming_replies_are_plain_messages() -> None:
    script = [reply(tool_use("mcp__t__add", {"a": 1}, id="toolu_x")), reply(text("done"))]
    with ScriptedModelServer(script) as server:
        status, raw = post(server.url, turn_body())
        first = json.loads(raw)
        second = json.loads(post(server.url, turn_body())[1])
        third = json.loads(post(server.url, turn_body())[1])

    assert status == 200 and first["type"] == "message" and first["role"] == "assistant"
    assert first["stop_reason"] == "tool_use"
    assert first["content"] == [
        {"type": "tool_use", "id": "toolu_x", "name": "mcp__t__add", "input": {"a": 1}}
    ]
    assert (second["stop_reason"], second["content"]) == ("end_turn", [text("done")])
    assert third["content"] == [text(EXHAUSTED_TEXT)]
    assert len(server.requests) == 3


def test_streaming_replies_follow_the_sse_event_order() -> None:
    script = [reply(text("checking"), tool_use("mcp__t__add", {"a": 1, "b": 22}))]
    with ScriptedModelServer(script) as server:
        status, raw = post(server.url, turn_body(stream=True))

    assert status == 200
    events = [json.loads(line[6:]) for line in raw.decode().splitlines() if line[:6] == "data: "]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 2
    assert events[0]["message"]["content"] == []
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[0] == {"type": "text_delta", "text": "checking"}
    partial = "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")
    assert json.loads(partial) == {"a": 1, "b": 22}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == 5


def test_side_requests_do_not_consume_turns() -> None:
    quota = {**turn_body("quota"), "max_tokens": 1}
    title = {**turn_body("name this"), "output_config": {"format": {"type": "json_schema"}}}
    fork = turn_body("[SUGGESTION MODE: Suggest what the user might naturally type next]")
    helper = {**turn_body(), "system": [{"type": "text", "text": "Summarize."}]}
    with ScriptedModelServer([reply(text("the turn"))], side_text="side") as server:
        answers = [json.loads(post(server.url, body)[1]) for body in (quota, title, fork, helper)]
        turn = json.loads(post(server.url, turn_body())[1])

    assert [a["content"] for a in answers] == [[text("side")]] * 4
    assert turn["content"] == [text("the turn")]
    assert (len(server.side_requests), len(server.turn_requests)) == (4, 1)


def test_errors_and_unknown_routes_answer_without_crashing() -> None:
    with ScriptedModelServer([error(529, "busy"), reply(text("ok"))]) as server:
        status, raw = post(server.url, turn_body())
        assert (status, json.loads(raw)["error"]) == (
            529,
            {"type": "overloaded_error", "message": "busy"},
        )
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "/v1/models", timeout=5)
        assert missing.value.code == 404
        assert post(server.url, turn_body())[0] == 200


def test_a_failing_callable_turn_is_raised_in_the_test() -> None:
    def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("scripted assertion")

    server = ScriptedModelServer([broken, reply(text("never"))])
    with pytest.raises(AssertionError, match="scripted assertion"), server:
        assert post(server.url, turn_body())[0] == 400
        assert post(server.url, turn_body())[0] == 400
    assert server.remaining == 1


def test_tool_results_are_read_after_the_last_assistant_turn() -> None:
    old = {"type": "tool_result", "tool_use_id": "t1", "content": "old"}
    new = {"type": "tool_result", "tool_use_id": "t2", "content": [text("4"), text("2")]}
    request = {
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("x", id="t1")]},
            {"role": "user", "content": [old]},
            {"role": "assistant", "content": [tool_use("x", id="t2")]},
            {"role": "user", "content": [new, text("note")]},
            {"role": "system", "content": [text("# Environment")]},
        ]
    }
    assert tool_results(request) == [new]
    assert tool_result_text(new) == "42" and tool_result_text(old) == "old"
    assert tool_names({"messages": []}) == []


def test_a_turn_that_is_not_a_reply_is_refused_up_front() -> None:
    with pytest.raises(TypeError, match="reply"):
        ScriptedModelServer([text("a block, not a reply")])
