"""Champions that could not be served: counted, said loudly, and never claimed.

A series' champion is the model its backtest chose (``forecasting.series_champions``). The champion model
serves another one when the champion cannot forecast it (it raises, or gives a non-finite forecast:
registry.champion_model's fallback). Then:

- ``forecasting.series_champions`` still says what the backtest chose (it is the choice, not the service);
- the registered version's champions (its artifact, ``models_used`` tag and promotion score) and every
  forecast row's ``model`` say the model that produced the numbers; forecast rows also carry ``champion``,
  the choice, so a difference is visible in the table;
- the refit and the scoring count the replaced champions, log a warning and put the count in metadata, and
  a non-blocking asset check warns with the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_assets.warehouse import Connect

_SCORES = ("smape", "runner_up", "runner_up_smape", "score")


@dataclass(frozen=True)
class Unserved:
    """The series whose champion was replaced: unique_id, champion (chosen), served; of ``total`` series."""

    series: pd.DataFrame
    total: int
    stage: str

    @property
    def count(self) -> int:
        return len(self.series)

    def by_model(self) -> dict[str, int]:
        pairs = self.series["champion"] + " -> " + self.series["served"]
        return {k: int(v) for k, v in pairs.value_counts().sort_index().items()}

    def message(self) -> str:
        if not self.count:
            return f"{self.stage}: every one of {self.total:,} series is served by its champion"
        changes = ", ".join(f"{k}: {v:,}" for k, v in self.by_model().items())
        shown = ", ".join(self.series["unique_id"].head(10))
        return (f"{self.stage}: {self.count:,} of {self.total:,} champions could not be served and were replaced "
                f"({changes}), e.g. {shown}; their forecasts say the model that made them")

    def metadata(self) -> dict[str, Any]:
        return {"champions_not_served": self.count, "champions_not_served_by_model": self.by_model(),
                "champions_not_served_examples": self.series["unique_id"].head(20).tolist()}


def unserved_champions(series: pd.DataFrame, stage: str = "refit") -> Unserved:
    """From a forecaster's ``series`` table (unique_id, model = champion, fitted_model = served)."""
    table = series[["unique_id", "model", "fitted_model"]].astype(str)
    replaced = table[table["model"] != table["fitted_model"]].sort_values("unique_id", kind="stable")
    out = replaced.rename(columns={"model": "champion", "fitted_model": "served"}).reset_index(drop=True)
    return Unserved(out, len(table), stage)


def unserved_in_forecasts(connect: Connect, forecasts_table: str) -> Unserved:
    """From a stored forecasts table with ``model`` (served) and ``champion`` (chosen) columns, by DuckDB."""
    with connect() as con:
        columns = [c[0] for c in con.execute(f"select * from {forecasts_table} limit 0").description]
        if "champion" not in columns:
            total = con.execute(f"select count(distinct unique_id) from {forecasts_table}").fetchone()[0]
            return Unserved(pd.DataFrame(columns=["unique_id", "champion", "served"]), int(total), "scoring")
        found = con.execute(
            "select unique_id::varchar as unique_id, any_value(champion) as champion, "
            "string_agg(distinct model, ',' order by model) as served, bool_or(model <> champion) as replaced "
            f"from {forecasts_table} group by 1 order by 1"
        ).df()
    replaced = found[found["replaced"].astype(bool)][["unique_id", "champion", "served"]].reset_index(drop=True)
    return Unserved(replaced, len(found), "scoring")


def served_champions(champions: pd.DataFrame, series: pd.DataFrame, evaluation: pd.DataFrame) -> pd.DataFrame:
    """The champions table as served: a replaced champion's row names the model that serves the series, with
    that model's backtest scores (empty when it was not backtested), so a version never claims a model or a
    score it does not serve."""
    served = series.astype({"unique_id": str}).set_index("unique_id")["fitted_model"].astype(str)
    out = champions.astype({"unique_id": str}).reset_index(drop=True)
    now = out["unique_id"].map(served).fillna(out["model"])
    changed = (now != out["model"]).to_numpy()
    if not changed.any():
        return out
    metric = str(out["metric"].iloc[0]) if "metric" in out else "smape"
    scores = evaluation.astype({"unique_id": str, "model": str}).set_index(["unique_id", "model"])
    keys = pd.MultiIndex.from_arrays([out.loc[changed, "unique_id"], now[changed]])
    out.loc[changed, "model"] = now[changed]
    for column in _SCORES:
        if column in out:
            out.loc[changed, column] = None
    if "smape" in out and "smape" in scores:
        out.loc[changed, "smape"] = scores["smape"].reindex(keys).to_numpy()
    if "score" in out and metric in scores:
        out.loc[changed, "score"] = scores[metric].reindex(keys).to_numpy()
    return out
