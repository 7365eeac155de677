"""Agent mode: Claude through the Claude Agent SDK, for the escalations the autopilot cannot heal."""

from orchestrator.agent.catalog import AGENT_FAILURE_CLASSES, TOOLS, Limits
from orchestrator.agent.driver import (
    CREDENTIAL_VARIABLES,
    AgentConfig,
    AgentReport,
    AgentRun,
    missing_credentials,
    run_with_agent,
)
from orchestrator.agent.session import Session

__all__ = [
    "AGENT_FAILURE_CLASSES",
    "CREDENTIAL_VARIABLES",
    "TOOLS",
    "AgentConfig",
    "AgentReport",
    "AgentRun",
    "Limits",
    "Session",
    "missing_credentials",
    "run_with_agent",
]
