"""Heavy work by model group of series, on a local process pool or a Dask cluster, each result written as it arrives.

The plan has two levels. **Model groups**: ``ceil(series / compute.bucket_series)`` sets of whole series,
balanced by cost (series length x models) with the longest-processing-time rule, ties broken by a stable
hash of ``unique_id``. Their number depends on the data and the settings only, never on the engine or its
workers, because the global LightGBM model is trained on one group at a time: the same data gives the same
groups, hence the same forecasts, on one worker or a hundred. **Tasks** are shares of a group's work: per
group, one for the global model and one or more cost-balanced slices for the per-series StatsForecast models
(whose forecasts do not depend on which series share a call), as many as it takes to keep every worker busy,
then one for the per-series combination once its members are written. Each task is one StatsForecast call
over its series, never one call per series (which costs Fugue's backends 20-30x the CPU of the pandas call).

Each task reads its group's input file and writes its result as one Parquet part; the driver only ever
holds one task's bookkeeping, never the results. A task that raises is run again ``retries`` times; one
that still fails is reported with its series (TaskFailure) once every other task has finished, and the
finished parts stay on disk for the rerun.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import heapq
import logging
import math
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.buckets import in_bucket
from mlops_assets.forecasting.backtest import run_backtest, validate_history
from mlops_assets.forecasting.combinations import combine_backtest
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.parallel import _default_signal_handlers
from mlops_assets.forecasting.progress import TimeLeft
from mlops_assets.forecasting.selection import window_evaluations
from mlops_assets.forecasting.zoo import COMBINATION, GLOBAL_MODEL
from mlops_assets.settings import ComputeSettings, Settings
from mlops_assets.warehouse import Connect, sql_string, write_part


@dataclass(frozen=True)
class ModelGroup:
    """A model group's series (``part`` "") or one share of its work, the engine's task (``part`` named).

    ``part``: "" for all of the group's models in one call; "global" for the global model; "local-<k>" for
    slice k of the per-series models; "combination" for the combination of the group's other parts.
    """

    index: int
    unique_ids: tuple[str, ...]
    cost: float
    part: str = ""

    @property
    def group(self) -> str:
        # "bucket-", the groups' first name, stays on disk: registered models name their parts so, and the
        # plan id (a hash of these names) must stay the same for a rerun to find an earlier attempt's parts.
        return f"bucket-{self.index:05d}"

    @property
    def name(self) -> str:
        return f"{self.group}.{self.part}" if self.part else self.group


@dataclass(frozen=True)
class TaskReport:
    """What a task tells the driver: its group and part, its size, and the CPU and memory it took."""

    group: int
    series: int
    cpu_seconds: float
    worker_peak_mb: float
    part: str = ""
    rows: int = 0


def task_report(task: ModelGroup, series: int, cpu_start: float, rows: int = 0) -> TaskReport:
    """The report of ``task``, done now, that started at process time ``cpu_start``."""
    return TaskReport(task.index, series, time.process_time() - cpu_start,
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, task.part, rows)


class TaskFailure(RuntimeError):
    """Tasks that failed after their retries, named with their series; finished tasks are kept."""

    def __init__(self, failed: dict[ModelGroup, BaseException], attempts: int, total: int):
        self.failed = failed
        lines = []
        for task, error in sorted(failed.items(), key=lambda item: item[0].index):
            shown = ", ".join(task.unique_ids[:20])
            more = f" and {len(task.unique_ids) - 20} more" if len(task.unique_ids) > 20 else ""
            lines.append(f"{task.name} ({len(task.unique_ids)} series: {shown}{more}): "
                         f"{type(error).__name__}: {error}")
        super().__init__(
            f"{len(failed)} of {total} tasks failed {attempts} time(s) each; the other tasks' results are "
            "kept and a rerun computes only the failed ones.\n" + "\n".join(lines)
        )


def stable_hash(unique_id: str) -> int:
    """The same integer for the same id in every process and Python version (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(str(unique_id).encode(), digest_size=8).digest(), "big")


def group_count(n_series: int, compute: ComputeSettings) -> int:
    """At most ``bucket_series`` series per model group; never a function of the workers (see the module doc)."""
    return math.ceil(n_series / compute.bucket_series) if n_series > 0 else 0


def split_balanced(lengths: pd.Series, n_models: int, n_sets: int) -> list[ModelGroup]:
    """Series (index: unique_id, value: length) into ``n_sets`` sets of nearly equal cost.

    Longest processing time first: the costliest series goes to the set with the least cost so far.
    Each set's series are sorted; empty sets are dropped.
    """
    if lengths.empty:
        return []
    order = sorted(((float(n) * n_models, str(uid)) for uid, n in lengths.items()),
                   key=lambda item: (-item[0], stable_hash(item[1]), item[1]))
    heap = [(0.0, i) for i in range(max(1, n_sets))]
    members: list[list[str]] = [[] for _ in heap]
    costs = [0.0] * len(heap)
    for cost, uid in order:
        total, i = heapq.heappop(heap)
        members[i].append(uid)
        costs[i] = total + cost
        heapq.heappush(heap, (costs[i], i))
    kept = [(tuple(sorted(m)), c) for m, c in zip(members, costs, strict=True) if m]
    kept.sort(key=lambda item: item[0][0])
    return [ModelGroup(i, uids, cost) for i, (uids, cost) in enumerate(kept)]


def plan_groups(lengths: pd.Series, n_models: int, compute: ComputeSettings) -> list[ModelGroup]:
    """The model groups of the series (index: unique_id, value: length): the same for any engine and workers."""
    return split_balanced(lengths, n_models, group_count(len(lengths), compute))


def plan_tasks(groups: list[ModelGroup], lengths: pd.Series, models: list[str], workers: int) -> list[list[ModelGroup]]:
    """The tasks of each phase: first the global model and the local slices, then the combinations.

    Each group's per-series models are cut into enough slices that the first phase has a task for every
    worker; a group without the global model (nor slices) stays one task, combination included.
    """
    local = [m for m in models if m not in (GLOBAL_MODEL, COMBINATION)]
    has_global = GLOBAL_MODEL in models
    slices = math.ceil(workers / max(1, len(groups))) if local else 0
    first: list[ModelGroup] = []
    last: list[ModelGroup] = []
    for group in groups:
        if not has_global and slices == 1:
            first.append(group)
            continue
        if has_global:
            first.append(ModelGroup(group.index, group.unique_ids, float(lengths[list(group.unique_ids)].sum()),
                                "global"))
        cut = split_balanced(lengths[list(group.unique_ids)], len(local), min(slices, len(group.unique_ids))) \
            if local else []
        first.extend(ModelGroup(group.index, s.unique_ids, s.cost, f"local-{s.index}") for s in cut)
        if has_global and COMBINATION in models:
            last.append(ModelGroup(group.index, group.unique_ids, 0.0, "combination"))
    return [first, last] if last else [first]


def plan_id(fingerprint: str, tasks: list[ModelGroup]) -> str:
    """Names the folder of a plan's parts: same data, settings and tasks, same folder."""
    digest = hashlib.sha256(fingerprint.encode())
    for task in tasks:
        digest.update(task.name.encode() + b"\x1d" + "\x1f".join(task.unique_ids).encode() + b"\x1e")
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- engines
class _LocalEngine:
    """A forked process pool whose workers answer SIGTERM (see parallel.py)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_default_signal_handlers
        )

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        return self._pool.submit(fn, *args)

    def wait_first(self, pending: set) -> tuple[set, set]:
        done, rest = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return set(done), set(rest)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class NoWorkers(RuntimeError):
    """The Dask scheduler has had no worker for longer than the engine waits for one."""


# How long a step waits with work pending and no worker at all before it fails (a scheduler whose workers
# all died, e.g. could not unpickle a task, would otherwise keep the step waiting forever). Long enough for
# an adaptive cluster to start a worker.
NO_WORKER_SECONDS = 300.0
# How often the wait looks at the workers.
_POLL_SECONDS = 10.0


class _DaskEngine:
    """A Dask client: to the scheduler at ``address``, or to a LocalCluster of single-threaded workers."""

    def __init__(self, address: str | None, workers: int | None, no_worker_seconds: float = NO_WORKER_SECONDS):
        from distributed import Client, LocalCluster

        self._address = address or "a local cluster"
        self._no_worker_seconds = no_worker_seconds
        self._cluster = None
        if address:
            self._client = Client(address)
        else:
            self._cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster)
        self.workers = max(1, sum(self._client.nthreads().values()))

    def submit(self, fn: Callable, *args: Any):
        return self._client.submit(fn, *args, pure=False)

    def wait_first(self, pending: set) -> tuple[set, set]:
        from distributed import wait

        alone_since = None
        while True:
            try:
                done, rest = wait(list(pending), timeout=min(_POLL_SECONDS, self._no_worker_seconds),
                                  return_when="FIRST_COMPLETED")
                return set(done), set(rest)
            except TimeoutError:  # distributed raises the builtin
                pass
            if self._client.nthreads():
                alone_since = None
                continue
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since >= self._no_worker_seconds:
                raise NoWorkers(f"the Dask scheduler at {self._address} has had no worker for "
                                f"{self._no_worker_seconds:.0f} s with {len(pending)} task(s) waiting: its "
                                "workers died or never joined; see the workers' logs")

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


@contextmanager
def open_engine(compute: ComputeSettings) -> Iterator[_LocalEngine | _DaskEngine]:
    engine = (
        _DaskEngine(compute.address, compute.workers)
        if compute.engine == "dask"
        else _LocalEngine(compute.workers or os.cpu_count() or 1)
    )
    try:
        yield engine
    finally:
        engine.close()


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    series_done: int
    series_total: int
    elapsed: float
    reused: int
    # forecasting.progress.TimeLeft's estimate: None until enough of the work is done.
    left: float | None = None

    @property
    def message(self) -> str:
        rate = self.series_done / self.elapsed if self.elapsed > 0 else 0.0
        eta = f", about {self.left:.0f} s left" if self.left is not None and self.done < self.total else ""
        reused = f" ({self.reused} kept from an earlier attempt)" if self.reused else ""
        return (f"{self.done}/{self.total} tasks{reused}, {self.series_done:,}/{self.series_total:,} series-tasks, "
                f"{rate:,.1f} series-tasks/s{eta}")


def run_tasks(
    engine: _LocalEngine | _DaskEngine,
    task: Callable[[ModelGroup], TaskReport],
    tasks: list[ModelGroup],
    *,
    retries: int,
    done: Callable[[ModelGroup], bool] = lambda _b: False,
    on_progress: Callable[[Progress], None] = lambda _p: None,
    on_retry: Callable[[ModelGroup, BaseException, int], None] = lambda _b, _e, _n: None,
) -> list[TaskReport]:
    """Run ``task`` on every one of ``tasks`` not already ``done``; their reports, sorted by group and part.

    Raises TaskFailure after every other task finished when some task failed 1 + ``retries`` times.
    """
    start = time.perf_counter()
    todo = [t for t in tasks if not done(t)]
    reused = len(tasks) - len(todo)
    series_total = sum(len(t.unique_ids) for t in tasks)
    series_done = series_total - sum(len(t.unique_ids) for t in todo)
    time_left = TimeLeft([t.cost for t in todo], engine.workers)
    futures = {engine.submit(task, t): (t, 1) for t in todo}
    reports, failed = [], {}
    while futures:
        finished, _ = engine.wait_first(set(futures))
        for future in finished:
            done_task, attempt = futures.pop(future)
            error = future.exception()
            if error is None:
                reports.append(future.result())
                series_done += len(done_task.unique_ids)
                time_left.done(done_task.cost)
                elapsed = time.perf_counter() - start
                on_progress(Progress(len(tasks) - len(todo) + len(reports), len(tasks), series_done,
                                     series_total, elapsed, reused, time_left.seconds(elapsed)))
            elif attempt <= retries:
                on_retry(done_task, error, attempt)
                futures[engine.submit(task, done_task)] = (done_task, attempt + 1)
            else:
                failed[done_task] = error
    if failed:
        raise TaskFailure(failed, retries + 1, len(tasks))
    return sorted(reports, key=lambda r: (r.group, r.part))


# ---------------------------------------------------------------------------------------- the backtest task
@dataclass(frozen=True)
class BacktestTask:
    """One task's backtest: read its group's ``inputs/<group>.parquet``, write ``parts/<task>.parquet``.

    The folder must be reachable by every worker under the same path (the data directory on a shared disk).
    """

    folder: str
    settings: Settings
    models: tuple[str, ...]
    with_regressors: bool = False

    def input_path(self, task: ModelGroup) -> Path:
        return input_path(Path(self.folder), task)

    def part_path(self, task: ModelGroup) -> Path:
        return Path(self.folder) / "parts" / f"{task.name}.parquet"

    def is_done(self, task: ModelGroup) -> bool:
        return self.part_path(task).exists()

    def models_of(self, task: ModelGroup) -> list[str]:
        if task.part == "global":
            return [GLOBAL_MODEL]
        if task.part.startswith("local-"):
            left_out = {GLOBAL_MODEL, COMBINATION} if GLOBAL_MODEL in self.models else {GLOBAL_MODEL}
            return [m for m in self.models if m not in left_out]
        return list(self.models)

    def __call__(self, task: ModelGroup) -> TaskReport:
        cpu = time.process_time()
        if task.part == "combination":
            members = pd.concat([pd.read_parquet(p) for p in sorted(self.part_path(task).parent.glob(
                f"{task.group}.*.parquet")) if not p.name.endswith(".combination.parquet")], ignore_index=True)
            # The same history run_backtest hands the combination: MASE ranks members on its scale.
            history = validate_history(pd.read_parquet(self.input_path(task)), self.settings.min_series_length)
            backtest = combine_backtest(members, self.settings.combination_size, self.settings.selection.metric,
                                        history, self.settings.season)
        else:
            history = pd.read_parquet(self.input_path(task), filters=[("unique_id", "in", list(task.unique_ids))])
            models = self.models_of(task)
            regressors = None
            # The global model reads the drivers; every model's closed periods may come from a closure column.
            if self.with_regressors and (GLOBAL_MODEL in models or self.settings.closed.column is not None):
                regressors = pd.read_parquet(input_path(Path(self.folder), task, "regressors"))
            # One process per task already: a pool inside the task would only compete with the other workers.
            backtest = run_backtest(history, self.settings, models, n_jobs=1, regressors=regressors)
        write_part(backtest, self.part_path(task))
        return task_report(task, len(task.unique_ids), cpu, rows=len(backtest))


def input_path(folder: Path, task: ModelGroup, kind: str = "history") -> Path:
    """A model group's input: every task of the group reads the same file."""
    return folder / "inputs" / (f"{task.group}.parquet" if kind == "history" else f"{task.group}.{kind}.parquet")


# ------------------------------------------------------------------------------------------------ the driver


@dataclass(frozen=True)
class BacktestRun:
    folder: Path
    groups: list[ModelGroup]
    tasks: list[ModelGroup]
    reports: list[TaskReport]
    workers: int

    @property
    def parts(self) -> str:
        return str(self.folder / "parts" / "*.parquet")

    def summary(self, engine: str) -> dict[str, object]:
        """What the run's metadata shows of the engine: workers, groups, balance, CPU and peak memory."""
        return {
            "engine": engine,
            "workers": self.workers,
            "model_groups": len(self.groups),
            "tasks": len(self.tasks),
            "group_cost_max_over_mean": round(max(g.cost for g in self.groups) * len(self.groups)
                                              / sum(g.cost for g in self.groups), 4),
            "task_cpu_seconds": round(sum(r.cpu_seconds for r in self.reports), 1),
            "worker_peak_mb": round(max((r.worker_peak_mb for r in self.reports), default=0.0), 1),
        }


def backtest_by_group(
    connect: Connect,
    history_sql: str,
    root: Path,
    fingerprint: str,
    settings: Settings,
    models: list[str],
    log: Callable[[str], None] = lambda _m: None,
    regressors_sql: str | None = None,
) -> BacktestRun:
    """Backtest the series of ``history_sql`` (unique_id, ds, y) by model group into Parquet parts.

    ``regressors_sql`` (unique_id, ds, regressor columns) is cut by group the same way, for the global model.

    The inputs are cut by DuckDB straight to one file per model group, so neither the history nor the
    backtest passes through this process. The parts land in ``root/<plan id>/parts``; parts of an earlier,
    failed attempt at the same plan are kept and not recomputed.
    """
    lengths = series_lengths(connect, history_sql)
    compute = settings.compute
    groups = plan_groups(lengths, len(models), compute)
    with open_engine(compute) as engine:
        phases = plan_tasks(groups, lengths, models, engine.workers)
        tasks = [t for phase in phases for t in phase]
        folder = root / plan_id(fingerprint, tasks)
        task = BacktestTask(str(folder), settings, tuple(models), with_regressors=regressors_sql is not None)
        todo = [g for g in groups if not all(task.is_done(t) for t in tasks if t.index == g.index)]
        export_inputs(connect, history_sql, folder, todo)
        if regressors_sql is not None:
            export_inputs(connect, regressors_sql, folder, todo, kind="regressors")
        costs = [g.cost for g in groups]
        log(f"{compute.engine} engine, {engine.workers} workers: {len(lengths):,} series in {len(groups)} model "
            f"groups (cost max/mean {max(costs) / (sum(costs) / len(costs)):.3f}), {len(tasks)} tasks, "
            f"parts in {folder}")
        reports = []
        for phase in phases:
            reports += run_tasks(
                engine,
                task,
                phase,
                retries=compute.retries,
                done=task.is_done,
                on_progress=lambda p: log(f"backtest: {p.message}"),
                on_retry=lambda b, e, n: log(f"backtest: {b.name} failed (attempt {n}: {type(e).__name__}: {e}); "
                                             "running it again"),
            )
        return BacktestRun(folder, groups, tasks, reports, engine.workers)


def series_lengths(connect: Connect, sql: str) -> pd.Series:
    """Rows per series of a query with a unique_id column (index: unique_id as text)."""
    with connect() as con:
        return con.execute(
            f"select unique_id::varchar as unique_id, count(*) as n from ({sql}) group by 1"
        ).df().set_index("unique_id")["n"]


def export_inputs(
    connect: Connect, history_sql: str, folder: Path, groups: list[ModelGroup], kind: str = "history",
    order_by: str = "unique_id, ds",
) -> None:
    """One Parquet file per model group of the rows of ``history_sql`` (a unique_id column), cut by DuckDB."""
    if not groups:
        return
    assignment = pd.DataFrame(
        [(uid, g.index) for g in groups for uid in g.unique_ids], columns=["unique_id", "model_group"]
    )
    with connect() as con:
        con.register("_group_assignment", assignment)
        con.execute(
            "create or replace temp table _group_history as select h.* replace (h.unique_id::varchar as unique_id), "
            f"a.model_group from ({history_sql}) h join _group_assignment a on h.unique_id::varchar = a.unique_id"
        )
        for group in groups:
            path = input_path(folder, group, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            con.execute(
                f"copy (select * exclude (model_group) from _group_history where model_group = {group.index} "
                f"order by {order_by}) to {sql_string(tmp)} (format parquet)"
            )
            os.replace(tmp, path)
        con.execute("drop table _group_history")
        con.unregister("_group_assignment")


def evaluate_by_bucket(
    connect: Connect,
    backtest_table: str,
    history_sql: str,
    season_length: int,
    n_buckets: int,
    guard_windows: int = 1,
) -> tuple[pd.DataFrame, list[tuple[pd.DataFrame, pd.DataFrame]]]:
    """metrics.evaluate and selection.window_evaluations of a stored backtest, read one bucket at a time.

    Buckets are DuckDB hashes of unique_id: every series is whole in one bucket, and each bucket is read,
    scored and dropped before the next one, so memory follows the bucket and not the table.
    """
    evaluations: list[pd.DataFrame] = []
    pairs: list[tuple[list[pd.DataFrame], list[pd.DataFrame]]] = []
    for b in range(max(1, n_buckets)):
        where = in_bucket("unique_id", n_buckets, b)
        with connect() as con:
            backtest = con.execute(f"select * from {backtest_table} where {where}").df()
            history = con.execute(f"select unique_id::varchar as unique_id, ds, y from ({history_sql}) "
                                  f"where {where}").df()
        if backtest.empty:
            continue
        evaluations.append(evaluate(backtest, history, season_length))
        for r, (earlier, window) in enumerate(window_evaluations(backtest, history, season_length, guard_windows)):
            if r == len(pairs):
                pairs.append(([], []))
            pairs[r][0].append(earlier)
            pairs[r][1].append(window)
    if not evaluations:
        raise ValueError(f"{backtest_table} is empty: nothing to evaluate")
    evaluation = _sorted(pd.concat(evaluations, ignore_index=True))
    return evaluation, [
        (_sorted(pd.concat(earlier, ignore_index=True)), _sorted(pd.concat(window, ignore_index=True)))
        for earlier, window in pairs
    ]


def _sorted(evaluation: pd.DataFrame) -> pd.DataFrame:
    return evaluation.sort_values(["unique_id", "model"], kind="stable").reset_index(drop=True)
