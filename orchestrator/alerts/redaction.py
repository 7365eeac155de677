"""Keep credentials and sensitive column values out of everything an alert sends."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "clean", "mask_rows", "redact"]

MASK = "***"

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


def clean(value: Any) -> Any:
    """A JSON-safe copy: strings redacted, values under secret-looking keys masked."""
    if isinstance(value, Mapping):
        return {
            redact(str(k)): MASK if v is not None and _SECRET_KEY.fullmatch(str(k)) else clean(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean(v) for v in value]
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

