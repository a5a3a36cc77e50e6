"""The inference log ingested into monitoring.serving_requests: rotation, bad lines, summaries, the asset."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest

from mlops_assets import schemas
from mlops_assets.monitoring.serving_requests import (
    merge_requests,
    merge_served,
    read_inference_log,
    requests_summary,
    unscored_served,
)
from mlops_assets.serving.inference_log import FILE_NAME, InferenceLog
from mlops_assets_tests.conftest import materialize_all

KEY = dg.AssetKey(["monitoring", "serving_requests"])
# One step writes both tables of the inference log.
LOG_TABLES = dg.AssetSelection.assets(KEY).required_multi_asset_neighbors()


def metadata(result: dg.ExecuteInJobResult, table: str = "serving_requests") -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.path == ["monitoring", table])
    return event.materialization.metadata


def answer(version: str, series: list[str], h: int, y_hat: float = 5.0) -> bytes:
    """The body the app returns: h weekly rows per series from 2026-03-02."""
    days = pd.date_range("2026-03-02", periods=h, freq="W-MON").strftime("%Y-%m-%d")
    rows = [{"unique_id": u, "ds": d, "model": "Naive", "model_version": version, "y_hat": y_hat, "lo_80": 1.0,
             "hi_80": 9.0, "lo_95": 0.0, "hi_95": 10.0} for u in series for d in days]
    return json.dumps({"predictions": rows}).encode()


def write_requests(folder, specs, **log_options) -> None:
    """specs: (request_id, version, status, error_kind, latency_ms, series)."""
    log = InferenceLog(folder, **log_options)
    for request_id, version, status, kind, latency, series in specs:
        record = {"request_id": request_id, "model_version": version, "series": series, "h": [3] * len(series),
                  "status": status, "error_kind": kind, "error": None if status == 200 else "bad",
                  "latency_ms": latency, "forecast_rows": 3 * len(series) if status == 200 else 0}
        log.write(record, answer(version, series, 3) if status == 200 else None)
    log.close()


SPECS = [
    ("r1", "1", 200, "none", 10.0, ["a", "b"]),
    ("r2", "1", 400, "model_error", 2.0, ["zz"]),
    ("r3", "2", 200, "none", 30.0, ["a"]),
    ("r4", "2", 413, "too_many_rows", 1.0, []),
]


def test_lines_of_rotated_files_are_read_oldest_first_and_bad_lines_reported(tmp_path):
    write_requests(tmp_path, SPECS * 5, max_file_bytes=600, backups=20)
    assert len(list(tmp_path.iterdir())) > 3
    with (tmp_path / FILE_NAME).open("a") as current:
        current.write('{"request_id": "torn", "time": \n')
    read = read_inference_log(tmp_path)
    assert read.requests["request_id"].tolist() == [s[0] for s in SPECS] * 5
    assert read.requests["requested_at"].is_monotonic_increasing
    assert [(s["file"], s["reason"].split(":")[0]) for s in read.skipped] == [(FILE_NAME, "JSONDecodeError")]
    first = read.requests.iloc[0]
    assert (first["n_rows"], first["n_series"], first["series"], first["h_max"], first["forecast_rows"]) == (
        2, 2, "a,b", 3, 6)


def test_merge_keeps_requests_whose_file_rotated_away():
    old = pd.DataFrame({"request_id": ["r1", "r2"], "requested_at": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    new = pd.DataFrame({"request_id": ["r2", "r3"], "requested_at": pd.to_datetime(["2026-01-02", "2026-01-03"])})
    assert merge_requests(old, new)["request_id"].tolist() == ["r1", "r2", "r3"]


def test_summary_per_day_and_overall(tmp_path):
    write_requests(tmp_path, SPECS)
    summary = requests_summary(read_inference_log(tmp_path).requests)
    assert summary.requests == 4 and summary.error_share == 0.5 and summary.server_error_share == 0
    assert summary.versions_served == ["1", "2"]
    assert summary.errors_by_kind == {"model_error": 1, "too_many_rows": 1}
    assert summary.p50_latency_ms == 6.0
    day = summary.by_day.iloc[0]
    assert (day["requests"], day["versions_served"]) == (4, "1,2")


def test_the_asset_ingests_the_log_once_and_keeps_what_rotated_away(tmp_path):
    folder = tmp_path / "serving" / "logs"
    write_requests(folder, SPECS[:2])
    first = materialize_all(tmp_path, selection=LOG_TABLES)
    write_requests(folder, SPECS[2:])
    # The oldest lines rotate out of the folder: the table must keep them.
    lines = (folder / FILE_NAME).read_text().splitlines()
    (folder / FILE_NAME).write_text("\n".join(lines[2:]) + "\n")
    second = materialize_all(tmp_path, selection=LOG_TABLES)

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        table = con.execute("select request_id, status, model_version from monitoring.serving_requests").df()
    assert table.values.tolist() == [["r1", 200, "1"], ["r2", 400, "1"], ["r3", 200, "2"], ["r4", 413, "2"]]
    meta = metadata(second)
    assert meta["requests_added"].value == 2 and meta["dagster/row_count"].value == 4
    assert meta["error_share"].value == 0.5 and meta["versions_served"].value == ["1", "2"]
    assert "| day" in meta["requests_per_day"].value
    assert metadata(first)["requests_added"].value == 2
    checks = second.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("matches_contract", True)] * 2


def test_the_asset_runs_before_any_request_was_served(tmp_path):
    result = materialize_all(tmp_path, selection=LOG_TABLES)
    assert metadata(result)["dagster/row_count"].value == 0
    assert metadata(result, "served_forecasts")["dagster/row_count"].value == 0
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True, True]


def test_the_contract_catches_an_error_kind_on_a_200(tmp_path):
    write_requests(tmp_path, [("r1", "1", 200, "model_error", 1.0, ["a"]), ("r2", "1", 200, "none", 1.0, ["a"])])
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schemas.SERVING_REQUESTS.validate(read_inference_log(tmp_path).requests, lazy=True)
    assert "error kind exactly" in str(caught.value)


def test_served_forecasts_are_kept_once_per_version_with_their_step(tmp_path):
    write_requests(tmp_path, SPECS)
    served = read_inference_log(tmp_path).forecasts
    # r1 served a and b by version 1, r3 served a by version 2: 3 series-version pairs x 3 periods.
    assert len(served) == 9 and served["horizon_step"].tolist() == [1, 2, 3] * 3
    assert served.groupby("model_version")["unique_id"].unique().map(sorted).to_dict() == {"1": ["a", "b"], "2": ["a"]}
    again = merge_served(served, served.assign(issued_at=served["issued_at"] + pd.Timedelta(hours=1)))
    pd.testing.assert_frame_equal(again, served)


def test_an_answer_that_does_not_match_its_horizons_keeps_its_request_and_names_its_line(tmp_path):
    log = InferenceLog(tmp_path)
    log.write({"request_id": "x", "model_version": "1", "series": ["a"], "h": [2], "status": 200,
               "error_kind": "none", "latency_ms": 1.0, "forecast_rows": 2}, answer("1", ["a"], 3))
    log.close()
    read = read_inference_log(tmp_path)
    assert read.requests["request_id"].tolist() == ["x"] and read.forecasts.empty
    assert read.skipped[0]["line"] == 1 and read.skipped[0]["reason"].startswith("answer not read")
    assert "summing to 2" in read.skipped[0]["reason"]


def test_only_served_forecasts_the_batch_history_lacks_are_scored():
    served = pd.DataFrame({"unique_id": ["a", "a"], "ds": pd.to_datetime(["2026-03-02"] * 2),
                           "model_version": ["1", "2"], "y_hat": [5.0, 6.0], "request_id": ["r", "r"]})
    history = pd.DataFrame({"unique_id": ["a"], "ds": pd.to_datetime(["2026-03-02"]), "model_version": ["1"]})
    extra = unscored_served(history, served)
    assert extra[["model_version", "source"]].values.tolist() == [["2", "served"]]


def test_forecast_accuracy_scores_what_the_endpoint_served(tmp_path):
    from mlops_assets import warehouse

    folder = tmp_path / "serving" / "logs"
    write_requests(folder, [("r1", "7", 200, "none", 3.0, ["a"])])
    gold = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2026-03-02", periods=2, freq="W-MON"),
                         "y": [5.0, 15.0], "imputed": False})
    history = pd.DataFrame({"unique_id": ["a"], "ds": pd.to_datetime(["2026-03-02"]), "model": ["Naive"],
                            "model_version": ["6"], "y_hat": [4.0], "issued_at": pd.to_datetime(["2026-03-01"]),
                            "horizon_step": [1], "train_end": pd.to_datetime(["2026-02-23"])})
    champions = pd.DataFrame({"unique_id": ["a"], "model": ["Naive"], "smape": [10.0]})
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        warehouse.write_tables(con, replace={"gold.sales_data_for_forecast": gold,
                                             "monitoring.forecast_history": history,
                                             "forecasting.series_champions": champions})
    materialize_all(tmp_path, selection=LOG_TABLES | dg.AssetSelection.assets(["monitoring", "forecast_accuracy"]))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        scored = con.execute("select model_version, source, ds, y, y_hat, smape from monitoring.forecast_accuracy "
                             "order by model_version, ds").df()
    assert scored[["model_version", "source"]].values.tolist() == [["6", "batch"], ["7", "served"], ["7", "served"]]
    assert scored["smape"].round(3).tolist() == [round(200 * 1 / 9, 3), 0.0, 100.0]


def test_an_answer_with_its_own_steps_keeps_them_for_a_series_behind_the_others(tmp_path):
    # h=2 for a series two periods behind the others: the model answered 4 periods, numbered 1..4.
    body = json.loads(answer("1", ["late"], 4))
    for step, row in enumerate(body["predictions"], start=1):
        row["horizon_step"] = step
    log = InferenceLog(tmp_path)
    log.write({"request_id": "x", "model_version": "1", "series": ["late"], "h": [2], "status": 200,
               "error_kind": "none", "latency_ms": 1.0, "forecast_rows": 2}, json.dumps(body).encode())
    log.close()
    read = read_inference_log(tmp_path)
    assert read.skipped == [] and read.forecasts["horizon_step"].tolist() == [1, 2, 3, 4]
