import duckdb
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.levels.hierarchy import aggregate, build_hierarchy, series_attributes
from mlops_assets.settings import Settings

WEEKS = pd.date_range("2024-01-01", periods=4, freq="W-MON")


def _attributes(gold: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    with duckdb.connect() as con:
        con.register("gold_rows", gold)
        return series_attributes(con, "gold_rows", settings)


def _aggregate(gold: pd.DataFrame, hierarchy, frequency: str) -> pd.DataFrame:
    with duckdb.connect() as con:
        con.register("gold_rows", gold)
        return aggregate(con, "gold_rows", hierarchy, frequency)


def _gold(rows: dict[str, tuple[str, str, list[float]]], weeks: pd.DatetimeIndex = WEEKS) -> pd.DataFrame:
    """unique_id -> (category, brand, weekly y from the first week)."""
    return pd.concat([pd.DataFrame({"unique_id": uid, "ds": weeks[: len(y)], "y": y, "category": cat, "brand": brand})
                      for uid, (cat, brand, y) in rows.items()], ignore_index=True)


def test_default_levels_ids_and_summing_matrix():
    gold = _gold({"P1": ("Cheese", "A", [1, 2, 3, 4]), "P2": ("Cheese", "B", [10, 20, 30, 40]),
                  "P3": ("Cream", "C", [100, 100, 100, 100])})
    hierarchy = build_hierarchy(_attributes(gold, Settings()), Settings())
    assert hierarchy.levels == ["total", "category", "category/brand", "product"]
    assert hierarchy.nodes["unique_id"].tolist() == [
        "total", "category/Cheese", "category/Cream", "category/Cheese/brand/A", "category/Cheese/brand/B",
        "category/Cream/brand/C", "P1", "P2", "P3"]
    s = hierarchy.summing_matrix().set_index("unique_id")
    assert s.loc["total"].tolist() == [1, 1, 1]
    assert s.loc["category/Cheese"].tolist() == [1, 1, 0]
    assert (s.loc[["P1", "P2", "P3"]].to_numpy() == np.eye(3)).all()


def test_groups_sum_their_series_and_a_late_series_counts_from_its_start():
    gold = _gold({"P1": ("Cheese", "A", [1, 2, 3, 4]), "P2": ("Cheese", "A", [10, 20])}, WEEKS)
    gold.loc[gold["unique_id"] == "P2", "ds"] = WEEKS[2:].to_numpy()
    settings = Settings(hierarchy={"levels": [["category"]]})
    panel = _aggregate(gold, build_hierarchy(_attributes(gold, settings), settings), "W-MON")
    assert panel.loc[panel["unique_id"] == "category/Cheese", "y"].tolist() == [1, 2, 13, 24]
    assert panel.loc[panel["unique_id"] == "P2", "y"].tolist() == [10, 20]


def test_a_gap_where_no_series_of_a_group_has_a_row_is_zero():
    gold = _gold({"P1": ("Cheese", "A", [5]), "P2": ("Cheese", "A", [7])})
    gold.loc[gold["unique_id"] == "P2", "ds"] = WEEKS[3]
    settings = Settings(hierarchy={"levels": []})
    panel = _aggregate(gold, build_hierarchy(_attributes(gold, settings), settings), "W-MON")
    assert panel.loc[panel["unique_id"] == "total", "y"].tolist() == [5, 0, 0, 7]


def test_a_product_that_moved_brand_counts_wholly_under_its_latest_brand():
    # Gold joins the current master data to every period; a series file that changed it mid-way: its latest.
    gold = _gold({"P1": ("Cheese", "A", [1, 1, 1, 1]), "P2": ("Cheese", "B", [2, 2, 2, 2])})
    gold.loc[(gold["unique_id"] == "P1") & (gold["ds"] >= WEEKS[2]), "brand"] = "B"
    settings = Settings()
    hierarchy = build_hierarchy(_attributes(gold, settings), settings)
    panel = _aggregate(gold, hierarchy, "W-MON")
    assert "category/Cheese/brand/A" not in set(panel["unique_id"])
    assert panel.loc[panel["unique_id"] == "category/Cheese/brand/B", "y"].tolist() == [3, 3, 3, 3]


def test_series_file_levels_from_declared_id_parts():
    gold = pd.DataFrame({"unique_id": ["1__A", "1__B", "2__A"] * 2, "ds": np.repeat(WEEKS[:2], 3),
                         "y": [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]})
    pattern = r"(?P<store>[^_]+)__(?P<dept>.+)"
    settings = Settings(source="series", hierarchy={"levels": [["store"]], "id_pattern": pattern})
    hierarchy = build_hierarchy(_attributes(gold, settings), settings)
    assert hierarchy.levels == ["total", "store", "series"]
    panel = _aggregate(gold, hierarchy, "W-MON").groupby("unique_id")["y"].first()
    assert panel[["total", "store/1", "store/2"]].tolist() == [7.0, 3.0, 4.0]
    two = Settings(source="series", hierarchy={"levels": [["dept"], ["dept", "store"]], "id_pattern": pattern})
    nodes = build_hierarchy(_attributes(gold, two), two).nodes
    assert "dept/A/store/2" in set(nodes["unique_id"])


def test_series_files_default_to_the_total_only_and_bad_declarations_say_what_is_wrong():
    gold = pd.DataFrame({"unique_id": ["x", "y"], "ds": WEEKS[:1].repeat(2), "y": [1.0, 2.0]})
    series = Settings(source="series")
    assert build_hierarchy(_attributes(gold, series), series).levels == ["total", "series"]
    with pytest.raises(ValueError, match="does not match 2 series"):
        _attributes(gold, Settings(source="series", hierarchy={"levels": [["store"]],
                                                                     "id_pattern": r"(?P<store>\d+)_"}))
    with pytest.raises(ValueError, match=r"names \['store'\]: not a column"):
        _attributes(gold, Settings(source="series", hierarchy={"levels": [["store"]]}))
    with pytest.raises(ValidationError, match="must extend the level above"):
        Settings(hierarchy={"levels": [["category"], ["brand"]]})
    with pytest.raises(ValidationError, match="names no group"):
        Settings(hierarchy={"id_pattern": "[0-9]+"})


def test_the_hierarchy_is_not_part_of_the_model_fingerprint():
    assert Settings(hierarchy={"levels": [], "reconciliation": "BottomUp"}).fingerprint() == Settings().fingerprint()


def test_a_method_hierarchicalforecast_refuses_is_left_out_and_named_not_fatal():
    from mlops_assets.levels.reconcile import reconcile

    settings = Settings(source="series", hierarchy={"levels": []})
    weeks = pd.date_range("2024-01-01", periods=6, freq="W-MON")
    gold = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 6), "ds": np.tile(weeks, 2), "y": 1.0})
    hierarchy = build_hierarchy(_attributes(gold, settings), settings)
    future = pd.date_range(weeks[-1], periods=3, freq="W-MON")[1:]
    base = pd.DataFrame({"unique_id": np.repeat(["total", "a", "b"], 2), "ds": np.tile(future, 3),
                         "y_hat": [2.0, 2.0, 1.0, 1.0, 1.0, 1.0]})
    # Perfect in-sample fits: no residual covariance for mint_shrink to shrink.
    insample = pd.DataFrame({"unique_id": np.repeat(["total", "a", "b"], 6), "ds": np.tile(weeks, 3),
                             "y": [2.0] * 6 + [1.0] * 12, "y_hat": [2.0] * 6 + [1.0] * 12})
    done = reconcile(base, insample, hierarchy, ["BottomUp", "MinTrace(mint_shrink)", "MinTrace(ols)"])
    assert list(done.failed) == ["MinTrace(mint_shrink)"] and "residuals" in done.failed["MinTrace(mint_shrink)"]
    assert set(done.forecasts["method"]) == {"Base", "BottomUp", "MinTrace(ols)"}


@pytest.mark.parametrize("method", ["MinTrace(ols)", "MinTrace(wls_struct)"])
def test_non_negative_min_trace_is_hierarchicalforecasts_quadratic_program_in_sparse_form(method):
    from mlops_assets.levels import reconcile as rec

    rng = np.random.default_rng(3)
    n = 40
    attributes = pd.DataFrame({"unique_id": [f"P{i:03d}" for i in range(n)],
                               "category": [f"C{i % 3}" for i in range(n)], "brand": [f"B{i % 7}" for i in range(n)]})
    hierarchy = build_hierarchy(attributes, Settings())
    nodes = hierarchy.nodes["unique_id"].tolist()
    s = hierarchy.summing_matrix().set_index("unique_id").to_numpy()
    # Small series beside large ones, groups off their sums: the unconstrained solution goes below 0.
    y = s @ rng.choice([0.0, 0.5, 20.0], size=(n, 4)) * rng.uniform(0.7, 1.3, (len(nodes), 4))
    base = pd.DataFrame(y, index=nodes, columns=WEEKS).stack().rename("y_hat").rename_axis(["unique_id", "ds"])
    base = base.reset_index()
    ours = rec.reconcile(base, None, hierarchy, [method], nonnegative=True).forecasts
    ours = ours[ours["method"] == method].set_index(["unique_id", "ds"])["y_hat"].sort_index()
    unconstrained = rec.reconcile(base, None, hierarchy, [method]).forecasts
    assert (unconstrained.loc[unconstrained["method"] == method, "y_hat"] < -1e-6).any()
    wide, point = rec._in_one_call(base.rename(columns={"y_hat": rec.BASE}), None, hierarchy.tags(),
                                   hierarchy.summing_matrix(), [method], None, True)[method]
    theirs = wide.set_index(["unique_id", "ds"])[point].reindex(ours.index)
    assert (ours >= 0).all()
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-4, atol=1e-3)
