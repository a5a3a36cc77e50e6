"""The sample generator: deterministic, and carrying the patterns a forecaster must cope with."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.sample_data import (
    DEFAULT_END,
    DEFECT_KINDS,
    generate_sample,
    inject_defect,
    main,
    write_new_week,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_sample(tmp_path_factory.mktemp("landing"))


@pytest.fixture(scope="module")
def tables(sample: dict[str, Path]) -> dict[str, pd.DataFrame]:
    dates = {"sales_orders": ["order_date"], "products": ["launch_date", "discontinued_date"],
             "promotions": ["start_date", "end_date"], "customers": []}
    return {t: pd.read_csv(p, dtype={"customer_id": str}, keep_default_na=True, parse_dates=dates[t])
            for t, p in sample.items()}


def test_files_are_written_where_the_landing_sensor_looks(sample: dict[str, Path]) -> None:
    assert sorted(sample) == ["customers", "products", "promotions", "sales_orders"]
    assert sample["sales_orders"].name == "sales_orders_2023-10-02_2026-09-27.csv"
    for table, path in sample.items():
        assert path.parent.name == table
        assert not list(path.parent.glob("*.tmp"))


def test_same_seed_same_files_other_seed_differs(sample: dict[str, Path], tmp_path: Path) -> None:
    again = generate_sample(tmp_path / "a")
    other = generate_sample(tmp_path / "b", seed=7)
    for table in sample:
        assert again[table].read_bytes() == sample[table].read_bytes()
    assert other["sales_orders"].read_bytes() != sample["sales_orders"].read_bytes()


def test_rewriting_identical_content_leaves_the_files_untouched(tmp_path: Path) -> None:
    first = generate_sample(tmp_path, n_products=12, n_customers=5)
    stamps = {t: p.stat().st_mtime_ns for t, p in first.items()}
    second = generate_sample(tmp_path, n_products=12, n_customers=5)
    assert {t: p.stat().st_mtime_ns for t, p in second.items()} == stamps


def test_shape_and_keys(tables: dict[str, pd.DataFrame]) -> None:
    sales, products, customers = tables["sales_orders"], tables["products"], tables["customers"]
    assert list(sales.columns) == ["order_id", "order_date", "customer_id", "product_id", "quantity",
                                   "unit_price"]
    assert list(products.columns) == ["product_id", "product_name", "brand", "category", "launch_date",
                                      "discontinued_date"]
    assert list(customers.columns) == ["customer_id", "customer_name", "channel", "region"]
    assert len(products) == 60 and products["product_id"].is_unique
    assert len(customers) == 20 and customers["customer_id"].is_unique
    assert set(customers["channel"]) == {"Retail", "Wholesale", "Foodservice", "Online"}
    assert 60_000 <= len(sales) <= 150_000
    assert not sales.duplicated(["order_id", "product_id"]).any()
    assert sales["order_id"].str.fullmatch(r"SO-\d{6}").all()
    assert sales["order_date"].min() == pd.Timestamp("2023-10-02")
    assert sales["order_date"].max() <= pd.Timestamp("2026-09-27")
    assert set(sales["product_id"]) == set(products["product_id"])
    assert set(sales["customer_id"]) <= set(customers["customer_id"])
    assert (sales["unit_price"] >= 0).all()
    assert products["product_name"].str.contains("Etorki").any()
    categories = {"Hard cheese", "Soft cheese", "Blue cheese", "Butter", "Yogurt", "Cream"}
    assert categories <= set(products["category"])


def test_launched_late_and_discontinued_products(tables: dict[str, pd.DataFrame]) -> None:
    sales, products = tables["sales_orders"], tables["products"]
    end = pd.Timestamp(DEFAULT_END)
    late = products[products["launch_date"] > end - pd.Timedelta(days=183)]
    stopped = products[products["discontinued_date"].notna()]
    assert len(late) == 5 and len(stopped) == 3
    first_sale = sales.groupby("product_id")["order_date"].min()
    assert (first_sale[late["product_id"]].to_numpy() >= late["launch_date"].to_numpy()).all()
    last_sale = sales.groupby("product_id")["order_date"].max()
    assert (last_sale[stopped["product_id"]].to_numpy() < stopped["discontinued_date"].to_numpy()).all()


def test_returns_are_few_negative_lines(tables: dict[str, pd.DataFrame]) -> None:
    quantity = tables["sales_orders"]["quantity"]
    returns = (quantity < 0).sum()
    assert 50 <= returns <= 0.01 * len(quantity)
    assert quantity.sum() > 0


def _weekly(sales: pd.DataFrame) -> pd.DataFrame:
    week = sales["order_date"] - pd.to_timedelta(sales["order_date"].dt.dayofweek, unit="D")
    return sales.assign(week=week).pivot_table(index="week", columns="product_id", values="quantity",
                                               aggfunc="sum", fill_value=0)


def test_christmas_peak(tables: dict[str, pd.DataFrame]) -> None:
    total = _weekly(tables["sales_orders"]).sum(axis=1)
    december = total[total.index.month == 12].mean()
    assert december > 1.3 * total.mean()


def test_niche_products_have_many_zero_weeks(tables: dict[str, pd.DataFrame]) -> None:
    products = tables["products"]
    full_history = products.loc[products["launch_date"].isna() | (products["launch_date"] < "2023-01-01")
                                & products["discontinued_date"].isna(), "product_id"]
    weekly = _weekly(tables["sales_orders"]).reindex(columns=full_history, fill_value=0)
    zero_share = (weekly == 0).mean()
    assert (zero_share > 0.4).sum() >= 3
    assert (zero_share < 0.1).sum() >= 30


def test_promotions_lift_sales_and_lower_prices(tables: dict[str, pd.DataFrame]) -> None:
    sales, promos = tables["sales_orders"], tables["promotions"]
    assert promos["promotion_id"].is_unique and promos["discount_pct"].between(0, 100).all()
    assert (promos["end_date"] >= promos["start_date"]).all()
    assert promos["customer_id"].isna().any() and promos["customer_id"].notna().any()
    daily = sales.groupby(["product_id", "order_date"])["quantity"].sum()
    ratios = []
    for promo in promos[promos["customer_id"].isna() & (promos["end_date"] < "2026-09-27")].itertuples():
        units = daily.get(promo.product_id, pd.Series(dtype=float))
        during = units[promo.start_date:promo.end_date].sum() / ((promo.end_date - promo.start_date).days + 1)
        window = pd.Timedelta(days=56)
        before = units[promo.start_date - window:promo.start_date - pd.Timedelta(days=1)].sum() / 56
        if before > 0:
            ratios.append(during / before)
    assert len(ratios) >= 20
    assert np.median(ratios) > 1.3
    promo = promos[promos["customer_id"].isna()].iloc[0]
    lines = sales[(sales["product_id"] == promo["product_id"])]
    in_promo = lines["order_date"].between(promo["start_date"], promo["end_date"])
    assert lines.loc[in_promo, "unit_price"].mean() < lines.loc[~in_promo, "unit_price"].mean()


def test_write_new_week(sample: dict[str, Path], tables: dict[str, pd.DataFrame]) -> None:
    landing = sample["sales_orders"].parents[1]
    monday = DEFAULT_END + timedelta(days=1)
    path = write_new_week(landing, monday)
    assert path.parent == sample["sales_orders"].parent
    assert sorted(p.name for p in path.parent.glob("*.csv"))[-1] == path.name
    week = pd.read_csv(path, parse_dates=["order_date"])
    days = set(week["order_date"].dt.date)
    week_days = [monday + timedelta(days=i) for i in range(7)]
    assert set(week_days[:6]) <= days <= set(week_days)  # few orders on Sundays: one may have none
    assert not set(week["order_id"]) & set(tables["sales_orders"]["order_id"])
    assert not week.duplicated(["order_id", "product_id"]).any()
    assert set(week["product_id"]) <= set(tables["products"]["product_id"])
    assert set(week["customer_id"]) <= set(tables["customers"]["customer_id"])
    assert 200 < len(week) < 2_000
    assert write_new_week(landing, monday).read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="Monday"):
        write_new_week(landing, date(2026, 9, 29))


def test_inject_defect_writes_each_kind(tmp_path: Path) -> None:
    paths = [inject_defect(tmp_path, kind) for kind in DEFECT_KINDS]
    assert all(p.parent == tmp_path / "sales_orders" and p.suffix == ".csv" for p in paths)
    assert len(set(paths)) == len(DEFECT_KINDS)
    assert (tmp_path / "sales_orders" / "sales_orders_defect_empty_file.csv").stat().st_size == 0
    assert (tmp_path / "sales_orders" / "sales_orders_defect_not_csv.csv").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="unknown defect kind"):
        inject_defect(tmp_path, "typo")


def test_main_writes_the_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--landing", str(tmp_path), "--products", "10", "--customers", "4", "--seed", "3"])
    assert "sales_orders:" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "products" / "products.csv")) == 10
