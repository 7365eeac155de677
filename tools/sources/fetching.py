"""One fetch attempt: pick the local, S3 or HTTP fetcher by scheme and say what arrived."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tools.sources.http import fetch_http
from tools.sources.local import fetch_local
from tools.sources.redaction import redact_uri
from tools.sources.s3 import fetch_s3
from tools.sources.templating import file_uri_path
from tools.verdict import ConfigError

__all__ = ["Fetched", "fetch"]


@dataclass(frozen=True)
class Fetched:
    """A delivery on local disk. ``uri`` is redacted; ``checksum_verified`` names what was checked.

    ``sha256`` is the content fingerprint, always computed; ``md5`` only when a checksum
    check asked for it (else None), as hashing costs as much as the rest of a local fetch.

    ``checksum_verified`` is ``"sha256"``/``"md5"`` for a given checksum,
    ``"sidecar:sha256"``/``"sidecar:md5"``, ``"s3:sha256"`` for the object's stored
    checksum, or None when nothing was verified.
    """

    local_path: Path
    uri: str
    size: int
    sha256: str
    md5: str | None
    checksum_verified: str | None
    elapsed_ms: float


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
    then ``<uri>.md5``). Raises :class:`SourceError` (see :mod:`tools.sources`) or
    :class:`ConfigError` for a malformed URI or option.
    """
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be positive, got {timeout_s}")
    if min_bytes < 0:
        raise ConfigError(f"min_bytes must be 0 or more, got {min_bytes}")
    started = time.perf_counter()
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "s3":
        path, hasher, verified = fetch_s3(
            uri,
            Path(dest_dir),
            min_bytes=min_bytes,
            checksum=checksum,
            timeout_s=timeout_s,
            endpoint_url=s3_endpoint_url,
        )
    elif scheme in ("http", "https"):
        path, hasher, verified = fetch_http(
            uri, Path(dest_dir), min_bytes=min_bytes, checksum=checksum, timeout_s=timeout_s
        )
    elif scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        path, hasher, verified = fetch_local(
            file_uri_path(uri), min_bytes=min_bytes, checksum=checksum
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
        sha256=hasher.fingerprint,
        md5=hasher.hexdigest("md5"),
        checksum_verified=verified,
        elapsed_ms=round((time.perf_counter() - started) * 1000.0, 3),
    )
