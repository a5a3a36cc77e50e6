import numpy as np
import pandas as pd
import pytest

from mlops_assets.serving.overall import (
    OVERALL_COLUMNS,
    UnknownProductError,
    build_sales_overall,
    find_series,
)

NAMES = {"P001": "Etorki 200g", "P002": "Etorki 400g", "P003": "Comte 250g"}


def make_gold(customers: bool = False) -> pd.DataFrame:
    rows = []
    for product_id, name in NAMES.items():
        for week, ds in enumerate(pd.date_range("2024-01-01", periods=3, freq="W-MON")):
            row = {
                "unique_id": product_id,
                "ds": ds,
                "y": float(10 * week + len(rows)),
                "revenue": 1.0,
                "avg_unit_price": 1.0,
                "promo_share": 0.0,
                "product_id": product_id,
                "product_name": name,
                "brand": "Fromagerie",
                "category": "cheese",
            }
            if customers:
                row.update(
                    unique_id=f"{product_id}/C003",
                    customer_id="C003",
                    customer_name="Shop",
                    channel="retail",
                    region="South",
                )
            rows.append(row)
    return pd.DataFrame(rows)


def make_forecasts(unique_ids: list[str], periods: int = 2) -> pd.DataFrame:
    rows = []
    for unique_id in unique_ids:
        for h, ds in enumerate(pd.date_range("2024-01-22", periods=periods, freq="W-MON")):
            y_hat = 20.0 + h
            rows.append(
                {
                    "unique_id": unique_id,
                    "ds": ds,
                    "model": "AutoTheta",
                    "y_hat": y_hat,
                    "lo_80": y_hat - 2,
                    "hi_80": y_hat + 2,
                    "lo_95": y_hat - 4,
                    "hi_95": y_hat + 4,
                    "model_version": "7",
                }
            )
    return pd.DataFrame(rows)


def test_rows_per_origin_and_sort_order():
    overall = build_sales_overall(make_gold(), make_forecasts(["P001", "P002"]))
    assert overall["origin"].value_counts().to_dict() == {"Train": 9, "Predict": 4}
    assert overall.groupby(["unique_id", "origin"]).size().to_dict() == {
        ("P001", "Predict"): 2,
        ("P001", "Train"): 3,
        ("P002", "Predict"): 2,
        ("P002", "Train"): 3,
        ("P003", "Train"): 3,
    }
    keys = overall[["unique_id", "ds", "origin"]]
    assert keys.equals(keys.sort_values(["unique_id", "ds", "origin"]).reset_index(drop=True))
    assert not overall.duplicated(["unique_id", "ds", "origin"]).any()
    assert list(overall.columns) == [c for c in OVERALL_COLUMNS if c in overall.columns]
    assert overall["ds"].dtype == "datetime64[ns]"


def test_sales_come_from_y_and_y_hat():
    gold, forecasts = make_gold(), make_forecasts(["P001"])
    overall = build_sales_overall(gold, forecasts)
    train = overall[(overall["unique_id"] == "P001") & (overall["origin"] == "Train")]
    assert train["sales"].tolist() == gold.loc[gold["unique_id"] == "P001", "y"].tolist()
    predict = overall[overall["origin"] == "Predict"]
    assert predict["sales"].tolist() == [20.0, 21.0]
    assert predict["lo_95"].tolist() == [16.0, 17.0]
    assert predict["hi_80"].tolist() == [22.0, 23.0]
    assert predict["model"].tolist() == ["AutoTheta", "AutoTheta"]
    assert predict["model_version"].tolist() == ["7", "7"]


def test_train_rows_have_no_bounds_and_no_model():
    overall = build_sales_overall(make_gold(), make_forecasts(["P001", "P002", "P003"]))
    train = overall[overall["origin"] == "Train"]
    assert train[["lo_80", "hi_80", "lo_95", "hi_95"]].isna().all().all()
    assert train["model_version"].isna().all()
    assert train["model"].isna().all()
    assert overall.loc[overall["origin"] == "Predict", "model_version"].notna().all()


def test_attributes_carried_to_forecast_rows():
    overall = build_sales_overall(make_gold(), make_forecasts(["P002"]))
    predict = overall[overall["origin"] == "Predict"]
    assert predict["product_name"].unique().tolist() == ["Etorki 400g"]
    assert predict["product_id"].unique().tolist() == ["P002"]
    assert predict["brand"].unique().tolist() == ["Fromagerie"]
    assert "customer_id" not in overall.columns


def test_latest_attribute_wins_when_a_product_is_renamed():
    gold = make_gold()
    gold.loc[(gold["unique_id"] == "P001") & (gold["ds"] == gold["ds"].max()), "product_name"] = "Etorki 2"
    overall = build_sales_overall(gold, make_forecasts(["P001"]))
    assert overall.loc[overall["origin"] == "Predict", "product_name"].unique().tolist() == ["Etorki 2"]


def test_customer_grain_carries_customer_columns():
    overall = build_sales_overall(make_gold(customers=True), make_forecasts(["P001/C003"]))
    predict = overall[overall["origin"] == "Predict"]
    assert {"customer_id", "customer_name", "channel", "region"} <= set(overall.columns)
    assert predict[["customer_id", "region"]].drop_duplicates().values.tolist() == [["C003", "South"]]
    assert predict["product_name"].unique().tolist() == ["Etorki 200g"]


def test_explicit_attributes_and_missing_attribute():
    overall = build_sales_overall(make_gold(), make_forecasts(["P001"]), attributes=["product_name"])
    assert "brand" not in overall.columns and "product_name" in overall.columns
    with pytest.raises(ValueError, match="region"):
        build_sales_overall(make_gold(), make_forecasts(["P001"]), attributes=["region"])


def test_forecast_series_not_in_gold_is_named():
    with pytest.raises(ValueError, match="P999") as error:
        build_sales_overall(make_gold(), make_forecasts(["P001", "P999"]))
    assert "P001" not in str(error.value)


def test_no_forecasts_gives_only_train_rows():
    no_forecasts = make_forecasts(["P001"]).iloc[0:0]
    overall = build_sales_overall(make_gold(), no_forecasts)
    assert overall["origin"].unique().tolist() == ["Train"]
    assert len(overall) == 9
    assert np.isnan(overall["hi_95"]).all()


@pytest.fixture
def overall() -> pd.DataFrame:
    return build_sales_overall(make_gold(), make_forecasts(["P001", "P002", "P003"]))


def test_find_series_exact_name_any_case(overall):
    assert find_series(overall, "etorki 200G") == ["P001"]


def test_find_series_substring(overall):
    assert find_series(overall, "etorki") == ["P001", "P002"]
    assert find_series(overall, "250") == ["P003"]


def test_find_series_by_id(overall):
    assert find_series(overall, "p003") == ["P003"]


def test_find_series_customer_grain_returns_every_customer_series():
    other_customer = make_gold(customers=True)
    other_customer["unique_id"] = other_customer["unique_id"].str.replace("C003", "C004")
    other_customer["customer_id"] = "C004"
    gold = pd.concat([make_gold(customers=True), other_customer], ignore_index=True)
    overall = build_sales_overall(gold, make_forecasts(["P001/C003"]))
    assert find_series(overall, "Etorki 200g") == ["P001/C003", "P001/C004"]


def test_find_series_unknown_suggests_close_names(overall):
    with pytest.raises(UnknownProductError) as error:
        find_series(overall, "Etorky")
    assert error.value.name == "Etorky"
    assert error.value.suggestions[:2] == ["Etorki 200g", "Etorki 400g"]
    assert "Comte 250g" not in error.value.suggestions
    assert str(error.value) == 'No product named "Etorky". Closest: "Etorki 200g", "Etorki 400g".'


def test_find_series_unknown_without_close_names(overall):
    with pytest.raises(UnknownProductError, match='No product named "Zzzz"') as error:
        find_series(overall, "Zzzz")
    assert error.value.suggestions == []


def test_train_rows_say_which_values_gold_interpolated():
    gold = make_gold().assign(imputed=False)
    gold.loc[1, "imputed"] = True
    overall = build_sales_overall(gold, make_forecasts(["P001"]))
    train = overall.loc[overall["origin"] == "Train"]
    assert train["imputed"].tolist() == gold.sort_values(["unique_id", "ds"])["imputed"].tolist()
    assert not overall.loc[overall["origin"] == "Predict", "imputed"].any()
    # Gold written before the flag existed reads as all reported.
    assert not build_sales_overall(make_gold(), make_forecasts(["P001"]))["imputed"].any()
