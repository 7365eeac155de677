"""csv-spectrum acid test: each ``csvs/NAME.csv`` reads as exactly the records in ``json/NAME.json``.

Two defects of the shared copy are corrected in the expectation, not in the reader, and
each correction is checked to still apply (so it is dropped when the data is fixed):

- ``location_coordinates.json`` holds one object, not an array (upstream issue
  max-mapper/csv-spectrum#22), and a phone number that is not the CSV's (issue #20).
- ``*_crlf.csv`` lost their CR bytes in this copy, while ``newlines_crlf.json`` still
  expects ``\\r\\n`` inside the quoted field; the real CRLF case is rebuilt in ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tools.readers import read_delivery

SPECTRUM = Path(__file__).parents[2] / "shared/conformance/csv-spectrum"
NAMES = sorted(p.stem for p in (SPECTRUM / "csvs").glob("*.csv")) if SPECTRUM.is_dir() else []
pytestmark = pytest.mark.skipif(not NAMES, reason=f"csv-spectrum data not found at {SPECTRUM}")


def expected_records(name: str, csv_bytes: bytes) -> list[dict[str, str]]:
    data = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    if isinstance(data, dict):  # upstream issue #22
        data = [data]
    if name == "location_coordinates":  # upstream issue #20: the JSON's phone is not the CSV's
        assert data[0]["Contact Phone Number"] == "1234567890" and b"2095257564" in csv_bytes
        data[0]["Contact Phone Number"] = "2095257564"
    if b"\r" not in csv_bytes and any("\r" in v for rec in data for v in rec.values()):
        data = [{k: v.replace("\r\n", "\n") for k, v in rec.items()} for rec in data]
    return data


def read_records(path: Path, tmp_path: Path) -> list[dict[str, str]]:
    con = duckdb.connect(str(tmp_path / "spectrum.duckdb"))
    try:
        d = read_delivery(con, path)
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in d.columns)
        rows = con.execute(f"SELECT {cols}, _error FROM delivery ORDER BY _row").fetchall()
    finally:
        con.close()
    assert all(r[-1] is None for r in rows), rows
    return [dict(zip(d.columns, r[:-1], strict=True)) for r in rows]


@pytest.mark.parametrize("name", NAMES)
def test_spectrum_file_reads_as_its_json(name, tmp_path):
    path = SPECTRUM / "csvs" / f"{name}.csv"
    assert read_records(path, tmp_path) == expected_records(name, path.read_bytes())


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("_crlf")])
def test_spectrum_crlf_files_with_real_crlf(name, tmp_path):
    raw = (SPECTRUM / "csvs" / f"{name}.csv").read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    path = tmp_path / f"{name}.csv"
    path.write_bytes(raw)
    expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    assert read_records(path, tmp_path) == expected
