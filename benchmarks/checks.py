"""Contract checks against their asset's time: pandas by bucket (the path below CHECK_SQL_ROWS) beside DuckDB.

Synthetic weekly series (backtest_speed.synthetic_weekly, 156 weeks) land as one series file; raw/series and
gold/sales_data_for_forecast are materialized on a real Dagster instance and DuckDB file, their step time
taken from the event log. Each table's contract (the schema its check builds) is then evaluated both ways on
the stored table, in one run: pandas, reading it bucket by bucket (contracts.validate_in_pandas), and DuckDB
(schemas_sql.validate_in_duckdb). Both must find 0 failures on this clean data. Last, the asset's contract
check runs as Dagster runs it (the DuckDB path from CHECK_SQL_ROWS), timed by its step.

    nice -n 19 python benchmarks/checks.py --sizes 10000,32000

Target (issue 14): a check costs at most 10% of its asset's time.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from backtest_speed import synthetic_weekly

TABLES = {"raw/series": "raw.series", "gold/sales_data_for_forecast": "gold.sales_data_for_forecast"}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _step_seconds(instance, run_id: str) -> float:
    starts, total = {}, 0.0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            total += entry.timestamp - starts[event.step_key]
    return total


def _timed(fn) -> tuple[object, float, float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - wall, _cpu() - cpu, os.getloadavg()[0]


def measure(n_series: int, data_dir: Path) -> list[dict]:
    import dagster as dg

    from mlops_assets import schemas
    from mlops_assets.catalog import CONTRACT_CHECK
    from mlops_assets.contracts import CHUNK_ROWS, validate_in_pandas
    from mlops_assets.definitions import ASSETS, CHECKS
    from mlops_assets.schemas_sql import validate_in_duckdb
    from mlops_assets.wiring.resources import build_resources

    (data_dir / "landing" / "series").mkdir(parents=True)
    synthetic_weekly(n_series).to_csv(data_dir / "landing" / "series" / "synthetic.csv", index=False)
    settings_file = data_dir / "settings.yaml"
    settings_file.write_text("source: series\n")
    (data_dir / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(data_dir / "dagster_home"))
    resources = build_resources(str(data_dir), str(settings_file), landing_settle_seconds=0.0)
    warehouse, settings = resources["warehouse"], resources["project"].settings
    contracts = {"raw.series": schemas.series_schema(settings.regressors.series_columns),
                 "gold.sales_data_for_forecast": schemas.gold_schema(settings.grain, settings.frequency)}
    nodes = {key.to_user_string(): node for node in ASSETS for key in node.keys}
    # The other raw tables first (empty with source: series), so that gold finds every input it reads.
    for node in {id(n): n for k, n in nodes.items() if k.startswith("raw/") and k not in TABLES}.values():
        assert dg.materialize(ASSETS, resources=resources, instance=instance,
                              selection=dg.AssetSelection.assets(*node.keys)).success
    rows = []
    for asset, table in TABLES.items():
        key, keys = dg.AssetKey(asset.split("/")), nodes[asset].keys  # a multi-asset is materialized whole
        result, _, asset_cpu, _ = _timed(lambda keys=keys: dg.materialize(
            ASSETS, resources=resources, instance=instance, selection=dg.AssetSelection.assets(*keys)))
        assert result.success, asset
        asset_wall = _step_seconds(instance, result.run_id)
        n_rows = warehouse.query(f"select count(*) as n from {table}")["n"].iloc[0]
        (pandas_failures, _, _), pandas_wall, pandas_cpu, pandas_load = _timed(
            lambda table=table: validate_in_pandas(warehouse.connection, table, contracts[table], CHUNK_ROWS))

        def in_duckdb(table: str = table) -> int:
            with warehouse.connection() as con:
                return validate_in_duckdb(con, table, contracts[table])[0]

        duckdb_failures, duckdb_wall, duckdb_cpu, duckdb_load = _timed(in_duckdb)
        assert pandas_failures == duckdb_failures == 0, (table, pandas_failures, duckdb_failures)
        # The asset's contract check as Dagster runs it (the DuckDB path from CHECK_SQL_ROWS): its step time.
        checked = dg.materialize([*ASSETS, *CHECKS], resources=resources, instance=instance,
                                 selection=dg.AssetSelection.checks(dg.AssetCheckKey(key, CONTRACT_CHECK)))
        assert checked.success and all(e.passed for e in checked.get_asset_check_evaluations()), asset
        check_step = _step_seconds(instance, checked.run_id)
        rows.append({"series": n_series, "table": table, "rows": int(n_rows), "asset_wall": asset_wall,
                     "asset_cpu": asset_cpu, "pandas_wall": pandas_wall, "pandas_cpu": pandas_cpu,
                     "pandas_load": pandas_load, "duckdb_wall": duckdb_wall, "duckdb_cpu": duckdb_cpu,
                     "duckdb_load": duckdb_load, "check_step": check_step})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,3000")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"{n:,} series: load {os.getloadavg()[0]:.1f}", flush=True)
            rows += measure(n, Path(tmp) / str(n))
    print(f"\n{'table':<30} {'rows':>10} {'asset s':>8} {'asset CPU':>9} | {'pandas s':>8} {'CPU':>6} {'load':>5} "
          f"{'/asset':>7} | {'duckdb s':>8} {'CPU':>6} {'load':>5} {'/asset':>7} | {'check step s':>12} {'/asset':>7}")
    for r in rows:
        print(f"{r['table']:<30} {r['rows']:>10,} {r['asset_wall']:>8.1f} {r['asset_cpu']:>9.1f} | "
              f"{r['pandas_wall']:>8.2f} {r['pandas_cpu']:>6.2f} {r['pandas_load']:>5.1f} "
              f"{r['pandas_wall'] / r['asset_wall']:>7.3f} | {r['duckdb_wall']:>8.2f} {r['duckdb_cpu']:>6.2f} "
              f"{r['duckdb_load']:>5.1f} {r['duckdb_wall'] / r['asset_wall']:>7.3f} | {r['check_step']:>12.2f} "
              f"{r['check_step'] / r['asset_wall']:>7.3f}")
    print("target: check wall / asset wall <= 0.1")


if __name__ == "__main__":
    main()
