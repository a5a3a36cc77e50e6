import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.intervals import (
    Calibration,
    calibrate,
    conformal_quantile,
    last_window_coverage,
    non_decreasing_bounds,
    step_growth,
)

H = 6


def _backtest(n_series: int = 300, windows: int = 4, walk: bool = False, seed: int = 0) -> tuple:
    """A backtest whose errors are known: per series its own noise scale (1 to 50), optionally growing
    like a random walk's with the step; the forecast is the series' level."""
    rng = np.random.default_rng(seed)
    cutoffs = pd.date_range("2024-01-01", periods=windows, freq=f"{H}W-MON")
    rows, history = [], []
    for i in range(n_series):
        level, sd = 100.0 + i, 1.0 + 49.0 * rng.random()
        for cutoff in cutoffs:
            ds = pd.date_range(cutoff + pd.Timedelta(weeks=1), periods=H, freq="W-MON")
            noise = rng.normal(0, sd, H)
            error = np.cumsum(noise) if walk else noise
            rows.append(pd.DataFrame({"unique_id": f"s{i:03d}", "cutoff": cutoff, "ds": ds, "y": level + error,
                                      "model": "Naive", "y_hat": level}))
        history.append(pd.DataFrame({"unique_id": f"s{i:03d}", "ds": cutoffs, "y": level}))
    champions = pd.DataFrame({"unique_id": [f"s{i:03d}" for i in range(n_series)], "model": "Naive"})
    return pd.concat(rows, ignore_index=True), champions, pd.concat(history, ignore_index=True)


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1, 11, dtype=float)  # n = 10
    assert conformal_quantile(scores, 80) == 9.0  # ceil(11 * 0.8) = 9th
    assert conformal_quantile(scores, 95) == 10.0  # ceil(11 * 0.95) = 11 > n: the largest
    assert np.isnan(conformal_quantile(np.array([]), 80))


@pytest.mark.parametrize("walk", [False, True])
def test_calibrated_intervals_hold_their_level_on_an_unseen_window(walk):
    backtest, champions, history = _backtest(walk=walk)
    coverage = last_window_coverage(backtest, champions, history, [80, 95], H)
    assert abs(coverage[80] - 80) <= 3 and abs(coverage[95] - 95) <= 3, coverage


def test_widths_follow_the_errors_growth_and_never_shrink():
    flat = calibrate(*_backtest(), levels=[80], horizon=H).quantiles[80].to_numpy()
    walk = calibrate(*_backtest(walk=True), levels=[80], horizon=H).quantiles[80].to_numpy()
    assert (np.diff(flat) >= 0).all() and (np.diff(walk) >= 0).all()
    # A random walk's error grows like sqrt(step): six steps out it is about sqrt(6) = 2.4 times wider.
    assert 2.0 < walk[-1] / walk[0] < 2.9
    assert flat[-1] / flat[0] < 1.3


def test_step_growth_is_clipped_to_non_negative_exponents():
    steps = np.repeat(np.arange(1, 5), 10)
    shrinking = 1.0 / steps
    np.testing.assert_allclose(step_growth(shrinking, steps, 4), np.ones(4))


def test_a_series_with_larger_errors_gets_wider_intervals():
    backtest, champions, history = _backtest(n_series=50)
    calibration = calibrate(backtest, champions, history, [80], H)
    errors = backtest.assign(a=(backtest["y"] - backtest["y_hat"]).abs()).groupby("unique_id")["a"].mean()
    widths = calibration.half_widths(errors.index.tolist(), H, 80)[:, 0]
    assert np.corrcoef(widths, errors.to_numpy())[0, 1] > 0.99


def test_series_without_backtest_errors_borrow_the_others_relative_scale():
    backtest, champions, history = _backtest(n_series=20)
    champions = pd.concat([champions, pd.DataFrame({"unique_id": ["new"], "model": ["Naive"]})])
    history = pd.concat([history, pd.DataFrame({"unique_id": "new", "ds": history["ds"].iloc[:2], "y": 200.0})])
    calibration = calibrate(backtest, champions, history, [80], H)
    scale = calibration.scale
    ratio = (scale.drop("new") / history.groupby("unique_id")["y"].mean().drop("new")).median()
    assert scale["new"] == pytest.approx(200.0 * ratio)


def test_non_decreasing_bounds_keep_the_widest_so_far():
    mean = np.array([[10.0, 10.0, 10.0]])
    lo, hi = non_decreasing_bounds(mean, np.array([[5.0, 8.0, 4.0]]), np.array([[12.0, 15.0, 11.0]]))
    np.testing.assert_allclose(lo, [[5.0, 5.0, 4.0]])
    np.testing.assert_allclose(hi, [[12.0, 15.0, 15.0]])


def test_a_calibration_cut_by_series_and_merged_is_the_same_and_needs_only_champion_rows():
    backtest, champions, history = _backtest(n_series=12)
    other_model = backtest.assign(model="SeasonalNaive", y_hat=backtest["y_hat"] * 3)
    levels = history.assign(a=history["y"].abs()).groupby("unique_id")["a"].mean()
    whole = calibrate(pd.concat([backtest, other_model]), champions, history, [80, 95], H)
    from_rows = calibrate(backtest, champions, levels, [80, 95], H)
    pd.testing.assert_frame_equal(from_rows.quantiles, whole.quantiles)
    pd.testing.assert_series_equal(from_rows.scale, whole.scale)
    ids = whole.scale.index.tolist()
    merged = Calibration.merged([whole.restricted(ids[5:]), whole.restricted(ids[:5])])
    pd.testing.assert_series_equal(merged.scale, whole.scale, check_index_type=False)
    assert merged.n_scores == whole.n_scores
    with pytest.raises(ValueError, match="different calibrations"):
        Calibration.merged([whole, calibrate(*_backtest(n_series=12, seed=1), [80, 95], H)])


def test_quantiles_by_step_use_each_steps_scores_never_shrink_and_fill_steps_without_scores():
    from mlops_assets.forecasting.intervals import quantiles_by_step

    # Step 1: ten scores 0.1..1.0; step 2: none; step 3: five scores 0.1..0.5 (below step 1's).
    ratios = np.concatenate([np.arange(1, 11) / 10, np.arange(1, 6) / 10])
    steps = np.array([1] * 10 + [3] * 5)
    q = quantiles_by_step(ratios, steps, 3, 80)
    # ceil(11 * 0.8) = 9th of 10 scores; step 2 takes step 1's; step 3 (0.5 of its own) never shrinks.
    np.testing.assert_allclose(q, [0.9, 0.9, 0.9])
    # Few scores: the finite-sample rank takes the largest, so a 95% interval of 10 scores is their maximum.
    assert quantiles_by_step(ratios, steps, 1, 95)[0] == 1.0


def test_the_last_window_check_can_choose_the_champions_without_that_window():
    from mlops_assets.forecasting.intervals import chosen_without_last, last_window

    cutoffs = pd.to_datetime(["2024-01-07", "2024-02-04", "2024-03-03"])
    rows = []
    for w, cutoff in enumerate(cutoffs):
        for step in range(1, 3):
            ds = cutoff + pd.Timedelta(weeks=step)
            # Naive is exact before the last window and far off in it; SeasonalNaive the other way round.
            last = w == len(cutoffs) - 1
            rows += [("s", cutoff, ds, 10.0, "Naive", 20.0 if last else 10.0),
                     ("s", cutoff, ds, 10.0, "SeasonalNaive", 10.0 if last else 12.0)]
    backtest = pd.DataFrame(rows, columns=["unique_id", "cutoff", "ds", "y", "model", "y_hat"])
    # Chosen on every window, SeasonalNaive; without the last one, Naive (whose last window is then scored).
    assert chosen_without_last(backtest).to_dict("records") == [{"unique_id": "s", "model": "Naive"}]
    chosen_on_all = pd.DataFrame({"unique_id": ["s"], "model": ["SeasonalNaive"]})
    assert last_window(backtest, chosen_on_all).rows["y_hat"].tolist() == [10.0, 10.0]
    assert last_window(backtest, chosen_on_all, reselect=True).rows["y_hat"].tolist() == [20.0, 20.0]


def test_isotonic_quantiles_rise_with_the_steps_without_keeping_every_upward_jump():
    from mlops_assets.forecasting.intervals import calibration_method, quantiles_by_step, quantiles_isotonic

    rng = np.random.default_rng(3)
    steps = np.repeat(np.arange(1, 29), 60)
    flat = np.abs(rng.normal(size=len(steps)))  # an error that does not grow with the step
    iso, run_max = (f(flat, steps, 28, 80) for f in (quantiles_isotonic, quantiles_by_step))
    assert (np.diff(iso) >= 0).all() and (iso <= run_max + 1e-12).all()
    # The running maximum ends at the largest of 28 noisy quantiles; the isotonic fit near their middle.
    raw = np.array([np.quantile(flat[steps == k], 0.8) for k in range(1, 29)])
    assert run_max[-1] == pytest.approx(raw.max(), rel=0.05) and iso[-1] < run_max[-1]
    assert abs(iso.mean() - np.median(raw)) < abs(run_max.mean() - np.median(raw))
    # Quantiles that already rise are kept as they are.
    growing = flat * np.sqrt(steps)
    np.testing.assert_allclose(quantiles_isotonic(growing, steps, 28, 80)[[0, -1]],
                               quantiles_by_step(growing, steps, 28, 80)[[0, -1]], rtol=0.2)
    assert (calibration_method("D"), calibration_method("W-FRI"), calibration_method("MS")) == (
        "isotonic", "by_step", "by_step")
