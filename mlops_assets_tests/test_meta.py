"""Contract checks validate every row, bucket by bucket for large tables, and find what a whole-table check finds."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_assets.catalog import Table
from mlops_assets.contracts import table_chunks
from mlops_assets.schemas import failure_summary
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.resources import build_resources

SCHEMA = pa.DataFrameSchema(
    {"unique_id": pa.Column(str), "ds": pa.Column("datetime64[ns]"), "y": pa.Column(float, pa.Check.ge(0))},
    unique=["unique_id", "ds"],
    strict=True,
)
EXAMPLE = Table("gold.example", "Stands for a table the test writes itself.", lambda _s, _store: SCHEMA,
                "example", blocking=True)


def _table(n_series: int = 40, length: int = 10) -> pd.DataFrame:
    df = pd.DataFrame({
        "unique_id": np.repeat([f"s{i:02d}" for i in range(n_series)], length),
        "ds": np.tile(pd.date_range("2024-01-01", periods=length, freq="W-MON"), n_series),
        "y": np.arange(n_series * length, dtype=float),
    })
    df.loc[[5, 123, 399], "y"] = -1.0  # in three different series
    return pd.concat([df, df.iloc[[250]]], ignore_index=True)  # one repeated (unique_id, ds)


@dg.asset(key=["gold", "example"])
def example() -> None:
    """Stands for the asset whose table the test writes itself."""


def _evaluate(check: dg.AssetChecksDefinition, resources: dict) -> dg.AssetCheckEvaluation:
    result = dg.materialize([example, check], resources=resources, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_bucketed_check_finds_every_failure_a_whole_table_check_finds(tmp_path):
    resources = build_resources(str(tmp_path), "")
    warehouse = resources["warehouse"]
    table = _table()
    warehouse.replace("gold.example", table)
    try:
        SCHEMA.validate(table, lazy=True)
    except pa.errors.SchemaErrors as err:
        expected, _ = failure_summary(err)
    assert expected >= 5

    chunks = list(table_chunks(warehouse.connection, "gold.example", chunk_rows=50))
    assert len(chunks) == 9 and sum(len(c) for c in chunks) == len(table)
    check = contract_check(EXAMPLE, chunk_rows=50)
    result = _evaluate(check, resources)
    assert not result.passed
    assert result.metadata["failures"].value == expected
    assert result.metadata["rows_checked"].value == len(table)

    warehouse.replace("gold.example", table[table["y"] >= 0].drop_duplicates(["unique_id", "ds"]))
    assert _evaluate(check, resources).passed


def test_from_sql_rows_a_check_validates_in_duckdb_and_fails_on_the_last_row(tmp_path):
    resources = build_resources(str(tmp_path), "")
    table = _table().drop_duplicates(["unique_id", "ds"]).assign(y=1.0)
    resources["warehouse"].replace("gold.example", table)
    check = contract_check(EXAMPLE, sql_rows=100)
    result = _evaluate(check, resources)
    assert result.passed and result.metadata["validated_in"].value == "duckdb"

    resources["warehouse"].replace("gold.example", table.assign(y=np.where(np.arange(len(table)) == len(table) - 1,
                                                                            -1.0, 1.0)))
    result = _evaluate(check, resources)
    assert not result.passed and result.metadata["failures"].value == 1
    assert result.metadata["rows_checked"].value == len(table)
    assert "| s39 " in result.metadata["examples"].value and "greater_than_or_equal_to(0)" in result.metadata[
        "examples"].value
