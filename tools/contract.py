"""The data contract a delivery is checked against, and how text becomes typed values.

Deliveries are read as text (see :mod:`tools.readers`); every typed view of them is an SQL
expression built here, so checkers, quarantine and transform agree on what "parses" means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tools.verdict import ConfigError

__all__ = [
    "COLUMN_TYPES",
    "DEFAULT_NULL_TOKENS",
    "NUMERIC_COLUMN_TYPES",
    "Column",
    "Contract",
    "contract_from_dict",
    "load_contract",
    "pipeline_schema",
    "is_null_sql",
    "parse_sql",
    "quote_ident",
    "quote_literal",
    "sql_type",
]

#: Contract type → DuckDB type used for the typed view and the target table.
COLUMN_TYPES: dict[str, str] = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "decimal": "DECIMAL(18,2)",
    "double": "DOUBLE",
    "text": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
}

#: The column types that hold numbers.
NUMERIC_COLUMN_TYPES: tuple[str, ...] = ("bigint", "integer", "decimal", "double")

#: Text that means "no value" in vendor files. Compared after trimming.
DEFAULT_NULL_TOKENS: tuple[str, ...] = ("", "NULL", "null", "N/A", "NA", "n/a", "-", "None")


@dataclass(frozen=True)
class Column:
    """One contract column. ``critical`` columns may not be null; ``required`` ones must exist."""

    name: str
    type: str
    required: bool = True
    critical: bool = False
    min: float | None = None
    max: float | None = None
    sensitive: bool = False
    synonyms: tuple[str, ...] = ()

    @property
    def sql_type(self) -> str:
        return sql_type(self.type)


@dataclass(frozen=True)
class Contract:
    """What a delivery must look like and where it goes."""

    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    extra_columns: str = "keep"  # keep | drop
    volume_tolerance: float = 0.2
    volume_window: int = 7
    freshness_days: int | None = None
    null_tokens: tuple[str, ...] = DEFAULT_NULL_TOKENS
    transform: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def critical(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.critical or c.name in self.key)

    @property
    def sensitive(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.sensitive)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def sql_type(type_name: str) -> str:
    return COLUMN_TYPES[type_name]


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB and PostgreSQL; names from files are data, never SQL."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def is_null_sql(expr: str, null_tokens: tuple[str, ...] = DEFAULT_NULL_TOKENS) -> str:
    """SQL that is true when the text ``expr`` holds no value."""
    tokens = ", ".join(quote_literal(t) for t in null_tokens)
    return f"({expr} IS NULL OR trim({expr}) IN ({tokens}))"


def parse_sql(expr: str, column: Column, null_tokens: tuple[str, ...] = DEFAULT_NULL_TOKENS) -> str:
    """SQL turning the text ``expr`` into ``column``'s type; NULL when empty or unparseable.

    Unparseable = not a null token and this expression is NULL.
    """
    value = f"trim({expr})"
    if column.type in ("decimal", "double", "bigint", "integer"):
        # A plain number, optionally in scientific notation; thousands separators and
        # currency symbols are handled by repair rules, not guessed here.
        target = "DOUBLE" if column.type in ("bigint", "integer") else sql_type(column.type)
        inner = f"TRY_CAST({value} AS {target})"
        if column.type in ("bigint", "integer"):
            # "12.0" is an integer; "12.5" is not.
            inner = (
                f"CASE WHEN {inner} = round({inner}) "
                f"THEN TRY_CAST({inner} AS {sql_type(column.type)}) END"
            )
    elif column.type == "boolean":
        inner = (
            f"CASE lower({value}) WHEN 'true' THEN true WHEN 't' THEN true WHEN 'yes' THEN true "
            f"WHEN '1' THEN true WHEN 'false' THEN false WHEN 'f' THEN false WHEN 'no' THEN false "
            f"WHEN '0' THEN false END"
        )
    elif column.type == "text":
        inner = expr
    else:
        inner = f"TRY_CAST({value} AS {sql_type(column.type)})"
    return f"(CASE WHEN {is_null_sql(expr, null_tokens)} THEN NULL ELSE {inner} END)"


@cache
def pipeline_schema() -> dict[str, Any]:
    """The pipeline-file JSON Schema shipped with the package (its ``contract`` part included)."""
    return json.loads(resources.files("tools").joinpath("schemas/pipeline.schema.json").read_text())


def contract_from_dict(data: dict[str, Any], *, transform: dict[str, Any] | None = None) -> Contract:
    """Build a Contract from the ``contract:`` mapping of a pipeline file (already validated)."""
    columns = tuple(
        Column(
            name=name,
            type=spec["type"],
            required=spec.get("required", True),
            critical=spec.get("critical", False),
            min=spec.get("min"),
            max=spec.get("max"),
            sensitive=spec.get("sensitive", False),
            synonyms=tuple(spec.get("synonyms", ())),
        )
        for name, spec in data["columns"].items()
    )
    key = tuple(data.get("key", ()))
    for k in key:
        if k not in data["columns"]:
            raise ConfigError(f"contract.key names {k!r}, which is not a contract column")
    volume = data.get("volume", {})
    return Contract(
        table=data["table"],
        columns=columns,
        key=key,
        extra_columns=data.get("extra_columns", "keep"),
        volume_tolerance=float(volume.get("tolerance", 0.2)),
        volume_window=int(volume.get("window", 7)),
        freshness_days=data.get("freshness_days"),
        null_tokens=tuple(data.get("null_tokens", DEFAULT_NULL_TOKENS)),
        transform=dict(transform or {}),
    )


def load_contract(path: str | Path) -> Contract:
    """The contract of a pipeline file (or of a file holding only ``contract:`` / its body).

    For checker scripts run by hand; the orchestrator reads whole pipelines instead.
    """
    import jsonschema
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"contract file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read contract file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping with a 'contract' section")
    transform = data.get("transform") if "contract" in data else None
    body = data.get("contract", data)
    schema = pipeline_schema()["properties"]["contract"]
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: list(map(str, e.path)))
    if errors:
        where = ".".join(str(p) for p in errors[0].path) or "contract"
        raise ConfigError(f"{path}: {where}: {errors[0].message}")
    return contract_from_dict(body, transform=transform)
