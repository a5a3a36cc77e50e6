"""Pandera contracts of the levels' tables: forecasting.forecasts_by_level and forecasting.evaluation_by_level."""

from __future__ import annotations

from collections.abc import Iterable

from pandera.pandas import Check, Column, DataFrameSchema

from mlops_assets.levels.reconcile import BASE, CANDIDATES
from mlops_assets.schemas import VALUE_LIMIT, sql_form

METHODS = [BASE, *CANDIDATES]


def _within(low: float | None = None) -> Check:
    low = -VALUE_LIMIT if low is None else low
    return Check.in_range(low, VALUE_LIMIT, error=f"finite and within {low:g} to {VALUE_LIMIT:g}")


def _nested_bounds(levels: list[int]) -> list[Check]:
    """lo of the widest level <= ... <= lo of the narrowest <= y_hat <= hi of the narrowest <= ... <= hi widest."""
    order = [f"lo_{lv}" for lv in sorted(levels, reverse=True)] + ["y_hat"] + [f"hi_{lv}" for lv in sorted(levels)]
    checks = []
    for lower, upper in zip(order, order[1:], strict=False):
        checks.append(sql_form(Check(lambda df, a=lower, b=upper: df[a] <= df[b] + 1e-9, error=f"{lower} <= {upper}"),
                               f"{lower} <= {upper} + 1e-9"))
    return checks


def forecasts_by_level_schema(levels: Iterable[int] = (80, 95), non_negative: bool = False) -> DataFrameSchema:
    levels = list(levels)
    low = 0.0 if non_negative else None
    bounds = {f"{side}_{lv}": Column(float, _within(low), nullable=False) for lv in levels for side in ("lo", "hi")}
    return DataFrameSchema(
        {
            "level": Column(str, nullable=False),
            "unique_id": Column(str, nullable=False),
            "ds": Column("datetime64[ns]", nullable=False),
            "method": Column(str, Check.isin(METHODS), nullable=False),
            "y_hat": Column(float, _within(low), nullable=False),
            **bounds,
            "base_model": Column(str, nullable=False),
            "is_default": Column(bool, nullable=False),
        },
        checks=_nested_bounds(levels),
        unique=["unique_id", "method", "ds"],
        strict=True,
        name="forecasting.forecasts_by_level",
    )


EVALUATION_BY_LEVEL = DataFrameSchema(
    {
        "level": Column(str, nullable=False),
        "method": Column(str, Check.isin(METHODS), nullable=False),
        "smape": Column(float, Check.in_range(0, 200), nullable=True),
        "mae": Column(float, Check.ge(0), nullable=True),
        "rmse": Column(float, Check.ge(0), nullable=True),
        "wape": Column(float, Check.ge(0), nullable=True),
        "n_series": Column(int, Check.ge(1)),
        "n_windows": Column(int, Check.ge(1)),
        "is_default": Column(bool, nullable=False),
    },
    unique=["level", "method"],
    strict=True,
    name="forecasting.evaluation_by_level",
)
