"""What the agent may call and how often: the tool catalogue and the hard limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AGENT_FAILURE_CLASSES", "PROPOSALS", "SERVER", "TOOLS", "Limits", "ToolSpec"]

#: The MCP server name: the model sees the tools as ``mcp__heal__<name>``.
SERVER = "heal"

#: Escalations a proposal tool can repair. Anything else (a missing source, stale data, a
#: re-sent file, a distribution shift, an unreadable file) is held for a person by policy,
#: with no model call.
AGENT_FAILURE_CLASSES = ("schema_mismatch", "type_drift")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Limits:
    """Hard limits, enforced by ``Session.gate`` (the PreToolUse hook) before any tool runs."""

    attempts: int = 3  # repairs proposed for the failing step; past it only `escalate` runs
    reads: int = 6  # calls of each reading tool


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("show_failure", "The failing verdicts and the delivered header, as JSON data. Start here.", _object({})),
    ToolSpec(
        "show_sample", "Up to 20 staged rows of the delivery (sensitive columns masked), as JSON data.",
        _object({"n": {"type": "integer", "minimum": 1, "maximum": 20}}),
    ),
    ToolSpec(
        "run_check", "Run one check step that this run already ran (e.g. validate-schema) on the current "
        "candidate repair and return its verdict. Changes nothing.",
        _object({"step": {"type": "string"}}, ("step",)),
    ),
    ToolSpec(
        "propose_mapping", "Propose the full column mapping {delivered column: contract column}. It is applied "
        "to a staging copy and the failing check re-runs; only a passing verdict lets the run go on.",
        _object({"mapping": {"type": "object", "additionalProperties": {"type": "string"}}}, ("mapping",)),
    ),
    ToolSpec(
        "propose_null_token", "Propose that `token`, seen in contract column `column`, means no value. "
        "Verified like a mapping; kept together with the current mapping.",
        _object({"column": {"type": "string"}, "token": {"type": "string", "maxLength": 40}}, ("column", "token")),
    ),
    ToolSpec(
        "propose_date_format", "Propose a strptime format (e.g. %d/%m/%Y) for a date or timestamp contract "
        "column. Verified like a mapping; kept together with the current mapping.",
        _object({"column": {"type": "string"}, "format": {"type": "string", "maxLength": 64}}, ("column", "format")),
    ),
    ToolSpec(
        "escalate", "Stop and hand the run to a person: nothing is loaded and an incident is opened with "
        "your reason. Use when no repair is clearly right or the cap is reached.",
        _object({"reason": {"type": "string", "maxLength": 2000}}, ("reason",)),
    ),
)

PROPOSALS = frozenset({"propose_mapping", "propose_null_token", "propose_date_format"})
