"""tools.readers: every detection on tiny real files, read by a real DuckDB."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
from pathlib import Path

import duckdb
import pytest
import zstandard

from tools.readers import Delivery, DeliveryPart, ReadNote, read_delivery
from tools.verdict import InputError

SALES = "sale_id,date,amount,product_id\n1,2024-01-01,10.50,P1\n2,2024-01-02,20.00,P2\n3,2024-01-03,30.25,P3\n"
SALES_ROWS = [
    ("1", "2024-01-01", "10.50", "P1"),
    ("2", "2024-01-02", "20.00", "P2"),
    ("3", "2024-01-03", "30.25", "P3"),
]
EXPECTED = ["sale_id", "date", "amount", "product_id"]


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(tmp_path / "test.duckdb"))
    yield c
    c.close()


def write(tmp_path: Path, name: str, data: str | bytes, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return p


def rows(con: duckdb.DuckDBPyConnection, d: Delivery, *, meta: bool = False) -> list[tuple]:
    cols = [f'"{c.replace(chr(34), chr(34) * 2)}"' for c in d.columns]
    if meta:
        cols += ["_row", "_error"]
    return con.execute(f'SELECT {", ".join(cols)} FROM "{d.table}" ORDER BY _row').fetchall()


def rules(d: Delivery) -> set[str]:
    return {n.rule for n in d.notes}


def note(d: Delivery, rule: str) -> ReadNote:
    found = [n for n in d.notes if n.rule == rule]
    assert found, f"no {rule!r} note in {d.notes}"
    return found[0]


# --- plain CSV, table shape, values kept as delivered ---------------------------------------


def test_plain_csv_reads_all_varchar_with_row_and_error(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "sales.csv", SALES))
    part = DeliveryPart("sales.csv", 3, tuple(EXPECTED))
    assert d == Delivery("delivery", tuple(EXPECTED), 3, "csv", "utf-8", ",", True, (), 0, (part,))
    assert rows(con, d) == SALES_ROWS
    assert rows(con, d, meta=True)[-1][-2:] == (3, None)
    types = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'delivery'").fetchall()
    assert types == [(c, "VARCHAR") for c in EXPECTED] + [("_row", "BIGINT"), ("_error", "VARCHAR")]
    assert con.execute("SELECT temporary FROM duckdb_tables() WHERE table_name = 'delivery'").fetchone() == (True,)


def test_values_are_not_trimmed_or_nulled(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "v.csv", 'a,b,c,d\n  x ,NULL,N/A,""\n,,"",\n1,2,3,4\n'))
    assert rows(con, d) == [("  x ", "NULL", "N/A", ""), ("", "", "", ""), ("1", "2", "3", "4")]


def test_persistent_table_and_odd_table_name(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "s.csv", SALES), table='my "odd" table', temp=False)
    assert d.table == 'my "odd" table'
    assert con.execute('SELECT count(*) FROM "my ""odd"" table"').fetchone() == (3,)
    tables = con.execute("SELECT table_name, temporary FROM duckdb_tables()").fetchall()
    assert tables == [('my "odd" table', False)]


def test_hostile_and_duplicate_header_names_are_kept_and_made_unique(con, tmp_path):
    header = '"amount""; DROP TABLE sales; --",Amount,,amount,_row,id\n'
    d = read_delivery(con, write(tmp_path, "h.csv", header + "1,2,3,4,5,6\n"))
    assert d.columns == ('amount"; DROP TABLE sales; --', "Amount", "column2", "amount_2", "_row_2", "id")
    assert rows(con, d, meta=True) == [("1", "2", "3", "4", "5", "6", 1, None)]
    assert {"empty_header", "duplicate_header"} <= rules(d)
    assert "'amount' -> 'amount_2'" in note(d, "duplicate_header").detail


# --- encodings ------------------------------------------------------------------------------


def test_utf8_bom_is_stripped_and_noted(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "bom.csv", b"\xef\xbb\xbf" + SALES.encode()))
    assert d.columns[0] == "sale_id"
    assert "utf8_bom" in rules(d) and d.encoding == "utf-8"
    assert rows(con, d) == SALES_ROWS


@pytest.mark.parametrize(
    ("encoding", "text", "label"),
    [("latin-1", "café crème", "latin-1"), ("cp1252", "5 € – “quoted”", "cp1252")],
)
def test_single_byte_encodings_are_transcoded(con, tmp_path, encoding, text, label):
    d = read_delivery(con, write(tmp_path, "x.csv", f"id,name\n1,{text}\n", encoding))
    assert rows(con, d) == [("1", text)]
    assert d.encoding == label and f"encoding:{label}" in rules(d)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_and_without_bom(con, tmp_path, codec):
    d = read_delivery(con, write(tmp_path, "u16.csv", "id,name\n1,Zoë\n2,東京\n", codec))
    assert d.encoding == "utf-16" and "encoding:utf-16" in rules(d)
    assert d.columns == ("id", "name") and rows(con, d) == [("1", "Zoë"), ("2", "東京")]


def test_latin1_byte_after_the_sample_is_healed(con, tmp_path):
    body = "".join(f"{i},plain ascii row {i}\n" for i in range(6000))  # > 64 KiB of ASCII
    data = b"id,name\n" + body.encode() + "6000,Gruß\n".encode("latin-1")
    d = read_delivery(con, write(tmp_path, "late.csv", data))
    assert d.rows == 6001 and rows(con, d)[-1] == ("6000", "Gruß")
    assert "encoding:utf-8+cp1252" in rules(d)


# --- line endings, delimiters, quoting --------------------------------------------------------


@pytest.mark.parametrize(("newline", "rule"), [("\r\n", "crlf"), ("\r", "cr"), ("\n", None)])
def test_line_endings(con, tmp_path, newline, rule):
    d = read_delivery(con, write(tmp_path, "nl.csv", SALES.replace("\n", newline)))
    assert rows(con, d) == SALES_ROWS
    assert (rule in rules(d)) if rule else not ({"crlf", "cr"} & rules(d))


@pytest.mark.parametrize(("delim", "rule"), [(";", "delimiter:;"), ("\t", "delimiter:tab"), ("|", "delimiter:|")])
def test_delimiters_are_sniffed(con, tmp_path, delim, rule):
    d = read_delivery(con, write(tmp_path, "d.csv", SALES.replace(",", delim)))
    assert d.delimiter == delim and rule in rules(d)
    assert d.columns == tuple(EXPECTED) and rows(con, d) == SALES_ROWS


def test_semicolon_with_decimal_comma(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "eu.csv", "id;amount;note\n1;10,50;a\n2;3,00;b, c\n3;7;d\n"))
    assert d.delimiter == ";" and rows(con, d) == [("1", "10,50", "a"), ("2", "3,00", "b, c"), ("3", "7", "d")]


def test_quoted_delimiters_escaped_quotes_and_embedded_newlines(con, tmp_path):
    text = 'id,text,n\n1,"a, b",1\n2,"say ""hi""",2\n3,"line one\nline two",3\n4,"crlf\r\ninside",4\n'
    d = read_delivery(con, write(tmp_path, "q.csv", text))
    assert rows(con, d) == [
        ("1", "a, b", "1"),
        ("2", 'say "hi"', "2"),
        ("3", "line one\nline two", "3"),
        ("4", "crlf\r\ninside", "4"),
    ]


def test_backslash_escaped_quotes(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "bs.csv", 'id,text\n1,"say \\"hi\\""\n2,"plain"\n3,"x"\n'))
    assert rows(con, d) == [("1", 'say "hi"'), ("2", "plain"), ("3", "x")]
    assert "escape:backslash" in rules(d)


def test_quoted_newline_after_the_sample_reads_serially(con, tmp_path):
    body = "".join(f"{i},row {i}\n" for i in range(20000))
    d = read_delivery(con, write(tmp_path, "late_nl.csv", "id,text\n" + body + '20000,"two\nlines"\n'))
    assert d.rows == 20001 and rows(con, d)[-1] == ("20000", "two\nlines")


def test_single_column_csv_is_legal(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "one.csv", "name\nDoe, John\nRoe, Jane\nPoe\n"))
    assert d.columns == ("name",) and rows(con, d) == [("Doe, John",), ("Roe, Jane",), ("Poe",)]


# --- compression and containers, sniffed by content ------------------------------------------


def test_gzip_by_content_not_name(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "sales.txt", gzip.compress(SALES.encode())))
    assert "gzip" in rules(d) and rows(con, d) == SALES_ROWS


def test_zstd_latin1_is_decompressed_and_transcoded(con, tmp_path):
    raw = zstandard.ZstdCompressor().compress("id,name\n1,café\n".encode("latin-1"))
    d = read_delivery(con, write(tmp_path, "sales.csv", raw))
    assert {"zstd", "encoding:latin-1"} <= rules(d) and rows(con, d) == [("1", "café")]


def test_cut_gzip_stream_keeps_what_it_holds_and_flags_the_cut_line(con, tmp_path):
    body = "".join(f"{i},2024-01-01,{i}.00,P{i}\n" for i in range(1, 3000))
    full = gzip.compress(("sale_id,date,amount,product_id\n" + body).encode())
    d = read_delivery(con, write(tmp_path, "cut.csv.gz", full[: len(full) * 2 // 3]))
    assert "truncated_stream" in rules(d)
    assert 0 < d.rows < 2999
    assert rows(con, d, meta=True)[-1][-1] == "truncated_line"
    assert con.execute("SELECT count(*) FROM delivery WHERE _error IS NOT NULL").fetchone() == (1,)


@pytest.mark.parametrize(
    ("name", "pack"),
    [
        ("bz2", bz2.compress),
        ("xz", lzma.compress),
        ("gzip", lambda b: gzip.compress(b[:40]) + gzip.compress(b[40:])),  # two members
    ],
)
def test_other_compressions_and_multi_member_gzip(con, tmp_path, name, pack):
    d = read_delivery(con, write(tmp_path, "s.dat", pack(SALES.encode())))
    assert name in rules(d) and rows(con, d) == SALES_ROWS


def test_cut_zstd_stream_is_noted(con, tmp_path):
    body = "".join(f"{i},2024-01-01,{i}.00,P{i}\n" for i in range(1, 20000))
    full = zstandard.ZstdCompressor().compress(("sale_id,date,amount,product_id\n" + body).encode())
    d = read_delivery(con, write(tmp_path, "cut.zst", full[: len(full) // 2]))
    assert {"zstd", "truncated_stream"} <= rules(d) and 0 < d.rows < 19999


def test_parquet_by_magic_is_cast_to_varchar(con, tmp_path):
    src = tmp_path / "sales.bin"
    con.execute(
        f"COPY (SELECT 1 AS sale_id, DATE '2024-01-01' AS date, 10.5::DOUBLE AS amount, NULL AS note "
        f"UNION ALL SELECT 2, DATE '2024-01-02', 20.0, 'x') TO '{src}' (FORMAT parquet)"
    )
    d = read_delivery(con, src)
    assert d.format == "parquet" and "parquet" in rules(d)
    assert rows(con, d, meta=True) == [
        ("1", "2024-01-01", "10.5", None, 1, None),
        ("2", "2024-01-02", "20.0", "x", 2, None),
    ]


def test_json_lines(con, tmp_path):
    text = (
        '{"id": 1, "amount": 10.5, "tags": ["a"], "note": null}\n'
        "\n"
        '{"id": 2, "amount": "20", "extra": {"k": true}}\n'
        "not json\n"
        '{"id": 3, "amo'
    )
    d = read_delivery(con, write(tmp_path, "d.csv", text))
    assert d.format == "jsonl" and "jsonl" in rules(d) and d.delimiter is None
    assert d.columns == ("id", "amount", "tags", "note", "extra")
    assert rows(con, d, meta=True) == [
        ("1", "10.5", '["a"]', None, None, 1, None),
        ("2", "20", None, None, '{"k":true}', 2, None),
        (None, None, None, None, None, 3, "invalid_json"),
        (None, None, None, None, None, 4, "truncated_line"),
    ]
    assert note(d, "invalid_json").rows == 1 and note(d, "truncated_last_line").rows == 1


def test_json_lines_same_keys_everywhere(con, tmp_path):
    # The fast path: every object has the same keys, so they come from one object, in its order;
    # a key repeated inside an object counts once. Blank and non-object lines still count right.
    text = '{"b": 1, "a": 2, "b": 9}\n   \n  {"b": 3, "a": 4, "b": 9}\n[1]\n"x"\n{"b": 5, "a": 6, "b": 9}\n'
    d = read_delivery(con, write(tmp_path, "d.jsonl", text))
    assert d.format == "jsonl" and d.columns == ("b", "a")
    assert [r[1:] for r in rows(con, d, meta=True)] == [
        ("2", 1, None), ("4", 2, None), (None, 3, "invalid_json"), (None, 4, "invalid_json"), ("6", 5, None),
    ]


def test_json_array_gzipped(con, tmp_path):
    raw = gzip.compress(b'[\n  {"id": 1, "name": "a"},\n  {"name": "b", "id": 2}\n]\n')
    d = read_delivery(con, write(tmp_path, "d.json.gz", raw))
    assert d.format == "json" and {"gzip", "json_array"} <= rules(d)
    assert d.columns == ("id", "name") and rows(con, d) == [("1", "a"), ("2", "b")]


# --- header detection --------------------------------------------------------------------------


def test_no_header_with_expected_columns(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "nh.csv", SALES.split("\n", 1)[1]), expected_columns=EXPECTED)
    assert not d.header and "no_header" in rules(d)
    assert d.columns == ("column0", "column1", "column2", "column3") and rows(con, d) == SALES_ROWS


def test_no_header_text_rows_with_expected_columns(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "nh.csv", "alpha,beta\ngamma,delta\n"), expected_columns=["name", "city"])
    assert not d.header and d.rows == 2


def test_renamed_header_is_still_a_header(con, tmp_path):
    text = "Sale ID,Sale Date,Amount EUR,Product\n1,2024-01-01,1.5,P1\n"
    d = read_delivery(con, write(tmp_path, "r.csv", text), expected_columns=EXPECTED)
    assert d.header and d.columns[0] == "Sale ID" and d.rows == 1


def test_numeric_first_line_without_expected_columns_is_data(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "nh.csv", "1,2024-01-01,10.5\n2,2024-01-02,11\n"))
    assert not d.header and d.rows == 2


def test_header_only_file_has_zero_rows(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "h.csv", "a,b,c\n"))
    assert d.columns == ("a", "b", "c") and d.rows == 0


# --- footers, blank lines, truncation, bad rows -------------------------------------------------


@pytest.mark.parametrize(
    "footer",
    ["TOTAL,,60.75,\n", "Total rows: 3\n", "# end\n", "Grand Total,,60.75,\n\n\n", ",,,\n\n", "SUM;;60.75;\n"],
)
def test_footer_and_trailing_blank_lines_are_skipped(con, tmp_path, footer):
    text = SALES + footer.replace(";", ",")
    d = read_delivery(con, write(tmp_path, "f.csv", text))
    assert rows(con, d) == SALES_ROWS and d.rows == 3
    assert d.skipped_lines == footer.count("\n")
    assert rules(d) & {"skip_footer", "skip_blank"}
    assert con.execute("SELECT count(*) FROM delivery WHERE _error IS NOT NULL").fetchone() == (0,)


def test_footer_after_a_large_file_is_found_in_the_tail(con, tmp_path):
    body = "".join(f"{i},2024-01-01,{i}.00,P{i}\n" for i in range(1, 5001))
    d = read_delivery(con, write(tmp_path, "big.csv", "sale_id,date,amount,product_id\n" + body + "TOTAL,,999,\n\n"))
    assert d.rows == 5000 and note(d, "skip_footer").rows == 1 and d.skipped_lines == 2
    assert rows(con, d, meta=True)[-1] == ("5000", "2024-01-01", "5000.00", "P5000", 5000, None)


def test_excel_sep_line_and_leading_blank_lines(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "x.csv", "sep=;\n\n" + SALES.replace(",", ";")))
    assert d.delimiter == ";" and rows(con, d) == SALES_ROWS
    assert {"skip_sep_line", "skip_blank"} <= rules(d) and d.skipped_lines == 2


def test_truncated_last_line_is_kept_and_flagged(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "t.csv", SALES + "4,2024-01-0"))
    assert d.rows == 4 and note(d, "truncated_last_line").rows == 1
    assert rows(con, d, meta=True)[-1] == ("4", "2024-01-0", None, None, 4, "truncated_line")


def test_unterminated_quote_at_eof_is_a_truncated_line(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "t.csv", SALES + '4,2024-01-04,1.00,"P4 with a long na'))
    assert rows(con, d, meta=True)[-1] == ("4", "2024-01-04", "1.00", "P4 with a long na", 4, "truncated_line")


def test_a_lone_text_line_at_the_end_is_a_footer_unless_it_was_cut(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "g.csv", SALES + "Generated by SAP on 2024-05-01\n"))
    assert d.rows == 3 and note(d, "skip_footer").rows == 1
    d = read_delivery(con, write(tmp_path, "g.csv", SALES + "Generated by"))
    assert d.rows == 4 and rows(con, d, meta=True)[-1][-1] == "truncated_line"


def test_dos_eof_mark_and_nul_inside_a_field(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "dos.csv", b"a,b\r\n1,x\x00y\r\n\x1a"))
    assert rows(con, d) == [("1", "x\x00y")] and "skip_blank" in rules(d)


def test_wrong_field_count_rows_are_kept_with_a_reason(con, tmp_path):
    text = "a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n"
    d = read_delivery(con, write(tmp_path, "w.csv", text))
    assert rows(con, d, meta=True) == [
        ("1", "2", "3", 1, None),
        ("4", "5", None, 2, "wrong_field_count"),
        ("6", "7", "8", 3, "wrong_field_count"),
        ("10", "11", "12", 4, None),
    ]
    assert note(d, "wrong_field_count").rows == 2


def test_row_numbers_skip_blank_lines_and_are_dense(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "b.csv", "a,b\n1,2\n\n3,4\n\n\n5,6\n"))
    assert [r[-2] for r in rows(con, d, meta=True)] == [1, 2, 3]


def test_trailing_delimiter_on_the_header_only_is_dropped(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "t.csv", "a,b,c,\n1,2,3\n4,5,6\n"))
    assert d.columns == ("a", "b", "c") and "empty_header" in rules(d)
    assert rows(con, d, meta=True) == [("1", "2", "3", 1, None), ("4", "5", "6", 2, None)]


def test_cut_utf16_gzip_stream_ending_mid_character(con, tmp_path):
    body = "".join(f"{i},Zoë {i}\n" for i in range(20000)).encode("utf-16")
    full = gzip.compress(b"\xff\xfe" + "id,name\n".encode("utf-16-le") + body[2:])
    d = read_delivery(con, write(tmp_path, "u.gz", full[: len(full) // 2]))
    assert {"gzip", "encoding:utf-16", "truncated_stream"} <= rules(d)
    assert rows(con, d)[0] == ("0", "Zoë 0")


def test_trailing_delimiter_on_data_lines_adds_an_unnamed_column(con, tmp_path):
    d = read_delivery(con, write(tmp_path, "t.csv", "a,b\n1,2,\n3,4,\n5,6,\n"))
    assert d.columns == ("a", "b", "column2") and "unnamed_columns" in rules(d)
    assert con.execute("SELECT count(*) FROM delivery WHERE _error IS NULL").fetchone() == (3,)


# --- multi-part deliveries ------------------------------------------------------------------------


def test_folder_with_parts_in_different_column_orders(con, tmp_path):
    folder = tmp_path / "delivery"
    (folder / "sub").mkdir(parents=True)
    write(folder, "part-1.csv", "sale_id,amount\n1,10\n2,20\nTOTAL,30\n")
    write(folder, "part-2.csv", "amount,sale_id,region\n30,3,EU\n")
    write(folder / "sub", "part-10.csv", gzip.compress(b"sale_id;amount\n4;40\n"))
    write(folder, "_SUCCESS", "")
    write(folder, "part-3.csv", "")
    d = read_delivery(con, folder)
    assert d.columns == ("sale_id", "amount", "region")
    assert rows(con, d, meta=True) == [
        ("1", "10", None, 1, None),
        ("2", "20", None, 2, None),
        ("3", "30", "EU", 3, None),
        ("4", "40", None, 4, None),
    ]
    assert {"skip_marker", "skip_empty_part", "multi_part", "skip_footer", "gzip"} <= rules(d)
    assert note(d, "skip_footer").detail.startswith("part-1.csv: ")


def test_glob_and_headerless_continuation_parts(con, tmp_path):
    write(tmp_path, "x_001.csv", SALES)
    write(tmp_path, "x_002.csv", "4,2024-01-04,40.00,P4\n5,2024-01-05,50.00,P5\n")
    write(tmp_path, "other.csv", "nothing,to,see\n")
    d = read_delivery(con, str(tmp_path / "x_*.csv"))
    assert d.columns == tuple(EXPECTED) and d.rows == 5
    assert rows(con, d)[-1] == ("5", "2024-01-05", "50.00", "P5")
    assert [r[-2] for r in rows(con, d, meta=True)] == [1, 2, 3, 4, 5]


def test_mixed_case_headers_across_parts_union_into_one_column(con, tmp_path):
    write(tmp_path, "a.csv", "id,Amount\n1,10\n")
    write(tmp_path, "b.csv", "id,amount\n2,20\n")
    d = read_delivery(con, str(tmp_path / "*.csv"))
    assert d.columns == ("id", "Amount") and rows(con, d) == [("1", "10"), ("2", "20")]
    assert "header_case_differs" in rules(d)


# --- bad input: one clear line, never a traceback ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"", "file is empty (0 bytes)"),
        ("png.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "looks binary"),
        ("rand.csv", random.Random(7).randbytes(4096), "looks binary"),
        ("x.xlsx", b"PK\x03\x04" + bytes(100), "looks binary (a ZIP archive"),
        ("blank.csv", b"\n\n  \n", "only blank lines"),
        (
            "prose.txt",
            b"It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith slipped in.\n",
            "looks like prose",
        ),
        ("obj.json", b'{\n  "a": 1\n}\n', "single JSON object"),
        ("arr.json", b'[{"a": 1}, {"a": ', "not valid JSON"),
        ("gz.csv", gzip.compress(b""), "file is empty"),
        ("nums.json", b"[1, 2, 3]", "the JSON holds no objects"),
        ("fake.parquet", b"PAR1sale_id,amount\n1,2\n", "not valid Parquet"),
    ],
)
def test_unreadable_files_raise_one_line_input_error(con, tmp_path, name, data, message):
    p = write(tmp_path, name, data)
    with pytest.raises(InputError) as err:
        read_delivery(con, p)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(p) in str(err.value)


def test_missing_paths(con, tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_delivery(con, tmp_path / "nope.csv")
    with pytest.raises(InputError, match="no file matches"):
        read_delivery(con, str(tmp_path / "nope-*.csv"))
    (tmp_path / "only_marker").mkdir()
    write(tmp_path / "only_marker", "_SUCCESS", "")
    with pytest.raises(InputError, match="no data files"):
        read_delivery(con, tmp_path / "only_marker")
    with pytest.raises(InputError, match="local files"):
        read_delivery(con, "s3://bucket/key.csv")


def test_failed_read_leaves_no_table_and_no_temp_files(con, tmp_path):
    write(tmp_path, "a.csv", gzip.compress(SALES.encode()))
    write(tmp_path, "b.csv", b"\x89PNG\r\n\x1a\n" + bytes(32))
    with pytest.raises(InputError, match="b.csv"):
        read_delivery(con, tmp_path)
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("heal-delivery-")]


def test_staged_files_are_removed_and_insertion_order_setting_restored(con, tmp_path):
    con.execute("SET preserve_insertion_order = false")
    d = read_delivery(con, write(tmp_path, "s.csv", gzip.compress(SALES.encode())))
    assert d.rows == 3
    assert not [f for f in os.listdir(tmp_path) if f.startswith("heal-delivery-")]
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (False,)


# --- parts repaired one by one, column order ------------------------------------------------------


def test_parts_with_different_headers_are_each_mapped_before_the_union(con, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    write(folder, "part-1.csv", "sale_id,amount\n1,10\n")
    write(folder, "part-2.csv", "AMT,Sale ID,note\n20,2,x\n")
    seen = []

    def column_map(names):
        seen.append(tuple(names))
        return {"AMT": "amount", "Sale ID": "sale_id", "ghost": "sale_id"}

    d = read_delivery(con, folder, column_map=column_map)
    assert seen == [("sale_id", "amount"), ("AMT", "Sale ID", "note")]
    assert d.columns == ("sale_id", "amount", "note")
    assert rows(con, d) == [("1", "10", None), ("2", "20", "x")]
    assert note(d, "part_columns_mapped").detail == "part-2.csv: AMT -> amount, Sale ID -> sale_id"
    assert d.parts == (DeliveryPart("part-1.csv", 1, ("sale_id", "amount")),
                       DeliveryPart("part-2.csv", 1, ("amount", "sale_id", "note")))


def test_parts_that_agree_or_a_single_file_are_left_as_delivered(con, tmp_path):
    write(tmp_path, "a.csv", "amt,id\n1,2\n")
    write(tmp_path, "b.csv", "id,AMT\n3,4\n")

    def column_map(names):
        raise AssertionError(f"called for {names}")

    d = read_delivery(con, str(tmp_path / "*.csv"), column_map=column_map)
    assert d.columns == ("amt", "id") and rows(con, d) == [("1", "2"), ("4", "3")]
    assert read_delivery(con, tmp_path / "a.csv", column_map=column_map).columns == ("amt", "id")


def test_columns_in_another_order_than_expected_are_noted(con, tmp_path):
    text = "amount,sale_id,extra,date,product_id\n1.5,1,x,2024-01-01,P1\n"
    d = read_delivery(con, write(tmp_path, "o.csv", text), expected_columns=EXPECTED)
    assert note(d, "column_order").detail.startswith("columns arrive in another order")
    d = read_delivery(con, write(tmp_path, "s.csv", SALES.replace("sale_id", "id")), expected_columns=EXPECTED)
    assert "column_order" not in rules(d)  # the known columns keep their order
