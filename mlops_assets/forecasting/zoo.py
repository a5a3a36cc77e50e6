"""The models a series can be forecast with, by name, and the default choice per frequency.

Names are the models' aliases everywhere (backtest rows, evaluation, champions, forecasts). Models without
native prediction intervals (the intermittent-demand family and WindowAverage) get conformal intervals, so
every model a champion can be gives intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from statsforecast.models import (
    ADIDA,
    IMAPA,
    MSTL,
    TSB,
    AutoARIMA,
    AutoCES,
    AutoETS,
    AutoTheta,
    CrostonOptimized,
    HistoricAverage,
    Naive,
    SeasonalNaive,
    WindowAverage,
)
from statsforecast.utils import ConformalIntervals

from mlops_assets.settings import COMBINATION, GLOBAL_MODEL, MODEL_NAMES, Settings, validate_model_names

# A regressors column named so holds one value per series (settings.regressors.statics): a static feature of
# the global model, not a per-period one.
STATIC_PREFIX = "static:"

STATSFORECAST_NAMES: tuple[str, ...] = tuple(n for n in MODEL_NAMES if n not in (GLOBAL_MODEL, COMBINATION))

# Used by StatsForecast when a model raises on a series, and by the champion model when a model yields
# no finite forecast: Naive needs a single observation and has native intervals, so it cannot fail.
FALLBACK_MODEL = "Naive"

# Conformal windows for models without native intervals; the champion model gives short series as many as
# they have room for (statsforecast needs at least two windows, i.e. 2 * horizon + 1 observations).
CONFORMAL_WINDOWS = 5

# Chosen by measured accuracy per CPU-second (benchmarks/accuracy.py --cost, table in benchmarks/RESULTS.md):
# AutoARIMA and AutoETS cost 10-1000x more than the rest for no measured gain. Monthly: AutoETS (22 series/s
# on carparts, against 87 for AutoTheta and thousands for the simple models) won 1% of the series and moved
# the champions' backtest sMAPE by 0.01 points, so it is out. LightGBM (the global model, with the regressors)
# joined the weekly zoo on benchmarks/accuracy.py --quality (README): over 10 weekly holdouts better than the
# StatsForecast zoo at 5, equal at 4, worse at 1 (by 0.3), at 1.1-1.3x its CPU. Combination is in no default:
# alone it was better at 2 holdouts and worse at 1, and beside LightGBM it made the weekly M5 set worse.
# Monthly (carparts: equal, 1.26x the CPU) and daily keep their zoos without it, unless drivers are declared:
# then default_models adds it (on daily retail with drivers it won most series: docs/forecasting-defaults.md).
DEFAULT_ZOO: dict[str, list[str]] = {
    "W": [
        "Naive",
        "SeasonalNaive",
        "WindowAverage",
        "CrostonOptimized",
        "ADIDA",
        "IMAPA",
        "TSB",
        "AutoTheta",
        "MSTL",
        "LightGBM",
    ],
    "MS": [
        "Naive",
        "SeasonalNaive",
        "HistoricAverage",
        "WindowAverage",
        "CrostonOptimized",
        "ADIDA",
        "IMAPA",
        "TSB",
        "AutoTheta",
    ],
    "D": [
        "Naive",
        "SeasonalNaive",
        "WindowAverage",
        "CrostonOptimized",
        "ADIDA",
        "IMAPA",
        "TSB",
        "AutoETS",
        "AutoTheta",
        "MSTL",
    ],
}


def _builders(season_length: int, horizon: int) -> dict[str, Callable[[], Any]]:
    season = max(int(season_length), 1)
    return {
        "Naive": lambda: Naive(),
        "SeasonalNaive": lambda: SeasonalNaive(season_length=season),
        "HistoricAverage": lambda: HistoricAverage(),
        # A window of one horizon: recent level, robust to single spikes.
        "WindowAverage": lambda: WindowAverage(window_size=max(horizon, 2)),
        "CrostonOptimized": lambda: CrostonOptimized(),
        "ADIDA": lambda: ADIDA(),
        "IMAPA": lambda: IMAPA(),
        # Teunter-Syntetos-Babai: slow demand-size updates, slower probability updates (obsolescence).
        "TSB": lambda: TSB(alpha_d=0.2, alpha_p=0.1),
        "AutoETS": lambda: AutoETS(season_length=season),
        "AutoTheta": lambda: AutoTheta(season_length=season),
        "AutoCES": lambda: AutoCES(season_length=season),
        # MSTL needs a season > 1; with season 1 it degrades to its trend model, which is still valid.
        # The deseasonalised series gets a level-only ETS: with two or three seasons of history a fitted trend
        # extrapolates the post-season drop (jewelry backtest, 4 windows: sMAPE 32.2 level-only vs 33.7 ZZN).
        "MSTL": lambda: MSTL(season_length=max(season, 2), trend_forecaster=AutoETS(model="ZNN")),
        "AutoARIMA": lambda: AutoARIMA(season_length=season),
    }


def frequency_family(frequency: str) -> str:
    """'W' for weekly, 'D' for daily and finer, 'MS' for monthly and coarser."""
    name = pd.tseries.frequencies.to_offset(frequency).name.split("-")[0]
    if name == "W":
        return "W"
    if name in {"D", "B", "C", "h", "H", "min", "T", "s", "S"}:
        return "D"
    return "MS"


def validate_names(names: Sequence[str]) -> list[str]:
    """The names, checked: unknown or duplicated names raise ValueError listing the supported ones."""
    return validate_model_names(list(names))


def declared_drivers(settings: Settings, promotions: bool = False) -> list[str]:
    """The drivers a user gave: the declared series columns in regressors.use, the static attributes, and
    promo_depth when planned promotions exist (``promotions``: the data has some). Holidays are not counted:
    every run has them."""
    use = settings.regressors.use
    declared = [c for c in settings.regressors.series_columns if c in use]
    return (["promo_depth"] if promotions and "promo_depth" in use else []) + declared + settings.regressors.statics


def unused_drivers(models: Sequence[str], drivers: Sequence[str]) -> str | None:
    """What to say when drivers are declared and no model of ``models`` reads them (None: nothing to say)."""
    if not drivers or GLOBAL_MODEL in models or COMBINATION in models:
        return None
    return (f"the drivers {list(drivers)} are unused: no model of the zoo ({', '.join(models)}) reads them; "
            f"add {GLOBAL_MODEL} to settings.models (or leave models unset) to use them")


def default_models(settings: Settings, drivers: Sequence[str] = ()) -> list[str]:
    """settings.models when set (validated), else the default zoo of the settings' frequency, with the global
    model added when ``drivers`` (declared_drivers) are given: declared drivers are never silently unused.

    LightGBM and Combination have no intervals of their own: with ``intervals.method: model`` the default
    zoo leaves them out and naming them is an error.
    """
    own_intervals = settings.intervals.method == "model"
    if settings.models is not None:
        # Checked when the settings were read, with the intervals method (Settings._models_have_intervals).
        return validate_names(settings.models)
    names = list(DEFAULT_ZOO[frequency_family(settings.frequency)])
    if drivers and GLOBAL_MODEL not in names:
        names.append(GLOBAL_MODEL)
    return [n for n in names if n not in (GLOBAL_MODEL, COMBINATION)] if own_intervals else names


# How the 'auto' guard judges when the settings leave it unset. Daily: the pooled error (MAE averaged over
# series, so a series weighs what it sells) over the last 2 windows. Chosen on the backtest windows before the
# daily benchmarks' holdouts (benchmarks/daily_selection.py): WAPE 14.47 -> 11.66 on Favorita, 147.9 -> 141.7
# on M5 daily, the best of the rules tried on the mean of both; a guard on the mean sMAPE let noisy
# per-series picks on the small series outvote what the large ones sell. Weekly and monthly keep their
# measured rule: the selection metric, the last window.
def guard_metric(settings: Settings) -> str:
    if settings.selection.guard_metric is not None:
        return settings.selection.guard_metric
    return "mae" if frequency_family(settings.frequency) == "D" else settings.selection.metric


def guard_windows(settings: Settings) -> int:
    if settings.selection.guard_windows is not None:
        return settings.selection.guard_windows
    return 2 if frequency_family(settings.frequency) == "D" else 1


def has_native_intervals(name: str) -> bool:
    if name not in STATSFORECAST_NAMES:
        return False
    return not getattr(build_models([name], 2, 2)[0], "only_conformal_intervals", False)


def build_models(
    names: Sequence[str], season_length: int, horizon: int, conformal_windows: int | None = CONFORMAL_WINDOWS
) -> list:
    """StatsForecast model instances, alias = name; models without native intervals get conformal ones.

    Conformal scores are only computed when a model is fitted (or asked for intervals), so the backtest,
    which asks for point forecasts only, pays nothing for them. ``conformal_windows=None``: no conformal
    intervals (for point forecasts whose intervals come from elsewhere).
    """
    builders = _builders(season_length, horizon)
    models = []
    for name in validate_names(names):
        if name not in builders:
            raise ValueError(f"{name} is not a StatsForecast model: the backtest and the champion model run it")
        model = builders[name]()
        model.alias = name
        if conformal_windows is not None and getattr(model, "only_conformal_intervals", False):
            model.prediction_intervals = ConformalIntervals(h=horizon, n_windows=max(conformal_windows, 2))
        models.append(model)
    return models


def build_fallback(season_length: int, horizon: int) -> Any:
    return build_models([FALLBACK_MODEL], season_length, horizon)[0]
