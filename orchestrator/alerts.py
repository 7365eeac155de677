"""Alert channels: tell a person once, with evidence, when a run needs one.

A run that escalates, partially fails, or keeps hitting the same failure class
becomes one :class:`Alert`. Channels (Slack, PagerDuty, a JSON webhook, a file)
turn it into their payload. Every text field passes through :func:`redact`, and
:func:`build_evidence` masks sensitive columns, so no credential or personal
value leaves the run. De-duplication is the caller's job: every alert carries a
``dedup_key`` (stable per pipeline and failure class) and an ``action``
(``trigger`` or ``resolve``) so the ledger can decide what to send.

Sending never raises: a dead webhook must not fail a data load. HTTP channels
retry connection errors, timeouts, 5xx and 429 with exponential backoff and
return a :class:`Delivery` saying what happened.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from tools.verdict import ConfigError, Criterion, Verdict

__all__ = [
    "ACTIONS",
    "MASK",
    "PAGERDUTY_URL",
    "SEVERITIES",
    "STATUSES",
    "Alert",
    "Delivery",
    "Evidence",
    "FileChannel",
    "JsonWebhook",
    "Notifier",
    "PagerDutyEvents",
    "SlackWebhook",
    "build_evidence",
    "channels_from_config",
    "mask_rows",
    "redact",
    "render_text",
    "send_all",
]

STATUSES = ("partial_failure", "escalated", "recurring", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "resolve")
MASK = "***"
MAX_SAMPLE_ROWS = 5
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_DEFAULT_SEVERITY = {"escalated": "critical", "partial_failure": "error", "recurring": "warning", "resolved": "info"}
_LABEL = {"escalated": "Escalated", "partial_failure": "Partial failure", "recurring": "Recurring failure",
          "resolved": "Resolved"}

# --- redaction ------------------------------------------------------------------------------

_SECRET_NAME = r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key)"
_SECRET_KEY = re.compile(_SECRET_NAME, re.IGNORECASE)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*):[^@\s]*@")
_SLACK_HOOK = re.compile(r"(?i)(hooks\.slack\.com)/[^\s\"'<>)\]]+")
_KEY_VALUE = re.compile(
    rf"(?i)(?<![\w-])({_SECRET_NAME})([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,\"'}}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SLACK_TOKEN = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")


def _mask_value(m: re.Match[str]) -> str:
    value = m.group(3)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{m.group(1)}{m.group(2)}{quote}{MASK}{quote}"


def _mask_aws_secret(m: re.Match[str]) -> str:
    s = m.group(0)  # mixed case plus a digit or / + : base64 key material, not a hex checksum
    looks_secret = any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c in "0123456789/+" for c in s)
    return MASK if looks_secret else s


def redact(text: str) -> str:
    """Remove credentials (URL passwords, token/key/password values, AWS keys, Slack hooks)."""
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    text = _SLACK_HOOK.sub(rf"\1/{MASK}", text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    text = _SLACK_TOKEN.sub(MASK, text)
    text = _AWS_KEY_ID.sub(MASK, text)
    return _AWS_SECRET.sub(_mask_aws_secret, text)


def _clean(value: Any) -> Any:
    """A JSON-safe copy: strings redacted, values under secret-looking keys masked."""
    if isinstance(value, Mapping):
        return {
            redact(str(k)): MASK if v is not None and _SECRET_KEY.fullmatch(str(k)) else _clean(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return redact(str(value))


def mask_rows(rows: Iterable[Mapping[str, Any]], sensitive_columns: Iterable[str]) -> list[dict[str, Any]]:
    """Copies of ``rows`` with sensitive values replaced by :data:`MASK` (None stays None).

    Column names match case- and whitespace-insensitively, since drifted headers
    (``Email `` for ``email``) must not leak what the contract marks sensitive.
    """
    wanted = {c.strip().casefold() for c in sensitive_columns}
    return [
        {k: (MASK if v is not None and str(k).strip().casefold() in wanted else v) for k, v in row.items()}
        for row in rows
    ]


# --- the alert --------------------------------------------------------------------------------


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


# --- rendering --------------------------------------------------------------------------------


def _fmt(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(rows: list[dict[str, Any]], width: int = 24) -> str:
    cols = list(dict.fromkeys(str(k) for r in rows for k in r))
    cells = [[_fmt("null" if r.get(c) is None else r.get(c), width) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = [cols, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def _lines(a: dict[str, Any]) -> dict[str, list[str]]:
    """The per-section text lines every channel shows, from a cleaned alert dict."""
    ev = a["evidence"]
    return {
        "counts": [" · ".join(f"{k} {v}" for k, v in ev["counts"].items())] if ev["counts"] else [],
        "failed": [
            f"{c.get('id')}: observed {_fmt(c.get('observed'))}, expected {_fmt(c.get('expected'))}"
            + (f" — {c['detail']}" if c.get("detail") else "")
            for c in ev["failed_criteria"]
        ],
        "tried": [
            f"{r.get('skill')} ({r.get('failure_class') or '-'}): "
            + {True: "passed", False: "failed"}.get(r.get("pass"), str(r.get("outcome", "?")))
            + (f" — {r['detail']}" if r.get("detail") else "")
            for r in ev["remediations"]
        ],
    }


def _headline(a: dict[str, Any]) -> str:
    return f"heal: {_LABEL[a['status']]} in {a['pipeline']} — {a['failure_class']}"


def render_text(alert: Alert) -> str:
    """The plain-text alert: what failed, what was tried, sample rows, the next step."""
    a = _clean(alert.to_dict())
    ev, parts = a["evidence"], _lines(a)
    out = [f"{_headline(a)} [{a['severity']}]", a["summary"], f"run {a['run_id']} · {a['dedup_key']}"]
    if parts["counts"]:
        out.append("counts: " + parts["counts"][0])
    for title, key in (("What failed", "failed"), ("What was tried", "tried")):
        if parts[key]:
            out += [f"{title}:"] + [f"  - {line}" for line in parts[key]]
    if ev["schema_diff"]:
        out.append("Schema diff: " + _fmt(ev["schema_diff"], 1000))
    if ev["sample_rows"]:
        out += [f"Sample rows ({len(ev['sample_rows'])}):"] + ["  " + x for x in _table(ev["sample_rows"]).splitlines()]
    if ev["next_step"]:
        out.append("Next step: " + ev["next_step"])
    if ev["run_url"]:
        out.append("Report: " + ev["run_url"])
    return "\n".join(out)


def _mrkdwn(text: str, limit: int) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- channels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What happened when one channel tried to send one alert."""

    channel: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class Notifier(Protocol):
    """Anything that can send an alert; ``send`` must return, never raise."""

    name: str

    def send(self, alert: Alert) -> Delivery: ...


class _HttpChannel:
    """POST a JSON body with retries; subclasses only shape the body."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        attempts: int = 3,
        base_delay: float = 0.5,
        timeout: float = 5.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.name = name or self.kind
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"{self.name}: alert URL must be http or https, got {redact(url)!r}")
        if attempts < 1 or timeout <= 0 or base_delay < 0:
            raise ConfigError(f"{self.name}: attempts must be >= 1, timeout > 0 and base_delay >= 0")
        self._url, self._headers = url, dict(headers or {})
        self.attempts, self.base_delay, self.timeout, self._sleep = attempts, base_delay, timeout, sleep

    def __repr__(self) -> str:  # never shows the path, query or credentials of a secret URL
        return f"{type(self).__name__}(name={self.name!r}, host={urlsplit(self._url).hostname!r})"

    def payload(self, alert: Alert) -> dict[str, Any]:
        return _clean(alert.to_dict())

    def send(self, alert: Alert) -> Delivery:
        data = json.dumps(self.payload(alert), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "heal-pipeline"} | self._headers
        status: int | None = None
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                request = urllib.request.Request(self._url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                    return Delivery(self.name, True, attempt, response.status)
            # Documented boundary: a webhook failure must never fail the run. Whatever the
            # network or server does (refused, reset, DNS, TLS, timeout, 4xx/5xx), report it.
            except Exception as exc:  # noqa: BLE001
                status, error, retry_after = _describe(exc)
                if status is not None and status != 429 and status < 500:
                    return Delivery(self.name, False, attempt, status, redact(error))
            if attempt < self.attempts:
                self._sleep(max(self.base_delay * 2 ** (attempt - 1), retry_after))
        return Delivery(self.name, False, self.attempts, status, redact(error))


def _describe(exc: Exception) -> tuple[int | None, str, float]:
    """HTTP status, message and Retry-After seconds (capped at 10) of a failed POST."""
    if not isinstance(exc, urllib.error.HTTPError):
        return None, f"{type(exc).__name__}: {exc}", 0.0
    body = ""
    with contextlib.suppress(Exception):  # same boundary: the error body may be cut off too
        body = exc.read(300).decode("utf-8", "replace").strip()
    try:
        wait = min(max(float((exc.headers or {}).get("Retry-After") or 0), 0.0), 10.0)
    except ValueError:  # an HTTP date instead of seconds
        wait = 0.0
    return exc.code, f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else ""), wait


class JsonWebhook(_HttpChannel):
    """POSTs the whole alert (redacted) as JSON."""


class SlackWebhook(_HttpChannel):
    """A Slack incoming webhook: ``text`` for notifications plus Block Kit ``blocks``."""

    kind = "slack"

    def payload(self, alert: Alert) -> dict[str, Any]:
        a = _clean(alert.to_dict())
        ev, parts = a["evidence"], _lines(a)

        def text(body: str, limit: int = 3000) -> dict[str, str]:
            return {"type": "mrkdwn", "text": _mrkdwn(body, limit)}

        def item(title: str, lines: list[str], bullet: bool = True) -> dict[str, str]:
            return text(f"*{title}*\n" + ("\n".join(("• " if bullet else "") + x for x in lines) or "—"), 2000)

        next_step = [ev["next_step"]] if ev["next_step"] else []
        items = [
            item("Pipeline", [a["pipeline"]], False),
            item("Run id", [a["run_id"]], False),
            item("Status", [f"{a['status']} ({a['severity']})"], False),
            item("Failure class", [a["failure_class"]], False),
            item("Counts", parts["counts"], False),
            item("Failed criteria (observed vs expected)", parts["failed"]),
            item("Remediations tried", parts["tried"]),
            item("Next step", next_step, False),
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _fmt(_headline(a), 150)}},
            {"type": "section", "text": text(a["summary"] or "—")},
            {"type": "section", "fields": items},
        ]
        if ev["schema_diff"]:
            blocks.append({"type": "section", "text": text(f"*Schema diff*\n```{_fmt(ev['schema_diff'], 2500)}```")})
        if ev["sample_rows"]:
            rows = f"*Sample rows ({len(ev['sample_rows'])})*\n```{_table(ev['sample_rows'])}```"
            blocks.append({"type": "section", "text": text(rows)})
        context = f"dedup `{a['dedup_key']}`" + (f" · report: {ev['run_url']}" if ev["run_url"] else "")
        blocks.append({"type": "context", "elements": [text(context)]})
        return {"text": _mrkdwn(f"{_headline(a)}: {a['summary']}", 3000), "blocks": blocks}


class PagerDutyEvents(_HttpChannel):
    """PagerDuty Events API v2: trigger with the evidence, or resolve by ``dedup_key``."""

    kind = "pagerduty"

    def __init__(
        self, routing_key: str, url: str = PAGERDUTY_URL, *, source: str | None = None, **options: Any
    ) -> None:
        super().__init__(url, **options)
        if not routing_key:
            raise ConfigError(f"{self.name}: routing_key is empty")
        self._routing_key, self._source = routing_key, source

    def payload(self, alert: Alert) -> dict[str, Any]:
        a = _clean(alert.to_dict())
        event: dict[str, Any] = {"routing_key": self._routing_key, "event_action": a["action"]}
        event["dedup_key"] = a["dedup_key"]
        if a["action"] == "resolve":
            return event
        details = a["evidence"] | {"run_id": a["run_id"], "status": a["status"]}
        event["payload"] = {
            "summary": _fmt(f"{_headline(a)}: {a['summary']}", 1024),
            "source": self._source or f"heal-pipeline:{a['pipeline']}",
            "severity": a["severity"],
            "component": a["pipeline"],
            "group": "heal-pipeline",
            "class": a["failure_class"],
            "custom_details": details,
        }
        event["client"] = "heal-pipeline"
        if str(a["evidence"]["run_url"] or "").startswith(("http://", "https://")):
            event["links"] = [{"href": a["evidence"]["run_url"], "text": "run report"}]
        return event


class FileChannel:
    """Appends one JSON line per alert (or the text form with ``text=True``); ``"-"`` is stdout."""

    def __init__(self, path: str | Path, *, name: str = "file", text: bool = False) -> None:
        self.name, self.path, self.text = name, path, text

    def __repr__(self) -> str:
        return f"FileChannel(name={self.name!r}, path={str(self.path)!r})"

    def send(self, alert: Alert) -> Delivery:
        if self.text:
            line = render_text(alert) + "\n\n"
        else:
            line = json.dumps(_clean(alert.to_dict()), ensure_ascii=False) + "\n"
        try:
            if str(self.path) == "-":
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line)
        except OSError as exc:
            return Delivery(self.name, False, 1, None, redact(f"{type(exc).__name__}: {exc}"))
        return Delivery(self.name, True, 1)


def send_all(alert: Alert, channels: Iterable[Notifier]) -> list[Delivery]:
    """Send to every channel; one broken channel never stops the others."""
    out = []
    for channel in channels:
        try:
            out.append(channel.send(alert))
        # Documented boundary: a third-party Notifier's bug must not fail the run.
        except Exception as exc:  # noqa: BLE001
            name = getattr(channel, "name", type(channel).__name__)
            out.append(Delivery(name, False, 1, None, redact(f"{type(exc).__name__}: {exc}")))
    return out


# --- configuration ----------------------------------------------------------------------------

_KEYS = {
    "slack": {"url_env"},
    "pagerduty": {"routing_key_env", "url", "source"},
    "webhook": {"url", "url_env", "headers", "headers_env"},
    "file": {"path", "format"},
}
_HTTP_KEYS = {"attempts", "timeout", "base_delay"}


def _env(env: Mapping[str, str], name: Any, where: str, key: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: {key} must name an environment variable")
    value = env.get(name)
    if not value:
        raise ConfigError(f"{where}: environment variable {name} (named by {key}) is not set")
    return value


def channels_from_config(
    items: list[dict[str, Any]] | None,
    env: Mapping[str, str],
    *,
    base_dir: str | Path | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> list[Notifier]:
    """Channels from a pipeline's ``alerts:`` list; secrets are read from the named env vars.

    Raises :class:`ConfigError` on an unknown type or key, a secret written in the
    file instead of an env var name, or a named env var that is not set.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(f"alerts: expected a list of channels, got {type(items).__name__}")
    out: list[Notifier] = []
    for i, item in enumerate(items):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise ConfigError(f"alerts[{i}]: unknown alert channel type {kind!r}; expected one of {known}")
        where = f"alerts[{i}] ({kind})"
        secret = {"slack": "url", "pagerduty": "routing_key"}.get(kind)
        if secret in item:
            raise ConfigError(f"{where}: {secret} is a secret; put it in an environment variable and set {secret}_env")
        allowed = _KEYS[kind] | {"type", "name"} | (_HTTP_KEYS if kind != "file" else set())
        if unknown := sorted(set(item) - allowed):
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        http = {k: item[k] for k in _HTTP_KEYS if k in item} | {"sleep": sleep}
        if item.get("name"):
            http["name"] = str(item["name"])
        try:
            out.append(_build(kind, item, env, where, http, base_dir))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return out


def _build(kind: str, item: Mapping[str, Any], env: Mapping[str, str], where: str,
           http: dict[str, Any], base_dir: str | Path | None) -> Notifier:
    if kind == "slack":
        return SlackWebhook(_env(env, item.get("url_env"), where, "url_env"), **http)
    if kind == "pagerduty":
        key = _env(env, item.get("routing_key_env"), where, "routing_key_env")
        return PagerDutyEvents(key, item.get("url", PAGERDUTY_URL), source=item.get("source"), **http)
    if kind == "webhook":
        if ("url" in item) == ("url_env" in item):
            raise ConfigError(f"{where}: give exactly one of url or url_env")
        url = item["url"] if "url" in item else _env(env, item["url_env"], where, "url_env")
        headers = {str(k): str(v) for k, v in dict(item.get("headers") or {}).items()}
        from_env = dict(item.get("headers_env") or {})
        headers |= {str(k): _env(env, v, where, f"headers_env.{k}") for k, v in from_env.items()}
        return JsonWebhook(url, headers=headers, **http)
    fmt = item.get("format", "jsonl")
    if fmt not in ("jsonl", "text") or not isinstance(item.get("path"), str) or not item["path"]:
        raise ConfigError(f"{where}: needs a path (\"-\" for stdout) and format jsonl or text")
    path = item["path"] if item["path"] == "-" or base_dir is None else Path(base_dir) / item["path"]
    return FileChannel(path, name=str(item.get("name") or "file"), text=fmt == "text")
