"""The raw layer under Dagster at the edges of its input: late master data, huge fields, stray files."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster._serdes import serialize_value

from mlops_assets.wiring.metadata import preview
from mlops_assets_tests.conftest import materialize_all

RAW = dg.AssetSelection.groups("raw")
ORDERS = "order_id,order_date,customer_id,product_id,quantity,unit_price\n"
PRODUCTS = "product_id,product_name,brand,category\n"


def _put(data_dir: Path, relative: str, text: str, stamp: float) -> None:
    path = data_dir / "landing" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (stamp, stamp))


def _tables(data_dir: Path, *names: str) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return {n: con.execute(f"select * from raw.{n}").df() for n in names}


def _checks(result: dg.ExecuteInJobResult) -> dict[str, bool]:
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}


@pytest.mark.e2e
def test_late_master_data_takes_back_quarantined_lines_and_big_fields_stay_out_of_events(tmp_path: Path) -> None:
    huge = "x" * 2_000_000
    _put(tmp_path, "products/p.csv", PRODUCTS + "P1,Comte,Jura,Hard cheese\n", 1_700_000_000)
    _put(tmp_path, "customers/c.csv", "customer_id,customer_name,channel,region\nC1,Shop,Retail,Est\n"
         f"C2,{huge},Online,Ouest\n", 1_700_000_000)
    _put(tmp_path, "sales_orders/w1.csv", ORDERS + "SO-1,2024-01-01,C1,P1,2,3\nSO-2,2024-01-02,C1,P2,5,4\n",
         1_700_000_000)
    _put(tmp_path, "promotions/pr.csv", "promotion_id,product_id,customer_id,start_date,end_date,discount_pct\n"
         "PR-1,P1,,2024-01-01,2024-01-07,10\nPR-2,P1,C7,2024-01-01,2024-01-07,10\n", 1_700_000_000)
    _put(tmp_path, "sales_orders/notes.txt", "not data", 1_700_000_000)

    first = materialize_all(tmp_path, selection=RAW)
    assert all(_checks(first).values()) and len(_checks(first)) == 5
    tables = _tables(tmp_path, "sales_orders", "customers", "promotions", "rejected_rows")
    assert tables["sales_orders"]["order_id"].tolist() == ["SO-1"]
    assert tables["customers"]["customer_id"].tolist() == ["C1"]
    assert tables["promotions"]["promotion_id"].tolist() == ["PR-1"]
    assert sorted(tables["rejected_rows"]["reason"]) == [
        "customer_id 'C7' is unknown (not in raw.customers)",
        "customer_name is 2,000,000 characters long (limit 1,000)",
        "product_id 'P2' is unknown (not in raw.products)",
    ]
    # The 2 MB cell reaches neither the event log nor the quarantine in full.
    largest = max(len(serialize_value(e)) for e in first.all_events)
    assert largest < 100_000, largest
    assert tables["rejected_rows"]["raw_record"].str.len().max() < 2_000
    orders_metadata = first.asset_materializations_for_node("raw__sales_orders")[0].metadata
    assert orders_metadata["ignored_files"].value == [
        "sales_orders/notes.txt: not a landing file type: read are .csv.gz, .tsv.gz, .parquet, .csv, .tsv"]

    # The product master catches up: the order line rejected for P2 comes back, once.
    _put(tmp_path, "products/p2.csv", PRODUCTS + "P2,Brie,Meaux,Soft cheese\n", 1_700_000_100)
    second = materialize_all(tmp_path, selection=RAW)
    assert all(_checks(second).values())
    after = _tables(tmp_path, "sales_orders", "readmitted_rows", "rejected_rows")
    assert after["sales_orders"][["order_id", "source_row"]].values.tolist() == [["SO-1", 2], ["SO-2", 3]]
    assert after["readmitted_rows"][["table_name", "source_file", "source_row"]].values.tolist() == [
        ["sales_orders", "sales_orders/w1.csv", 3]]
    assert len(after["rejected_rows"]) == 3  # the quarantine stays the log of what was rejected when
    assert second.asset_materializations_for_node("raw__sales_orders")[0].metadata["readmitted_rows"].value == 1
    materialize_all(tmp_path, selection=RAW)
    assert len(_tables(tmp_path, "readmitted_rows")["readmitted_rows"]) == 1


def test_a_table_preview_cuts_long_cells_so_any_table_event_stays_small() -> None:
    frame = pd.DataFrame({"unique_id": ["A", "B"], "note": ["y" * 50_000, None], "y": [1.0, 2.0]})
    text = preview(frame).value
    assert len(text) < 1_000 and "y" * 200 + "..." in text and "y" * 201 not in text
