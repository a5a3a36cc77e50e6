"""The inference log's lines, the answer embedded or left out by size, and rotation."""

from __future__ import annotations

import json

from mlops_assets.serving.inference_log import FILE_NAME, InferenceLog, log_files


def test_lines_carry_the_record_and_the_answer_as_sent(tmp_path):
    log = InferenceLog(tmp_path, max_answer_bytes=100)
    log.write({"request_id": "a", "status": 200}, b'{"predictions": [{"y_hat": 1.5}]}')
    log.write({"request_id": "b", "status": 200}, b'{"predictions": [' + b'{"y_hat": 1.5},' * 20 + b"{}]}")
    log.write({"request_id": "c", "status": 400, "error": "bad h"}, None)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / FILE_NAME).read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ["a", "b", "c"]
    assert lines[0]["answer"] == {"predictions": [{"y_hat": 1.5}]}
    assert lines[1]["answer_truncated"] is True and "answer" not in lines[1]
    assert lines[2]["error"] == "bad h" and lines[2]["time"].endswith("+00:00")


def test_files_rotate_at_the_size_bound_and_are_listed_oldest_first(tmp_path):
    log = InferenceLog(tmp_path, max_file_bytes=2_000, backups=2)
    for i in range(60):
        log.write({"request_id": f"r{i:02d}", "status": 200, "pad": "x" * 50}, None)
    log.close()
    files = log_files(tmp_path)
    assert [f.name for f in files] == [f"{FILE_NAME}.2", f"{FILE_NAME}.1", FILE_NAME]
    assert all(f.stat().st_size <= 2_000 for f in files)
    ids = [json.loads(line)["request_id"] for f in files for line in f.read_text().splitlines()]
    assert ids == sorted(ids) and ids[-1] == "r59" and len(ids) < 60
