"""End to end: the whole graph on real DuckDB, MLflow and Dagster, from a small sample landing zone."""

from __future__ import annotations

import re
import shutil

import dagster as dg
import mlflow
import pandas as pd
import pytest

from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import materialize_all, read_table

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chain(sample_run):
    return sample_run.data_dir, sample_run.instance, sample_run.result


def test_every_asset_and_check_ran(chain):
    _, _, result = chain
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "raw/sales_orders", "raw/products", "raw/customers", "raw/promotions", "raw/series",
        "gold/sales_data_for_forecast", "gold/series_excluded", "forecasting/backtest_forecasts",
        "forecasting/series_evaluation", "forecasting/series_champions", "registry/sales_forecast_model",
        "forecasting/forecasts", "monitoring/drift_report", "monitoring/drift_summary",
        "monitoring/forecast_history", "monitoring/forecast_accuracy", "serving/sales_overall",
        "registry/serving_openapi",
    } <= materialized
    checks = result.get_asset_check_evaluations()
    failed = [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed]
    contract_failures = [f for f in failed if f[1] == "matches_contract"]
    assert contract_failures == []
    assert len(checks) >= 14


def test_gold_and_champions_cover_every_eligible_series(chain):
    data_dir, _, _ = chain
    gold = read_table(data_dir, "gold.sales_data_for_forecast")
    excluded = read_table(data_dir, "gold.series_excluded")
    champions = read_table(data_dir, "forecasting.series_champions")
    eligible = set(gold["unique_id"]) - set(excluded["unique_id"])
    assert len(eligible) >= 10
    assert set(champions["unique_id"]) == eligible
    assert gold.groupby("unique_id")["ds"].apply(lambda s: s.diff().dropna().eq(pd.Timedelta(days=7)).all()).all()
    assert (gold["ds"].dt.dayofweek == 0).all()


def test_forecasts_have_intervals_and_a_registered_version(chain):
    data_dir, _, _ = chain
    forecasts = read_table(data_dir, "forecasting.forecasts")
    champions = read_table(data_dir, "forecasting.series_champions")
    assert set(forecasts["unique_id"]) == set(champions["unique_id"])
    assert forecasts.groupby("unique_id").size().eq(13).all()
    assert (forecasts["lo_95"] <= forecasts["lo_80"] + 1e-9).all()
    assert (forecasts["lo_80"] <= forecasts["y_hat"] + 1e-9).all()
    assert (forecasts["y_hat"] <= forecasts["hi_80"] + 1e-9).all()
    assert (forecasts["hi_80"] <= forecasts["hi_95"] + 1e-9).all()
    gold = read_table(data_dir, "gold.sales_data_for_forecast")
    # Clipping at 0 (settings.intervals.clip 'auto') spares only the series with returns in their history.
    with_returns = set(gold.loc[gold["y"] < 0, "unique_id"])
    clipped = ~forecasts["unique_id"].isin(with_returns)
    assert (forecasts.loc[clipped, "lo_95"] >= 0).all()
    assert set(forecasts["model_version"]) == {"1"}
    assert forecasts["ds"].min() == gold["ds"].max() + pd.Timedelta(days=7)


def test_openapi_document_is_valid_and_describes_the_champion(chain):
    import json

    from openapi_spec_validator import validate

    data_dir, _, _ = chain
    document = json.loads((DataPaths(data_dir).root / "serving" / "openapi.json").read_text())
    validate(document)
    request = document["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    assert "dataframe_records" in json.dumps(request)
    assert '"maximum": 13' in json.dumps(document)


def test_mlflow_run_has_the_metrics_and_the_champion_alias(chain):
    data_dir, _, _ = chain
    paths = DataPaths(data_dir)
    mlflow.set_tracking_uri(paths.mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_names=["sales_forecast"], filter_string="tags.dagster_asset = "
                              "'forecasting/series_evaluation'")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert 0 < run["metrics.smape_champion_selection"] <= run["metrics.smape_seasonal_naive"]
    assert run["params.horizon"] == "13"
    # The MLflow run records the selection the champions table was built with.
    assert run["params.selection_mode_setting"] == "auto"
    champions = read_table(data_dir, "forecasting.series_champions")
    if run["params.selection_mode"] == "global":
        assert (champions["model"] == run["params.champion_for_all"]).all()
    else:
        assert run["params.selection_mode"] == "per_series" and run["params.champion_for_all"] == ""
    client = mlflow.MlflowClient(paths.mlflow_tracking_uri, paths.mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias("sales_forecast", "champion").version) == "1"


def test_mlflow_reads_as_an_mlflow_user_expects(chain):
    data_dir, _, _ = chain
    client = mlflow.MlflowClient(DataPaths(data_dir).mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("sales_forecast")
    # The experiment opens on its runs, not on MLflow 3's GenAI traces page, and says what it holds.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "forecasting/series_evaluation" in experiment.tags["mlflow.note.content"]
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags.get("kind", "evaluation") for r in runs} == {"evaluation", "drift_report", "levels_model"}
    for run in runs:
        assert run.data.tags["mlflow.note.content"]
        assert run.data.tags["mlflow.source.name"] == f"mlops_assets {run.data.tags['dagster_asset']}"
        assert not [name for name in run.data.metrics if name.count("smape") > 1]
    evaluation = next(r for r in runs if r.data.tags["dagster_asset"] == "forecasting/series_evaluation")
    assert "SMAPE" in evaluation.data.tags["mlflow.note.content"]
    inputs = evaluation.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name.startswith("gold.sales_data_for_forecast")
    assert inputs[0].dataset.digest and [t.value for t in inputs[0].tags] == ["evaluation"]
    drift = next(r for r in runs if r.data.tags.get("kind") == "drift_report")
    assert re.search(r"current \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d against reference \d{4}",
                     drift.data.tags["mlflow.note.content"])


def test_cli_summary_lists_tables_and_the_champion_mix(chain):
    from mlops_assets.cli import summary

    data_dir, _, _ = chain
    text = summary(DataPaths(data_dir))
    champions = read_table(data_dir, "forecasting.series_champions")
    assert "gold.sales_data_for_forecast" in text
    counts = champions["model"].value_counts().sort_index()
    expected = ", ".join(f"{model} {n}" for model, n in counts.items())
    assert f"champion models ({len(champions)} series): {expected}" in text


def test_sales_overall_and_snapshots(chain):
    data_dir, _, _ = chain
    paths = DataPaths(data_dir)
    overall = pd.read_parquet(paths.exports / "serving" / "sales_overall.parquet")
    assert set(overall["origin"]) == {"Train", "Predict"}
    predict = overall[overall["origin"] == "Predict"]
    assert predict["model_version"].notna().all() and predict["product_name"].notna().all()
    assert len(overall) == len(read_table(data_dir, "serving.sales_overall"))
    assert len(list((paths.plots / "series").glob("*.png"))) == overall["unique_id"].nunique()


def _data_versions(instance) -> dict[str, str]:
    """The data version of the steps that skip unchanged inputs: their input fingerprint, so staleness follows it."""
    keys = ("forecasting/backtest_forecasts", "forecasting/series_evaluation", "registry/sales_forecast_model",
            "monitoring/drift_report", "forecasting/forecasts")
    events = {k: instance.get_latest_materialization_event(dg.AssetKey.from_user_string(k)).asset_materialization
              for k in keys}
    return {k: e.tags["dagster/data_version"] for k, e in events.items()}


def test_rerun_is_idempotent(chain):
    data_dir, instance, _ = chain
    before = {t: len(read_table(data_dir, t)) for t in ("raw.sales_orders", "raw.rejected_rows",
                                                     "gold.sales_data_for_forecast", "forecasting.forecasts",
                                                     "monitoring.forecast_history")}
    versions = _data_versions(instance)
    backtest = instance.get_latest_materialization_event(dg.AssetKey(["forecasting", "backtest_forecasts"]))
    assert versions["forecasting/backtest_forecasts"] == \
        backtest.asset_materialization.metadata["input_fingerprint"].value
    result = materialize_all(data_dir, instance=instance)
    assert result.success
    after = {t: len(read_table(data_dir, t)) for t in before}
    assert after == before
    model_events = [e for e in result.get_asset_materialization_events()
                    if e.asset_key.to_user_string() == "registry/sales_forecast_model"]
    assert model_events[0].materialization.metadata["registered"].value is False
    assert _data_versions(instance) == versions, "same inputs, same data versions: nothing turns stale"


def test_cli_summary_plot_and_unknown_product(chain, monkeypatch, capsys, tmp_path):
    from mlops_assets import cli

    data_dir, _, _ = chain
    monkeypatch.setenv("MLOPS_DATA_DIR", str(data_dir))
    assert cli.main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "serving.sales_overall" in out and "raw.sales_orders" in out
    overall = pd.read_parquet(DataPaths(data_dir).exports / "serving" / "sales_overall.parquet")
    name = overall["product_name"].dropna().iloc[0]
    target = tmp_path / "one.png"
    assert cli.main(["plot", "--product", name, "--out", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")
    assert cli.main(["plot", "--product", name[:-1] + "#"]) == 2
    assert f'Closest: "{name}"' in capsys.readouterr().err


def test_the_backtest_says_how_many_series_it_did_and_how_fast(chain):
    _, instance, result = chain
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert [m for m in messages if re.fullmatch(r"backtest done: \d+ series in [\d.]+ s \([\d.]+ series/s\)", m)]


@pytest.mark.dask
def test_dask_engine_gives_the_same_tables(chain, small_sample, tmp_path_factory):
    """The whole chain again on a Dask LocalCluster of one worker: the same tables as the local pool's.

    One worker where the local pool has the machine's cores: the model groups, on which the global model is
    trained, follow the data and not the workers, so the plan changes only in how the work is sliced.
    """
    data_dir, _, _ = chain
    dask_dir = tmp_path_factory.mktemp("e2e_dask")
    shutil.copytree(small_sample / "landing", dask_dir / "landing")
    settings = dask_dir / "settings.yaml"
    workers = 1
    settings.write_text(f"compute: {{engine: dask, workers: {workers}}}\n")
    result = materialize_all(dask_dir, settings_file=str(settings))
    assert result.success
    backtest_event = next(e for e in result.get_asset_materialization_events()
                          if e.asset_key.to_user_string() == "forecasting/backtest_forecasts")
    metadata = backtest_event.materialization.metadata
    assert metadata["engine"].value == "dask" and metadata["workers"].value == workers
    assert metadata["model_groups"].value == 1 and metadata["tasks"].value >= 2
    assert not any((DataPaths(dask_dir).engine / "backtest").glob("*")), "parts are removed once loaded"
    keys = {
        "gold.sales_data_for_forecast": ["unique_id", "ds"],
        "forecasting.backtest_forecasts": ["unique_id", "model", "cutoff", "ds"],
        "forecasting.series_evaluation": ["unique_id", "model"],
        "forecasting.series_champions": ["unique_id"],
        "forecasting.forecasts": ["unique_id", "ds"],
        "serving.sales_overall": ["unique_id", "ds", "origin"],
    }
    for table, key in keys.items():
        local = read_table(data_dir, table).sort_values(key).reset_index(drop=True)
        dask = read_table(dask_dir, table).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(dask, local, check_exact=False, rtol=0, atol=1e-9, obj=table)


def _refit_in_groups(data_dir, tmp_path, bucket_series: int):
    """The registry's refit of the chain's champions in model groups of ``bucket_series``, on a copy of its
    warehouse: the champions, the refit run, the settings."""
    from mlops_assets.catalog import BACKTEST, CHAMPIONS
    from mlops_assets.forecasting.eligible import ELIGIBLE_SQL, regressors_sql
    from mlops_assets.forecasting.zoo import default_models
    from mlops_assets.registry.refit import champion_calibration, champion_rows, mean_abs_actuals, refit_by_group
    from mlops_assets.settings import Settings
    from mlops_assets.wiring.resources import build_resources

    copy = tmp_path / "data"
    copy.mkdir()
    shutil.copy(DataPaths(data_dir).warehouse, DataPaths(copy).warehouse)
    warehouse = build_resources(str(copy), "")["warehouse"]
    settings = Settings(compute={"bucket_series": bucket_series, "workers": 2})
    champions = warehouse.read(CHAMPIONS.name)
    rows = champion_rows(warehouse.connection, BACKTEST.name, CHAMPIONS.name)
    calibration = champion_calibration(rows, champions, mean_abs_actuals(warehouse.connection, ELIGIBLE_SQL),
                                       settings)
    with warehouse.connection() as con:
        x_sql = regressors_sql(con, settings, sorted(champions["model"].unique()))
    run = refit_by_group(warehouse.connection, ELIGIBLE_SQL, champions, BACKTEST.name, tmp_path / "refit", "fp",
                          settings, len(default_models(settings)), calibration, x_sql)
    return champions, run, settings


def test_the_refit_in_small_model_groups_forecasts_like_the_registered_model(chain, tmp_path):
    """The registry's refit on the sample in groups of 5 series: the per-series champions forecast exactly as
    the registered model (fitted in one group) does; LightGBM and Combination series are retrained per group."""
    from mlops_assets.forecasting.zoo import COMBINATION, GLOBAL_MODEL

    data_dir, _, _ = chain
    champions, run, _ = _refit_in_groups(data_dir, tmp_path, 5)
    assert len(run.groups) == -(-len(champions) // 5) >= 3
    predicted = run.forecaster.predict()
    registered = read_table(data_dir, "forecasting.forecasts").drop(columns=["model_version", "champion"])
    assert set(predicted["unique_id"]) == set(registered["unique_id"])
    per_series = champions.loc[~champions["model"].isin([GLOBAL_MODEL, COMBINATION]), "unique_id"]
    assert len(per_series) >= 5

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["unique_id"].isin(per_series)].sort_values(["unique_id", "ds"])
        return frame[registered.columns].reset_index(drop=True)

    pd.testing.assert_frame_equal(pick(predicted), pick(registered), check_exact=False, rtol=0, atol=1e-9)


def test_a_model_logged_in_groups_of_3_predicts_as_the_merged_model(chain, tmp_path):
    """The sample's champions refit in model groups of 3 and logged as parts: the loaded pyfunc answers exactly as
    the one forecaster merged from the same parts (ChampionForecaster.combine, the registered model before it
    was parted), and scoring it group by group loads one group at a time."""
    import pickle

    from mlops_assets.registry.champion_model import ChampionForecaster
    from mlops_assets.registry.pyfunc_model import SalesForecastModel, log_forecast_model

    data_dir, _, _ = chain
    champions, run, settings = _refit_in_groups(data_dir, tmp_path, 3)
    assert len(run.groups) == -(-len(champions) // 3) >= 3
    merged = ChampionForecaster.combine([pickle.loads((run.folder / "parts" / f"{g.name}.pkl").read_bytes())
                                         for g in run.groups])
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("parts", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_forecast_model(run.forecaster, model_version="3")
        model = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(None)
    parted = model.unwrap_python_model().forecaster
    parted.kept_groups = 1
    ids = merged.series["unique_id"].tolist()
    request = pd.DataFrame({"unique_id": ids[::-1], "h": [1 + i % settings.horizon for i in range(len(ids))]})
    pd.testing.assert_frame_equal(model.predict(request), SalesForecastModel(merged, "3").predict(None, request))
    for group, members in parted.group_series().items():
        answer = model.predict(pd.DataFrame({"unique_id": members, "h": settings.horizon}))
        assert parted.loaded_groups == [group]
        pd.testing.assert_frame_equal(answer, SalesForecastModel(merged, "3").predict(
            None, pd.DataFrame({"unique_id": members, "h": settings.horizon})))
