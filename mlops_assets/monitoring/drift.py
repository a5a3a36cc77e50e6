"""Has the recent sales data drifted away from the data the forecasts were trained on?

The current window (the last ``recent_periods`` periods) is compared with the reference window (the
``reference_periods`` before it) by an Evidently ``DataDriftPreset`` over a few features that matter for
forecasts. Evidently picks the statistical test by size: with up to 1,000 reference rows, K-S for numerical
columns and chi-square (Z-test for two values) for categorical ones, drift when p < 0.05; above, normed
Wasserstein distance for numerical and Jensen-Shannon distance for categorical columns, drift when the
distance >= 0.1. ``DriftResult.method`` states which applied.

Seasonal data can show drift when the current window is a different season from the year before it: the
reference is the recent past, not the same season last year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

NUMERICAL_FEATURES = ("relative_sales", "avg_unit_price", "promo_share")
CATEGORICAL_FEATURES = ("is_zero", "category")
# Above this many reference rows Evidently switches from tests (K-S, chi-square) to distances.
EVIDENTLY_SIZE_SWITCH = 1000
# What the report shows for each feature: Evidently labels its axes and tables with the column name, so the
# name carries the unit a person reads the values in.
DISPLAY_NAMES = {
    "relative_sales": "units sold (x the series' reference mean)",
    "avg_unit_price": "unit price (x the series' reference mean)",
    "promo_share": "share of units on promotion (0-1)",
    "is_zero": "no sale in the period (True/False)",
    "category": "category",
}


@dataclass
class DriftResult:
    drift_share: float  # share of drifted columns, 0-1
    drifted_columns: list[str]
    n_columns: int
    method: str
    per_column: pd.DataFrame  # column, kind, drifted, score, method, threshold
    reference_window: tuple[pd.Timestamp, pd.Timestamp]
    current_window: tuple[pd.Timestamp, pd.Timestamp]
    html_path: Path | None
    json_path: Path | None = None
    reference_periods_used: int = 0
    n_reference_rows: int = 0
    n_current_rows: int = 0
    notes: list[str] = field(default_factory=list)


def drift_windows(
    periods: list | np.ndarray, recent_periods: int, reference_periods: int
) -> tuple[list, list, list[str]]:
    """The reference and current periods among ``periods`` (the sorted periods with a reported y), and notes."""
    periods = list(periods)
    if len(periods) < recent_periods + 2:
        raise ValueError(
            f"drift needs at least recent_periods + 2 = {recent_periods + 2} periods with a reported y in "
            f"gold.sales_data_for_forecast, found {len(periods)}; wait for more data or lower "
            "drift.recent_periods in the settings file"
        )
    current = periods[-recent_periods:]
    reference = periods[max(0, len(periods) - recent_periods - reference_periods) : -recent_periods]
    notes = []
    if len(reference) < reference_periods:
        notes.append(
            f"reference window shortened to {len(reference)} of {reference_periods} periods "
            f"(the data has {len(periods)} periods)"
        )
    return reference, current, notes


def window_features(
    gold: pd.DataFrame, reference: list, current: list, with_category: bool | None = None
) -> tuple[pd.DataFrame, int]:
    """drift_features of whole series of gold, given the windows of the whole table: the rows sorted by
    unique_id and ds, and how many series were left out for want of a positive mean y in the reference window.

    ``with_category``: whether any row of the windows in the whole table names a category (None: any of these
    rows), so that every bucket of a table has the column or none has."""
    data = gold.loc[gold["y"].notna()]  # a missing y is "not reported", neither zero nor a sale
    data = data.loc[data["ds"].isin(reference) | data["ds"].isin(current)]
    is_ref = data["ds"].isin(reference)
    out = pd.DataFrame({"unique_id": data["unique_id"], "ds": data["ds"]})
    out["window"] = is_ref.map({True: "reference", False: "current"})
    # Each series against its own reference level, so big and small series weigh the same.
    level = data["unique_id"].map(data.loc[is_ref].groupby("unique_id")["y"].mean())
    out["relative_sales"] = data["y"] / level.where(level > 0)
    if "avg_unit_price" in data:
        price = data["avg_unit_price"].astype("float64")
        price_level = data["unique_id"].map(price[is_ref].groupby(data.loc[is_ref, "unique_id"]).mean())
        out["avg_unit_price"] = price / price_level.where(price_level > 0)
    if "promo_share" in data:
        out["promo_share"] = data["promo_share"].astype("float64")
    out["is_zero"] = data["y"] == 0
    if with_category is None:
        with_category = "category" in data and bool(data["category"].notna().any())
    if with_category:
        out["category"] = data["category"].astype(object).where(data["category"].notna(), "(none)")
    no_level = out.loc[out["relative_sales"].isna(), "unique_id"].nunique()
    out = out.loc[out["relative_sales"].notna()]
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True), int(no_level)


def no_level_note(series: int) -> list[str]:
    """The note on series left out of the comparison (none when ``series`` is 0)."""
    if not series:
        return []
    return [f"{series} series left out: no positive mean y in the reference window (new or all zero)"]


def _features_and_notes(
    gold: pd.DataFrame, recent_periods: int, reference_periods: int
) -> tuple[pd.DataFrame, list, list, list[str]]:
    periods = sorted(gold.loc[gold["y"].notna(), "ds"].unique())
    reference, current, notes = drift_windows(periods, recent_periods, reference_periods)
    features, no_level = window_features(gold, reference, current)
    return features, reference, current, notes + no_level_note(no_level)


def drift_features(
    gold: pd.DataFrame, *, recent_periods: int = 13, reference_periods: int = 52
) -> pd.DataFrame:
    """One row per series and period of both windows: unique_id, ds, window ('reference' or 'current'),
    relative_sales (y / the series' reference mean y), avg_unit_price (/ the series' reference mean price),
    promo_share, is_zero and category (when gold has one)."""
    return _features_and_notes(gold, recent_periods, reference_periods)[0]


def _unique_paths(report_dir: Path, stamp: str) -> tuple[Path, Path]:
    if "/" in stamp or "\\" in stamp:
        raise ValueError(f"drift report stamp {stamp!r} must be a plain name, without a path separator")
    report_dir.mkdir(parents=True, exist_ok=True)
    suffix = 0
    while True:
        name = f"drift_{stamp}" if suffix == 0 else f"drift_{stamp}_{suffix}"
        html, js = report_dir / f"{name}.html", report_dir / f"{name}.json"
        if not html.exists() and not js.exists():
            try:
                html.open("x").close()  # claim the name, so two runs never write the same file
                return html, js
            except FileExistsError:
                pass
        suffix += 1


def _window_text(window: tuple[pd.Timestamp, pd.Timestamp], periods: int, rows: int) -> str:
    return f"{window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d} ({periods} periods, {rows:,} series-periods)"


def _with_header(html: str, reference: str, current: str) -> str:
    """The windows, named with their dates, above Evidently's report (which calls them only Reference/Current)."""
    header = (
        '<div style="font-family: sans-serif; padding: 12px 24px; border-bottom: 1px solid #ccc">'
        "<h2 style=\"margin: 0 0 6px\">Drift of gold.sales_data_for_forecast</h2>"
        f"<div><b>Current</b>: {escape(current)}</div><div><b>Reference</b>: {escape(reference)}</div>"
        "<div>Units and prices are relative to each series' own mean in the reference window, so that large "
        "and small series weigh the same: 1.0 is the series' usual level.</div></div>"
    )
    start = html.find(">", html.find("<body")) + 1 if "<body" in html else 0
    return html[:start] + header + html[start:]


def _parse(snapshot: dict[str, Any], kinds: dict[str, str]) -> tuple[float, pd.DataFrame]:
    failed = {
        t["metric_config"]["metric_id"]
        for t in snapshot.get("tests", [])
        if t.get("status") == "FAIL" and t["metric_config"]["params"]["type"].endswith("ValueDrift")
    }
    share, rows = float("nan"), []
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif config["type"].endswith("ValueDrift"):
            score, threshold, method = float(metric["value"]), float(config["threshold"]), config["method"]
            by_rule = score < threshold if "p_value" in method else score >= threshold
            drifted = metric["id"] in failed if snapshot.get("tests") else by_rule
            rows.append((config["column"], kinds[config["column"]], drifted, score, method, threshold))
    per_column = pd.DataFrame(rows, columns=["column", "kind", "drifted", "score", "method", "threshold"])
    return share, per_column.sort_values("column").reset_index(drop=True)


def _describe(per_column: pd.DataFrame, n_reference: int, notes: list[str]) -> str:
    parts = []
    for method, group in per_column.groupby("method", sort=True):
        rule = "p <" if "p_value" in method else "distance >="
        threshold, columns = group["threshold"].iloc[0], ", ".join(group["column"])
        parts.append(f"{method} (drift when {rule} {threshold:g}) on {columns}")
    size = "<=" if n_reference <= EVIDENTLY_SIZE_SWITCH else ">"
    text = f"{'; '.join(parts)}; Evidently's choice for {n_reference} reference rows ({size} 1000)"
    return "; ".join([text, *notes])


def compute_drift(
    gold: pd.DataFrame,
    *,
    recent_periods: int = 13,
    reference_periods: int = 52,
    report_dir: Path | None = None,
    stamp: str | None = None,
) -> DriftResult:
    """Drift of the last ``recent_periods`` periods against the ``reference_periods`` before them."""
    features, ref_ds, cur_ds, notes = _features_and_notes(gold, recent_periods, reference_periods)
    return drift_of_features(features, ref_ds, cur_ds, notes, report_dir=report_dir, stamp=stamp)


def drift_of_features(
    features: pd.DataFrame,
    ref_ds: list,
    cur_ds: list,
    notes: list[str],
    *,
    report_dir: Path | None = None,
    stamp: str | None = None,
) -> DriftResult:
    """compute_drift on drift features already built (window_features of every bucket, stacked): the
    Evidently report of the reference rows against the current rows, on every row of both windows."""
    notes = list(notes)
    ref = features.loc[features["window"] == "reference"]
    cur = features.loc[features["window"] == "current"]
    if ref.empty or cur.empty:
        raise ValueError(
            "drift found no series with a positive mean y in the reference window and data in the current "
            "window of gold.sales_data_for_forecast; check that gold holds sales"
        )

    def usable(columns: tuple[str, ...]) -> list[str]:
        # A feature empty in either window (e.g. prices of pre-aggregated series) cannot be compared, and
        # one with a single value in both (promo_share 0 everywhere) cannot drift.
        kept = []
        for column in columns:
            if column not in features:
                continue
            if not (ref[column].notna().any() and cur[column].notna().any()):
                notes.append(f"{column} left out: no values in one of the windows")
            elif features[column].nunique() < 2:
                notes.append(f"{column} left out: the same value in both windows")
            else:
                kept.append(column)
        return kept

    numerical, categorical = usable(NUMERICAL_FEATURES), usable(CATEGORICAL_FEATURES)
    columns = numerical + categorical
    windows = {
        "reference_window": (pd.Timestamp(ref_ds[0]), pd.Timestamp(ref_ds[-1])),
        "current_window": (pd.Timestamp(cur_ds[0]), pd.Timestamp(cur_ds[-1])),
        "reference_periods_used": len(ref_ds),
        "n_reference_rows": len(ref),
        "n_current_rows": len(cur),
        "notes": notes,
    }
    if not columns:  # e.g. flat series without prices: nothing can have drifted, and no report to show
        empty = pd.DataFrame(columns=["column", "kind", "drifted", "score", "method", "threshold"])
        method = "; ".join(["no feature varies, nothing compared", *notes])
        return DriftResult(0.0, [], 0, method, empty, html_path=None, **windows)
    shown = {column: DISPLAY_NAMES.get(column, column) for column in columns}
    definition = DataDefinition(numerical_columns=[shown[c] for c in numerical],
                                categorical_columns=[shown[c] for c in categorical])

    def dataset(frame: pd.DataFrame) -> Dataset:
        return Dataset.from_pandas(frame[columns].rename(columns=shown).reset_index(drop=True),
                                   data_definition=definition)

    snapshot = Report([DataDriftPreset(columns=list(shown.values()))], include_tests=True).run(
        current_data=dataset(cur), reference_data=dataset(ref)
    )
    kinds = {**{shown[c]: "numerical" for c in numerical}, **{shown[c]: "categorical" for c in categorical}}
    share, per_column = _parse(snapshot.dict(), kinds)
    per_column["column"] = per_column["column"].map({label: column for column, label in shown.items()})
    per_column = per_column.sort_values("column").reset_index(drop=True)

    html_path = json_path = None
    if report_dir is not None:
        stamp = stamp or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        html_path, json_path = _unique_paths(Path(report_dir), stamp)
        reference = _window_text(windows["reference_window"], len(ref_ds), len(ref))
        current = _window_text(windows["current_window"], len(cur_ds), len(cur))
        html_path.write_text(_with_header(snapshot.get_html_str(as_iframe=False), reference, current),
                             encoding="utf-8")
        json_path.write_text(snapshot.json(), encoding="utf-8")

    return DriftResult(
        drift_share=share,
        drifted_columns=sorted(per_column.loc[per_column["drifted"], "column"]),
        n_columns=len(per_column),
        method=_describe(per_column, len(ref), notes),
        per_column=per_column,
        html_path=html_path,
        json_path=json_path,
        **windows,
    )
