"""Property-based: random corruptions of a real delivery always end in a verdict, never a
traceback or a hang, and whatever is loaded is conserved. The long run is bench/fuzz.py."""

import gzip
import random
from dataclasses import replace
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.demo import sales_rows
from orchestrator.pipeline import Source
from orchestrator.run import run_pipeline
from orchestrator.skills import SkillRegistry
from tests.conftest import DAY
from tools.contract import load_contract
from tools.readers import read_delivery
from tools.verdict import InputError

REPO = Path(__file__).resolve().parent.parent
CONTRACT = load_contract(REPO / "pipelines" / "sales.yaml")
SCHEMA_CHECK = SkillRegistry(REPO / "skills").module("validate-schema")


def clean_bytes(n: int = 60) -> bytes:
    rows = sales_rows(DAY, 1, n, random.Random(5))
    return ("sale_id,date,amount,product_id\n" + "".join(",".join(r) + "\n" for r in rows)).encode()


@st.composite
def corrupted(draw) -> bytes:
    data = bytearray(clean_bytes(draw(st.integers(1, 80))))
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "encoding", "delimiter", "giant", "gzip_cut",
                                 "json", "nested_json", "noise", "quotes"]))
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 20))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "encoding":
        text = data.decode()
        enc = draw(st.sampled_from(["utf-16", "utf-16-le", "latin-1", "cp1252", "utf-8-sig", "utf-32"]))
        data = bytearray(text.replace("N-", "Ñ-").encode(enc, errors="replace"))
    elif kind == "delimiter":
        data = bytearray(data.replace(b",", draw(st.sampled_from([b";", b"\t", b"|", b" ", b":", b"\x00"]))))
    elif kind == "giant":
        i = data.index(b"\n") + 1
        data[i:i] = b"9," + b"x" * draw(st.integers(10_000, 2_000_000)) + b",1,N-1\n"
    elif kind == "gzip_cut":
        packed = gzip.compress(bytes(data))
        data = bytearray(packed[: draw(st.integers(0, len(packed)))])
    elif kind == "json":
        data = bytearray(b"\n".join(b'{"sale_id": %d, "amount": "%d"}' % (i, i) for i in range(draw(st.integers(0, 30)))))
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    elif kind == "nested_json":
        depth = draw(st.integers(1, 5000))
        data = bytearray(b"[" * depth + b"1" + b"]" * draw(st.integers(0, depth)))
    elif kind == "noise":
        data = bytearray(draw(st.binary(min_size=0, max_size=4096)))
    elif kind == "quotes":
        i = draw(st.integers(0, len(data)))
        data[i:i] = b'"' * draw(st.integers(1, 3))
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(payload=corrupted())
def test_reading_and_schema_checking_never_crash(payload, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "delivery.csv"
    path.write_bytes(payload)
    con = duckdb.connect()
    try:
        delivery = read_delivery(con, path, expected_columns=CONTRACT.names)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:
        assert delivery.rows == con.execute(f'SELECT count(*) FROM "{delivery.table}"').fetchone()[0]
    verdict = SCHEMA_CHECK.read_and_check(duckdb.connect(), str(path), contract=CONTRACT)
    assert verdict.skill == "validate-schema"
    assert verdict.passed or verdict.failure_class


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(payload=corrupted())
def test_a_run_on_any_corruption_ends_in_a_status_and_conserves_rows(payload, sales, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    (folder / f"{DAY}.csv").write_bytes(payload)
    pipeline = replace(sales, source=Source(uri=str(folder / "{date}.csv"), min_bytes=1),
                       target=f"duckdb:///{folder / 't.duckdb'}", alerts=())
    result = run_pipeline(pipeline, run_date=DAY, sleep=lambda s: None)
    assert result.status in ("success", "healed", "partial_failure", "escalated")
    c = result.counts
    assert c["read"] == c["loaded"] + c["quarantined"] + c["duplicates"] + c["held"]
    assert result.conserved
