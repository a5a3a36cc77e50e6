"""Ask a question of the published tables: the language model when one is configured, else (or when it fails)
the offline engine; the answer's chart saved under the data directory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mlops_assets.ask import offline
from mlops_assets.ask.catalog import table_catalog
from mlops_assets.ask.connection import snapshot_connection
from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.phrasing import SALES, cannot
from mlops_assets.settings import AskSettings, DataPaths


def answers_folder(paths: DataPaths) -> Path:
    return paths.root / "answers"


def ask(question: str, paths: DataPaths, settings: AskSettings | None = None, save_chart: bool = True) -> Answer:
    settings = settings or AskSettings()
    if not question.strip():
        return cannot(question, "the question is empty")
    catalog = table_catalog(paths.exports, with_values=settings.llm is not None)
    if SALES not in catalog:
        return cannot(question, f"nothing is published in {paths.exports} yet: run `make run` first")
    with snapshot_connection(catalog, answers_folder(paths) / "tables") as con:
        ctx = Context(con, catalog, time_limit=settings.time_limit_seconds)
        result = None
        note = ""
        if settings.llm is not None:
            from mlops_assets.ask import llm

            try:
                result = llm.answer(question, ctx, settings.llm, settings.max_rows)
            except llm.ModelFailed as error:
                note = f" (the language model's answer was not used: {error})"
                ctx.sql.clear()
        if result is None:
            result = offline.answer(question, ctx)
            result.engine += note
    if result.chart is not None and save_chart:
        result.chart_path = _save(result.chart, question, paths)
    return result


def _save(png: bytes, question: str, paths: DataPaths) -> Path:
    folder = answers_folder(paths)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha256(question.encode()).hexdigest()[:12]}.png"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(png)
    os.replace(tmp, target)
    return target
