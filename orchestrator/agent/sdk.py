"""The Claude Agent SDK side: the session's tools as an in-process MCP server, the attempt-cap
hook, the turn and budget limits, and one conversation. Imported only in agent mode.

Limits live in code: ``tools=[]`` leaves the model no built-in tool (no Bash, Write, Edit),
``permission_mode="dontAsk"`` denies anything not pre-approved, and a PreToolUse hook on every
tool asks :meth:`Session.gate`, which counts attempts and denies past the cap.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKError,
    HookMatcher,
    ResultMessage,
    SdkMcpTool,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    create_sdk_mcp_server,
    query,
    tool,
)

from orchestrator.agent.catalog import SERVER, TOOLS, ToolSpec
from orchestrator.agent.session import Session

__all__ = ["Conversation", "converse"]

#: Set unless the caller's environment says otherwise: no telemetry or update checks from a
#: pipeline run, and MCP tools listed to the model rather than deferred behind a search.
_ENV_DEFAULTS = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "ENABLE_TOOL_SEARCH": "false"}


@dataclass
class Conversation:
    """What one conversation cost and did; ``stop_reason`` is set when a limit or error ended it,
    ``failed`` when that was an error (the API, the CLI, the clock) rather than a limit."""

    turns: int = 0
    cost_usd: float = 0.0
    stop_reason: str | None = None
    failed: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def absorb(self, message: object) -> None:
        if isinstance(message, AssistantMessage):
            self.tool_calls += [{"id": b.id, "name": b.name, "input": b.input, "refused": None}
                                for b in message.content if isinstance(b, ToolUseBlock)]
        elif isinstance(message, UserMessage) and isinstance(message.content, list):
            results = {b.tool_use_id: bool(b.is_error) for b in message.content if isinstance(b, ToolResultBlock)}
            for call in self.tool_calls:
                if call["id"] in results:
                    call["refused"] = results[call["id"]]
        elif isinstance(message, ResultMessage):
            self.turns, self.cost_usd = message.num_turns, float(message.total_cost_usd or 0.0)
            if message.subtype == "error_max_turns":
                self.stop_reason = f"max turns reached ({message.num_turns - 1})"
            elif message.subtype == "error_max_budget_usd":
                self.stop_reason = f"budget reached (${self.cost_usd:.4f})"
            elif message.is_error:
                self.stop_reason = f"the model API failed: {str(message.result or message.subtype)[:200]}"
                self.failed = True


def converse(session: Session, *, system: str, prompt: str, env: Mapping[str, str], max_turns: int,
             max_budget_usd: float, timeout_s: float, model: str | None = None,
             cli_path: str | None = None) -> Conversation:
    """Let Claude work on ``session`` until it stops, hits a limit, or fails; never raises for those."""
    conversation = Conversation()
    options = dict(system=system, prompt=prompt, env={**_ENV_DEFAULTS, **env}, max_turns=max_turns,
                   max_budget_usd=max_budget_usd, model=model, cli_path=cli_path)
    try:
        asyncio.run(asyncio.wait_for(_converse(session, conversation, **options), timeout_s))
    except TimeoutError:
        conversation.stop_reason, conversation.failed = f"the agent ran out of time ({timeout_s:g} s)", True
    except ClaudeSDKError as exc:  # boundary: a failing agent leaves the autopilot's result standing
        if conversation.stop_reason is None:  # not a turn or budget limit, which also raise here
            conversation.stop_reason, conversation.failed = f"the CLI failed: {str(exc).strip()[:200]}", True
    return conversation


async def _converse(session: Session, conversation: Conversation, *, system: str, prompt: str,
                    env: dict[str, str], max_turns: int, max_budget_usd: float, model: str | None,
                    cli_path: str | None) -> None:
    async def gate(input_data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        reason = session.gate(str(input_data.get("tool_name", "")))
        if reason is None:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": reason}}

    server = create_sdk_mcp_server(SERVER, tools=[_mcp_tool(spec, session) for spec in TOOLS])
    with tempfile.TemporaryDirectory(prefix="heal-agent-") as cwd:
        options = ClaudeAgentOptions(
            tools=[],
            mcp_servers={SERVER: server},
            allowed_tools=[f"mcp__{SERVER}__{spec.name}" for spec in TOOLS],
            permission_mode="dontAsk",
            hooks={"PreToolUse": [HookMatcher(matcher=None, hooks=[gate])]},
            system_prompt=system,
            setting_sources=[],
            cwd=cwd,
            max_turns=max_turns,
            max_budget_usd=max_budget_usd,
            model=model,
            cli_path=cli_path,
            env=env,
            extra_args={"no-session-persistence": None},
            stderr=conversation.stderr.append,
        )
        async for message in query(prompt=prompt, options=options):
            conversation.absorb(message)


def _mcp_tool(spec: ToolSpec, session: Session) -> SdkMcpTool[Any]:
    async def run(args: dict[str, Any]) -> dict[str, Any]:
        # In a worker thread: a verified repair walks the rest of the graph (load included).
        out = await asyncio.to_thread(session.call, spec.name, dict(args or {}))
        result: dict[str, Any] = {"content": [{"type": "text", "text": json.dumps(out, default=str)}]}
        if "error" in out:
            result["is_error"] = True
        return result

    return tool(spec.name, spec.description, spec.schema)(run)
