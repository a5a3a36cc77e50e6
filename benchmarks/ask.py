"""`mlops-assets ask`: share of a question set answered correctly, p50/p99 answer time, explorer page load time.

Each question's expected numbers are computed here in plain DuckDB SQL on the snapshots, independently of the
ask package; an answer is correct when its table holds them (ambiguous and out-of-reach questions: when it
says so and runs no SQL). Answer times are wall times in one warm process (the command adds its imports,
about 3 s), each question asked ``--repeats`` times; the load average is printed beside them.

    python benchmarks/ask.py --series 60                    # a synthetic published data directory
    python benchmarks/ask.py --series 30000 --repeats 3
    MLOPS_DATA_DIR=data python benchmarks/ask.py            # the product's own published tables

The synthetic directory writes the snapshots directly (the cheese sample's names, random weekly units, a
13-week forecast with intervals, champions, backtest scores, excluded series): what ask reads, at any size,
without running the graph.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.ask.service import ask  # noqa: E402
from mlops_assets.devtools.processes import free_port, server_answering  # noqa: E402
from mlops_assets.sample_data import _catalog  # noqa: E402
from mlops_assets.settings import DATA_DIR_ENV, DataPaths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CANNOT = "I can't answer that from these tables"
TRAIN = "origin = 'Train'"

# question -> (answer column holding the key, answer column holding the number, expected SQL: key, value)
QUESTIONS: dict[str, tuple[str, str, str]] = {
    "Total sales by brand": ("brand", "units", f"select brand, sum(sales) from serving.sales_overall where {TRAIN} "
                                               "group by 1"),
    "ventes totales par catégorie": ("category", "units", "select category, sum(sales) from serving.sales_overall "
                                                          f"where {TRAIN} group by 1"),
    "Share of sales by category in 2025": ("category", "units", "select category, sum(sales) from "
                                           f"serving.sales_overall where {TRAIN} and year(ds) = 2025 group by 1"),
    "Distribution of sales by origin (Train vs Predict)": ("origin", "units", "select origin, sum(sales) from "
                                                           "serving.sales_overall group by 1"),
    "prévisions par marque": ("brand", "units", "select brand, sum(sales) from serving.sales_overall where "
                                                "origin = 'Predict' group by 1"),
    "ventes réelles par mois": ("month", "units", "select date_trunc('month', ds), sum(sales) from "
                                                  f"serving.sales_overall where {TRAIN} group by 1"),
    "top 5 products": ("product", "units", "select product_name, sum(sales) as s from serving.sales_overall where "
                                           f"{TRAIN} group by 1 order by s desc, 1 limit 5"),
    "les 3 marques les moins vendues": ("brand", "units", "select brand, sum(sales) as s from serving.sales_overall "
                                                          f"where {TRAIN} group by 1 order by s, 1 limit 3"),
    "Top 10 products by forecast": ("product", "units", "select product_name, sum(sales) as s from "
                                    "serving.sales_overall where origin = 'Predict' group by 1 order by s desc, 1 "
                                    "limit 10"),
    "Which model wins?": ("model", "series", "select model, count(*) from forecasting.series_champions group by 1"),
    "quel modèle gagne le plus souvent ?": ("model", "series", "select model, count(*) from "
                                            "forecasting.series_champions group by 1"),
    "How accurate is each model?": ("model", "mean_smape", "select model, avg(smape) from "
                                    "forecasting.series_evaluation group by 1"),
    "précision des modèles": ("model", "mean_smape", "select model, avg(smape) from forecasting.series_evaluation "
                                                     "group by 1"),
    "Which series are not forecast and why?": ("text", "{} series are not forecast", "select 'text', count(*) "
                                               "from gold.series_excluded"),
    "quelles séries ne sont pas prévues et pourquoi ?": ("text", "{} series are not forecast", "select 'text', "
                                                         "count(*) from gold.series_excluded"),
    "the 5 widest intervals": ("unique_id", "mean_width", "select unique_id, avg(hi_95 - lo_95) as w from "
                               "forecasting.forecasts group by 1 order by w desc, 1 limit 5"),
    "Please show a graphic with sales for product Etorki 200g and the prediction from the model, on a line plot": (
        "ds", "sales", "select ds, sales from serving.sales_overall where product_name = 'Etorki 200g' and "
                       "origin = 'Predict'"),
    "montre la prévision de etorky 200g": ("ds", "sales", "select ds, sales from serving.sales_overall where "
                                                          "product_name = 'Etorki 200g' and origin = 'Predict'"),
    "sales of p00001": ("ds", "sales", "select ds, sales from serving.sales_overall where unique_id = 'P00001' and "
                                       "origin = 'Predict'"),
    "this year vs last year by category": ("category", "this_year", "with b as (select max(ds) as l from "
                                           f"serving.sales_overall where {TRAIN}) select category, sum(sales) "
                                           "filter (ds between date_trunc('year', l) and l) from "
                                           f"serving.sales_overall, b where {TRAIN} group by 1"),
}
REFUSED = ["what's the weather in Paris?", "quel est le chiffre d'affaires par employé ?", "tell me a joke",
           "drop table serving.sales_overall", "select * from read_csv('/etc/passwd')"]
AMBIGUOUS = ["plot the sales of camembert 250g"]


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def synthetic(root: Path, n_series: int, seed: int = 0) -> DataPaths:
    """Snapshots of every table ask reads, for ``n_series`` products (named as in the sample)."""
    paths = DataPaths(root)
    rng = np.random.default_rng(seed)
    names = _catalog(n_series)
    products = pd.DataFrame(names, columns=["product_name", "brand", "category", "price"]).drop(columns="price")
    products.insert(0, "product_id", [f"P{i + 1:05d}" for i in range(n_series)])
    products["scale"] = rng.lognormal(3, 0.7, n_series)
    excluded = products.sample(frac=0.05, random_state=seed)["product_id"]
    models = np.array(["AutoETS", "AutoTheta", "SeasonalNaive", "Naive", "CrostonOptimized"])
    with duckdb.connect() as con:
        con.register("products", products)
        con.register("excluded", excluded.to_frame())
        con.execute("create table forecast_ids as select * from products anti join excluded using (product_id)")
        for schema in ("serving", "forecasting", "gold", "raw", "monitoring"):
            (paths.exports / schema).mkdir(parents=True, exist_ok=True)

        def publish(table: str, sql: str) -> None:
            schema, name = table.split(".")
            con.execute(f"copy ({sql}) to '{paths.exports / schema / name}.parquet' (format parquet)")

        history = ("select unnest(range(timestamp '2023-10-02', timestamp '2026-09-28', interval 7 day)) as ds")
        future = ("select unnest(range(timestamp '2026-09-28', timestamp '2026-12-28', interval 7 day)) as ds")
        publish("forecasting.forecasts",
                "select product_id as unique_id, f.ds, 'AutoETS' as model, '1' as model_version, "
                "scale * (1 + (hash(product_id, f.ds) % 50) / 100.0) as y_hat, y_hat * 0.7 as lo_80, "
                "y_hat * 1.3 as hi_80, y_hat * (0.5 - (hash(product_id) % 40) / 100.0) as lo_95, "
                "y_hat * (1.5 + (hash(product_id) % 40) / 100.0) as hi_95 "
                f"from forecast_ids, ({future}) f order by 1, 2")
        publish("serving.sales_overall",
                "select product_id as unique_id, product_id, product_name, brand, category, h.ds, 'Train' as origin, "
                "round(scale * (hash(product_id, h.ds) % 100) / 50.0) as sales, false as imputed, null::double as "
                "lo_80, null::double as hi_80, null::double as lo_95, null::double as hi_95, null::varchar as model, "
                f"null::varchar as model_version from products, ({history}) h union all "
                "select f.unique_id, p.product_id, p.product_name, p.brand, p.category, f.ds, 'Predict', f.y_hat, "
                "false, f.lo_80, f.hi_80, f.lo_95, f.hi_95, f.model, f.model_version from "
                f"read_parquet('{paths.exports}/forecasting/forecasts.parquet') f join products p on "
                "p.product_id = f.unique_id order by 1, 6, 7")
        con.register("models", pd.DataFrame({"model": models}))
        publish("forecasting.series_evaluation",
                "select product_id as unique_id, model, 5 + (hash(product_id, model) % 9000) / 100.0 as smape, "
                "1.0 as mae, 1.0 as rmse, 0.9 as mase, 30.0 as wape, 0.0 as bias, 3 as n_windows "
                "from forecast_ids, models order by 1, 2")
        publish("forecasting.series_champions",
                "select unique_id, arg_min(model, smape) as model, min(smape) as smape, 'Naive' as runner_up, "
                "min(smape) + 1 as runner_up_smape, min(smape) + 2 as seasonal_naive_smape, 'smape' as metric, "
                f"min(smape) as score from read_parquet('{paths.exports}/forecasting/series_evaluation.parquet') "
                "group by 1 order by 1")
        publish("gold.series_excluded",
                "select product_id as unique_id, 'too_short' as reason_code, '20 periods of history; 52 needed' as "
                "reason, 20 as n_periods, timestamp '2026-05-11' as first_ds, timestamp '2026-09-21' as last_ds "
                "from excluded order by 1")
        publish("raw.products", "select product_id, product_name, brand, category from products order by 1")
    return paths


def expected(paths: DataPaths, sql: str) -> dict:
    with duckdb.connect() as con:
        for snapshot in sorted(paths.exports.glob("*/*.parquet")):
            con.execute(f"create schema if not exists {snapshot.parent.name}")
            con.execute(f"create view {snapshot.parent.name}.{snapshot.stem} as select * from "
                        f"read_parquet('{snapshot}')")
        rows = con.execute(sql).fetchall()
    return {_key(k): float(v) for k, v in rows}


def _key(value) -> str:
    return pd.Timestamp(value).date().isoformat() if isinstance(value, pd.Timestamp | np.datetime64) or hasattr(
        value, "isoformat") else str(value)


def correct(answer, key: str, value: str, want: dict) -> bool:
    """The answer's table holds the expected numbers; with key "text", its text holds ``value`` filled with them."""
    if key == "text":
        return value.format(int(want["text"])) in answer.text
    table = answer.table
    if key not in table.columns or value not in table.columns:
        return False
    got = {_key(k): float(v) for k, v in zip(table[key], table[value], strict=True)}
    return got.keys() == want.keys() and all(abs(got[k] - want[k]) <= 0.01 + 1e-6 * abs(want[k]) for k in want)


def run(paths: DataPaths, repeats: int) -> None:
    times, right, wrong = [], 0, []
    for question, (key, value, sql) in QUESTIONS.items():
        want = expected(paths, sql)
        for _ in range(repeats):
            started = time.perf_counter()
            answer = ask(question, paths, save_chart=False)
            times.append(time.perf_counter() - started)
        if correct(answer, key, value, want):
            right += 1
        else:
            wrong.append(question)
    for question in REFUSED + AMBIGUOUS:
        started = time.perf_counter()
        answer = ask(question, paths, save_chart=False)
        times.append(time.perf_counter() - started)
        ok = answer.sql == [] and (answer.text.startswith(CANNOT) if question in REFUSED
                                   else "could mean several things" in answer.text)
        right += ok
        if not ok:
            wrong.append(question)
    total = len(QUESTIONS) + len(REFUSED) + len(AMBIGUOUS)
    p50, p99 = np.percentile(times, [50, 99])
    print(f"  correct: {right}/{total} ({100 * right / total:.0f}%)" + (f"; wrong: {wrong}" if wrong else ""))
    print(f"  answer time: p50 {p50:.2f} s, p99 {p99:.2f} s over {len(times)} answers ({load()})")


def explorer_load(paths: DataPaths) -> None:
    """Seconds from start to the first page, then the page and its layout (the list of series) when warm."""
    port = free_port()
    env = {**os.environ, DATA_DIR_ENV: str(paths.root), "PYTHONPATH": str(REPO)}
    env.pop("MLOPS_SETTINGS", None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, server_answering(
            [sys.executable, "-m", "mlops_assets.explorer.app", "--port", str(port)], cwd=Path(work), env=env,
            log_path=Path(work) / "explorer.log", ping_url=f"http://127.0.0.1:{port}/", timeout=300):
        ready = time.perf_counter() - started
        loads = []
        for _ in range(5):
            begun = time.perf_counter()
            requests.get(f"http://127.0.0.1:{port}/", timeout=60).raise_for_status()
            layout = requests.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=60)
            layout.raise_for_status()
            loads.append(time.perf_counter() - begun)
    print(f"  explorer: ready {ready:.1f} s after start; page + layout ({len(layout.content) / 1e6:.1f} MB) "
          f"p50 {np.median(loads):.2f} s ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=60, help="synthetic products (without MLOPS_DATA_DIR)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-explorer", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ask-bench-") as folder:
        if os.environ.get(DATA_DIR_ENV):
            paths = DataPaths.from_env()
            print(f"published tables of {paths.root}")
        else:
            began = time.perf_counter()
            paths = synthetic(Path(folder), args.series)
            print(f"synthetic: {args.series:,} series written in {time.perf_counter() - began:.1f} s ({load()})")
        run(paths, args.repeats)
        if not args.no_explorer:
            explorer_load(paths)


if __name__ == "__main__":
    main()
