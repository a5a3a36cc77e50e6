"""A language model writes the SQL: any OpenAI-compatible chat endpoint (settings ask.llm).

It is given the table catalog (tables, columns, what they mean, a few values) and the question, and returns
one query. The query goes through the guard and runs on the read-only connection like any other; when the
model fails, times out, returns no SQL, or SQL the guard refuses or DuckDB cannot run, ``ModelFailed`` says
why and the offline engine answers instead.
"""

from __future__ import annotations

import os
import re

import duckdb

from mlops_assets.ask import charts
from mlops_assets.ask.catalog import catalog_text
from mlops_assets.ask.connection import QueryTimeout
from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.guard import Refused
from mlops_assets.settings import LlmSettings

SYSTEM = """You answer questions about sales and sales forecasts by writing ONE DuckDB SQL SELECT query.
Use only these tables and columns (schema.table names as written):

{catalog}

Rules: one SELECT statement (WITH is fine), no other statement, no file or table functions. Actual sales are
the rows of serving.sales_overall with origin = 'Train', forecasts those with origin = 'Predict'. Reply with
the query only, in a ```sql block."""
_FENCED = re.compile(r"```(?:sql|duckdb)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class ModelFailed(RuntimeError):
    """The language model gave no usable query; the message says why."""


def extract_sql(reply: str) -> str:
    """The query in a reply: the first fenced block, else the whole reply."""
    found = _FENCED.search(reply or "")
    return (found.group(1) if found else reply or "").strip()


def write_sql(question: str, ctx: Context, settings: LlmSettings) -> str:
    import openai

    key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
    client = openai.OpenAI(base_url=settings.base_url, api_key=key or "none", timeout=settings.timeout_seconds,
                           max_retries=0)
    try:
        reply = client.chat.completions.create(
            model=settings.model, temperature=0,
            messages=[{"role": "system", "content": SYSTEM.format(catalog=catalog_text(ctx.catalog))},
                      {"role": "user", "content": question}])
    except openai.APITimeoutError:
        raise ModelFailed(f"no reply from {settings.base_url} within {settings.timeout_seconds:g} s") from None
    except openai.OpenAIError as error:
        raise ModelFailed(f"the endpoint {settings.base_url} failed: {str(error)[:300]}") from None
    content = reply.choices[0].message.content if reply.choices else ""
    sql = extract_sql(content or "")
    if not sql:
        raise ModelFailed("the model returned no SQL")
    return sql


def answer(question: str, ctx: Context, settings: LlmSettings, max_rows: int = 1000) -> Answer:
    sql = write_sql(question, ctx, settings)
    try:
        frame = ctx.run(sql, max_rows)
    except Refused as error:
        raise ModelFailed(f"the guard refused its SQL: {error}") from None
    except (duckdb.Error, QueryTimeout) as error:
        raise ModelFailed(f"its SQL failed: {str(error).splitlines()[0]}") from None
    if frame.empty:
        text = "The query returned no rows."
    elif len(frame) == 1:
        text = "; ".join(f"{column}: {value}" for column, value in frame.iloc[0].items())
    else:
        text = f"The query returned {len(frame)} rows."
    return Answer(question, text, frame, list(ctx.sql), f"language model {settings.model} at {settings.base_url}",
                  charts.fitting_chart(frame, question[:80]))
