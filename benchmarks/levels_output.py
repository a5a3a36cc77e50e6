"""What every level costs in the tables people read: serving.sales_overall_by_level and the levels' accuracy, each
beside the step it mirrors for the series (serving.sales_overall, monitoring.forecast_accuracy), on the same
synthetic warehouse, side by side.

A DuckDB file holds a gold table of N weekly series (total / 10 categories / 100 brands / the products), the
series' forecasts of its last 12 weeks (so that every issued row is scored) and the levels' default forecasts
(BottomUp: each group the sum of its series), both already issued into their histories. Each step runs in a
child process of its own: wall seconds, the child's peak RSS, and the load average beside them. No PNG is
drawn (plots.max_series 0): the drawing is the series plots' own cost, the same per PNG.

    python benchmarks/levels_output.py --series 10000
    python benchmarks/levels_output.py --series 2000 --weeks 104
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from mlops_assets.monitoring.accuracy import issue_sql
from mlops_assets.monitoring.accuracy_by_level import issue_source, score_levels
from mlops_assets.monitoring.accuracy_by_range import score_by_range
from mlops_assets.serving.overall_by_level import build_overall_by_level
from mlops_assets.serving.overall_by_range import build_overall_by_range
from mlops_assets.settings import Settings

SETTINGS = Settings(hierarchy={})  # total / category / brand / product
HORIZON = 12
BOUNDS = "y_hat - 5 as lo_80, y_hat + 5 as hi_80, y_hat - 9 as lo_95, y_hat + 9 as hi_95"


def build_warehouse(path: Path, n_series: int, weeks: int) -> None:
    with duckdb.connect(str(path)) as con:
        for schema in ("gold", "forecasting", "monitoring"):
            con.execute(f"create schema {schema}")
        con.execute(f"""create table gold.sales_data_for_forecast as
            select 'P' || lpad(s::varchar, 6, '0') as unique_id, d::timestamp_ns as ds,
                   (hash(s, w) % 50)::double as y, false as imputed,
                   'P' || lpad(s::varchar, 6, '0') as product_id, 'Product ' || s as product_name,
                   'B' || (s % 100) as brand, 'C' || (s % 100 % 10) as category
            from range({n_series}) t(s), range({weeks}) u(w),
                 lateral (select timestamp '2023-01-02' + to_weeks(w::int) as d)""")
        con.execute(f"""create table forecasting.forecasts as
            select unique_id, ds, 'Naive' as model, y + 1 as y_hat, {BOUNDS.replace('y_hat', '(y + 1)')},
                   '1' as model_version from gold.sales_data_for_forecast
            where ds > (select max(ds) from gold.sales_data_for_forecast) - to_weeks({HORIZON})""")
        con.execute("create table forecasting.series_champions as select distinct unique_id, 'Naive' as model, "
                    "20.0 as smape from forecasting.forecasts")
        con.execute(f"""create table forecasting.forecasts_by_level as
            with bottom as (select f.unique_id, f.ds, f.y_hat, g.category, g.brand from forecasting.forecasts f
                            join (select distinct unique_id, category, brand from gold.sales_data_for_forecast) g
                            using (unique_id)),
            nodes as (
                select 'product' as level, unique_id, ds, y_hat from bottom
                union all select 'category/brand', 'category/' || category || '/brand/' || brand, ds, sum(y_hat)
                    from bottom group by all
                union all select 'category', 'category/' || category, ds, sum(y_hat) from bottom group by all
                union all select 'total', 'total', ds, sum(y_hat) from bottom group by all)
            select level, unique_id, ds, 'BottomUp' as method, y_hat, {BOUNDS}, 'Naive' as base_model,
                   true as is_default from nodes""")
        issued = "2026-01-01 00:00:00"
        con.execute(f"create table monitoring.forecast_history as {issue_sql(con, 'forecasting.forecasts')}",
                    [issued])
        source = issue_source(con, "forecasting.forecasts_by_level", SETTINGS.frequency)
        con.execute(f"create table monitoring.forecast_history_by_level as {issue_sql(con, source)}", [issued])


def _step(name: str, warehouse: str, scratch: str, queue: mp.Queue) -> None:
    start = time.perf_counter()
    folder = Path(scratch) / name
    with duckdb.connect(warehouse, read_only=True) as con:
        bucket = SETTINGS.compute.bucket_series
        if name == "sales_overall":
            build_overall_by_range(con, "gold.sales_data_for_forecast", "forecasting.forecasts", folder / "parts",
                                   folder / "plots", bucket, 0)
        elif name == "sales_overall_by_level":
            build_overall_by_level(con, "gold.sales_data_for_forecast", "forecasting.forecasts_by_level", SETTINGS,
                                   folder / "parts", folder / "plots", bucket, 0)
        elif name == "forecast_accuracy":
            score_by_range(con, history_table="monitoring.forecast_history", served_table="monitoring.served",
                           gold="gold.sales_data_for_forecast", champions="forecasting.series_champions",
                           parts=folder / "parts", range_series=bucket)
        else:
            score_levels(con, history="monitoring.forecast_history_by_level", gold="gold.sales_data_for_forecast",
                         settings=SETTINGS, parts=folder / "parts", range_series=bucket)
    queue.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(name: str, warehouse: Path, scratch: Path) -> tuple[float, float]:
    queue: mp.Queue = mp.get_context("spawn").Queue()
    child = mp.get_context("spawn").Process(target=_step, args=(name, str(warehouse), str(scratch), queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="levels-output-") as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        build_warehouse(warehouse, args.series, args.weeks)
        print(f"{args.series} series x {args.weeks} weeks; bucket_series {SETTINGS.compute.bucket_series}; "
              f"best of {args.repeats}")
        print("| step | wall s | peak RSS MB | load | ratio to the series' step (wall, RSS) |")
        print("|---|---|---|---|---|")
        pairs = [("sales_overall", "sales_overall_by_level"), ("forecast_accuracy", "forecast_accuracy_by_level")]
        for base, levels in pairs:
            found = {}
            for name in (base, levels):
                runs = [measure(name, warehouse, Path(tmp)) for _ in range(args.repeats)]
                found[name] = min(runs)
                wall, rss = found[name]
                ratio = "" if name == base else \
                    f"{wall / found[base][0]:.2f}x, {rss / found[base][1]:.2f}x"
                print(f"| {name} | {wall:.2f} | {rss:.0f} | {os.getloadavg()[0]:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
