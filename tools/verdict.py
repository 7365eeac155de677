"""The verdict contract every checker and remediation speaks, and the error tree.

A checker that ran returns a :class:`Verdict` (pass or fail) and never raises for
bad data. An exception means the checker could not run at all (exit code 2)::

    HealError                 could not run; one clear line for a person
    ├── InputError            the input cannot be read (missing, binary, not tabular)
    ├── ConfigError           a pipeline file or argument is invalid
    ├── SourceError           fetching failed; ``transient`` says whether a retry may help
    ├── TargetError           the target database refused or failed a load
    ├── StagingError          the working area ran out of memory or disk (a retry may help)
    └── RunLocked             another run of the same pipeline and date is in progress

Exit codes for scripts: 0 pass, 1 fail, 2 could not run.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TextIO

__all__ = [
    "EXIT_COULD_NOT_RUN",
    "EXIT_FAIL",
    "EXIT_PASS",
    "FAILURE_CLASSES",
    "ConfigError",
    "Criterion",
    "HealError",
    "InputError",
    "RunLocked",
    "SourceError",
    "Stopwatch",
    "TargetError",
    "Verdict",
    "VerdictInvalid",
    "could_not_run",
    "finish",
    "validate_verdict",
    "verdict_schema",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_COULD_NOT_RUN = 2

#: The closed vocabulary the graph routes on. Keep in step with verdict.schema.json.
FAILURE_CLASSES: dict[str, str] = {
    "source_missing": "the delivery is not where the pipeline expects it",
    "source_too_small": "the delivery is empty or smaller than the minimum size",
    "checksum_mismatch": "the delivery's bytes do not match its published checksum",
    "unreadable": "the delivery cannot be parsed as a table (binary, not CSV/JSON/Parquet)",
    "schema_mismatch": "columns are missing, renamed or unexpected",
    "type_drift": "values do not parse as the contract's types",
    "null_critical": "a critical column has null values",
    "duplicate_key": "one key appears with different contents in the delivery",
    "out_of_range": "values fall outside the contract's range",
    "malformed_row": "a row could not be parsed (a cut last line, a wrong number of fields)",
    "volume_anomaly": "the row count is far from recent history",
    "freshness": "the newest date in the delivery is too old",
    "distribution_shift": "a numeric column moved far from its history (e.g. amounts in cents)",
    "duplicate_delivery": "this exact content was already loaded",
    "load_conflict": "keys in the delivery already exist in the target",
    "load_failed": "the target did not end up holding exactly the rows sent",
    "health_failed": "after the load the target does not look healthy",
    "transient": "a temporary error (timeout, 5xx, throttling); a retry may help",
}


class HealError(Exception):
    """The code could not run. The message is one line meant for a person."""


class InputError(HealError):
    """Raised when an input cannot be read at all (missing, binary, not tabular)."""


class ConfigError(HealError):
    """Raised when a pipeline file or an argument is invalid."""


class SourceError(HealError):
    """Raised when fetching a delivery failed.

    ``failure_class`` says why (``source_missing``, ``transient``, ...) so the
    graph can route it; ``transient`` is true when a retry may help.
    """

    def __init__(self, message: str, *, failure_class: str = "source_missing") -> None:
        super().__init__(message)
        self.failure_class = failure_class

    @property
    def transient(self) -> bool:
        return self.failure_class == "transient"


class TargetError(HealError):
    """Raised when the target database refused or failed a load.

    ``transient`` is true when a retry may help (connection lost, a lock not granted in
    time, a deadlock): the step's verdict then says ``transient`` and the graph retries.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StagingError(HealError):
    """Raised when the working DuckDB ran out of memory or temp disk: not the delivery's fault."""


class RunLocked(HealError):
    """Raised when another run of the same pipeline and date holds the lock (or the DuckDB file)."""


class VerdictInvalid(HealError):
    """Raised when a verdict does not match the verdict JSON Schema."""


@dataclass(frozen=True)
class Criterion:
    """One pass/fail rule inside a verdict."""

    id: str
    passed: bool
    observed: Any = None
    expected: Any = None
    detail: str = ""
    samples: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "pass": self.passed,
            "observed": self.observed,
            "expected": self.expected,
            "detail": self.detail,
        }
        if self.samples:
            out["samples"] = list(self.samples[:20])
        return out


@dataclass(frozen=True)
class Verdict:
    """What one skill decided. ``failure_class`` is None exactly when it passed."""

    skill: str
    passed: bool
    criteria: tuple[Criterion, ...] = ()
    failure_class: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    @classmethod
    def from_criteria(
        cls,
        skill: str,
        criteria: list[Criterion] | tuple[Criterion, ...],
        *,
        failure_classes: dict[str, str],
        metrics: dict[str, Any] | None = None,
        artifacts: dict[str, Any] | None = None,
        duration_ms: float = 0.0,
    ) -> Verdict:
        """Build a verdict; the first failing criterion names the failure class.

        ``failure_classes`` maps criterion id to the class it implies. Every failing class,
        in criterion order, is kept in ``metrics["failure_classes"]`` for the graph.
        """
        failed = [c for c in criteria if not c.passed]
        classes = list(dict.fromkeys(failure_classes[c.id] for c in failed))
        metrics = dict(metrics or {})
        if classes:
            metrics["failure_classes"] = classes
        return cls(
            skill=skill,
            passed=not failed,
            criteria=tuple(criteria),
            failure_class=classes[0] if classes else None,
            metrics=metrics,
            artifacts=dict(artifacts or {}),
            duration_ms=round(duration_ms, 3),
        )

    @property
    def failure_classes(self) -> list[str]:
        if self.passed:
            return []
        return list(self.metrics.get("failure_classes") or [self.failure_class])

    @property
    def failed_criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "skill": self.skill,
            "pass": self.passed,
            "criteria": [c.to_dict() for c in self.criteria],
            "failure_class": self.failure_class,
            "metrics": self.metrics,
            "artifacts": self.artifacts,
            "duration_ms": self.duration_ms,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        validate_verdict(data)
        return cls(
            skill=data["skill"],
            passed=data["pass"],
            criteria=tuple(
                Criterion(
                    id=c["id"],
                    passed=c["pass"],
                    observed=c["observed"],
                    expected=c["expected"],
                    detail=c["detail"],
                    samples=tuple(c.get("samples", ())),
                )
                for c in data["criteria"]
            ),
            failure_class=data["failure_class"],
            metrics=data["metrics"],
            artifacts=data["artifacts"],
            duration_ms=data["duration_ms"],
        )


@cache
def verdict_schema() -> dict[str, Any]:
    """The verdict JSON Schema shipped with the package."""
    text = resources.files("tools").joinpath("schemas/verdict.schema.json").read_text()
    return json.loads(text)


def validate_verdict(data: dict[str, Any]) -> None:
    """Raise :class:`VerdictInvalid` naming the first problem when ``data`` breaks the schema."""
    import jsonschema  # deferred: only validation needs it

    validator = jsonschema.Draft202012Validator(verdict_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.path) or "(root)"
        raise VerdictInvalid(f"verdict invalid at {where}: {err.message}")


class Stopwatch:
    """Milliseconds since construction, for ``duration_ms``."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000.0


def finish(verdict: Verdict, *, as_json: bool, next_step: str = "", out: TextIO | None = None) -> int:
    """Print a verdict for a script's ``main()`` and return its exit code (0 pass, 1 fail)."""
    out = out or sys.stdout
    if as_json:
        out.write(verdict.to_json() + "\n")
    else:
        state = "PASS" if verdict.passed else f"FAIL ({verdict.failure_class})"
        out.write(f"{verdict.skill}: {state}\n")
        for c in verdict.criteria:
            mark = "ok  " if c.passed else "FAIL"
            out.write(f"  {mark} {c.id}: observed {c.observed!r}, expected {c.expected!r}")
            out.write(f" - {c.detail}\n" if c.detail else "\n")
        if not verdict.passed and next_step:
            out.write(f"next: {next_step}\n")
    return EXIT_PASS if verdict.passed else EXIT_FAIL


def could_not_run(skill: str, error: Exception, *, err: TextIO | None = None) -> int:
    """Report a checker that could not run: one line on stderr, exit code 2."""
    (err or sys.stderr).write(f"{skill}: error: {error}\n")
    return EXIT_COULD_NOT_RUN
