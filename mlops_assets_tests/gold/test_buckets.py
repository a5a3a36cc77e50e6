"""Gold by bucket of series: the stored tables equal the whole-data build, and no call sees two buckets."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets import warehouse
from mlops_assets.gold import buckets
from mlops_assets.gold.aggregation import build_gold
from mlops_assets.gold.exclusions import summarize_exclusions
from mlops_assets.gold.regressors import build_regressors
from mlops_assets.sample_data import generate_sample
from mlops_assets.settings import Settings
from mlops_assets_tests.driver_series import SERIES_COLUMNS, driver_series
from mlops_assets_tests.ingest.raw_runs import ingest

GOLD, EXCLUDED, REGRESSORS = "gold.sales_data_for_forecast", "gold.series_excluded", "gold.regressors"
ORDER_TABLES = ("products", "customers", "promotions", "sales_orders")


def _raw_warehouse(path: Path, landing: Path, tables: tuple[str, ...], extra: tuple[str, ...] = ()) -> Path:
    """A DuckDB file holding the raw tables the raw layer makes of the landing files."""
    for table in tables:
        result = ingest(landing, path, table, extra_numbers=extra if table == "series" else ())
        assert result.rejected.empty, result.rejected.head()
    return path


def _whole(path: Path, settings: Settings) -> dict[str, pd.DataFrame]:
    """Gold, excluded and regressors as the asset built them before buckets: from whole tables, in one go."""
    with duckdb.connect(str(path)) as con:
        tables = {t: warehouse.read_table(con, f"raw.{t}", missing_ok=True) for t in (*ORDER_TABLES, "series")}
        gold, excluded = build_gold(tables, settings)
        warehouse.write_tables(con, replace={GOLD: gold, EXCLUDED: excluded})
        series = tables["series"] if settings.regressors.series_columns else None
        regressors = build_regressors(warehouse.read_table(con, GOLD), tables["promotions"], settings.frequency,
                                      settings.horizon, settings.grain, settings.regressors.country, series,
                                      settings.regressors.series_columns)
        warehouse.write_tables(con, replace={REGRESSORS: regressors})
        return _stored(con)


def _bucketed(path: Path, settings: Settings, folder: Path) -> tuple[dict[str, pd.DataFrame], int]:
    connect = warehouse.connector(path)
    parts = buckets.gold_by_bucket(connect, settings, folder / "gold")
    with connect() as con:
        warehouse.replace_tables_from_parquet(con, {GOLD: (parts.patterns["gold"], "unique_id, ds"),
                                                    EXCLUDED: (parts.patterns["excluded"], "unique_id")})
    regressor_parts = buckets.regressors_by_bucket(connect, GOLD, settings, folder / "regressors")
    assert regressor_parts.buckets > 1
    with connect() as con:
        warehouse.replace_from_parquet(con, REGRESSORS, regressor_parts.patterns["regressors"], "unique_id, ds")
        return _stored(con), parts.buckets


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """Each table in its stored order, with its DuckDB column types."""
    return {table: (con.execute(f"select * from {table}").df(), con.execute(f"describe {table}").fetchall())
            for table in (GOLD, EXCLUDED, REGRESSORS)}


def _assert_same(bucketed: dict, whole: dict) -> None:
    for table, (frame, types) in whole.items():
        assert bucketed[table][1] == types, table
        pd.testing.assert_frame_equal(bucketed[table][0], frame, check_exact=True, obj=table)


@pytest.fixture(scope="module")
def orders_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("orders") / "landing"
    generate_sample(landing, n_products=12, n_customers=4, seed=11)
    return landing


# The second grain and the second rule for missing periods run in the slow tier: the first ones cover the path.
@pytest.mark.parametrize("grain", [["product_id"], pytest.param(["product_id", "customer_id"], marks=pytest.mark.slow)])
def test_orders_gold_by_bucket_equals_the_whole_build(tmp_path, orders_landing, grain):
    settings = Settings(grain=grain, compute={"bucket_series": 3}, regressors={"country": "US"})
    whole = _whole(_raw_warehouse(tmp_path / "whole.duckdb", orders_landing, ORDER_TABLES), settings)
    bucketed, n = _bucketed(_raw_warehouse(tmp_path / "b.duckdb", orders_landing, ORDER_TABLES), settings, tmp_path)
    assert n >= 4 and len(whole[GOLD][0]) > 1000
    assert whole[GOLD][0]["promo_share"].gt(0).any() and whole[REGRESSORS][0]["promo_depth"].gt(0).any()
    _assert_same(bucketed, whole)


def _series_file() -> pd.DataFrame:
    """Driver series (declared columns, a planned future) plus the cases whose handling depends on every
    series: one stale, one reporting ahead of the others, one with gaps, one without any value, one misfit."""
    drivers = driver_series(n_series=7, n_weeks=60, future_weeks=4)
    weeks = pd.date_range("2023-01-02", periods=60, freq="W-MON")
    rng = np.random.default_rng(5)

    def series(uid: str, ds: pd.DatetimeIndex, y: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y, "price": 4.0, "promo_flag": 0.0})

    gaps = rng.uniform(5, 9, 60).round(1)
    gaps[[10, 11, 30]] = np.nan
    misfit = series("MISFIT", weeks[:20], np.ones(20))
    misfit = pd.concat([misfit, misfit.iloc[[5]].assign(ds=weeks[5] + pd.Timedelta(days=2))])
    return pd.concat([
        drivers,
        series("STALE", weeks[:40], rng.uniform(1, 3, 40).round(1)),
        series("AHEAD", pd.date_range(weeks[5], periods=62, freq="W-MON"), rng.uniform(1, 3, 62).round(1)),
        series("GAPS", weeks, gaps),
        series("NONE", weeks[:30], np.full(30, np.nan)),
        misfit,
    ], ignore_index=True)


@pytest.mark.parametrize("missing_periods", ["not_reported", pytest.param("zero", marks=pytest.mark.slow)])
def test_series_gold_by_bucket_equals_the_whole_build(tmp_path, missing_periods):
    landing = tmp_path / "landing"
    (landing / "series").mkdir(parents=True)
    _series_file().to_csv(landing / "series" / "series.csv", index=False, date_format="%Y-%m-%d")
    settings = Settings(source="series", compute={"bucket_series": 2}, regressors={"series_columns": SERIES_COLUMNS},
                        gold={"missing_periods": missing_periods}, horizon=4, backtest={"windows": 2})
    extra = tuple(SERIES_COLUMNS)
    whole = _whole(_raw_warehouse(tmp_path / "whole.duckdb", landing, ("series",), extra), settings)
    bucketed, n = _bucketed(_raw_warehouse(tmp_path / "b.duckdb", landing, ("series",), extra), settings, tmp_path)
    assert n == 6
    excluded = whole[EXCLUDED][0].set_index("unique_id")["reason_code"].to_dict()
    # With 'zero', an empty y is a zero: NONE sold nothing, and STALE's zeros run to the others' end.
    reported = ({"NONE": "missing_values", "STALE": "stale"} if missing_periods == "not_reported"
                else {"NONE": "all_zero"})
    assert {"MISFIT": "wrong_frequency", **reported}.items() <= excluded.items()
    assert whole[GOLD][0]["imputed"].any() == (missing_periods == "not_reported")
    _assert_same(bucketed, whole)
    with duckdb.connect(str(tmp_path / "b.duckdb")) as con:
        counted = buckets.stored_exclusion_summary(con, GOLD, EXCLUDED, 0.1)
    assert counted == summarize_exclusions(whole[GOLD][0], whole[EXCLUDED][0], 0.1) and counted.excluded >= 2


@pytest.mark.slow
def test_each_call_of_the_pure_code_holds_one_bucket_of_series(tmp_path, orders_landing, monkeypatch):
    """The memory bound: build_gold and build_regressors never receive more than one bucket's series."""
    seen: dict[str, list[set[str]]] = {"gold": [], "regressors": []}

    def gold_spy(tables, settings, facts=None):
        seen["gold"].append(set(tables["sales_orders"]["product_id"]))
        return build_gold(tables, settings, facts)

    def regressors_spy(gold, *args):
        seen["regressors"].append(set(gold["unique_id"]))
        return build_regressors(gold, *args)

    monkeypatch.setattr(buckets, "build_gold", gold_spy)
    monkeypatch.setattr(buckets, "build_regressors", regressors_spy)
    path = _raw_warehouse(tmp_path / "w.duckdb", orders_landing, ORDER_TABLES)
    settings = Settings(grain=["product_id", "customer_id"], compute={"bucket_series": 6})
    _bucketed(path, settings, tmp_path)
    with duckdb.connect(str(path)) as con:
        products = {p for (p,) in con.execute("select distinct product_id from raw.sales_orders").fetchall()}
        series = {u for (u,) in con.execute(f"select unique_id from {GOLD}").fetchall()}
    for calls, everything in ((seen["gold"], products), (seen["regressors"], series)):
        assert len(calls) >= 4
        assert set().union(*calls) == everything
        assert sum(map(len, calls)) == len(everything)  # disjoint: each series in exactly one call
