"""The levels' issued forecasts kept once per issue and scored against the nodes' actuals, numbers by hand."""

import duckdb
import pandas as pd
import pytest

from mlops_assets.monitoring.accuracy import issue_already_stored, issue_sql, summary_sql
from mlops_assets.monitoring.accuracy_by_level import ISSUE_VERSION, issue_source, level_summary, score_levels
from mlops_assets.settings import Settings
from mlops_assets.warehouse import table_exists

SETTINGS = Settings(hierarchy={"levels": [["category"]]})
WEEKS = pd.date_range("2024-01-01", periods=6, freq="W-MON")
GOLD = "gold.sales_data_for_forecast"
FORECASTS = "forecasting.forecasts_by_level"
HISTORY = "monitoring.forecast_history_by_level"
# Weeks 1-4 were known at the issue; weeks 5 and 6 arrive afterwards. P3 (Cream) is not forecast, yet counts.
SALES = {"P1": ("Cheese", [5, 5, 5, 5, 10, 20]), "P2": ("Cheese", [1, 1, 1, 1, 30, 0]),
         "P3": ("Cream", [2, 2, 2, 2, 4, 4])}
# Forecasts of weeks 5 and 6, the default method (BottomUp) beside a Base row that is not issued.
ISSUED = {("total", "total"): [40, 30], ("category", "category/Cheese"): [36, 26],
          ("category", "category/Cream"): [4, 4], ("product", "P1"): [16, 16],
          ("product", "P2"): [20, 10], ("product", "P3"): [0, 0]}


def gold(weeks: int) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"unique_id": uid, "ds": WEEKS[:weeks], "y": [float(v) for v in y[:weeks]],
                                    "category": cat}) for uid, (cat, y) in SALES.items()], ignore_index=True)


def forecasts(shift: float = 0.0) -> pd.DataFrame:
    rows = []
    for (level, node), y_hat in ISSUED.items():
        for method, default in (("BottomUp", True), ("Base", False)):
            y = pd.Series(y_hat, dtype=float) + shift + (0 if default else 1)
            rows.append(pd.DataFrame({"level": level, "unique_id": node, "ds": WEEKS[4:], "method": method,
                                      "y_hat": y, "lo_80": y - 5, "hi_80": y + 5, "lo_95": y - 10, "hi_95": y + 10,
                                      "base_model": "Naive", "is_default": default}))
    return pd.concat(rows, ignore_index=True)


def replace(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.register("_frame", frame)
    con.execute(f"create or replace table {table} as select * from _frame")
    con.unregister("_frame")


def issue(con: duckdb.DuckDBPyConnection, at: str) -> bool:
    """forecast_history_by_level's step: append the default rows unless the same issue is stored."""
    source = issue_source(con, FORECASTS, "W-MON")
    if issue_already_stored(con, HISTORY, source, version=ISSUE_VERSION):
        return False
    sql = issue_sql(con, source)
    into = f"insert into {HISTORY}" if table_exists(con, HISTORY) else f"create table {HISTORY} as"
    con.execute(f"{into} {sql}", [at])
    return True


@pytest.fixture
def con():
    with duckdb.connect() as con:
        for schema in ("gold", "forecasting", "monitoring"):
            con.execute(f"create schema {schema}")
        replace(con, GOLD, gold(4))
        replace(con, FORECASTS, forecasts())
        yield con


def test_an_issue_is_kept_once_with_its_level_step_and_training_end(con):
    assert issue(con, "2024-01-29 12:00:00")
    assert not issue(con, "2024-01-29 13:00:00")  # the same forecasts again: nothing appended
    history = con.execute(f"select * from {HISTORY} order by unique_id, ds").df()
    assert len(history) == 12 and (history["method"] == "BottomUp").all()
    assert set(history["level"]) == {"total", "category", "product"}
    assert (history["train_end"] == WEEKS[3]).all()
    assert history.groupby("unique_id")["horizon_step"].apply(list).eq([[1, 2]] * 6).all()
    assert (history["model"] == "Naive").all()
    replace(con, FORECASTS, forecasts(shift=1.0))  # a new forecast is a new issue
    assert issue(con, "2024-01-29 14:00:00")
    assert con.execute(f"select count(distinct issued_at) from {HISTORY}").fetchone()[0] == 2


def test_issued_forecasts_are_scored_against_each_nodes_actuals_once_they_arrive(con, tmp_path):
    issue(con, "2024-01-29 12:00:00")
    nothing = score_levels(con, history=HISTORY, gold=GOLD, settings=SETTINGS, parts=tmp_path / "p0",
                           range_series=2)
    assert nothing.rows == 0 and "level" in nothing.columns  # no actual of weeks 5-6 yet

    replace(con, GOLD, gold(6))
    scored = score_levels(con, history=HISTORY, gold=GOLD, settings=SETTINGS, parts=tmp_path / "p1", range_series=2)
    assert scored.rows == 12
    table = con.execute(f"select * from '{scored.pattern}'").df().set_index(["unique_id", "ds"])
    # Actuals: total 44 then 24, Cheese 40 then 20, Cream 4 then 4; P3 (not forecast) counts in both.
    total = table.loc[("total", WEEKS[4])]
    assert total["y"] == 44 and total["abs_error"] == 4
    assert total["smape"] == pytest.approx(200 * 4 / (44 + 40))
    assert table.loc[("category/Cheese", WEEKS[5]), "y"] == 20
    assert table.loc[("category/Cheese", WEEKS[5]), "smape"] == pytest.approx(200 * 6 / (20 + 26))
    assert table.loc[("P2", WEEKS[5]), "smape"] == 200  # actual 0, forecast 10
    assert bool(table.loc[("total", WEEKS[5]), "in_80"]) is False  # 24 outside 30 -/+ 5
    assert bool(table.loc[("category/Cream", WEEKS[4]), "in_80"]) is True

    replace(con, "monitoring.scored", table.reset_index())
    summary = con.execute(summary_sql("monitoring.scored", "level", wape=True)).df().set_index("level")
    # WAPE per level: 100 * sum|error| / sum|actual|. total: (4 + 6) / (44 + 24); category: (4+6+0+0) / (40+20+4+4)
    assert summary.loc["total", "wape"] == pytest.approx(100 * 10 / 68)
    assert summary.loc["category", "wape"] == pytest.approx(100 * 10 / 68)
    # product: P1 |10-16|+|20-16|, P2 |30-20|+|0-10|, P3 |4-0|+|4-0| over 10+20+30+0+4+4
    assert summary.loc["product", "wape"] == pytest.approx(100 * (6 + 4 + 10 + 10 + 4 + 4) / 68)
    assert summary.loc["total", "smape"] == pytest.approx((200 * 4 / 84 + 200 * 6 / 54) / 2)
    assert summary.loc["product", "n"] == 6

    evaluation = pd.DataFrame({"level": ["total", "category", "product", "total"], "method": "BottomUp",
                               "smape": [11.0, 12.0, 13.0, 99.0], "wape": [1.0, 2.0, 3.0, 99.0],
                               "is_default": [True, True, True, False]})
    replace(con, "forecasting.evaluation_by_level", evaluation)
    per_level = level_summary(con, "monitoring.scored", "forecasting.evaluation_by_level")
    assert per_level["level"].tolist() == ["total", "category", "product"]  # top first
    assert per_level["nodes"].tolist() == [1, 2, 3]
    assert per_level["backtest_smape"].tolist() == [11.0, 12.0, 13.0]
    assert per_level["wape"].tolist() == pytest.approx(summary.loc[["total", "category", "product"], "wape"].tolist())


def test_the_history_and_the_scored_rows_meet_their_contracts_in_pandas_and_in_duckdb(con, tmp_path):
    from mlops_assets import schemas
    from mlops_assets.schemas_sql import validate_in_duckdb

    issue(con, "2024-01-29 12:00:00")
    replace(con, GOLD, gold(6))
    scored = score_levels(con, history=HISTORY, gold=GOLD, settings=SETTINGS, parts=tmp_path, range_series=2)
    con.execute(f"create table monitoring.scored as select * from '{scored.pattern}'")
    for table, contract in ((HISTORY, schemas.forecast_history_by_level_schema()),
                            ("monitoring.scored", schemas.forecast_accuracy_by_level_schema())):
        contract.validate(con.execute(f"select * from {table}").df(), lazy=True)
        assert validate_in_duckdb(con, table, contract)[0] == 0
    late = con.execute("select * from monitoring.scored").df().assign(train_end=WEEKS[5])  # scored before its data
    with pytest.raises(Exception, match="after its model's training data"):
        schemas.forecast_accuracy_by_level_schema().validate(late, lazy=True)
