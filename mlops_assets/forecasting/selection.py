"""Choose each series' champion model from the backtest evaluation.

Per-series rule: the lowest mean score over the backtest windows wins, the score being the selection metric
(settings.selection.metric: smape by default, or mase, rmse, wape; see metrics.py). A NaN score (the model
could not forecast some window) never wins. Ties, compared to 1e-9 so that float noise between identical
forecasts does not decide, go to the simpler model: the earlier name in ``zoo.MODEL_NAMES`` (names outside
it come after, alphabetically). The runner-up is the next model by the same order. The champions table
keeps each pick's SMAPE beside its score, so that every table reads on one scale whatever the metric.

A series where every model's SMAPE is NaN still gets a champion: SeasonalNaive if it was evaluated for the
series, else the simplest evaluated model, with smape NaN. (The champion model refits such a series with
``zoo.FALLBACK_MODEL`` if that model gives no finite forecast, and says so.)

``choose_champions`` is what the product calls: by default it applies the per-series rule only when the
backtest shows that per-series choice holds up out of sample (the guard below), else one model for all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.forecasting.metrics import check_metric, evaluate
from mlops_assets.forecasting.zoo import MODEL_NAMES

CHAMPION_COLUMNS = ["unique_id", "model", "smape", "runner_up", "runner_up_smape", "seasonal_naive_smape",
                    "metric", "score"]
ALL_NAN_CHAMPION = "SeasonalNaive"
_TIE_DECIMALS = 9


def complexity_rank(models: pd.Series) -> pd.Series:
    """Position in MODEL_NAMES; unknown names after all known ones, alphabetically."""
    known = {name: i for i, name in enumerate(MODEL_NAMES)}
    unknown = sorted(set(models) - set(known))
    known.update({name: len(MODEL_NAMES) + i for i, name in enumerate(unknown)})
    return models.map(known).astype("int64")


def _ranked(evaluation: pd.DataFrame, metric: str = "smape") -> pd.DataFrame:
    """The evaluation with ``score`` (the metric's column) and the sort keys, sorted best first per series."""
    missing = [c for c in ("unique_id", "model", "smape", check_metric(metric)) if c not in evaluation.columns]
    if missing:
        raise ValueError(f"evaluation lacks column(s) {missing}; it has {list(evaluation.columns)}")
    ev = evaluation[["unique_id", "model", "smape"]].astype({"unique_id": str, "model": str})
    score = evaluation[metric].astype(float).to_numpy()
    ev = ev.assign(
        smape=ev["smape"].astype(float),
        score=score,
        _nan=np.isnan(score),
        _key=np.round(score, _TIE_DECIMALS),
        _rank=complexity_rank(ev["model"]),
        _fallback=ev["model"] != ALL_NAN_CHAMPION,
    )
    return ev.sort_values(["unique_id", "_nan", "_key", "_rank"], kind="stable")


def select_champions(evaluation: pd.DataFrame, metric: str = "smape") -> pd.DataFrame:
    """One row per series: unique_id, model, smape, runner_up, runner_up_smape, seasonal_naive_smape, metric,
    score (the champion's value of ``metric``)."""
    ev = _ranked(evaluation, metric)
    ev["_pos"] = ev.groupby("unique_id", sort=False).cumcount()
    first = ev[ev["_pos"] == 0].set_index("unique_id")
    second = ev[(ev["_pos"] == 1) & ~ev["_nan"]].set_index("unique_id")

    out = pd.DataFrame(index=first.index)
    out["model"] = first["model"]
    out["smape"] = first["smape"]
    out["score"] = first["score"]
    all_nan = first["_nan"]
    if all_nan.any():
        fallback = (
            ev[ev["unique_id"].isin(first.index[all_nan])]
            .sort_values(["unique_id", "_fallback", "_rank"], kind="stable")
            .groupby("unique_id", sort=False)
            .first()
        )
        out.loc[fallback.index, "model"] = fallback["model"]
        out.loc[fallback.index, "smape"] = fallback["smape"]
    out["runner_up"] = second["model"].reindex(out.index)
    out["runner_up_smape"] = second["smape"].reindex(out.index).astype(float)
    snaive = ev[ev["model"] == "SeasonalNaive"].set_index("unique_id")["smape"]
    out["seasonal_naive_smape"] = snaive.reindex(out.index).astype(float)
    out["runner_up"] = out["runner_up"].astype(object).where(out["runner_up"].notna(), None)
    out["metric"] = metric
    out = out.reset_index().sort_values("unique_id", kind="stable").reset_index(drop=True)
    return out[CHAMPION_COLUMNS]


def _model_means(evaluation: pd.DataFrame, metric: str = "smape") -> pd.DataFrame:
    """Per model: mean score (and SMAPE) over the series it has a score for, and how many those are."""
    ranked = _ranked(evaluation, metric)
    return ranked.groupby("model", sort=True).agg(
        mean=("score", "mean"), count=("score", "count"), smape=("smape", "mean")
    )


def selection_summary(evaluation: pd.DataFrame, champions: pd.DataFrame, metric: str = "smape") -> dict:
    """How the selection did: win shares, champion vs best single model vs SeasonalNaive (mean SMAPE and
    mean score on ``metric``).

    best_single_model is the model with the lowest mean score when used for every series, among the
    models with a score for the most series (a model that failed on some series cannot be used everywhere
    and would otherwise be averaged over the easy ones only). Ties go to the simpler model.
    """
    per_model = _model_means(evaluation, metric)
    best_model = global_model(evaluation, tolerance=0.0, metric=metric)
    best = per_model.loc[best_model] if best_model is not None else pd.Series({"mean": np.nan, "smape": np.nan})
    shares = champions["model"].value_counts(normalize=True)
    order = complexity_rank(shares.index.to_series()).sort_values(kind="stable").index
    champion_scores = _score_on(evaluation, champions.set_index(champions["unique_id"].astype(str))["model"], metric)
    return {
        "metric": metric,
        "win_share": {str(m): float(shares[m]) for m in order},
        "champion_smape": float(champions["smape"].mean()),
        "champion_score": float(champion_scores.mean()),
        "best_single_model": best_model,
        "best_single_smape": float(best["smape"]),
        "best_single_score": float(best["mean"]),
        "seasonal_naive_smape": float(per_model["smape"].get("SeasonalNaive", np.nan)),
        "seasonal_naive_score": float(per_model["mean"].get("SeasonalNaive", np.nan)),
        "n_series": int(champions["unique_id"].nunique()),
    }


# ------------------------------------------------------------------------------------- the selection guard
# Picking the lowest of a dozen noisy backtest scores per series over-fits: on jewelry and carparts the
# per-series champions lost to SeasonalNaive at 7 of 9 earlier holdout origins (benchmarks/RESULTS.md).
# The guard asks the backtest itself whether per-series choice generalises: choose on every window but
# the last, score that choice on the last window, and compare with one model for all series chosen the
# same way. Only when per-series choice does at least as well out of sample is it used.
SELECTION_MODES = ("auto", "per_series", "global")


def global_model(evaluation: pd.DataFrame, tolerance: float, metric: str = "smape") -> str | None:
    """The simplest model whose mean score over all series is within ``tolerance`` (relative) of the best.

    Only models with a score for the most series compete (see selection_summary); None if none has one.
    """
    per_model = _model_means(evaluation, metric)
    per_model = per_model[(per_model["count"] == per_model["count"].max()) & per_model["mean"].notna()]
    if per_model.empty:
        return None
    close = per_model[per_model["mean"] <= per_model["mean"].min() * (1 + tolerance) + 10.0**-_TIE_DECIMALS]
    return str(close.index[complexity_rank(close.index.to_series()).to_numpy().argmin()])


def assign_model(evaluation: pd.DataFrame, model: str, metric: str = "smape") -> pd.DataFrame:
    """Champions with ``model`` for every series it has a score for; other series keep their per-series pick.

    The runner-up is the series' best other model, so the table still says what per-series choice would do.
    """
    ev = _ranked(evaluation, metric)
    own = select_champions(evaluation, metric).set_index("unique_id")
    scored = ev[(ev["model"] == model) & ~ev["_nan"]].set_index("unique_id")
    others = ev[(ev["model"] != model) & ~ev["_nan"]].groupby("unique_id", sort=False).first()
    out = own.copy()
    use = out.index.isin(scored.index)
    out.loc[use, "model"] = model
    out.loc[use, "smape"] = scored["smape"].reindex(out.index[use]).to_numpy()
    out.loc[use, "score"] = scored["score"].reindex(out.index[use]).to_numpy()
    out.loc[use, "runner_up"] = others["model"].reindex(out.index[use]).to_numpy()
    out.loc[use, "runner_up_smape"] = others["smape"].reindex(out.index[use]).to_numpy()
    out["runner_up"] = out["runner_up"].astype(object).where(out["runner_up"].notna(), None)
    return out.reset_index()[CHAMPION_COLUMNS]


def _score_on(evaluation: pd.DataFrame, picks: pd.Series, metric: str = "smape") -> pd.Series:
    """Each series' score on ``metric``, in ``evaluation``, of the model ``picks`` names for it."""
    table = evaluation.astype({"unique_id": str}).set_index(["unique_id", "model"])[metric]
    keys = pd.MultiIndex.from_arrays([picks.index.astype(str), picks.to_numpy()])
    return pd.Series(table.reindex(keys).to_numpy(dtype=float), index=picks.index)


def guard_decision(
    earlier: pd.DataFrame, last: pd.DataFrame, tolerance: float, margin: float = 0.0, metric: str = "smape",
    guard_metric: str | None = None,
) -> dict:
    """Per-series vs one-model choice made on the earlier windows, both scored on the last window.

    ``earlier`` and ``last`` are evaluations (metrics.evaluate) of the backtest without its last window and
    of the last window alone. Series where either choice has no last-window score are left out. Per-series
    choice (on ``metric``) wins only when its mean score on ``guard_metric`` (default: ``metric``) is below
    the one model's by at least ``margin`` (relative); the one model is chosen on ``guard_metric`` too.
    """
    guard_metric = guard_metric or metric
    per_series = select_champions(earlier, metric).set_index("unique_id")["model"]
    one = global_model(earlier, tolerance, guard_metric)
    if one is None:
        return {"mode": "per_series", "reason": "no model was scored on every series", "global_model": None,
                "metric": metric, "guard_metric": guard_metric}
    ps = _score_on(last, per_series, guard_metric)
    gl = _score_on(last, pd.Series(one, index=per_series.index), guard_metric)
    both = ps.notna() & gl.notna()
    if not both.any():
        return {"mode": "per_series", "reason": "no series scored in the last window", "global_model": one,
                "metric": metric, "guard_metric": guard_metric}
    ps_score, gl_score = float(ps[both].mean()), float(gl[both].mean())
    mode = "per_series" if ps_score <= gl_score * (1 - margin) else "global"
    return {
        "mode": mode,
        "reason": f"last-window {guard_metric.upper()}: per-series choice {ps_score:.4g} vs {one} for all "
        f"{gl_score:.4g}",
        "metric": metric,
        "guard_metric": guard_metric,
        "global_model": one,
        "per_series_last_window_score": ps_score,
        "global_last_window_score": gl_score,
        "series_compared": int(both.sum()),
    }


def window_evaluations(
    backtest: pd.DataFrame, history: pd.DataFrame, season_length: int, guard_windows: int = 1
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """For each of the last ``guard_windows`` windows, counted back from each series' last: the evaluation of the
    backtest before that window, and of that window alone. Empty with a single window.

    Per series, so it can be computed bucket by bucket and concatenated pair by pair.
    """
    bt = backtest.astype({"unique_id": str})
    # 1 = each series' last window, 2 = the one before, ...
    rank = bt.groupby("unique_id", sort=False)["cutoff"].rank(method="dense", ascending=False)
    pairs = []
    for r in range(1, max(guard_windows, 1) + 1):
        if not (rank > r).any() or not (rank == r).any():
            break
        pairs.append((evaluate(bt[rank > r], history, season_length), evaluate(bt[rank == r], history, season_length)))
    return pairs


GUARD_SCORES = ("per_series_last_window_score", "global_last_window_score")


def guard_over_windows(
    pairs: list[tuple[pd.DataFrame, pd.DataFrame]], tolerance: float, margin: float, metric: str = "smape",
    guard_metric: str | None = None,
) -> dict:
    """guard_decision on each (earlier, window) pair of window_evaluations, the scores averaged over them."""
    guard_metric = guard_metric or metric
    checks = [guard_decision(earlier, window, tolerance, margin, metric, guard_metric) for earlier, window in pairs]
    if not checks:
        return {"mode": "per_series", "reason": "one backtest window: no later window to check the choice",
                "metric": metric, "guard_metric": guard_metric}
    if len(checks) == 1 or not all(k in c for c in checks for k in GUARD_SCORES):
        return checks[0]
    ps, gl = (float(np.mean([c[k] for c in checks])) for k in GUARD_SCORES)
    return {
        "mode": "per_series" if ps <= gl * (1 - margin) else "global",
        "reason": f"{guard_metric.upper()} over the last {len(checks)} windows, each chosen on the ones before: "
        f"per-series choice {ps:.4g} vs the one model for all {gl:.4g} (margin {margin:.0%})",
        "metric": metric,
        "guard_metric": guard_metric,
        "global_model": checks[0]["global_model"],
        "per_series_last_window_score": ps,
        "global_last_window_score": gl,
        "series_compared": int(checks[0]["series_compared"]),
    }


def choose_champions(
    evaluation: pd.DataFrame,
    backtest: pd.DataFrame,
    history: pd.DataFrame,
    season_length: int,
    mode: str = "auto",
    tolerance: float = 0.02,
    margin: float = 0.0,
    guard_windows: int = 1,
    metric: str = "smape",
    guard_metric: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The champions under ``mode`` and a record of how they were chosen, every comparison on ``metric``.

    per_series: select_champions. global: the simplest model within ``tolerance`` of the best mean score, for
    every series. auto: per_series unless the guard (guard_decision on each series' last backtest window)
    finds one model for all did better out of sample; with a single window there is nothing to check on.
    ``guard_windows``: how many of the last windows the guard checks, each with choices made on the windows
    before it, the scores averaged over the checks; ``margin`` and ``guard_metric``: see guard_decision.
    """
    if mode not in SELECTION_MODES:
        raise ValueError(f"selection mode {mode!r} is not one of {SELECTION_MODES}")
    windows = window_evaluations(backtest, history, season_length, guard_windows) if mode == "auto" else []
    return choose_from_evaluations(evaluation, windows, mode, tolerance, margin, metric, guard_metric)


def choose_from_evaluations(
    evaluation: pd.DataFrame,
    windows: list[tuple[pd.DataFrame, pd.DataFrame]],
    mode: str = "auto",
    tolerance: float = 0.02,
    margin: float = 0.0,
    metric: str = "smape",
    guard_metric: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """choose_champions from the evaluations alone (``windows``: window_evaluations), without the backtest."""
    if mode not in SELECTION_MODES:
        raise ValueError(f"selection mode {mode!r} is not one of {SELECTION_MODES}")
    check_metric(metric)
    guard_metric = check_metric(guard_metric or metric)
    if mode == "auto":
        decision = guard_over_windows(windows, tolerance, margin, metric, guard_metric)
    else:
        decision = {"mode": mode, "reason": f"settings.selection.mode is {mode}", "metric": metric,
                    "guard_metric": guard_metric}
    decision["requested_mode"] = mode
    if decision["mode"] == "global":
        one = global_model(evaluation, tolerance, guard_metric)
        if one is not None:
            decision["champion_for_all"] = one
            return assign_model(evaluation, one, metric), decision
        decision.update(mode="per_series", reason="no model was scored on every series")
    return select_champions(evaluation, metric), decision
