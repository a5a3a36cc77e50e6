"""What the forecast explorer shows, read like a question's answer: guarded SQL on the read-only snapshot
connection (mlops_assets.ask), so the page reads while a run writes and cannot change anything."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from mlops_assets.ask.catalog import table_catalog
from mlops_assets.ask.connection import snapshot_connection
from mlops_assets.ask.context import Context
from mlops_assets.ask.phrasing import SALES, lit
from mlops_assets.ask.service import answers_folder
from mlops_assets.settings import DataPaths

MANY = 1_000_000


@contextmanager
def reading(paths: DataPaths) -> Iterator[Context]:
    catalog = table_catalog(paths.exports)
    if SALES not in catalog:
        raise LookupError(f"nothing is published in {paths.exports} yet: run `make run` first")
    with snapshot_connection(catalog, answers_folder(paths) / "tables") as con:
        yield Context(con, catalog)


def series_options(ctx: Context) -> list[dict[str, str]]:
    """Every series as a dropdown option, "name (id)", sorted by name."""
    label = "product_name" if "product_name" in ctx.columns(SALES) else "unique_id"
    extra = " || ' / ' || any_value(customer_name)" if "customer_name" in ctx.columns(SALES) else ""
    frame = ctx.run(f"select unique_id, coalesce(any_value({label}){extra}, unique_id) as name from {SALES} "
                    "group by unique_id order by name, unique_id", MANY)
    return [{"label": f"{r.name} ({r.unique_id})", "value": r.unique_id} for r in frame.itertuples()]


def series_rows(ctx: Context, unique_id: str) -> pd.DataFrame:
    bounds = [c for c in ctx.columns(SALES) if c.startswith(("lo_", "hi_"))]
    return ctx.run(f"select ds, origin, sales, {', '.join(bounds)}, model, model_version from {SALES} "
                   f"where unique_id = {lit(unique_id)} order by ds, origin", MANY)


@dataclass
class SeriesFacts:
    champion: pd.DataFrame  # model, smape, runner_up, runner_up_smape, seasonal_naive_smape
    scores: pd.DataFrame  # every model's backtest scores
    past: pd.DataFrame  # accuracy of past forecasts, by model version
    excluded: str | None  # why it is not forecast


def series_facts(ctx: Context, unique_id: str) -> SeriesFacts:
    key = lit(unique_id)
    champion = (ctx.run("select model as champion, round(smape, 2) as smape, runner_up, round(runner_up_smape, 2) "
                        "as runner_up_smape, round(seasonal_naive_smape, 2) as seasonal_naive_smape from "
                        f"forecasting.series_champions where unique_id = {key}")
                if ctx.has("forecasting.series_champions") else pd.DataFrame())
    scores = (ctx.run("select model, round(smape, 2) as smape, round(mase, 3) as mase, round(wape, 2) as wape, "
                      f"round(bias, 2) as bias from forecasting.series_evaluation where unique_id = {key} "
                      "order by smape nulls last, model") if ctx.has("forecasting.series_evaluation") else
              pd.DataFrame())
    past = (ctx.run("select model_version, count(*) as forecasts, min(ds) as first_ds, max(ds) as last_ds, "
                    "round(avg(smape), 2) as mean_smape, round(avg(abs_error), 2) as mean_abs_error from "
                    f"monitoring.forecast_accuracy where unique_id = {key} group by model_version "
                    "order by model_version") if ctx.has("monitoring.forecast_accuracy") else pd.DataFrame())
    excluded = None
    if ctx.has("gold.series_excluded"):
        found = ctx.run(f"select reason from gold.series_excluded where unique_id = {key}")
        excluded = found["reason"].iloc[0] if len(found) else None
    return SeriesFacts(champion, scores, past, excluded)


def totals(ctx: Context, dimension: str) -> pd.DataFrame:
    if dimension not in ctx.columns(SALES):
        return pd.DataFrame(columns=[dimension, "origin", "units"])
    return ctx.run(f"select {dimension}, origin, round(sum(sales), 2) as units from {SALES} group by all "
                   f"order by {dimension}, origin", MANY)


def model_trained(tracking_uri: str, model_name: str, version: str | None) -> str:
    """When the registry's model version was created (its training run ended), or why that is not known."""
    if not version:
        return "no forecast"
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        created = client.get_model_version(model_name, str(version)).creation_timestamp
    except Exception as error:  # the registry is optional here: the page shows why the time is missing
        return f"unknown ({type(error).__name__})"
    return datetime.fromtimestamp(created / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
