"""Readers in other processes: the Parquet snapshot of serving.sales_overall is always whole and never locked.

A reader process (DuckDB's read_parquet and pandas, as the duckdb CLI, a notebook or a BI tool would read)
loops over exports/serving/sales_overall.parquet while this process reruns the chain twice with a new week
of orders each time, so the table really grows under the reader. Every read must succeed (a DuckDB query
retried up to three times, as the README says, since DuckDB opens the file more than once per query) and
must match one of the complete versions exactly. The DuckDB file itself is the unsafe path: another process
cannot open it, even read-only, while a run holds it (proved below with a held connection, as a run holds it
while writing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import materialize_all

pytestmark = pytest.mark.e2e

# The sample's last day is Sunday 2026-09-27: these are the next two Mondays.
NEW_WEEKS = (date(2026, 9, 28), date(2026, 10, 5))
# The small_sample fixture's generator arguments: a new week must come from the same made-up world.
SAMPLE_WORLD = {"seed": 7, "n_products": 20, "n_customers": 8}
READER_DEADLINE_SECONDS = 600

# Runs in another interpreter: only duckdb, pandas and the standard library, like any outside reader.
READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import duckdb
    import pandas as pd

    snapshot, out, stop, ready, deadline = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), \\
        Path(sys.argv[4]), time.monotonic() + float(sys.argv[5])
    sql = (
        "select count(*), count(*) filter (origin = 'Train'), count(*) filter (origin = 'Predict'), "
        "count(distinct origin), count(distinct unique_id) from read_parquet(?)"
    )
    con = duckdb.connect()  # in memory: reading the snapshot takes no lock on the warehouse
    reads = []
    while not stop.exists() and time.monotonic() < deadline:
        for via in ("duckdb", "pandas"):
            read = {"via": via, "t": time.time()}
            try:
                if via == "duckdb":
                    # DuckDB opens the file more than once per query: a query that meets the rename can fail
                    # to read (README, "Reading the tables from other processes"); retried as mlops-assets sql does.
                    for attempt in range(1, 4):
                        try:
                            rows, train, predict, origins, series = con.execute(sql, [snapshot]).fetchone()
                            break
                        except duckdb.Error:
                            if attempt == 3:
                                raise
                            read["retries"] = attempt
                            time.sleep(0.05 * attempt)
                else:
                    frame = pd.read_parquet(snapshot)
                    counts = frame["origin"].value_counts()
                    rows, origins, series = len(frame), frame["origin"].nunique(), frame["unique_id"].nunique()
                    train, predict = int(counts.get("Train", 0)), int(counts.get("Predict", 0))
                read.update(rows=rows, train=train, predict=predict, origins=origins, series=series)
            except Exception as error:  # every failure is the finding: record it and keep reading
                read["error"] = f"{type(error).__name__}: {error}"
            reads.append(read)
        ready.touch()
        time.sleep(0.02)
    out.write_text(json.dumps(reads))
    """
)


def _fingerprint(snapshot: Path) -> dict[str, int]:
    """The same numbers the reader records, read while nothing writes (so from a complete version)."""
    with duckdb.connect() as con:
        rows, train, predict, origins, series = con.execute(
            "select count(*), count(*) filter (origin = 'Train'), count(*) filter (origin = 'Predict'), "
            "count(distinct origin), count(distinct unique_id) from read_parquet(?)",
            [str(snapshot)],
        ).fetchone()
    return {"rows": rows, "train": train, "predict": predict, "origins": origins, "series": series}


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def chain(materialized_sample, tmp_path_factory):
    """A copy of the session's whole chain on the small sample with the fast zoo, for this module's reruns, and
    a Dagster instance of its own; returns (data dir, settings, instance)."""
    source, settings = materialized_sample
    data_dir = tmp_path_factory.mktemp("safe_reads") / "data"
    shutil.copytree(source, data_dir)
    instance = dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home")))
    return data_dir, data_dir / settings.name, instance


def test_duckdb_file_opens_read_only_when_idle_but_is_locked_while_a_run_holds_it(chain):
    data_dir, _, _ = chain
    paths = DataPaths(data_dir)
    snapshot = paths.exports / "serving" / "sales_overall.parquet"
    read_db = (
        "import sys, duckdb\n"
        "with duckdb.connect(sys.argv[1], read_only=True) as con:\n"
        "    print(con.execute('select count(*) from serving.sales_overall').fetchone()[0])\n"
    )
    read_snapshot = "import sys, pandas\nprint(len(pandas.read_parquet(sys.argv[1])))\n"
    expected = _fingerprint(snapshot)["rows"]

    idle = _run_python(read_db, str(paths.warehouse))
    assert idle.returncode == 0, idle.stderr
    assert int(idle.stdout) == expected

    # A run keeps a read-write connection open while it writes; hold one the same way.
    with duckdb.connect(str(paths.warehouse)) as writer:
        writer.execute("select count(*) from serving.sales_overall").fetchone()
        locked = _run_python(read_db, str(paths.warehouse))
        safe = _run_python(read_snapshot, str(snapshot))
    assert locked.returncode != 0
    assert "lock" in locked.stderr.lower(), locked.stderr
    assert safe.returncode == 0, safe.stderr
    assert int(safe.stdout) == expected


def test_reader_in_another_process_never_sees_an_error_or_a_partial_table(chain, tmp_path):
    data_dir, settings, instance = chain
    paths = DataPaths(data_dir)
    snapshot = paths.exports / "serving" / "sales_overall.parquet"
    versions = [_fingerprint(snapshot)]

    script, out, stop, ready = (tmp_path / name for name in ("reader.py", "reads.json", "stop", "ready"))
    script.write_text(READER)
    reader = subprocess.Popen(
        [sys.executable, str(script), str(snapshot), str(out), str(stop), str(ready), str(READER_DEADLINE_SECONDS)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert reader.poll() is None, f"reader exited early: {reader.stdout.read()}"
            assert time.monotonic() < deadline, "reader did not complete a first read within 60 s"
            time.sleep(0.1)
        from mlops_assets.sample_data import write_new_week

        for week in NEW_WEEKS:
            write_new_week(paths.landing, week, **SAMPLE_WORLD)
            assert materialize_all(data_dir, str(settings), instance=instance).success
            versions.append(_fingerprint(snapshot))
        time.sleep(1)  # a few reads of the last version too
    finally:
        stop.touch()
        output, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0, output

    reads = json.loads(out.read_text())
    errors = [r for r in reads if "error" in r]
    assert errors == [], f"{len(errors)} of {len(reads)} reads failed, first: {errors[:3]}"
    # Each rerun added a week to every series: the versions differ, so a mix of two would show.
    assert len({v["rows"] for v in versions}) == len(versions), versions
    assert all(v["origins"] == 2 and v["predict"] > 0 for v in versions), versions
    complete = [tuple(sorted(v.items())) for v in versions]
    seen = [tuple(sorted((k, r[k]) for k in versions[0])) for r in reads]
    partial = [dict(s) for s in seen if s not in complete]
    assert partial == [], f"reads that match no complete version: {partial[:3]}; versions: {versions}"
    assert len(reads) > 20
    assert {r["via"] for r in reads} == {"duckdb", "pandas"}
    # The reader really read across the swaps: it saw every version, old and new.
    assert set(seen) == set(complete), {"seen": sorted(set(seen)), "versions": versions}
    assert list(snapshot.parent.glob(".*.tmp")) == []
