import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.selection import CHAMPION_COLUMNS, select_champions, selection_summary


def _ev(rows):
    return pd.DataFrame(rows, columns=["unique_id", "model", "smape"])


def test_best_model_wins_with_runner_up_and_seasonal_naive():
    ev = _ev([("a", "SeasonalNaive", 30.0), ("a", "AutoETS", 20.0), ("a", "Naive", 25.0),
              ("b", "SeasonalNaive", 10.0), ("b", "AutoETS", 12.0), ("b", "Naive", np.nan)])
    ch = select_champions(ev)
    assert list(ch.columns) == CHAMPION_COLUMNS
    assert ch.values.tolist()[0] == ["a", "AutoETS", 20.0, "Naive", 25.0, 30.0, "smape", 20.0]
    assert ch.values.tolist()[1] == ["b", "SeasonalNaive", 10.0, "AutoETS", 12.0, 10.0, "smape", 10.0]


def test_ties_go_to_the_simpler_model():
    ev = _ev([("a", "AutoETS", 20.0), ("a", "SeasonalNaive", 20.0 + 1e-12), ("a", "MSTL", 20.0),
              ("b", "TSB", 5.0), ("b", "CrostonOptimized", 5.0)])
    ch = select_champions(ev).set_index("unique_id")
    assert ch.loc["a", "model"] == "SeasonalNaive" and ch.loc["a", "runner_up"] == "AutoETS"
    assert ch.loc["b", "model"] == "CrostonOptimized" and ch.loc["b", "runner_up"] == "TSB"


def test_nan_never_wins_and_all_nan_falls_back():
    ev = _ev([("a", "Naive", np.nan), ("a", "AutoETS", 50.0),
              ("b", "Naive", np.nan), ("b", "SeasonalNaive", np.nan), ("b", "AutoETS", np.nan),
              ("c", "AutoTheta", np.nan), ("c", "Naive", np.nan)])
    ch = select_champions(ev).set_index("unique_id")
    assert ch.loc["a", "model"] == "AutoETS" and ch.loc["a", "runner_up"] is None
    assert np.isnan(ch.loc["a", "runner_up_smape"]) and np.isnan(ch.loc["a", "seasonal_naive_smape"])
    assert ch.loc["b", "model"] == "SeasonalNaive" and np.isnan(ch.loc["b", "smape"])
    assert ch.loc["c", "model"] == "Naive"


def test_summary():
    ev = _ev([("a", "SeasonalNaive", 30.0), ("a", "AutoETS", 20.0),
              ("b", "SeasonalNaive", 10.0), ("b", "AutoETS", 14.0),
              ("c", "SeasonalNaive", 40.0), ("c", "AutoETS", 30.0),
              ("a", "MSTL", 1.0)])  # MSTL covers one series only: not a single model for all
    ch = select_champions(ev)
    s = selection_summary(ev, ch)
    assert s["win_share"] == {"SeasonalNaive": pytest.approx(1 / 3), "MSTL": pytest.approx(1 / 3),
                              "AutoETS": pytest.approx(1 / 3)}
    assert list(s["win_share"]) == ["SeasonalNaive", "AutoETS", "MSTL"]
    assert s["champion_smape"] == pytest.approx((1 + 10 + 30) / 3)
    assert s["best_single_model"] == "AutoETS" and s["best_single_smape"] == pytest.approx(64 / 3)
    assert s["seasonal_naive_smape"] == pytest.approx(80 / 3)
    assert s["n_series"] == 3


def test_the_selection_metric_decides_and_smape_stays_beside_it():
    # On SMAPE, Naive wins a (10 < 12); on MASE, AutoETS (0.8 < 0.9); b has no MASE (constant history).
    ev = pd.DataFrame(
        [("a", "Naive", 10.0, 0.9), ("a", "AutoETS", 12.0, 0.8), ("a", "SeasonalNaive", 15.0, 1.0),
         ("b", "Naive", 5.0, np.nan), ("b", "SeasonalNaive", 6.0, np.nan)],
        columns=["unique_id", "model", "smape", "mase"],
    )
    assert select_champions(ev).set_index("unique_id").loc["a", "model"] == "Naive"
    ch = select_champions(ev, metric="mase").set_index("unique_id")
    assert ch.loc["a"].tolist() == ["AutoETS", 12.0, "Naive", 10.0, 15.0, "mase", 0.8]
    # No MASE for any model: the all-NaN rule, with the pick's SMAPE still reported.
    assert ch.loc["b", "model"] == "SeasonalNaive" and ch.loc["b", "smape"] == 6.0 and np.isnan(ch.loc["b", "score"])
    s = selection_summary(ev, select_champions(ev, metric="mase"), metric="mase")
    assert s["metric"] == "mase" and s["champion_score"] == pytest.approx(0.8)
    assert s["best_single_model"] == "AutoETS" and s["best_single_score"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="selection metric 'mape'"):
        select_champions(ev, metric="mape")


# --------------------------------------------------------------------------------------- selection guard
from mlops_assets.forecasting.selection import assign_model, choose_champions, global_model, guard_decision  # noqa: E402


def test_global_model_is_the_simplest_within_tolerance_among_models_covering_every_series():
    ev = _ev([("a", "Naive", 31.0), ("a", "SeasonalNaive", 30.0), ("a", "MSTL", 1.0),
              ("b", "Naive", 31.0), ("b", "SeasonalNaive", 30.0)])
    assert global_model(ev, tolerance=0.0) == "SeasonalNaive"  # MSTL scored one series only
    assert global_model(ev, tolerance=0.05) == "Naive"  # 31 is within 5% of 30
    assert global_model(_ev([("a", "Naive", np.nan)]), tolerance=0.02) is None


def test_assign_model_gives_every_scored_series_the_model_and_keeps_the_best_other_as_runner_up():
    ev = _ev([("a", "Naive", 40.0), ("a", "SeasonalNaive", 10.0), ("a", "MSTL", 20.0),
              ("b", "Naive", 5.0), ("b", "SeasonalNaive", 8.0),
              ("c", "Naive", np.nan), ("c", "SeasonalNaive", 3.0)])
    ch = assign_model(ev, "Naive").set_index("unique_id")
    assert list(ch.reset_index().columns) == CHAMPION_COLUMNS
    assert ch.loc["a", ["model", "smape", "runner_up", "runner_up_smape"]].tolist() == ["Naive", 40.0,
                                                                                         "SeasonalNaive", 10.0]
    assert ch.loc["b", ["model", "runner_up"]].tolist() == ["Naive", "SeasonalNaive"]
    # Naive could not forecast c: c keeps its own champion rather than a model without a score.
    assert ch.loc["c", "model"] == "SeasonalNaive"


def _scored(rows, metric: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unique_id", "model", "smape", metric])


def test_the_guard_decides_on_the_selection_metric():
    """The same earlier windows; in the last window per-series picks lose on SMAPE but win on RMSE."""
    earlier = _scored([("a", "Naive", 10.0, 1.0), ("a", "SeasonalNaive", 20.0, 2.0),
                       ("b", "Naive", 30.0, 3.0), ("b", "SeasonalNaive", 20.0, 2.0),
                       ("c", "Naive", 12.0, 1.2), ("c", "SeasonalNaive", 30.0, 3.0)], "rmse")
    # Per series: a Naive, b SeasonalNaive, c Naive; one model for all: Naive (mean 17.3 vs 23.3).
    last = _scored([("a", "Naive", 30.0, 1.0), ("a", "SeasonalNaive", 10.0, 9.0),
                    ("b", "Naive", 10.0, 9.0), ("b", "SeasonalNaive", 30.0, 1.0),
                    ("c", "Naive", 10.0, 1.0), ("c", "SeasonalNaive", 10.0, 1.0)], "rmse")
    on_smape = guard_decision(earlier, last, tolerance=0.0)
    assert on_smape["mode"] == "global" and on_smape["metric"] == "smape"  # 23.3 vs 16.7
    on_rmse = guard_decision(earlier, last, tolerance=0.0, metric="rmse")
    assert on_rmse["mode"] == "per_series" and on_rmse["metric"] == "rmse"  # 1.0 vs 3.7
    assert on_rmse["per_series_last_window_score"] == pytest.approx(1.0) and "RMSE" in on_rmse["reason"]


def test_guard_prefers_one_model_when_per_series_picks_do_not_hold_up_in_the_last_window():
    # On the earlier windows each series has a different lucky winner; in the last window they lose.
    earlier = _ev([("a", "Naive", 10.0), ("a", "SeasonalNaive", 20.0), ("a", "WindowAverage", 21.0),
                   ("b", "Naive", 30.0), ("b", "SeasonalNaive", 20.0), ("b", "WindowAverage", 21.0),
                   ("c", "Naive", 30.0), ("c", "SeasonalNaive", 40.0), ("c", "WindowAverage", 25.0)])
    last = _ev([("a", "Naive", 50.0), ("a", "SeasonalNaive", 20.0), ("a", "WindowAverage", 20.0),
                ("b", "Naive", 20.0), ("b", "SeasonalNaive", 50.0), ("b", "WindowAverage", 20.0),
                ("c", "Naive", 20.0), ("c", "SeasonalNaive", 20.0), ("c", "WindowAverage", 50.0)])
    d = guard_decision(earlier, last, tolerance=0.0)
    # Means on the earlier windows: Naive 23.3, SeasonalNaive 26.7, WindowAverage 22.3 -> WindowAverage.
    assert d["global_model"] == "WindowAverage"
    assert d["per_series_last_window_score"] == pytest.approx(50.0)  # picks a: Naive, b: SN, c: WA
    assert d["global_last_window_score"] == pytest.approx(30.0)
    assert d["mode"] == "global" and d["series_compared"] == 3
    # Had the per-series picks held up, per-series choice stays.
    d = guard_decision(earlier, _ev([(u, m, 10.0 if (u, m) in {("a", "Naive"), ("b", "SeasonalNaive"),
                                                               ("c", "WindowAverage")} else 40.0)
                                     for u in "abc" for m in ("Naive", "SeasonalNaive", "WindowAverage")]), 0.0)
    assert d["mode"] == "per_series"


def _window_backtest(errors: dict[tuple[str, str], list[float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A 3-window backtest (one period per window) where y is 100 and y_hat = 100 + the given error."""
    days = pd.date_range("2024-01-01", periods=6, freq="D")
    rows = [(uid, days[2 + w], days[3 + w], 100.0, model, 100.0 + err)
            for (uid, model), errs in errors.items() for w, err in enumerate(errs)]
    backtest = pd.DataFrame(rows, columns=["unique_id", "cutoff", "ds", "y", "model", "y_hat"])
    history = pd.DataFrame([(uid, d, 100.0 + i % 2) for uid in {u for u, _ in errors} for i, d in enumerate(days)],
                           columns=["unique_id", "ds", "y"])
    return backtest, history


def test_choose_champions_auto_falls_back_to_one_model_per_the_last_window_and_per_series_otherwise():
    from mlops_assets.forecasting.metrics import evaluate

    lucky = {("a", "Naive"): [0, 0, 60], ("a", "SeasonalNaive"): [10, 10, 10],
             ("b", "Naive"): [10, 10, 10], ("b", "SeasonalNaive"): [0, 0, 60]}
    backtest, history = _window_backtest(lucky)
    evaluation = evaluate(backtest, history, season_length=1)
    champions, decision = choose_champions(evaluation, backtest, history, 1)
    assert decision["mode"] == "global" and decision["requested_mode"] == "auto"
    # Over all windows the two models tie on the mean over series, so the simpler one goes to every series.
    assert decision["champion_for_all"] == "Naive"
    assert champions["model"].tolist() == ["Naive", "Naive"]

    steady = {("a", "Naive"): [0, 0, 0], ("a", "SeasonalNaive"): [10, 10, 10],
              ("b", "Naive"): [10, 10, 10], ("b", "SeasonalNaive"): [0, 0, 0]}
    backtest, history = _window_backtest(steady)
    evaluation = evaluate(backtest, history, season_length=1)
    champions, decision = choose_champions(evaluation, backtest, history, 1)
    assert decision["mode"] == "per_series"
    assert champions["model"].tolist() == ["Naive", "SeasonalNaive"]

    forced, decision = choose_champions(evaluation, backtest, history, 1, mode="global")
    assert decision["mode"] == "global" and forced["model"].nunique() == 1
    one_window = backtest[backtest["cutoff"] == backtest["cutoff"].max()]
    _, decision = choose_champions(evaluate(one_window, history, 1), one_window, history, 1)
    assert decision["mode"] == "per_series" and "one backtest window" in decision["reason"]
    with pytest.raises(ValueError, match="selection mode 'best'"):
        choose_champions(evaluation, backtest, history, 1, mode="best")


def test_guard_margin_and_windows_keep_a_small_last_window_edge_from_deciding():
    from mlops_assets.forecasting.metrics import evaluate

    # Chosen on the windows before, per-series choice wins window 3 narrowly (a: Naive, b: SeasonalNaive)
    # but loses window 2 clearly (chosen on window 1 alone: a: SeasonalNaive, b: Naive).
    errors = {("a", "Naive"): [10, 0, 9], ("a", "SeasonalNaive"): [0, 20, 10],
              ("b", "Naive"): [0, 20, 10], ("b", "SeasonalNaive"): [10, 0, 9]}
    backtest, history = _window_backtest(errors)
    evaluation = evaluate(backtest, history, season_length=1)
    _, one = choose_champions(evaluation, backtest, history, 1)
    assert one["mode"] == "per_series"
    _, margin = choose_champions(evaluation, backtest, history, 1, margin=0.2)
    assert margin["mode"] == "global"
    _, two = choose_champions(evaluation, backtest, history, 1, guard_windows=2)
    assert two["mode"] == "global" and "last 2 windows" in two["reason"]
    # More windows than the backtest can check: as many as there are.
    _, many = choose_champions(evaluation, backtest, history, 1, guard_windows=9)
    assert many["per_series_last_window_score"] == two["per_series_last_window_score"]


# Series a and b small, c large: sMAPE and MAE disagree on what wins.
POOLED_EARLIER = _scored([("a", "Naive", 10.0, 1.0), ("a", "SeasonalNaive", 20.0, 2.0),
                         ("b", "Naive", 10.0, 1.0), ("b", "SeasonalNaive", 20.0, 2.0),
                         ("c", "Naive", 30.0, 300.0), ("c", "SeasonalNaive", 20.0, 100.0)], "mae")
POOLED_LAST = _scored([("a", "Naive", 10.0, 1.0), ("a", "SeasonalNaive", 30.0, 3.0),
                      ("b", "Naive", 10.0, 1.0), ("b", "SeasonalNaive", 30.0, 3.0),
                      ("c", "Naive", 10.0, 50.0), ("c", "SeasonalNaive", 40.0, 200.0)], "mae")


def test_the_guard_metric_chooses_the_one_model_and_judges_while_the_metric_picks_per_series():
    """sMAPE picks per series; MAE (the pooled view: a series weighs what it sells) chooses the one model
    for all and judges the last window, where the big series c decides."""
    earlier, last = POOLED_EARLIER, POOLED_LAST
    on_smape = guard_decision(earlier, last, tolerance=0.0)
    assert (on_smape["mode"], on_smape["global_model"]) == ("global", "Naive")  # 20 vs 10
    pooled = guard_decision(earlier, last, tolerance=0.0, metric="smape", guard_metric="mae")
    assert (pooled["mode"], pooled["global_model"]) == ("per_series", "SeasonalNaive")
    assert pooled["per_series_last_window_score"] == pytest.approx(202 / 3)  # picks a, b Naive; c SeasonalNaive
    assert pooled["global_last_window_score"] == pytest.approx(206 / 3)
    assert (pooled["metric"], pooled["guard_metric"]) == ("smape", "mae") and "MAE" in pooled["reason"]


def test_daily_data_guards_on_the_pooled_error_over_two_windows_and_other_frequencies_keep_their_rule():
    from mlops_assets.forecasting.evaluation import choose
    from mlops_assets.forecasting.zoo import guard_metric, guard_windows
    from mlops_assets.settings import Settings

    daily, weekly = Settings(frequency="D"), Settings()
    assert (guard_metric(daily), guard_windows(daily)) == ("mae", 2)
    assert (guard_metric(weekly), guard_windows(weekly)) == ("smape", 1)
    assert guard_metric(Settings(frequency="MS", selection={"metric": "mase"})) == "mase"
    told = Settings(frequency="D", selection={"guard_metric": "smape", "guard_windows": 1})
    assert (guard_metric(told), guard_windows(told)) == ("smape", 1)
    # The product's path passes the rule on: the same evaluations, decided as the frequency's rule says.
    earlier, last = POOLED_EARLIER, POOLED_LAST
    _, on_daily = choose(daily, earlier, [(earlier, last)])
    _, on_weekly = choose(weekly, earlier, [(earlier, last)])
    assert (on_daily["mode"], on_daily["guard_metric"]) == ("per_series", "mae")
    assert (on_weekly["mode"], on_weekly["guard_metric"], on_weekly["champion_for_all"]) == ("global", "smape", "Naive")
