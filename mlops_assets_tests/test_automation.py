"""The shape of the whole Definitions, and what the automation conditions request as events arrive."""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets.definitions import defs
from mlops_assets.wiring.conditions import downstream_condition, expensive_condition

# evaluate_automation_conditions itself selects with a beta parameter of AssetSelection.all.
pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")

GRAPH = defs.resolve_asset_graph()
ALL_ASSETS = set(GRAPH.get_all_asset_keys())
RAW = {k for k in ALL_ASSETS if k.path[0] == "raw"}
GOLD = {dg.AssetKey(["gold", n]) for n in ("sales_data_for_forecast", "series_excluded", "regressors")}
# Fed by the serving app's inference log, outside the graph: refreshed on a cron, not by upstream changes.
LOG_FED = {dg.AssetKey(["monitoring", "serving_requests"]), dg.AssetKey(["monitoring", "served_forecasts"])}
BELOW_GOLD = ALL_ASSETS - RAW - GOLD - LOG_FED
# Tables with a Pandera contract: all but the drift report (an HTML file) and the OpenAPI document.
CONTRACT_TABLES = {
    *RAW, *GOLD, dg.AssetKey(["serving", "sales_overall"]), dg.AssetKey(["serving", "sales_overall_by_level"]),
    *(dg.AssetKey(["monitoring", n]) for n in ("drift_summary", "forecast_history", "forecast_accuracy",
                                                "serving_requests", "served_forecasts",
                                                "forecast_history_by_level", "forecast_accuracy_by_level")),
    *(dg.AssetKey(["forecasting", n]) for n in ("backtest_forecasts", "series_evaluation", "series_champions",
                                                 "forecasts", "forecasts_by_level", "evaluation_by_level")),
}


def _user(keys) -> set[str]:
    return {k.to_user_string() for k in keys}


def _requested(result) -> set[str]:
    return {r.key.to_user_string() for r in result.results if isinstance(r.key, dg.AssetKey) and r.true_subset.size}


def _materialized(instance: dg.DagsterInstance, keys, *, check_passed: bool | None = True) -> None:
    """Report what a run of ``keys`` leaves behind: a materialization, then each contract check's result."""
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
        if check_passed is not None and key in CONTRACT_TABLES:
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(asset_key=key, check_name="matches_contract", passed=check_passed)
            )


def _requested_checks(result) -> set[str]:
    return {
        r.key.to_user_string() for r in result.results if isinstance(r.key, dg.AssetCheckKey) and r.true_subset.size
    }


def _tick(instance: dg.DagsterInstance, cursor=None):
    return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)


# --- shape ------------------------------------------------------------------------------------------------------


def test_the_inference_log_is_ingested_hourly_and_depends_on_no_asset():
    for key in LOG_FED:
        assert GRAPH.get(key).parent_keys == set()
        assert "on_cron(0 * * * *" in repr(GRAPH.get(key).automation_condition)


def test_assets_below_raw_are_automated_and_raw_assets_are_fed_by_the_landing_sensor():
    assert {"gold/sales_data_for_forecast", "forecasting/forecasts", "serving/sales_overall"} <= _user(ALL_ASSETS)
    assert _user(RAW) == {"raw/products", "raw/customers", "raw/promotions", "raw/sales_orders", "raw/series"}
    # Tables naming master ids also run when master data changes, to take back the rows rejected for an id.
    automated_raw = {k.to_user_string() for k in RAW if GRAPH.get(k).automation_condition is not None}
    assert automated_raw == {"raw/sales_orders", "raw/promotions"}
    missing = [k.to_user_string() for k in ALL_ASSETS - RAW if GRAPH.get(k).automation_condition is None]
    assert missing == []


def test_groups_are_the_key_prefixes():
    assert {k.to_user_string(): GRAPH.get(k).group_name for k in ALL_ASSETS} == {
        k.to_user_string(): k.path[0] for k in ALL_ASSETS
    }


def test_every_table_has_a_contract_check_and_raw_and_gold_ones_block():
    checks = {(k.asset_key, k.name): GRAPH.get(k) for k in GRAPH.asset_check_keys}
    assert {a for a, name in checks if name == "matches_contract"} == CONTRACT_TABLES
    for (asset, name), node in checks.items():
        if name == "matches_contract" and asset in RAW | GOLD:
            assert node.blocking, f"{asset.to_user_string()}:{name} must block"


def test_sensors_and_schedule_have_their_default_status():
    running = dg.DefaultSensorStatus.RUNNING
    assert {s.name: s.default_status for s in defs.sensors} == {
        "landing_zone_sensor": running, "automation_sensor": running, "retrain_on_drift_sensor": running,
    }
    schedule = defs.resolve_schedule_def("weekly_forecasting_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 6 * * 1"
    assert schedule.job.name == "forecasting_refresh"


def test_weekly_cadence_setting_puts_the_expensive_steps_on_the_cron(tmp_path, monkeypatch):
    settings = tmp_path / "settings.yaml"
    settings.write_text("automation:\n  forecasting_cadence: weekly\n  weekly_schedule: '0 5 * * 1'\n")
    monkeypatch.setenv("MLOPS_SETTINGS", str(settings))
    assert "on_cron(0 5 * * 1, UTC)" in repr(expensive_condition())
    monkeypatch.delenv("MLOPS_SETTINGS")
    assert repr(expensive_condition()) == repr(downstream_condition())


# --- conditions over events -------------------------------------------------------------------------------------


def test_nothing_runs_before_raw_data_and_raw_is_never_requested_by_automation():
    instance = dg.DagsterInstance.ephemeral()
    first = _tick(instance)
    assert _requested(first) == set()
    _materialized(instance, RAW - {dg.AssetKey(["raw", "series"])})
    # Gold waits for every raw table (the landing sensor makes an empty one for a folder without files).
    assert _requested(_tick(instance, first.cursor)) == set()


def test_a_raw_change_refreshes_gold_and_everything_below_once_in_one_run():
    instance = dg.DagsterInstance.ephemeral()
    cursor = _tick(instance).cursor
    _materialized(instance, RAW)
    result = _tick(instance, cursor)
    # One request covering the chain: inside the run Dagster materializes gold first, runs its blocking
    # checks, and only then the forecasting steps (a failed check skips them, see the test below).
    assert _requested(result) == _user(GOLD | BELOW_GOLD)
    assert _requested(_tick(instance, result.cursor)) == set()


def test_new_master_data_reruns_the_tables_that_name_its_ids_with_the_chain_below():
    instance = dg.DagsterInstance.ephemeral()
    cursor = _tick(instance).cursor
    _materialized(instance, RAW | GOLD | BELOW_GOLD)
    cursor = _tick(instance, cursor).cursor
    _materialized(instance, {dg.AssetKey(["raw", "products"])})
    result = _tick(instance, cursor)
    assert _requested(result) == {"raw/sales_orders", "raw/promotions"} | _user(GOLD | BELOW_GOLD)
    assert {"raw/sales_orders:matches_contract", "raw/promotions:matches_contract"} <= _requested_checks(result)
    # A failed blocking check on the master data re-runs nothing.
    _materialized(instance, RAW | GOLD | BELOW_GOLD)
    cursor = _tick(instance, result.cursor).cursor
    _materialized(instance, {dg.AssetKey(["raw", "customers"])}, check_passed=False)
    assert _requested(_tick(instance, cursor)) == set()


def test_every_contract_check_below_raw_is_requested_with_its_asset():
    """Automation runs carry the contract checks: they used to stay "Not evaluated" under the daemon."""
    instance = dg.DagsterInstance.ephemeral()
    cursor = _tick(instance).cursor
    _materialized(instance, RAW)
    result = _tick(instance, cursor)
    # Raw is updated outside automation (the landing sensor's runs carry the raw checks): nothing is requested
    # for its checks on their own. The inference-log tables are not below raw: their checks wait for them.
    # Beside the contracts, the warning that a champion could not be served runs with the forecasts, and the
    # levels' coherence with theirs (the suite's order lines have levels by default).
    assert _requested_checks(result) == {
        f"{k.to_user_string()}:matches_contract" for k in CONTRACT_TABLES - RAW - LOG_FED
    } | {"forecasting/forecasts:champions_served", "forecasting/forecasts_by_level:coherent"}
    assert _requested_checks(_tick(instance, result.cursor)) == set()


def test_a_gold_change_refreshes_what_is_below_it_and_not_gold():
    instance = dg.DagsterInstance.ephemeral()
    cursor = _tick(instance).cursor
    _materialized(instance, GOLD)
    result = _tick(instance, cursor)
    assert _requested(result) == _user(BELOW_GOLD)
    assert "forecasting/backtest_forecasts" in _requested(result)


def test_a_failed_blocking_check_on_raw_or_gold_stops_everything_below():
    instance = dg.DagsterInstance.ephemeral()
    cursor = _tick(instance).cursor
    _materialized(instance, RAW - {dg.AssetKey(["raw", "products"])})
    _materialized(instance, {dg.AssetKey(["raw", "products"])}, check_passed=False)
    result = _tick(instance, cursor)
    assert _requested(result) == set()

    _materialized(instance, GOLD, check_passed=False)
    result = _tick(instance, result.cursor)
    assert _requested(result) == set()
    # The fix arrives: gold again, its checks pass, and the chain below resumes.
    _materialized(instance, GOLD)
    assert _requested(_tick(instance, result.cursor)) == _user(BELOW_GOLD)


def test_inside_one_run_a_failed_blocking_check_skips_the_downstream_steps():
    """The in-tick request of a whole chain relies on this: Dagster does not run past a failed blocking check."""

    @dg.asset(key=["gold", "t"], automation_condition=None)
    def upstream():
        return None

    @dg.asset_check(asset=upstream, name="matches_contract", blocking=True)
    def contract():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)

    @dg.asset(key=["forecasting", "t"], deps=[upstream], automation_condition=downstream_condition())
    def downstream():
        return None

    result = dg.materialize([upstream, contract, downstream], raise_on_error=False)
    assert _user(e.asset_key for e in result.get_asset_materialization_events()) == {"gold/t"}
    assert [c.passed for c in result.get_asset_check_evaluations()] == [False]


@pytest.mark.parametrize("key", sorted(_user(BELOW_GOLD)))
def test_every_asset_below_gold_waits_for_blocking_checks(key):
    condition = repr(GRAPH.get(dg.AssetKey.from_user_string(key)).automation_condition)
    assert "all_deps_blocking_checks_passed_or_requested" in condition
    assert "any_deps_in_progress" in condition
