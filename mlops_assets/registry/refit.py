"""The champions' refit for the registry, by model group on the engine, as the parts of one model.

The refit uses the backtest's model groups (forecasting.engine): the global model is refitted on the
same series it was backtested and chosen on, and a group's forecaster predicts the same on any engine
and worker count. What pools every series, the intervals' calibration, is computed before, from the
champions' backtest rows only, read a chunk of series at a time (``champion_errors_by_chunk``), and each
task gets its series' scales beside their champions. Each task reads its group's history (and regressors,
and the backtest rows of its Combination champions), fits a ChampionForecaster and writes it as a part of
the model (registry.model_parts): pickled, aside and renamed, beside its small series table. The run
process writes the parts' index from those tables only and never unpickles a part: the folder is the model
the registry logs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_assets.forecasting.engine import (
    ModelGroup,
    TaskReport,
    export_inputs,
    input_path,
    open_engine,
    plan_groups,
    plan_id,
    run_tasks,
    series_lengths,
    task_report,
)
from mlops_assets.forecasting.intervals import (
    Calibration,
    LastWindow,
    calibrate,
    calibration_method,
    calibration_of,
    coverage_of,
    error_parts,
    last_window,
)
from mlops_assets.forecasting.scoring import fixed_chunks
from mlops_assets.forecasting.zoo import COMBINATION
from mlops_assets.registry.champion_model import forecaster_for
from mlops_assets.registry.model_parts import PartedForecaster, assemble, write_part
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect, sql_string


def champion_rows(
    connect: Connect, backtest_table: str, champions_table: str, unique_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """The backtest rows (every column, ``closed`` included) of each series' champion (of ``unique_ids`` only,
    when given): all that the calibration and its coverage check need."""
    with connect() as con:
        only = ""
        if unique_ids is not None:
            con.register("wanted_series", pd.DataFrame({"unique_id": list(map(str, unique_ids))}))
            only = "where b.unique_id::varchar in (select unique_id from wanted_series) "
        return con.execute(
            f"select b.* replace (b.unique_id::varchar as unique_id) from {backtest_table} b join {champions_table} c "
            f"on b.unique_id::varchar = c.unique_id::varchar and b.model = c.model {only}order by 1, 2, 3"
        ).df()


def series_rows(connect: Connect, backtest_table: str, unique_ids: Sequence[str]) -> pd.DataFrame:
    """Every model's backtest rows of ``unique_ids``: what choosing their champions again needs."""
    with connect() as con:
        con.register("wanted_series", pd.DataFrame({"unique_id": list(map(str, unique_ids))}))
        return con.execute(
            f"select b.* replace (b.unique_id::varchar as unique_id) from {backtest_table} b where "
            "b.unique_id::varchar in (select unique_id from wanted_series) order by 1, 2, 3"
        ).df()


def mean_abs_actuals(connect: Connect, history_sql: str) -> pd.Series:
    """Each series' mean absolute actual (the scale of series without a backtest error), by DuckDB."""
    with connect() as con:
        found = con.execute(f"select unique_id::varchar as unique_id, avg(abs(y)) as level from ({history_sql}) "
                            "group by 1 order by 1").df()
    return found.set_index("unique_id")["level"]


def champion_calibration(
    rows: pd.DataFrame, champions: pd.DataFrame, actuals: pd.Series, settings: Settings
) -> Calibration | None:
    """The calibration of every series' intervals (None when the models' own intervals are used)."""
    if settings.intervals.method != "backtest":
        return None
    return calibrate(rows, champions, actuals, settings.interval_levels, settings.horizon,
                     calibration_method(settings.frequency))


@dataclass(frozen=True)
class ChampionErrors:
    """The calibration (None with the models' own intervals) and what its last-window check needs."""

    calibration: Calibration | None
    last_windows: list[LastWindow | None]

    def coverage(self, champions: pd.DataFrame, actuals: pd.Series, settings: Settings, clip: bool) -> dict:
        if self.calibration is None:
            return {}
        return coverage_of(self.last_windows, champions, actuals, settings.interval_levels, settings.horizon, clip,
                           calibration_method(settings.frequency))


def champion_errors_by_chunk(
    connect: Connect, backtest_table: str, champions_table: str, champions: pd.DataFrame, actuals: pd.Series,
    settings: Settings,
) -> ChampionErrors:
    """champion_calibration and its check from the champions' backtest rows read settings.compute.bucket_series
    series at a time, in sorted order: the process holds one chunk's rows and the errors' scaled sizes.

    The check (coverage of each series' last window) chooses the champions again without that window, from
    every model's rows of the chunk: checked with the champions chosen on it, it read 5-8 points above what
    the same calibration then held (benchmarks/intervals.py, RESULTS.md)."""
    if settings.intervals.method != "backtest":
        return ChampionErrors(None, [])
    parts, windows = [], []
    for ids in fixed_chunks(champions["unique_id"], settings.compute.bucket_series):
        rows = champion_rows(connect, backtest_table, champions_table, ids)
        parts.append(error_parts(rows, champions))
        windows.append(last_window(series_rows(connect, backtest_table, ids), champions, reselect=True))
    calibration = calibration_of(parts, champions, actuals, settings.interval_levels, settings.horizon,
                                 calibration_method(settings.frequency))
    return ChampionErrors(calibration, windows)


@dataclass(frozen=True)
class RefitTask:
    """One model group's refit: ``inputs/<group>*.parquet`` in, the part ``parts/<group>.*`` out."""

    folder: str
    settings: Settings
    quantiles: pd.DataFrame | None
    n_scores: int
    with_regressors: bool
    with_backtest: bool
    # The latest last actual of every series: a group's series behind it are forecast through the common end.
    data_end: pd.Timestamp | None = None

    def part_path(self, group: ModelGroup) -> Path:
        return Path(self.folder) / "parts" / f"{group.name}.pkl"

    def is_done(self, group: ModelGroup) -> bool:
        return self.part_path(group).exists()

    def __call__(self, group: ModelGroup) -> TaskReport:
        cpu = time.process_time()
        folder = Path(self.folder)
        history = pd.read_parquet(input_path(folder, group))
        champions = pd.read_parquet(input_path(folder, group, "champions"))
        regressors = pd.read_parquet(input_path(folder, group, "regressors")) if self.with_regressors else None
        backtest = pd.read_parquet(input_path(folder, group, "backtest")) if self.with_backtest else None
        calibration = None
        if self.quantiles is not None:
            calibration = Calibration(self.quantiles, champions.set_index("unique_id")["scale"], self.n_scores)
        # One process per task already: a pool inside it would only compete with the other workers.
        forecaster = forecaster_for(self.settings, n_jobs=1).fit(
            history, champions[["unique_id", "model"]], backtest, regressors, calibration=calibration,
            data_end=self.data_end,
        )
        write_part(forecaster, self.part_path(group).parent, group.name)
        return task_report(group, len(champions), cpu)


@dataclass(frozen=True)
class RefitRun:
    forecaster: PartedForecaster
    folder: Path
    groups: list[ModelGroup]
    reports: list[TaskReport]
    workers: int


def refit_by_group(
    connect: Connect,
    history_sql: str,
    champions: pd.DataFrame,
    backtest_table: str,
    root: Path,
    fingerprint: str,
    settings: Settings,
    n_models: int,
    calibration: Calibration | None,
    regressors_sql: str | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> RefitRun:
    """Fit every champion by model group on the engine of settings.compute; the model their parts make.

    ``history_sql`` and ``n_models`` must be the backtest's (its eligible series and zoo size), so that the
    groups are the backtest's. Groups without a champion are skipped. Parts of an earlier, failed attempt
    at the same plan are kept and not recomputed.
    """
    lengths = series_lengths(connect, history_sql)
    champions = champions[["unique_id", "model"]].astype({"unique_id": str, "model": str})
    chosen = set(champions["unique_id"])
    groups = [g for g in plan_groups(lengths, n_models, settings.compute) if chosen & set(g.unique_ids)]
    chosen_digest = hashlib.sha256(pd.util.hash_pandas_object(champions, index=False).to_numpy().tobytes())
    folder = root / plan_id(f"{fingerprint}|{chosen_digest.hexdigest()}", groups)
    if calibration is not None:
        champions = champions.assign(scale=calibration.scale.reindex(champions["unique_id"]).to_numpy(dtype=float))
    with_backtest = bool((champions["model"] == COMBINATION).any())
    with connect() as con:
        data_end = pd.Timestamp(con.execute(f"select max(ds) from ({history_sql})").fetchone()[0])
    task = RefitTask(str(folder), settings, None if calibration is None else calibration.quantiles,
                     0 if calibration is None else calibration.n_scores, regressors_sql is not None, with_backtest,
                     data_end)
    todo = [g for g in groups if not task.is_done(g)]
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "champions.parquet"
    champions.to_parquet(table, index=False)
    chosen_sql = f"select * from read_parquet({sql_string(table)})"
    export_inputs(connect, f"select * from ({history_sql}) where unique_id::varchar in "
                           f"(select unique_id from read_parquet({sql_string(table)}))", folder, todo)
    export_inputs(connect, chosen_sql, folder, todo, kind="champions", order_by="unique_id")
    if regressors_sql is not None:
        export_inputs(connect, regressors_sql, folder, todo, kind="regressors")
    if with_backtest:
        export_inputs(connect, f"select b.* from {backtest_table} b where b.unique_id::varchar in (select unique_id "
                               f"from read_parquet({sql_string(table)}) where model = '{COMBINATION}')",
                      folder, todo, kind="backtest", order_by="unique_id, model, cutoff, ds")
    with open_engine(settings.compute) as engine:
        log(f"{settings.compute.engine} engine, {engine.workers} workers: refitting {len(champions):,} champions "
            f"in {len(groups)} model groups, parts in {folder}")
        reports = run_tasks(
            engine,
            task,
            groups,
            retries=settings.compute.retries,
            done=task.is_done,
            on_progress=lambda p: log(f"refit: {p.message}"),
            on_retry=lambda b, e, n: log(f"refit: {b.name} failed (attempt {n}: {type(e).__name__}: {e}); "
                                         "running it again"),
        )
        workers = engine.workers
    model = assemble(folder / "parts", [g.name for g in groups])
    return RefitRun(model, folder, groups, reports, workers)
