"""A data directory whose path holds a quote, a space and non-ASCII letters: every step of a whole run works.

Paths reach DuckDB SQL in COPY, ATTACH and read_parquet; one unescaped ``'`` broke every raw step
(``ParserException: unterminated string literal``).
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from mlops_assets.cli import sql
from mlops_assets.sample_data import generate_sample
from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import FAST_ZOO, materialize_all

pytestmark = pytest.mark.e2e



def test_a_whole_run_in_a_data_directory_named_with_a_quote_a_space_and_accents(tmp_path):
    data_dir = tmp_path / "l'été des données"
    generate_sample(data_dir / "landing", n_products=8, n_customers=4, seed=11)
    settings = data_dir / "settings.yaml"
    settings.write_text(FAST_ZOO)
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    result = materialize_all(data_dir, settings_file=str(settings), instance=instance, raise_on_error=False)
    failures = [e.step_key for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw/sales_orders", "gold/sales_data_for_forecast", "forecasting/series_champions",
            "registry/sales_forecast_model", "forecasting/forecasts", "serving/sales_overall"} <= materialized
    assert all(c.passed for c in result.get_asset_check_evaluations() if c.check_name == "matches_contract")
    paths = DataPaths(data_dir)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        forecasts = con.execute("select count(*) from forecasting.forecasts").fetchone()[0]
        files = con.execute("select count(*) from raw.ingested_files").fetchone()[0]
    assert forecasts > 0 and files == 4
    assert "(1 rows)" in sql(paths, "select count(*) as n from forecasting.forecasts")
