"""serving.sales_overall_by_level on a small stored gold and a hand-made forecasting.forecasts_by_level: every
node's actuals add up to its series' (an excluded series included), its forecast is the default method's rows,
built in parts, with a PNG per group named after the node."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.levels.actuals import group_actuals, stored_hierarchy
from mlops_assets.serving.overall_by_level import build_overall_by_level
from mlops_assets.settings import Settings

SETTINGS = Settings(hierarchy={"levels": [["category"], ["category", "brand"]]})
WEEKS = pd.date_range("2024-01-01", periods=6, freq="W-MON")
FUTURE = pd.date_range(WEEKS[-1], periods=3, freq="W-MON")[1:]
# unique_id -> category, brand, weekly sales; P4 is in gold.series_excluded (too short), still in its parents.
SERIES = {"P1": ("Cheese", "A", [1, 2, 3, 4, 5, 6]), "P2": ("Cheese", "A", [10, 0, 10, 0, 10, 0]),
          "P3": ("Cheese", "B", [100, 100, 100, 100, 100, 100]), "P4": ("Cream", "C", [7, 8])}
GROUPS = {"total": ["P1", "P2", "P3", "P4"], "category/Cheese": ["P1", "P2", "P3"], "category/Cream": ["P4"],
          "category/Cheese/brand/A": ["P1", "P2"], "category/Cheese/brand/B": ["P3"], "category/Cream/brand/C": ["P4"]}
GOLD = "gold.sales_data_for_forecast"
FORECASTS = "forecasting.forecasts_by_level"


def gold_rows() -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"unique_id": uid, "ds": WEEKS[-len(y):], "y": np.array(y, float),
                                    "category": cat, "brand": brand, "imputed": False})
                      for uid, (cat, brand, y) in SERIES.items()], ignore_index=True)


def forecasts_by_level() -> pd.DataFrame:
    """Base (not default) and BottomUp (default) rows of every node: the groups the sums of their series."""
    series = {uid: np.array([float(i + 1), float(i + 2)]) for i, uid in enumerate(SERIES)}
    series["P4"] = np.zeros(2)
    levels = {"total": "total", "category/Cheese": "category", "category/Cream": "category"}
    rows = []
    for node, y_hat in [*series.items(), *((g, sum(series[s] for s in members)) for g, members in GROUPS.items())]:
        level = levels.get(node, "category/brand" if "/brand/" in node else "product")
        for method, default, shift in (("Base", False, 0.5), ("BottomUp", True, 0.0)):
            rows.append(pd.DataFrame({
                "level": level, "unique_id": node, "ds": FUTURE, "method": method, "y_hat": y_hat + shift,
                "lo_80": y_hat + shift - 1, "hi_80": y_hat + shift + 1, "lo_95": y_hat + shift - 2,
                "hi_95": y_hat + shift + 2, "base_model": "not forecast" if node in ("P4", "category/Cream",
                                                                                      "category/Cream/brand/C")
                else "Naive", "is_default": default}))
    return pd.concat(rows, ignore_index=True)


def stored(gold: pd.DataFrame, forecasts: pd.DataFrame | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for schema in ("gold", "forecasting"):
        con.execute(f"create schema {schema}")
    con.register("g", gold)
    con.execute(f"create table {GOLD} as select * from g")
    con.register("f", forecasts_by_level() if forecasts is None else forecasts)
    con.execute(f"create table {FORECASTS} as select * from f")
    return con


def test_every_group_sums_all_its_series_an_excluded_one_too():
    gold = gold_rows()
    with stored(gold) as con:
        hierarchy = stored_hierarchy(con, GOLD, SETTINGS)
        parts = list(group_actuals(con, GOLD, hierarchy, "W-MON"))
    assert [sorted(part["unique_id"].unique()) for part in parts] == [
        ["total"], ["category/Cheese", "category/Cheese/brand/A", "category/Cheese/brand/B"],
        ["category/Cream", "category/Cream/brand/C"]]  # the total, then one bucket per category
    actuals = pd.concat(parts).set_index(["unique_id", "ds"])
    for node, members in GROUPS.items():
        expected = gold[gold["unique_id"].isin(members)].groupby("ds")["y"].sum()
        got = actuals.loc[node, "y"]
        pd.testing.assert_series_equal(got, expected.rename("y"), check_index_type=False, check_names=False)
    assert actuals.loc[("category/Cream", WEEKS[-1]), "y"] == 8  # P4, excluded from forecasting, counts
    assert actuals.loc[("total", WEEKS[0]), "y"] == 1 + 10 + 100
    assert set(actuals["level"]) == {"total", "category", "category/brand"}
    assert not actuals["imputed"].any()


def test_a_group_period_with_an_interpolated_series_is_flagged_imputed():
    gold = gold_rows()
    gold.loc[(gold["unique_id"] == "P3") & (gold["ds"] == WEEKS[2]), "imputed"] = True
    with stored(gold) as con:
        hierarchy = stored_hierarchy(con, GOLD, SETTINGS)
        actuals = pd.concat(group_actuals(con, GOLD, hierarchy, "W-MON"))
    flagged = actuals.loc[actuals["imputed"], ["unique_id", "ds"]]
    assert sorted(flagged["unique_id"]) == ["category/Cheese", "category/Cheese/brand/B", "total"]
    assert set(flagged["ds"]) == {WEEKS[2]}


def test_the_table_holds_every_node_with_its_actuals_and_default_forecast(tmp_path):
    gold, forecasts = gold_rows(), forecasts_by_level()
    with stored(gold, forecasts) as con:
        built = build_overall_by_level(con, GOLD, FORECASTS, SETTINGS, tmp_path / "parts", tmp_path / "plots",
                                       range_series=2, max_series=10)
        table = con.execute(f"select * from '{built.pattern}' order by unique_id, ds, origin").df()
    # Three group parts (the total, then one per category) and two ranges of two series.
    assert sorted(p.name for p in (tmp_path / "parts").glob("*.parquet")) == [
        "groups-00000.parquet", "groups-00001.parquet", "groups-00002.parquet", "series-00000.parquet",
        "series-00001.parquet"]
    assert built.ranges == 2 and built.groups == 6
    levels = table.groupby("unique_id")["level"].first()
    assert levels["total"] == "total" and levels["category/Cream"] == "category"
    assert levels["category/Cheese/brand/A"] == "category/brand" and levels["P4"] == "product"

    train = table[table["origin"] == "Train"].set_index(["unique_id", "ds"])["sales"]
    for node, members in GROUPS.items():
        expected = gold[gold["unique_id"].isin(members)].groupby("ds")["y"].sum()
        np.testing.assert_array_equal(train.loc[node].to_numpy(), expected.to_numpy())
    for uid in SERIES:
        np.testing.assert_array_equal(train.loc[uid].to_numpy(), gold.loc[gold["unique_id"] == uid, "y"].to_numpy())

    predict = table[table["origin"] == "Predict"].drop(columns=["origin", "imputed"])
    default = forecasts[forecasts["is_default"]].rename(columns={"y_hat": "sales", "base_model": "model"})
    default = default.drop(columns="is_default")[predict.columns]
    pd.testing.assert_frame_equal(predict.sort_values(["unique_id", "ds"]).reset_index(drop=True),
                                  default.sort_values(["unique_id", "ds"]).reset_index(drop=True),
                                  check_dtype=False)
    assert (predict["method"] == "BottomUp").all()


def test_each_group_gets_a_png_named_after_its_node_and_the_series_none(tmp_path):
    with stored(gold_rows()) as con:
        built = build_overall_by_level(con, GOLD, FORECASTS, SETTINGS, tmp_path / "parts", tmp_path / "plots",
                                       range_series=10, max_series=3)
    names = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    # The three biggest groups by units sold: the total, Cheese, and brand B of Cheese.
    assert names == ["category_Cheese.png", "category_Cheese_brand_B.png", "total.png"]
    assert built.plots.unplotted == 3
    assert set(built.top_rows["unique_id"]) == {"total", "category/Cheese", "category/Cheese/brand/B",
                                                "category/Cheese/brand/A"}


def test_forecasts_of_nodes_the_hierarchy_lacks_are_a_clear_error(tmp_path):
    forecasts = forecasts_by_level()
    forecasts.loc[forecasts["unique_id"] == "category/Cream", "unique_id"] = "category/Butter"
    with stored(gold_rows(), forecasts) as con, pytest.raises(ValueError, match="category/Butter.*rematerialize"):
        build_overall_by_level(con, GOLD, FORECASTS, SETTINGS, tmp_path / "parts", tmp_path / "plots", 10, 10)


def test_the_level_tables_are_wired_only_when_the_settings_declare_a_hierarchy(tmp_path, monkeypatch):
    from mlops_assets.catalog import FORECAST_ACCURACY_BY_LEVEL, FORECAST_HISTORY_BY_LEVEL, SALES_OVERALL_BY_LEVEL
    from mlops_assets.defs.levels_output import levels_output
    from mlops_assets.settings import SETTINGS_ENV
    from mlops_assets.wiring.resources import build_resources
    from mlops_assets_tests.conftest import with_levels

    wanted = {"/".join(t.key) for t in (SALES_OVERALL_BY_LEVEL, FORECAST_HISTORY_BY_LEVEL, FORECAST_ACCURACY_BY_LEVEL)}
    off = tmp_path / "off.yaml"
    off.write_text("hierarchy: null\n")
    monkeypatch.setenv(SETTINGS_ENV, str(off))
    assert not levels_output().assets
    declared = tmp_path / "settings.yaml"
    declared.write_text("hierarchy: {levels: [[category]]}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(declared))
    wired = levels_output()
    assert {k.to_user_string() for a in wired.assets for k in a.keys} == wanted
    checks = {(k.asset_key.to_user_string(), k.name) for c in wired.asset_checks for k in c.check_keys}
    assert checks == {(key, "matches_contract") for key in wanted}
    # With the levels' own assets, the graph resolves: every dependency is an asset of it.
    graph = dg.Definitions(assets=with_levels(),
                           resources=build_resources(str(tmp_path), str(declared))).resolve_asset_graph()
    assert wanted <= {k.to_user_string() for k in graph.materializable_asset_keys}
    sales = graph.get(dg.AssetKey(SALES_OVERALL_BY_LEVEL.key))
    assert {k.to_user_string() for k in sales.parent_keys} == {"gold/sales_data_for_forecast",
                                                               "forecasting/forecasts_by_level"}


@pytest.mark.parametrize("broken", [False, True])
def test_the_contract_reaches_one_verdict_in_pandas_and_in_duckdb(tmp_path, broken):
    import pandera.pandas as pa

    from mlops_assets import schemas, warehouse
    from mlops_assets.schemas_sql import validate_in_duckdb

    with stored(gold_rows()) as con:
        built = build_overall_by_level(con, GOLD, FORECASTS, SETTINGS, tmp_path / "parts", tmp_path / "plots", 10, 0)
        table = con.execute(f"select * from '{built.pattern}'").df()
    if broken:  # a forecast row that does not say which reconciliation made it
        table.loc[table.index[table["origin"] == "Predict"][-1], "method"] = None
    contract = schemas.sales_overall_by_level_schema()
    try:
        contract.validate(table, lazy=True)
        in_pandas = set()
    except pa.errors.SchemaErrors as err:
        in_pandas = set(err.failure_cases["check"].astype(str))
    with duckdb.connect() as con:
        con.execute("create schema serving")
        warehouse.replace_table(con, "serving.sales_overall_by_level", table)
        count, examples = validate_in_duckdb(con, "serving.sales_overall_by_level", contract)
    in_duckdb = set(examples["check"]) if count else set()
    assert in_pandas == in_duckdb == ({"every Predict row names its reconciliation method"} if broken else set())
