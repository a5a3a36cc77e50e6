"""Static attributes of a series (settings.regressors.statics): read from gold one value per series, carried
with the regressors by model group, and used by the global model as static features."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.eligible import ELIGIBLE_SQL, regressors_sql
from mlops_assets.forecasting.engine import backtest_by_group
from mlops_assets.forecasting.global_model import backtest_global, split_statics
from mlops_assets.forecasting.zoo import GLOBAL_MODEL, declared_drivers, default_models
from mlops_assets.registry.champion_model import forecaster_for
from mlops_assets.settings import Settings

H = 4


def _data(n_series: int = 12, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Weekly series whose promotions lift the sales of one brand and cut those of the other: only the brand
    tells the two apart."""
    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-02", periods=n + H, freq="W-MON")
    history, regressors, brands = [], [], []
    for i in range(n_series):
        uid, brand = f"s{i:02d}", "Lifted" if i % 2 else "Cannibalised"
        promo = (rng.random(n + H) < 0.3) * 20.0
        y = (20 + i) * (1 + (1.5 if i % 2 else -0.8) * promo / 20) + rng.normal(0, 0.5, n + H)
        history.append(pd.DataFrame({"unique_id": uid, "ds": ds[:n], "y": y[:n]}))
        regressors.append(pd.DataFrame({"unique_id": uid, "ds": ds, "promo_depth": promo}))
        brands.append((uid, brand))
    return (pd.concat(history, ignore_index=True), pd.concat(regressors, ignore_index=True),
            pd.DataFrame(brands, columns=["unique_id", "brand"]))


def _mae(backtest: pd.DataFrame) -> float:
    return float((backtest["y"] - backtest["y_hat"]).abs().mean())


def test_a_text_attribute_that_separates_the_series_improves_the_global_backtest():
    history, regressors, brands = _data()
    args = ("W-MON", 4, H, 2, H)
    without = backtest_global(history, regressors, *args)
    given = backtest_global(history, regressors, *args, statics=brands)
    assert _mae(given) < 0.7 * _mae(without)
    # Carried as a regressors column, as the product reads it from gold: the same backtest.
    carried = regressors.merge(brands.rename(columns={"brand": "static:brand"}), on="unique_id")
    pd.testing.assert_frame_equal(backtest_global(history, carried, *args), given)


def test_split_statics_takes_each_series_first_row_and_leaves_the_drivers():
    _, regressors, brands = _data(n_series=2)
    carried = regressors.merge(brands.rename(columns={"brand": "static:brand"}), on="unique_id")
    # A row added past a series' end (the registry's padding) holds 0: not the series' attribute.
    padded = pd.concat([carried, pd.DataFrame({"unique_id": ["s00"], "ds": [pd.Timestamp("2030-01-07")],
                                               "promo_depth": [0.0], "static:brand": [0.0]})])
    drivers, statics = split_statics(padded)
    assert list(drivers.columns) == ["unique_id", "ds", "promo_depth"]
    pd.testing.assert_frame_equal(statics, brands)
    assert split_statics(regressors)[1] is None


def test_the_registered_global_model_is_fitted_with_the_statics():
    history, regressors, brands = _data()
    settings = Settings(horizon=H, season_length=4, models=[GLOBAL_MODEL])
    champions = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique()), "model": GLOBAL_MODEL})
    carried = regressors.merge(brands.rename(columns={"brand": "static:brand"}), on="unique_id")
    backtest = run_backtest(history, settings, [GLOBAL_MODEL], n_jobs=1, regressors=carried)
    with_statics = forecaster_for(settings, n_jobs=1).fit(history, champions, backtest, carried).predict()
    without = forecaster_for(settings, n_jobs=1).fit(history, champions, backtest, regressors).predict()
    assert len(with_statics) == 12 * H and np.isfinite(with_statics["y_hat"]).all()
    assert not np.allclose(with_statics["y_hat"], without["y_hat"])


# ------------------------------------------------------------------------------------------- from gold, by SQL
@contextmanager
def _gold(path: Path, history: pd.DataFrame, regressors: pd.DataFrame, brands: pd.DataFrame):
    with duckdb.connect(str(path)) as con:
        con.register("h", history.merge(brands, on="unique_id"))
        con.register("r", regressors)
        con.execute("create schema gold")
        con.execute("create table gold.sales_data_for_forecast as select *, null::varchar as category from h")
        con.execute("create table gold.regressors as select * from r")
        con.execute("create table gold.series_excluded as select unique_id from h where false")

    @contextmanager
    def connect():
        with duckdb.connect(str(path)) as con:
            yield con

    yield connect


def _settings(**extra) -> Settings:
    return Settings(horizon=H, season_length=4, backtest={"windows": 2}, models=["Naive", GLOBAL_MODEL],
                    regressors={"use": ["promo_depth"], "statics": ["brand"]}, **extra)


def test_gold_gives_one_value_per_series_the_latest_one(tmp_path):
    history, regressors, brands = _data(n_series=2)
    with _gold(tmp_path / "w.duckdb", history, regressors, brands) as connect, connect() as con:
        # A series file renamed s01's brand in its last row: the latest value stands for the series.
        con.execute("update gold.sales_data_for_forecast set brand = 'Renamed' where unique_id = 's01' and "
                    "ds = (select max(ds) from gold.sales_data_for_forecast)")
        rows = con.execute(regressors_sql(con, _settings(), ["Naive", GLOBAL_MODEL])).df()
        # No model of the list reads them: nothing is read.
        assert regressors_sql(con, _settings(), ["Naive"]) is None
    assert len(rows) == len(regressors)
    assert rows.groupby("unique_id")["static:brand"].unique().map(list).to_dict() == {
        "s00": ["Cannibalised"], "s01": ["Renamed"]}


def test_an_attribute_gold_lacks_or_never_fills_is_named(tmp_path):
    history, regressors, brands = _data(n_series=2)
    with _gold(tmp_path / "w.duckdb", history, regressors, brands) as connect, connect() as con:
        missing = Settings(regressors={"statics": ["brand", "region"]})
        with pytest.raises(ValueError, match=r"regressors.statics names \['region'\], not a column of "
                                             r"gold.sales_data_for_forecast"):
            regressors_sql(con, missing, [GLOBAL_MODEL])
        with pytest.raises(ValueError, match=r"\['category'\], which has no value in any row"):
            regressors_sql(con, Settings(regressors={"statics": ["category"]}), [GLOBAL_MODEL])


def test_statics_are_declared_once_from_the_known_attributes_and_bring_the_global_model():
    with pytest.raises(ValidationError, match="statics"):
        Settings(regressors={"statics": ["store_type"]})
    with pytest.raises(ValidationError, match="twice"):
        Settings(regressors={"statics": ["brand", "brand"]})
    settings = Settings(frequency="MS", regressors={"statics": ["brand", "category"]})
    assert declared_drivers(settings) == ["brand", "category"]
    assert GLOBAL_MODEL in default_models(settings, declared_drivers(settings))


@pytest.mark.parametrize(("engine", "workers"), [("local", 1), ("local", 2),
                                                  pytest.param("dask", 2, marks=pytest.mark.dask)])
def test_the_engine_carries_the_statics_by_model_group(tmp_path, engine, workers, request):
    """By model group on any engine, the backtest equals one in-process backtest per group with the statics."""
    history, regressors, brands = _data(n_series=10)
    scheduler = request.getfixturevalue("dask_scheduler") if engine == "dask" else None
    settings = _settings(compute={"engine": engine, "workers": workers, "bucket_series": 4, "address": scheduler})
    models = ["Naive", GLOBAL_MODEL]
    with _gold(tmp_path / "w.duckdb", history, regressors, brands) as connect:
        with connect() as con:
            x_sql = regressors_sql(con, settings, models)
            x = con.execute(x_sql).df()
        run = backtest_by_group(connect, ELIGIBLE_SQL, tmp_path / "engine", "fp", settings, models,
                                 regressors_sql=x_sql)
    assert len(run.groups) == 3
    with duckdb.connect() as con:
        stored = con.execute(f"select * from read_parquet('{run.parts}') order by unique_id, model, cutoff, ds").df()
    per_group = pd.concat([
        run_backtest(history[history["unique_id"].isin(g.unique_ids)], settings, models, n_jobs=1,
                     regressors=x[x["unique_id"].isin(g.unique_ids)])
        for g in run.groups
    ]).sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, per_group, check_exact=False, rtol=0, atol=1e-9)
    # The statics reached each group's global model: without them its backtest differs.
    plain = run_backtest(history[history["unique_id"].isin(run.groups[0].unique_ids)], settings, models, n_jobs=1,
                         regressors=x.drop(columns="static:brand")[x["unique_id"].isin(run.groups[0].unique_ids)])
    first = per_group[per_group["unique_id"].isin(run.groups[0].unique_ids)].reset_index(drop=True)
    assert not np.allclose(plain.loc[plain["model"] == GLOBAL_MODEL, "y_hat"],
                           first.loc[first["model"] == GLOBAL_MODEL, "y_hat"])


def test_a_series_files_text_column_declared_static_is_ingested_and_reaches_the_regressors(tmp_path):
    from datetime import date

    from mlops_assets_tests.ingest.raw_runs import ingest

    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "s.csv").write_text(
        "unique_id,ds,y,store_type\nA,2024-01-01,5,Mall\nA,2024-01-08,6,Mall\nB,2024-01-01,3,\nB,2024-01-08,4,"
        "High street\n")
    db = tmp_path / "warehouse.duckdb"
    before = ingest(tmp_path, db, "series", today=date(2026, 11, 1))
    assert "store_type" not in before.table
    # Declared after its file arrived: the file is read again for it.
    raw = ingest(tmp_path, db, "series", today=date(2026, 11, 1), extra_texts=("store_type",)).table
    assert raw["store_type"].tolist() == ["Mall", "Mall", None, "High street"]
    settings = Settings(source="series", regressors={"use": [], "statics": ["store_type"]})
    with duckdb.connect(str(db)) as con:
        con.execute("create schema gold")
        con.execute("create table gold.sales_data_for_forecast as select unique_id, ds, y, null::varchar as brand "
                    "from raw.series")
        con.execute("create table gold.regressors as select unique_id, ds from raw.series")
        rows = con.execute(regressors_sql(con, settings, [GLOBAL_MODEL])).df().sort_values(["unique_id", "ds"])
        with pytest.raises(ValueError, match=r"\['brand'\], which has no value in any row of gold"):
            regressors_sql(con, Settings(source="series", regressors={"statics": ["brand"]}), [GLOBAL_MODEL])
    assert rows["static:store_type"].tolist() == ["Mall", "Mall", "High street", "High street"]


def test_a_series_files_static_is_not_also_a_driver_and_not_an_order_lines_column():
    assert Settings(source="series", regressors={"statics": ["store_type", "brand"]}).regressors.file_statics == [
        "store_type"]
    with pytest.raises(ValidationError, match="not both"):
        Settings(source="series", regressors={"statics": ["store_type"], "series_columns": {"store_type": "planned"}})
    with pytest.raises(ValidationError, match="neither one of"):
        Settings(source="series", regressors={"statics": ["y"]})
    with pytest.raises(ValidationError, match=r"\['store_type'\] would be columns of series files"):
        Settings(regressors={"statics": ["store_type"]})
