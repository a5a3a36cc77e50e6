"""The registry's refit by model group: the same forecaster on the local pool and on a real Dask LocalCluster,
equal to in-process fits on the same groups, with the calibration computed from the champions' rows only."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.intervals import calibrate, last_window_coverage
from mlops_assets.forecasting.zoo import COMBINATION, GLOBAL_MODEL
from mlops_assets.registry import refit
from mlops_assets.registry.champion_model import ChampionForecaster, forecaster_for
from mlops_assets.registry.refit import (
    champion_calibration,
    champion_errors_by_chunk,
    champion_rows,
    mean_abs_actuals,
    refit_by_group,
)
from mlops_assets.settings import Settings
from mlops_assets.warehouse import connector

MODELS = ["Naive", "SeasonalNaive", "WindowAverage", GLOBAL_MODEL, COMBINATION]
HISTORY_SQL = "select * from history"
REGRESSORS_SQL = "select unique_id, ds, holiday_days from regressors"


def _settings(**compute) -> Settings:
    return Settings(horizon=4, season_length=4, backtest={"windows": 3}, models=MODELS, regressors={"use": []},
                    compute={"workers": 2, "bucket_series": 4, **compute})


def _history(n_series: int, length: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ds = pd.date_range("2023-01-02", periods=length, freq="W-MON")
    return pd.DataFrame({
        "unique_id": np.repeat([f"s{i:03d}" for i in range(n_series)], length),
        "ds": np.tile(ds, n_series),
        "y": rng.gamma(2.0, 10.0, n_series * length),
    })


def _regressors(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    future = history.groupby("unique_id")["ds"].max().apply(
        lambda end: pd.date_range(end, periods=horizon + 1, freq="W-MON")[1:]).explode().reset_index()
    frame = pd.concat([history[["unique_id", "ds"]], future], ignore_index=True)
    return frame.assign(holiday_days=(frame["ds"].dt.month == 12).astype(float))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """history, regressors, a backtest of the zoo and mixed champions (local models, LightGBM, Combination)."""
    history = _history(11)
    settings = _settings()
    x = _regressors(history, settings.horizon)
    backtest = run_backtest(history, settings, MODELS, n_jobs=1, regressors=x)
    uids = sorted(history["unique_id"].unique())
    champions = pd.DataFrame({"unique_id": uids, "model": [MODELS[i % len(MODELS)] for i in range(len(uids))]})
    connect = _database(tmp_path_factory.mktemp("refit") / "w.duckdb",
                        history=history, regressors=x, backtest=backtest, champions=champions)
    return connect, history, x, backtest, champions


def _database(path: Path, **tables: pd.DataFrame):
    """A DuckDB file holding the frames as tables; its connection factory (like Warehouse.connection)."""
    with duckdb.connect(str(path)) as con:
        for name, frame in tables.items():
            con.register("f", frame)
            con.execute(f"create table {name} as select * from f")
            con.unregister("f")
    return connector(path)


def _refit(connect, champions, root: Path, settings: Settings, calibration, regressors: bool = True):
    return refit_by_group(connect, HISTORY_SQL, champions, "backtest", root, "fp", settings, len(MODELS),
                           calibration, REGRESSORS_SQL if regressors else None)


def test_the_calibration_from_champion_rows_equals_the_one_from_the_whole_backtest(warehouse):
    connect, history, _, backtest, champions = warehouse
    settings = _settings()
    rows = champion_rows(connect, "backtest", "champions")
    assert len(rows) == len(champions) * 3 * 4
    actuals = mean_abs_actuals(connect, HISTORY_SQL)
    calibration = champion_calibration(rows, champions, actuals, settings)
    whole = calibrate(backtest, champions, history, settings.interval_levels, settings.horizon)
    pd.testing.assert_frame_equal(calibration.quantiles, whole.quantiles, rtol=0, atol=1e-12)
    pd.testing.assert_series_equal(calibration.scale, whole.scale, rtol=0, atol=1e-12)
    assert last_window_coverage(rows, champions, actuals, [80, 95], 4) == \
        last_window_coverage(backtest, champions, history, [80, 95], 4)


def test_the_calibration_read_by_buckets_of_3_series_equals_the_whole_rows_one(warehouse, monkeypatch):
    connect, _, _, backtest, champions = warehouse
    settings = _settings(bucket_series=3)
    actuals = mean_abs_actuals(connect, HISTORY_SQL)
    rows = champion_rows(connect, "backtest", "champions")
    seen, error_parts = [], refit.error_parts

    def recorded(bucket_rows, chosen):
        seen.append(sorted(bucket_rows["unique_id"].unique()))
        return error_parts(bucket_rows, chosen)

    monkeypatch.setattr(refit, "error_parts", recorded)
    errors = champion_errors_by_chunk(connect, "backtest", "champions", champions, actuals, settings)
    # Four buckets of at most 3 series, in sorted order: never the whole backtest in one frame.
    ids = sorted(champions["unique_id"])
    assert seen == [ids[k:k + 3] for k in range(0, len(ids), 3)] and len(seen) == 4
    whole = champion_calibration(rows, champions, actuals, settings)
    pd.testing.assert_frame_equal(errors.calibration.quantiles, whole.quantiles, check_exact=True)
    pd.testing.assert_series_equal(errors.calibration.scale, whole.scale, check_exact=True)
    assert errors.calibration.n_scores == whole.n_scores
    for clip in (False, True):
        assert errors.coverage(champions, actuals, settings, clip) == \
            last_window_coverage(backtest, champions, actuals, settings.interval_levels, settings.horizon, clip,
                                 reselect=True)
    own = settings.model_copy(update={"intervals": settings.intervals.model_copy(update={"method": "model"})})
    assert champion_errors_by_chunk(connect, "backtest", "champions", champions, actuals, own).calibration is None


def _calibration(connect, champions):
    rows = champion_rows(connect, "backtest", "champions")
    return champion_calibration(rows, champions, mean_abs_actuals(connect, HISTORY_SQL), _settings())


@pytest.mark.dask
def test_refit_by_group_is_the_same_on_dask_as_on_the_local_pool(warehouse, dask_scheduler, tmp_path):
    connect, _, _, _, champions = warehouse
    calibration = _calibration(connect, champions)
    local = _refit(connect, champions, tmp_path / "local", _settings(), calibration)
    dask = _refit(connect, champions, tmp_path / "dask", _settings(engine="dask", address=dask_scheduler),
                  calibration)
    assert dask.workers == 2 and len(dask.groups) == len(local.groups) == 3
    pd.testing.assert_frame_equal(dask.forecaster.predict(), local.forecaster.predict(), check_exact=False, rtol=0,
                                  atol=1e-9)


def test_refit_by_group_on_the_local_pool_equals_fits_in_process(warehouse, tmp_path):
    connect, history, x, backtest, champions = warehouse
    calibration = _calibration(connect, champions)
    local = _refit(connect, champions, tmp_path / "local", _settings(), calibration)
    assert len(local.groups) == 3
    assert len(list((local.folder / "parts").glob("*.pkl"))) == 3
    predicted = local.forecaster.predict()
    assert len(predicted) == 11 * 4 and set(predicted["model"]) == set(MODELS)

    # One forecaster fitted in this process per group, merged: the same forecasts.
    settings = _settings()
    parts = []
    for group in local.groups:
        ids = list(group.unique_ids)
        parts.append(forecaster_for(settings).fit(
            history[history["unique_id"].isin(ids)], champions[champions["unique_id"].isin(ids)], backtest,
            x[x["unique_id"].isin(ids)], calibration=calibration.restricted(ids)))
    merged = ChampionForecaster.combine(parts)
    pd.testing.assert_frame_equal(merged.predict(), predicted, check_exact=False, rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(merged.series, local.forecaster.series)

    # The per-series models do not depend on the groups: one fit over every series gives their forecasts.
    whole = forecaster_for(settings).fit(history, champions, backtest, x).predict()
    per_series = champions.loc[~champions["model"].isin([GLOBAL_MODEL, COMBINATION]), "unique_id"]
    pick = lambda out: out[out["unique_id"].isin(per_series)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(pick(predicted), pick(whole), check_exact=False, rtol=0, atol=1e-9)


def test_small_groups_on_many_series(tmp_path):
    history = _history(52, length=30)
    settings = Settings(horizon=4, season_length=4, backtest={"windows": 2}, models=["Naive", "SeasonalNaive"],
                        compute={"workers": 2, "bucket_series": 10})
    champions = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique())})
    champions["model"] = np.where(np.arange(52) % 3 == 0, "Naive", "SeasonalNaive")
    backtest = run_backtest(history, settings, ["Naive", "SeasonalNaive"], n_jobs=1)
    connect = _database(tmp_path / "w.duckdb", history=history, backtest=backtest, champions=champions)
    rows = champion_rows(connect, "backtest", "champions")
    calibration = champion_calibration(rows, champions, mean_abs_actuals(connect, HISTORY_SQL), settings)
    run = refit_by_group(connect, HISTORY_SQL, champions, "backtest", tmp_path / "refit", "fp", settings, 2,
                          calibration)
    assert len(run.groups) == 6 and max(len(g.unique_ids) for g in run.groups) <= 10
    whole = forecaster_for(settings).fit(history, champions, backtest).predict()
    pd.testing.assert_frame_equal(run.forecaster.predict(), whole, check_exact=False, rtol=0, atol=1e-9)
