"""The alert and its evidence: what failed, what was tried, sample rows, with secrets masked."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from orchestrator.alerts.redaction import MASK, mask_rows
from tools.verdict import Criterion, Verdict

__all__ = ["ACTIONS", "MAX_SAMPLE_ROWS", "SEVERITIES", "STATUSES", "Alert", "Evidence", "build_evidence"]

STATUSES = ("partial_failure", "escalated", "recurring", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "resolve")
MAX_SAMPLE_ROWS = 5
_DEFAULT_SEVERITY = {"escalated": "critical", "partial_failure": "error", "recurring": "warning", "resolved": "info"}


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What a person needs to act without opening the run: what failed, what was tried, rows."""

    failed_criteria: tuple[dict[str, Any], ...] = ()
    remediations: tuple[dict[str, Any], ...] = ()
    schema_diff: dict[str, Any] | None = None
    sample_rows: tuple[dict[str, Any], ...] = ()
    next_step: str = ""
    run_url: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failed_criteria", tuple(dict(c) for c in self.failed_criteria))
        object.__setattr__(self, "remediations", tuple(dict(r) for r in self.remediations))
        object.__setattr__(self, "sample_rows", tuple(dict(r) for r in list(self.sample_rows)[:MAX_SAMPLE_ROWS]))
        object.__setattr__(self, "counts", dict(self.counts))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out | {k: [dict(x) for x in out[k]] for k in ("failed_criteria", "remediations", "sample_rows")}


def _scrub(value: Any, secrets: list[str]) -> Any:
    """Replace raw sensitive values wherever else they appear (a criterion's observed list)."""
    if isinstance(value, Mapping):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, MASK)
        return value
    if value is None or isinstance(value, bool):
        return value
    return MASK if str(value) in secrets else value


def _criterion(c: Criterion | Mapping[str, Any]) -> dict[str, Any] | None:
    if isinstance(c, Criterion):
        c = c.to_dict()
    if c.get("pass") is True:
        return None
    return {k: c.get(k) for k in ("id", "observed", "expected")} | {"detail": c.get("detail") or ""}


def _remediation(r: Verdict | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(r, Verdict):
        r = r.to_dict()
    passed = r.get("pass", r.get("passed"))
    detail = r.get("detail") or next((c.get("detail", "") for c in r.get("criteria", ()) if not c.get("pass")), "")
    out = {"skill": r.get("skill"), "failure_class": r.get("failure_class"), "pass": passed, "detail": detail}
    return out | ({"outcome": r["outcome"]} if "outcome" in r else {})


def build_evidence(
    *,
    failed_criteria: Iterable[Criterion | Mapping[str, Any]] = (),
    remediations: Iterable[Verdict | Mapping[str, Any]] = (),
    sample_rows: Iterable[Mapping[str, Any]] = (),
    sensitive_columns: Iterable[str] = (),
    schema_diff: Mapping[str, Any] | None = None,
    next_step: str = "",
    run_url: str | None = None,
    counts: Mapping[str, int] | None = None,
) -> Evidence:
    """Evidence from a run's verdicts and raw rows; sensitive values are masked everywhere.

    Passing criteria are dropped; at most five sample rows are kept, but the sensitive
    values of up to 1,000 given rows are masked wherever they appear in the evidence.
    """
    sensitive = list(sensitive_columns)
    raw = [dict(r) for r in itertools.islice(sample_rows, 1000)]
    wanted = {c.strip().casefold() for c in sensitive}
    found = {str(v) for r in raw for k, v in r.items() if v is not None and str(k).strip().casefold() in wanted}
    secrets = sorted((s for s in found if len(s) >= 4), key=len, reverse=True)
    criteria = [c for c in (_criterion(x) for x in failed_criteria) if c is not None]
    return Evidence(
        failed_criteria=tuple(_scrub(criteria, secrets)),
        remediations=tuple(_scrub([_remediation(r) for r in remediations], secrets)),
        schema_diff=_scrub(dict(schema_diff), secrets) if schema_diff is not None else None,
        sample_rows=tuple(mask_rows(raw[:MAX_SAMPLE_ROWS], sensitive)),
        next_step=_scrub(next_step, secrets),
        run_url=run_url,
        counts=dict(counts or {}),
    )


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One thing a person must hear about. ``dedup_key`` groups repeats across runs.

    ``severity`` defaults from ``status``; ``action`` is ``resolve`` exactly for
    ``status="resolved"`` unless given.
    """

    pipeline: str
    run_id: str
    status: str
    failure_class: str
    summary: str
    severity: str = ""
    evidence: Evidence = field(default_factory=Evidence)
    dedup_key: str = ""
    action: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"alert status {self.status!r} is not one of {', '.join(STATUSES)}")
        severity = self.severity or _DEFAULT_SEVERITY[self.status]
        action = self.action or ("resolve" if self.status == "resolved" else "trigger")
        if severity not in SEVERITIES:
            raise ValueError(f"alert severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        if action not in ACTIONS:
            raise ValueError(f"alert action {action!r} is not one of {', '.join(ACTIONS)}")
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "dedup_key", self.dedup_key or f"heal:{self.pipeline}:{self.failure_class}")
        object.__setattr__(self, "summary", " ".join(str(self.summary).split()))

    def resolving(self, *, run_id: str, summary: str = "") -> Alert:
        """The resolve event for this alert: same ``dedup_key``, no evidence."""
        text = summary or f"{self.pipeline}: {self.failure_class} no longer failing (run {run_id})"
        return replace(self, run_id=run_id, status="resolved", severity="info", action="resolve",
                       summary=text, evidence=Evidence())

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "evidence"}
        return out | {"evidence": self.evidence.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output (for instance one kept in the ledger)."""
        return cls(**{**data, "evidence": Evidence(**dict(data.get("evidence") or {}))})

