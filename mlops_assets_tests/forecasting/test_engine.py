"""The engine: model groups balanced by cost, results identical to one StatsForecast call on the local pool and on
a real Dask LocalCluster, parts written by task, a failing task retried and then named by its series."""

from __future__ import annotations

import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.engine import (
    ModelGroup,
    NoWorkers,
    TaskFailure,
    TaskReport,
    backtest_by_group,
    evaluate_by_bucket,
    group_count,
    open_engine,
    plan_groups,
    plan_tasks,
    run_tasks,
    split_balanced,
)
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import window_evaluations
from mlops_assets.forecasting.zoo import COMBINATION, GLOBAL_MODEL
from mlops_assets.settings import ComputeSettings, Settings
from mlops_assets.warehouse import connector

MODELS = ["Naive", "SeasonalNaive", "WindowAverage"]


def _settings(**compute) -> Settings:
    return Settings(horizon=4, season_length=4, backtest={"windows": 2}, models=MODELS,
                    compute={"workers": 2, **compute})


def _history(n_series: int, seed: int = 0, length: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-02", periods=length, freq="W-MON")
    return pd.DataFrame({
        "unique_id": np.repeat([f"s{i:03d}" for i in range(n_series)], length),
        "ds": np.tile(ds, n_series),
        "y": rng.gamma(2.0, 10.0, n_series * length),
    })


@contextmanager
def _database(path: Path, history: pd.DataFrame):
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.register("h", history)
        con.execute("create or replace table history as select * from h")
    yield connector(path)


def _stored(run) -> pd.DataFrame:
    with duckdb.connect() as con:
        return con.execute(f"select * from read_parquet('{run.parts}') order by unique_id, model, cutoff, ds").df()


def test_groups_balance_by_cost_not_by_count():
    # Lengths like the weekly competition set (80 to 2,600 weeks): a split by count leaves one worker idle.
    rng = np.random.default_rng(3)
    lengths = pd.Series(rng.integers(80, 2600, 400), index=[f"u{i}" for i in range(400)])
    groups = split_balanced(lengths, n_models=9, n_sets=4)
    costs = np.array([g.cost for g in groups])
    assert costs.max() / costs.mean() < 1.01
    by_count = [lengths.iloc[i::4].sum() for i in range(4)]
    assert max(by_count) / np.mean(by_count) > costs.max() / costs.mean()
    assert sorted(u for g in groups for u in g.unique_ids) == sorted(lengths.index)
    # The same series give the same groups, whatever their order.
    shuffled = split_balanced(lengths.sample(frac=1, random_state=1), n_models=9, n_sets=4)
    assert [g.unique_ids for g in shuffled] == [g.unique_ids for g in groups]


def test_model_groups_follow_the_data_and_tasks_keep_every_worker_busy():
    compute = ComputeSettings(bucket_series=1000)
    assert [group_count(n, compute) for n in (10_000, 10, 0)] == [10, 1, 0]
    lengths = pd.Series(range(30, 82), index=[f"u{i:02d}" for i in range(52)])
    [group] = plan_groups(lengths, 5, compute)
    zoo = ["Naive", "AutoETS", GLOBAL_MODEL, COMBINATION]
    # 52 series are one group, but two workers still get a task each: the global model and two local slices.
    [first, last] = plan_tasks([group], lengths, zoo, workers=2)
    assert [b.name for b in first] == ["bucket-00000.global", "bucket-00000.local-0", "bucket-00000.local-1"]
    assert sorted(u for b in first[1:] for u in b.unique_ids) == sorted(lengths.index)
    assert [b.name for b in last] == ["bucket-00000.combination"]
    # Without the global model, one task per group once the groups outnumber the workers.
    assert [b.name for b in plan_tasks(plan_groups(lengths, 2, ComputeSettings(bucket_series=10)), lengths,
                                       ["Naive", COMBINATION], workers=2)[0]] == [f"bucket-0000{i}" for i in range(6)]


@pytest.mark.parametrize("engine", ["local", pytest.param("dask", marks=pytest.mark.dask)])
def test_engine_backtest_equals_one_statsforecast_call(tmp_path, engine, request):
    history = _history(12)
    address = request.getfixturevalue("dask_scheduler") if engine == "dask" else None
    settings = _settings(engine=engine, bucket_series=4, address=address)
    with _database(tmp_path / "w.duckdb", history) as connect:
        run = backtest_by_group(connect, "select * from history", tmp_path / "engine", "fp", settings, MODELS)
    assert len(run.groups) == len(run.tasks) == 3 and run.workers == 2
    assert len(list((run.folder / "parts").glob("*.parquet"))) == 3
    stored = _stored(run)
    whole = run_backtest(history, settings, MODELS, n_jobs=1)
    whole = whole.sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True)
    assert stored["y_hat"].dtype == np.float64
    pd.testing.assert_frame_equal(stored, whole, check_exact=False, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def global_history() -> pd.DataFrame:
    return _history(11, seed=5, length=40)


@pytest.mark.parametrize(("engine", "workers"), [
    ("local", 1), ("local", 2),
    # ("dask", 1) starts a LocalCluster for the step (no address); ("dask", 2) uses the session's scheduler.
    pytest.param("dask", 1, marks=pytest.mark.dask), pytest.param("dask", 2, marks=pytest.mark.dask)])
def test_the_global_model_gives_the_same_backtest_on_any_engine_and_worker_count(
    tmp_path, engine, workers, global_history, request
):
    """Model groups depend on the data only: LightGBM is trained on the same groups of series everywhere."""
    scheduler = request.getfixturevalue("dask_scheduler") if (engine, workers) == ("dask", 2) else None
    models = ["Naive", "SeasonalNaive", GLOBAL_MODEL, COMBINATION]
    # MASE ranks the Combination's members on each series' history: the combination task needs it too.
    settings = Settings(horizon=4, season_length=4, backtest={"windows": 2}, models=models,
                        selection={"metric": "mase"}, compute={"engine": engine, "workers": workers, "bucket_series": 4,
                                 "address": scheduler})
    with _database(tmp_path / "w.duckdb", global_history) as connect:
        run = backtest_by_group(connect, "select * from history", tmp_path / "engine", "fp", settings, models)
    assert run.workers == workers and len(run.groups) == 3
    stored = _stored(run)
    # The reference: one in-process backtest per model group, the global model trained on that group only.
    per_group = pd.concat([
        run_backtest(global_history[global_history["unique_id"].isin(g.unique_ids)], settings, models, n_jobs=1)
        for g in run.groups
    ]).sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True)
    assert stored["model"].value_counts().to_dict() == {m: 11 * 2 * 4 for m in models}
    pd.testing.assert_frame_equal(stored, per_group, check_exact=False, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_driver_memory_follows_the_group_not_the_backtest(tmp_path):
    history = _history(400, length=80)
    settings = Settings(horizon=13, season_length=4, backtest={"windows": 4}, models=MODELS,
                        compute={"workers": 2, "bucket_series": 20})
    with _database(tmp_path / "w.duckdb", history) as connect:
        tracemalloc.start()
        run = backtest_by_group(connect, "select * from history", tmp_path / "engine", "fp", settings, MODELS)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    full = _stored(run).memory_usage(deep=True).sum()
    # The whole backtest is never in the driver: its peak is a fraction of the table it wrote.
    assert peak < full / 4, (peak, full)
    assert len(run.tasks) == 20


def test_evaluation_by_bucket_equals_the_whole_evaluation(tmp_path):
    history = _history(15)
    settings = _settings()
    backtest = run_backtest(history, settings, MODELS, n_jobs=1)
    with _database(tmp_path / "w.duckdb", history) as connect:
        with connect() as con:
            con.register("b", backtest)
            con.execute("create table backtest as select * from b")
        evaluation, [(earlier, last)] = evaluate_by_bucket(connect, "backtest", "select * from history", 4, 4)
    pd.testing.assert_frame_equal(evaluation, evaluate(backtest, history, 4))
    [(whole_earlier, whole_last)] = window_evaluations(backtest, history, 4)
    pd.testing.assert_frame_equal(earlier, whole_earlier)
    pd.testing.assert_frame_equal(last, whole_last)


class _FailsOnce:
    """Raises on a task's first attempt (a marker file remembers it across processes), then succeeds."""

    def __init__(self, folder: Path, always: str | None = None):
        self.folder, self.always = folder, always

    def __call__(self, task: ModelGroup) -> TaskReport:
        if self.always in task.unique_ids:
            raise ValueError(f"cannot fit {self.always}")
        marker = self.folder / f"{task.name}.tried"
        if not marker.exists():
            marker.touch()
            raise RuntimeError("worker lost")
        (self.folder / f"{task.name}.done").touch()
        return TaskReport(task.index, len(task.unique_ids), 0.0, 0.0)


def _tasks() -> list[ModelGroup]:
    return [ModelGroup(i, (f"a{i}", f"b{i}"), 1.0) for i in range(4)]


def test_a_failing_task_is_retried(tmp_path):
    retried = []
    with open_engine(ComputeSettings(workers=2)) as engine:
        reports = run_tasks(engine, _FailsOnce(tmp_path), _tasks(), retries=1,
                              on_retry=lambda b, e, n: retried.append((b.index, n)))
    assert [r.group for r in reports] == [0, 1, 2, 3]
    assert sorted(retried) == [(0, 1), (1, 1), (2, 1), (3, 1)]


def test_a_task_that_still_fails_names_its_series_and_keeps_the_others(tmp_path):
    with open_engine(ComputeSettings(workers=2)) as engine, pytest.raises(TaskFailure) as failure:
        run_tasks(engine, _FailsOnce(tmp_path, always="a2"), _tasks(), retries=1)
    message = str(failure.value)
    assert "1 of 4 tasks failed 2 time(s)" in message
    assert "bucket-00002 (2 series: a2, b2): ValueError: cannot fit a2" in message
    assert sorted(p.name for p in tmp_path.glob("*.done")) == [f"bucket-0000{i}.done" for i in (0, 1, 3)]
    # The rerun computes only the failed task.
    calls = []
    with open_engine(ComputeSettings(workers=2)) as engine:
        run_tasks(engine, _FailsOnce(tmp_path), _tasks(), retries=1,
                    done=lambda b: (tmp_path / f"{b.name}.done").exists(),
                    on_progress=lambda p: calls.append(p))
    assert [p.done for p in calls] == [4] and calls[0].reused == 3


@pytest.mark.dask
def test_a_scheduler_without_workers_fails_the_step_instead_of_waiting_forever(tmp_path):
    from distributed import LocalCluster

    from mlops_assets.forecasting.engine import _DaskEngine

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as cluster:
        engine = _DaskEngine(cluster.scheduler_address, None, no_worker_seconds=1.0)
        try:
            with pytest.raises(NoWorkers, match=r"has had no worker for 1 s with 4 task\(s\) waiting"):
                run_tasks(engine, _FailsOnce(tmp_path), _tasks(), retries=0)
        finally:
            engine.close()
    assert not list(tmp_path.glob("*.done"))


@pytest.mark.dask
def test_a_bad_series_fails_its_task_on_dask_by_name(tmp_path, dask_scheduler):
    history = _history(8)
    history.loc[history["unique_id"] == "s005", "y"] = np.nan
    settings = _settings(engine="dask", bucket_series=2, address=dask_scheduler)
    with _database(tmp_path / "w.duckdb", history) as connect, pytest.raises(TaskFailure) as failure:
        backtest_by_group(connect, "select * from history", tmp_path / "engine", "fp", settings, MODELS)
    assert "1 of 4 tasks failed 2 time(s)" in str(failure.value)
    assert "s005" in str(failure.value) and "y is missing or infinite" in str(failure.value)
    assert len(list((tmp_path / "engine").glob("*/parts/*.parquet"))) == 3


