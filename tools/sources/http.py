"""HTTP(S) deliveries: one GET through urllib, streamed to disk, failures classified by status."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from tools.sources.checksums import CHUNK_BYTES, Hasher, checker, expected_checksums
from tools.sources.download import download, safe_name
from tools.sources.redaction import fail, redact_uri
from tools.verdict import ConfigError, SourceError

__all__ = ["fetch_http"]


def _http_request(uri: str) -> Any:
    """A urllib Request without userinfo in the URL; credentials go in a non-redirected header."""
    import base64
    import urllib.request

    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(f"{redact_uri(uri)} has an invalid port") from None
    if not parts.hostname:
        raise ConfigError(f"{redact_uri(uri)} names no host")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    request = urllib.request.Request(
        urlunsplit((parts.scheme, netloc, path, parts.query, "")),
        headers={"User-Agent": "heal-pipeline"},
    )
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_unredirected_header(
            "Authorization", "Basic " + base64.b64encode(token).decode()
        )
    return request


def _http_error(uri: str, exc: BaseException) -> SourceError:
    """Classify a urllib/http.client/socket failure."""
    import socket
    import ssl
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        status, reason = exc.code, exc.reason
        exc.close()
        if status in (404, 410):
            return fail(uri, f"not found (HTTP {status} {reason})", "source_missing")
        if status in (401, 403):
            return fail(uri, f"access denied (HTTP {status} {reason})", "source_missing")
        if status in (408, 425, 429) or status >= 500:
            return fail(uri, f"temporary HTTP error (HTTP {status} {reason})", "transient")
        return fail(uri, f"server refused the request (HTTP {status} {reason})", "source_missing")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return fail(uri, f"host not found: {exc}", "source_missing")
        return fail(uri, f"name lookup failed: {exc}", "transient")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return fail(uri, f"TLS certificate not trusted: {exc.verify_message}", "source_missing")
    if isinstance(exc, TimeoutError):
        return fail(uri, "timed out waiting for the server", "transient")
    if isinstance(exc, ConnectionRefusedError):
        return fail(uri, "connection refused", "transient")
    return fail(uri, f"connection failed: {type(exc).__name__}: {exc}", "transient")


def fetch_http(
    uri: str, dest_dir: Path, *, min_bytes: int, checksum: str | None, timeout_s: float
) -> tuple[Path, Hasher, str | None]:
    import http.client
    import urllib.error
    import urllib.request

    def read_text(suffix: str) -> str | None:
        side_uri = urlunsplit(urlsplit(uri)._replace(path=urlsplit(uri).path + suffix))
        try:
            with urllib.request.urlopen(_http_request(side_uri), timeout=timeout_s) as side:
                return side.read(1024 * 1024).decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                exc.close()
                return None
            raise _http_error(side_uri, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _http_error(side_uri, exc) from None

    def chunks(stream: IO[bytes]) -> Iterator[bytes]:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk

    name = safe_name(posixpath.basename(unquote(urlsplit(uri).path)), "download")
    try:
        response = urllib.request.urlopen(_http_request(uri), timeout=timeout_s)
    except (OSError, http.client.HTTPException) as exc:
        raise _http_error(uri, exc) from None
    with response:
        length = response.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() else None
        if declared is not None and declared < min_bytes:
            raise fail(uri, f"{declared} bytes; expected at least {min_bytes}", "source_too_small")
        expected = expected_checksums(uri, checksum, read_text, name)
        check = checker(uri, declared=declared, min_bytes=min_bytes, expected=expected)
        try:
            hasher, verified = download(
                chunks(response), dest_dir / name, check, Hasher.for_checks(expected)
            )
        except http.client.IncompleteRead as exc:
            raise fail(
                uri, f"connection closed after {len(exc.partial)} of {declared} bytes", "transient"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _http_error(uri, exc) from None
    return dest_dir / name, hasher, verified
