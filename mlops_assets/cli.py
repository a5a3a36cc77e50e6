"""`mlops-assets`: the commands an operator runs beside Dagster.

    mlops-assets materialize                 run the whole graph (or --select a part), one line per step
    mlops-assets summary                     tables, row counts and where everything is
    mlops-assets sql "select ..."            DuckDB SQL on the snapshots: schema.table names work as views
    mlops-assets plot --product "Etorki"     the actuals-and-forecast plot of one product
    mlops-assets ask "top 5 products"        a question in plain words (English or French): text, table, SQL, chart
    mlops-assets rollback --version 3        point the alias champion at an earlier model version (--levels: the
                                             levels' model)
    mlops-assets relocate                    after moving or copying the data directory: MLflow uses the new place

Every command but materialize reads the Parquet snapshots in <data dir>/exports, never the DuckDB file, so
it works while a run holds the warehouse.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from mlops_assets import run_lock
from mlops_assets.settings import DataPaths, load_settings
from mlops_assets.warehouse import read_snapshot, snapshot_path, sql_string

if TYPE_CHECKING:
    import pandas as pd


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(paths: DataPaths) -> str:
    lines = [f"data directory: {paths.root}", f"warehouse:      {paths.warehouse}", "", "tables (rows):"]
    for snapshot in sorted(paths.exports.glob("*/*.parquet")):
        table = f"{snapshot.parent.name}.{snapshot.stem}"
        rows = pq.ParquetFile(snapshot).metadata.num_rows
        lines.append(f"  {table:<40} {rows:>10,}")
    if len(lines) == 4:
        lines.append("  (none yet: run `make run`)")
    champions_file = snapshot_path(paths.exports, "forecasting.series_champions")
    if champions_file.exists():
        # One model for every series means the selection guard judged per-series choice not to hold up.
        counts = read_snapshot(paths.exports, "forecasting.series_champions")["model"].value_counts()
        mix = ", ".join(f"{model} {n}" for model, n in counts.sort_index().items())
        lines += ["", f"champion models ({int(counts.sum())} series): {mix}"]
    lines += [
        "",
        f"snapshots for other processes: {paths.exports}/<schema>/<table>.parquet",
        "  .venv/bin/mlops-assets sql \"select origin, count(*) from serving.sales_overall group by origin\"",
        f"plots:          {paths.plots}",
        f"drift reports:  {paths.reports / 'drift'}",
        f"MLflow:         make mlflow-ui, then open http://127.0.0.1:5000  (store {paths.mlflow_tracking_uri})",
        "Dagster UI:     make dev, then open http://127.0.0.1:3000",
    ]
    return "\n".join(lines)


def sql(paths: DataPaths, query: str, as_csv: bool = False) -> str:
    """Run DuckDB SQL in memory, each snapshot visible as a view named like its table (gold.sales_...)."""
    with duckdb.connect() as con:
        for snapshot in sorted(paths.exports.glob("*/*.parquet")):
            schema, table = snapshot.parent.name, snapshot.stem
            con.execute(f'create schema if not exists "{schema}"')
            con.execute(f"create view \"{schema}\".\"{table}\" as select * from read_parquet({sql_string(snapshot)})")
        try:
            frame = _query_snapshots(con, query)
        except duckdb.Error as error:
            tables = ", ".join(f"{p.parent.name}.{p.stem}" for p in sorted(paths.exports.glob("*/*.parquet")))
            raise ValueError(f"{error}\ntables: {tables or f'none yet in {paths.exports}: run `make run`'}") from None
        if frame is None:
            return ""
    if as_csv:
        return frame.to_csv(index=False).rstrip("\n")
    with_rows = f"({len(frame)} rows)"
    return f"{frame.to_string(index=False, max_rows=60)}\n{with_rows}"


# DuckDB opens a Parquet file more than once per query: a query that runs exactly while a run renames a new
# snapshot into place can fail to read it (measured: 0.3-0.5% of queries with the file replaced 5 times a
# second; never a mix of two versions). Such a read error is retried; a mistake in the query is not.
SNAPSHOT_READ_ATTEMPTS = 3
_QUERY_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)


def _query_snapshots(con: duckdb.DuckDBPyConnection, query: str) -> pd.DataFrame | None:
    for attempt in range(1, SNAPSHOT_READ_ATTEMPTS + 1):
        try:
            result = con.sql(query)
            return None if result is None else result.df()
        except _QUERY_ERRORS:
            raise
        except duckdb.Error:
            if attempt == SNAPSHOT_READ_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    return None


def plot_product(paths: DataPaths, product: str, out: Path | None) -> list[Path]:
    from mlops_assets.serving.overall import find_series
    from mlops_assets.serving.plots import plot_series

    overall = read_snapshot(paths.exports, "serving.sales_overall")
    written = []
    for unique_id in find_series(overall, product):
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in unique_id)
        target = out or paths.plots / f"{safe}.png"
        if out and len(written) > 0:
            target = out.with_name(f"{out.stem}_{safe}{out.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        plot_series(overall, unique_id, target)
        written.append(target)
    return written


def rollback(paths: DataPaths, version: str, levels: bool = False) -> str:
    import mlflow

    from mlops_assets.registry import model_registry
    from mlops_assets.registry.level_model import levels_model_name

    settings = load_settings()
    name = levels_model_name(settings.registered_model_name) if levels else settings.registered_model_name
    uri = settings.mlflow_tracking_uri or paths.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # A run's registration moves the same alias: the rollback waits for a run, as a second run would.
    with run_lock.held(paths.root, owner=f"mlops-assets rollback --version {version}",
                       wait_seconds=settings.locks.run_wait_seconds, on_wait=_say):
        previous = model_registry.rollback(name, version)
    then = "a running `make serve` answers level ids with it" if levels else \
        "the next materialization of forecasting/forecasts uses it"
    return f"{name}@champion now points at version {version} (was {previous}); {then}"


def relocate(paths: DataPaths) -> str:
    from mlops_assets.registry.relocation import relocate_store

    moved = relocate_store(paths.mlflow / "mlflow.db", paths.mlflow_artifacts)
    if not moved:
        return f"the MLflow store in {paths.mlflow} already points at {paths.mlflow_artifacts}: nothing to do"
    return "\n".join(f"{count} MLflow artifact locations moved from {old} to {paths.mlflow_artifacts.as_uri()}"
                     for old, count in moved.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("materialize", help="materialize the graph in DAGSTER_HOME, one line per step")
    run.add_argument("--select", default="*", help="Dagster asset selection (default '*': everything)")
    commands.add_parser("summary", help="tables, row counts and where everything is")
    query = commands.add_parser("sql", help="DuckDB SQL on the table snapshots (schema.table names work)")
    query.add_argument("query", help="e.g. \"select origin, count(*) from serving.sales_overall group by origin\"")
    query.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    plot = commands.add_parser("plot", help="write the plot of one product by name")
    plot.add_argument("--product", required=True, help="product name, or a part of it")
    plot.add_argument("--out", type=Path, help="PNG file to write (default: <data dir>/plots/<id>.png)")
    question = commands.add_parser("ask", help="a question in plain words: answer, table, the SQL it ran, a chart")
    question.add_argument("question", help="e.g. \"show sales and the forecast of Etorki on a line plot\"")
    back = commands.add_parser("rollback", help="point the alias champion at an earlier model version")
    back.add_argument("--version", required=True)
    back.add_argument("--levels", action="store_true", help="the levels' model (<registered_model_name>_levels, "
                      "with hierarchy:) instead of the series'")
    commands.add_parser("relocate", help="after moving or copying the data directory: MLflow uses the new place")
    args = parser.parse_args(argv)
    paths = DataPaths.from_env()
    try:
        if args.command == "materialize":
            from mlops_assets.runner import materialize, why_failed

            result = materialize(args.select, paths)
            if not result.success:
                print(f"error: {why_failed(result)}", file=sys.stderr)
                return 1
        elif args.command == "summary":
            print(summary(paths))
        elif args.command == "sql":
            print(sql(paths, args.query, args.csv))
        elif args.command == "plot":
            for path in plot_product(paths, args.product, args.out):
                print(f"wrote {path}")
        elif args.command == "ask":
            from mlops_assets.ask.service import ask

            print(ask(args.question, paths, load_settings().ask).report())
        elif args.command == "relocate":
            print(relocate(paths))
        else:
            print(rollback(paths, args.version, args.levels))
    except (LookupError, ValueError, run_lock.DataDirectoryBusy) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # MLflow errors carry their own clear message
        if type(error).__name__ != "MlflowException":
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def entry_point() -> None:
    """The console script: ``main``, then an exit that skips interpreter teardown after a run.

    After a run, duckdb 2.0's bindings print about 120 lines of "nanobind: leaked ..." while the interpreter
    tears its modules down; nothing is left open by then (every connection is closed and the process ends).
    """
    code = main()
    logging.shutdown()  # the run's last log lines are still on their way to the handlers
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
