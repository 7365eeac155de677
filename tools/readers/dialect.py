"""CSV dialect sniffing on bounded text samples: delimiter, quoting, line ends, header, footers.

One small record splitter reads both the head sample (to choose the dialect) and the tail
sample (to find footer lines and a cut last line), so Python and DuckDB agree on what a
record is: RFC 4180 quoting, lenient the way DuckDB's ``strict_mode=false`` is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from tools.readers.probe import NOT_TABULAR
from tools.readers.result import ReadNote
from tools.verdict import InputError

__all__ = [
    "CANDIDATES",
    "RESERVED",
    "Dialect",
    "Record",
    "Tail",
    "footer_kind",
    "scan_tail",
    "sniff_dialect",
    "split_records",
    "unique_names",
]

CANDIDATES = (",", ";", "\t", "|")
RESERVED = ("_row", "_error")
_NEWLINE_NOTE = {"\r\n": "crlf", "\r": "cr"}
_DELIM_NAME = {"\t": "tab"}
_SEP_LINE = re.compile(r"sep=(.)[ \t]*(?:\r\n|\r|\n|$)", re.IGNORECASE)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")
_BREAK = re.compile(r"\r\n|\r|\n")
_NUM = re.compile(r"[-+(]?\s*[$€£¥]?\s*[-+]?\d[\d,.' ]*(?:[eE][-+]?\d+)?\s*%?\)?")
_DATE = re.compile(
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_FOOTER_WORD = re.compile(r"(?:grand\s+|sub)?(?:total|totals|sum|count|end|eof|trailer|footer)\b", re.I)
_ROW_COUNT = re.compile(r"(?:rows?|records?|lines?|row count|record count)\s*[:=]\s*\d", re.I)
_COMMENT = re.compile(r"(?:#|--|//)")
_LETTER = re.compile(r"[^\W\d_]")
_PROSE_WORDS = 8
_BLANK = " \t\x1a"  # \x1a: the DOS end-of-file mark some exports still append


@dataclass(frozen=True)
class Record:
    """One CSV record as Python splits it, with where it sits in the sample."""

    fields: tuple[str, ...]
    start: int
    end: int
    newline: str  # "\n", "\r\n", "\r", or "" when the text ended first
    open_quote: bool = False  # the text ended inside a quoted field
    quoted_newline: bool = False
    irregular: bool = False  # a stray quote, or text after a closing quote (not RFC 4180)

    @property
    def blank(self) -> bool:
        """Nothing but a line break: DuckDB skips such lines, they are not rows."""
        return self.end - self.start == len(self.newline)


@dataclass(frozen=True)
class Dialect:
    """How DuckDB should read one CSV file (sniffed from the head sample)."""

    delimiter: str
    quote: str
    escape: str
    newline: str
    skip_lines: int  # physical lines before the header (a ``sep=`` line, blank lines)
    header: bool
    names: tuple[str, ...]  # as delivered; ``column0..`` without a header; not yet de-duplicated
    quoted_newlines: bool
    data_start: int  # offset in the head text where the first data record begins
    notes: tuple[ReadNote, ...]

    @property
    def width(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Tail:
    """What ends the file: rows that are not data, and a cut last record."""

    drop: tuple[Record, ...] = ()  # trailing records DuckDB reads as rows but that are not data
    footers: int = 0  # of which footer lines
    blank_rows: int = 0  # of which whitespace- or delimiter-only lines
    empty_lines: int = 0  # trailing empty lines (DuckDB skips these itself)
    truncated: Record | None = None
    quoted_newlines: bool = False  # anywhere in the tail sample


def split_records(
    text: str, delim: str, *, quote: str = '"', escape: str = '"', limit: int | None = None
) -> list[Record]:
    """Split ``text`` into records; a quote opens quoting only at the start of a field."""
    outside = re.compile("[" + re.escape(delim + quote) + "\r\n]")
    inside = re.compile(re.escape(quote) if escape == quote else "[" + re.escape(quote + escape) + "]")
    out: list[Record] = []
    pos, n = 0, len(text)
    while pos < n and (limit is None or len(out) < limit):
        start, fstart = pos, pos
        fields: list[str] = []
        buf: list[str] = []
        open_q = qnl = odd = False
        newline = ""
        while True:
            m = outside.search(text, pos)
            if m is None:
                buf.append(text[pos:])
                pos = n
                break
            j = m.start()
            c = text[j]
            buf.append(text[pos:j])
            if c == delim:
                fields.append("".join(buf))
                buf, pos, fstart = [], j + 1, j + 1
            elif c == quote and j != fstart:
                buf.append(c)  # a stray quote inside an unquoted field is kept
                pos, odd = j + 1, True
            elif c == quote:
                k = j + 1
                while True:
                    q = inside.search(text, k)
                    if q is None:
                        buf.append(text[k:])
                        qnl = qnl or "\n" in text[k:] or "\r" in text[k:]
                        pos, open_q = n, True
                        break
                    seg = text[k : q.start()]
                    qnl = qnl or "\n" in seg or "\r" in seg
                    buf.append(seg)
                    at = q.start()
                    if text[at] == escape and escape != quote:
                        nxt = text[at + 1 : at + 2]
                        buf.append(nxt if nxt in (quote, escape) else text[at : at + 2])
                        k = at + 2
                    elif escape == quote and text.startswith(quote, at + 1):
                        buf.append(quote)
                        k = at + 2
                    else:
                        pos = at + 1
                        break
                if open_q:
                    break
                fstart = -1  # after the closing quote, the rest of the field is literal
                odd = odd or text[pos : pos + 1] not in (delim, "\r", "\n", "")
            else:
                newline = "\r\n" if text.startswith("\r\n", j) else c
                pos = j + len(newline)
                break
        fields.append("".join(buf))
        out.append(Record(tuple(fields), start, pos, newline, open_q, qnl, odd))
    return out


def _kind(value: str) -> str:
    s = value.strip()
    if not s:
        return "empty"
    if _DATE.fullmatch(s):
        return "date"
    if _NUM.fullmatch(s):
        return "num"
    return "text"


def _norm(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.casefold())


def _same_shape(a: Sequence[str], b: Sequence[str]) -> bool:
    if len(a) != len(b):
        return False
    pairs = [(_kind(x), _kind(y)) for x, y in zip(a, b, strict=True)]
    return all(x == y for x, y in pairs if "empty" not in (x, y))


def _has_header(first: Sequence[str], second: Sequence[str] | None, expected: Sequence[str] | None) -> bool:
    kinds = [_kind(v) for v in first]
    valuelike = [k for k in kinds if k in ("num", "date")]
    if expected:
        wanted = {_norm(c) for c in expected} - {""}
        if any(_norm(v) in wanted for v in first):
            return True
        if valuelike:
            return False
        return not (second is not None and _same_shape(first, second))
    filled = [k for k in kinds if k != "empty"]
    if filled and len(valuelike) == len(filled):
        return False
    return not (valuelike and second is not None and _same_shape(first, second))


def _leading(text: str) -> tuple[int, int, str | None, list[ReadNote]]:
    """Skip a leading Excel ``sep=`` line and blank lines: (offset, lines, forced delimiter, notes)."""
    notes: list[ReadNote] = []
    pos = lines = 0
    forced = None
    m = _SEP_LINE.match(text)
    if m:
        forced, pos, lines = m.group(1), m.end(), 1
        notes.append(ReadNote("skip_sep_line", 1, f"Excel 'sep={forced}' line"))
    blank = 0
    while pos < len(text):
        line = _LINE.match(text, pos)
        if line is None or line.end() == pos or line.group(0).strip():
            break
        pos, lines, blank = line.end(), lines + 1, blank + 1
    if blank:
        notes.append(ReadNote("skip_blank", blank, "leading blank lines"))
    return pos, lines, forced, notes


def _score(text: str, delim: str, escape: str, complete: bool) -> tuple[tuple, list[Record]]:
    recs = split_records(text, delim, escape=escape, limit=501)
    if not complete and len(recs) > 1:
        recs = recs[:-1]  # the sample may have cut the last record
    recs = [r for r in recs if not r.blank]
    if not recs:
        return (False, 0.0, 0, 0, False, 0), []
    width = len(recs[0].fields)
    data = recs[1:]
    consistency = sum(len(r.fields) == width for r in data) / len(data) if data else 1.0
    irregular = sum(r.irregular for r in recs)
    order = -CANDIDATES.index(delim) if delim in CANDIDATES else 0
    return (width > 1, round(consistency, 3), -irregular, width, escape == '"', order), recs


def _words(value: str) -> int:
    return len(value.split())


def sniff_dialect(head: str, *, complete: bool, expected_columns: Sequence[str] | None = None) -> Dialect:
    """Choose delimiter, escape, line end and header from the head sample (BOM removed)."""
    offset, skip_lines, forced, notes = _leading(head)
    body = head[offset:]
    if not body.strip():
        raise InputError("file has no data (only blank lines)")
    escapes = ['"', "\\"] if '\\"' in body else ['"']
    combos = [(d, e) for d in ([forced] if forced else CANDIDATES) for e in escapes]
    (key, recs), delim, escape = max(((_score(body, d, e, complete), d, e) for d, e in combos), key=lambda t: t[0][0])
    if not recs:
        raise InputError("file has no data (only blank lines)")
    first, data = recs[0], recs[1:]
    width = len(first.fields)
    counts = Counter(len(r.fields) for r in data)
    mode, mode_n = counts.most_common(1)[0] if counts else (width, 0)
    long_field = any(_words(f) >= _PROSE_WORDS for f in first.fields)
    if (width == 1 or not data) and long_field:
        raise InputError(f"{NOT_TABULAR}: looks like prose, not a table")
    if width == 1 and data and sum(_words(r.fields[0]) for r in recs) / len(recs) >= 6:
        raise InputError(f"{NOT_TABULAR}: looks like prose, not a table")
    if width > 1 and len(data) >= 3 and key[1] < 0.5 and mode_n < 0.5 * len(data):
        spread = ", ".join(f"{n} fields x{c}" for n, c in counts.most_common(3))
        raise InputError(f"{NOT_TABULAR}: field counts vary from line to line ({spread})")
    newline = first.newline or "\n"
    if newline in _NEWLINE_NOTE:
        notes.append(ReadNote(_NEWLINE_NOTE[newline]))
    if delim != ",":
        notes.append(ReadNote(f"delimiter:{_DELIM_NAME.get(delim, delim)}"))
    if escape == "\\":
        notes.append(ReadNote("escape:backslash", 0, 'quotes inside quoted fields are escaped as \\"'))
    header = _has_header(first.fields, data[0].fields if data else None, expected_columns)
    names = list(first.fields) if header else [f"column{i}" for i in range(width)]
    if not header:
        notes.append(ReadNote("no_header", 0, f"first line is data; columns named column0..column{width - 1}"))
    if data and mode != width and mode_n >= 0.8 * len(data):
        if mode < width and header and not any(n.strip() for n in names[mode:]):
            names = names[:mode]
            notes.append(ReadNote("empty_header", 0, f"dropped {width - mode} trailing empty header field(s)"))
        elif mode > width:
            names += [f"column{i}" for i in range(width, mode)]
            notes.append(ReadNote("unnamed_columns", 0, f"data lines have {mode} fields, the header {width}"))
    return Dialect(
        delimiter=delim,
        quote='"',
        escape=escape,
        newline=newline,
        skip_lines=skip_lines,
        header=header,
        names=tuple(names),
        quoted_newlines=any(r.quoted_newline for r in recs),
        data_start=offset + (first.end if header else first.start),
        notes=tuple(notes),
    )


def footer_kind(record: Record, width: int) -> str | None:
    """``"strong"`` for a report line (``TOTAL,,123``, ``Total rows: 1000``, ``# end``),
    ``"weak"`` for a lone text line where a row of ``width`` fields should be, else None.
    """
    texts = [f.strip() for f in record.fields]
    first = next((t for t in texts if t), "")
    if _FOOTER_WORD.match(first) or _ROW_COUNT.match(first):
        return "strong"
    if len(texts) != width and _COMMENT.match(texts[0]):
        return "strong"
    return "weak" if width > 1 and len(texts) == 1 and _LETTER.search(first) else None


def _align(text: str, dialect: Dialect) -> list[Record]:
    """Records of a tail sample that starts mid-file: pick the line start that parses best."""
    best: tuple[float, list[Record]] = (-1.0, [])
    for m in islice(_BREAK.finditer(text), 8):
        recs = split_records(text[m.end() :], dialect.delimiter, quote=dialect.quote, escape=dialect.escape)
        body = [r for r in recs[:-3] if not r.blank] or [r for r in recs if not r.blank]
        score = sum(len(r.fields) == dialect.width for r in body) / max(1, len(body))
        if score > best[0]:
            best = (score, recs)
        if score == 1.0:
            break
    return best[1]


def scan_tail(text: str, dialect: Dialect, *, from_data_start: bool) -> Tail:
    """Walk back from the end of ``text``: trailing blank lines, footers, a cut last record.

    ``from_data_start`` says ``text`` begins exactly at the first data record (a file that
    fits in the head sample); otherwise it is the last 64 KiB and is aligned first.
    """
    if from_data_start:
        recs = split_records(text, dialect.delimiter, quote=dialect.quote, escape=dialect.escape)
    else:
        recs = _align(text, dialect)
    drop: list[Record] = []
    footers = blank_rows = empty = 0
    truncated = None
    for i in range(len(recs) - 1, max(-1, len(recs) - 52), -1):
        r = recs[i]
        is_last = i == len(recs) - 1
        if r.blank:
            empty += 1
        elif is_last and r.open_quote:
            truncated = r
            break
        elif not any(f.strip(_BLANK) for f in r.fields):
            blank_rows += 1
            drop.append(r)
        elif (kind := footer_kind(r, dialect.width)) == "strong":
            footers += 1
            drop.append(r)
        elif is_last and not r.newline and len(r.fields) < dialect.width:
            truncated = r  # a cut line wins over a weak footer: it is kept and quarantined
            break
        elif kind == "weak":
            footers += 1
            drop.append(r)
        else:
            break
    quoted = any(r.quoted_newline for r in recs)
    return Tail(tuple(reversed(drop)), footers, blank_rows, empty, truncated, quoted)


def unique_names(raw: Sequence[str]) -> tuple[tuple[str, ...], tuple[ReadNote, ...]]:
    """Give empty names ``column<i>`` and duplicates (case-insensitive, as DuckDB) a suffix."""
    taken = set(RESERVED)
    out: list[str] = []
    empty: list[str] = []
    renamed: list[str] = []
    for i, name in enumerate(raw):
        base = name if name.strip() else f"column{i}"
        if base != name:
            empty.append(base)
        cand, k = base, 2
        while cand.lower() in taken:
            cand, k = f"{base}_{k}", k + 1
        if cand != base:
            renamed.append(f"{name!r} -> {cand!r}")
        taken.add(cand.lower())
        out.append(cand)
    notes = []
    if empty:
        notes.append(ReadNote("empty_header", 0, "unnamed columns named " + ", ".join(empty)))
    if renamed:
        notes.append(ReadNote("duplicate_header", 0, "renamed " + ", ".join(renamed)))
    return tuple(out), tuple(notes)
