"""Scoring by chunk: the served model's forecasts, a chunk of series at a time, swapped in whole or not at all."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.scoring import fixed_chunks, score_by_chunk
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.pyfunc_model import SalesForecastModel
from mlops_assets.warehouse import replace_from_parquet

TABLE = "forecasting.forecasts"


@pytest.fixture(scope="module")
def model() -> SalesForecastModel:
    rng = np.random.default_rng(1)
    ds = pd.date_range("2023-01-02", periods=30, freq="W-MON")
    history = pd.DataFrame({"unique_id": np.repeat([f"s{i:02d}" for i in range(10)], 30), "ds": np.tile(ds, 10),
                            "y": rng.gamma(2.0, 10.0, 300)})
    champions = pd.DataFrame({"unique_id": [f"s{i:02d}" for i in range(10)],
                              "model": ["Naive", "SeasonalNaive"] * 5})
    return SalesForecastModel(ChampionForecaster("W-MON", 4, 6).fit(history, champions), "7")


def _replace(con):
    return lambda parts: replace_from_parquet(con, TABLE, parts, "unique_id, ds")[0]


def test_chunks_of_series_make_the_same_table_as_one_call(model, tmp_path):
    requests = []

    def predict(request: pd.DataFrame) -> pd.DataFrame:
        requests.append(len(request))
        return model.predict(None, request)

    ids = model.forecaster.series["unique_id"]
    logs = []
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        rows = score_by_chunk(predict, fixed_chunks(ids, 4), 6, tmp_path / "scoring", _replace(con), logs.append)
        stored = con.execute(f"select * from {TABLE} order by unique_id, ds").df()
    assert requests == [4, 4, 2] and rows == 60
    assert logs[-1].startswith("scoring: 3/3 chunks, 10/10 series")
    whole = model.predict(None, pd.DataFrame({"unique_id": ids, "h": 6}))
    whole["ds"] = pd.to_datetime(whole["ds"])
    pd.testing.assert_frame_equal(stored, whole.sort_values(["unique_id", "ds"]).reset_index(drop=True),
                                  check_dtype=False)
    assert stored["y_hat"].dtype == np.float64 and stored["model_version"].eq("7").all()


def test_a_failing_chunk_leaves_the_previous_table_whole(model, tmp_path):
    ids = model.forecaster.series["unique_id"]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        score_by_chunk(lambda r: model.predict(None, r), fixed_chunks(ids, 4), 6, tmp_path / "scoring", _replace(con))
        before = con.execute(f"select * from {TABLE} order by unique_id, ds").df()
        calls = []

        def breaks_on_the_second_chunk(request: pd.DataFrame) -> pd.DataFrame:
            calls.append(request)
            if len(calls) == 2:
                raise RuntimeError("worker lost")
            return model.predict(None, request.assign(h=3))

        with pytest.raises(RuntimeError, match="worker lost"):
            score_by_chunk(breaks_on_the_second_chunk, fixed_chunks(ids, 4), 6, tmp_path / "scoring", _replace(con))
        after = con.execute(f"select * from {TABLE} order by unique_id, ds").df()
    pd.testing.assert_frame_equal(after, before)
    assert len(after) == 60
