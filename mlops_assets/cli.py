"""`mlops-assets`: the commands an operator runs beside Dagster.

    mlops-assets summary                     tables, row counts and where everything is
    mlops-assets plot --product "Etorki"     the actuals-and-forecast plot of one product
    mlops-assets rollback --version 3        point the alias champion at an earlier model version
    mlops-assets relocate                    after moving or copying the data directory: MLflow uses the new place

Every command reads the Parquet snapshots in <data dir>/exports, never the DuckDB file, so it works while a
run holds the warehouse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

from mlops_assets.settings import DataPaths, load_settings
from mlops_assets.warehouse import read_snapshot, snapshot_path


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
        f"  duckdb -c \"select * from '{snapshot_path(paths.exports, 'serving.sales_overall')}' limit 5\"",
        f"plots:          {paths.plots}",
        f"drift reports:  {paths.reports / 'drift'}",
        f"MLflow:         make mlflow-ui  (store {paths.mlflow_tracking_uri})",
        "Dagster UI:     make dev, then open http://127.0.0.1:3000",
    ]
    return "\n".join(lines)


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


def rollback(version: str) -> str:
    import mlflow

    from mlops_assets.registry import model_registry

    settings = load_settings()
    paths = DataPaths.from_env()
    uri = settings.mlflow_tracking_uri or paths.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    previous = model_registry.rollback(settings.registered_model_name, version)
    return (
        f"{settings.registered_model_name}@champion now points at version {version} (was {previous}); "
        "the next materialization of forecasting/forecasts uses it"
    )


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
    commands.add_parser("summary", help="tables, row counts and where everything is")
    plot = commands.add_parser("plot", help="write the plot of one product by name")
    plot.add_argument("--product", required=True, help="product name, or a part of it")
    plot.add_argument("--out", type=Path, help="PNG file to write (default: <data dir>/plots/<id>.png)")
    back = commands.add_parser("rollback", help="point the alias champion at an earlier model version")
    back.add_argument("--version", required=True)
    commands.add_parser("relocate", help="after moving or copying the data directory: MLflow uses the new place")
    args = parser.parse_args(argv)
    paths = DataPaths.from_env()
    try:
        if args.command == "summary":
            print(summary(paths))
        elif args.command == "plot":
            for path in plot_product(paths, args.product, args.out):
                print(f"wrote {path}")
        elif args.command == "relocate":
            print(relocate(paths))
        else:
            print(rollback(args.version))
    except (LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # MLflow errors carry their own clear message
        if type(error).__name__ != "MlflowException":
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
