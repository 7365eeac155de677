"""What a read returns: the :class:`Delivery` and the :class:`ReadNote` log of coercions."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Delivery", "DeliveryPart", "ReadNote"]


@dataclass(frozen=True)
class ReadNote:
    """One thing the reader did that a person may want to know (a coercion, a skipped line)."""

    rule: str
    rows: int = 0
    detail: str = ""


@dataclass(frozen=True)
class DeliveryPart:
    """One file of a delivery: its data rows and the table columns they landed in."""

    file: str
    rows: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Delivery:
    """A delivery materialised as a DuckDB table of VARCHAR columns plus ``_row`` and ``_error``."""

    table: str
    columns: tuple[str, ...]
    rows: int
    format: str
    encoding: str
    delimiter: str | None
    header: bool
    notes: tuple[ReadNote, ...]
    skipped_lines: int
    parts: tuple[DeliveryPart, ...] = ()
