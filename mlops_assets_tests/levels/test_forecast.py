"""Every level forecast and reconciled: coherent at every period, level and method; bounds ordered."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.levels.frames import in_memory
from mlops_assets.levels.layer import forecast_levels
from mlops_assets.levels.reconcile import BASE, PER_PERIOD
from mlops_assets.settings import Settings
from mlops_assets_tests.levels.test_hierarchy import _aggregate

SETTINGS = Settings(horizon=4, season_length=4, backtest={"windows": 2}, hierarchy={},
                    models=["Naive", "SeasonalNaive", "WindowAverage"])
CATALOG = {"P1": ("Cheese", "A"), "P2": ("Cheese", "A"), "P3": ("Cheese", "B"), "P4": ("Cream", "C"),
           "P5": ("Cream", "C"), "P9": ("Cream", "D")}


def _gold() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    weeks = pd.date_range("2023-01-02", periods=40, freq="W-MON")
    frames = []
    for i, (uid, (category, brand)) in enumerate(CATALOG.items()):
        n = 6 if uid == "P9" else 40  # P9 launched late: too short to forecast, excluded
        y = 20 + 10 * i + 5 * np.sin(2 * np.pi * np.arange(n) / 4) + rng.normal(0, 2, n)
        frames.append(pd.DataFrame({"unique_id": uid, "ds": weeks[-n:], "y": np.round(y), "category": category,
                                    "brand": brand}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def result():
    return forecast_levels(in_memory(_gold(), {"P9"}, SETTINGS), SETTINGS)


def _children(nodes: pd.DataFrame, levels: list[str]) -> dict[str, list[str]]:
    """Direct children of every group, from the node ids alone (a path extends its parent's)."""
    out = {}
    for upper, lower in zip(levels, levels[1:], strict=False):
        below = nodes.loc[nodes["level"] == lower, "unique_id"].tolist()
        for parent in nodes.loc[nodes["level"] == upper, "unique_id"]:
            if lower == levels[-1]:
                out[parent] = [uid for uid in below if _path(parent, CATALOG[uid])]
            else:
                out[parent] = [uid for uid in below if parent == "total" or uid.startswith(parent + "/")]
    return out


def _path(parent: str, attributes: tuple[str, str]) -> bool:
    return parent == f"category/{attributes[0]}/brand/{attributes[1]}"


def test_children_sum_to_their_parent_at_every_period_level_and_method(result):
    fc = result.forecasts
    assert set(fc["method"]) == {BASE, *PER_PERIOD}
    children = _children(result.hierarchy.nodes, result.hierarchy.levels)
    assert len(children) == 1 + 2 + 4
    for method in PER_PERIOD:
        table = fc[fc["method"] == method].pivot(index="ds", columns="unique_id", values="y_hat")
        assert len(table) == SETTINGS.horizon and not table.isna().any().any()
        for parent, kids in children.items():
            assert kids, parent
            np.testing.assert_allclose(table[parent], table[kids].sum(axis=1), rtol=0, atol=1e-6,
                                       err_msg=f"{method}: {parent} != sum of {kids}")


def test_bounds_are_ordered_and_one_method_is_the_default(result):
    fc = result.forecasts
    assert ((fc["lo_95"] <= fc["lo_80"] + 1e-9) & (fc["lo_80"] <= fc["y_hat"] + 1e-9)
            & (fc["y_hat"] <= fc["hi_80"] + 1e-9) & (fc["hi_80"] <= fc["hi_95"] + 1e-9)).all()
    assert fc[["lo_80", "hi_80", "lo_95", "hi_95"]].notna().all().all()
    assert set(fc.loc[fc["is_default"], "method"]) == {result.method}
    assert result.method in PER_PERIOD
    # Sales without a negative actual: every method's forecasts and bounds stay >= 0, still coherent.
    assert result.summary["nonnegative"]
    assert (fc[["y_hat", "lo_80", "lo_95"]] >= -1e-9).all().all()


def test_an_excluded_series_is_not_forecast_but_counts_in_its_parents(result):
    fc = result.forecasts
    p9 = fc[fc["unique_id"] == "P9"]
    assert (p9.loc[p9["method"] == BASE, "y_hat"] == 0).all()
    assert set(p9["base_model"]) == {"not forecast"}
    gold = _gold()
    panel = _aggregate(gold, result.hierarchy, "W-MON").set_index(["unique_id", "ds"])["y"]
    last = gold["ds"].max()
    p9_last = gold.loc[(gold["unique_id"] == "P9") & (gold["ds"] == last), "y"].item()
    assert p9_last > 0
    assert panel[("category/Cream/brand/D", last)] == p9_last
    assert panel[("category/Cream", last)] == gold.loc[(gold["category"] == "Cream") & (gold["ds"] == last), "y"].sum()
    assert result.summary["not_forecast_series"] == 1


def test_evaluation_has_every_level_and_method_scored_on_the_backtest(result):
    ev = result.evaluation
    assert set(zip(ev["level"], ev["method"], strict=True)) == {
        (level, method) for level in result.hierarchy.levels for method in (BASE, *PER_PERIOD)}
    assert (ev["n_windows"] == SETTINGS.backtest.windows).all()
    bottom = ev[(ev["level"] == "product") & ev["method"].isin([BASE, "BottomUp"])].set_index("method")
    # BottomUp leaves the series' own forecasts as they are.
    assert bottom.loc[BASE, "smape"] == pytest.approx(bottom.loc["BottomUp", "smape"])
    assert ev["smape"].between(0, 200).all()
    assert ev.loc[ev["level"] == "product", "n_series"].eq(5).all()


def test_the_contract_and_the_coherence_measure_catch_a_broken_table(result):
    import pandera.pandas as pa

    from mlops_assets.levels.reconcile import coherence_gaps
    from mlops_assets.levels.schemas import EVALUATION_BY_LEVEL, forecasts_by_level_schema

    schema = forecasts_by_level_schema(SETTINGS.interval_levels, non_negative=True)
    schema.validate(result.forecasts)
    EVALUATION_BY_LEVEL.validate(result.evaluation)
    assert coherence_gaps(result.forecasts, result.hierarchy)["max_relative_gap"].max() < 1e-9
    broken = result.forecasts.copy()
    row = broken.index[(broken["method"] == "BottomUp") & (broken["unique_id"] == "category/Cheese")][0]
    broken.loc[row, "y_hat"] += 1.0
    gaps = coherence_gaps(broken, result.hierarchy).set_index("method")
    assert gaps.loc["BottomUp", "max_gap"] == pytest.approx(1.0)
    assert gaps.drop(index="BottomUp")["max_gap"].max() < 1e-9
    broken.loc[row, "lo_80"] = broken.loc[row, "hi_95"] + 1
    with pytest.raises(pa.errors.SchemaErrors, match="lo_80 <= y_hat"):
        schema.validate(broken, lazy=True)


def test_declared_closed_days_are_zero_at_every_level_and_method():
    rng = np.random.default_rng(1)
    days = pd.date_range("2024-01-01", periods=63, freq="D")
    gold = pd.concat([pd.DataFrame({"unique_id": uid, "ds": days,
                                    "y": np.where(days.weekday == 6, 0.0, np.round(rng.uniform(20, 40, 63)))})
                      for uid in ("a_1", "a_2", "b_1")], ignore_index=True)
    settings = Settings(source="series", frequency="D", horizon=7, season_length=7, backtest={"windows": 2},
                        models=["Naive", "SeasonalNaive"], closed={"weekdays": ["sun"]},
                        hierarchy={"levels": [["shop"]], "id_pattern": "(?P<shop>[a-z])_(?P<till>[0-9])"})
    result = forecast_levels(in_memory(gold, (), settings), settings)
    fc = result.forecasts
    sunday = fc["ds"].dt.weekday == 6
    assert sunday.sum() == len(result.hierarchy.nodes) * (1 + len(PER_PERIOD))
    assert (fc.loc[sunday, ["y_hat", "lo_80", "hi_80", "lo_95", "hi_95"]] == 0).all().all()
    assert (fc.loc[~sunday & (fc["unique_id"] == "total"), "y_hat"] > 0).all()


def _shops(excluded_short: bool) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    weeks = pd.date_range("2023-01-02", periods=30, freq="W-MON")
    frames = []
    for uid in ("a_1", "a_2", "b_1"):
        n = 5 if excluded_short and uid == "b_1" else 30
        frames.append(pd.DataFrame({"unique_id": uid, "ds": weeks[-n:], "y": np.round(rng.uniform(20, 40, n))}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("levels", [[], [["shop"]]], ids=["total-alone", "by-shop"])
def test_one_bucket_or_one_per_shop_adds_up_and_a_shop_of_excluded_series_is_zero(levels):
    settings = Settings(source="series", horizon=4, season_length=4, backtest={"windows": 2},
                        models=["Naive", "WindowAverage"],
                        hierarchy={"levels": levels, "id_pattern": "(?P<shop>[a-z])_(?P<till>[0-9])"})
    result = forecast_levels(in_memory(_shops(True), {"b_1"}, settings), settings)
    assert result.summary["buckets"] == (1 if not levels else 2)
    fc = result.forecasts
    for method in PER_PERIOD:
        table = fc[fc["method"] == method].pivot(index="ds", columns="unique_id", values="y_hat")
        np.testing.assert_allclose(table["total"], table[["a_1", "a_2", "b_1"]].sum(axis=1), atol=1e-6)
        if levels:
            np.testing.assert_allclose(table["shop/a"], table[["a_1", "a_2"]].sum(axis=1), atol=1e-6)
            assert (table["shop/b"] == 0).all() and (table["b_1"] == 0).all()
    if levels:
        assert set(fc.loc[fc["unique_id"].isin(["shop/b", "b_1"]), "base_model"]) == {"not forecast"}
    assert (fc["lo_95"] <= fc["lo_80"] + 1e-9).all() and (fc["hi_80"] <= fc["hi_95"] + 1e-9).all()


def test_top_down_from_the_buckets_is_hierarchicalforecasts_top_down_on_the_whole_tree(result):
    from mlops_assets.levels.reconcile import TOP_DOWN, reconcile

    fc = result.forecasts
    base = fc.loc[fc["method"] == BASE, ["unique_id", "ds", "y_hat"]]
    whole = reconcile(base, None, result.hierarchy, [TOP_DOWN]).forecasts
    expected = whole[whole["method"] == TOP_DOWN].set_index(["unique_id", "ds"])["y_hat"].sort_index()
    found = fc[fc["method"] == TOP_DOWN].set_index(["unique_id", "ds"])["y_hat"].sort_index()
    assert result.summary["buckets"] == 2
    np.testing.assert_allclose(found.to_numpy(), expected.reindex(found.index).to_numpy(), rtol=1e-9, atol=1e-9)
    total = found.xs("total", level="unique_id")
    own = base[base["unique_id"] == "total"].set_index("ds")["y_hat"]
    np.testing.assert_allclose(total.to_numpy(), own.reindex(total.index).to_numpy(), rtol=1e-9)


def test_no_series_forecast_is_a_clear_error():
    with pytest.raises(ValueError, match="no series of gold.sales_data_for_forecast is forecast"):
        settings = Settings(source="series", hierarchy={})
        forecast_levels(in_memory(_shops(True), {"a_1", "a_2", "b_1"}, settings), settings)
