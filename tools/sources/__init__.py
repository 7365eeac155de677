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

One job per module: :mod:`~tools.sources.templating` (placeholders, containment),
:mod:`~tools.sources.redaction`, :mod:`~tools.sources.checksums`,
:mod:`~tools.sources.local`, :mod:`~tools.sources.download`, :mod:`~tools.sources.s3`,
:mod:`~tools.sources.http`, :mod:`~tools.sources.fetching` (:func:`fetch`) and
:mod:`~tools.sources.check` (:func:`check_fetch`). boto3 and urllib are imported only
when a remote fetch runs.
"""

from tools.sources.check import check_fetch
from tools.sources.checksums import CHUNK_BYTES
from tools.sources.fetching import Fetched, fetch
from tools.sources.local import fingerprint
from tools.sources.redaction import redact_uri
from tools.sources.templating import ensure_within, resolve_uri

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
