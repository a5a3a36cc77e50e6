"""A pandera contract (schemas.py) evaluated by DuckDB on the stored table, without reading it into pandas.

One source of truth: the pandera schema. Its columns, dtypes, nullability, uniqueness and built-in checks
(in_range, ge/le/gt/lt, eq/ne, isin, notin, str_length, str_matches/contains/startswith/endswith) are translated
here into SQL; a custom check carries its own SQL form next to its pandas form (schemas.sql_form). Every row is
evaluated (row checks in one aggregate scan), nothing is sampled. A check without an SQL form is an error, not
a skipped check.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pandas as pd
from pandera.pandas import Check, Column, DataFrameSchema

# pandera dtype -> DuckDB types that read back into it (warehouse.read_table).
_DUCKDB_TYPES = {
    "str": {"VARCHAR"},
    "float64": {"DOUBLE"},
    "int64": {"BIGINT"},
    "bool": {"BOOLEAN"},
    # pandera's datetime64[ns] accepts any unit of a naive timestamp (a pd.Timestamp("2026-01-07") is in s).
    "datetime64[ns]": {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"},
}
# Columns that locate a failing row for whoever fixes it, in this order, where the table has them.
_LOCATORS = ("source_file", "source_row", "unique_id", "ds", "model", "cutoff")
EXAMPLES_PER_CHECK = 5


@dataclass(frozen=True)
class _Rule:
    """One check: the failing rows are those where ``failing`` (a row predicate) holds, or ``query`` returns."""

    context: str
    column: str | None
    check: str
    failing: str | None = None
    query: str | None = None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value)) if math.isfinite(value) else f"'{float(value)}'::double"
    if isinstance(value, dt.datetime | pd.Timestamp):
        return f"timestamp '{pd.Timestamp(value).isoformat(sep=' ')}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise NotImplementedError(f"no SQL literal for {value!r}")


def _values(con: duckdb.DuckDBPyConnection, values: object) -> str:
    """A list of allowed or forbidden values as a relation: a reference table's ids can be thousands."""
    name = f"_contract_values_{id(values)}"
    con.register(name, pd.DataFrame({"v": list(values)}))
    return f"(select v from {name})"


def _builtin(con: duckdb.DuckDBPyConnection, check: Check, col: str) -> str:
    """True where the value passes pandera's built-in ``check``."""
    s, name = check.statistics, check.name
    compare = {"greater_than": (">", "min_value"), "greater_than_or_equal_to": (">=", "min_value"),
               "less_than": ("<", "max_value"), "less_than_or_equal_to": ("<=", "max_value"),
               "equal_to": ("=", "value"), "not_equal_to": ("!=", "value")}
    if name in compare:
        op, key = compare[name]
        return f"{col} {op} {_literal(s[key])}"
    if name == "in_range":
        low = ">=" if s.get("include_min", True) else ">"
        high = "<=" if s.get("include_max", True) else "<"
        return f"{col} {low} {_literal(s['min_value'])} and {col} {high} {_literal(s['max_value'])}"
    if name == "isin":
        return f"{col} in {_values(con, s['allowed_values'])}"
    if name == "notin":
        return f"{col} not in {_values(con, s['forbidden_values'])}"
    if name == "str_length":
        if s.get("exact_value") is not None:
            return f"length({col}) = {int(s['exact_value'])}"
        parts = [f"length({col}) >= {int(s['min_value'])}" if s.get("min_value") is not None else "true",
                 f"length({col}) <= {int(s['max_value'])}" if s.get("max_value") is not None else "true"]
        return " and ".join(parts)
    pattern = getattr(s.get("pattern"), "pattern", s.get("pattern"))
    if name == "str_matches":  # re.match: anchored at the start
        return f"regexp_matches({col}, {_literal('^(?:' + pattern + ')')})"
    if name == "str_contains":
        return f"regexp_matches({col}, {_literal(pattern)})"
    if name in ("str_startswith", "str_endswith"):
        return f"{name[4:]}({col}, {_literal(s['string'])})"
    raise NotImplementedError(f"check {name} on {col} has no SQL form (schemas_sql.py)")


def _column_rules(con: duckdb.DuckDBPyConnection, table: str, name: str, column: Column,
                  duck_type: str) -> list[_Rule]:
    col = _q(name)
    floating = duck_type in ("DOUBLE", "FLOAT")
    missing = f"({col} is null or isnan({col}))" if floating else f"{col} is null"
    rules = []
    if not column.coerce:
        expected = _DUCKDB_TYPES.get(str(column.dtype))
        if expected is None:
            raise NotImplementedError(f"{name}: dtype {column.dtype} has no DuckDB form (schemas_sql.py)")
        if duck_type not in expected:
            rules.append(_Rule("Column", name, f"dtype('{column.dtype}')", query=f"select '{duck_type}' as {col}"))
    if not column.nullable:
        rules.append(_Rule("Column", name, "not_nullable", failing=missing))
    for check in column.checks:
        # pandera skips missing values in a check (ignore_na); nullability is its own rule above.
        rules.append(_Rule("Column", name, check.error or check.name,
                           failing=f"not {missing} and not coalesce({_builtin(con, check, col)}, false)"))
    if column.unique:
        rules.append(_unique_rule(table, [name]))
    return rules


def _unique_rule(table: str, keys: list[str]) -> _Rule:
    cols = ", ".join(_q(k) for k in keys)
    query = (f"select t.* from {table} t semi join (select {cols} from {table} group by all having count(*) > 1) d"
             f" using ({cols})")
    if len(keys) == 1:
        return _Rule("Column", keys[0], "field_uniqueness", query=query)
    return _Rule("DataFrameSchema", ",".join(keys), "multiple_fields_uniqueness", query=query)


def _table_rule(con: duckdb.DuckDBPyConnection, table: str, check: Check, columns: list[str]) -> _Rule:
    label = check.error or check.name
    predicate: str | Callable | None = getattr(check, "sql_predicate", None)
    failing_rows = getattr(check, "sql_failing_rows", None)
    if predicate is not None:
        text = predicate(columns) if callable(predicate) else predicate
        return _Rule("DataFrameSchema", None, label, failing=f"not coalesce({text}, false)")
    if failing_rows is not None:
        return _Rule("DataFrameSchema", None, label, query=failing_rows(con, table))
    raise NotImplementedError(f"check {label!r} has no SQL form: give it one with schemas.sql_form")


def _types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"describe {table}").fetchall()}


def contract_rules(con: duckdb.DuckDBPyConnection, table: str, schema: DataFrameSchema) -> list[_Rule]:
    """Every rule of ``schema`` in SQL on ``table``; raises NotImplementedError for a check without SQL form."""
    types = _types(con, table)
    rules: list[_Rule] = []
    for name, column in schema.columns.items():
        if name not in types:
            if column.required:
                rules.append(_Rule("DataFrameSchema", None, "column_in_dataframe", query=f"select '{name}' as x"))
            continue
        rules.extend(_column_rules(con, table, name, column, types[name]))
    if schema.strict:
        for extra in sorted(set(types) - set(schema.columns)):
            rules.append(_Rule("DataFrameSchema", None, "column_in_schema", query=f"select '{extra}' as x"))
    if schema.unique:
        rules.append(_unique_rule(table, list(schema.unique)))
    rules.extend(_table_rule(con, table, check, list(types)) for check in schema.checks)
    return rules


def validate_in_duckdb(con: duckdb.DuckDBPyConnection, table: str, schema: DataFrameSchema,
                       limit: int = 20) -> tuple[int, pd.DataFrame]:
    """Failing rows of ``schema`` on ``table`` (summed over its rules) and the first examples, located by file,
    row, series and period where the table has those columns; the shape of schemas.failure_summary."""
    rules = contract_rules(con, table, schema)
    row_rules = [r for r in rules if r.failing is not None]
    # Every row rule in one scan of the table; rules across rows (uniqueness, gaps) one query each.
    aggregates = ", ".join(f"coalesce(count_if({r.failing}), 0)" for r in row_rules)
    scanned = iter(con.execute(f"select {aggregates} from {table}").fetchall()[0] if row_rules else ())
    counts = [next(scanned) if r.failing is not None
              else con.execute(f"select count(*) from ({r.query})").fetchall()[0][0] for r in rules]
    locators = [c for c in _LOCATORS if c in _types(con, table)]
    examples = [_examples(con, table, rule, locators) for rule, n in zip(rules, counts, strict=True) if n]
    shown = pd.concat(examples, ignore_index=True).head(limit).fillna("") if examples else pd.DataFrame()
    shown = shown.map(lambda v: v if len(v) <= 200 else v[:200] + f"... ({len(v):,} characters)")
    return sum(counts), shown


def _examples(con: duckdb.DuckDBPyConnection, table: str, rule: _Rule, locators: list[str]) -> pd.DataFrame:
    source = f"(select * from {table} where {rule.failing})" if rule.failing else f"({rule.query})"
    found = con.execute(f"select * from {source} limit {EXAMPLES_PER_CHECK}").df()
    keys = [k for k in (rule.column or "").split(",") if k in found.columns] or [found.columns[0]]
    frame = pd.DataFrame({"schema_context": rule.context, "column": rule.column or "", "check": rule.check,
                          "failure_case": found[keys].astype(str).agg(", ".join, axis=1)})
    for name in locators:
        if name in found.columns:
            frame[name] = found[name].to_numpy()
    return frame.astype(str)
