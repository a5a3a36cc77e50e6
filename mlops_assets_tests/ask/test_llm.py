"""The language-model path against a stand-in OpenAI-compatible server on loopback, started here in its own
process group: its SQL answers when the guard lets it through; a write, an unknown table or a timeout falls
back to the offline engine, which says so."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlops_assets.ask.service import ask
from mlops_assets.devtools.processes import free_port, server_answering
from mlops_assets.settings import AskSettings, LlmSettings

REPLIES = {
    "how many series": "Here it is:\n```sql\nselect count(distinct unique_id) as series\n"
                       "from forecasting.forecasts\n```",
    "weekly forecast": "```sql\nselect ds, sum(sales) as units from serving.sales_overall where origin = 'Predict' "
                       "group by ds order by ds\n```",
    "top 2 products": "```sql\ndrop table serving.sales_overall\n```",
    "which model wins": "select * from gold.sales_data_for_forecast",
    "how accurate is each model": "SLEEP 5",
}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    work = tmp_path_factory.mktemp("llm_stand_in")
    replies = work / "replies.json"
    replies.write_text(json.dumps(REPLIES))
    port = free_port()
    command = [sys.executable, "-m", "mlops_assets_tests.ask.llm_stand_in", "--port", str(port),
               "--replies", str(replies)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "STAND_IN_KEY": "secret"}
    with server_answering(command, cwd=work, env=env, log_path=work / "server.log",
                          ping_url=f"http://127.0.0.1:{port}/ping", timeout=60):
        yield f"http://127.0.0.1:{port}/v1"


def _settings(base_url: str) -> AskSettings:
    return AskSettings(llm=LlmSettings(base_url=base_url, model="stand-in", api_key_env="STAND_IN_KEY",
                                       timeout_seconds=1.5))


def test_the_models_sql_answers_when_the_guard_lets_it_through(published, endpoint):
    answer = ask("How many series have a forecast?", published, _settings(endpoint))
    assert answer.engine == f"language model stand-in at {endpoint}"
    assert answer.table["series"].tolist() == [4]
    assert answer.sql == ["SELECT COUNT(DISTINCT unique_id) AS series FROM forecasting.forecasts LIMIT 1000"]
    weekly = ask("Weekly forecast, please", published, _settings(endpoint))
    assert weekly.engine.startswith("language model") and len(weekly.table) == 4
    assert weekly.chart is not None and weekly.chart_path.exists()  # a date and a number: a line fits


@pytest.mark.parametrize(("question", "why"), [
    ("Top 2 products", "the guard refused its SQL: only SELECT may run; this has DROP (a write)"),
    ("Which model wins?", "the guard refused its SQL: unknown table gold.sales_data_for_forecast"),
    ("How accurate is each model?", "no reply from"),
])
def test_the_offline_engine_answers_when_the_model_fails(published, endpoint, question, why):
    before = {p: p.read_bytes() for p in sorted(published.exports.glob("*/*.parquet"))}
    answer = ask(question, published, _settings(endpoint))
    assert answer.engine.startswith("offline (the language model's answer was not used: ")
    assert why in answer.engine
    assert not answer.text.startswith("I can't") and len(answer.table) > 0
    assert all("DROP" not in sql and "sales_data_for_forecast" not in sql for sql in answer.sql)
    assert {p: p.read_bytes() for p in sorted(published.exports.glob("*/*.parquet"))} == before


def test_an_unreachable_endpoint_falls_back_too(published):
    answer = ask("which model wins?", published, _settings(f"http://127.0.0.1:{free_port()}/v1"))
    assert answer.engine.startswith("offline (the language model's answer was not used: the endpoint")
    assert len(answer.table) == 2
