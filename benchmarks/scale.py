"""The whole chain at scale, per engine: wall and CPU-seconds per asset, peak memory, ratio to bare StatsForecast.

Synthetic weekly series (benchmarks/backtest_speed.py's generator: 156 weeks, yearly season, every fifth
series intermittent) land as pre-aggregated series; every asset of the graph is then materialized in turn,
with its checks, on a real Dagster instance, DuckDB file and MLflow store. Each node runs in a process of
its own, as Dagster's default multiprocess executor runs each step, so that its peak resident memory is its
own. The baseline is the bare StatsForecast ``cross_validation`` + ``forecast`` (with the same interval
levels) and mlforecast's for the global model, on the same data and models, with every core.

    nice -n 19 python benchmarks/scale.py --sizes 10000,30000 --engines local,dask
    nice -n 19 python benchmarks/scale.py --bucket 2000     # one task: CPU, peak memory, file sizes
    nice -n 10 python benchmarks/scale.py --sizes 10000 --engines local --bare-max 0 --hierarchy
        # with the levels (HIERARCHY below: ids S<a><b><nn>, 10 groups of 10 subgroups): the chain's CPU with
        # and without the levels step, and the steps' peaks

Targets (issue 14): chain CPU within 1.15x of the bare calls, dask within 1.15x of local, peak memory of the
run process at the largest size within 1.3x of the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from backtest_speed import synthetic_weekly

ROOT = Path(__file__).resolve().parents[1]
# Levels of the synthetic ids S00000..S99999 (docs/levels.md): total, 10 groups ``a`` (the first two digits),
# 100 subgroups ``a/b`` (the third): 111 groups above the series at 10,000 series.
HIERARCHY = ("hierarchy:\n  levels: [[a], [a, b]]\n"
             "  id_pattern: \"S(?P<a>[0-9]{2})(?P<b>[0-9])[0-9]{2}\"\n")
LEVELS_ASSET = "forecasting/evaluation_by_level+forecasting/forecasts_by_level"


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peaks() -> tuple[float, float]:
    """Peak resident MB of this process and of its largest reaped descendant (pool or Dask workers)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _nodes():
    """The graph's nodes (an asset or a multi-asset) in dependency order."""
    from mlops_assets.definitions import ASSETS, defs

    order = {key: i for i, key in enumerate(defs.resolve_asset_graph().toposorted_asset_keys)}
    return sorted(ASSETS, key=lambda node: min(order[k] for k in node.keys))


def run_node(data_dir: Path, settings_file: Path, index: int) -> dict:
    """One node of the graph materialized with its checks in this process; wall, CPU, checks, peak memory."""
    import dagster as dg

    from mlops_assets.definitions import ASSETS, CHECKS
    from mlops_assets.wiring.resources import build_resources

    (data_dir / "dagster_home").mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(data_dir / "dagster_home"))
    resources = build_resources(str(data_dir), str(settings_file), landing_settle_seconds=0.0)
    node = _nodes()[index]
    wall, cpu = time.perf_counter(), _cpu()
    result = dg.materialize([*ASSETS, *CHECKS], resources=resources, instance=instance,
                            selection=dg.AssetSelection.assets(*node.keys))
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    starts, checks = {}, 0.0
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and "matches_contract" in event.step_key:
            checks += entry.timestamp - starts.get(event.step_key, entry.timestamp)
    own, workers = _peaks()
    return {"asset": "+".join(sorted(k.to_user_string() for k in node.keys)), "wall": wall, "cpu": cpu,
            "check_wall": checks, "peak_mb": own, "worker_peak_mb": workers,
            "load": os.getloadavg()[0], "ok": result.success}


def run_chain(data_dir: Path, settings_file: Path) -> dict:
    """Every node in turn, each in a process of its own, as Dagster's default multiprocess executor runs a
    step: so each node's peak memory is its own, not the largest of the nodes before it."""
    rows = []
    for index in range(len(_nodes())):
        rows.append(_child("node", data_dir, settings_file, index))
        if not rows[-1]["ok"]:
            sys.exit(f"{rows[-1]['asset']} failed; its log: {data_dir / 'run.log'}")
    return {"rows": rows}


def run_bare(data_dir: Path, settings_file: Path) -> dict:
    """StatsForecast's ``cross_validation`` + ``forecast`` for the zoo's local models, mlforecast's
    ``cross_validation`` + ``fit``/``predict`` for the global one: the library calls the chain wraps."""
    import pandas as pd
    from statsforecast import StatsForecast

    from mlops_assets.forecasting.global_model import build_mlforecast, spec_for
    from mlops_assets.forecasting.zoo import GLOBAL_MODEL, build_fallback, build_models, default_models
    from mlops_assets.settings import load_settings

    settings = load_settings(settings_file)
    names = default_models(settings)
    local = [n for n in names if n != GLOBAL_MODEL]
    df = pd.read_csv(next((data_dir / "landing" / "series").glob("*.csv")), parse_dates=["ds"])
    sf = StatsForecast(models=build_models(local, settings.season, settings.horizon), freq=settings.frequency,
                       n_jobs=-1, fallback_model=build_fallback(settings.season, settings.horizon))
    wall, cpu = time.perf_counter(), _cpu()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
        sf.cross_validation(df=df, h=settings.horizon, n_windows=settings.backtest.windows,
                            step_size=settings.step)
        if GLOBAL_MODEL in names:
            longest = int(df.groupby("unique_id").size().max())
            build_mlforecast(spec_for(settings.frequency), settings.frequency, settings.season, settings.horizon,
                             settings.seed, longest, False).cross_validation(
                df=df, n_windows=settings.backtest.windows, h=settings.horizon, step_size=settings.step,
                static_features=[])
        cv_wall, cv_cpu = time.perf_counter() - wall, _cpu() - cpu
        sf.forecast(df=df, h=settings.horizon, level=settings.interval_levels)
        if GLOBAL_MODEL in names:
            mlf = build_mlforecast(spec_for(settings.frequency), settings.frequency, settings.season, settings.horizon,
                             settings.seed, longest, False)
            mlf.fit(df, static_features=[])
            mlf.predict(settings.horizon)
    own, workers = _peaks()
    return {"cv_wall": cv_wall, "cv_cpu": cv_cpu, "wall": time.perf_counter() - wall, "cpu": _cpu() - cpu,
            "peak_mb": own, "worker_peak_mb": workers, "load": os.getloadavg()[0], "models": names}


def one_bucket(n: int) -> dict:
    """One backtest task on a model group of ``n`` series, as a worker runs it: the per-group figures of the plan."""
    from dataclasses import asdict

    from mlops_assets.forecasting.engine import BacktestTask, ModelGroup
    from mlops_assets.forecasting.zoo import default_models
    from mlops_assets.settings import Settings

    settings = Settings()
    history = synthetic_weekly(n)
    with tempfile.TemporaryDirectory() as tmp:
        group = ModelGroup(0, tuple(sorted(history["unique_id"].unique())), 0.0)
        task = BacktestTask(tmp, settings, tuple(default_models(settings)))
        task.input_path(group).parent.mkdir(parents=True)
        history.to_parquet(task.input_path(group), index=False)
        del history
        wall = time.perf_counter()
        report = task(group)
        wall = time.perf_counter() - wall
        return {**asdict(report), "wall": wall, "input_mb": task.input_path(group).stat().st_size / 2**20,
                "part_mb": task.part_path(group).stat().st_size / 2**20, "load": os.getloadavg()[0]}


def _child(kind: str, data_dir: Path, settings_file: Path, index: int | None = None) -> dict:
    # The graph's nodes follow the settings (a hierarchy adds the levels' step): the child reads the same file.
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "MLOPS_SETTINGS": str(settings_file),
           "DAGSTER_DISABLE_TELEMETRY": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    log = data_dir / "run.log"
    node = ["--node", str(index)] if index is not None else []
    with log.open("a") as err:
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--data", str(data_dir), "--settings",
                              str(settings_file), *node], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    if out.returncode:
        sys.exit(f"{kind} run failed; its log:\n{log.read_text()[-5000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(results: dict) -> None:
    print(f"\n{'series':>7} {'engine':>6} {'asset':<44} {'wall s':>8} {'CPU s':>8} {'checks s':>8} "
          f"{'peak MB':>8} {'worker MB':>9} {'load':>5}")
    for (n, engine), result in results.items():
        if engine == "bare":
            print(f"{n:>7} {'bare':>6} {'cross_validation (+ forecast)':<44} {result['wall']:>8.1f} "
                  f"{result['cpu']:>8.1f} {'':>8} {result['peak_mb']:>8.0f} {result['worker_peak_mb']:>9.0f} "
                  f"{result['load']:>5.1f}")
            continue
        for row in result["rows"]:
            print(f"{n:>7} {engine:>6} {row['asset']:<44} {row['wall']:>8.1f} {row['cpu']:>8.1f} "
                  f"{row['check_wall']:>8.1f} {row['peak_mb']:>8.0f} {row['worker_peak_mb']:>9.0f} "
                  f"{row['load']:>5.1f}")


def _summary(results: dict, sizes: list[int], engines: list[str]) -> None:
    print(f"\n{'series':>7} {'engine':>6} {'chain wall s':>12} {'chain CPU s':>11} {'backtest CPU / bare CV':>22} "
          f"{'chain CPU / bare':>16} {'vs local CPU':>12} {'peak MB':>8}")
    for n in sizes:
        bare = results.get((n, "bare"), {"cv_cpu": float("nan"), "cpu": float("nan")})
        for engine in [e for e in engines if (n, e) in results]:
            rows = results[(n, engine)]["rows"]
            wall, cpu = sum(r["wall"] for r in rows), sum(r["cpu"] for r in rows)
            backtest = next(r for r in rows if r["asset"] == "forecasting/backtest_forecasts")
            levels = [r for r in rows if r["asset"] == LEVELS_ASSET]
            if levels:
                rest = [r for r in rows if r["asset"] != LEVELS_ASSET]
                without = sum(r["cpu"] for r in rest)
                print(f"{n:>7} {engine:>6} levels step {levels[0]['cpu']:.1f} CPU-s, {levels[0]['wall']:.1f} s wall "
                      f"(load {levels[0]['load']:.1f}), peak {levels[0]['peak_mb']:.0f} MB (workers "
                      f"{levels[0]['worker_peak_mb']:.0f} MB); the chain without it {without:.1f} CPU-s, largest "
                      f"step {max(r['peak_mb'] for r in rest):.0f} MB; with / without: {cpu / without:.3f} "
                      "(target <= 1.3)")
            local = sum(r["cpu"] for r in results[(n, "local")]["rows"]) if (n, "local") in results else cpu
            print(f"{n:>7} {engine:>6} {wall:>12.1f} {cpu:>11.1f} {backtest['cpu'] / bare['cv_cpu']:>22.3f} "
                  f"{cpu / bare['cpu']:>16.3f} {cpu / local:>12.3f} {max(r['peak_mb'] for r in rows):>8.0f}")
    for engine in engines:
        if (sizes[0], engine) not in results or (sizes[-1], engine) not in results:
            continue
        small, large = ({r["asset"]: r["peak_mb"] for r in results[(n, engine)]["rows"]} for n in (sizes[0], sizes[-1]))
        print(f"\n{engine}: peak memory per step process at {sizes[-1]:,} series / at {sizes[0]:,} (target <= 1.3)")
        for asset, peak in small.items():
            print(f"  {asset:<60} {peak:>7.0f} MB -> {large[asset]:>7.0f} MB  {large[asset] / peak:>6.3f}")
        print(f"  {'largest step':<60} {max(small.values()):>7.0f} MB -> {max(large.values()):>7.0f} MB  "
              f"{max(large.values()) / max(small.values()):>6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,3000")
    parser.add_argument("--engines", default="local,dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bare-max", type=int, help="run the bare baseline only at sizes up to this one "
                        "(its ratio holds across sizes; skipping it at the largest saves an hour on a small machine)")
    parser.add_argument("--dask-max", type=int, help="run the dask engine only at sizes up to this one (its ratio "
                        "to local is measured side by side at those sizes)")
    parser.add_argument("--models", help="comma-separated zoo instead of the default one (e.g. a cheap zoo, to "
                        "measure the chain's memory at sizes the default zoo's CPU cost keeps off a small machine)")
    parser.add_argument("--hierarchy", action="store_true", help="declare HIERARCHY: the levels' step runs too")
    parser.add_argument("--bucket", type=int, help="only time one backtest task on a bucket of this many series")
    parser.add_argument("--child", choices=["chain", "node", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--node", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (run_chain(args.data, args.settings) if args.child == "chain"
                  else run_node(args.data, args.settings, args.node) if args.child == "node"
                  else run_bare(args.data, args.settings))
        print(json.dumps(result))
        return
    if args.bucket:
        print(json.dumps(one_bucket(args.bucket)))
        return
    sizes, engines = [int(s) for s in args.sizes.split(",")], args.engines.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            history = synthetic_weekly(n)
            bare = [] if args.bare_max is not None and n > args.bare_max else ["bare"]
            run_engines = [e for e in engines if e != "dask" or args.dask_max is None or n <= args.dask_max]
            for kind in [*bare, *run_engines]:
                data_dir = Path(tmp) / f"{n}-{kind}"
                (data_dir / "landing" / "series").mkdir(parents=True)
                history.to_csv(data_dir / "landing" / "series" / "synthetic.csv", index=False)
                settings = data_dir / "settings.yaml"
                settings.write_text(f"source: series\ncompute: {{engine: {kind if kind != 'bare' else 'local'}, "
                                    f"workers: {args.workers}}}\n"
                                    + (f"models: [{args.models}]\n" if args.models else "")
                                    + (HIERARCHY if args.hierarchy else ""))
                print(f"{n:,} series, {kind}: load {os.getloadavg()[0]:.1f}", flush=True)
                results[(n, kind)] = _child("chain" if kind != "bare" else "bare", data_dir, settings)
                print(json.dumps(results[(n, kind)]), flush=True)
    _table(results)
    _summary(results, sizes, engines)


if __name__ == "__main__":
    main()
