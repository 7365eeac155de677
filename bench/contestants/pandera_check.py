"""pandera: the four checks as a DataFrameSchema over the pandas frame, validated lazily so
every failure case is collected (not just the first)."""

import pandas as pd
import pandera.pandas as pa
from _common import parse_args, report

args = parse_args(__doc__)
df = pd.read_csv(args.path)
schema = pa.DataFrameSchema(
    {
        "sale_id": pa.Column(nullable=False, unique=True),
        "date": pa.Column(nullable=False),
        "amount": pa.Column(float, pa.Check.in_range(0.01, 10000), nullable=False, coerce=True),
        "product_id": pa.Column(nullable=False),
    },
    checks=pa.Check(lambda frame: args.min_rows <= len(frame) <= args.max_rows, name="row_count"),
)
try:
    schema.validate(df, lazy=True)
    cases = pd.DataFrame(columns=["column", "check", "failure_case"])
except pa.errors.SchemaErrors as err:
    cases = err.failure_cases


def failures(column: str, check: str) -> pd.DataFrame:
    return cases[(cases["column"] == column) & cases["check"].astype(str).str.startswith(check)]


unique = failures("sale_id", "field_uniqueness")["failure_case"].dropna()
report(
    {
        "rows": len(df),
        **{f"null_{c}": len(failures(c, "not_nullable")) for c in ("sale_id", "date", "amount", "product_id")},
        "duplicate_keys": unique.nunique(),
        "out_of_range": len(failures("amount", "in_range")),
    },
    min_rows=args.min_rows,
    max_rows=args.max_rows,
)
