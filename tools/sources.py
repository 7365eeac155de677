"""Fetch a delivery from a local path, ``s3://`` or ``http(s)://``: one attempt, classified.

:func:`fetch` makes exactly ONE attempt with bounded timeouts; the orchestrator owns
retries. A failure raises :class:`~tools.verdict.SourceError` whose ``failure_class``
routes the graph:

==================  =============================================================
source_missing      permanent: not found, access denied, no credentials
source_too_small    fewer than ``min_bytes`` bytes
checksum_mismatch   bytes differ from the given, sidecar or S3-stored checksum
transient           timeout, refused/reset connection, HTTP 408/429/5xx, S3 SlowDown
==================  =============================================================

Messages and ``Fetched.uri`` never carry credentials: ``user:password@`` and secret
query parameters are redacted (:func:`redact_uri`).
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import os
import posixpath
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from tools.verdict import ConfigError, Criterion, SourceError, Verdict

__all__ = [
    "CHUNK_BYTES",
    "Fetched",
    "check_fetch",
    "ensure_within",
    "fetch",
    "fingerprint",
    "redact_uri",
    "resolve_uri",
]

#: Streaming chunk size: memory stays constant whatever the delivery's size.
CHUNK_BYTES = 8 * 1024 * 1024

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_GLOB_CHARS = re.compile(r"[*?\[]")
_SECRET_PARAM = re.compile(r"sig|token|secret|pass|pwd|key|credential|auth", re.IGNORECASE)
_HEX = {"sha256": 64, "md5": 32}
_S3_MISSING = {
    "NoSuchKey": "object not found",
    "NotFound": "object not found",
    "NoSuchBucket": "bucket not found",
}
_S3_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
    "Forbidden",
}
_S3_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
    "TooManyRequests",
    "OperationAborted",
    "BandwidthLimitExceeded",
}


@dataclass(frozen=True)
class Fetched:
    """A delivery on local disk. ``uri`` is redacted; ``checksum_verified`` names what was checked.

    ``checksum_verified`` is ``"sha256"``/``"md5"`` for a given checksum,
    ``"sidecar:sha256"``/``"sidecar:md5"``, ``"s3:sha256"`` for the object's stored
    checksum, or None when nothing was verified.
    """

    local_path: Path
    uri: str
    size: int
    sha256: str
    md5: str
    checksum_verified: str | None
    elapsed_ms: float


# -- templating and containment ---------------------------------------------------------------


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
        _s3_location(resolved)  # validates bucket and key
        return resolved
    if scheme in ("http", "https"):
        return resolved
    if scheme == "file":
        resolved = _file_uri_path(resolved)
        template = _file_uri_path(template)
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


def _fail(uri: str, what: str, failure_class: str) -> SourceError:
    """A SourceError whose message names the (redacted) URI and holds no credential."""
    return SourceError(f"{redact_uri(uri)}: {_scrub(what, uri)}", failure_class=failure_class)


# -- checksums --------------------------------------------------------------------------------


class _Hasher:
    """sha256 and md5 at once, fed while the bytes stream past."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)

    def hexdigest(self, algorithm: str) -> str:
        return (self.sha256 if algorithm == "sha256" else self.md5).hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str] | None:
    """``"sha256:<hex>"`` → ("sha256", hex); ``"sidecar"`` → None."""
    if checksum == "sidecar":
        return None
    algorithm, _, digest = checksum.partition(":")
    algorithm = algorithm.lower()
    digest = digest.strip().lower()
    if algorithm not in _HEX or not re.fullmatch(f"[0-9a-f]{{{_HEX[algorithm]}}}", digest):
        raise ConfigError(
            f"checksum {checksum!r} is not 'sha256:<64 hex>', 'md5:<32 hex>' or 'sidecar'"
        )
    return algorithm, digest


def _parse_sidecar(text: str, algorithm: str, name: str) -> str | None:
    """The digest for ``name`` in sha256sum/md5sum or BSD (``SHA256 (f) = hex``) output."""
    hex_ = f"[0-9a-fA-F]{{{_HEX[algorithm]}}}"
    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        gnu = re.fullmatch(rf"\\?({hex_})(?:\s+\*?(.*))?", line.strip())
        bsd = re.fullmatch(rf"\w+\s*\((.*)\)\s*=\s*({hex_})", line.strip())
        if gnu:
            entries.append((gnu.group(1).lower(), posixpath.basename(gnu.group(2) or "")))
        elif bsd:
            entries.append((bsd.group(2).lower(), posixpath.basename(bsd.group(1))))
    if len(entries) == 1:
        return entries[0][0]
    return next((digest for digest, file_name in entries if file_name == name), None)


def _verify(uri: str, hasher: _Hasher, expected: tuple[str, str], source: str) -> str:
    algorithm, digest = expected
    got = hasher.hexdigest(algorithm)
    if got != digest:
        where = "" if source == "given" else f" ({source})"
        raise _fail(
            uri,
            f"checksum mismatch: expected {algorithm} {digest}{where}, got {got}",
            "checksum_mismatch",
        )
    return algorithm if source == "given" else f"{source}:{algorithm}"


def _sidecar_expected(
    uri: str, read_text: Callable[[str], str | None], name: str
) -> tuple[tuple[str, str], str]:
    """Try ``<uri>.sha256`` then ``<uri>.md5``; ``read_text(suffix)`` returns text or None."""
    for algorithm in ("sha256", "md5"):
        text = read_text("." + algorithm)
        if text is None:
            continue
        digest = _parse_sidecar(text, algorithm, name)
        if digest is None:
            raise _fail(
                uri,
                f"checksum sidecar .{algorithm} holds no {algorithm} for {name}",
                "checksum_mismatch",
            )
        return (algorithm, digest), "sidecar"
    raise _fail(
        uri, "checksum sidecar not found (tried .sha256 and .md5 next to it)", "source_missing"
    )


def _expected(
    uri: str, checksum: str | None, read_text: Callable[[str], str | None], name: str
) -> list[tuple[tuple[str, str], str]]:
    """The checksums to verify: none, the given one, or the sidecar's."""
    if checksum is None:
        return []
    given = _parse_checksum(checksum)
    return [_sidecar_expected(uri, read_text, name) if given is None else (given, "given")]


# -- local ------------------------------------------------------------------------------------


def _file_uri_path(uri: str) -> str:
    return unquote(urlsplit(uri).path) if uri.lower().startswith("file:") else uri


def _local_files(spec: str) -> tuple[Path, list[Path]]:
    """(what the caller named, the sorted regular files it covers); nothing → source_missing."""
    path = Path(os.path.expanduser(spec))
    if _GLOB_CHARS.search(spec):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))
        if not files:
            raise _fail(spec, "no files match this pattern", "source_missing")
        return path, files
    if path.is_dir():
        files = sorted(
            (
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ),
            key=lambda p: p.relative_to(path).as_posix(),
        )
        if not files:
            raise _fail(spec, "directory holds no files", "source_missing")
        return path, files
    if not path.exists():
        raise _fail(spec, "file not found", "source_missing")
    return path, [path]


def _hash_files(spec: str, files: Iterable[Path]) -> _Hasher:
    hasher = _Hasher()
    for file in files:
        try:
            with open(file, "rb") as fh:
                while chunk := fh.read(CHUNK_BYTES):
                    hasher.update(chunk)
        except PermissionError:
            raise _fail(spec, f"access denied reading {file}", "source_missing") from None
        except FileNotFoundError:
            raise _fail(
                spec, f"file not found: {file} vanished while reading", "source_missing"
            ) from None
    return hasher


def fingerprint(path: Path | str) -> str:
    """sha256 hex of a local file, folder or glob's bytes (sorted files, concatenated).

    Identifies a delivery's content, so a re-sent file is recognised whatever its name.
    """
    spec = str(path)
    _, files = _local_files(spec)
    return _hash_files(spec, files).hexdigest("sha256")


def _fetch_local(
    spec: str, *, min_bytes: int, checksum: str | None
) -> tuple[Path, _Hasher, str | None]:
    path, files = _local_files(spec)
    try:
        size = sum(f.stat().st_size for f in files)
    except PermissionError:
        raise _fail(spec, "access denied", "source_missing") from None
    if size < min_bytes:
        raise _fail(spec, f"{size} bytes; expected at least {min_bytes}", "source_too_small")
    if checksum == "sidecar" and files != [path]:
        raise ConfigError(f"{spec}: a checksum sidecar needs a single file, not a folder or glob")

    def read_text(suffix: str) -> str | None:
        side = path.with_name(path.name + suffix)
        try:
            return side.read_text(errors="replace") if side.is_file() else None
        except OSError as exc:
            raise _fail(
                spec, f"cannot read checksum sidecar {side}: {exc.strerror}", "source_missing"
            ) from None

    expected = _expected(spec, checksum, read_text, path.name)
    hasher = _hash_files(spec, files)
    return (
        path,
        hasher,
        _checker(spec, declared=None, min_bytes=min_bytes, expected=expected)(hasher),
    )


# -- remote -----------------------------------------------------------------------------------


def _download(
    body_chunks: Iterator[bytes], dest: Path, check: Callable[[_Hasher], str | None]
) -> tuple[_Hasher, str | None]:
    """Stream chunks into ``dest`` via a temporary sibling, hashing them.

    ``check`` runs before the rename, so a short, too-small or corrupt download never
    appears at ``dest``; nothing is left behind on failure.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    hasher = _Hasher()
    try:
        with open(part, "wb") as out:
            for chunk in body_chunks:
                hasher.update(chunk)
                out.write(chunk)
        verified = check(hasher)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return hasher, verified


def _checker(
    uri: str, *, declared: int | None, min_bytes: int, expected: list[tuple[tuple[str, str], str]]
) -> Callable[[_Hasher], str | None]:
    """What a finished download must satisfy: full length, minimum size, every checksum."""

    def check(hasher: _Hasher) -> str | None:
        if declared is not None and hasher.size != declared:
            raise _fail(
                uri, f"connection closed after {hasher.size} of {declared} bytes", "transient"
            )
        if hasher.size < min_bytes:
            raise _fail(
                uri, f"{hasher.size} bytes; expected at least {min_bytes}", "source_too_small"
            )
        verified = [_verify(uri, hasher, *e) for e in expected]
        return verified[0] if verified else None

    return check


def _safe_name(name: str, fallback: str) -> str:
    name = name.replace("/", "_").replace("\\", "_")
    return fallback if name in ("", ".", "..") else name


def _s3_location(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if "@" in bucket or not bucket or not key or key.endswith("/"):
        raise ConfigError(f"{redact_uri(uri)} is not s3://BUCKET/KEY with a key naming one object")
    if ".." in key.split("/"):
        raise ConfigError(f"{uri}: the key escapes its prefix; remove the '..' segments")
    return bucket, key


def _s3_error(uri: str, exc: Exception) -> SourceError:
    """Classify a boto3/botocore failure."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{code or 'error'} (HTTP {status})" + (
            f": {error['Message']}" if error.get("Message") else ""
        )
        if code in _S3_MISSING:
            return _fail(uri, f"{_S3_MISSING[code]}: {detail}", "source_missing")
        if code in _S3_DENIED or status in (401, 403):
            return _fail(uri, f"access denied: {detail}", "source_missing")
        if code in _S3_TRANSIENT or status in (408, 429) or status >= 500:
            return _fail(uri, f"temporary S3 error: {detail}", "transient")
        if status == 404:
            return _fail(uri, f"object not found: {detail}", "source_missing")
        return _fail(uri, f"S3 refused the request: {detail}", "source_missing")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        what = "access denied: no usable AWS credentials; set AWS_ACCESS_KEY_ID and "
        return _fail(uri, what + "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", "source_missing")
    if isinstance(exc, bx.FlexibleChecksumError):
        return _fail(
            uri,
            f"checksum mismatch against the object's stored checksum: {exc}",
            "checksum_mismatch",
        )
    if isinstance(exc, bx.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return _fail(uri, f"TLS certificate not trusted: {exc}", "source_missing")
    if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return _fail(uri, f"timed out: {exc}", "transient")
    return _fail(uri, f"connection failed: {exc}", "transient")


def _s3_client(endpoint_url: str | None, timeout_s: float) -> Any:
    import boto3
    from botocore.config import Config

    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    # botocore's "max_attempts" counts retries (1 would mean two requests); one request in all:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        user_agent_extra="heal-pipeline",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=config)


def _s3_stored_sha256(response: dict[str, Any]) -> tuple[str, str] | None:
    """The object's own full-object sha256 as hex, when S3 has one (not multipart composites)."""
    import base64
    import binascii

    value = response.get("ChecksumSHA256")
    if not value or "-" in value or response.get("ChecksumType") == "COMPOSITE":
        return None
    try:
        return "sha256", base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def _fetch_s3(
    uri: str,
    dest_dir: Path,
    *,
    min_bytes: int,
    checksum: str | None,
    timeout_s: float,
    endpoint_url: str | None,
) -> tuple[Path, _Hasher, str | None]:
    from botocore import exceptions as bx

    bucket, key = _s3_location(uri)
    client = _s3_client(endpoint_url, timeout_s)

    def read_text(suffix: str) -> str | None:
        try:
            side = client.get_object(Bucket=bucket, Key=key + suffix)
        except bx.ClientError as exc:  # without s3:ListBucket a missing key answers 403
            if exc.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "NotFound",
                "AccessDenied",
            ):
                return None
            raise _s3_error(uri + suffix, exc) from None
        except bx.BotoCoreError as exc:
            raise _s3_error(uri + suffix, exc) from None
        try:  # StreamingBody's context manager yields the raw stream, so close by hand
            return side["Body"].read(1024 * 1024).decode("utf-8", errors="replace")
        finally:
            side["Body"].close()

    try:
        response = client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise _s3_error(uri, exc) from None
    body = response["Body"]
    try:
        size = int(response.get("ContentLength", 0))
        if size < min_bytes:
            raise _fail(uri, f"{size} bytes; expected at least {min_bytes}", "source_too_small")
        expected = _expected(uri, checksum, read_text, posixpath.basename(key))
        stored = _s3_stored_sha256(response)
        if stored is not None:
            expected.append((stored, "s3"))
        dest = dest_dir / _safe_name(posixpath.basename(key), "object")
        check = _checker(uri, declared=size, min_bytes=min_bytes, expected=expected)
        try:
            hasher, verified = _download(body.iter_chunks(CHUNK_BYTES), dest, check)
        except (bx.BotoCoreError, bx.ClientError) as exc:
            raise _s3_error(uri, exc) from None
    finally:
        body.close()
    return dest, hasher, verified


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
            return _fail(uri, f"not found (HTTP {status} {reason})", "source_missing")
        if status in (401, 403):
            return _fail(uri, f"access denied (HTTP {status} {reason})", "source_missing")
        if status in (408, 425, 429) or status >= 500:
            return _fail(uri, f"temporary HTTP error (HTTP {status} {reason})", "transient")
        return _fail(uri, f"server refused the request (HTTP {status} {reason})", "source_missing")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return _fail(uri, f"host not found: {exc}", "source_missing")
        return _fail(uri, f"name lookup failed: {exc}", "transient")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _fail(uri, f"TLS certificate not trusted: {exc.verify_message}", "source_missing")
    if isinstance(exc, TimeoutError):
        return _fail(uri, "timed out waiting for the server", "transient")
    if isinstance(exc, ConnectionRefusedError):
        return _fail(uri, "connection refused", "transient")
    return _fail(uri, f"connection failed: {type(exc).__name__}: {exc}", "transient")


def _fetch_http(
    uri: str, dest_dir: Path, *, min_bytes: int, checksum: str | None, timeout_s: float
) -> tuple[Path, _Hasher, str | None]:
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

    name = _safe_name(posixpath.basename(unquote(urlsplit(uri).path)), "download")
    try:
        response = urllib.request.urlopen(_http_request(uri), timeout=timeout_s)
    except (OSError, http.client.HTTPException) as exc:
        raise _http_error(uri, exc) from None
    with response:
        length = response.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() else None
        if declared is not None and declared < min_bytes:
            raise _fail(uri, f"{declared} bytes; expected at least {min_bytes}", "source_too_small")
        expected = _expected(uri, checksum, read_text, name)
        check = _checker(uri, declared=declared, min_bytes=min_bytes, expected=expected)
        try:
            hasher, verified = _download(chunks(response), dest_dir / name, check)
        except http.client.IncompleteRead as exc:
            raise _fail(
                uri, f"connection closed after {len(exc.partial)} of {declared} bytes", "transient"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _http_error(uri, exc) from None
    return dest_dir / name, hasher, verified


# -- entry point ------------------------------------------------------------------------------


def fetch(
    uri: str,
    dest_dir: Path,
    *,
    min_bytes: int = 1,
    checksum: str | None = None,
    timeout_s: float = 10.0,
    s3_endpoint_url: str | None = None,
) -> Fetched:
    """Make ONE attempt to bring ``uri`` to local disk, checking size and checksum.

    Local paths (also ``file://``, globs, folders) are not copied; ``s3://`` and
    ``http(s)://`` stream into ``dest_dir`` in 8 MiB chunks, hashed on the way.
    ``checksum`` is ``"sha256:<hex>"``, ``"md5:<hex>"`` or ``"sidecar"`` (``<uri>.sha256``,
    then ``<uri>.md5``). Raises :class:`SourceError` (see the module docstring) or
    :class:`ConfigError` for a malformed URI or option.
    """
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be positive, got {timeout_s}")
    if min_bytes < 0:
        raise ConfigError(f"min_bytes must be 0 or more, got {min_bytes}")
    started = time.perf_counter()
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "s3":
        path, hasher, verified = _fetch_s3(
            uri,
            Path(dest_dir),
            min_bytes=min_bytes,
            checksum=checksum,
            timeout_s=timeout_s,
            endpoint_url=s3_endpoint_url,
        )
    elif scheme in ("http", "https"):
        path, hasher, verified = _fetch_http(
            uri, Path(dest_dir), min_bytes=min_bytes, checksum=checksum, timeout_s=timeout_s
        )
    elif scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        path, hasher, verified = _fetch_local(
            _file_uri_path(uri), min_bytes=min_bytes, checksum=checksum
        )
    else:
        raise ConfigError(
            f"unsupported source scheme {scheme!r} in {redact_uri(uri)}; "
            "use a local path, s3:// or https://"
        )
    return Fetched(
        local_path=path,
        uri=redact_uri(uri),
        size=hasher.size,
        sha256=hasher.hexdigest("sha256"),
        md5=hasher.hexdigest("md5"),
        checksum_verified=verified,
        elapsed_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )


# -- the fetch verdict, shared by fetch-file and use-fallback-source ---------------------------

_FETCH_CLASSES = {
    "present": "source_missing",
    "min_size": "source_too_small",
    "checksum": "checksum_mismatch",
    "not_already_loaded": "duplicate_delivery",
}


def check_fetch(
    skill: str,
    uri: str,
    *,
    dest_dir: Path,
    min_bytes: int = 1,
    checksum: str | None = None,
    timeout_s: float = 10.0,
    known_fingerprints: Iterable[str] = (),
) -> Verdict:
    """Fetch ``uri`` once and judge it: present, big enough, right checksum, not loaded before.

    A failed fetch is a failing verdict whose class routes the graph (``transient`` is
    retried); only a malformed URI or option raises (ConfigError).
    """
    started = time.perf_counter()
    shown = redact_uri(uri)
    try:
        got = fetch(uri, dest_dir, min_bytes=min_bytes, checksum=checksum, timeout_s=timeout_s)
    except SourceError as exc:
        order = ["present", "min_size", "checksum"]
        failed = {"source_too_small": "min_size", "checksum_mismatch": "checksum"}.get(exc.failure_class, "present")
        criteria = []
        for cid in order:
            if cid == failed:
                criteria.append(Criterion(cid, False, str(exc), shown, _FETCH_NEXT[exc.failure_class]))
                break
            criteria.append(Criterion(cid, True, "ok", "ok"))
        classes = {**_FETCH_CLASSES, "present": exc.failure_class if failed == "present" else "source_missing"}
        return Verdict.from_criteria(
            skill, criteria, failure_classes=classes, artifacts={"uri": shown},
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    seen = got.sha256 in set(known_fingerprints)
    criteria = [
        Criterion("present", True, got.uri, "exists"),
        Criterion("min_size", got.size >= min_bytes, got.size, f">= {min_bytes}"),
        Criterion("checksum", True, got.checksum_verified or "not requested", checksum or "not requested"),
        Criterion("not_already_loaded", not seen, got.sha256[:16], "a new fingerprint",
                  "this exact content was already loaded: hold it and tell a person" if seen else ""),
    ]
    return Verdict.from_criteria(
        skill, criteria, failure_classes=_FETCH_CLASSES,
        metrics={"bytes": got.size, "fetch_ms": got.elapsed_ms},
        artifacts={"uri": got.uri, "delivery_path": str(got.local_path), "fingerprint": got.sha256},
        duration_ms=(time.perf_counter() - started) * 1000,
    )


_FETCH_NEXT = {
    "source_missing": "retry, then use-fallback-source",
    "source_too_small": "retry, then use-fallback-source",
    "checksum_mismatch": "use-fallback-source",
    "transient": "retry with backoff, then use-fallback-source",
}
