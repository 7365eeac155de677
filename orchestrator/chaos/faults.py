"""The fault classes: each writes one faulty variant of the clean delivery and states its outcome.

A fault function takes an :class:`~orchestrator.chaos.outcome.Out` and a seeded ``random``
and returns the expected outcome (``Out.expect`` / ``Out.held``), or a string saying why the
contract gives it nothing to work on (the variant is skipped). Statuses follow the default
policies of DESIGN.md; see README "Fault injection" for the table.
"""

from __future__ import annotations

import gzip
import random
from decimal import Decimal
from typing import Any

from orchestrator.chaos.formats import (
    Fault,
    accented,
    ambiguous_dates,
    blank_lines,
    bom,
    cents,
    cr,
    crlf,
    delimited,
    drifted_amount,
    drifted_dates,
    footer,
    gzip_,
    json_array,
    jsonl,
    latin1,
    money,
    no_header,
    null_tokens,
    parquet,
    rows_of,
    sep_line,
    utf16,
    zstd,
)
from orchestrator.chaos.outcome import Out, Row

__all__ = ["FAULTS"]


# --- header drift ------------------------------------------------------------------------------

def clean(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(), "success")


def renamed_synonym(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.synonym
    if col is None:
        return "no contract column has synonyms"
    return o.expect(o.csv(rename={col.name: col.synonyms[0]}), "healed")


def recased(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect(o.csv(rename={h: h.upper() if h != h.upper() else h.lower() for h in o.clean.header}), "healed")


def reordered(o: Out, rng: random.Random) -> dict[str, Any] | str:
    if len(o.clean.header) < 2:
        return "one column: nothing to reorder"
    return o.expect(o.csv(order=o.clean.header[::-1]), "healed")


def renamed_reordered_recased(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.synonym
    if col is None:
        return "no contract column has synonyms"
    rename = {h: h.title().replace("_", " ") for h in o.clean.header} | {col.name: col.synonyms[0].upper()}
    return o.expect(o.csv(order=o.clean.header[::-1], rename=rename), "healed")


def renamed_similar(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    if col is None:
        return "no numeric column"
    return o.expect(o.csv(rename={col.name: f"{col.name}_eur"}), "healed")


def renamed_by_profile(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    if col is None:
        return "no numeric column"
    return o.expect(o.csv(rename={col.name: "value"}), "healed", prior=[o.prior()])


def new_column(o: Out, rng: random.Random) -> dict[str, Any] | str:
    rows = rows_of(o)
    for r in rows:
        r["channel"] = rng.choice(["web", "store"])
    if o.clean.contract.extra_columns == "keep":
        o.clean.extras = ["channel"]
    return o.expect(o.csv(rows=rows, order=[*o.clean.header, "channel"]), "healed", rows)


def missing_required(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = next((c for c in o.clean.contract.columns if c.required and c.name not in o.clean.contract.key), None)
    if col is None:
        return "no required non-key column"
    return o.held(o.csv(order=[h for h in o.clean.header if h != col.name]), "schema_mismatch")


def missing_optional(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = next((c for c in o.clean.contract.columns if not c.required), None)
    if col is None:
        return "no optional column"
    rows = [{**r, col.name: None} for r in o.clean.rows]
    return o.expect(o.csv(order=[h for h in o.clean.header if h != col.name]), "success", rows)


def ambiguous_mapping(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    if col is None:
        return "no numeric column"
    names = list(col.synonyms[:2]) if len(col.synonyms) >= 2 else [f"{col.name}_eur", f"{col.name}_usd"]
    rows = [{**r, names[0]: r[col.name], names[1]: r[col.name]} for r in o.clean.rows]
    order = [h for h in o.clean.header if h != col.name] + names
    return o.held(o.csv(rows=rows, order=order), "schema_mismatch")


# --- row-level faults --------------------------------------------------------------------------

def truncated_last_line(o: Out, rng: random.Random) -> dict[str, Any] | str:
    header = o.clean.header
    if len(header) < 2:
        return "one column: a cut line cannot be told apart"
    rows = rows_of(o)
    last = rows[-1]
    cut = {h: last[h] for h in header[:-1]}
    kept = cut[header[-2]] or ""
    cut[header[-2]] = kept[: max(1, len(kept) // 2)]
    rows[-1] = {**{h: None for h in header}, **cut}
    text = o.text(rows[:-1]) + o.text([cut | {header[-1]: ""}], header=False, order=header[:-1])
    return o.expect(o.file("delivery.csv", text.rstrip("\n")), "partial_failure", rows,
                    errors={len(rows): "truncated_line"})


def wrong_field_count(o: Out, rng: random.Random) -> dict[str, Any] | str:
    n = len(o.clean.rows) // 2
    text = o.text().splitlines(keepends=True)
    text[n + 1] = text[n + 1].rstrip("\n") + ",oops\n"
    return o.expect(o.file("delivery.csv", "".join(text)), "partial_failure", errors={n + 1: "wrong_field_count"})


def exact_duplicates(o: Out, rng: random.Random) -> dict[str, Any] | str:
    rows = rows_of(o) + [dict(r) for r in o.clean.rows[: max(1, len(o.clean.rows) // 10)]]
    return o.expect(o.csv(rows=rows), "healed", rows)


def conflicting_keys(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    if o.clean.key is None or col is None:
        return "no key or no numeric column"
    rows = rows_of(o)
    rows.append({**rows[0], col.name: str(Decimal(rows[0][col.name]) + 1)})
    return o.expect(o.csv(rows=rows), "partial_failure", rows)


def nulls(o: Out, rng: random.Random) -> dict[str, Any] | str:
    critical = [c.name for c in o.clean.contract.critical if c.name not in o.clean.contract.key]
    if not critical:
        return "no critical column"
    rows = rows_of(o)
    for i in range(3, len(rows), max(4, len(rows) // 4)):
        rows[i][critical[i % len(critical)]] = ""
    return o.expect(o.csv(rows=rows), "partial_failure", rows)


def out_of_range(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = next((c for c in o.clean.contract.columns if c.max is not None), None)
    if col is None:
        return "no column with a max"
    rows = rows_of(o)
    for i in (4, 11):
        if i < len(rows):
            rows[i][col.name] = str(Decimal(str(col.max)) * 10)
    return o.expect(o.csv(rows=rows), "partial_failure", rows)


def unparseable(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = next((c for c in o.clean.contract.columns if c.type != "text"), None)
    if col is None:
        return "no typed column"
    rows = rows_of(o)
    rows[min(6, len(rows) - 1)][col.name] = "abc"
    return o.expect(o.csv(rows=rows), "partial_failure", rows)


def volume_anomaly(o: Out, rng: random.Random) -> dict[str, Any] | str:
    if len(o.clean.rows) < 10:
        return "too few rows to halve"
    rows = o.clean.rows[: len(o.clean.rows) // 2]
    return o.expect(o.csv(rows=rows), "partial_failure", rows, failure_class="volume_anomaly", prior=[o.prior()])


# --- deliveries as a whole ---------------------------------------------------------------------

def empty_file(o: Out, rng: random.Random) -> dict[str, Any] | str:
    # retried, then the fallback is tried last: with none configured, that is what the alert names
    return o.held(o.file("delivery.csv", b""), "source_missing", read=0)


def header_only(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.held(o.file("delivery.csv", o.text([])), "source_too_small", read=0)


def missing_with_fallback(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.expect("delivery.csv", "healed", fallback=o.csv("fallback/delivery.csv"))


def missing_source(o: Out, rng: random.Random) -> dict[str, Any] | str:
    return o.held("delivery.csv", "source_missing", read=0)


def resent(o: Out, rng: random.Random) -> dict[str, Any] | str:
    path = o.csv()
    return o.held(path, "duplicate_delivery", read=0, prior=[path])


def corrections(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.amount
    if o.clean.key is None or col is None:
        return "no key or no numeric column"
    prior = o.prior(shift_keys=False)
    rows = [{**r, col.name: str(Decimal(r[col.name]) + 1)} if i % 5 == 0 else dict(r)
            for i, r in enumerate(o.clean.rows)]
    return o.expect(o.csv(rows=rows), "healed", rows, prior=[prior])


def _thirds(o: Out) -> list[list[Row]]:
    rows, k = o.clean.rows, max(1, len(o.clean.rows) // 3)
    return [rows[:k], rows[k:2 * k], rows[2 * k:]]


def multipart(o: Out, rng: random.Random) -> dict[str, Any] | str:
    a, b, c = _thirds(o)
    o.csv("delivery/part-1.csv", a)
    o.csv("delivery/part-2.csv.gz", b, compress="gzip")
    o.csv("delivery/part-3.csv", c)
    o.file("delivery/_SUCCESS", b"")
    return o.expect("delivery", "healed")


def multipart_different_headers(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = o.clean.synonym
    if col is None:
        return "no contract column has synonyms"
    a, b, c = _thirds(o)
    o.csv("delivery/part-1.csv", a)
    rename = {h: h.upper() for h in o.clean.header} | {col.name: col.synonyms[0].upper()}
    o.csv("delivery/part-2.csv", b, order=o.clean.header[::-1], rename=rename)
    o.csv("delivery/part-3.csv", c, delimiter=";")
    return o.expect("delivery", "healed")


def multipart_missing_required(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col = next((c for c in o.clean.contract.columns if c.required and c.name not in o.clean.contract.key), None)
    if col is None:
        return "no required non-key column"
    a, b, c = _thirds(o)
    o.csv("delivery/part-1.csv", a)
    o.csv("delivery/part-2.csv", b, order=[h for h in o.clean.header if h != col.name])
    o.csv("delivery/part-3.csv", c)
    return o.held("delivery", "schema_mismatch")


def drifted_format(o: Out, rng: random.Random) -> dict[str, Any] | str:
    col, rows = o.clean.amount, accented(o)
    if col is None or rows is None:
        return "no decimal or text column"
    fmt = {col.name: lambda v: money(v, thousands=".", decimal=",")}
    data = gzip.compress(o.text(rows, delimiter=";", fmt=fmt).encode("latin-1"))
    return o.expect(o.file("delivery.csv.gz", data), "healed", rows)


#: (name, what goes wrong, the function that writes it and states the outcome)
FAULTS: tuple[tuple[str, str, Fault], ...] = (
    ("clean", "nothing: the clean delivery", clean),
    ("renamed_synonym", "a column renamed to one of its contract synonyms", renamed_synonym),
    ("recased", "every header re-cased", recased),
    ("reordered", "columns in reverse order", reordered),
    ("renamed_reordered_recased", "renamed, reordered and re-cased at once", renamed_reordered_recased),
    ("renamed_similar", "a column renamed to a similar name (amount_eur)", renamed_similar),
    ("renamed_by_profile", "a column renamed to an unrelated name; its values match history", renamed_by_profile),
    ("new_column", "a new column the contract does not name", new_column),
    ("missing_required", "a required column is missing", missing_required),
    ("missing_optional", "an optional column is missing", missing_optional),
    ("ambiguous_mapping", "two columns could be the missing one", ambiguous_mapping),
    ("bom", "UTF-8 with a byte order mark", bom),
    ("utf16", "UTF-16 with a BOM", utf16),
    ("latin1", "latin-1 text", latin1),
    ("crlf", "CRLF line ends", crlf),
    ("cr", "CR line ends (old Mac)", cr),
    ("semicolon", "semicolon-delimited", delimited(";")),
    ("tab", "tab-delimited", delimited("\t")),
    ("pipe", "pipe-delimited", delimited("|")),
    ("sep_line", "an Excel sep=; line first", sep_line),
    ("decimal_comma", "decimal comma with dot thousands, semicolon-delimited",
     drifted_amount(lambda v: money(v, thousands=".", decimal=","), ";")),
    ("currency_us", "US currency strings ($1,234.50)", drifted_amount(lambda v: "$" + money(v, thousands=",",
                                                                                                decimal="."))),
    ("currency_eu", "European currency strings (1 234,50 €)",
     drifted_amount(lambda v: money(v, thousands=" ", decimal=",") + " €", ";")),
    ("scientific", "numbers in scientific notation", drifted_amount(lambda v: f"{Decimal(v):E}", status="success")),
    ("dates_mdy", "dates as MM/DD/YYYY", drifted_dates("%m/%d/%Y", infer=True)),
    ("dates_dmy", "dates as DD/MM/YYYY", drifted_dates("%d/%m/%Y", infer=True)),
    ("dates_dot", "dates as DD.MM.YYYY", drifted_dates("%d.%m.%Y", infer=False)),
    ("dates_compact", "dates as YYYYMMDD", drifted_dates("%Y%m%d", infer=False)),
    ("ambiguous_dates", "DD/MM/YYYY dates whose days are all 12 or less", ambiguous_dates),
    ("cents", "amounts as whole cents, after a delivery in units", cents),
    ("null_tokens", "null tokens (N/A, NULL, -, None, null, NA)", null_tokens),
    ("gzip", "gzip-compressed, named .csv.gz", gzip_),
    ("zstd", "zstd-compressed, named .dat", zstd),
    ("jsonl", "JSON Lines named .csv", jsonl),
    ("json_array", "a JSON array of objects", json_array),
    ("parquet", "Parquet", parquet),
    ("no_header", "no header row", no_header),
    ("footer", "a TOTAL footer row", footer),
    ("blank_lines", "trailing blank lines", blank_lines),
    ("truncated_last_line", "the last line cut off", truncated_last_line),
    ("wrong_field_count", "a row with an extra field", wrong_field_count),
    ("exact_duplicates", "exact duplicate rows", exact_duplicates),
    ("conflicting_keys", "one key with two different contents", conflicting_keys),
    ("nulls", "empty critical values", nulls),
    ("out_of_range", "values above the contract maximum", out_of_range),
    ("unparseable", "a value that is not of its type", unparseable),
    ("volume_anomaly", "half the usual rows", volume_anomaly),
    ("empty_file", "a zero-byte file", empty_file),
    ("header_only", "a header and no rows", header_only),
    ("missing_with_fallback", "no file; the fallback location has it", missing_with_fallback),
    ("missing_source", "no file and no fallback", missing_source),
    ("resent", "yesterday's file delivered again", resent),
    ("corrections", "keys loaded yesterday, some with new amounts", corrections),
    ("multipart", "a folder of parts (one gzip) with a _SUCCESS marker", multipart),
    ("multipart_different_headers", "parts whose headers differ (renamed, re-cased, reordered, ;)",
     multipart_different_headers),
    ("multipart_missing_required", "one part lacks a required column", multipart_missing_required),
    ("drifted_format", "semicolon, decimal comma, latin-1, gzip at once", drifted_format),
)
