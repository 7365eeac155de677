"""Stream a remote body to disk so that only a complete, checked file ever appears."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from tools.sources.checksums import Hasher

__all__ = ["download", "safe_name"]


def download(
    body_chunks: Iterator[bytes], dest: Path, check: Callable[[Hasher], str | None], hasher: Hasher
) -> tuple[Hasher, str | None]:
    """Stream chunks into ``dest`` via a temporary sibling, hashing them with ``hasher``.

    ``check`` runs before the rename, so a short, too-small or corrupt download never
    appears at ``dest``; nothing is left behind on failure.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
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


def safe_name(name: str, fallback: str) -> str:
    name = name.replace("/", "_").replace("\\", "_")
    return fallback if name in ("", ".", "..") else name
