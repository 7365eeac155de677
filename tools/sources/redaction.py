"""Keep credentials out of source URIs and error messages."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tools.verdict import SourceError

__all__ = ["fail", "redact_uri"]

_SECRET_PARAM = re.compile(r"sig|token|secret|pass|pwd|key|credential|auth", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` without ``user:password@`` and with secret query values replaced by ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable uri>"
    if not parts.scheme or len(parts.scheme) == 1:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*/:"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(uri: str) -> list[str]:
    """Every credential-like string in ``uri`` (raw and decoded), longest first."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return [uri]
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for raw in parts.query.split("&"):
        key, _, value = raw.partition("=")
        if value and _SECRET_PARAM.search(unquote(key)):
            found += [value, unquote(value.replace("+", " "))]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def _scrub(text: str, uri: str) -> str:
    text = text.replace(uri, redact_uri(uri))
    for secret in _secrets(uri):
        text = text.replace(secret, "***")
    return text


def fail(uri: str, what: str, failure_class: str) -> SourceError:
    """A SourceError whose message names the (redacted) URI and holds no credential."""
    return SourceError(f"{redact_uri(uri)}: {_scrub(what, uri)}", failure_class=failure_class)
