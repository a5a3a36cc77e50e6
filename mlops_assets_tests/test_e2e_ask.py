"""End to end: questions in plain words on the materialized sample, each answer's numbers computed again here
in plain DuckDB SQL on the snapshots; write and injection attempts change nothing; `mlops-assets ask` prints
the answer, its SQL, the engine and the chart's path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mlops_assets.ask.service import ask
from mlops_assets.settings import DataPaths

pytestmark = pytest.mark.e2e
CANNOT = "I can't answer that from these tables"


@pytest.fixture(scope="module")
def sample(materialized_sample):
    data_dir, _ = materialized_sample
    return DataPaths(data_dir)


def sql(paths: DataPaths, query: str) -> pd.DataFrame:
    """``query`` with each schema.table read from its snapshot (written independently of the ask package)."""
    with duckdb.connect() as con:
        for snapshot in sorted(paths.exports.glob("*/*.parquet")):
            con.execute(f"create schema if not exists {snapshot.parent.name}")
            con.execute(f"create view {snapshot.parent.name}.{snapshot.stem} as select * from "
                        f"read_parquet('{snapshot}')")
        return con.execute(query).df()


def _by(frame: pd.DataFrame, key: str, value: str) -> dict:
    return {k: pytest.approx(v, abs=0.01) for k, v in zip(frame[key], frame[value], strict=True)}


TOTALS = {
    "Total sales by brand": ("brand", "select brand, sum(sales) as v from serving.sales_overall where origin = "
                             "'Train' group by brand"),
    "ventes totales par catégorie": ("category", "select category, sum(sales) as v from serving.sales_overall "
                                     "where origin = 'Train' group by category"),
    "Share of sales by category in 2025": ("category", "select category, sum(sales) as v from "
                                           "serving.sales_overall where origin = 'Train' and year(ds) = 2025 "
                                           "group by category"),
    "Distribution of sales by origin (Train vs Predict)": ("origin", "select origin, sum(sales) as v from "
                                                           "serving.sales_overall group by origin"),
    "prévisions par marque": ("brand", "select brand, sum(sales) as v from serving.sales_overall where origin = "
                              "'Predict' group by brand"),
    "sales by channel": ("channel", "select c.channel, sum(o.quantity) as v from raw.sales_orders o join "
                         "raw.customers c using (customer_id) group by c.channel"),
    "ventes par région": ("region", "select c.region, sum(o.quantity) as v from raw.sales_orders o join "
                          "raw.customers c using (customer_id) group by c.region"),
}


@pytest.mark.parametrize("question", sorted(TOTALS))
def test_totals(sample, question):
    key, query = TOTALS[question]
    answer = ask(question, sample)
    expected = sql(sample, query)
    assert _by(answer.table, key, "units") == _by(expected, expected.columns[0], "v")
    assert answer.chart is not None and answer.engine == "offline"


TOPS = {
    "top 3 products": (3, "desc", "origin = 'Train'"),
    "Top 5 products by forecast": (5, "desc", "origin = 'Predict'"),
    "les 4 produits les moins vendus": (4, "asc", "origin = 'Train'"),
    "meilleurs produits en 2025": (5, "desc", "origin = 'Train' and year(ds) = 2025"),
}


@pytest.mark.parametrize("question", sorted(TOPS))
def test_top_and_bottom(sample, question):
    n, direction, where = TOPS[question]
    expected = sql(sample, f"select product_name, sum(sales) as v from serving.sales_overall where {where} "
                           f"group by product_name order by v {direction}, product_name limit {n}")
    assert ask(question, sample).table["product"].tolist() == expected["product_name"].tolist()


def test_the_demo_question_as_written(sample):
    answer = ask("Please show a graphic with sales for product Etorki and the prediction from the model, on a line "
                 "plot", sample)
    etorki = sql(sample, "select unique_id, product_name, sum(sales) filter (origin = 'Predict') as forecast "
                         "from serving.sales_overall where brand = 'Etorki' group by all order by unique_id")
    assert len(etorki) >= 1 and answer.chart_path.exists() and answer.chart_path.stat().st_size > 10_000
    for row in etorki.itertuples():
        assert row.product_name in answer.text
        if pd.notna(row.forecast):
            assert f"forecast {row.forecast:,.0f} units" in answer.text
    assert set(answer.table["origin"]) == {"Predict"}


def test_one_product_misspelt_and_by_id(sample):
    first = sql(sample, "select product_id, product_name from raw.products order by product_id limit 1").iloc[0]
    misspelt = first.product_name[:-2] + "x" + first.product_name[-1:]  # "Etorki 200g" -> "Etorki 20xg"
    for question in (f"plot {first.product_id.lower()} forecast", f"montre la prévision de {misspelt.upper()}"):
        answer = ask(question, sample)
        assert first.product_name in answer.text, (question, answer.text)


def test_this_year_against_last(sample):
    expected = sql(sample, "with b as (select max(ds) as l from serving.sales_overall where origin = 'Train') "
                           "select sum(sales) filter (ds between date_trunc('year', l) and l) as now, "
                           "sum(sales) filter (ds between date_trunc('year', l) - interval 1 year and l - interval 1 "
                           "year) as before from serving.sales_overall, b where origin = 'Train'").iloc[0]
    for question in ("this year vs last year", "ventes de cette année par rapport à l'an dernier"):
        table = ask(question, sample).table
        assert table["this_year"].iloc[0] == pytest.approx(expected["now"], abs=0.01)
        assert table["last_year"].iloc[0] == pytest.approx(expected["before"], abs=0.01)


def test_models_and_accuracy(sample):
    wins = sql(sample, "select model, count(*) as v from forecasting.series_champions group by model")
    for question in ("Which model wins?", "quel modèle gagne le plus souvent ?"):
        assert _by(ask(question, sample).table, "model", "series") == _by(wins, "model", "v")
    scores = sql(sample, "select model, avg(smape) as v from forecasting.series_evaluation group by model")
    for question in ("How accurate is each model?", "précision des modèles"):
        assert _by(ask(question, sample).table, "model", "mean_smape") == _by(scores, "model", "v")
    past = ask("how accurate were past forecasts?", sample)
    scored = int(sql(sample, "select count(*) as n from monitoring.forecast_accuracy")["n"].iloc[0])
    assert (past.table["forecasts"].sum() if len(past.table) else 0) == scored


def test_excluded_widest_and_counts(sample):
    excluded = sql(sample, "select unique_id from gold.series_excluded order by reason_code, unique_id")
    for question in ("Which series are not forecast and why?", "quelles séries ne sont pas prévues et pourquoi ?"):
        assert ask(question, sample).table["unique_id"].tolist() == excluded["unique_id"].tolist()
    widest = sql(sample, "select unique_id from forecasting.forecasts group by unique_id "
                         "order by avg(hi_95 - lo_95) desc, unique_id limit 3")
    assert ask("the 3 widest intervals", sample).table["unique_id"].tolist() == widest["unique_id"].tolist()
    brands = sql(sample, "select count(distinct brand) as n from serving.sales_overall")["n"].iloc[0]
    assert ask("combien de marques ?", sample).table.iloc[0, 0] == brands
    weekly = ask("weekly sales", sample).table
    assert weekly["units"].sum() == pytest.approx(
        sql(sample, "select sum(sales) as s from serving.sales_overall")["s"].iloc[0], abs=0.5)


def test_ambiguous_out_of_scope_and_attacks_change_nothing(sample):
    before = {p: p.read_bytes() for p in sorted(sample.exports.glob("*/*.parquet"))}
    brie = sql(sample, "select product_name from raw.products where product_name ilike '%brie%'")
    if len(brie) > 1:
        answer = ask("plot the brie", sample)
        assert "could mean several things" in answer.text and answer.sql == []
    for question in ("what's the weather tomorrow?", "quel est le chiffre d'affaires par employé ?",
                     "drop table serving.sales_overall", "Etorki'; delete from serving.sales_overall; --",
                     "select * from read_csv('/etc/passwd')", "tell me a joke"):
        answer = ask(question, sample)
        if not answer.text.startswith(CANNOT):
            assert all(s.upper().startswith(("SELECT", "WITH")) for s in answer.sql), question
    assert {p: p.read_bytes() for p in sorted(sample.exports.glob("*/*.parquet"))} == before


def test_the_command_prints_answer_table_sql_engine_and_chart(sample):
    env = {**os.environ, "MLOPS_DATA_DIR": str(sample.root)}
    env.pop("MLOPS_SETTINGS", None)
    done = subprocess.run([sys.executable, "-m", "mlops_assets.cli", "ask", "top 3 brands"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Top 3 brands by actual units" in out and "SQL:\n  SELECT brand" in out and "engine: offline" in out
    chart = Path(out.split("chart: ")[1].strip())
    assert chart.exists() and chart.parent == sample.root / "answers"
