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

One job per module: :mod:`~orchestrator.alerts.redaction`, :mod:`~orchestrator.alerts.evidence`
(the :class:`Alert` and what it carries), :mod:`~orchestrator.alerts.render` (the text every
channel shows), :mod:`~orchestrator.alerts.channels` and :mod:`~orchestrator.alerts.config`.
"""

from orchestrator.alerts.channels import (
    PAGERDUTY_URL,
    Delivery,
    FileChannel,
    JsonWebhook,
    Notifier,
    PagerDutyEvents,
    SlackWebhook,
    send_all,
)
from orchestrator.alerts.config import channels_from_config
from orchestrator.alerts.evidence import ACTIONS, SEVERITIES, STATUSES, Alert, Evidence, build_evidence
from orchestrator.alerts.redaction import MASK, mask_rows, redact
from orchestrator.alerts.render import render_text

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
