"""Request bounds, checked on bodies as a client sends them (case 17 of issue 11)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from mlops_assets.serving.limits import PARQUET, RequestLimits, RequestRefused, check_request

JSON = "application/json"
LIMITS = RequestLimits(max_body_bytes=10_000, max_rows=50, max_forecast_rows=200)


def records(rows: list[dict]) -> bytes:
    return json.dumps({"dataframe_records": rows}).encode()


def refused(body: bytes, content_type: str = JSON, limits: RequestLimits = LIMITS) -> RequestRefused:
    with pytest.raises(RequestRefused) as caught:
        check_request(body, content_type, limits, horizon=13)
    return caught.value


def test_a_valid_request_is_summarized_in_every_json_form():
    rows = [{"unique_id": "a", "h": 13}, {"unique_id": "b", "h": 2.0}]
    split = {"dataframe_split": {"columns": ["h", "unique_id"], "data": [[13, "a"], [2, "b"]]}}
    inputs = {"inputs": {"unique_id": ["a", "b"], "h": [13, 2]}}
    for body in (records(rows), json.dumps(split).encode(), json.dumps(inputs).encode()):
        summary = check_request(body, JSON, LIMITS, horizon=13)
        assert (summary.series, summary.h, summary.forecast_rows) == (["a", "b"], [13, 2], 15)


def test_csv_and_parquet_bodies_are_bounded_too():
    frame = pd.DataFrame({"unique_id": [f"s{i}" for i in range(60)], "h": 1})
    assert refused(frame.to_csv(index=False).encode(), "text/csv").kind == "too_many_rows"
    buffer = io.BytesIO()
    frame.head(3).assign(h=[1, 2, 14]).to_parquet(buffer)
    assert "h=14 in row 2" in refused(buffer.getvalue(), PARQUET).message


def test_a_body_over_the_byte_limit_is_413_naming_the_limit():
    error = refused(records([{"unique_id": "x" * 20_000, "h": 1}]))
    assert (error.status, error.kind, error.error_code) == (413, "body_too_large", "RESOURCE_LIMIT_EXCEEDED")
    assert "more than the limit of 10,000 bytes" in error.message and "serving.max_body_bytes" in error.message


def test_too_many_rows_is_413_naming_the_limit():
    error = refused(records([{"unique_id": "a", "h": 1}] * 51))
    assert (error.status, error.kind) == (413, "too_many_rows")
    assert "51 rows; the limit is 50 rows" in error.message


def test_horizon_times_series_is_bounded():
    error = refused(records([{"unique_id": f"s{i}", "h": 13} for i in range(16)]))
    assert (error.status, error.kind) == (413, "too_many_forecast_rows")
    assert "208 forecast rows" in error.message and "the limit is 200" in error.message


def test_rows_of_series_behind_the_others_count_against_the_limit():
    # 14 series x h 13 = 182 rows fit under 200; answered with up to 2 more rows each (series behind the
    # others reach the common end), they may be 210: refused before the model runs.
    body = records([{"unique_id": f"s{i}", "h": 13} for i in range(14)])
    assert check_request(body, JSON, LIMITS, horizon=13).h == [13] * 14
    with pytest.raises(RequestRefused) as caught:
        check_request(body, JSON, LIMITS, horizon=13, extra_steps=2)
    assert caught.value.kind == "too_many_forecast_rows"
    assert "up to 210 forecast rows" in caught.value.message and "plus 2 for series behind" in caught.value.message


@pytest.mark.parametrize(
    ("h", "fragment"),
    [
        (True, "h must be a whole number from 1 to 13, got true in row 1"),
        (2**63, "h=9223372036854775808 in row 1 is beyond the trained horizon of 13"),
        (-(2**63) - 1, "h must be at least 1, got h=-9223372036854775809 in row 1"),
        (2.5, "got 2.5 in row 1"),
        ("3", 'got "3" in row 1'),
        ([3], "got [3] in row 1"),
    ],
)
def test_h_that_mlflow_would_cast_silently_is_refused(h, fragment):
    error = refused(records([{"unique_id": "a", "h": 1}, {"unique_id": "a", "h": h}]))
    assert error.status == 400 and fragment in error.message


def test_deeply_nested_json_is_a_400_not_a_crash():
    body = b'{"dataframe_records": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    error = refused(body, limits=RequestLimits(max_body_bytes=1_000_000))
    assert error.status == 400 and "nested too deeply" in error.message


def test_a_nested_unique_id_is_refused():
    assert "unique_id in row 0 is a JSON dict" in refused(records([{"unique_id": {"a": 1}, "h": 1}])).message


def test_forms_it_does_not_know_are_left_to_mlflow():
    for body in (b'{"rows": []}', b"not json", b'{"dataframe_records": [{"unique_id": "a"}]}'):
        assert check_request(body, JSON, LIMITS, horizon=13).forecast_rows == 0


# Each form as MLflow 3.17's scoring server reads it (checked against a served model): a single value beside
# lists is repeated on every row, so {"inputs": {"unique_id": [ids], "h": 13}} asks for 13 rows per id.
@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {"unique_id": [f"s{i}" for i in range(16)], "h": 13}},
        {"instances": {"unique_id": [f"s{i}" for i in range(16)], "h": 13}},
        {"inputs": [{"unique_id": f"s{i}", "h": 13} for i in range(16)]},
        {"instances": [{"unique_id": f"s{i}", "h": 13} for i in range(16)]},
        {"dataframe_split": {"columns": ["unique_id", "h"], "index": list(range(16)),
                             "data": [[f"s{i}", 13] for i in range(16)]}},
        {"inputs": {"unique_id": [f"s{i}" for i in range(16)], "h": 13}, "params": {"x": 1}},
    ],
)
def test_every_form_counts_against_the_forecast_row_limit(body):
    error = refused(json.dumps(body).encode())
    assert (error.status, error.kind) == (413, "too_many_forecast_rows")
    assert "208 forecast rows" in error.message


@pytest.mark.parametrize("form", ["inputs", "instances"])
def test_a_scalar_beside_a_list_counts_every_row(form):
    summary = check_request(json.dumps({form: {"unique_id": ["a", "b", "c"], "h": 4}}).encode(), JSON, LIMITS, 13)
    assert (summary.series, summary.h, summary.forecast_rows) == (["a", "b", "c"], [4, 4, 4], 12)
    one = check_request(json.dumps({form: {"unique_id": "a", "h": 4}}).encode(), JSON, LIMITS, 13)
    assert (one.series, one.forecast_rows) == (["a"], 4)
    many = refused(json.dumps({form: {"unique_id": [f"s{i}" for i in range(51)], "h": 1}}).encode())
    assert (many.status, many.kind) == (413, "too_many_rows") and "51 rows" in many.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inputs": {"unique_id": ["a", "b", "c"], "h": [1, 2]}}, "different lengths (unique_id: 3, h: 2)"),
        ({"inputs": [["a", 1], ["b", 2]]}, "inputs as a list must be a list of objects"),
        ({"instances": ["a", "b"]}, "instances as a list must be a list of objects"),
        ({"inputs": "a"}, "inputs must be an object of columns or a list of objects"),
        ({"dataframe_records": {"unique_id": ["a"], "h": 1}}, "dataframe_records must be a list of objects"),
        ({"dataframe_split": {"data": [["a", 1]]}}, 'dataframe_split needs "columns"'),
        ({"dataframe_split": {"columns": ["unique_id", "h", "h"], "data": [["a", 1, 2]]}}, "names a column twice"),
        ({"dataframe_split": [["a", 1]]}, 'dataframe_split must be an object with a list "data"'),
        ({"inputs": {"unique_id": ["a"], "h": [1]}, "dataframe_records": []}, "give exactly one of"),
        ({"prompt": "x", "unique_id": [f"s{i}" for i in range(60)], "h": [13] * 60}, "MLflow's LLM input"),
        ({"input": 1, "unique_id": ["a"], "h": 13}, "MLflow's LLM input"),
    ],
)
def test_a_form_whose_rows_cannot_be_counted_is_a_400_saying_what_to_send(body, fragment):
    error = refused(json.dumps(body).encode())
    assert (error.status, error.kind) == (400, "invalid_request")
    assert fragment in error.message, error.message
