"""``heal run --agent``: the autopilot first; Claude only for an escalation the graph cannot heal.

A known failure costs zero model calls: the agent is asked only when the walk escalates on a
class a proposal tool can repair (:data:`AGENT_FAILURE_CLASSES`), and a repair it made once is
in the ledger, so the autopilot heals the next such delivery by itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from orchestrator.agent.catalog import Limits
from orchestrator.agent.prompt import system_prompt, user_prompt
from orchestrator.agent.session import Session
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline
from orchestrator.run import RunResult, run_pipeline
from orchestrator.skills import SkillRegistry
from tools.sinks import Sink

__all__ = ["CREDENTIAL_VARIABLES", "AgentConfig", "AgentReport", "AgentRun", "missing_credentials", "run_with_agent"]

#: Any one of these lets the Claude Code CLI reach a model.
CREDENTIAL_VARIABLES = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY",
)


@dataclass(frozen=True)
class AgentConfig:
    """How the agent may run. ``env`` is the Claude Code CLI's environment (the CLI passes
    ``os.environ``; tests pass a scripted server's ``ANTHROPIC_BASE_URL``)."""

    env: Mapping[str, str] = field(default_factory=dict)
    max_turns: int = 12
    max_budget_usd: float = 1.0
    max_attempts: int = 3
    max_reads: int = 6
    timeout_s: float = 300.0
    model: str | None = None
    cli_path: str | None = None


@dataclass(frozen=True)
class AgentReport:
    """What the agent did. ``outcome``: ``not_needed`` (the autopilot did not escalate),
    ``not_eligible`` (held by policy), ``unavailable`` (no key or SDK), ``healed``, ``escalated``;
    ``failed`` when the model API or the CLI failed (the autopilot's result then stands)."""

    called: bool
    outcome: str
    detail: str
    failed: bool = False
    turns: int = 0
    cost_usd: float = 0.0
    tool_calls: tuple[dict[str, Any], ...] = ()
    learned: tuple[dict[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"called": self.called, "outcome": self.outcome, "detail": self.detail, "failed": self.failed,
                "turns": self.turns,
                "cost_usd": round(self.cost_usd, 6), "tool_calls": list(self.tool_calls),
                "learned": list(self.learned)}


@dataclass(frozen=True)
class AgentRun:
    result: RunResult
    agent: AgentReport

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "agent": self.agent.to_dict()}


def missing_credentials(env: Mapping[str, str]) -> str | None:
    """One line saying what the agent needs, or None when ``env`` has a way to reach a model."""
    if any(env.get(name) for name in CREDENTIAL_VARIABLES):
        return None
    return ("agent not started: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN with ANTHROPIC_BASE_URL for a "
            "compatible server); the autopilot's result stands")


def run_with_agent(
    pipeline: Pipeline,
    *,
    config: AgentConfig,
    run_date: date | None = None,
    sink: Sink | None = None,
    skills: SkillRegistry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    env: dict[str, str] | None = None,
) -> AgentRun:
    """Run ``pipeline`` on autopilot; if it escalates a repairable failure, let Claude try.

    ``env`` is for alert channels, as in :func:`orchestrator.run.run_pipeline`.
    """
    reports: list[AgentReport] = []

    def helm(spec: Pipeline, *, state: Any, walk: Callable[..., str], ledger: Ledger, run_id: str) -> None:
        reports.append(_take_the_helm(spec, config, state=state, walk=walk, ledger=ledger, run_id=run_id))

    result = run_pipeline(pipeline, run_date=run_date, sink=sink, skills=skills, sleep=sleep, rng=rng, env=env,
                          mode="agent", agent=helm)
    report = reports[0] if reports else AgentReport(False, "not_needed", f"the autopilot ended {result.status}")
    return AgentRun(result, report)


def _take_the_helm(spec: Pipeline, config: AgentConfig, *, state: Any, walk: Callable[..., str], ledger: Ledger,
                   run_id: str) -> AgentReport:
    session = Session(spec, state=state, walk=walk, ledger=ledger, run_id=run_id,
                      limits=Limits(attempts=config.max_attempts, reads=config.max_reads))
    why_not = session.ineligible()
    if why_not:
        return AgentReport(False, "not_eligible", why_not)
    missing = missing_credentials(config.env)
    if missing:
        return AgentReport(False, "unavailable", missing)
    try:
        from orchestrator.agent.sdk import converse  # deferred: the SDK is an optional extra
    except ModuleNotFoundError as exc:
        if exc.name != "claude_agent_sdk":
            raise
        return AgentReport(False, "unavailable", "agent not started: the Claude Agent SDK is not installed "
                                                 "(pip install 'heal-pipeline[agent]'); the autopilot's result stands")
    conversation = converse(
        session, system=system_prompt(session, max_turns=config.max_turns, max_budget_usd=config.max_budget_usd),
        prompt=user_prompt(session), env=config.env, max_turns=config.max_turns,
        max_budget_usd=config.max_budget_usd, timeout_s=config.timeout_s, model=config.model,
        cli_path=config.cli_path,
    )
    session.finish(conversation.stop_reason)
    spent = f"{conversation.turns} turns, ${conversation.cost_usd:.4f}"
    if session.outcome == "healed":
        kinds = sorted({r["kind"] for r in session.learned})
        detail = f"healed: Claude's repair passed {session.check_step} and the run went on; learned {kinds} ({spent})"
    elif conversation.failed:  # the API, the CLI or the clock, not the model's choice
        detail = f"agent failed: {conversation.stop_reason}; the autopilot's result stands ({spent})"
    else:
        detail = f"escalated: {session.reason} ({spent})"
    calls = tuple({"name": c["name"], "input": c["input"], "refused": c["refused"]} for c in conversation.tool_calls)
    failed = conversation.failed and session.outcome != "healed"
    return AgentReport(True, session.outcome or "escalated", detail, failed=failed, turns=conversation.turns,
                       cost_usd=conversation.cost_usd, tool_calls=calls, learned=tuple(session.learned))
