"""Bad landing files through the real raw assets: good rows kept, bad rows quarantined, nothing lost."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest

from mlops_assets.sample_data import DEFECT_BAD_ROWS, DEFECT_GOOD_ROWS, FILE_LEVEL_DEFECTS, inject_defect
from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import materialize_all

pytestmark = pytest.mark.e2e
RAW = "raw/products raw/customers raw/promotions raw/sales_orders raw/series"
ROW_DEFECTS = ["wrong_types", "unknown_product", "duplicate_lines", "negative_price", "future_dates"]


def _raw_selection() -> dg.AssetSelection:
    return dg.AssetSelection.assets(*[dg.AssetKey(k.split("/")) for k in RAW.split()])


def _tables(data_dir) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(DataPaths(data_dir).warehouse), read_only=True) as con:
        return {t: con.execute(f"select * from raw.{t} order by all").df()
                for t in ("sales_orders", "rejected_rows", "ingested_files")}


@pytest.fixture()
def landed(small_sample, tmp_path):
    shutil.copytree(small_sample / "landing", tmp_path / "landing")
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_all(tmp_path, instance=instance, selection=_raw_selection()).success
    return tmp_path, instance


def test_row_defects_are_quarantined_and_good_rows_kept(landed):
    data_dir, instance = landed
    before = _tables(data_dir)
    for kind in ROW_DEFECTS:
        inject_defect(data_dir / "landing", kind, seed=7, n_products=20, n_customers=8)
    result = materialize_all(data_dir, instance=instance, selection=_raw_selection())
    assert result.success
    after = _tables(data_dir)
    rejected = after["rejected_rows"]
    by_file = rejected.groupby("source_file")["source_row"].nunique()
    for kind in ROW_DEFECTS:
        assert by_file[f"sales_orders/sales_orders_defect_{kind}.csv"] == DEFECT_BAD_ROWS
    # every fifth line is the bad one: lines 6, 11, 16, 21, 26 (the header is line 1)
    assert sorted(rejected["source_row"].unique()) == [6, 11, 16, 21, 26]
    assert rejected["reason"].str.len().gt(10).all()
    wrong = rejected[rejected["source_file"].str.endswith("wrong_types.csv")]
    assert {"quantity", "order_date"} <= set(wrong["column_name"])
    assert rejected[rejected["source_file"].str.endswith("unknown_product.csv")]["reason"].str.contains("P9").all()
    added = len(after["sales_orders"]) - len(before["sales_orders"])
    # duplicates repeat good lines: their first copies are new order lines too
    assert added == DEFECT_GOOD_ROWS * len(ROW_DEFECTS)
    checks = {c.asset_key.to_user_string(): c.passed for c in result.get_asset_check_evaluations()}
    assert checks["raw/sales_orders"] is True

    rerun = materialize_all(data_dir, instance=instance, selection=_raw_selection())
    assert rerun.success
    again = _tables(data_dir)
    assert len(again["sales_orders"]) == len(after["sales_orders"])
    assert len(again["rejected_rows"]) == len(rejected)


@pytest.mark.parametrize("kind", sorted(FILE_LEVEL_DEFECTS))
def test_unreadable_file_fails_the_run_and_changes_nothing(landed, kind):
    data_dir, instance = landed
    before = _tables(data_dir)
    inject_defect(data_dir / "landing", kind, seed=7, n_products=20, n_customers=8)
    # a good new file in the same batch must not land either: the batch is all or nothing
    extra = data_dir / "landing" / "sales_orders" / "zz_more.csv"
    before["sales_orders"].head(3).assign(order_id=lambda d: d["order_id"] + "-X")[
        ["order_id", "order_date", "customer_id", "product_id", "quantity", "unit_price"]
    ].to_csv(extra, index=False)
    result = materialize_all(data_dir, instance=instance, selection=_raw_selection(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.cause or failure.event_specific_data.error)
    assert f"sales_orders_defect_{kind}.csv" in message
    after = _tables(data_dir)
    for table in before:
        pd.testing.assert_frame_equal(after[table], before[table])
