"""The landing-zone sensor (and its pure half, landing_watch) and the retrain-on-drift sensor."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.definitions import defs
from mlops_assets.defs.automation import (
    DRIFT_CHECK_KEY,
    RETRAIN_KEYS,
    landing_zone_sensor,
    retrain_on_drift_sensor,
)
from mlops_assets.defs.monitoring import DRIFT_CHECK, DRIFT_REPORT_KEY
from mlops_assets.ingest.landing_watch import dump_cursor, load_cursor, scan_landing
from mlops_assets.warehouse import publish_snapshot
from mlops_assets.wiring.resources import ProjectResource

PRODUCTS = b"product_id,product_name,brand,category\nP1,Comte,Jura,Hard cheese\n"
ORDERS = b"order_id,order_date,customer_id,product_id,quantity,unit_price\nSO-1,2026-09-28,C1,P1,2,10.5\n"
RAW_TABLES = ("products", "customers", "promotions", "sales_orders", "series")


def _write(landing: Path, relative: str, data: bytes, *, age: float = 60.0) -> Path:
    """A landing file whose mtime lies ``age`` seconds back (past the settle time unless told)."""
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    (tmp_path / "landing").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    """A running deployment: every raw table already materialized once (the sensor only reads it)."""
    inst = dg.DagsterInstance.ephemeral()
    for table in RAW_TABLES:
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key=["raw", table]))
    return inst


def _tick(data_dir: Path, instance: dg.DagsterInstance, cursor: str | None):
    project = ProjectResource(data_dir=str(data_dir), settings_file="")
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"project": project}, definitions=defs
    )
    return landing_zone_sensor.evaluate_tick(context)


# --- landing_watch.scan_landing ------------------------------------------------------------------------------


def test_scan_reports_new_files_with_their_hash_and_fills_the_cursor(tmp_path):
    _write(tmp_path, "products/products.csv", PRODUCTS)
    _write(tmp_path, "sales_orders/w40.csv", ORDERS)
    scan = scan_landing(tmp_path, {})
    assert [(f.table, f.path, f.sha256) for f in scan.ready] == [
        ("sales_orders", "sales_orders/w40.csv", hashlib.sha256(ORDERS).hexdigest()),
        ("products", "products/products.csv", hashlib.sha256(PRODUCTS).hexdigest()),
    ]
    assert set(scan.cursor) == {"products/products.csv", "sales_orders/w40.csv"}
    assert scan.cursor["products/products.csv"][0] == len(PRODUCTS)
    assert load_cursor(dump_cursor(scan.cursor)) == scan.cursor


def test_scan_of_an_unchanged_zone_is_quiet_and_a_touched_file_with_same_content_is_not_new(tmp_path):
    path = _write(tmp_path, "products/products.csv", PRODUCTS)
    cursor = scan_landing(tmp_path, {}).cursor
    again = scan_landing(tmp_path, cursor)
    assert (again.ready, again.unchanged) == ([], 1)
    stamp = time.time() - 30
    os.utime(path, (stamp, stamp))
    touched = scan_landing(tmp_path, cursor)
    assert (touched.ready, touched.unchanged) == ([], 1)
    assert touched.cursor["products/products.csv"][1] == stamp  # the new mtime is remembered


def test_scan_sees_changed_content_under_the_same_name(tmp_path):
    _write(tmp_path, "products/products.csv", PRODUCTS)
    cursor = scan_landing(tmp_path, {}).cursor
    changed = PRODUCTS + b"P2,Brie,Meaux,Soft cheese\n"
    _write(tmp_path, "products/products.csv", changed, age=10)
    scan = scan_landing(tmp_path, cursor)
    assert [f.sha256 for f in scan.ready] == [hashlib.sha256(changed).hexdigest()]


def test_scan_leaves_files_being_written_for_later(tmp_path):
    _write(tmp_path, "sales_orders/w40.csv.part", ORDERS)
    _write(tmp_path, "sales_orders/w41.csv", ORDERS, age=0.2)
    now = time.time()
    scan = scan_landing(tmp_path, {}, settle_seconds=2.0, now=now)
    assert scan.ready == [] and scan.cursor == {}
    assert scan.settling[0] == "sales_orders/w40.csv.part: temporary name"
    assert scan.settling[1].startswith("sales_orders/w41.csv: modified 0.")
    assert "still being written" in scan.summary()
    later = scan_landing(tmp_path, {}, settle_seconds=2.0, now=now + 5)
    assert [f.path for f in later.ready] == ["sales_orders/w41.csv"]


def test_scan_reports_deleted_files_once(tmp_path):
    path = _write(tmp_path, "customers/customers.csv", b"customer_id\nC1\n")
    cursor = scan_landing(tmp_path, {}).cursor
    path.unlink()
    scan = scan_landing(tmp_path, cursor)
    assert scan.deleted == ["customers/customers.csv"] and scan.ready == [] and scan.cursor == {}
    assert "1 deleted (customers/customers.csv" in scan.summary()
    assert scan_landing(tmp_path, scan.cursor).deleted == []


# --- landing_zone_sensor --------------------------------------------------------------------------------------


def test_a_new_file_requests_one_run_of_its_raw_asset_keyed_by_content_hash(data_dir, instance):
    _write(data_dir / "landing", "sales_orders/w40.csv", ORDERS)
    result = _tick(data_dir, instance, None)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == hashlib.sha256(ORDERS).hexdigest()
    assert request.asset_selection == [dg.AssetKey(["raw", "sales_orders"])]
    assert request.tags["mlops/landing_file"] == "sales_orders/w40.csv"
    assert "sales_orders/w40.csv" in load_cursor(result.cursor)


def test_the_same_file_again_is_skipped_and_a_restart_does_not_request_it_again(data_dir, instance):
    _write(data_dir / "landing", "products/products.csv", PRODUCTS)
    first = _tick(data_dir, instance, None)
    assert len(first.run_requests) == 1
    second = _tick(data_dir, instance, first.cursor)
    assert second.run_requests == []
    assert second.skip_message == "landing zone: 0 new or changed, 1 unchanged"
    # A restarted daemon gets the stored cursor back in a fresh context.
    restarted = _tick(data_dir, instance, str(first.cursor))
    assert restarted.run_requests == [] and "1 unchanged" in restarted.skip_message


def test_files_being_written_are_not_requested_and_the_reason_says_so(data_dir, instance):
    _write(data_dir / "landing", "sales_orders/w40.csv.part", ORDERS)
    _write(data_dir / "landing", "sales_orders/w41.csv", ORDERS, age=0.0)
    result = _tick(data_dir, instance, None)
    assert result.run_requests == []
    assert "2 still being written" in result.skip_message
    assert "sales_orders/w40.csv.part: temporary name" in result.skip_message
    assert "sales_orders/w41.csv: modified" in result.skip_message
    assert load_cursor(result.cursor) == {}


def test_files_the_landing_zone_does_not_read_are_named_in_the_skip_reason(data_dir, instance):
    _write(data_dir / "landing", "sales_orders.csv", ORDERS)
    _write(data_dir / "landing", "sales_orders/w40.csv.bak", ORDERS)
    result = _tick(data_dir, instance, None)
    assert result.run_requests == []
    assert "2 not read (sales_orders.csv: a file at the top of the landing zone: not read" in result.skip_message
    assert "sales_orders/w40.csv.bak: not a landing file type" in result.skip_message


def test_a_deleted_file_is_reported_and_requests_nothing(data_dir, instance):
    path = _write(data_dir / "landing", "products/products.csv", PRODUCTS)
    first = _tick(data_dir, instance, None)
    path.unlink()
    result = _tick(data_dir, instance, first.cursor)
    assert result.run_requests == []
    assert "1 deleted (products/products.csv" in result.skip_message


def test_runs_of_one_tick_follow_the_raw_dependencies(data_dir, instance):
    _write(data_dir / "landing", "sales_orders/w40.csv", ORDERS)
    _write(data_dir / "landing", "products/products.csv", PRODUCTS)
    result = _tick(data_dir, instance, None)
    assert [r.asset_selection[0].path[-1] for r in result.run_requests] == ["products", "sales_orders"]


def test_first_load_also_makes_the_raw_tables_that_have_no_file(data_dir):
    _write(data_dir / "landing", "products/products.csv", PRODUCTS)
    fresh = dg.DagsterInstance.ephemeral()
    fresh.report_runless_asset_event(dg.AssetMaterialization(asset_key=["raw", "customers"]))
    result = _tick(data_dir, fresh, None)
    keys = [(r.asset_selection[0].path[-1], r.run_key) for r in result.run_requests]
    assert keys == [
        ("products", hashlib.sha256(PRODUCTS).hexdigest()),
        ("promotions", "first-promotions"),
        ("sales_orders", "first-sales_orders"),
        ("series", "first-series"),
    ]


def test_files_a_command_line_run_already_ingested_start_nothing(data_dir, instance):
    """`make dev` after `make run`: the sensor's cursor is empty, but the warehouse has every file."""
    _write(data_dir / "landing", "products/products.csv", PRODUCTS)
    _write(data_dir / "landing", "sales_orders/w40.csv", ORDERS)
    publish_snapshot(data_dir / "exports", "raw.ingested_files", pd.DataFrame({
        "table_name": ["products", "customers"],
        "source_file": ["products/products.csv", "customers/customers.csv"],
        "sha256": [hashlib.sha256(PRODUCTS).hexdigest(), hashlib.sha256(ORDERS).hexdigest()],
    }))
    result = _tick(data_dir, instance, None)
    # Same content in another table's folder is still new to that table.
    assert [r.asset_selection[0].path[-1] for r in result.run_requests] == ["sales_orders"]
    assert set(load_cursor(result.cursor)) == {"products/products.csv", "sales_orders/w40.csv"}
    again = _tick(data_dir, instance, result.cursor)
    assert again.run_requests == [] and again.skip_message == "landing zone: 0 new or changed, 2 unchanged"


# --- retrain_on_drift_sensor ----------------------------------------------------------------------------------


def _drift_asset(share: float, threshold: float = 0.5):
    @dg.asset(key=DRIFT_REPORT_KEY, check_specs=[dg.AssetCheckSpec(DRIFT_CHECK, asset=DRIFT_REPORT_KEY)])
    def drift_report():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=share <= threshold,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "drift_share": share,
                "threshold": threshold,
                "drifted_columns": dg.MetadataValue.json(["relative_sales", "avg_unit_price", "promo_share"]),
            },
        )

    return drift_report


def _drift_tick(instance, cursor):
    context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
    return retrain_on_drift_sensor.evaluate_tick(context)


def test_drift_check_key_is_the_monitoring_check():
    assert DRIFT_CHECK_KEY == dg.AssetCheckKey(DRIFT_REPORT_KEY, DRIFT_CHECK)


def test_a_new_failed_drift_check_requests_one_retraining_run():
    instance = dg.DagsterInstance.ephemeral()
    assert "never been evaluated" in _drift_tick(instance, None).skip_message
    assert dg.materialize([_drift_asset(0.62)], instance=instance).success
    record = instance.get_latest_asset_check_evaluation_record(DRIFT_CHECK_KEY)

    result = _drift_tick(instance, None)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == f"drift-{record.id}"
    assert request.asset_selection == RETRAIN_KEYS
    assert request.tags["mlops/trigger"] == "drift"
    assert request.tags["mlops/reason"] == (
        "drift share 0.62 > threshold 0.5 (drifted: relative_sales, avg_unit_price, promo_share)"
    )
    assert result.cursor == str(record.id)

    again = _drift_tick(instance, result.cursor)
    assert again.run_requests == [] and "already handled" in again.skip_message


def test_a_passed_drift_check_requests_nothing_and_a_later_failure_does():
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([_drift_asset(0.1)], instance=instance).success
    passed = _drift_tick(instance, None)
    assert passed.run_requests == [] and "passed" in passed.skip_message
    assert dg.materialize([_drift_asset(0.9)], instance=instance).success
    failed = _drift_tick(instance, passed.cursor)
    assert len(failed.run_requests) == 1
    assert int(failed.cursor) > int(passed.cursor)
    assert failed.run_requests[0].tags["mlops/reason"].startswith("drift share 0.90 > threshold 0.5")
