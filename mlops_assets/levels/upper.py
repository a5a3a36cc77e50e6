"""The nodes above the series (total, categories, brands...) forecast by the product's own zoo and global model.

The series themselves are not forecast here: their forecasts are the chain's (forecasting.backtest_forecasts,
series_champions, forecasts). The upper nodes are few (a few hundred at 10,000 series), so they are backtested
together on the engine (forecasting.engine.backtest_by_group, as the series are), with the frequency's default
zoo and the global model (mlforecast + LightGBM), which sees each node's level as a static feature
(``static:level``). They get no other driver: a group's planned promotions or prices are a mix of its series'
and the layer does not pretend to know how to sum them. The backtest uses the settings' horizon, windows and
step, so its cutoffs are the series' (checked against the stored ones). Each node's champion is chosen by the
product's selection level by level (forecast.choose_by_level); its final forecast is its champion refitted on
its whole history, with intervals calibrated on the nodes' backtest errors as the series' are
(forecasting.intervals).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.forecasting.closures import ClosedPeriods, with_closed, zero_closed
from mlops_assets.forecasting.combinations import final_members
from mlops_assets.forecasting.engine import backtest_by_group
from mlops_assets.forecasting.global_model import forecast_global
from mlops_assets.forecasting.intervals import calibrate, calibration_method
from mlops_assets.forecasting.parallel import CleanWorkerStatsForecast as StatsForecast
from mlops_assets.forecasting.zoo import (
    COMBINATION,
    GLOBAL_MODEL,
    STATIC_PREFIX,
    STATSFORECAST_NAMES,
    build_fallback,
    build_models,
    default_models,
)
from mlops_assets.levels.forecast import choose_by_level
from mlops_assets.levels.hierarchy import Hierarchy, group_sums
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect, sql_string, write_part

LEVEL_FEATURE = f"{STATIC_PREFIX}level"


@dataclass
class Upper:
    """What the upper nodes leave for the reconciliation: small tables (nodes x periods)."""

    history: pd.DataFrame  # unique_id, ds, y of every upper node (forecast or not)
    backtest: pd.DataFrame  # unique_id, cutoff, ds, y, y_hat, closed: each forecast node's champion
    forecasts: pd.DataFrame  # unique_id, ds, y_hat, lo_<l>, hi_<l>: each forecast node's champion
    champions: pd.DataFrame  # unique_id, model
    decisions: dict[str, str] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    models: list[str] = field(default_factory=list)  # the models backtested on them


def bounds_of(settings: Settings) -> list[str]:
    return [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]


def level_regressors(history: pd.DataFrame, levels: pd.Series, settings: Settings) -> pd.DataFrame:
    """unique_id, ds, static:level on every node's periods and the next horizon (the global model's input)."""
    offset = pd.tseries.frequencies.to_offset(settings.frequency)
    span = history.groupby("unique_id")["ds"].agg(["min", "max"])
    parts = [pd.DataFrame({"unique_id": uid, "ds": pd.date_range(first, last + offset * settings.horizon,
                                                                  freq=offset)})
             for uid, (first, last) in span.iterrows()]
    out = pd.concat(parts, ignore_index=True)
    out[LEVEL_FEATURE] = levels.reindex(out["unique_id"]).to_numpy()
    return out


def forecast_upper(connect: Connect, gold: str, hierarchy: Hierarchy, forecast_series: set[str],
                   last: pd.Timestamp, cutoffs: list[pd.Timestamp], settings: Settings, folder: Path,
                   log=lambda _m: None) -> Upper:
    """The upper nodes of ``hierarchy`` backtested on the engine, their champions chosen and refitted.

    A node is forecast when a series of ``forecast_series`` is below it and its history reaches ``last``, the
    end of the data (the series' common end), with the periods the backtest needs; the others are not (0).
    ``cutoffs``: the series' stored backtest cutoffs; the nodes' must be the same, or the levels' windows would
    not line up (ValueError)."""
    with connect() as con:
        history = group_sums(con, gold, hierarchy, settings.frequency)
    members = hierarchy.membership
    reached = set(members.loc[members["unique_id"].isin(forecast_series), "node"])
    span = history.groupby("unique_id")["ds"].agg(["max", "size"])
    nodes = [uid for uid in span.index if uid in reached and span.loc[uid, "max"] == last
             and span.loc[uid, "size"] >= settings.min_series_length]
    empty = pd.DataFrame(columns=["unique_id", "model"])
    if not nodes:
        return Upper(history, pd.DataFrame(columns=["unique_id", "cutoff", "ds", "y", "y_hat", "closed"]),
                     pd.DataFrame(columns=["unique_id", "ds", "y_hat", *bounds_of(settings)]), empty)
    train = history[history["unique_id"].isin(nodes)].reset_index(drop=True)
    levels = hierarchy.nodes.set_index("unique_id")["level"]
    regressors = level_regressors(train, levels, settings)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"history": folder / "upper.parquet", "regressors": folder / "upper.regressors.parquet"}
    write_part(train, paths["history"])
    write_part(regressors, paths["regressors"])
    models = default_models(settings)
    digest = hashlib.sha256(pd.util.hash_pandas_object(train).to_numpy().tobytes()
                            + settings.model_dump_json().encode()).hexdigest()[:16]
    run = backtest_by_group(connect, f"select * from read_parquet({sql_string(str(paths['history']))})",
                            folder / "runs", digest, settings, models, log=log,
                            regressors_sql=f"select * from read_parquet({sql_string(str(paths['regressors']))})")
    with duckdb.connect() as con:
        backtest = con.execute(f"select * from read_parquet({sql_string(run.parts)})").df()
    backtest = backtest.astype({"unique_id": str}).sort_values(["unique_id", "model", "cutoff", "ds"],
                                                               kind="stable", ignore_index=True)
    found = sorted(pd.to_datetime(backtest["cutoff"].unique()))
    if cutoffs and found != sorted(pd.to_datetime(cutoffs)):
        raise ValueError(f"levels: the upper nodes' backtest cutoffs {[str(c.date()) for c in found]} are not the "
                         f"series' stored ones {[str(pd.Timestamp(c).date()) for c in sorted(cutoffs)]}: rerun "
                         "the backtest with the current settings")
    champions, decisions = choose_by_level(backtest, train, hierarchy, settings)
    champions = champions[["unique_id", "model"]]
    forecasts = champion_forecasts(train, backtest, champions, settings, regressors)
    picked = backtest.merge(champions, on=["unique_id", "model"])
    picked = picked[["unique_id", "cutoff", "ds", "y", "y_hat", *(["closed"] if "closed" in picked else [])]]
    cpu = sum(r.cpu_seconds for r in run.reports)
    return Upper(history, picked.reset_index(drop=True), forecasts, champions, decisions, cpu,
                 sorted(backtest["model"].unique()))


def champion_forecasts(history: pd.DataFrame, backtest: pd.DataFrame, champions: pd.DataFrame,
                       settings: Settings, regressors: pd.DataFrame | None = None) -> pd.DataFrame:
    """unique_id, ds, y_hat, lo_<l>, hi_<l>: each series' champion refitted on its whole ``history`` (the
    StatsForecast models per series, the global model on every series of ``history`` with ``regressors``, a
    combination the mean of its members), its interval y_hat -/+ the backtest-calibrated half-width."""
    picks = champions.set_index("unique_id")["model"]
    wanted = picks.reset_index()
    if (picks == COMBINATION).any():
        members = final_members(backtest[backtest["unique_id"].isin(picks.index[picks == COMBINATION])],
                                settings.combination_size, settings.selection.metric, history, settings.season)
        wanted = pd.concat([wanted, members[["unique_id", "model"]]], ignore_index=True)
    wanted = wanted[wanted["model"] != COMBINATION].drop_duplicates()
    parts = []
    for model, rows in wanted.groupby("model", sort=True):
        ids = set(rows["unique_id"])
        if model == GLOBAL_MODEL:
            x = with_closed(regressors, ClosedPeriods.from_settings(settings))
            out = forecast_global(history, x, settings.frequency, settings.season, settings.horizon,
                                  unique_ids=sorted(ids), seed=settings.seed)
        elif model in STATSFORECAST_NAMES:
            sf = StatsForecast(models=build_models([model], settings.season, settings.horizon, None),
                               freq=settings.frequency, n_jobs=1,
                               fallback_model=build_fallback(settings.season, settings.horizon))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
                out = sf.forecast(df=history[history["unique_id"].isin(ids)], h=settings.horizon)
            out = out.rename(columns={model: "y_hat"})
        else:
            raise ValueError(f"levels: no final forecast for model {model!r}")
        parts.append(out[["unique_id", "ds", "y_hat"]].astype({"unique_id": str}).assign(model=model))
    point = pd.concat(parts, ignore_index=True)
    if (picks == COMBINATION).any():
        combined = point.merge(members[["unique_id", "model"]], on=["unique_id", "model"])
        combined = combined.groupby(["unique_id", "ds"], as_index=False)["y_hat"].mean().assign(model=COMBINATION)
        point = pd.concat([point, combined], ignore_index=True)
    out = point.merge(champions, on=["unique_id", "model"]).drop(columns="model")
    out = out.sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)
    calibration = calibrate(backtest, champions, history, settings.interval_levels, settings.horizon,
                            calibration_method(settings.frequency))
    ids = out["unique_id"].drop_duplicates().tolist()
    steps = out.groupby("unique_id", sort=False).cumcount().to_numpy()
    row = pd.Index(ids).get_indexer(out["unique_id"])
    for level in settings.interval_levels:
        half = calibration.half_widths(ids, settings.horizon, level)[row, steps]
        half = pd.Series(half).fillna(0.0).to_numpy()
        out[f"lo_{level}"] = out["y_hat"].to_numpy() - half
        out[f"hi_{level}"] = out["y_hat"].to_numpy() + half
    return zero_closed(out, ClosedPeriods.from_settings(settings))
