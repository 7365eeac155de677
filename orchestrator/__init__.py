"""heal-pipeline's orchestrator: pipelines, the graph, the autopilot, the ledger."""

from orchestrator.graph import RetryPolicy, Step
from orchestrator.ledger import Ledger
from orchestrator.pipeline import Pipeline, load_pipeline
from orchestrator.run import RunResult, run_pipeline
from orchestrator.skills import SkillRegistry

__all__ = [
    "Ledger",
    "Pipeline",
    "RetryPolicy",
    "RunResult",
    "SkillRegistry",
    "Step",
    "load_pipeline",
    "run_pipeline",
]
