"""serving.sales_overall: actuals and forecasts of every series in one long table.

This is the table people read: one row per series, period and origin, where origin ``Train`` is the
history the model learned from and ``Predict`` is the forecast with its intervals.
"""

from __future__ import annotations

import difflib
import re

import numpy as np
import pandas as pd

TRAIN = "Train"
PREDICT = "Predict"
PRODUCT_ATTRIBUTES = ["product_id", "product_name", "brand", "category"]
CUSTOMER_ATTRIBUTES = ["customer_id", "customer_name", "channel", "region"]
BOUNDS = ["lo_80", "hi_80", "lo_95", "hi_95"]
OVERALL_COLUMNS = [
    "unique_id",
    *PRODUCT_ATTRIBUTES,
    *CUSTOMER_ATTRIBUTES,
    "ds",
    "origin",
    "sales",
    "imputed",
    *BOUNDS,
    "model",
    "model_version",
]
_GOLD_REQUIRED = ["unique_id", "ds", "y"]
_FORECAST_REQUIRED = ["unique_id", "ds", "model", "y_hat", "model_version"]
_BOUND = re.compile(r"^(lo|hi)_(\d+)$")


def _require(frame: pd.DataFrame, columns: list[str], table: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{table} lacks columns {missing}; it has {list(frame.columns)}")


def forecast_bounds(forecasts: pd.DataFrame) -> list[str]:
    """The contract's 80/95 bounds, plus any other levels the settings asked for, lowest level first."""
    found = {column for column in forecasts.columns if _BOUND.match(column)}
    levels = sorted({int(_BOUND.match(column).group(2)) for column in found | set(BOUNDS)})
    return [f"{side}_{level}" for level in levels for side in ("lo", "hi")]


def default_attributes(columns: list[str] | pd.Index) -> list[str]:
    """The attribute columns of sales_overall among gold's ``columns``: product, and customer at that grain."""
    return [c for c in PRODUCT_ATTRIBUTES + CUSTOMER_ATTRIBUTES if c in columns]


def unknown_series_error(unknown: list[str]) -> ValueError:
    """The error for forecasts of series that gold lacks (``unknown``: their ids, sorted)."""
    shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
    return ValueError(
        f"forecasting.forecasts has {len(unknown)} series that are not in gold.sales_data_for_forecast "
        f"({shown}); forecasts and gold come from different runs: rematerialize the forecasts."
    )


def build_sales_overall(
    gold: pd.DataFrame, forecasts: pd.DataFrame, attributes: list[str] | None = None
) -> pd.DataFrame:
    """Stack gold actuals (origin Train) and forecasts (origin Predict) with the series' attributes.

    ``attributes`` defaults to the product columns and, for the product x customer grain, the customer
    columns found in gold. A forecast row takes the attributes of the latest gold row of its series.
    """
    _require(gold, _GOLD_REQUIRED, "gold.sales_data_for_forecast")
    _require(forecasts, _FORECAST_REQUIRED, "forecasting.forecasts")
    attributes = default_attributes(gold.columns) if attributes is None else list(attributes)
    _require(gold, attributes, "gold.sales_data_for_forecast (attributes asked for)")
    bounds = forecast_bounds(forecasts)

    gold = gold.assign(unique_id=gold["unique_id"].astype(str), ds=pd.to_datetime(gold["ds"]))
    forecasts = forecasts.assign(
        unique_id=forecasts["unique_id"].astype(str), ds=pd.to_datetime(forecasts["ds"])
    )
    unknown = sorted(set(forecasts["unique_id"]) - set(gold["unique_id"]))
    if unknown:
        raise unknown_series_error(unknown)

    train = gold[["unique_id", *attributes, "ds", "y"]].rename(columns={"y": "sales"})
    # A Train row whose y gold interpolated (a gap in a series file) says so: it is not an actual.
    imputed = gold["imputed"].astype(bool) if "imputed" in gold else False
    train = train.assign(origin=TRAIN, imputed=imputed, model=None, model_version=None,
                         **{b: np.nan for b in bounds})

    # Attributes may change over time (a renamed product): the latest name is the one to show.
    latest = gold.sort_values(["unique_id", "ds"]).drop_duplicates("unique_id", keep="last")
    predict = forecasts.reindex(columns=["unique_id", "ds", "model", "y_hat", "model_version", *bounds])
    predict = predict.rename(columns={"y_hat": "sales"}).assign(origin=PREDICT, imputed=False)
    predict = predict.merge(latest[["unique_id", *attributes]], on="unique_id", how="left")

    columns = ["unique_id", *attributes, "ds", "origin", "sales", "imputed", *bounds, "model", "model_version"]
    parts = [frame[columns] for frame in (train, predict) if len(frame)]
    overall = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    overall = overall.astype(
        {"unique_id": str, "origin": str, "sales": "float64", "imputed": bool, **{b: "float64" for b in bounds}}
    )
    overall["ds"] = pd.to_datetime(overall["ds"]).astype("datetime64[ns]")
    for column in ("model", "model_version"):
        overall[column] = overall[column].astype(object).where(overall[column].notna(), None)
    return overall.sort_values(["unique_id", "ds", "origin"], kind="stable").reset_index(drop=True)


class UnknownProductError(LookupError):
    """A product name that matches no series; carries the closest names so a caller can offer them."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        if self.suggestions:
            hint = "Closest: " + ", ".join(f'"{s}"' for s in self.suggestions) + "."
        else:
            hint = "No product name is close; list the names in serving.sales_overall (product_name)."
        super().__init__(f'No product named "{name}". {hint}')


def _similarity(query: str, name: str) -> float:
    # A typo in the first word ("Etorky" for "Etorki 200g") scores low against the whole name, so the
    # name's prefix of the query's length counts too.
    whole = difflib.SequenceMatcher(None, query, name).ratio()
    prefix = difflib.SequenceMatcher(None, query, name[: len(query)]).ratio()
    return max(whole, prefix)


def _closest(query: str, names: list[str], n: int = 5, cutoff: float = 0.6) -> list[str]:
    scored = [(_similarity(query.lower(), name.lower()), name) for name in names]
    ranked = sorted((item for item in scored if item[0] >= cutoff), key=lambda item: (-item[0], item[1]))
    return [name for _, name in ranked[:n]]


def find_series(overall: pd.DataFrame, product: str) -> list[str]:
    """unique_ids of a product: exact name (any case), else exact product_id or unique_id, else substring.

    Raises UnknownProductError with up to five close names when nothing matches.
    """
    query = product.strip().lower()
    if not query:
        raise ValueError("find_series needs a product name or id; got an empty string")
    ids = overall["unique_id"].astype(str)
    names = (overall["product_name"] if "product_name" in overall.columns else ids).astype("string")
    product_ids = (overall["product_id"] if "product_id" in overall.columns else ids).astype(str)
    lowered = names.str.lower()
    for match in (
        lowered == query,
        (product_ids.str.lower() == query) | (ids.str.lower() == query),
        lowered.str.contains(query, regex=False),
    ):
        match = match.fillna(False).astype(bool)
        if match.any():
            return sorted(ids[match].unique())
    candidates = sorted(set(names.dropna()) or set(ids))
    raise UnknownProductError(product, _closest(query, candidates))
