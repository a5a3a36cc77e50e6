"""The warehouse and its exports: snapshots that heal after a crash, and a bounded wait for readers."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from mlops_assets import warehouse
from mlops_assets.warehouse import WarehouseBusy
from mlops_assets_tests.conftest import materialize_all, python_ready

# A reader in another process opens the warehouse read-only, says so, and keeps it for argv[2] seconds.
READER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(n), "name": [f"row {i}" for i in range(n)]})


def _snapshot_rows(exports: Path, table: str) -> int:
    return len(pd.read_parquet(warehouse.snapshot_path(exports, table)))


def test_snapshot_left_behind_by_a_crash_is_republished(tmp_path):
    exports = tmp_path / "exports"
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        first = warehouse.write_tables(con, replace={"gold.t": _frame(5)}, append={"monitoring.h": _frame(2)})
        warehouse.publish_snapshot(exports, "gold.t", _frame(5), first)
        warehouse.publish_snapshot(exports, "monitoring.h", _frame(2), first)
        assert warehouse.reconcile_snapshots(con, exports) == []
        # The process dies after the commit, before the rename: the snapshots still show the old write.
        warehouse.write_tables(con, replace={"gold.t": _frame(611)}, append={"monitoring.h": _frame(3)})
        (exports / "gold" / ".t.parquet.123.tmp").write_bytes(b"half a file")
        assert (_snapshot_rows(exports, "gold.t"), _snapshot_rows(exports, "monitoring.h")) == (5, 2)

        assert warehouse.reconcile_snapshots(con, exports) == ["gold.t", "monitoring.h"]
        assert (_snapshot_rows(exports, "gold.t"), _snapshot_rows(exports, "monitoring.h")) == (611, 5)
        pd.testing.assert_frame_equal(
            pd.read_parquet(warehouse.snapshot_path(exports, "gold.t")), warehouse.read_table(con, "gold.t")
        )
        assert list(exports.glob("*/.*.tmp")) == []
        assert warehouse.reconcile_snapshots(con, exports) == []  # in step now: nothing more to do


def test_reconcile_publishes_missing_unstamped_and_removes_orphan_snapshots(tmp_path):
    exports = tmp_path / "exports"
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create schema raw")
        con.execute("create table raw.legacy as select 1 as x")  # written before write ids were kept
        warehouse.write_tables(con, replace={"gold.t": _frame(3)})
        warehouse.publish_snapshot(exports, "gold.t", _frame(1))  # unstamped: from an older version
        warehouse.publish_snapshot(exports, "gold.dropped", _frame(4))
        repaired = warehouse.reconcile_snapshots(con, exports)
        assert repaired == ["gold.t", "raw.legacy", "gold.dropped (removed: not in the warehouse)"]
        assert (_snapshot_rows(exports, "gold.t"), _snapshot_rows(exports, "raw.legacy")) == (3, 1)
        assert not warehouse.snapshot_path(exports, "gold.dropped").exists()
        assert warehouse.reconcile_snapshots(con, exports) == []


def test_append_with_a_new_column_keeps_the_old_rows(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        warehouse.write_tables(con, append={"monitoring.h": _frame(2)})
        warehouse.write_tables(con, append={"monitoring.h": _frame(1).assign(input_fingerprint="abc")})
        history = warehouse.read_table(con, "monitoring.h")
    assert history["name"].tolist() == ["row 0", "row 1", "row 0"]
    assert history["input_fingerprint"].isna().tolist() == [True, True, False]


def test_dagster_run_heals_an_export_a_killed_run_left_short(small_sample, tmp_path):
    shutil.copytree(small_sample / "landing", tmp_path / "landing")
    products = dg.AssetSelection.assets(["raw", "products"])
    assert materialize_all(tmp_path, selection=products).success
    snapshot = warehouse.snapshot_path(tmp_path / "exports", "raw.products")
    whole = pd.read_parquet(snapshot)
    # What a kill between the DuckDB commit and the rename leaves: the previous, shorter snapshot.
    stamp = warehouse.snapshot_write_id(snapshot)
    warehouse.publish_snapshot(tmp_path / "exports", "raw.products", whole.head(3), "an-older-write")
    assert stamp != "an-older-write"
    # Any later run heals it, even one that writes nothing to that table (here: the customers).
    instance = dg.DagsterInstance.ephemeral()
    customers = dg.AssetSelection.assets(["raw", "customers"])
    result = materialize_all(tmp_path, instance=instance, selection=customers)
    assert result.success
    pd.testing.assert_frame_equal(pd.read_parquet(snapshot), whole)
    logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any("exports behind the warehouse" in m and "raw.products" in m for m in logs)


def _hold_read_only(database: Path, seconds: float) -> subprocess.Popen:
    return python_ready(READER, str(database), str(seconds))


def test_writer_waits_for_a_reader_then_writes(tmp_path):
    database = tmp_path / "w.duckdb"
    duckdb.connect(str(database)).close()
    reader = _hold_read_only(database, 4)
    heard, started = [], time.monotonic()
    con = warehouse.connect(database, wait_seconds=60, on_wait=heard.append)
    waited = time.monotonic() - started
    warehouse.write_tables(con, replace={"gold.t": _frame(2)})
    con.close()
    reader.wait()
    assert waited >= 0.5
    assert len(heard) == 1 and f"process {reader.pid}" in heard[0] and "waiting up to 60 s" in heard[0]


def test_writer_gives_up_after_its_bound_and_names_the_reader(tmp_path):
    database = tmp_path / "w.duckdb"
    duckdb.connect(str(database)).close()
    reader = _hold_read_only(database, 60)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as refused:
            warehouse.connect(database, wait_seconds=1)
        assert 1 <= time.monotonic() - started < 10
    finally:
        reader.kill()
        reader.wait()
    message = str(refused.value)
    assert f"held open by process {reader.pid}" in message
    assert "waited 1 s" in message and "locks.warehouse_wait_seconds" in message and "exports/" in message


def test_table_loaded_from_parquet_parts_is_stamped_and_needs_no_repair(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        pd.DataFrame({"unique_id": [f"s{i}b", f"s{i}a"], "y": [float(i), 0.5]}).to_parquet(parts / f"p{i}.parquet")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        rows, write_id = warehouse.replace_from_parquet(con, "forecasting.parts", str(parts / "*.parquet"), "unique_id")
        snapshot = warehouse.publish_snapshot_from_table(con, tmp_path / "exports", "forecasting.parts", write_id)
        assert rows == 6 and warehouse.snapshot_write_id(snapshot) == write_id
        assert warehouse.reconcile_snapshots(con, tmp_path / "exports") == []
        stored = con.execute("select * from forecasting.parts").df()
    assert stored["unique_id"].tolist() == sorted(stored["unique_id"])
    pd.testing.assert_frame_equal(pd.read_parquet(snapshot), stored)


@pytest.mark.slow
def test_memory_limit_holds_and_a_table_larger_than_it_is_still_sorted_in(tmp_path):
    """The cap is real (DuckDB reports it) and a load bigger than the cap spills instead of failing."""
    parts = tmp_path / "parts"
    parts.mkdir()
    with duckdb.connect() as scratch:  # ~6 M rows x 3 columns: about 140 MB in DuckDB, over the 64 MB cap
        for i in range(2):
            scratch.execute(f"copy (select (random() * 1e9)::bigint as unique_id, random() as y, range as ds "
                            f"from range(3000000)) to '{parts / f'p{i}.parquet'}' (format parquet)")
    con = warehouse.connect(tmp_path / "w.duckdb", wait_seconds=0, memory_mb=64)
    try:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "64.0 MiB"
        rows, _ = warehouse.replace_from_parquet(con, "forecasting.big", str(parts / "*.parquet"), "unique_id, ds")
        assert rows == 6_000_000
        unsorted = con.execute("select count(*) from (select unique_id < lag(unique_id) over (order by rowid) as "
                               "back from forecasting.big) where back").fetchone()[0]
        assert unsorted == 0
    finally:
        con.close()


def test_every_step_connection_carries_the_configured_memory_limit(tmp_path):
    from mlops_assets.wiring.resources import build_resources

    settings = tmp_path / "settings.yaml"
    settings.write_text("compute:\n  duckdb_memory_mb: 96\n")
    resources = build_resources(str(tmp_path / "data"), str(settings))
    with resources["warehouse"].connection() as con:
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    assert limit == "96.0 MiB"


def test_tables_from_parquet_parts_swap_together_or_not_at_all(tmp_path):
    """gold and its excluded series: a failure on the second leaves the first as it was."""
    frame = pd.DataFrame({"unique_id": ["b", "a"], "ds": pd.to_datetime(["2024-01-01", "2024-01-08"]),
                          "name": pd.Series([None, None], dtype=object), "flag": [True, False]})
    warehouse.write_part(frame, tmp_path / "one" / "p0.parquet")
    warehouse.write_part(frame.iloc[:0], tmp_path / "one" / "p1.parquet")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        warehouse.write_tables(con, replace={"gold.whole": frame, "gold.other": frame.head(1)})
        parts = str(tmp_path / "one/*.parquet")
        rows, _ = warehouse.replace_tables_from_parquet(con, {"gold.one": (parts, "unique_id")})
        # Parts written by write_part load with the types write_tables gives the whole frame (a column of
        # nulls stays VARCHAR).
        assert rows == {"gold.one": 2}
        assert con.execute("describe gold.one").fetchall() == con.execute("describe gold.whole").fetchall()
        with pytest.raises(duckdb.IOException):
            warehouse.replace_tables_from_parquet(con, {"gold.other": (parts, "unique_id"),
                                                        "gold.one": (str(tmp_path / "none/*.parquet"), "unique_id")})
        assert con.execute("select count(*) from gold.other").fetchone()[0] == 1
        assert con.execute("select unique_id from gold.one").fetchall() == [("a",), ("b",)]


def test_append_from_query_adds_new_columns_and_rolls_back_whole(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    warehouse.append_from_query(con, "m.h", "select 1 as a")
    warehouse.append_from_query(con, "m.h", "select ? as a, 'x' as b", [2])
    assert con.execute("select * from m.h order by a").fetchall() == [(1, None), (2, "x")]
    with pytest.raises(duckdb.Error):
        warehouse.append_from_query(con, "m.h", "select 3 as a, 'not a number'::integer as b")
    assert con.execute("select count(*) from m.h").fetchall() == [(2,)], "a failed append leaves the table whole"
