"""Champions that could not be served are counted, said, and never claimed."""


import duckdb
import pandas as pd

from mlops_assets.registry.served import served_champions, unserved_champions, unserved_in_forecasts
from mlops_assets.warehouse import connector

SERIES = pd.DataFrame({"unique_id": ["a", "b", "c"], "model": ["LightGBM", "LightGBM", "AutoTheta"],
                       "fitted_model": ["LightGBM", "Naive", "Naive"]})


def test_replaced_champions_are_counted_by_model_and_named():
    unserved = unserved_champions(SERIES)
    assert unserved.count == 2 and unserved.total == 3
    assert unserved.by_model() == {"AutoTheta -> Naive": 1, "LightGBM -> Naive": 1}
    assert "2 of 3 champions could not be served" in unserved.message() and "e.g. b, c" in unserved.message()
    assert unserved.metadata()["champions_not_served"] == 2
    assert unserved_champions(SERIES.assign(fitted_model=SERIES["model"])).count == 0


def test_the_registered_champions_name_the_served_model_with_its_own_scores():
    champions = pd.DataFrame({"unique_id": ["a", "b", "c"], "model": ["LightGBM", "LightGBM", "AutoTheta"],
                              "smape": [10.0, 11.0, 12.0], "runner_up": ["Naive"] * 3,
                              "runner_up_smape": [20.0] * 3, "seasonal_naive_smape": [30.0] * 3,
                              "metric": "smape", "score": [10.0, 11.0, 12.0]})
    evaluation = pd.DataFrame({"unique_id": ["b", "c"], "model": ["Naive", "AutoETS"], "smape": [25.0, 1.0]})
    served = served_champions(champions, SERIES, evaluation)
    assert served["model"].tolist() == ["LightGBM", "Naive", "Naive"]
    assert served["smape"].tolist()[:2] == [10.0, 25.0] and pd.isna(served["smape"].iloc[2])
    assert served["score"].tolist()[:2] == [10.0, 25.0] and served["runner_up"].isna().tolist() == [False, True, True]
    assert served["seasonal_naive_smape"].tolist() == [30.0] * 3


def test_scoring_counts_forecast_rows_made_by_another_model_than_the_champion(tmp_path):
    path = str(tmp_path / "w.duckdb")
    with duckdb.connect(path) as con:
        con.execute("create schema forecasting")
        con.execute("create table forecasting.forecasts as select * from (values ('a', 'LightGBM', 'LightGBM'), "
                    "('a', 'LightGBM', 'LightGBM'), ('b', 'Naive', 'LightGBM'), ('b', 'Naive', 'LightGBM')) "
                    "t(unique_id, model, champion)")

    unserved = unserved_in_forecasts(connector(path), "forecasting.forecasts")
    assert (unserved.count, unserved.total) == (1, 2)
    assert unserved.series.to_dict("records") == [{"unique_id": "b", "champion": "LightGBM", "served": "Naive"}]
    assert unserved.message().startswith("scoring: 1 of 2 champions could not be served")
