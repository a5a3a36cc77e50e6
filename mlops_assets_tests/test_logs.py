"""The console log of a run: asset messages and one line per step, every event only when asked for."""

import logging

import dagster as dg
import pytest

from mlops_assets import logs, runner


@dg.asset
def first(context: dg.AssetExecutionContext) -> int:
    context.log.info("42 rows written")
    return 42


@dg.asset
def second(first: int) -> int:
    return first + 1


@dg.asset
def broken() -> None:
    raise ValueError("orders.csv row 7: quantity 'abc' is not a number")


@dg.asset
def busy() -> None:
    try:
        raise OSError('Could not set lock on file "warehouse.duckdb"')
    except OSError as error:
        raise TimeoutError("the warehouse is held open by process 4242; close that connection") from error


def _run(*assets: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(assets=list(assets), loggers={"console": logs.console_logger})
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config={"loggers": {"console": {"config": {"total_steps": len(job.graph.node_dict)}}}},
        raise_on_error=False,
    )


def test_a_run_logs_its_messages_and_one_counted_line_per_step(capsys, monkeypatch):
    monkeypatch.delenv(logs.LOG_LEVEL_ENV, raising=False)
    assert _run(first, second).success
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines[0] == "first: 42 rows written"
    assert lines[1].startswith("[ 1/2] first: done in ") and lines[1].endswith(" s")
    assert lines[2].startswith("[ 2/2] second: done in ")
    assert len(lines) == 3


def test_a_failed_step_says_why_and_what_was_skipped(capsys, monkeypatch):
    monkeypatch.delenv(logs.LOG_LEVEL_ENV, raising=False)
    assert not _run(broken).success
    err = capsys.readouterr().err
    assert "[ 1/1] broken: FAILED: ValueError: orders.csv row 7: quantity 'abc' is not a number" in err
    assert "DEBUG" not in err


def test_a_failed_step_shows_the_error_the_product_raised_not_the_one_it_wraps(capsys, monkeypatch):
    monkeypatch.delenv(logs.LOG_LEVEL_ENV, raising=False)
    result = _run(busy)
    err = capsys.readouterr().err
    assert "[ 1/1] busy: FAILED: TimeoutError: the warehouse is held open by process 4242" in err
    assert runner.why_failed(result) == ("the run failed at busy (the reason is on the step's FAILED line above); "
                                         "its log in the Dagster UI (make dev)")


def test_debug_brings_every_engine_event_back(capsys, monkeypatch):
    monkeypatch.setenv(logs.LOG_LEVEL_ENV, "debug")
    assert _run(first, second).success
    err = capsys.readouterr().err
    assert "Started execution of step" in err and len(err.splitlines()) > 10


def test_an_unknown_level_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(logs.LOG_LEVEL_ENV, "chatty")
    with pytest.raises(ValueError, match="MLOPS_LOG_LEVEL='CHATTY' is not a log level"):
        logs.log_level()


def test_mlflow_lines_a_user_cannot_act_on_are_silenced_and_others_kept(caplog, monkeypatch):
    monkeypatch.delenv(logs.LOG_LEVEL_ENV, raising=False)
    logs.quiet_third_party()
    logs.quiet_third_party()  # twice: still one filter
    pyfunc = logging.getLogger("mlflow.pyfunc")
    assert len(pyfunc.filters) == 1
    with caplog.at_level(logging.INFO, logger="mlflow"):
        pyfunc.warning("Passing a Python object as `python_model` causes it to be serialized using CloudPickle")
        pyfunc.warning("the model could not be loaded")
    assert [r.getMessage() for r in caplog.records] == ["the model could not be loaded"]
