"""Issue 15, closed days and the selection metric through the real graph: daily shop sales with every Sunday
closed (0), declared in the settings, chosen on WAPE. The Sundays keep their zero actuals, are forecast as 0
(bounds too) by the registered model, are not scored, and the metric is recorded where the choices are."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import materialize_all, read_table

pytestmark = pytest.mark.e2e


def test_declared_sundays_are_forecast_as_zero_and_do_not_decide(tmp_path):
    import dagster as dg

    rng = np.random.default_rng(3)
    days = pd.date_range("2024-01-01", periods=62, freq="D")  # Monday to a Saturday
    landed = pd.concat(
        pd.DataFrame({"unique_id": f"shop{i}", "ds": days,
                      "y": np.where(days.weekday == 6, 0.0, np.round(100 + np.cumsum(rng.normal(0, 4, 62)), 1))})
        for i in range(4)
    )
    folder = tmp_path / "landing" / "series"
    folder.mkdir(parents=True)
    landed.to_csv(folder / "daily.csv", index=False)
    settings = {"source": "series", "frequency": "D", "horizon": 7, "season_length": 7, "backtest": {"windows": 2},
                "models": ["Naive", "SeasonalNaive"], "selection": {"metric": "wape", "mode": "per_series"},
                "closed": {"weekdays": ["sun"]}}
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    chain = dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring")
    result = materialize_all(tmp_path, str(settings_file), instance=dg.DagsterInstance.ephemeral(), selection=chain)
    assert result.success

    # Never lose an actual: the Sundays' zeros stay in gold.
    gold = read_table(tmp_path, "gold.sales_data_for_forecast")
    assert len(gold) == len(landed) and (gold.loc[gold["ds"].dt.weekday == 6, "y"] == 0).all()
    backtest = read_table(tmp_path, "forecasting.backtest_forecasts")
    sunday = backtest["ds"].dt.weekday == 6
    assert sunday.any() and backtest.loc[sunday, "closed"].all() and (backtest.loc[sunday, "y_hat"] == 0).all()
    assert not backtest.loc[~sunday, "closed"].any()
    # Chosen on WAPE over the open days: Naive follows the wandering level; undeclared, the Sundays made
    # SeasonalNaive win (forecasting/test_closures.py).
    evaluation = read_table(tmp_path, "forecasting.series_evaluation")
    assert evaluation["wape"].between(0, 100).all()
    champions = read_table(tmp_path, "forecasting.series_champions")
    assert (champions["metric"] == "wape").all() and (champions["model"] == "Naive").all()
    scores = evaluation.set_index(["unique_id", "model"])["wape"]
    picked = pd.MultiIndex.from_frame(champions[["unique_id", "model"]])
    assert np.allclose(champions["score"], scores.reindex(picked).to_numpy())

    forecasts = read_table(tmp_path, "forecasting.forecasts")
    closed = forecasts["ds"].dt.weekday == 6
    assert closed.sum() == 4
    assert (forecasts.loc[closed, ["y_hat", "lo_80", "hi_80", "lo_95", "hi_95"]] == 0).all().all()
    assert (forecasts.loc[~closed, "y_hat"] > 0).all()

    paths = DataPaths(tmp_path)
    client = mlflow.MlflowClient(paths.mlflow_tracking_uri, paths.mlflow_tracking_uri)
    version = client.get_model_version_by_alias("sales_forecast", "champion")
    assert version.tags["selection_metric"] == "wape" and version.tags["compared_metric"] == "wape"
    mlflow.set_tracking_uri(paths.mlflow_tracking_uri)
    run = mlflow.search_runs(experiment_names=["sales_forecast"],
                             filter_string="tags.dagster_asset = 'forecasting/series_evaluation'").iloc[0]
    assert run["params.selection_metric"] == "wape" and run["params.closed_weekdays"] == "sun"
    assert run["metrics.wape_mean_Naive"] < run["metrics.wape_mean_SeasonalNaive"]
