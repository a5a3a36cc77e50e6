"""Do forecasts that add up cost accuracy? Holdout accuracy per level: unreconciled, BottomUp, the default.

For each dataset and origin (the last holdout, then each earlier one a horizon back), everything after the
origin is cut, the chain's tables are made from the rest by the product's own functions (levels.frames.chain_tables:
the default zoo's backtest, the selection, each series' champion refitted; no regressors), the levels layer runs
on them (mlops_assets.levels.forecast_levels: the zoo and the global model on the groups only, the selection level
by level, the reconciliation chosen on the backtest windows), and its forecasts are
scored on the held-out periods, per level: sMAPE on the M4 scale 0-200 (mean over the level's forecast nodes)
and WAPE in percent. Base = each node's own champion (not coherent); BottomUp = the sum of the series'
champions (today's bottom forecasts summed); default = the method ``hierarchy.reconciliation: auto`` chose.

Cost: CPU-seconds (this process and its workers) and wall seconds of the layer (bucket by bucket from DuckDB,
as the asset runs it), beside the load average, and of the chain's forecasting of the series (chain_tables:
backtest, selection, refit) for a ratio; and the aggregation by DuckDB (the
product's) against pandas' groupby and ``hierarchicalforecast.utils.aggregate`` on the same rows.

    python benchmarks/hierarchy.py --datasets sample,m5     # 4 origins
    python benchmarks/hierarchy.py --datasets "" --scale 10000   # the aggregation alone at 10,000 series
    python benchmarks/hierarchy.py --datasets "" --chain         # the sample's whole chain, with and without
    python benchmarks/hierarchy.py --datasets sample --origins 1
    python benchmarks/hierarchy.py --datasets favorita --first-origin 2   # origins 2 and 3 only

Datasets: the product's sample (total / category / brand / product; orders -> gold), Favorita store 1 daily
(store total / family), M5 CA_3 HOBBIES_2 weekly (department total / item), from ../shared/data (or SHARED_DATA).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import _timed

from mlops_assets.levels.frames import chain_tables, in_memory
from mlops_assets.levels.hierarchy import aggregate, level_spec, series_attributes
from mlops_assets.levels.layer import Tables, forecast_levels
from mlops_assets.levels.reconcile import BASE
from mlops_assets.settings import Settings

GOLD = Tables().gold
DATA = Path(os.environ.get("SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SAMPLE = Settings(hierarchy={})
FAVORITA = Settings(source="series", frequency="D", horizon=14, season_length=7, hierarchy={})
M5 = Settings(source="series", hierarchy={})


def _load() -> float:
    return os.getloadavg()[0]


def sample_gold(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gold and excluded series of the product's sample, through its own ingestion and aggregation.

    Which series are excluded is decided on the whole sample: its exclusions are seeded defects (too short,
    discontinued), not a judgement on the future (as in benchmarks/accuracy.py)."""
    from mlops_assets.gold.aggregation import build_gold
    from mlops_assets.ingest.ingestion import read_landing_file
    from mlops_assets.sample_data import generate_sample

    with tempfile.TemporaryDirectory() as tmp:
        files = generate_sample(Path(tmp))
        tables = {t: read_landing_file(p, t, landing_root=Path(tmp)).rows for t, p in files.items()}
    return build_gold(tables, settings)


def _series_file(name: str) -> pd.DataFrame:
    path = DATA / name
    if not path.exists():
        raise SystemExit(f"{path} not found: put the shared datasets in ../shared/data or point SHARED_DATA at "
                         "them; `--datasets sample` runs without them")
    return pd.read_csv(path, usecols=["unique_id", "ds", "y"], parse_dates=["ds"], dtype={"unique_id": str})


def split(name: str, settings: Settings, origin: int) -> tuple[pd.DataFrame, set[str], pd.DataFrame]:
    """Training gold (every series), the excluded ids, and the gold rows of the held-out periods."""
    from mlops_assets.gold.aggregation import build_gold_from_series

    offset = pd.tseries.frequencies.to_offset(settings.frequency)
    if name == "sample":
        gold, excluded = sample_gold(settings)
        end = gold["ds"].max()
        start = end - (origin + 1) * settings.horizon * offset + offset
        train = gold[gold["ds"] < start]
        test = gold[(gold["ds"] >= start) & (gold["ds"] < start + settings.horizon * offset)]
        return train, set(excluded["unique_id"]), test
    raw = _series_file({"favorita": "favorita_daily_store1.csv", "m5": "m5_weekly_ca3_hobbies2.csv"}[name])
    end = raw["ds"].max()
    start = end - (origin + 1) * settings.horizon * offset + offset
    # Gold is built without the held-out periods, so exclusions are decided as the product would have.
    train, excluded = build_gold_from_series(raw[raw["ds"] < start], settings)
    held = raw[(raw["ds"] >= start) & (raw["ds"] < start + settings.horizon * offset)]
    full, _ = build_gold_from_series(raw[raw["ds"] < start + settings.horizon * offset], settings)
    test = full[full["ds"] >= start]
    if held.empty or test.empty:
        raise ValueError(f"{name}: no held-out rows at origin {origin}")
    return train, set(excluded["unique_id"]), test


def holdout_scores(result, train: pd.DataFrame, test: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per level and method: mean sMAPE (0-200) and WAPE (%) over the level's forecast nodes."""
    from mlops_assets.forecasting.metrics import smape_terms

    known = test[test["unique_id"].isin(train["unique_id"].unique())]
    with in_memory(known)() as con:
        actual = aggregate(con, GOLD, result.hierarchy, settings.frequency).rename(columns={"y": "actual"})
    fc = result.forecasts[result.forecasts["base_model"] != "not forecast"]
    rows = fc.merge(actual, on=["unique_id", "ds"], how="left")
    rows["actual"] = rows["actual"].fillna(0.0)
    rows["smape"] = smape_terms(rows["actual"].to_numpy(), rows["y_hat"].to_numpy())
    rows["abs_error"] = (rows["y_hat"] - rows["actual"]).abs()
    rows["abs_actual"] = rows["actual"].abs()
    per_node = rows.groupby(["level", "method", "unique_id"]).agg(
        smape=("smape", "mean"), abs_error=("abs_error", "sum"), abs_actual=("abs_actual", "sum"))
    per_node["wape"] = 100 * per_node["abs_error"] / per_node["abs_actual"].replace(0, np.nan)
    return per_node.groupby(["level", "method"])[["smape", "wape"]].mean().reset_index()


def pandas_aggregate(history: pd.DataFrame, hierarchy, frequency: str) -> pd.DataFrame:
    """The same table by pandas' groupby (what the layer did before it summed in DuckDB): sums on the period
    grid, the series' rows, in node order."""
    from mlops_assets.levels.hierarchy import _fill_grid

    bottom = history[["unique_id", "ds", "y"]].astype({"unique_id": str, "y": float})
    upper = hierarchy.membership[hierarchy.membership["node"] != hierarchy.membership["unique_id"]]
    sums = bottom.merge(upper, on="unique_id").groupby(["node", "ds"], sort=True)["y"].sum().reset_index()
    out = pd.concat([_fill_grid(sums.rename(columns={"node": "unique_id"}), frequency), bottom], ignore_index=True)
    out["_node"] = pd.Index(hierarchy.nodes["unique_id"]).get_indexer(out["unique_id"])
    return out.sort_values(["_node", "ds"], kind="stable").drop(columns="_node").reset_index(drop=True)


def scale_aggregation(n_series: int = 10_000, weeks: int = 104, repeats: int = 3) -> None:
    """Aggregation alone at scale: synthetic gold of ``n_series`` products in 20 categories of 10 brands."""
    from mlops_assets.levels.hierarchy import build_hierarchy

    rng = np.random.default_rng(0)
    ids = [f"P{i:05d}" for i in range(n_series)]
    ds = pd.date_range("2023-01-02", periods=weeks, freq="W-MON")
    gold = pd.DataFrame({"unique_id": np.repeat(ids, weeks), "ds": np.tile(ds, n_series),
                         "y": rng.poisson(5, n_series * weeks).astype(float)})
    category = {uid: f"C{i % 20:02d}" for i, uid in enumerate(ids)}
    gold["category"] = gold["unique_id"].map(category)
    gold["brand"] = gold["category"] + "-B" + (gold["unique_id"].str[1:].astype(int) % 10).astype(str)
    connect = in_memory(gold)
    with connect() as con:
        hierarchy = build_hierarchy(series_attributes(con, GOLD, SAMPLE), SAMPLE)
        ours = min(_timed(aggregate, con, GOLD, hierarchy, "W-MON")[2] for _ in range(repeats))
        read = min(_timed(lambda: pandas_aggregate(con.execute(f"select unique_id, ds, y from {GOLD}").df(),
                                                   hierarchy, "W-MON"))[2] for _ in range(repeats))
    pandas = min(_timed(pandas_aggregate, gold, hierarchy, "W-MON")[2] for _ in range(repeats))
    print(f"\n## aggregation at {n_series:,} series x {weeks} weeks ({len(gold):,} rows, "
          f"{len(hierarchy.nodes):,} nodes; load {_load():.2f}): DuckDB {ours:.3f} s, pandas {pandas:.3f} s "
          f"(read from DuckDB first {read:.3f} s)", flush=True)


def aggregation_cost(train: pd.DataFrame, result, settings: Settings, repeats: int = 3) -> dict:
    """Seconds of the product's aggregation (DuckDB) vs pandas and hierarchicalforecast, best of ``repeats``."""
    from hierarchicalforecast.utils import aggregate as hf_aggregate

    connect = in_memory(train)
    with connect() as con:
        attributes = series_attributes(con, GOLD, settings)
        ours = min(_timed(aggregate, con, GOLD, result.hierarchy, settings.frequency)[2] for _ in range(repeats))
    frame = train[["unique_id", "ds", "y"]].merge(attributes, on="unique_id")
    frame = frame.assign(_total="total").rename(columns={"unique_id": "series"})
    spec = [["_total", *columns] for columns in level_spec(settings)]
    spec.append([*spec[-1], "series"])
    pandas = min(_timed(pandas_aggregate, train, result.hierarchy, settings.frequency)[2] for _ in range(repeats))
    with connect() as con:  # the same, the rows first read from the stored table as the asset would
        read = min(_timed(lambda: pandas_aggregate(con.execute(f"select unique_id, ds, y from {GOLD}").df(),
                                                   result.hierarchy, settings.frequency))[2]
                   for _ in range(repeats))
    theirs = min(_timed(hf_aggregate, frame, spec)[2] for _ in range(repeats))
    return {"duckdb_s": ours, "pandas_s": pandas, "pandas_read_s": read, "hierarchicalforecast_s": theirs}


def run(name: str, settings: Settings, origin: int) -> dict:
    train, excluded, test = split(name, settings, origin)
    load = _load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The chain's forecasts of the series: its default zoo (LightGBM and Combination included).
        chain, bottom_cpu, bottom_wall = _timed(chain_tables, train, excluded, settings)
        result, cpu, wall = _timed(forecast_levels, in_memory(train, excluded, chain=chain), settings)
    scores = holdout_scores(result, train, test, settings)
    return {"dataset": name, "origin": origin, "scores": scores, "method": result.method,
            "summary": result.summary, "cpu": cpu, "wall": wall, "load": load, "bottom_cpu": bottom_cpu,
            "bottom_wall": bottom_wall, "aggregation": aggregation_cost(train, result, settings),
            "levels": result.hierarchy.levels}


def table(r: dict) -> pd.DataFrame:
    s = r["scores"].pivot(index="level", columns="method", values="smape").reindex(r["levels"])
    out = pd.DataFrame({"Base": s[BASE], "BottomUp": s["BottomUp"], "default": s[r["method"]]})
    out["default/BottomUp"] = out["default"] / out["BottomUp"]
    return out


def verdict(results: list[dict]) -> str:
    ratios = pd.concat([table(r)["default/BottomUp"].rename(f"{r['origin']}") for r in results], axis=1)
    bottom = ratios.iloc[-1].mean()
    upper = ratios.iloc[:-1].to_numpy().mean()
    ok = bottom <= 1.01 and upper < 1.0
    return (f"default/BottomUp sMAPE over {len(results)} origins: bottom level {bottom:.4f} (target <= 1.01), "
            f"upper levels {upper:.4f} (target < 1): {'met' if ok else 'MISSED'}")


def chain_cost() -> None:
    """The whole chain on the sample (dg.materialize of every asset and check, a fresh data directory each),
    without a hierarchy and then with the sample's levels: CPU-seconds of this process and its workers."""
    import dagster as dg

    from mlops_assets.definitions import ASSETS, CHECKS, with_every_level
    from mlops_assets.sample_data import generate_sample
    from mlops_assets.wiring.resources import build_resources

    cpu = {}
    # Every levels' definition (the layer, its tables people read, its registered model), whatever the
    # environment's settings wired at import; the chain without them is the rest of the graph.
    imported = {id(x) for x in (*ASSETS, *CHECKS)}
    everything = with_every_level()
    graph = [x for x in everything if id(x) in imported]
    levels = [x for x in everything if id(x) not in imported]
    for label, text in (("chain", "hierarchy: null\n"), ("chain with levels", "hierarchy: {}\n")):
        with tempfile.TemporaryDirectory() as tmp:
            data, settings_file = Path(tmp) / "data", Path(tmp) / "settings.yaml"
            generate_sample(data / "landing")
            settings_file.write_text(text)
            wired = levels if "levels" in label else []
            load = _load()
            result, cpu[label], wall = _timed(
                dg.materialize, [*graph, *wired],
                resources=build_resources(str(data), str(settings_file), landing_settle_seconds=0.0),
                instance=dg.DagsterInstance.ephemeral())
            assert result.success, label
            print(f"{label}: {cpu[label]:.1f} CPU-s, {wall:.1f} s wall (load {load:.2f})", flush=True)
    print(f"ratio with / without levels: {cpu['chain with levels'] / cpu['chain']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="sample,m5")
    parser.add_argument("--origins", type=int, default=4)
    parser.add_argument("--first-origin", type=int, default=0, help="skip the origins before this one")
    parser.add_argument("--scale", type=int, default=0, help="also time the aggregation alone at this many series")
    parser.add_argument("--chain", action="store_true", help="also time the whole chain with and without levels")
    args = parser.parse_args()
    if args.chain:
        chain_cost()
    if args.scale:
        scale_aggregation(args.scale)
    settings = {"sample": SAMPLE, "favorita": FAVORITA, "m5": M5}
    for name in filter(None, args.datasets.split(",")):
        results = []
        for origin in range(args.first_origin, args.origins):
            r = run(name, settings[name], origin)
            results.append(r)
            print(f"\n## {name}, origin {origin} (0 = last holdout); levels {r['summary']['nodes']}; default "
                  f"{r['method']} (relative to BottomUp on the backtest: {r['summary']['relative_to_bottom_up']}); "
                  f"selection {r['summary']['selection']}")
            print(table(r).round(3).to_markdown())
            agg = r["aggregation"]
            print(f"cost: levels layer {r['cpu']:.1f} CPU-s, {r['wall']:.1f} s wall (load {r['load']:.2f}), "
                  f"{r['summary']['buckets']} bucket(s), {r['summary']['upper_nodes_forecast']} groups forecast; the "
                  f"chain's forecasting of the series {r['bottom_cpu']:.1f} CPU-s, "
                  f"{r['bottom_wall']:.1f} s; ratio {r['cpu'] / max(r['bottom_cpu'], 1e-9):.2f}; aggregation "
                  f"DuckDB {agg['duckdb_s']:.3f} s, pandas {agg['pandas_s']:.3f} s (read from DuckDB first "
                  f"{agg['pandas_read_s']:.3f} s), hierarchicalforecast "
                  f"{agg['hierarchicalforecast_s']:.3f} s", flush=True)
        mean = pd.concat([table(r) for r in results]).groupby(level=0).mean().reindex(results[0]["levels"])
        print(f"\n### {name}: mean over {len(results)} origins (sMAPE 0-200)")
        print(mean.round(3).to_markdown())
        print(verdict(results))


if __name__ == "__main__":
    main()
