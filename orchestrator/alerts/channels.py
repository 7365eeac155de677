"""Where alerts go: Slack, PagerDuty, a JSON webhook or a file; sending never raises."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from orchestrator.alerts.evidence import Alert
from orchestrator.alerts.redaction import clean, redact
from orchestrator.alerts.render import fmt, headline, render_text, section_lines, table
from tools.verdict import ConfigError

__all__ = [
    "PAGERDUTY_URL",
    "Delivery",
    "FileChannel",
    "JsonWebhook",
    "Notifier",
    "PagerDutyEvents",
    "SlackWebhook",
    "send_all",
]

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


def _mrkdwn(text: str, limit: int) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[: limit - 1] + "…"



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
        return clean(alert.to_dict())

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
        a = clean(alert.to_dict())
        ev, parts = a["evidence"], section_lines(a)

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
            {"type": "header", "text": {"type": "plain_text", "text": fmt(headline(a), 150)}},
            {"type": "section", "text": text(a["summary"] or "—")},
            {"type": "section", "fields": items},
        ]
        if ev["schema_diff"]:
            blocks.append({"type": "section", "text": text(f"*Schema diff*\n```{fmt(ev['schema_diff'], 2500)}```")})
        if ev["sample_rows"]:
            rows = f"*Sample rows ({len(ev['sample_rows'])})*\n```{table(ev['sample_rows'])}```"
            blocks.append({"type": "section", "text": text(rows)})
        context = f"dedup `{a['dedup_key']}`" + (f" · report: {ev['run_url']}" if ev["run_url"] else "")
        blocks.append({"type": "context", "elements": [text(context)]})
        return {"text": _mrkdwn(f"{headline(a)}: {a['summary']}", 3000), "blocks": blocks}


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
        a = clean(alert.to_dict())
        event: dict[str, Any] = {"routing_key": self._routing_key, "event_action": a["action"]}
        event["dedup_key"] = a["dedup_key"]
        if a["action"] == "resolve":
            return event
        details = a["evidence"] | {"run_id": a["run_id"], "status": a["status"]}
        event["payload"] = {
            "summary": fmt(f"{headline(a)}: {a['summary']}", 1024),
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
            line = json.dumps(clean(alert.to_dict()), ensure_ascii=False) + "\n"
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

