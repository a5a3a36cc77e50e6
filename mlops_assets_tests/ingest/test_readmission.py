"""Rows rejected for an id unknown then are taken back once the master data names it."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.warehouse import read_table
from mlops_assets_tests.ingest.raw_runs import READMITTED, ingest

HEADER = "order_id,order_date,customer_id,product_id,quantity,unit_price\n"
MONDAY, TUESDAY = datetime(2026, 11, 2, 9), datetime(2026, 11, 3, 9)


def _run(root: Path, products: set[str], now: datetime) -> dict[str, pd.DataFrame]:
    db = root / "warehouse.duckdb"
    result = ingest(root, db, "sales_orders", known_ids={"product_id": products, "customer_id": {"C1"}},
                    today=date(2026, 11, 3), now=now)
    with duckdb.connect(str(db)) as con:
        log = read_table(con, READMITTED)
    return {"table": result.table, "rejected": result.rejected, "new": log[log["readmitted_at"] == pd.Timestamp(now)],
            "count": result.readmitted}


def test_an_order_line_for_a_product_that_arrives_later_is_taken_back_once(tmp_path: Path) -> None:
    folder = tmp_path / "sales_orders"
    folder.mkdir()
    (folder / "w44.csv").write_text(HEADER + "SO-1,2026-10-26,C1,P1,2,3\n"
                                    "SO-2,2026-10-27,C1,P-NEW,5,4\n"      # only fault: P-NEW not known yet
                                    "SO-3,2026-10-27,C1,P-NEW,abc,4\n"    # a second fault: stays out
                                    "SO-4,2026-10-27,C9,P-NEW,1,4\n")     # C9 is still unknown: stays out
    monday = _run(tmp_path, {"P1"}, MONDAY)
    assert monday["table"]["order_id"].tolist() == ["SO-1"]
    assert sorted(monday["rejected"]["source_row"].unique()) == [3, 4, 5]

    tuesday = _run(tmp_path, {"P1", "P-NEW"}, TUESDAY)
    assert tuesday["table"]["order_id"].tolist() == ["SO-1", "SO-2"] and tuesday["count"] == 1
    back = tuesday["table"].set_index("order_id").loc["SO-2"]
    assert (back["source_file"], back["source_row"], back["quantity"]) == ("sales_orders/w44.csv", 3, 5.0)
    assert back["ingested_at"] == pd.Timestamp(MONDAY)  # it keeps the time it arrived
    assert tuesday["new"][["source_file", "source_row"]].values.tolist() == [["sales_orders/w44.csv", 3]]
    assert tuesday["new"]["readmitted_at"].tolist() == [pd.Timestamp(TUESDAY)]

    again = _run(tmp_path, {"P1", "P-NEW"}, datetime(2026, 11, 4, 9))
    assert again["new"].empty and again["table"].equals(tuesday["table"])


def test_a_later_correction_of_the_same_line_wins_over_the_row_taken_back(tmp_path: Path) -> None:
    folder = tmp_path / "sales_orders"
    folder.mkdir()
    (folder / "a.csv").write_text(HEADER + "SO-2,2026-10-27,C1,P-NEW,5,4\n")
    _run(tmp_path, {"P1"}, MONDAY)
    (folder / "b.csv").write_text(HEADER + "SO-2,2026-10-27,C1,P-NEW,7,4\n")
    tuesday = _run(tmp_path, {"P-NEW"}, TUESDAY)
    assert tuesday["table"][["order_id", "quantity", "source_file"]].values.tolist() == [
        ["SO-2", 7.0, "sales_orders/b.csv"]]
