"""Great Expectations (an ephemeral context, analytics off): the four checks as an
expectation suite over the pandas frame, with COMPLETE results (every failing row index) to count the duplicate keys."""

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
import pandas as pd  # noqa: E402
from _common import parse_args, report  # noqa: E402

args = parse_args(__doc__)
df = pd.read_csv(args.path)
context = gx.get_context(mode="ephemeral")
context.enable_analytics(False)
batch = (
    context.data_sources.add_pandas("bench")
    .add_dataframe_asset("sales")
    .add_batch_definition_whole_dataframe("all")
    .get_batch(batch_parameters={"dataframe": df})
)
columns = ("sale_id", "date", "amount", "product_id")
suite = gx.ExpectationSuite(
    name="sales",
    expectations=[
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns),
        gxe.ExpectColumnValuesToBeUnique(column="sale_id"),
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0.01, max_value=10000),
        gxe.ExpectTableRowCountToBeBetween(min_value=args.min_rows, max_value=args.max_rows),
    ],
)
results = batch.validate(suite, result_format="COMPLETE").results
by_type: dict[str, list] = {}
for r in results:
    by_type.setdefault(r.expectation_config.type, []).append(r)
nulls = {r.expectation_config.kwargs["column"]: r.result["unexpected_count"]
         for r in by_type["expect_column_values_to_not_be_null"]}
unique = by_type["expect_column_values_to_be_unique"][0].result
rows = by_type["expect_table_row_count_to_be_between"][0].result["observed_value"]
report(
    {
        "rows": rows,
        **{f"null_{c}": nulls[c] for c in columns},
        # GE caps unexpected_list at 200 values; the row indices are complete.
        "duplicate_keys": int(df.loc[unique["unexpected_index_list"], "sale_id"].nunique()),
        "out_of_range": by_type["expect_column_values_to_be_between"][0].result["unexpected_count"],
    },
    min_rows=args.min_rows,
    max_rows=args.max_rows,
)
