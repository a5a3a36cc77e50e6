import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.metrics import smape_terms
from mlops_assets.monitoring.accuracy import (
    accuracy_summary,
    append_history,
    issue_already_stored,
    issue_sql,
    realized_vs_backtest,
    score_forecasts,
)
from mlops_assets.warehouse import append_from_query

T1, T2 = pd.Timestamp("2026-01-05 06:00"), pd.Timestamp("2026-01-12 06:00")
W1, W2, W3 = pd.Timestamp("2026-01-05"), pd.Timestamp("2026-01-12"), pd.Timestamp("2026-01-19")
NAN = np.nan


def history() -> pd.DataFrame:
    rows = [
        # unique_id, ds, y_hat, lo_80, hi_80, lo_95, hi_95, version, issued_at, step
        ("A", W1, 10.0, 8.0, 12.0, 6.0, 14.0, "1", T1, 1),
        ("A", W2, 10.0, 9.0, 11.0, 5.0, 15.0, "1", T1, 2),
        ("B", W1, 0.0, 0.0, 0.0, 0.0, 0.0, "1", T1, 1),
        ("B", W2, 5.0, 4.0, 6.0, 3.0, 7.0, "1", T1, 2),
        ("C", W1, 3.0, 1.0, 5.0, 0.0, 6.0, "1", T1, 1),
        ("A", W2, 12.0, 10.0, 14.0, NAN, NAN, "2", T2, 1),
        ("A", W3, 12.0, 10.0, 14.0, NAN, NAN, "2", T2, 2),
    ]
    columns = ["unique_id", "ds", "y_hat", "lo_80", "hi_80", "lo_95", "hi_95", "model_version", "issued_at"]
    frame = pd.DataFrame([r[:-1] for r in rows], columns=columns)
    frame["horizon_step"] = [r[-1] for r in rows]
    frame["model"] = "AutoETS"
    frame["train_end"] = frame["issued_at"].dt.normalize() - pd.Timedelta(weeks=1)
    return frame


def actuals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["A", "A", "B", "B", "C"],
            "ds": [W1, W2, W1, W2, W1],
            "y": [12.0, 8.0, 0.0, NAN, 0.0],  # B's second week is not reported: not scored
        }
    )


def test_smape_is_m4_scale_with_zero_over_zero_as_zero():
    terms = smape_terms(np.array([12, 0, 0, 8.0]), np.array([10, 0, 3, 12.0]))
    np.testing.assert_allclose(terms, [400 / 22, 0.0, 200.0, 40.0])


def test_score_forecasts_exact_values():
    scored = score_forecasts(history(), actuals())
    keys = list(zip(scored["issued_at"], scored["unique_id"], scored["ds"], strict=True))
    assert keys == [(T1, "A", W1), (T1, "A", W2), (T1, "B", W1), (T1, "C", W1), (T2, "A", W2)]
    np.testing.assert_allclose(scored["y"], [12, 8, 0, 0, 8])
    np.testing.assert_allclose(scored["abs_error"], [2, 2, 0, 3, 4])
    np.testing.assert_allclose(scored["smape"], [400 / 22, 400 / 18, 0.0, 200.0, 40.0])
    assert scored["in_80"].tolist() == [True, False, True, False, False]
    assert scored["in_95"].tolist()[:4] == [True, True, True, True]
    assert scored["in_95"].isna().tolist() == [False] * 4 + [True]  # no 95% interval: unknown, not a miss
    assert {"model", "model_version", "train_end", "horizon_step", "lo_80"} <= set(scored.columns)


def test_an_interpolated_gold_value_is_not_scored_as_an_actual():
    gold = actuals().assign(imputed=[False, True, False, False, False])  # A's second week was a gap
    scored = score_forecasts(history(), gold)
    keys = list(zip(scored["issued_at"], scored["unique_id"], scored["ds"], strict=True))
    assert keys == [(T1, "A", W1), (T1, "B", W1), (T1, "C", W1)]


def test_score_matches_dates_of_any_resolution():
    micro = actuals().assign(ds=actuals()["ds"].astype("datetime64[us]"))
    assert len(score_forecasts(history(), micro)) == 5


def test_score_derives_the_step_when_history_has_none():
    scored = score_forecasts(history().drop(columns="horizon_step"), actuals())
    assert scored["horizon_step"].tolist() == [1, 2, 1, 1, 1]


def test_accuracy_summary_exact_values():
    tables = accuracy_summary(score_forecasts(history(), actuals()))
    assert sorted(tables) == ["by_series", "by_step", "by_version", "trend"]

    by_series = tables["by_series"].set_index("unique_id")
    assert by_series["n"].tolist() == [3, 1, 1]
    np.testing.assert_allclose(by_series["smape"], [(400 / 22 + 400 / 18 + 40) / 3, 0.0, 200.0])
    np.testing.assert_allclose(by_series["mae"], [8 / 3, 0.0, 3.0])
    np.testing.assert_allclose(by_series["bias"], [(-2 + 2 + 4) / 3, 0.0, 3.0])
    np.testing.assert_allclose(by_series["coverage_80"], [1 / 3, 1.0, 0.0])
    np.testing.assert_allclose(by_series["coverage_95"], [1.0, 1.0, 1.0])  # the unknown one is left out

    by_step = tables["by_step"].set_index("horizon_step")
    assert by_step["n"].tolist() == [4, 1]
    np.testing.assert_allclose(by_step["smape"], [(400 / 22 + 0 + 200 + 40) / 4, 400 / 18])
    np.testing.assert_allclose(by_step["mae"], [9 / 4, 2.0])
    np.testing.assert_allclose(by_step["coverage_80"], [0.5, 0.0])

    by_version = tables["by_version"].set_index("model_version")
    np.testing.assert_allclose(by_version["smape"], [(400 / 22 + 400 / 18 + 0 + 200) / 4, 40.0])

    trend = tables["trend"]
    assert trend["issued_at"].tolist() == [T1, T2]
    np.testing.assert_allclose(trend["smape"], by_version["smape"].to_numpy())
    assert math.isnan(trend["coverage_95"].iloc[1])


def test_summary_of_nothing_scored_is_empty_tables():
    assert score_forecasts(history().iloc[0:0], actuals()).empty
    tables = accuracy_summary(score_forecasts(history(), actuals().iloc[0:0]))
    assert all(table.empty for table in tables.values())
    assert list(tables["by_series"].columns) == [
        "unique_id",
        "n",
        "smape",
        "mae",
        "bias",
        "coverage_80",
        "coverage_95",
    ]


def forecasts(version: str = "7", shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "unique_id": ["A", "A", "A", "B", "B", "B"],
            "ds": [W3, W1, W2] * 2,  # out of order on purpose
            "model": "AutoETS",
            "y_hat": [3.0, 1.0, 2.0, 30.0, 10.0, 20.0],
            "model_version": version,
        }
    )
    frame["y_hat"] += shift
    for level in (80, 95):
        frame[f"lo_{level}"], frame[f"hi_{level}"] = frame["y_hat"] - 1, frame["y_hat"] + 1
    return frame


def test_append_history_adds_issue_steps_and_is_idempotent():
    train_end = pd.Timestamp("2025-12-29")
    first = append_history(None, forecasts(), T1, train_end=train_end)
    assert len(first) == 6 and (first["issued_at"] == T1).all() and (first["train_end"] == train_end).all()
    steps = first.set_index(["unique_id", "ds"])["horizon_step"]
    assert steps[("A", W1)] == 1 and steps[("A", W2)] == 2 and steps[("B", W3)] == 3

    rerun = append_history(first, forecasts().iloc[::-1], T2, train_end=train_end)
    pd.testing.assert_frame_equal(rerun, first)
    # A DuckDB round trip changes the last bits of y_hat, not the forecast.
    tiny = append_history(first, forecasts(shift=1e-9), T2, train_end=train_end)
    pd.testing.assert_frame_equal(tiny, first)


def test_append_history_appends_new_forecasts_and_never_changes_old_rows():
    train_end = pd.Timestamp("2025-12-29")
    first = append_history(None, forecasts(), T1, train_end=train_end)
    snapshot = first.copy()
    changed = append_history(first, forecasts(shift=0.5), T2, train_end=train_end)
    assert len(changed) == 12
    pd.testing.assert_frame_equal(changed.iloc[:6], snapshot)
    pd.testing.assert_frame_equal(first, snapshot)  # the input is not modified either
    assert (changed["issued_at"].iloc[6:] == T2).all()

    new_version = append_history(changed, forecasts(version="8"), T2, train_end=train_end)
    later_data = append_history(new_version, forecasts(), T2, train_end=pd.Timestamp("2026-01-05"))
    assert len(new_version) == 18 and len(later_data) == 24
    pd.testing.assert_frame_equal(later_data.iloc[:18], new_version)
    # The same forecast as issue 1 comes back after other issues: still a rerun, not appended.
    assert len(append_history(later_data, forecasts(), T2, train_end=train_end)) == 24


def test_append_history_stores_naive_utc_and_train_end_column():
    issued = pd.Timestamp("2026-01-05 07:00", tz="Europe/Paris")
    frame = forecasts().assign(train_end=pd.Timestamp("2025-12-29"))
    history_rows = append_history(None, frame, issued)
    assert (history_rows["issued_at"] == pd.Timestamp("2026-01-05 06:00")).all()
    assert (history_rows["train_end"] == pd.Timestamp("2025-12-29")).all()
    assert len(append_history(history_rows, frame, issued + pd.Timedelta(days=1))) == 6


def test_realized_vs_backtest():
    scored = score_forecasts(history(), actuals())
    champions = pd.DataFrame(
        {
            "unique_id": ["A", "B", "C", "D"],
            "model": ["AutoETS", "AutoETS", "Naive", "AutoETS"],  # C's champion changed; D has no actuals
            "smape": [20.0, 0.0, 50.0, 10.0],
        }
    )
    table = realized_vs_backtest(scored, champions)
    assert table["unique_id"].tolist() == ["A", "B"]
    assert table["n"].tolist() == [3, 1]
    realized_a = (400 / 22 + 400 / 18 + 40) / 3
    np.testing.assert_allclose(table["realized_smape"], [realized_a, 0.0])
    np.testing.assert_allclose(table["ratio"], [realized_a / 20.0, 1.0])  # 0 promised and 0 realized: 1

    champions.loc[2, "model"] = "AutoETS"
    champions.loc[2, "smape"] = 0.0
    ratio = realized_vs_backtest(scored, champions).set_index("unique_id")["ratio"]
    assert ratio["C"] == pytest.approx(float("inf"))


def test_issues_sharing_an_issued_at_are_told_apart_by_train_end():
    te1, te2 = pd.Timestamp("2025-12-29"), pd.Timestamp("2026-01-05")
    both = append_history(
        append_history(None, forecasts(), T1, train_end=te1), forecasts(shift=1.0), T1, train_end=te2
    )
    assert len(both) == 12
    assert len(append_history(both, forecasts(), T2, train_end=te1)) == 12
    assert len(append_history(both, forecasts(shift=1.0), T2, train_end=te2)) == 12


def _append_in_duckdb(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, issued: pd.Timestamp) -> int:
    """forecast_history's path: the forecasts stored, the issue compared and appended by DuckDB; rows after."""
    con.register("incoming", frame.reset_index(drop=True).copy())
    con.execute("create or replace table f.forecasts as select * from incoming")
    con.unregister("incoming")
    if not issue_already_stored(con, "m.history", "f.forecasts"):
        append_from_query(con, "m.history", issue_sql(con, "f.forecasts"), [issued.to_pydatetime()])
    return con.execute("select count(*) from m.history").fetchall()[0][0]


def test_the_history_kept_by_duckdb_appends_exactly_when_append_history_does():
    con = duckdb.connect()
    con.execute("create schema f")
    te1, te2 = pd.Timestamp("2025-12-29"), pd.Timestamp("2026-01-05")
    steps = [  # the same sequence of issues as above: reruns, changes, versions, train_end
        (forecasts(), T1, te1), (forecasts().iloc[::-1], T2, te1), (forecasts(shift=1e-9), T2, te1),
        (forecasts(shift=0.5), T2, te1), (forecasts(version="8"), T2, te1), (forecasts(), T2, te2),
        (forecasts(), T2, te1), (forecasts(shift=1.0), T1, te2),
    ]
    expected = None
    for frame, issued, train_end in steps:
        frame = frame.assign(train_end=train_end)
        expected = append_history(expected, frame, issued)
        assert _append_in_duckdb(con, frame, issued) == len(expected)
    stored = con.execute("select * from m.history").df()
    pd.testing.assert_frame_equal(stored, expected.astype({"issued_at": "datetime64[us]"}), check_dtype=False)


def test_a_history_started_by_duckdb_has_no_train_end_when_the_forecasts_have_none():
    con = duckdb.connect()
    con.execute("create schema f")
    _append_in_duckdb(con, forecasts(), T1)
    stored = con.execute("select * from m.history").df()
    expected = append_history(None, forecasts(), T1)
    assert list(stored.columns) == list(expected.columns)
    assert stored["train_end"].isna().all() and (stored["horizon_step"] == expected["horizon_step"]).all()
    assert _append_in_duckdb(con, forecasts().iloc[::-1], T2) == 6, "a rerun without train_end is one too"
