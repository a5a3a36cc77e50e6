"""Kill -9 at each write stage, and two runs at once: is anything lost, duplicated or left out of step?

On a data directory holding a small sample, a run of the whole graph is started in a child process that
kills itself (SIGKILL, as `kill -9` would) at the first write stage; the next run, killed at the next
stage, must first get past the damage the last one left, and so on; one more run ends the sequence (a
case per stage on a fresh directory would take about 12 whole runs more). Then two children run the
whole graph at the same moment on a fresh directory. Both are compared with a clean run of the same data
(the baseline):

- rows lost: rows a table of the baseline has and the recovered warehouse lacks (must be 0);
- duplicates: extra rows in the append-only histories, extra model versions, repeated order keys (must be 0);
- exports in step: tables whose Parquet snapshot equals the warehouse table (must be all).

    python benchmarks/faults.py                # every stage and the concurrent pair
    python benchmarks/faults.py --stages 3     # the first three stages and the concurrent pair
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402

from mlops_assets import warehouse  # noqa: E402
from mlops_assets.sample_data import generate_sample  # noqa: E402
from mlops_assets.settings import DataPaths  # noqa: E402

# A fast zoo; the second of two concurrent runs waits for the first however loaded the machine is.
SETTINGS = "models: [Naive, SeasonalNaive, HistoricAverage, CrostonOptimized]\nlocks: {run_wait_seconds: 3600}\n"
SAMPLE = {"n_products": 12, "n_customers": 5, "seed": 7}
MODEL_NAME = "sales_forecast"
# Tables that only ever grow: a second copy of a row there is a duplicate, not a replacement.
HISTORIES = ("monitoring.forecast_history", "monitoring.drift_summary")

# (name, how, target): where the child kills itself. In run order: no earlier run may have completed the
# asset a stage kills in (drift, for one, is skipped once Dagster has recorded it for the same gold).
STAGES = [
    ("raw orders: inside the DuckDB transaction", "in_transaction", "raw.sales_orders"),
    ("gold: inside the DuckDB transaction", "in_transaction", "gold.sales_data_for_forecast"),
    ("gold: committed, export not written", "before_export", "gold.sales_data_for_forecast"),
    ("gold: export half written", "mid_export", "gold.sales_data_for_forecast"),
    ("drift: row appended and exported, Dagster not told", "after_export", "monitoring.drift_summary"),
    ("backtest: committed, export not written", "before_export", "forecasting.backtest_forecasts"),
    ("registry: model logged, not registered", "before_register", ""),
    ("registry: registered, not gated", "after_register", ""),
    ("registry: promoted, Dagster not told", "after_promotion", ""),
    ("forecasts: committed, export not written", "before_export", "forecasting.forecasts"),
    ("history: appended and exported, Dagster not told", "after_export", "monitoring.forecast_history"),
    ("sales_overall: export half written", "mid_export", "serving.sales_overall"),
]


# --- the child: one run of the whole graph, maybe killed at one stage ---------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(how: str, target: str) -> None:
    """Patch the product's write path so that this process kills itself at the stage."""
    import mlflow

    from mlops_assets.registry import model_registry

    if how == "in_transaction":
        record = warehouse._record_version

        def record_then_die(con, table, write_id):
            record(con, table, write_id)
            if table == target:
                _die()

        warehouse._record_version = record_then_die
    elif how in ("before_export", "after_export", "mid_export"):
        publish = warehouse.publish_snapshot

        def publish_around(exports, table, df, write_id=""):
            if table != target:
                return publish(exports, table, df, write_id)
            if how == "mid_export":
                path = warehouse.snapshot_path(exports, table)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_name(f".{path.name}.{os.getpid()}.tmp").write_bytes(b"PAR1 half a file")
            if how == "after_export":
                publish(exports, table, df, write_id)
            _die()

        warehouse.publish_snapshot = publish_around
    elif how in ("before_register", "after_register"):
        # model_registry registers through the client (mlflow.register_model prints to stderr on every call).
        register = mlflow.MlflowClient.create_model_version

        def register_around(*args, **kwargs):
            if how == "after_register":
                register(*args, **kwargs)
            _die()

        mlflow.MlflowClient.create_model_version = register_around
    elif how == "after_promotion":
        apply = model_registry.apply_promotion

        def apply_then_die(decision, *, name):
            apply(decision, name=name)
            _die()

        model_registry.apply_promotion = apply_then_die


def child(data_dir: Path, settings: Path, how: str, target: str) -> int:
    import dagster as dg

    from mlops_assets.definitions import ASSETS, CHECKS
    from mlops_assets.wiring.resources import build_resources

    if how:
        _arm(how, target)
    instance = dg.DagsterInstance.local_temp(str(DataPaths(data_dir).dagster_home))
    started = time.monotonic()
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources=build_resources(str(data_dir), str(settings), landing_settle_seconds=0.0),
        instance=instance,
        raise_on_error=False,
    )
    print(json.dumps({"success": result.success, "seconds": time.monotonic() - started}), flush=True)
    return 0 if result.success else 1


# --- the parent: cases, recovery and the comparison with the baseline ---------------------------------------


@dataclass
class Outcome:
    case: str
    killed: bool
    got_past_earlier_damage: bool
    behind_after: int
    seconds: float


def _start(data_dir: Path, settings: Path, how: str = "", target: str = "") -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(DataPaths(data_dir).dagster_home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(data_dir), "--settings", str(settings), "--how", how,
         "--target", target],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _finish(process: subprocess.Popen) -> tuple[bool, bool, str]:
    """(killed, succeeded, last stderr lines) of a child."""
    out, err = process.communicate(timeout=1800)
    killed = process.returncode == -signal.SIGKILL
    succeeded = not killed and '"success": true' in out
    return killed, succeeded, "\n".join(err.strip().splitlines()[-3:])


def fresh_data_dir(root: Path, name: str) -> tuple[Path, Path]:
    data_dir = root / name
    generate_sample(data_dir / "landing", **SAMPLE)
    DataPaths(data_dir).dagster_home.mkdir(parents=True)
    settings = data_dir / "settings.yaml"
    settings.write_text(SETTINGS)
    return data_dir, settings


def warehouse_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(DataPaths(data_dir).warehouse), read_only=True) as con:
        names = [
            t for (t,) in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema <> 'mlops_meta' order by 1"
            ).fetchall()
        ]
        return {name: warehouse.read_table(con, name) for name in names}


def model_versions(data_dir: Path) -> int:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=DataPaths(data_dir).mlflow_tracking_uri)
    return len(client.search_model_versions(f"name='{MODEL_NAME}'"))


def exports_behind(data_dir: Path) -> int:
    """Tables whose snapshot is missing or differs from the warehouse (0 when there is no warehouse yet)."""
    if not DataPaths(data_dir).warehouse.exists():
        return 0
    return sum(not _in_step(data_dir, t, df) for t, df in warehouse_tables(data_dir).items())


def _in_step(data_dir: Path, table: str, df: pd.DataFrame) -> bool:
    path = warehouse.snapshot_path(DataPaths(data_dir).exports, table)
    if not path.exists():
        return False
    snapshot = pd.read_parquet(path)
    if len(snapshot) != len(df) or list(snapshot.columns) != list(df.columns):
        return False
    # Same values, whatever the dtypes (a snapshot of a replaced table is written from the DataFrame).
    for column in df.columns:
        missing = df[column].isna().to_numpy()
        if not (snapshot[column].isna().to_numpy() == missing).all():
            return False
        if not (snapshot[column][~missing].astype(str).to_numpy() == df[column][~missing].astype(str).to_numpy()).all():
            return False
    return True


def compare(data_dir: Path, baseline: dict[str, pd.DataFrame], baseline_versions: int) -> tuple[int, int, int, str]:
    """(rows lost, duplicates, exports in step) of a recovered data directory against the baseline."""
    tables = warehouse_tables(data_dir)
    lost, duplicates, notes = 0, 0, []
    for name, expected in baseline.items():
        got = tables.get(name, pd.DataFrame())
        if len(got) < len(expected):
            lost += len(expected) - len(got)
            notes.append(f"{name} {len(got)}/{len(expected)} rows")
        if name in HISTORIES and len(got) > len(expected):
            duplicates += len(got) - len(expected)
            notes.append(f"{name} +{len(got) - len(expected)} rows")
    orders = tables.get("raw.sales_orders", pd.DataFrame())
    if not orders.empty:
        repeated = int(orders.duplicated(["order_id", "product_id"]).sum())
        duplicates += repeated
        if repeated:
            notes.append(f"raw.sales_orders {repeated} repeated keys")
    extra_versions = max(model_versions(data_dir) - baseline_versions, 0)
    if extra_versions:
        duplicates += extra_versions
        notes.append(f"{extra_versions} extra model version(s)")
    in_step = sum(_in_step(data_dir, t, df) for t, df in tables.items())
    return lost, duplicates, in_step, "; ".join(notes)


def kill_sequence(root: Path, stages: list[tuple[str, str, str]]) -> tuple[Path, Path, list[Outcome]]:
    """One data directory, one run per stage, each killed at its stage: every run also recovers the last kill."""
    data_dir, settings = fresh_data_dir(root, "killed")
    outcomes = []
    for index, (name, how, target) in enumerate(stages):
        started = time.monotonic()
        killed, succeeded, err = _finish(_start(data_dir, settings, how, target))
        # A run after a kill must get at least as far as its own kill point (or finish).
        outcome = Outcome(name, killed, index == 0 or killed or succeeded, exports_behind(data_dir),
                          time.monotonic() - started)
        outcomes.append(outcome)
        print(f"{name:<52} killed={'yes' if killed else 'NO ':<3} "
              f"{'' if outcome.got_past_earlier_damage else 'FAILED before its kill point: ' + err} "
              f"exports behind after it={outcome.behind_after:<2} {outcome.seconds:5.1f} s "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    return data_dir, settings, outcomes


def verdict(label: str, ok: bool, data_dir: Path, baseline, versions: int, seconds: float) -> tuple[int, int, int, int]:
    lost, duplicates, in_step, notes = compare(data_dir, baseline, versions)
    tables = len(warehouse_tables(data_dir))
    print(f"{label:<52} recovered={'yes' if ok and not lost else 'NO '} lost={lost} dup={duplicates} "
          f"in_step={in_step}/{tables} {seconds:5.1f} s load {os.getloadavg()[0]:.2f}"
          + (f"  [{notes}]" if notes else ""), flush=True)
    return lost, duplicates, in_step, tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", type=int, default=len(STAGES), help="how many of the kill stages to replay")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--how", default="", help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(child(args.child, args.settings, args.how, args.target))

    root = Path(tempfile.mkdtemp(prefix="faults-bench-"))
    try:
        t0 = time.monotonic()
        data_dir, settings = fresh_data_dir(root, "baseline")
        _, ok, err = _finish(_start(data_dir, settings))
        if not ok:
            raise SystemExit(f"baseline run failed: {err}")
        baseline, versions = warehouse_tables(data_dir), model_versions(data_dir)
        print(f"baseline: clean run in {time.monotonic() - t0:.1f} s (load average {os.getloadavg()[0]:.2f}); "
              f"{len(baseline)} tables, {sum(len(t) for t in baseline.values()):,} rows, {versions} model version",
              flush=True)

        killed_dir, settings, outcomes = kill_sequence(root, STAGES[: args.stages])
        started = time.monotonic()
        _, final_ok, err = _finish(_start(killed_dir, settings))
        if not final_ok:
            print(f"final recovery run failed: {err}")
        after_kills = verdict("after the kills, one more run", final_ok, killed_dir, baseline, versions,
                              time.monotonic() - started)

        concurrent_dir, settings = fresh_data_dir(root, "concurrent")
        started = time.monotonic()
        pair = [_start(concurrent_dir, settings), _start(concurrent_dir, settings)]
        results = [_finish(process) for process in pair]
        both_ok = all(ok for _, ok, _ in results)
        if not both_ok:
            print("concurrent runs failed: " + "; ".join(err for _, ok, err in results if not ok))
        concurrent = verdict("two runs at once on one data directory", both_ok, concurrent_dir, baseline, versions,
                             time.monotonic() - started)

        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        recoveries = sum(o.got_past_earlier_damage for o in outcomes[1:]) + final_ok + both_ok
        print(
            f"\ncases tried: {len(outcomes) + 1} ({sum(o.killed for o in outcomes)} of {len(outcomes)} runs killed "
            f"with SIGKILL at their stage, then one run more; 1 pair of concurrent runs)"
            f"\nruns recovered: {recoveries}/{len(outcomes) + 1} (each run after a kill, the last run, the pair)"
            f"\nrows lost: {after_kills[0] + concurrent[0]}"
            f"\nduplicates: {after_kills[1] + concurrent[1]}"
            f"\nexports in step with the warehouse: {after_kills[2] + concurrent[2]}/{after_kills[3] + concurrent[3]}"
            f" (snapshots behind right after the kills, summed: {sum(o.behind_after for o in outcomes)})"
            f"\nwall {time.monotonic() - t0:.0f} s, children CPU {cpu.ru_utime + cpu.ru_stime:.0f} s, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
