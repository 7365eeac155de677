"""Soda Core 4 (soda-duckdb, telemetry off): the file loaded into an in-memory DuckDB table,
then a data contract with the four checks verified locally."""

import os

os.environ["SODA_CORE_TELEMETRY_ENABLED"] = "false"

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
from _common import literal, parse_args, report  # noqa: E402
from soda_core.contracts import verify_contract_locally  # noqa: E402

args = parse_args(__doc__)
work = Path(tempfile.mkdtemp(prefix="bench-soda-"))
database = work / "bench.duckdb"
con = duckdb.connect(str(database))
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv({literal(args.path)})")
con.close()
(work / "source.yml").write_text(f"type: duckdb\nname: bench\nconnection:\n  database: \"{database}\"\n  schema: main\n")
(work / "contract.yml").write_text(f"""
dataset: bench/main/sales
columns:
  - name: sale_id
    checks:
      - missing:
      - duplicate:
  - name: date
    checks:
      - missing:
  - name: amount
    checks:
      - missing:
      - invalid:
          valid_min: 0.01
          valid_max: 10000
  - name: product_id
    checks:
      - missing:
checks:
  - row_count:
      threshold:
        must_be_between:
          greater_than_or_equal: {args.min_rows}
          less_than_or_equal: {args.max_rows}
""")
result = verify_contract_locally(data_source_file_path=str(work / "source.yml"),
                                 contract_file_path=str(work / "contract.yml"))
counts: dict[str, int] = {}
for contract_result in result.contract_verification_results:
    for check in contract_result.check_results:
        values = check.diagnostic_metric_values or {}
        column = getattr(check.check, "column_name", None)
        kind = check.check.type
        if kind == "missing":
            counts[f"null_{column}"] = values["missing_count"]
        elif kind == "duplicate":
            counts["duplicate_keys"] = values["duplicate_count"]
        elif kind == "invalid":
            counts["out_of_range"] = values["invalid_count"]
        elif kind == "row_count":
            counts["rows"] = values.get("row_count", values["dataset_rows_tested"])
for leftover in work.iterdir():
    leftover.unlink()
work.rmdir()
report(counts, min_rows=args.min_rows, max_rows=args.max_rows)
