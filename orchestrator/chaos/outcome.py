"""What a variant is, and how its correct outcome is stated: typed rows as canonical text,
reason codes computed the way ``tools.rules`` assigns them, statuses per DESIGN.md."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb

from tools.contract import NUMERIC_COLUMN_TYPES, Column, Contract, quote_ident
from tools.readers import read_delivery
from tools.verdict import ConfigError, InputError

__all__ = ["Clean", "Out", "Row", "Variant", "canonical", "load_variant", "read_clean", "reasons"]

Row = dict[str, str | None]


@dataclass(frozen=True)
class Variant:
    """One faulty delivery and the outcome the default policies call for."""

    name: str
    fault: str
    path: str  # the delivery (file or folder), relative to the variant's folder
    status: str
    alert: bool
    failure_class: str | None  # the class the alert is raised for
    rows_read: int
    columns: tuple[str, ...]  # of ``loaded``: the contract's, then extra columns kept
    loaded: tuple[tuple[str | None, ...], ...]  # sorted
    quarantined: tuple[tuple[int, tuple[str, ...]], ...]  # (row number, reason codes)
    duplicates: int = 0
    prior: tuple[str, ...] = ()  # deliveries to load on the days before, in order
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_variant(folder: str | Path) -> Variant:
    """The :class:`Variant` that ``folder/expected.json`` states."""
    data = json.loads((Path(folder) / "expected.json").read_text())
    data["columns"], data["prior"] = tuple(data["columns"]), tuple(data["prior"])
    data["loaded"] = tuple(tuple(r) for r in data["loaded"])
    data["quarantined"] = tuple((n, tuple(r)) for n, r in data["quarantined"])
    return Variant(**data)


def canonical(value: Any, column: Column, null_tokens: Sequence[str] = ()) -> str | None:
    """``value`` (delivered text, or a typed value read from the target) as canonical text.

    Raises ValueError when text does not parse as the column's type."""
    if value is None or (isinstance(value, str) and value.strip() in null_tokens):
        return None
    kind = column.type
    if kind == "text":
        return str(value)
    text = value.strip() if isinstance(value, str) else value
    try:
        if kind in ("bigint", "integer"):
            number = Decimal(str(text))
            if number != number.to_integral_value():
                raise ValueError(f"{value!r} is not a whole number")
            return str(int(number))
        if kind == "decimal":
            return str(Decimal(str(text)).quantize(Decimal("0.01"), ROUND_HALF_UP))
        if kind == "double":
            return repr(float(text))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if kind == "date":
        return (text if isinstance(text, dt.date) else dt.date.fromisoformat(str(text))).isoformat()
    if kind == "timestamp":
        stamp = text if isinstance(text, dt.datetime) else dt.datetime.fromisoformat(str(text))
        return stamp.isoformat(sep=" ")
    if kind == "boolean":
        if isinstance(text, bool):
            return str(text).lower()
        words = {"true": "true", "t": "true", "yes": "true", "1": "true",
                 "false": "false", "f": "false", "no": "false", "0": "false"}
        if str(text).lower() not in words:
            raise ValueError(f"{value!r} is not a boolean")
        return words[str(text).lower()]
    raise ValueError(f"unknown type {kind}")


def reasons(row: Row, contract: Contract, error: str | None = None) -> list[str]:
    """The reason codes quarantine-rows writes for ``row``, in ``tools.rules`` order."""
    out = [error] if error else []
    critical = {c.name for c in contract.critical}
    for col in contract.columns:
        value = row.get(col.name)
        null = value is None or value.strip() in contract.null_tokens
        if null and col.name in critical:
            out.append(f"null_critical:{col.name}")
        if null or col.type == "text":
            continue
        try:
            typed = canonical(value, col)
        except ValueError:
            out.append(f"unparseable:{col.name}")
            continue
        if col.type in NUMERIC_COLUMN_TYPES and typed is not None:
            number = float(typed)
            if (col.min is not None and number < col.min) or (col.max is not None and number > col.max):
                out.append(f"out_of_range:{col.name}")
    return out


@dataclass
class Clean:
    """The clean delivery and the columns faults work on (None when the contract has none)."""

    contract: Contract
    header: list[str]
    rows: list[Row]
    key: Column | None = None
    amount: Column | None = None
    date: Column | None = None
    text: Column | None = None
    synonym: Column | None = None
    extras: list[str] = field(default_factory=list)  # extra columns a variant adds and the target keeps

    def copy(self) -> Clean:
        return Clean(self.contract, list(self.header), [dict(r) for r in self.rows], self.key, self.amount,
                     self.date, self.text, self.synonym, [])


def read_clean(path: Path, contract: Contract) -> Clean:
    """Read and vet the clean delivery: the contract's columns, every row valid, keys unique."""
    con = duckdb.connect()
    try:
        d = read_delivery(con, path, expected_columns=contract.names)
        names = ", ".join(quote_ident(c) for c in d.columns)
        rows = con.execute(f"SELECT {names} FROM delivery ORDER BY _row").fetchall()
    except InputError as exc:
        raise ConfigError(f"clean delivery: {exc}") from None
    finally:
        con.close()
    if sorted(d.columns) != sorted(contract.names):
        raise ConfigError(f"clean delivery: columns {list(d.columns)} are not the contract's {list(contract.names)}")
    clean = Clean(contract, list(d.columns), [dict(zip(d.columns, r)) for r in rows])
    if not clean.rows:
        raise ConfigError("clean delivery: it has no rows")
    for n, row in enumerate(clean.rows, 1):
        if bad := reasons(row, contract):
            raise ConfigError(f"clean delivery: row {n} is not clean ({', '.join(bad)})")
    keys = [tuple(canonical(r[k], contract.column(k)) for k in contract.key) for r in clean.rows]
    if len(set(keys)) < len(keys) and contract.key:
        raise ConfigError("clean delivery: a key appears twice")
    numbers = [c for c in contract.columns if c.type in ("decimal", "double") and c.name not in contract.key]
    texts = [c for c in contract.columns if c.type == "text" and c.name not in contract.key]
    clean.key = contract.column(contract.key[0]) if contract.key else None
    clean.amount = next((c for c in numbers if c.critical), numbers[0] if numbers else None)
    clean.date = next((c for c in contract.columns if c.type == "date"), None)
    clean.text = texts[0] if texts else None
    clean.synonym = next((c for c in contract.columns if c.synonyms), None)
    return clean


class Out:
    """Where one fault writes its delivery, and how it states the expected outcome."""

    def __init__(self, clean: Clean, folder: Path) -> None:
        self.clean, self.folder = clean, folder

    def file(self, name: str, data: str | bytes, encoding: str = "utf-8") -> str:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
        return name

    def text(self, rows: Sequence[Row] | None = None, *, order: Sequence[str] | None = None,
             rename: dict[str, str] | None = None, header: bool = True, delimiter: str = ",",
             newline: str = "\n", fmt: dict[str, Callable[[str], str]] | None = None) -> str:
        """The rows as CSV text: columns in ``order``, shown as ``rename`` says, values via ``fmt``."""
        order = list(order or [*self.clean.header, *self.clean.extras])
        fmt, rename = fmt or {}, rename or {}
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
        if header:
            writer.writerow([rename.get(c, c) for c in order])
        for r in self.clean.rows if rows is None else rows:
            writer.writerow([fmt[c](r[c]) if c in fmt and r.get(c) else (r.get(c) or "") for c in order])
        return buf.getvalue()

    def csv(self, name: str = "delivery.csv", rows: Sequence[Row] | None = None, *, encoding: str = "utf-8",
            compress: str | None = None, **kw: Any) -> str:
        data = self.text(rows, **kw).encode(encoding)
        if compress == "gzip":
            data = gzip.compress(data)
        elif compress == "zstd":
            import zstandard

            data = zstandard.ZstdCompressor().compress(data)
        return self.file(name, data)

    def prior(self, *, shift_keys: bool = True) -> str:
        """A clean delivery for the day before: the same rows under new keys (or the same keys)."""
        rows = [dict(r) for r in self.clean.rows]
        key = self.clean.key
        if shift_keys and key is not None:
            whole = key.type in ("bigint", "integer")
            top = max(int(Decimal(str(r[key.name]))) for r in rows) if whole else 0
            for r in rows:
                r[key.name] = str(int(Decimal(str(r[key.name]))) + top + 1) if whole else f"p-{r[key.name]}"
        return self.csv("prior/delivery.csv", rows, order=self.clean.header)

    def held(self, path: str, failure_class: str, *, read: int | None = None, prior: Sequence[str] = (),
             fallback: str | None = None) -> dict[str, Any]:
        """Escalated: nothing loads, a person is told."""
        return dict(path=path, status="escalated", alert=True, failure_class=failure_class,
                    rows_read=len(self.clean.rows) if read is None else read, columns=self.columns(), loaded=(),
                    quarantined=(), prior=tuple(prior), fallback=fallback)

    def columns(self) -> tuple[str, ...]:
        return (*self.clean.contract.names, *self.clean.extras)

    def expect(self, path: str, status: str, rows: Sequence[Row] | None = None, *,
               errors: dict[int, str] | None = None, failure_class: str | None = None, prior: Sequence[str] = (),
               fallback: str | None = None) -> dict[str, Any]:
        """The rows load unless a rule holds them (then ``partial_failure`` and an alert)."""
        contract, errors = self.clean.contract, errors or {}
        rows = list(self.clean.rows if rows is None else rows)
        delivered = [*self.clean.header, *self.clean.extras]
        types = {c.name: c for c in contract.columns}
        why = {n: reasons(r, contract, errors.get(n)) for n, r in enumerate(rows, 1)}
        raw = {n: tuple(r.get(c) for c in delivered) for n, r in enumerate(rows, 1)}
        if contract.key:  # one key with different contents in the delivery: every version is held
            versions: dict[tuple, set] = {}
            keyed = [n for n, r in enumerate(rows, 1)
                     if n not in errors and not any(f":{k}" in w for w in why[n] for k in contract.key)]
            for n in keyed:
                key = tuple(canonical(rows[n - 1][k], types[k], contract.null_tokens) for k in contract.key)
                versions.setdefault(key, set()).add(raw[n])
            for n in keyed:
                key = tuple(canonical(rows[n - 1][k], types[k], contract.null_tokens) for k in contract.key)
                if len(versions[key]) > 1:
                    why[n].append("duplicate_key_conflict")
        held = tuple((n, tuple(w)) for n, w in why.items() if w)
        kept = list(dict.fromkeys(raw[n] for n, w in why.items() if not w))
        index = [delivered.index(c) for c in self.columns()]
        loaded = sorted((tuple(canonical(r[i], types[delivered[i]], contract.null_tokens)
                               if delivered[i] in types else r[i] for i in index) for r in kept), key=repr)
        if held:
            status, failure_class = "partial_failure", failure_class or _first_class(held)
        return dict(path=path, status=status, alert=status in ("partial_failure", "escalated"),
                    failure_class=failure_class if status != "success" and status != "healed" else None,
                    rows_read=len(rows), columns=self.columns(), loaded=tuple(loaded), quarantined=held,
                    duplicates=len(rows) - len(held) - len(kept), prior=tuple(prior), fallback=fallback)


def _first_class(held: Sequence[tuple[int, Sequence[str]]]) -> str:
    """The failure class validate-quality reports first for these reason codes."""
    seen = {r.split(":")[0] for _, rs in held for r in rs}
    order = [("malformed_row", {"truncated_line", "wrong_field_count", "invalid_json"}),
             ("null_critical", {"null_critical"}), ("type_drift", {"unparseable"}),
             ("out_of_range", {"out_of_range"}), ("duplicate_key", {"duplicate_key_conflict"})]
    return next(fc for fc, codes in order if seen & codes)
