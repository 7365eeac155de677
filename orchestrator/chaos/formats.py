"""Faults in how a delivery is written: encoding, line ends, delimiter, compression, container,
header row, footers, and values in drifted number and date formats."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import duckdb

from orchestrator.chaos.outcome import Out, Row
from tools.contract import quote_ident, quote_literal

__all__ = [
    "Fault",
    "accented",
    "ambiguous_dates",
    "blank_lines",
    "bom",
    "cents",
    "cr",
    "crlf",
    "delimited",
    "drifted_amount",
    "drifted_dates",
    "footer",
    "gzip_",
    "json_array",
    "jsonl",
    "latin1",
    "money",
    "no_header",
    "null_tokens",
    "parquet",
    "rows_of",
    "sep_line",
    "utf16",
    "zstd",
]

Fault = Callable[[Out, random.Random], "dict[str, Any] | str"]


def rows_of(o: Out) -> list[Row]:
    return [dict(r) for r in o.clean.rows]


def money(value: str, *, thousands: str, decimal: str) -> str:
    whole, _, cents = f"{Decimal(value):.2f}".partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    groups = []
    while len(digits) > 3:
        digits, groups = digits[:-3], [digits[-3:], *groups]
    return sign + thousands.join([digits, *groups]) + decimal + cents


def _date(fmt: str) -> Callable[[str], str]:
    return lambda v: dt.date.fromisoformat(v).strftime(fmt)


# --- format drift ------------------------------------------------------------------------------

def bom(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(encoding="utf-8-sig"), "healed")


def utf16(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(encoding="utf-16"), "healed")


def accented(o: Out) -> list[Row] | None:
    col = o.clean.text
    if col is None:
        return None
    return [{**r, col.name: r[col.name] + "é"} if i % 3 == 0 else dict(r) for i, r in enumerate(o.clean.rows)]


def latin1(o: Out, rng: random.Random) -> dict[str, Any] | str:
    rows = accented(o)
    if rows is None:
        return "no text column to carry a non-ASCII character"
    return o.expect(o.csv(rows=rows, encoding="latin-1"), "healed", rows)


def crlf(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(newline="\r\n"), "success")  # RFC 4180 line ends: nothing to heal


def cr(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(newline="\r"), "healed")


def delimited(delimiter: str) -> Fault:
    return lambda o, rng: o.expect(o.csv(delimiter=delimiter), "healed")


def sep_line(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.file("delivery.csv", "sep=;\n" + o.text(delimiter=";")), "healed")


def blank_lines(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.file("delivery.csv", o.text() + "\n\n\n"), "healed")


def footer(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    total = {col.name: str(sum(Decimal(r[col.name]) for r in o.clean.rows))} if col else {}
    line = o.text([{h: total.get(h, "") for h in o.clean.header} | {o.clean.header[0]: "TOTAL"}], header=False)
    return o.expect(o.file("delivery.csv", o.text() + line), "healed")


def gzip_(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(compress="gzip"), "healed")


def zstd(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv("delivery.dat", compress="zstd"), "healed")


def jsonl(o: Out, rng: random.Random) -> dict[str, Any] | str:
    lines = "".join(json.dumps(r) + "\n" for r in o.clean.rows)
    return o.expect(o.file("delivery.csv", lines), "healed")


def json_array(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.file("delivery.json", json.dumps(o.clean.rows, indent=1)), "healed")


def parquet(o: Out, rng: random.Random) -> dict[str, Any] | str:
    text = o.folder / "clean.tmp.csv"
    text.write_text(o.text())
    casts = ", ".join(f"TRY_CAST({quote_ident(c.name)} AS {c.sql_type}) AS {quote_ident(c.name)}"
                      for c in o.clean.contract.columns)
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT {casts} FROM read_csv({quote_literal(str(text))}, all_varchar=true)) "
                    f"TO {quote_literal(str(o.folder / 'delivery.parquet'))} (FORMAT parquet)")
    finally:
        con.close()
        text.unlink()
    return o.expect("delivery.parquet", "healed")


def no_header(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(header=False, order=list(o.clean.contract.names)), "healed")


# --- type drift --------------------------------------------------------------------------------

def drifted_amount(fmt: Callable[[str], str], delimiter: str = ",", status: str = "healed") -> Fault:
    def make(o: Out, rng: random.Random) -> dict[str, Any] | str:
        col = o.clean.amount
        if col is None or col.type != "decimal":
            return "no decimal column"
        return o.expect(o.csv(delimiter=delimiter, fmt={col.name: fmt}), status)
    return make


def drifted_dates(fmt: str, *, infer: bool) -> Fault:
    def make(o: Out, rng: random.Random) -> dict[str, Any] | str:
        col = o.clean.date
        if col is None:
            return "no date column"
        path = o.csv(fmt={col.name: _date(fmt)})
        telling = any(dt.date.fromisoformat(r[col.name]).day > 12 for r in o.clean.rows if r[col.name])
        if infer and not telling:  # every day <= 12: the order cannot be inferred
            return o.held(path, "type_drift")
        return o.expect(path, "healed")
    return make


def ambiguous_dates(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.date
    if col is None:
        return "no date column"
    rows = rows_of(o)
    for r in rows:
        day = dt.date.fromisoformat(r[col.name])
        r[col.name] = day.replace(day=(day.day - 1) % 12 + 1).isoformat()
    return o.held(o.csv(rows=rows, fmt={col.name: _date("%d/%m/%Y")}), "type_drift")


def cents(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    if col is None or col.type != "decimal":
        return "no decimal column"
    prior = o.prior()
    return o.held(o.csv(fmt={col.name: lambda v: str(int(Decimal(v) * 100))}), "distribution_shift", prior=[prior])


def null_tokens(o: Out, rng: random.Random) -> dict[str, Any] | str:
    contract = o.clean.contract
    critical = {c.name for c in contract.critical}
    relaxed = [c.name for c in contract.columns if c.name not in critical]
    targets = relaxed or [c.name for c in contract.columns if c.name not in contract.key]
    tokens = [t for t in ("N/A", "NULL", "-", "None", "null", "NA") if t in contract.null_tokens]
    if not targets or not tokens:
        return "no column or token to use"
    rows = rows_of(o)
    for i, token in enumerate(tokens):
        if 2 + 3 * i < len(rows):
            rows[2 + 3 * i][targets[i % len(targets)]] = token
    return o.expect(o.csv(rows=rows), "success", rows)


