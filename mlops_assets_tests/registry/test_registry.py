"""Registry lifecycle on a real MLflow store: register, promote or reject on the same data, roll back."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.model_registry import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    apply_promotion,
    champion_choices,
    decide_promotion,
    load_champion,
    register_champions,
    registration_key,
    rollback,
)
from mlops_assets.registry.pyfunc_model import SalesForecastModel
from mlops_assets.settings import Settings

NAME = "sales_forecast_test"
HORIZON = 13
SERIES = [f"s{i}" for i in range(8)]
# Backtest SMAPE per model and series: the first evaluation, and the one a later backtest on new data gives.
EVAL_1 = {
    "SeasonalNaive": [10, 30, 30, 30, 10, 30, 30, 10],
    "Naive": [20, 15, 25, 12, 20, 25, 14, 20],
    "AutoTheta": [30, 20, 8, 20, 30, 9, 20, 30],
}
EVAL_2 = {
    "SeasonalNaive": [12, 30, 30, 30, 25, 30, 30, 18],
    "Naive": [20, 16, 25, 10, 11, 25, 14, 9],
    "AutoTheta": [30, 20, 9, 20, 30, 40, 20, 30],
}


def weekly_history(n_series: int = 8, n_weeks: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-01-03", periods=n_weeks, freq="W-MON")
    t = np.arange(n_weeks)
    return pd.concat(
        pd.DataFrame(
            {"unique_id": f"s{i}", "ds": ds, "y": 50 + i + 10 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 3, n_weeks)}
        )
        for i in range(n_series)
    ).reset_index(drop=True)


def evaluation(scores: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"unique_id": uid, "model": model, "smape": float(values[i]), "mae": 1.0, "n_windows": 3}
            for model, values in scores.items()
            for i, uid in enumerate(SERIES)
        ]
    )


def choose(scores: dict[str, list[float]], pick=np.argmin) -> pd.DataFrame:
    models = list(scores)
    table = np.array([scores[m] for m in models], dtype=float)
    best = pick(table, axis=0)
    return pd.DataFrame(
        {"unique_id": SERIES, "model": [models[b] for b in best], "smape": table[best, range(len(SERIES))]}
    )


def mean_smape(scores: dict[str, list[float]], choices: pd.DataFrame) -> float:
    return float(
        np.mean([scores[m][SERIES.index(u)] for u, m in zip(choices["unique_id"], choices["model"], strict=True)])
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # SQLite on tmpfs: creating an MLflow database runs ~100 migrations, each an fsync (15 s on disk, 3 s here).
    db_dir = Path(tempfile.mkdtemp(prefix="mlflow-test-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(f"sqlite:///{db_dir}/mlflow.db")
    mlflow.set_registry_uri(f"sqlite:///{db_dir}/mlflow.db")
    experiment = mlflow.create_experiment(
        "registry-test", artifact_location=tmp_path_factory.mktemp("artifacts").as_uri()
    )
    yield experiment
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    if previous:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    shutil.rmtree(db_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def lifecycle(store):
    """v1 (first), v2 (better on the new data, promoted), v3 (worse, rejected); state seen after each."""
    history = weekly_history()
    out: dict = {"history": history}
    steps = [
        (1, choose(EVAL_1), evaluation(EVAL_1)),
        (2, choose(EVAL_2), evaluation(EVAL_2)),
        (3, choose(EVAL_2, pick=np.argmax), evaluation(EVAL_2)),
    ]
    for step, champions, evaluated in steps:
        forecaster = ChampionForecaster("W-MON", 52, HORIZON).fit(history, champions)
        with mlflow.start_run(experiment_id=store):
            registered = register_champions(
                forecaster,
                champions,
                name=NAME,
                run_id=None,
                description=f"step {step}",
                tags={"data_fingerprint": f"data{step}", "settings_fingerprint": "s1"},
            )
        decision = decide_promotion(
            name=NAME, new_version=registered.version, new_champions=champions, evaluation=evaluated, tolerance=0.0
        )
        apply_promotion(decision, name=NAME)
        out[step] = {
            "forecaster": forecaster,
            "champions": champions,
            "registered": registered,
            "decision": decision,
            "champion_after": alias_version(NAME, CHAMPION),
            "challenger_after": alias_version(NAME, CHALLENGER),
        }
    return out


def version_tags(version: str) -> dict[str, str]:
    return mlflow.MlflowClient().get_model_version(NAME, version).tags


def test_first_version_becomes_champion(lifecycle):
    first = lifecycle[1]
    assert first["registered"].version == "1"
    assert first["decision"].promoted and first["decision"].reason.startswith("first version")
    assert first["decision"].current_version is None
    assert first["champion_after"] == "1" and first["challenger_after"] == "1"
    tags = version_tags("1")
    assert tags["data_fingerprint"] == "data1" and tags["settings_fingerprint"] == "s1"
    assert tags["n_series"] == "8" and tags["promotion_status"] == "promoted"
    assert float(tags["backtest_smape"]) == pytest.approx(first["champions"]["smape"].mean(), abs=1e-4)
    assert mlflow.MlflowClient().get_model_version(NAME, "1").description == "step 1"
    # The champions table is an artifact of the run, readable by a later gate.
    pd.testing.assert_frame_equal(champion_choices(NAME, "1"), first["champions"][["unique_id", "model"]])


def test_better_version_is_promoted_on_the_same_data(lifecycle):
    decision = lifecycle[2]["decision"]
    expected_current = mean_smape(EVAL_2, lifecycle[1]["champions"])
    expected_new = mean_smape(EVAL_2, lifecycle[2]["champions"])
    assert expected_new < expected_current
    assert decision.promoted
    assert (decision.current_version, decision.n_series_compared) == ("1", 8)
    assert decision.current_score == pytest.approx(expected_current)
    assert decision.new_score == pytest.approx(expected_new)
    assert lifecycle[2]["champion_after"] == "2"
    tags = version_tags("2")
    assert tags["promotion_status"] == "promoted" and tags["compared_with_version"] == "1"
    assert float(tags["champion_score"]) == pytest.approx(expected_current, abs=1e-4)


def test_worse_version_is_rejected_and_champion_stays(lifecycle):
    decision = lifecycle[3]["decision"]
    assert not decision.promoted
    assert decision.new_score == pytest.approx(mean_smape(EVAL_2, lifecycle[3]["champions"]))
    assert decision.current_score == pytest.approx(mean_smape(EVAL_2, lifecycle[2]["champions"]))
    assert lifecycle[3]["champion_after"] == "2" and lifecycle[3]["challenger_after"] == "3"
    tags = version_tags("3")
    assert tags["promotion_status"] == "rejected"
    assert "rejected" in tags["promotion_reason"] and "same 8 series" in tags["promotion_reason"]
    assert float(tags["compared_score"]) == pytest.approx(decision.new_score, abs=1e-4)
    assert tags["compared_metric"] == "smape"


def test_tolerance_lets_a_slightly_worse_version_through(lifecycle):
    worse = lifecycle[3]["champions"]
    gap = mean_smape(EVAL_2, worse) - mean_smape(EVAL_2, lifecycle[2]["champions"])
    kwargs = dict(name=NAME, new_version="3", new_champions=worse, evaluation=evaluation(EVAL_2))
    assert decide_promotion(**kwargs, tolerance=gap + 0.01).promoted
    assert not decide_promotion(**kwargs, tolerance=gap - 0.01).promoted


def test_one_model_for_all_is_judged_out_of_sample_when_the_guard_chose_it(lifecycle):
    # v3's choices lose on the backtest v2's per-series choices were fitted to; if the selection guard
    # found one model for all better on each series' last window, that comparison decides.
    worse = lifecycle[3]["champions"]
    kwargs = dict(name=NAME, new_version="3", new_champions=worse, evaluation=evaluation(EVAL_2), tolerance=0.0)
    guard = {"mode": "global", "champion_for_all": "Naive"}
    held_up = decide_promotion(**kwargs, selection={**guard, "global_last_window_score": 20.0,
                                                     "per_series_last_window_score": 25.0})
    assert held_up.promoted and "out of sample" in held_up.reason and "20 against 25" in held_up.reason
    assert held_up.new_score == pytest.approx(mean_smape(EVAL_2, worse))  # the in-sample figures stay recorded
    did_not = decide_promotion(**kwargs, selection={**guard, "global_last_window_score": 30.0,
                                                     "per_series_last_window_score": 25.0})
    assert not did_not.promoted and "rejected" in did_not.reason
    # A per-series choice gets no such help, and a record without the scores changes nothing.
    assert not decide_promotion(**kwargs, selection={"mode": "per_series"}).promoted
    assert not decide_promotion(**kwargs, selection=guard).promoted


def test_the_gate_compares_both_versions_on_the_selection_metric(lifecycle):
    # v3's choices lose to the champion's (v2) on SMAPE; on RMSE, where v3's models are exact, they win.
    worse = lifecycle[3]["champions"]
    ev = evaluation(EVAL_2)
    ev["rmse"] = np.where(ev.set_index(["unique_id", "model"]).index.isin(
        pd.MultiIndex.from_frame(worse[["unique_id", "model"]])), 0.0, 1.0)
    kwargs = dict(name=NAME, new_version="3", new_champions=worse, evaluation=ev, tolerance=0.0)
    on_smape = decide_promotion(**kwargs)
    assert not on_smape.promoted and on_smape.metric == "smape"
    on_rmse = decide_promotion(**kwargs, metric="rmse")
    assert on_rmse.promoted and on_rmse.metric == "rmse" and "RMSE 0 <= champion version 2 RMSE" in on_rmse.reason
    assert (on_rmse.new_score, on_rmse.n_series_compared) == (0.0, 8)
    # A guard that judges on its own metric (daily: the pooled MAE) decides on it, with no tolerance: the
    # gate's is in the gate metric's units.
    guard = {"mode": "global", "champion_for_all": "Naive", "metric": "smape", "guard_metric": "mae",
             "global_last_window_score": 20.0, "per_series_last_window_score": 25.0}
    held_up = decide_promotion(**kwargs, selection=guard)
    assert held_up.promoted and "MAE 20 against 25" in held_up.reason and held_up.metric == "smape"
    lenient = {**kwargs, "tolerance": 2.0}
    assert not decide_promotion(**lenient, selection={**guard, "global_last_window_score": 26.0}).promoted
    assert decide_promotion(**lenient, selection={**guard, "guard_metric": "smape",
                                                  "global_last_window_score": 26.0}).promoted
    with pytest.raises(ValueError, match="no 'wape' column"):
        decide_promotion(**kwargs, metric="wape")


def test_comparison_covers_only_series_the_new_evaluation_scores(lifecycle):
    # The new backtest dropped AutoTheta: series where the champion (v2) used it cannot be compared.
    partial = {k: v for k, v in EVAL_2.items() if k != "AutoTheta"}
    new = choose(partial)
    decision = decide_promotion(
        name=NAME, new_version="9", new_champions=new, evaluation=evaluation(partial), tolerance=0.0
    )
    old = lifecycle[2]["champions"]
    comparable = old["model"] != "AutoTheta"
    assert decision.n_series_compared == int(comparable.sum()) == 7
    assert decision.current_score == pytest.approx(mean_smape(EVAL_2, old[comparable]))
    assert decision.new_score == pytest.approx(mean_smape(partial, new[comparable.to_numpy()]))


def test_nothing_comparable_promotes_and_says_why(lifecycle):
    only_new_model = {"WindowAverage": [5.0] * len(SERIES)}
    decision = decide_promotion(
        name=NAME,
        new_version="9",
        new_champions=choose(only_new_model),
        evaluation=evaluation(only_new_model),
        tolerance=0.0,
    )
    assert decision.promoted and decision.n_series_compared == 0
    assert "not in the new evaluation" in decision.reason and "AutoTheta" in decision.reason
    assert decision.current_score is None and decision.new_score == 5.0


def served_like(forecaster: ChampionForecaster, version: str, h: int) -> pd.DataFrame:
    expected = forecaster.predict(SERIES, h=h)
    expected["ds"] = expected["ds"].dt.strftime("%Y-%m-%d")
    expected.insert(3, "model_version", version)
    return expected


def test_loaded_model_answers_like_its_forecaster_with_its_version(lifecycle):
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    answer = model.predict(pd.DataFrame({"unique_id": SERIES, "h": [HORIZON] * len(SERIES)}))
    pd.testing.assert_frame_equal(answer, served_like(lifecycle[2]["forecaster"], "2", HORIZON))
    one_level = model.predict(pd.DataFrame({"unique_id": ["s3"], "h": [4], "level": [80]}))
    expected = lifecycle[2]["forecaster"].predict(["s3"], h=4)
    assert one_level["model_version"].tolist() == ["2"] * 4
    np.testing.assert_allclose(one_level["hi_80"].astype(float), expected["hi_80"])
    assert one_level["lo_95"].isna().all() and one_level["hi_95"].isna().all()


def test_mixed_request_keeps_request_order_and_asked_levels(lifecycle):
    forecaster = lifecycle[2]["forecaster"]
    model = SalesForecastModel(forecaster, model_version="2")
    request = pd.DataFrame({"unique_id": ["s5", "s2", "s5"], "h": [2, 3, 2], "level": [80, np.nan, 95]})
    answer = model.predict(None, request)
    assert answer["unique_id"].tolist() == ["s5", "s5", "s2", "s2", "s2", "s5", "s5"]
    full = forecaster.predict(["s2", "s5"], h=3).set_index(["unique_id", "ds"])
    keys = list(zip(answer["unique_id"], pd.to_datetime(answer["ds"]), strict=True))
    np.testing.assert_allclose(answer["y_hat"], full.loc[keys, "y_hat"])
    assert answer["lo_95"].isna().tolist() == [True, True, False, False, False, False, False]
    assert answer["lo_80"].isna().tolist() == [False, False, False, False, False, True, True]
    np.testing.assert_allclose(answer["hi_95"][2:].astype(float), full.loc[keys[2:], "hi_95"])


def test_rollback_points_champion_at_an_earlier_version(lifecycle):
    previous = rollback(NAME, "1")
    try:
        assert previous == "2"
        model, version = load_champion(NAME)
        assert version == "1"
        answer = model.predict(pd.DataFrame({"unique_id": SERIES, "h": [5] * len(SERIES)}))
        pd.testing.assert_frame_equal(answer, served_like(lifecycle[1]["forecaster"], "1", 5))
        assert version_tags("1")["rolled_back_from"] == "2"
    finally:
        rollback(NAME, previous)
    assert alias_version(NAME, CHAMPION) == "2"


def test_rollback_to_a_missing_version_is_refused(lifecycle):
    with pytest.raises(MlflowException, match=r"version '42'.*does not exist; existing versions: \[1, 2, 3"):
        rollback(NAME, "42")
    assert alias_version(NAME, CHAMPION) == "2"


def test_version_number_survives_a_deleted_version_and_a_resumed_run(lifecycle, store):
    client = mlflow.MlflowClient()
    v1 = client.get_model_version(NAME, "1")
    # A version created elsewhere and deleted: MLflow still counts it, a search does not show it.
    ghost = client.create_model_version(NAME, source=v1.source, run_id=v1.run_id, model_id=v1.model_id)
    client.delete_model_version(NAME, ghost.version)
    with mlflow.start_run(experiment_id=store) as run:
        pass
    registered = register_champions(
        lifecycle[1]["forecaster"],
        lifecycle[1]["champions"],
        name=NAME,
        run_id=run.info.run_id,
        description="after a gap",
        tags={},
    )
    assert int(registered.version) > int(ghost.version)
    assert registered.run_id == run.info.run_id
    answer = mlflow.pyfunc.load_model(registered.model_uri).predict(pd.DataFrame({"unique_id": ["s0"], "h": [1]}))
    assert answer["model_version"].tolist() == [registered.version]
    assert f"champions/{NAME}-v{registered.version}.csv" in [
        a.path for a in client.list_artifacts(run.info.run_id, "champions")
    ]


def test_same_inputs_again_reuse_their_version_instead_of_registering_a_copy(lifecycle, store):
    # A run that stopped after registering (before Dagster recorded the materialization) runs again.
    client = mlflow.MlflowClient()
    before = sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))
    step = lifecycle[3]
    with mlflow.start_run(experiment_id=store):
        again = register_champions(
            step["forecaster"],
            step["champions"],
            name=NAME,
            run_id=None,
            description="the same inputs, after a crash",
            tags={"data_fingerprint": "data3", "settings_fingerprint": "s1", "dagster_run_id": "a-later-run"},
        )
    assert (again.version, again.reused) == ("3", True)
    assert not step["registered"].reused
    assert sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'")) == before
    assert alias_version(NAME, CHALLENGER) == "3"
    assert version_tags("3")["registration_key"] == registration_key(
        step["champions"], {"data_fingerprint": "data3", "settings_fingerprint": "s1"}
    )
    # Other inputs (another data fingerprint) are another version.
    assert registration_key(step["champions"], {"data_fingerprint": "data4", "settings_fingerprint": "s1"}) \
        != version_tags("3")["registration_key"]


def test_a_quote_in_the_model_name_is_refused_before_anything_is_registered(lifecycle):
    with pytest.raises(ValueError, match=r"registered_model_name \"o'brien\" may hold only letters"):
        Settings(registered_model_name="o'brien")
    with pytest.raises(ValueError, match=r"registered model name \"o'brien\" may hold only letters"):
        register_champions(
            lifecycle[1]["forecaster"], lifecycle[1]["champions"], name="o'brien", run_id=None,
            description="", tags={},
        )
    assert mlflow.MlflowClient().search_registered_models(filter_string="name LIKE 'o%'") == []
    assert Settings(registered_model_name="sales_forecast.v2-eu").registered_model_name == "sales_forecast.v2-eu"


BAD_REQUESTS = [
    ({"unique_id": ["nope"], "h": [3]}, r"unknown unique_id 'nope' in row 0; the model knows 8 series"),
    ({"unique_id": ["s0", "s1"], "h": [3, 0]}, r"h must be at least 1, got h=0 in row 1"),
    ({"unique_id": ["s0"], "h": [-1]}, r"h must be at least 1, got h=-1 in row 0"),
    ({"unique_id": ["s0"], "h": [14]}, r"h=14 in row 0 is beyond the trained horizon of 13"),
    (
        {"unique_id": ["s0"], "h": [2], "level": [90]},
        r"level 90 in row 0 was not fitted; the model has levels \[80, 95\]",
    ),
    ({"unique_id": ["s0"]}, r"missing inputs \['h'\]"),
]


@pytest.mark.parametrize(("request_columns", "message"), BAD_REQUESTS)
def test_served_model_refuses_bad_requests_with_400_and_a_message(lifecycle, request_columns, message):
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    with pytest.raises(MlflowException, match=message) as caught:
        model.predict(pd.DataFrame(request_columns))
    assert caught.value.get_http_status_code() == 400


@pytest.mark.parametrize(
    ("request_columns", "message"),
    [
        ({"unique_id": ["s0"]}, r"the request lacks column\(s\) \['h'\]"),
        ({"unique_id": ["s0"], "h": [1.5]}, r"h must be a whole number \(from 1 to 13\), got 1.5 in row 0"),
        ({"unique_id": ["s0"], "h": ["2"]}, r"h must be a whole number"),
        ({"unique_id": [None], "h": [2]}, r"unique_id is missing in row 0"),
        ({"unique_id": [], "h": []}, r"the request has no rows"),
    ],
)
def test_model_validates_requests_itself(lifecycle, request_columns, message):
    # MLflow's schema enforcement catches some of these earlier; the model must not rely on it.
    model = SalesForecastModel(lifecycle[2]["forecaster"], model_version="2")
    with pytest.raises(MlflowException, match=message) as caught:
        model.predict(None, pd.DataFrame(request_columns))
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_registration_prints_nothing_and_links_the_run_and_the_logged_model(store, capfd):
    history = weekly_history()
    champions = choose(EVAL_1)
    forecaster = ChampionForecaster("W-MON", 52, HORIZON).fit(history, champions)
    capfd.readouterr()
    with mlflow.start_run(experiment_id=store) as run:
        registered = register_champions(forecaster, champions, name="quiet_forecast", run_id=None,
                                        description="first", tags={})
    assert "already exists" not in capfd.readouterr().err
    version = mlflow.MlflowClient().get_model_version("quiet_forecast", registered.version)
    assert version.run_id == run.info.run_id
    assert version.source.startswith("models:/m-"), version.source


def test_each_version_gets_its_own_run_when_the_evaluation_run_is_reused(store):
    # A settings change that keeps the backtest keeps its evaluation run: the second version must not be
    # logged into the run that already holds the first one's model.
    history = weekly_history(n_series=2)
    champions = pd.DataFrame({"unique_id": ["s0", "s1"], "model": "Naive"})
    forecaster = ChampionForecaster("W-MON", 52, HORIZON).fit(history, champions)
    mlflow.set_experiment(experiment_id=store)
    with mlflow.start_run() as evaluation_run:
        pass
    runs = []
    for step in (1, 2):
        registered = register_champions(forecaster, champions, name=f"{NAME}_runs", run_id=evaluation_run.info.run_id,
                                        description=f"step {step}", tags={"settings_fingerprint": f"s{step}"})
        runs.append(registered.run_id)
    assert runs[0] == evaluation_run.info.run_id
    assert runs[1] != runs[0]
    tags = mlflow.MlflowClient().get_model_version(f"{NAME}_runs", "2").tags
    assert tags["evaluation_run_id"] == evaluation_run.info.run_id
