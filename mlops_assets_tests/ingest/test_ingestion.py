"""Ingestion of one landing file: good rows kept in canonical form, every problem reported where it is."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ingest.ingestion import (
    REJECTED_COLUMNS,
    TABLES,
    IngestResult,
    LandingFileError,
    read_landing_file,
)
from mlops_assets.sample_data import (
    DEFECT_BAD_ROWS,
    DEFECT_GOOD_ROWS,
    DEFECT_KINDS,
    FILE_LEVEL_DEFECTS,
    generate_sample,
    inject_defect,
)

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 10, 30, 0)
HEADER = "order_id,order_date,customer_id,product_id,quantity,unit_price\n"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    landing = tmp_path_factory.mktemp("landing")
    return landing, generate_sample(landing)


@pytest.fixture(scope="module")
def known_ids(sample: tuple[Path, dict[str, Path]]) -> dict[str, set[str]]:
    landing, paths = sample
    products = read_landing_file(paths["products"], "products", landing_root=landing)
    customers = read_landing_file(paths["customers"], "customers", landing_root=landing)
    return {"product_id": set(products.rows["product_id"]), "customer_id": set(customers.rows["customer_id"])}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _read(path: Path, table: str = "sales_orders", **kwargs: object) -> IngestResult:
    """Files sit in <landing>/<table>/, so the landing root is two levels up."""
    return read_landing_file(path, table, landing_root=path.parents[1], today=TODAY, ingested_at=NOW,
                             **kwargs)


def test_sample_ingests_clean_with_canonical_dtypes(sample: tuple[Path, dict[str, Path]],
                                                    known_ids: dict[str, set[str]]) -> None:
    landing, paths = sample
    start = time.perf_counter()
    result = read_landing_file(paths["sales_orders"], "sales_orders", landing_root=landing,
                               known_ids=known_ids, today=TODAY, ingested_at=NOW)
    elapsed = time.perf_counter() - start
    rows = result.rows
    assert result.rejected.empty and list(result.rejected.columns) == REJECTED_COLUMNS
    assert len(rows) == len(pd.read_csv(paths["sales_orders"]))
    assert rows.dtypes.astype(str).to_dict() == {
        "order_id": "object", "order_date": "datetime64[ns]", "customer_id": "object", "product_id": "object",
        "quantity": "float64", "unit_price": "float64", "source_file": "object", "source_row": "int64",
        "ingested_at": "datetime64[ns]",
    }
    assert rows["source_file"].eq("sales_orders/sales_orders_2023-10-02_2026-09-27.csv").all()
    assert rows["ingested_at"].eq(pd.Timestamp(NOW)).all()
    assert sorted(rows["source_row"]) == list(range(2, len(rows) + 2))
    assert rows.equals(rows.sort_values(["order_id", "product_id"], ignore_index=True))
    assert elapsed < 5  # about 0.5 s on an idle 2-core machine; generous for a busy one


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_every_defect_kind(kind: str, tmp_path: Path, known_ids: dict[str, set[str]]) -> None:
    path = inject_defect(tmp_path, kind)
    if kind in FILE_LEVEL_DEFECTS:
        with pytest.raises(LandingFileError, match=path.name):
            _read(path, known_ids=known_ids)
        return
    result = _read(path, known_ids=known_ids)
    assert len(result.rows) == DEFECT_GOOD_ROWS
    assert not result.rows["order_id"].str.contains("bad").any()
    rejected = result.rejected
    assert len(rejected) == DEFECT_BAD_ROWS
    assert rejected["source_row"].tolist() == [6, 11, 16, 21, 26]  # every fifth data line
    assert rejected["table_name"].eq("sales_orders").all()
    assert rejected["source_file"].eq(f"sales_orders/{path.name}").all()
    assert rejected["rejected_at"].eq(pd.Timestamp(NOW)).all()
    expected_column = {"wrong_types": ["quantity"] * 3 + ["order_date"] * 2,
                       "unknown_product": ["product_id"] * 5, "duplicate_lines": [None] * 5,
                       "negative_price": ["unit_price"] * 5,
                       "future_dates": ["order_date"] * 5}[kind]
    assert rejected["column_name"].tolist() == expected_column
    raw = json.loads(rejected["raw_record"].iloc[0])
    assert set(raw) == {"order_id", "order_date", "customer_id", "product_id", "quantity", "unit_price"}
    assert all(isinstance(v, str) for v in raw.values())


def test_defect_reasons_name_the_value(tmp_path: Path, known_ids: dict[str, set[str]]) -> None:
    kinds = ("wrong_types", "unknown_product", "duplicate_lines", "negative_price", "future_dates")
    reasons = {kind: _read(inject_defect(tmp_path, kind), known_ids=known_ids).rejected["reason"].tolist()
               for kind in kinds}
    assert reasons["wrong_types"][0] == "quantity 'abc' is not a number"
    assert reasons["wrong_types"][3].startswith("order_date 'not-a-date' is not a date")
    assert reasons["wrong_types"][4].startswith("order_date '2026-02-30' is not a date")
    assert reasons["unknown_product"][0] == "product_id 'P900' is unknown (not in raw.products)"
    assert reasons["duplicate_lines"][:2] == ["duplicate of line 2 (same order_id, product_id)",
                                              "duplicate of line 3 (same order_id, product_id)"]
    assert reasons["negative_price"][0].endswith("is negative") and " -" in reasons["negative_price"][0]
    assert reasons["future_dates"][0] == "order_date 2099-01-15 is in the future (today is 2026-11-22)"


def test_defects_fit_a_smaller_sample(tmp_path: Path) -> None:
    paths = generate_sample(tmp_path, n_products=20, n_customers=8, seed=7)
    known = {t: set(pd.read_csv(paths[f"{t.removesuffix('_id')}s"], dtype=str)[t])
             for t in ("product_id", "customer_id")}
    path = inject_defect(tmp_path, "negative_price", seed=7, n_products=20, n_customers=8)
    result = _read(path, known_ids=known)
    assert len(result.rows) == DEFECT_GOOD_ROWS
    assert result.rejected["column_name"].tolist() == ["unit_price"] * DEFECT_BAD_ROWS


def test_unknown_ids_are_kept_when_no_reference_is_known(tmp_path: Path) -> None:
    path = inject_defect(tmp_path, "unknown_product")
    assert len(_read(path).rows) == DEFECT_GOOD_ROWS + DEFECT_BAD_ROWS
    assert len(_read(path, known_ids={"product_id": set()}).rows) == DEFECT_GOOD_ROWS + DEFECT_BAD_ROWS


def test_missing_column_message_says_what_to_do(tmp_path: Path) -> None:
    path = inject_defect(tmp_path, "missing_column")
    with pytest.raises(LandingFileError) as error:
        _read(path)
    message = str(error.value)
    assert str(path) in message and "'quantity' is missing" in message
    assert "column_mapping.sales_orders" in message and "unit_price" in message


def test_wrong_delimiter_is_refused_with_a_hint(tmp_path: Path) -> None:
    text = HEADER.replace(",", ";") + "A;2024-01-01;C1;P1;1;2\n"
    path = _write(tmp_path / "sales_orders" / "semi.csv", text)
    with pytest.raises(LandingFileError, match="looks semicolon-separated"):
        _read(path)


def test_a_comma_separated_tsv_is_named_as_such(tmp_path: Path) -> None:
    path = _write(tmp_path / "sales_orders" / "orders.tsv", HEADER + "A,2024-01-01,C1,P1,1,2\n")
    with pytest.raises(LandingFileError) as error:
        _read(path)
    assert "looks comma-separated (',') but a .tsv file is read tab-separated: rename it to .csv" in str(error.value)


def test_a_line_with_an_extra_field_is_quarantined_and_the_others_kept(tmp_path: Path) -> None:
    text = HEADER + "A,2024-01-01,C1,P1,1,2\nB,2024-01-01,C1,P1,1,2,9\nC,2024-01-01,C1,P1,1,2\n"
    result = _read(_write(tmp_path / "sales_orders" / "ragged.csv", text))
    assert result.rows["order_id"].tolist() == ["A", "C"] and result.rows["source_row"].tolist() == [2, 4]
    assert result.rejected[["source_row", "column_name", "reason"]].values.tolist() == [
        [3, None, "more fields than the 6 of the header (extra: 9); a separator inside an unquoted value?"]]
    assert json.loads(result.rejected["raw_record"].iloc[0])["order_id"] == "B"


def test_source_row_is_the_line_a_record_starts_on_after_a_quoted_line_break(tmp_path: Path) -> None:
    text = ("product_id,product_name,brand,category,launch_date\n"
            'P1,"Comte\r\n18 months",Jura,Hard cheese,2020-01-01\n'
            "P2,Brie,Meaux,Soft cheese,someday\n"
            'P3,"Tomme ""de\nSavoie""",Savoie,Hard cheese,\n'
            "P4,Morbier,Jura,Hard cheese,2021-13-01\n")
    result = _read(_write(tmp_path / "products" / "p.csv", text), "products")
    assert result.rows[["product_id", "source_row"]].values.tolist() == [["P1", 2], ["P3", 5]]
    assert result.rows["product_name"].tolist() == ["Comte\r\n18 months", 'Tomme "de\nSavoie"']
    assert result.rejected[["source_row", "column_name"]].values.tolist() == [[4, "launch_date"], [7, "launch_date"]]


def test_a_quote_never_closed_refuses_the_file_with_its_line(tmp_path: Path) -> None:
    text = HEADER + "A,2024-01-01,C1,P1,1,2\nB,2024-01-01,\"C1,P1,1,2\nC,2024-01-01,C1,P1,1,2\n"
    with pytest.raises(LandingFileError, match="line 3: a quote opened on this line is never closed"):
        _read(_write(tmp_path / "sales_orders" / "open.csv", text))


def test_implausible_numbers_are_quarantined_with_the_limit(tmp_path: Path) -> None:
    text = HEADER + ("A,2024-01-01,C1,P1,1e300,2\nB,2024-01-01,C1,P1,-2e9,2\nC,2024-01-01,C1,P1,1,5e6\n"
                     "D,2024-01-01,C1,P1,1e9,1e6\n")
    result = _read(_write(tmp_path / "sales_orders" / "big.csv", text))
    assert result.rows["order_id"].tolist() == ["D"]
    assert result.rejected["reason"].tolist() == ["quantity 1e+300 is above the limit 1e+09",
                                                  "quantity -2e+09 is below the limit -1e+09",
                                                  "unit_price 5e+06 is above the limit 1e+06"]
    series = _read(_write(tmp_path / "series" / "s.csv", "unique_id,ds,y\nA,2024-01-01,2e15\nA,2024-01-08,3\n"),
                   "series")
    assert series.rows["y"].tolist() == [3.0] and series.rejected["column_name"].tolist() == ["y"]


def test_an_overlong_field_is_quarantined_and_reported_in_a_few_words(tmp_path: Path) -> None:
    name, number = "x" * 200_000, "9" * 5_000
    text = ("customer_id,customer_name,channel,region,notes\n"
            f"C1,{name},Retail,Est,\nC2,Shop,Online,Ouest,{name}\n")
    result = _read(_write(tmp_path / "customers" / "c.csv", text), "customers")
    assert result.rows["customer_id"].tolist() == ["C2"]  # a long column that is not kept does no harm
    assert result.rejected["reason"].tolist() == ["customer_name is 200,000 characters long (limit 1,000)"]
    assert len(result.rejected["raw_record"].iloc[0]) < 1_200
    orders = _read(_write(tmp_path / "sales_orders" / "o.csv", HEADER + f"A,2024-01-01,C1,P1,{number},2\n"))
    assert orders.rows.empty
    assert [len(r) < 200 for r in orders.rejected["reason"]] == [True, True]
    assert "(5,000 characters)" in orders.rejected["reason"].iloc[1]


def test_header_only_file_gives_no_rows(tmp_path: Path) -> None:
    result = _read(_write(tmp_path / "sales_orders" / "header.csv", HEADER))
    assert result.rows.empty and result.rejected.empty
    assert result.rows["order_date"].dtype == "datetime64[ns]" and result.rows["quantity"].dtype == "float64"


def test_column_mapping_whitespace_blank_lines_and_returns(tmp_path: Path) -> None:
    text = ("SKU,OrderDate,ShopCode,Qty,order_id,unit_price,Comment\n"
            " P2 , 2024-01-02 ,C1, -3 ,SO-1, 2.50 ,x\n"
            "\n"
            "P1,03/01/2024,C1,4,SO-1,2,\n"
            "P1,2024-01-04,,4,SO-2,2,\n")
    result = _read(_write(tmp_path / "sales_orders" / "erp.csv", text),
                   column_mapping={"order_date": "OrderDate", "customer_id": "ShopCode", "product_id": "SKU",
                                   "quantity": "Qty"})
    rows = result.rows
    assert rows[["order_id", "product_id", "customer_id"]].values.tolist() == [["SO-1", "P1", "C1"],
                                                                               ["SO-1", "P2", "C1"]]
    assert rows["order_date"].tolist() == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-02")]
    assert rows["quantity"].tolist() == [4.0, -3.0] and rows["unit_price"].tolist() == [2.0, 2.5]
    assert rows["source_row"].tolist() == [4, 2]  # the blank line 3 still counts
    assert result.rejected[["source_row", "column_name", "reason"]].values.tolist() == [
        [5, "customer_id", "customer_id is empty (a value is required)"]]
    assert json.loads(result.rejected["raw_record"].iloc[0])["SKU"] == "P1"


def test_mapped_column_missing_names_the_file_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "sales_orders" / "x.csv", HEADER)
    with pytest.raises(LandingFileError, match=r"'order_date' \(mapped from 'OrderDate'\) is missing"):
        _read(path, column_mapping={"order_date": "OrderDate"})
    with pytest.raises(ValueError, match="unknown columns"):
        _read(path, column_mapping={"orderdate": "OrderDate"})


def test_parquet_input_matches_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "order_id": ["SO-2", "SO-1", "SO-3"],
        "order_date": pd.to_datetime(["2024-01-02", "2024-01-01", None]),
        "customer_id": ["C1", "C2", "C1"], "product_id": ["P1", "P1", "P2"],
        "quantity": [1.5, 2.0, 3.0], "unit_price": [2.0, -1.0, 1.0],
    })
    path = tmp_path / "sales_orders" / "orders.parquet"
    path.parent.mkdir()
    frame.to_parquet(path)
    result = _read(path)
    assert result.rows["order_id"].tolist() == ["SO-2"]
    assert result.rows["quantity"].tolist() == [1.5] and result.rows["source_row"].tolist() == [2]
    assert result.rows["order_date"].tolist() == [pd.Timestamp("2024-01-02")]
    assert result.rejected[["source_row", "column_name"]].values.tolist() == [[3, "unit_price"],
                                                                              [4, "order_date"]]
    broken = _write(tmp_path / "sales_orders" / "broken.parquet", "not parquet")
    with pytest.raises(LandingFileError, match="broken.parquet"):
        _read(broken)


def test_declared_series_columns_are_numbers_and_bad_cells_are_quarantined(tmp_path: Path) -> None:
    text = ("unique_id,ds,y,Price,promo_flag,note\n"
            "A,2024-01-01,5,4.5,0,x\n"
            "A,2024-01-08,6,cheap,1,y\n"
            "A,2024-01-15,7,1e16,0,z\n"
            "A,2024-01-22,,4.0,,w\n")
    result = _read(_write(tmp_path / "series" / "drivers.csv", text), "series",
                   extra_numbers=("price", "promo_flag"), column_mapping={"promo_flag": "promo_flag"})
    rows = result.rows
    # Matched case-insensitively like the canonical columns; an undeclared column is left out, as before.
    assert "note" not in rows and rows["price"].dtype == "float64" and rows["promo_flag"].dtype == "float64"
    assert rows["price"].tolist() == [4.5, 4.0] and rows["promo_flag"].fillna(-1).tolist() == [0.0, -1.0]
    assert result.rejected[["source_file", "source_row", "column_name", "reason"]].values.tolist() == [
        ["series/drivers.csv", 3, "price", "price 'cheap' is not a number"],
        ["series/drivers.csv", 4, "price", "price 1e+16 is above the limit 1e+15"],
    ]


def test_series_keep_missing_y_as_nan_and_reject_bad_y(tmp_path: Path) -> None:
    text = ("unique_id,ds,y,category\n"
            "A,2024-01-01,5,Hard\n"
            "A,08/01/2024,,Hard\n"
            "A,2024-01-15,abc,Hard\n"
            "B,2024-01-01,inf,\n"
            "B,2024-01-08,NA,\n"
            "B,2024-01-08,3,\n"
            "B,2024-13-01,3,\n")
    result = _read(_write(tmp_path / "series" / "s.csv", text), "series")
    rows = result.rows
    assert list(rows.columns) == ["unique_id", "ds", "y", "product_name", "brand", "category", "source_file",
                                  "source_row", "ingested_at"]
    assert rows[["unique_id", "ds"]].values.tolist() == [["A", pd.Timestamp("2024-01-01")],
                                                         ["A", pd.Timestamp("2024-01-08")],
                                                         ["B", pd.Timestamp("2024-01-08")]]
    assert rows["y"].iloc[0] == 5 and np.isnan(rows["y"].iloc[1]) and np.isnan(rows["y"].iloc[2])
    assert rows["category"].tolist() == ["Hard", "Hard", None] and rows["product_name"].isna().all()
    assert result.rejected[["source_row", "column_name", "reason"]].values.tolist() == [
        [4, "y", "y 'abc' is not a number"],
        [5, "y", "y 'inf' is not a finite number"],
        [7, None, "duplicate of line 6 (same unique_id, ds)"],
        [8, "ds", "ds '2024-13-01' is not a date (expected yyyy-mm-dd or dd/mm/yyyy)"],
    ]


def test_promotions_may_be_planned_but_must_be_consistent(tmp_path: Path) -> None:
    text = ("promotion_id,product_id,customer_id,start_date,end_date,discount_pct\n"
            "PR-1,P1,,2027-01-04,2027-01-10,20\n"
            "PR-2,P1,C1,2024-01-10,2024-01-01,20\n"
            "PR-3,P1,C1,2024-01-01,2024-01-07,120\n"
            "PR-4,P9,,2024-01-01,2024-01-07,10\n"
            "PR-5,P1,C9,2024-01-01,2024-01-07,10\n")
    result = _read(_write(tmp_path / "promotions" / "p.csv", text), "promotions",
                   known_ids={"product_id": {"P1"}, "customer_id": {"C1"}})
    assert result.rows["promotion_id"].tolist() == ["PR-1"] and result.rows["customer_id"].tolist() == [None]
    assert result.rejected["reason"].tolist() == [
        "end_date 2024-01-01 is before start_date 2024-01-10",
        "discount_pct 120 is above the limit 100",
        "product_id 'P9' is unknown (not in raw.products)",
        "customer_id 'C9' is unknown (not in raw.customers)",
    ]


def test_products_with_nullable_dates(tmp_path: Path) -> None:
    text = ("product_id,product_name,brand,category,launch_date,discontinued_date\n"
            "P2,Etorki 200g,Etorki,Hard cheese,,\n"
            "P1,Boursin,Boursin,Soft cheese,2020-01-01,2019-01-01\n"
            "P3,Babybel,Babybel,Hard cheese,someday,\n")
    result = _read(_write(tmp_path / "products" / "p.csv", text), "products")
    assert result.rows["product_id"].tolist() == ["P2"]
    assert result.rows["launch_date"].isna().all() and result.rows["launch_date"].dtype == "datetime64[ns]"
    assert result.rejected["column_name"].tolist() == ["discontinued_date", "launch_date"]


def test_cp1252_export_is_read(tmp_path: Path) -> None:
    path = tmp_path / "customers" / "c.csv"
    path.parent.mkdir()
    path.write_bytes("customer_id,customer_name,channel,region\nC1,Crèmerie Léa,Retail,Île-de-France\n"
                     .encode("cp1252"))
    result = _read(path, "customers")
    assert result.rows[["customer_name", "region"]].values.tolist() == [["Crèmerie Léa", "Île-de-France"]]


def test_table_specs_cover_the_landing_tables() -> None:
    assert sorted(TABLES) == ["customers", "products", "promotions", "sales_orders", "series"]
    assert TABLES["sales_orders"].key == ("order_id", "product_id")
    assert TABLES["series"].dtypes["y"] == "float64" and TABLES["series"].dtypes["ds"] == "datetime64[ns]"


def test_dates_in_common_formats_keep_the_calendar_day(tmp_path: Path) -> None:
    text = ("unique_id,ds,y\n"
            "A,2024-01-05T23:30:00-05:00,1\n"
            "B,05/01/2024,1\n"
            "C,05.01.2024,1\n"
            "D,2024/01/05,1\n"
            "E,2024-01-05 08:15:00,1\n"
            "F,5,1\n")
    result = _read(_write(tmp_path / "series" / "d.csv", text), "series")
    assert result.rows["ds"].tolist() == [pd.Timestamp("2024-01-05")] * 5
    assert result.rejected["reason"].tolist() == ["ds '5' is not a date (expected yyyy-mm-dd or dd/mm/yyyy)"]


def test_a_very_wide_rejected_row_is_kept_in_the_quarantine_within_a_budget(tmp_path: Path) -> None:
    extra = [f"note_{i}" for i in range(200)]
    text = (HEADER.strip() + "," + ",".join(extra) + "\n"
            + "A,2024-01-01,C1,P1,abc,2," + ",".join(["w" * 500] * 200) + "\n")
    result = _read(_write(tmp_path / "sales_orders" / "wide.csv", text))
    record = json.loads(result.rejected["raw_record"].iloc[0])
    assert len(result.rejected["raw_record"].iloc[0]) < 21_000
    assert record["quantity"] == "abc" and record["..."].endswith("more columns not kept")
