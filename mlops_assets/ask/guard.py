"""Whoever wrote a query (the offline engine or a language model), it runs only if this lets it through.

Parsed with sqlglot as DuckDB SQL: exactly one SELECT (set operations of SELECTs and CTEs included), reading
only catalog tables and their columns, calling no function that reads files, reaches the network or the
database's own settings, and capped at a row limit. Everything else is refused with the reason. The
connection it then runs on is read-only and cannot read files either (connection.py): the guard says why,
the connection is the wall.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from mlops_assets.ask.catalog import TableInfo

MAX_ROWS = 1000
# sqlglot warns on stderr for each statement it parses only as a generic command; the refusal says it instead.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# Statement kinds refused outright, with the word the reason uses.
_STATEMENTS: dict[type[exp.Expression], str] = {
    exp.Insert: "INSERT (a write)", exp.Update: "UPDATE (a write)", exp.Delete: "DELETE (a write)",
    exp.Merge: "MERGE (a write)", exp.Create: "CREATE (a write)", exp.Drop: "DROP (a write)",
    exp.Alter: "ALTER (a write)", exp.TruncateTable: "TRUNCATE (a write)", exp.Copy: "COPY (reads or writes files)",
    exp.Attach: "ATTACH (opens another database)", exp.Detach: "DETACH", exp.Pragma: "PRAGMA (database settings)",
    exp.Set: "SET (database settings)", exp.Use: "USE", exp.Transaction: "a transaction", exp.Commit: "COMMIT",
    exp.Rollback: "ROLLBACK", exp.Describe: "DESCRIBE", exp.Command: "a command", exp.Install: "INSTALL (extensions)",
    exp.Export: "EXPORT (writes files)", exp.LoadData: "LOAD (data or extensions)",
}
# Functions that read files, URLs or other databases, or reveal or change the database's settings.
_FUNCTION_PREFIXES = ("read_", "parquet_", "sniff_", "glob", "duckdb_", "pragma_", "query", "iceberg_",
                      "delta_", "sqlite_", "postgres_", "mysql_", "http", "load", "install", "getenv",
                      "current_setting", "set_", "checkpoint", "force_checkpoint", "json_execute", "which_secret",
                      "enable_", "disable_", "arrow_scan", "seq_scan", "repeat_row", "test_", "range_")


class Refused(ValueError):
    """The query may not run; the message says why."""


def _statement_kinds() -> tuple[type[exp.Expression], ...]:
    return tuple(kind for kind in _STATEMENTS if isinstance(kind, type))


def check_sql(sql: str, catalog: dict[str, TableInfo], max_rows: int = MAX_ROWS) -> str:
    """The query, with a LIMIT of at most ``max_rows``, as DuckDB SQL; raises Refused with the reason."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise Refused("the query is empty")
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except ParseError as error:
        raise Refused(f"the query is not valid SQL: {str(error).splitlines()[0]}") from None
    if len(statements) != 1:
        raise Refused(f"only one statement may run; this has {len(statements)} (multiple statements)")
    tree = statements[0]
    for node in tree.walk():
        kind = next((k for k in _statement_kinds() if isinstance(node, k)), None)
        if kind is exp.Command:
            raise Refused(f"only SELECT may run; this has the command {str(node.this).upper()}")
        if kind is not None:
            raise Refused(f"only SELECT may run; this has {_STATEMENTS[kind]}")
    if not isinstance(tree, exp.Query):
        raise Refused(f"only SELECT may run; this is not a query ({text.split()[0].upper()})")
    _check_functions(tree)
    aliases = _check_tables(tree, catalog)
    _check_columns(tree, catalog, aliases)
    return _limited(tree, max_rows).sql(dialect="duckdb")


def _function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _check_functions(tree: exp.Expression) -> None:
    for node in tree.find_all(exp.Func):
        name = _function_name(node)
        if name.startswith(_FUNCTION_PREFIXES) or isinstance(node, exp.ReadCSV | exp.ReadParquet):
            raise Refused(f"the function {name}() reads files, other databases or the database's settings: "
                          "only the catalog's tables may be read")
    for node in tree.find_all(exp.Table):
        if not isinstance(node.this, exp.Identifier):
            raise Refused(f"a table function or file ({node.this.sql(dialect='duckdb')}) may not be read: "
                          "only the catalog's tables may be read")


def _ctes(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _check_tables(tree: exp.Expression, catalog: dict[str, TableInfo]) -> dict[str, str]:
    """Every table is a catalog table or a CTE; returns alias (and bare name) -> catalog table."""
    ctes, aliases = _ctes(tree), {}
    known = ", ".join(sorted(catalog))
    for node in tree.find_all(exp.Table):
        if node.args.get("catalog"):
            raise Refused(f"table {node.sql(dialect='duckdb')} names a database: only the catalog's tables "
                          f"may be read ({known})")
        schema, name = node.db.lower(), node.name.lower()
        if node.this.quoted and not schema and any(mark in name for mark in "/.\\:"):
            raise Refused(f"a file ({node.name}) may not be read: only the catalog's tables may be read ({known})")
        if not schema and name in ctes:
            continue
        full = f"{schema}.{name}"
        if full not in catalog:
            raise Refused(f"unknown table {full if schema else name}: the tables are {known}")
        aliases[node.alias_or_name.lower()] = full
        aliases[name] = full
    return aliases


def _defined_names(tree: exp.Expression) -> set[str]:
    """Names the query itself defines: select aliases, CTE and subquery column lists, table aliases."""
    names = {node.alias.lower() for node in tree.find_all(exp.Alias) if node.alias}
    for alias in tree.find_all(exp.TableAlias):
        names.add(alias.name.lower())
        names |= {column.name.lower() for column in alias.columns}
    return names


def _check_columns(tree: exp.Expression, catalog: dict[str, TableInfo], aliases: dict[str, str]) -> None:
    used = set(aliases.values())
    readable = {c.lower() for table in used for c in catalog[table].columns}
    defined = _defined_names(tree)
    for column in tree.find_all(exp.Column):
        name, qualifier = column.name.lower(), column.table.lower()
        if not name or isinstance(column.this, exp.Star):
            continue
        if qualifier in aliases:
            table = aliases[qualifier]
            if name not in {c.lower() for c in catalog[table].columns}:
                raise Refused(f"unknown column {name} of {table}: its columns are "
                              f"{', '.join(catalog[table].columns)}")
        elif name not in readable and name not in defined:
            raise Refused(f"unknown column {name}: the tables read have {', '.join(sorted(readable)) or 'none'}")


def _limited(tree: exp.Query, max_rows: int) -> exp.Query:
    limit = tree.args.get("limit")
    current = None
    if limit is not None:
        value = limit.expression if isinstance(limit, exp.Limit) else None
        if isinstance(value, exp.Literal) and value.is_int:
            current = int(value.this)
        else:
            raise Refused("the LIMIT must be a whole number")
    return tree.limit(min(current, max_rows) if current is not None else max_rows, copy=True)
