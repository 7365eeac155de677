"""The fetch verdict that fetch-file and use-fallback-source share: fetch once, then judge."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from tools.sources.fetching import fetch
from tools.sources.redaction import redact_uri
from tools.verdict import Criterion, SourceError, Verdict

__all__ = ["check_fetch"]

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
