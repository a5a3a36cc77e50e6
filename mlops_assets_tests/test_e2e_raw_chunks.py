"""The raw layer read a few rows at a time holds exactly what it holds when each landing file is read at once."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from mlops_assets.sample_data import generate_sample, inject_defect
from mlops_assets.warehouse import read_table
from mlops_assets_tests.conftest import materialize_all
from mlops_assets_tests.ingest.test_raw_layer import SERIES

# The raw assets under Dagster, twice over the same landing zone.
pytestmark = pytest.mark.e2e

# Stamped with the time of each run, so they differ between the two runs by nature.
RUN_TIMES = ["ingested_at", "rejected_at", "readmitted_at"]


def _raw_tables(data_dir) -> dict[str, tuple[list, object]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        names = [t for (t,) in con.execute("select 'raw.' || table_name from information_schema.tables "
                                           "where table_schema = 'raw' order by 1").fetchall()]
        return {t: (con.execute(f"select column_name, column_type from (describe {t})").fetchall(),
                    read_table(con, t).drop(columns=RUN_TIMES, errors="ignore")) for t in names}


def test_every_raw_table_is_the_same_read_three_rows_at_a_time(tmp_path):
    runs = {}
    for name, settings in (("whole", "ingest: {chunk_rows: 1000000}\n"), ("chunks", "ingest: {chunk_rows: 3}\n")):
        data = tmp_path / name
        generate_sample(data / "landing", n_products=5, n_customers=3, seed=7)
        for kind in ("wrong_types", "duplicate_lines", "unknown_product"):
            inject_defect(data / "landing", kind, seed=7, n_products=5, n_customers=3)
        (data / "landing" / "series").mkdir()
        (data / "landing" / "series" / "s.csv").write_text(SERIES)
        (data / "settings.yaml").write_text(settings)
        assert materialize_all(data, str(data / "settings.yaml"), selection=dg.AssetSelection.groups("raw")).success
        runs[name] = _raw_tables(data)
    whole, chunks = runs["whole"], runs["chunks"]
    assert list(whole) == list(chunks) and len(whole) == 8
    for table, (types, rows) in whole.items():
        assert chunks[table][0] == types, table
        assert chunks[table][1].equals(rows), table
    reasons = " | ".join(whole["raw.rejected_rows"][1]["reason"])
    assert all(k in reasons for k in ("duplicate of line", "is not a number", "is unknown")), reasons
    assert len(whole["raw.sales_orders"][1]) > 300
