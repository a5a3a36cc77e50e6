"""Choose each series' champion model from the backtest evaluation.

Rule: the lowest mean SMAPE over the backtest windows wins. A NaN SMAPE (the model could not forecast
some window) never wins. Ties, compared to 1e-9 SMAPE points so that float noise between identical
forecasts does not decide, go to the simpler model: the earlier name in ``zoo.MODEL_NAMES`` (names outside
it come after, alphabetically). The runner-up is the next model by the same order.

A series where every model's SMAPE is NaN still gets a champion: SeasonalNaive if it was evaluated for the
series, else the simplest evaluated model, with smape NaN. (The champion model refits such a series with
``zoo.FALLBACK_MODEL`` if that model gives no finite forecast, and says so.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.zoo import MODEL_NAMES

CHAMPION_COLUMNS = ["unique_id", "model", "smape", "runner_up", "runner_up_smape", "seasonal_naive_smape"]
ALL_NAN_CHAMPION = "SeasonalNaive"
_TIE_DECIMALS = 9


def complexity_rank(models: pd.Series) -> pd.Series:
    """Position in MODEL_NAMES; unknown names after all known ones, alphabetically."""
    known = {name: i for i, name in enumerate(MODEL_NAMES)}
    unknown = sorted(set(models) - set(known))
    known.update({name: len(MODEL_NAMES) + i for i, name in enumerate(unknown)})
    return models.map(known).astype("int64")


def _ranked(evaluation: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("unique_id", "model", "smape") if c not in evaluation.columns]
    if missing:
        raise ValueError(f"evaluation lacks column(s) {missing}; it has {list(evaluation.columns)}")
    ev = evaluation[["unique_id", "model", "smape"]].astype({"unique_id": str, "model": str})
    ev = ev.assign(
        smape=ev["smape"].astype(float),
        _nan=ev["smape"].isna(),
        _key=ev["smape"].astype(float).round(_TIE_DECIMALS),
        _rank=complexity_rank(ev["model"]),
        _fallback=ev["model"] != ALL_NAN_CHAMPION,
    )
    return ev.sort_values(["unique_id", "_nan", "_key", "_rank"], kind="stable")


def select_champions(evaluation: pd.DataFrame) -> pd.DataFrame:
    """One row per series: unique_id, model, smape, runner_up, runner_up_smape, seasonal_naive_smape."""
    ev = _ranked(evaluation)
    ev["_pos"] = ev.groupby("unique_id", sort=False).cumcount()
    first = ev[ev["_pos"] == 0].set_index("unique_id")
    second = ev[(ev["_pos"] == 1) & ~ev["_nan"]].set_index("unique_id")

    out = pd.DataFrame(index=first.index)
    out["model"] = first["model"]
    out["smape"] = first["smape"]
    all_nan = first["_nan"]
    if all_nan.any():
        fallback = (
            ev[ev["unique_id"].isin(first.index[all_nan])]
            .sort_values(["unique_id", "_fallback", "_rank"], kind="stable")
            .groupby("unique_id", sort=False)
            .first()
        )
        out.loc[fallback.index, "model"] = fallback["model"]
    out["runner_up"] = second["model"].reindex(out.index)
    out["runner_up_smape"] = second["smape"].reindex(out.index).astype(float)
    snaive = ev[ev["model"] == "SeasonalNaive"].set_index("unique_id")["smape"]
    out["seasonal_naive_smape"] = snaive.reindex(out.index).astype(float)
    out["runner_up"] = out["runner_up"].astype(object).where(out["runner_up"].notna(), None)
    return out.reset_index().sort_values("unique_id", kind="stable").reset_index(drop=True)[CHAMPION_COLUMNS]


def selection_summary(evaluation: pd.DataFrame, champions: pd.DataFrame) -> dict:
    """How the selection did: win shares, champion vs best single model vs SeasonalNaive (mean SMAPE).

    best_single_model is the model with the lowest mean SMAPE when used for every series, among the
    models with a SMAPE for the most series (a model that failed on some series cannot be used everywhere
    and would otherwise be averaged over the easy ones only). Ties go to the simpler model.
    """
    ev = _ranked(evaluation)
    per_model = ev.groupby("model", sort=True).agg(mean=("smape", "mean"), count=("smape", "count"))
    per_model["_rank"] = complexity_rank(per_model.index.to_series())
    covering = per_model[per_model["count"] == per_model["count"].max()]
    covering = covering[covering["mean"].notna()]
    if len(covering):
        best = covering.assign(_key=covering["mean"].round(_TIE_DECIMALS)).sort_values(["_key", "_rank"])
        best_model, best_smape = str(best.index[0]), float(best["mean"].iloc[0])
    else:
        best_model, best_smape = None, float("nan")
    shares = champions["model"].value_counts(normalize=True)
    order = complexity_rank(shares.index.to_series()).sort_values(kind="stable").index
    snaive = per_model["mean"].get("SeasonalNaive", np.nan)
    return {
        "win_share": {str(m): float(shares[m]) for m in order},
        "champion_smape": float(champions["smape"].mean()),
        "best_single_model": best_model,
        "best_single_smape": best_smape,
        "seasonal_naive_smape": float(snaive),
        "n_series": int(champions["unique_id"].nunique()),
    }
