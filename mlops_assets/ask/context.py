"""An answer, and what an engine answers with: the catalog, the guarded read-only connection, the names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.ask.catalog import TableInfo
from mlops_assets.ask.connection import run_query
from mlops_assets.ask.guard import MAX_ROWS, check_sql
from mlops_assets.ask.names import Names, build_entities

NAME_ROWS = 1_000_000  # the name lookup reads every product and customer
_NAMED = ("serving.sales_overall", "raw.products", "raw.customers")
_NAMES_READ: dict[tuple, Names] = {}


@dataclass
class Answer:
    question: str
    text: str
    table: pd.DataFrame
    sql: list[str]  # every query it ran, as run (after the guard)
    engine: str  # which engine answered, and why another did not
    chart: bytes | None = None  # PNG
    chart_path: Path | None = None

    def report(self, rows: int = 20) -> str:
        lines = [self.text, ""]
        if not self.table.empty:
            lines += [self.table.head(rows).to_string(index=False),
                      f"({len(self.table)} rows{'; first ' + str(rows) + ' shown' if len(self.table) > rows else ''})",
                      ""]
        lines += ["SQL:", *(f"  {q};" for q in self.sql)] if self.sql else ["SQL: none ran"]
        lines.append(f"engine: {self.engine}")
        if self.chart_path:
            lines.append(f"chart: {self.chart_path}")
        return "\n".join(lines)


@dataclass
class Context:
    con: duckdb.DuckDBPyConnection
    catalog: dict[str, TableInfo]
    time_limit: float = 10.0
    sql: list[str] = field(default_factory=list)
    _names: Names | None = None

    def has(self, table: str) -> bool:
        return table in self.catalog

    def columns(self, table: str) -> list[str]:
        return list(self.catalog[table].columns) if table in self.catalog else []

    def run(self, sql: str, max_rows: int = MAX_ROWS, record: bool = True) -> pd.DataFrame:
        """The query's rows, after the guard let it through, on the read-only connection."""
        guarded = check_sql(sql, self.catalog, max_rows)
        if record:
            self.sql.append(guarded)
        return run_query(self.con, guarded, self.time_limit)

    @property
    def names(self) -> Names:
        """The products, brands, categories, customers... a question may name; read once per set of snapshots."""
        if self._names is None:
            key = tuple((str(info.path), info.path.stat().st_mtime_ns) for table, info in sorted(self.catalog.items())
                        if table in _NAMED and info.path is not None)
            if key not in _NAMES_READ:
                _NAMES_READ.clear()  # one set of snapshots at a time: the newest
                _NAMES_READ[key] = Names(build_entities(self._products(), self._customers()))
            self._names = _NAMES_READ[key]
        return self._names

    def _products(self) -> pd.DataFrame:
        wanted = ["product_id", "product_name", "brand", "category"]
        frames = []
        sales = self.columns("serving.sales_overall")
        if sales:
            picks = [c if c in sales else ("unique_id as product_id" if c == "product_id" else f"null as {c}")
                     for c in wanted]
            frames.append(self.run(f"select distinct {', '.join(picks)} from serving.sales_overall",
                                   NAME_ROWS, record=False))
        if set(wanted) <= set(self.columns("raw.products")):
            frames.append(self.run(f"select {', '.join(wanted)} from raw.products", NAME_ROWS, record=False))
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames).drop_duplicates("product_id") if frames else pd.DataFrame(columns=wanted)

    def _customers(self) -> pd.DataFrame | None:
        wanted = ["customer_id", "customer_name", "channel", "region"]
        if not set(wanted) <= set(self.columns("raw.customers")):
            return None
        return self.run(f"select {', '.join(wanted)} from raw.customers", NAME_ROWS, record=False)
