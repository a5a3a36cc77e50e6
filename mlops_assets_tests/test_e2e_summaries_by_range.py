"""The monitoring and serving summaries, built one range of series at a time, write exactly the tables the
whole-table code writes, and their per-range work never holds more than one range of series."""

from __future__ import annotations

import math
from datetime import datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring import accuracy, drift
from mlops_assets.monitoring.serving_requests import unscored_served
from mlops_assets.serving import overall as overall_module
from mlops_assets.serving import plots
from mlops_assets.settings import DataPaths
from mlops_assets.wiring.resources import build_resources
from mlops_assets_tests.conftest import materialize_all

RANGE = 3
SERIES = [f"S{i:02d}" for i in range(1, 9)]
PERIODS = pd.date_range("2024-01-01", periods=70, freq="W-MON")
LAST_ISSUE = pd.Timestamp("2025-04-01 09:30:00")


def _gold() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for i, uid in enumerate(SERIES):
        y = rng.poisson(5 + 3 * i, len(PERIODS)).astype(float)
        y[i::9] = 0.0
        promo = rng.uniform(0, 0.3, len(PERIODS))
        promo[-13:] += 0.5  # a shift of the last 13 periods that drift must see
        frames.append(pd.DataFrame({
            "unique_id": uid, "ds": PERIODS, "y": y, "revenue": y * 2.5,
            "avg_unit_price": 2.5 + rng.normal(0, 0.1, len(PERIODS)), "promo_share": promo,
            "imputed": np.arange(len(PERIODS)) % 17 == 5, "product_id": uid, "product_name": f"Product {uid}",
            # Null attributes in whole ranges (S07, S08): their Parquet parts must still read as text.
            "brand": None if i >= 6 else f"Brand {i % 2}", "category": None if i >= 6 else f"Cat {i % 3}",
        }))
    return pd.concat(frames, ignore_index=True)


def _forecasts(version: str, start: pd.Timestamp, series: list[str], shift: float = 0.0) -> pd.DataFrame:
    ds = pd.date_range(start, periods=4, freq="W-MON")
    rows = pd.DataFrame([(uid, d, step) for uid in series for step, d in enumerate(ds)],
                        columns=["unique_id", "ds", "step"])
    y_hat = 4.0 + rows["step"] + rows["unique_id"].str[1:].astype(int) + shift
    return pd.DataFrame({
        "unique_id": rows["unique_id"], "ds": rows["ds"], "model": "SeasonalNaive", "model_version": version,
        "y_hat": y_hat, "lo_80": y_hat - 2, "hi_80": y_hat + 2, "lo_95": y_hat - 4, "hi_95": y_hat + 4,
    })


def _history() -> pd.DataFrame:
    """Two past issues whose periods gold now covers (versions 1 and 2), as forecast_history stores them."""
    first = LAST_ISSUE - pd.Timedelta(days=28)
    issues = [accuracy.append_history(None, _forecasts("1", PERIODS[-8], SERIES[:7]), first, train_end=PERIODS[-9]),
              accuracy.append_history(None, _forecasts("2", PERIODS[-4], SERIES, shift=1.5), LAST_ISSUE,
                                      train_end=PERIODS[-5])]
    return pd.concat(issues, ignore_index=True)


def _served() -> pd.DataFrame:
    """Forecasts the endpoint served: version 3 for S02 and S07 (no batch issue), and one batch duplicate."""
    rows = _forecasts("3", PERIODS[-3], ["S02", "S07"]).iloc[:, :5]
    batch = _forecasts("2", PERIODS[-4], ["S05"]).iloc[:1, :5]
    served = pd.concat([rows, batch], ignore_index=True)
    return served.assign(issued_at=LAST_ISSUE + pd.Timedelta(days=1), horizon_step=1,
                         request_id=[f"r{i}" for i in range(len(served))])


def _champions() -> pd.DataFrame:
    return pd.DataFrame({"unique_id": SERIES, "model": "SeasonalNaive", "smape": np.linspace(10, 40, len(SERIES)),
                         "runner_up": "Naive", "runner_up_smape": 50.0, "seasonal_naive_smape": 20.0,
                         "metric": "smape", "score": np.linspace(10, 40, len(SERIES))})


def _data_dir(root, range_series: int):
    root.mkdir(parents=True, exist_ok=True)
    settings = root / "settings.yaml"
    settings.write_text(f"compute: {{bucket_series: {range_series}}}\nplots: {{max_series: 5}}\n")
    resources = build_resources(str(root), str(settings))
    resources["warehouse"].write(replace={
        "gold.sales_data_for_forecast": _gold(),
        "forecasting.forecasts": _forecasts("2", PERIODS[-1] + pd.Timedelta(weeks=1), SERIES[:7]),
        "forecasting.series_champions": _champions(),
        "monitoring.forecast_history": _history(),
        "monitoring.served_forecasts": _served(),
    })
    return root, str(settings), resources["warehouse"]


def _stored(warehouse, table: str) -> tuple[pd.DataFrame, list]:
    with warehouse.connection() as con:
        types = con.execute(f"select column_name, column_type from (describe {table})").fetchall()
        return con.execute(f"select * from {table}").df(), types


def _as_the_whole_table_code_writes(warehouse, table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """What the whole-table code stored: its frame written by Warehouse.replace, read back."""
    warehouse.replace(table, frame)
    return _stored(warehouse, table)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _data_dir(tmp_path_factory.mktemp("by_range"), RANGE)


def _spy(monkeypatch, module, name: str, seen: list, frame_arg: int = 0):
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(sorted(set(args[frame_arg]["unique_id"].astype(str))))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


@pytest.mark.e2e
def test_sales_overall_and_its_plots_equal_the_whole_table_build(tiny, tmp_path, monkeypatch):
    import mlops_assets.serving.overall_by_range as overall_by_range

    data_dir, settings, warehouse = tiny
    seen = []
    _spy(monkeypatch, overall_by_range, "build_sales_overall", seen)
    result = materialize_all(data_dir, settings, selection="serving/sales_overall")
    assert seen == [SERIES[0:3], SERIES[3:6], SERIES[6:8]], "one call per range of 3 series, never more"

    got, got_types = _stored(warehouse, "serving.sales_overall")
    gold, forecasts = warehouse.read("gold.sales_data_for_forecast"), warehouse.read("forecasting.forecasts")
    whole = overall_module.build_sales_overall(gold, forecasts)
    expected, expected_types = _as_the_whole_table_code_writes(warehouse, "test.expected_overall", whole)
    assert got_types == expected_types
    pd.testing.assert_frame_equal(got, expected, check_exact=True)

    # The same PNGs, byte for byte, as the whole-table writer draws from the whole table.
    folder = DataPaths(data_dir).plots / "series"
    reference = plots.write_series_plots(whole, tmp_path / "whole", max_series=5)
    assert sorted(p.name for p in folder.glob("*.png")) == [p.name for p in reference.written]
    for path in reference.written:
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name

    metadata = result.asset_materializations_for_node("serving__sales_overall")[0].metadata
    assert metadata["dagster/row_count"].value == len(whole)
    assert metadata["rows_by_origin"].value == whole["origin"].value_counts().to_dict()
    assert metadata["unplotted_series"].value == len(SERIES) - 5
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns] == list(whole.columns)


def test_sales_overall_volume_from_sql_ranks_as_the_pandas_totals(tiny):
    _, _, warehouse = tiny
    whole = overall_module.build_sales_overall(warehouse.read("gold.sales_data_for_forecast"),
                                               warehouse.read("forecasting.forecasts"))
    volume = warehouse.query("select unique_id::varchar as unique_id, coalesce(sum(y), 0) as volume from "
                             "gold.sales_data_for_forecast group by 1").set_index("unique_id")["volume"]
    train = whole[whole["origin"] == "Train"]
    pd.testing.assert_series_equal(volume.sort_index(), train.groupby("unique_id")["sales"].sum(),
                                   check_names=False)
    assert plots.rank_by_volume(volume) == plots.series_by_volume(whole)


@pytest.mark.e2e
def test_forecast_accuracy_equals_the_whole_table_scoring(tiny, monkeypatch):
    import mlops_assets.monitoring.accuracy_by_range as accuracy_by_range

    data_dir, settings, warehouse = tiny
    seen = []
    _spy(monkeypatch, accuracy_by_range, "score_forecasts", seen)
    result = materialize_all(data_dir, settings, selection="monitoring/forecast_accuracy")
    assert seen == [SERIES[0:3], SERIES[3:6], SERIES[6:8]]

    history = warehouse.read("monitoring.forecast_history")
    served = unscored_served(history, warehouse.read("monitoring.served_forecasts"))
    assert set(served["unique_id"]) == {"S02", "S07"}, "served rows in two ranges, none in the third"
    gold = warehouse.read("gold.sales_data_for_forecast")[["unique_id", "ds", "y", "imputed"]]
    whole = accuracy.score_forecasts(pd.concat([history.assign(source="batch"), served], ignore_index=True), gold)
    got, got_types = _stored(warehouse, "monitoring.forecast_accuracy")
    expected, expected_types = _as_the_whole_table_code_writes(warehouse, "test.expected_accuracy", whole)
    assert got_types == expected_types
    pd.testing.assert_frame_equal(got, expected, check_exact=True)

    metadata = result.asset_materializations_for_node("monitoring__forecast_accuracy")[0].metadata
    assert metadata["forecasts_scored"].value == len(whole) > 0
    check = result.get_asset_check_evaluations()[0]
    realized = accuracy.realized_vs_backtest(whole, warehouse.read("forecasting.series_champions"))
    assert check.metadata["realized_over_backtest"].value == pytest.approx(
        realized["realized_smape"].mean() / realized["backtest_smape"].mean(), rel=1e-12)


@pytest.mark.e2e
def test_accuracy_summaries_in_sql_equal_the_pandas_ones(tiny):
    _, _, warehouse = tiny
    scored = warehouse.read("monitoring.forecast_accuracy")
    assert len(scored)
    for name, table in accuracy.accuracy_summary(scored).items():
        in_sql = warehouse.query(accuracy.summary_sql("monitoring.forecast_accuracy", accuracy.SUMMARY_KEYS[name]))
        pd.testing.assert_frame_equal(in_sql, table, check_dtype=False, rtol=1e-12, obj=name)


@pytest.mark.e2e
def test_forecast_history_appends_in_sql_as_append_history_does(tiny):
    data_dir, settings, warehouse = tiny
    before = warehouse.read("monitoring.forecast_history")
    materialize_all(data_dir, settings, selection="monitoring/forecast_history")
    got, got_types = _stored(warehouse, "monitoring.forecast_history")
    issued = got["issued_at"].iloc[-1]
    assert issued > LAST_ISSUE
    whole = accuracy.append_history(before, warehouse.read("forecasting.forecasts"),
                                    pd.Timestamp(datetime.fromisoformat(str(issued))))
    expected, expected_types = _as_the_whole_table_code_writes(warehouse, "test.expected_history", whole)
    assert got_types == expected_types
    pd.testing.assert_frame_equal(got, expected, check_exact=True)

    # The same forecasts again: nothing appended, in SQL as in pandas.
    result = materialize_all(data_dir, settings, selection="monitoring/forecast_history")
    assert result.asset_materializations_for_node("monitoring__forecast_history")[0].metadata[
        "rows_appended"].value == 0
    assert len(warehouse.read("monitoring.forecast_history")) == len(got)


@pytest.mark.e2e
def test_drift_report_by_range_is_the_whole_table_report(tiny, monkeypatch):
    data_dir, settings, warehouse = tiny
    seen = []
    _spy(monkeypatch, drift, "window_features", seen)
    materialize_all(data_dir, settings, selection=dg.AssetSelection.assets(
        ["monitoring", "drift_report"], ["monitoring", "drift_summary"]))
    assert seen == [SERIES[0:3], SERIES[3:6], SERIES[6:8]]

    row = warehouse.read("monitoring.drift_summary").iloc[-1]
    whole = drift.compute_drift(warehouse.read("gold.sales_data_for_forecast"))
    assert whole.drifted_columns, "the sample drifts somewhere, so the comparison means something"
    assert row["drift_share"] == whole.drift_share
    assert row["drifted_columns"] == ",".join(whole.drifted_columns)
    assert row["method"] == whole.method
    assert row["n_columns"] == whole.n_columns
    assert (row["reference_start"], row["current_end"]) == (whole.reference_window[0], whole.current_window[1])


def test_drift_features_by_range_stack_into_the_whole_table_features():
    gold = _gold()
    gold.loc[gold["unique_id"] == "S03", "y"] = 0.0  # no level: left out, and counted
    whole = drift.drift_features(gold)
    periods = sorted(gold["ds"].unique())
    reference, current, _ = drift.drift_windows(periods, 13, 52)
    parts, left_out = [], 0
    for k in range(math.ceil(len(SERIES) / RANGE)):
        rows = gold[gold["unique_id"].isin(SERIES[k * RANGE:(k + 1) * RANGE])]
        features, missing = drift.window_features(rows, reference, current, with_category=True)
        parts.append(features)
        left_out += missing
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    assert left_out == 1


def test_the_gold_fingerprint_sees_every_value_but_not_the_row_order():
    import duckdb

    from mlops_assets.warehouse import table_fingerprint

    con = duckdb.connect()
    con.execute("create schema g")
    gold = _gold()
    con.register("gold", gold)
    con.execute("create table g.a as select * from gold")
    con.execute("create table g.b as select * from gold order by ds desc, unique_id")
    con.register("changed", gold.assign(y=gold["y"].where(gold.index != 100, gold["y"] + 1)))
    con.execute("create table g.c as select * from changed")
    assert table_fingerprint(con, "g.a") == table_fingerprint(con, "g.b")
    assert table_fingerprint(con, "g.a") != table_fingerprint(con, "g.c")


@pytest.mark.parametrize("selection, missing", [
    ("monitoring/forecast_history", "forecasting.forecasts"),
    ("monitoring/forecast_accuracy", "monitoring.forecast_history"),
    ("serving/sales_overall", "gold.sales_data_for_forecast"),
])
@pytest.mark.e2e
def test_a_missing_input_table_is_named(tmp_path, selection, missing):
    result = materialize_all(tmp_path, "", selection=selection, raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"table {missing} does not exist yet: materialize its asset first" in str(failure.event_specific_data)
