"""Turn a source template into a URI for one run date, keeping paths and keys inside their root."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tools.sources.redaction import redact_uri
from tools.verdict import ConfigError

__all__ = ["ensure_within", "file_uri_path", "resolve_uri", "s3_location"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


def resolve_uri(template: str, *, run_date: datetime.date, base_dir: Path | None = None) -> str:
    """Fill the date placeholders; keep local paths and S3 keys inside their root.

    Placeholders: ``{date}`` (YYYY-MM-DD), ``{yyyymmdd}``, ``{year}``, ``{month}``, ``{day}``.

    A relative local path resolves against ``base_dir``. A local path must stay inside
    ``base_dir`` (relative templates) and inside the template's fixed directory prefix;
    an S3 key must hold no ``..`` segment. Escapes raise :class:`ConfigError`.
    """
    values = {
        "date": run_date.isoformat(),
        "yyyymmdd": run_date.strftime("%Y%m%d"),
        "year": f"{run_date.year:04d}",
        "month": f"{run_date.month:02d}",
        "day": f"{run_date.day:02d}",
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(
                f"unknown placeholder {{{name}}} in {redact_uri(template)}; "
                f"use one of {', '.join('{' + k + '}' for k in values)}"
            )
        return values[name]

    resolved = _PLACEHOLDER.sub(fill, template)
    scheme = urlsplit(resolved).scheme.lower()
    if scheme == "s3":
        s3_location(resolved)  # validates bucket and key
        return resolved
    if scheme in ("http", "https"):
        return resolved
    if scheme == "file":
        resolved = file_uri_path(resolved)
        template = file_uri_path(template)
    elif scheme and len(scheme) > 1:
        raise ConfigError(f"unsupported source scheme {scheme!r} in {redact_uri(template)}")
    fixed = template.split("{", 1)[0] if "{" in template else None
    path = Path(os.path.expanduser(resolved))
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not path.is_absolute():
        path = ensure_within(base / path, base)
    if fixed is not None:  # the templated part must stay under the fixed directory before it
        root = Path(
            os.path.expanduser(fixed if fixed.endswith(("/", os.sep)) else os.path.dirname(fixed))
        )
        ensure_within(path, root if root.is_absolute() else base / root)
    if base_dir is None and not Path(os.path.expanduser(resolved)).is_absolute():
        return os.path.normpath(resolved)
    return str(path)


def ensure_within(path: Path | str, root: Path | str) -> Path:
    """Return ``path`` normalised; raise :class:`ConfigError` when it lies outside ``root``.

    The check is lexical (``..`` is collapsed, symlinks are not followed), so it also
    works for paths that do not exist yet.
    """
    root_n = Path(os.path.normpath(os.path.abspath(root)))
    path_n = Path(os.path.normpath(os.path.abspath(path)))
    if path_n != root_n and root_n not in path_n.parents:
        raise ConfigError(f"path {path} escapes its root {root}; remove the '..' segments")
    return path_n


def file_uri_path(uri: str) -> str:
    return unquote(urlsplit(uri).path) if uri.lower().startswith("file:") else uri


def s3_location(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if "@" in bucket or not bucket or not key or key.endswith("/"):
        raise ConfigError(f"{redact_uri(uri)} is not s3://BUCKET/KEY with a key naming one object")
    if ".." in key.split("/"):
        raise ConfigError(f"{uri}: the key escapes its prefix; remove the '..' segments")
    return bucket, key
