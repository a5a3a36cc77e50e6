"""The registered model as per-group parts: the same forecasts as the merged forecaster, a group loaded only
when one of its series is asked for, and logged by MLflow without unpickling the other parts."""

from __future__ import annotations

import pickle

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_assets.registry import model_parts
from mlops_assets.registry.champion_model import ChampionForecaster, UnknownSeriesError
from mlops_assets.registry.model_parts import PartedForecaster, assemble, write_part
from mlops_assets.registry.pyfunc_model import MODEL_VERSION_KEY, SalesForecastModel, log_forecast_model

GROUPS = {"bucket-00000": ["s00", "s03", "s07"], "bucket-00001": ["s01", "s04", "s08"],
          "bucket-00002": ["s02", "s05", "s06"]}


def _history() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ds = pd.date_range("2023-01-02", periods=40, freq="W-MON")
    ids = sorted(u for g in GROUPS.values() for u in g)
    history = pd.DataFrame({"unique_id": np.repeat(ids, 40), "ds": np.tile(ds, len(ids)),
                            "y": rng.gamma(2.0, 10.0, 40 * len(ids))})
    # A series with returns: it is forecast unclipped, whichever part holds it.
    history.loc[history["unique_id"].eq("s04") & history["ds"].eq(ds[5]), "y"] = -3.0
    return history


@pytest.fixture
def parts(tmp_path):
    """Three groups of 3 series fitted apart and written as parts; the same fits merged into one forecaster."""
    history = _history()
    models = ["Naive", "SeasonalNaive", "WindowAverage"]
    fitted = []
    for k, (group, ids) in enumerate(GROUPS.items()):
        champions = pd.DataFrame({"unique_id": ids, "model": [models[(k + i) % 3] for i in range(3)]})
        forecaster = ChampionForecaster("W-MON", 4, 6).fit(history[history["unique_id"].isin(ids)], champions)
        write_part(forecaster, tmp_path / "parts", group)
        fitted.append(forecaster)
    return assemble(tmp_path / "parts", list(GROUPS)), ChampionForecaster.combine(fitted)


def test_parts_predict_exactly_as_the_merged_forecaster(parts):
    parted, merged = parts
    pd.testing.assert_frame_equal(parted.series, merged.series)
    assert (parted.horizon, parted.levels, parted.clipped) == (merged.horizon, merged.levels, merged.clipped) \
        == (6, (80, 95), False)
    pd.testing.assert_frame_equal(parted.predict(), merged.predict())
    asked = ["s08", "s00", "s05", "s04"]
    pd.testing.assert_frame_equal(parted.predict(asked, h=3, levels=[80]), merged.predict(asked, h=3, levels=[80]))
    assert (parted.predict(["s04"])["lo_95"] < 0).any()
    with pytest.raises(UnknownSeriesError, match="unknown unique_id.*'nope'.*knows 9 series"):
        parted.predict(["s00", "nope"])


def test_a_group_is_loaded_only_for_its_series(parts):
    parted, merged = parts
    others = [parted.folder / f"{g}.pkl" for g in list(GROUPS)[1:]]
    for path in others:
        path.rename(path.with_suffix(".gone"))
    # The other groups' files are gone: this answer can only come from the first group's part.
    pd.testing.assert_frame_equal(parted.predict(["s03", "s00"]), merged.predict(["s00", "s03"]))
    assert parted.loaded_groups == ["bucket-00000"]
    with pytest.raises(FileNotFoundError, match="bucket-00001.pkl"):
        parted.predict(["s01"])


def test_the_least_recently_used_groups_are_let_go(parts):
    parted, _ = parts
    parted.kept_groups = 2
    for uid in ["s00", "s01", "s00", "s02"]:
        parted.predict([uid])
    assert parted.loaded_groups == ["bucket-00000", "bucket-00002"]
    parted.kept_groups = 1
    parted.predict(["s01"])
    assert parted.loaded_groups == ["bucket-00001"]
    assert pickle.loads(pickle.dumps(parted)).loaded_groups == []


def test_parts_that_do_not_make_one_model_are_refused(parts, tmp_path):
    parted, _ = parts
    history = _history()
    again = ChampionForecaster("W-MON", 4, 6).fit(history[history["unique_id"].eq("s00")],
                                                   pd.DataFrame({"unique_id": ["s00"], "model": ["Naive"]}))
    write_part(again, parted.folder, "bucket-00009")
    with pytest.raises(ValueError, match=r"more than one part: \['s00'\]"):
        assemble(parted.folder, [*GROUPS, "bucket-00009"])
    longer = ChampionForecaster("W-MON", 4, 8).fit(history[history["unique_id"].eq("s01")],
                                                    pd.DataFrame({"unique_id": ["s01"], "model": ["Naive"]}))
    write_part(longer, tmp_path / "other", "bucket-00000")
    write_part(again, tmp_path / "other", "bucket-00001")
    with pytest.raises(ValueError, match=r"different settings .*\['horizon'\]"):
        assemble(tmp_path / "other", ["bucket-00000", "bucket-00001"])


@pytest.mark.slow
def test_logging_copies_the_parts_and_unpickles_only_the_example_group(parts, tmp_path, monkeypatch):
    parted, merged = parts
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        unpickled, loads = [], pickle.loads

        def counted(data: bytes):
            part = loads(data)
            unpickled.append(part.series["unique_id"].tolist())
            return part

        monkeypatch.setattr(model_parts.pickle, "loads", counted)
        experiment = mlflow.create_experiment("parts", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_forecast_model(parted, model_version="4")
        monkeypatch.undo()
        # MLflow checks that the logged model answers its input example: that example's group only.
        assert unpickled == [GROUPS["bucket-00000"]]
        local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "copy"))
        logged = sorted(p.name for p in (tmp_path / "copy" / "artifacts" / parted.folder.name).glob("*.pkl"))
        assert local and logged == [f"{g}.pkl" for g in GROUPS]
        model = mlflow.pyfunc.load_model(info.model_uri)
        served = model.unwrap_python_model()
        assert isinstance(served.forecaster, PartedForecaster) and served.forecaster.loaded_groups == []
        request = pd.DataFrame({"unique_id": ["s06", "s02"], "h": [6, 2]})
        answer = model.predict(request)
        assert served.forecaster.loaded_groups == ["bucket-00002"]
        pd.testing.assert_frame_equal(answer, SalesForecastModel(merged, "4").predict(None, request))
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_a_version_logged_before_parts_still_loads_and_answers(parts, tmp_path):
    """A champion registered by an earlier release (the merged forecaster pickled in the model, no parts)
    keeps serving after an upgrade, until the next registration replaces it."""
    _, merged = parts
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("old", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(name="model", python_model=SalesForecastModel(merged),
                                           model_config={MODEL_VERSION_KEY: "3"})
        model = mlflow.pyfunc.load_model(info.model_uri)
        assert isinstance(model.unwrap_python_model().forecaster, ChampionForecaster)
        request = pd.DataFrame({"unique_id": ["s06", "s02"], "h": [6, 2]})
        pd.testing.assert_frame_equal(model.predict(request), SalesForecastModel(merged, "3").predict(None, request))
    finally:
        mlflow.set_tracking_uri(None)
