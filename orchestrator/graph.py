"""Pure routing: which step comes next after a verdict. No I/O.

A graph is a dict of steps. Each step runs one skill and names where to go on pass and on
each failure class. A target is a step id or one of:

* ``escalate`` — level 3: stop, load nothing more, open an incident and tell a person;
* ``continue`` — the failure does not block (e.g. a volume anomaly): go on as if passed,
  but end the run as ``partial_failure`` and tell a person;
* ``done`` — the run is over.

Level 1 (retry) happens before routing: a failure whose class is in the step's retry
policy is retried with exponential backoff and jitter until the attempts run out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONTINUE",
    "DONE",
    "ESCALATE",
    "REFERENCE_GRAPH",
    "RetryPolicy",
    "Route",
    "Step",
    "reference_steps",
    "route",
]

ESCALATE = "escalate"
CONTINUE = "continue"
DONE = "done"
SPECIAL_TARGETS = (ESCALATE, CONTINUE, DONE)


@dataclass(frozen=True)
class RetryPolicy:
    """Level-1 retries of one step: ``attempts`` includes the first try."""

    attempts: int = 1
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.1
    budget_s: float = 300.0
    on: tuple[str, ...] = ("transient",)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        raw = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        spread = raw * self.jitter
        return max(0.0, raw + rng.uniform(-spread, spread))

    def should_retry(self, failure_class: str | None, attempt: int, waited_s: float) -> bool:
        return (
            failure_class in self.on
            and attempt < self.attempts
            and waited_s < self.budget_s
        )


@dataclass(frozen=True)
class Step:
    id: str
    skill: str
    on_pass: str
    on_fail: dict[str, str] = field(default_factory=dict)  # failure_class or "*" → target
    params: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()

    @property
    def remediation(self) -> bool:
        return self.skill in REMEDIATION_SKILLS


@dataclass(frozen=True)
class Route:
    """Where to go after a verdict, and why."""

    target: str
    failure_class: str | None
    reason: str


REMEDIATION_SKILLS = ("use-fallback-source", "repair-schema", "quarantine-rows", "upsert-load")

#: The reference graph from DESIGN.md, as the pipeline file would spell it.
REFERENCE_GRAPH: dict[str, dict[str, Any]] = {
    "fetch-file": {
        "skill": "fetch-file",
        "retry": {"attempts": 3, "base_delay": 1.0, "max_delay": 30.0, "jitter": 0.2,
                  "on": ["transient", "source_missing", "source_too_small"]},
        "on_pass": "validate-schema",
        "on_fail": {"source_missing": "use-fallback-source", "source_too_small": "use-fallback-source",
                    "checksum_mismatch": "use-fallback-source", "transient": "use-fallback-source",
                    "duplicate_delivery": ESCALATE, "*": ESCALATE},
    },
    "use-fallback-source": {
        "skill": "use-fallback-source",
        "retry": {"attempts": 2, "base_delay": 1.0, "on": ["transient"]},
        "on_pass": "validate-schema",
        "on_fail": ESCALATE,
    },
    "validate-schema": {
        "skill": "validate-schema",
        "on_pass": "validate-history",
        "on_fail": {"schema_mismatch": "repair-schema", "type_drift": "repair-schema", "*": ESCALATE},
    },
    "repair-schema": {"skill": "repair-schema", "on_pass": "validate-schema", "on_fail": ESCALATE},
    "validate-history": {
        "skill": "validate-history",
        "on_pass": "validate-quality",
        "on_fail": {"volume_anomaly": CONTINUE, "freshness": ESCALATE, "distribution_shift": ESCALATE,
                    "*": ESCALATE},
    },
    "validate-quality": {
        "skill": "validate-quality",
        "on_pass": "transform",
        "on_fail": {"null_critical": "quarantine-rows", "duplicate_key": "quarantine-rows",
                    "out_of_range": "quarantine-rows", "type_drift": "quarantine-rows",
                    "malformed_row": "quarantine-rows", "volume_anomaly": CONTINUE,
                    "freshness": ESCALATE, "distribution_shift": ESCALATE, "*": ESCALATE},
    },
    "quarantine-rows": {"skill": "quarantine-rows", "on_pass": "transform", "on_fail": ESCALATE},
    "transform": {"skill": "transform", "on_pass": "load-target", "on_fail": ESCALATE},
    "load-target": {
        "skill": "load-target",
        "retry": {"attempts": 3, "base_delay": 1.0, "on": ["transient"]},
        "on_pass": "health-check",
        "on_fail": {"load_conflict": "upsert-load", "*": ESCALATE},
    },
    "upsert-load": {
        "skill": "upsert-load",
        "retry": {"attempts": 3, "base_delay": 1.0, "on": ["transient"]},
        "on_pass": "health-check",
        "on_fail": ESCALATE,
    },
    "health-check": {"skill": "health-check", "on_pass": DONE, "on_fail": {"*": CONTINUE}},
}

FIRST_STEP = "fetch-file"


def reference_steps() -> dict[str, dict[str, Any]]:
    """A fresh copy of the reference graph in pipeline-file form."""
    import copy

    return copy.deepcopy(REFERENCE_GRAPH)


def route(step: Step, passed: bool, failure_classes: list[str]) -> Route:
    """Next target after a (final, post-retry) verdict of ``step``.

    ``failure_classes`` lists every failing class of the verdict in criterion order. Classes
    routed to ``continue`` do not block; the first blocking class decides the route.
    """
    if passed:
        return Route(step.on_pass, None, "passed")
    targets = [(fc, step.on_fail.get(fc, step.on_fail.get("*", ESCALATE))) for fc in failure_classes]
    if not targets:
        target = step.on_fail.get("*", ESCALATE)
        return Route(target, None, "failed with no failure class")
    blocking = [(fc, t) for fc, t in targets if t != CONTINUE]
    if not blocking:
        fc = targets[0][0]
        return Route(CONTINUE, fc, f"{fc} does not block: continue and alert")
    fc, target = blocking[0]
    return Route(target, fc, f"{fc} routes to {target}")
