"""Build alert channels from a pipeline's ``alerts:`` list, reading secrets from env vars."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.alerts.channels import (
    PAGERDUTY_URL,
    FileChannel,
    JsonWebhook,
    Notifier,
    PagerDutyEvents,
    SlackWebhook,
)
from tools.verdict import ConfigError

__all__ = ["channels_from_config"]

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
