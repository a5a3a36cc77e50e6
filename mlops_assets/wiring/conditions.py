"""Automation conditions: below raw, an asset refreshes once per upstream change, never past a failed blocking
check; the expensive forecasting steps follow settings.automation.forecasting_cadence."""

from datetime import timedelta

import dagster as dg
import pandas as pd

from mlops_assets.settings import load_settings


def contract_check_condition() -> dg.AutomationCondition:
    """A contract check is requested with its asset, so every automation run that materializes it runs it.

    Dagster lets checks without a condition ride along with their asset only while no check of the run's
    assets is requested explicitly. The drift and accuracy checks are ``check_specs`` of their multi-assets,
    so the automation sensor always names them, and the ``@asset_check`` contract checks were then left out
    of every automation run ("Not evaluated", downstream of a check that never ran). Sensor and manual runs
    include every check of their assets already, so the check is never requested on its own.
    """
    return dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).with_label(
        "requested_with_its_asset"
    )


def _deps_blocking_checks_passed() -> dg.AutomationCondition:
    """Every dependency's blocking checks passed on its latest materialization, or it runs in the same run.

    Accepting an in-tick request of the dependency itself lets one run carry the whole chain; its blocking
    checks are requested with it (``contract_check_condition``), and inside the run a failed blocking check
    (severity ERROR) skips every step downstream of it.
    """
    return dg.AutomationCondition.all_deps_match(
        dg.AutomationCondition.will_be_requested()
        | dg.AutomationCondition.all_checks_match(dg.AutomationCondition.check_passed(), blocking_only=True)
    ).with_label("all_deps_blocking_checks_passed_or_requested")


def downstream_condition() -> dg.AutomationCondition:
    """Refresh once per upstream change, never while upstream runs, never past a failed blocking check."""
    return dg.AutomationCondition.eager() & _deps_blocking_checks_passed()


def expensive_condition() -> dg.AutomationCondition:
    """Backtest, champions and registered model: eager by default, or only on the weekly cadence (a setting)."""
    automation = load_settings().automation
    if automation.forecasting_cadence == "weekly":
        return dg.AutomationCondition.on_cron(automation.weekly_schedule) & _deps_blocking_checks_passed()
    return downstream_condition()


# A table that names master ids runs again when master data changes, to take back the rows it had rejected
# for an id unknown then (see mlops_assets/ingest/readmission.py). Not on its first evaluation, nor when it
# was itself refreshed since: the landing sensor feeds it otherwise.
MASTER_DATA_UPDATED = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_match(
        dg.AutomationCondition.all_checks_match(dg.AutomationCondition.check_passed(), blocking_only=True)
    )
).with_label("master_data_updated")


def freshness_policy() -> dg.FreshnessPolicy:
    """For the tables people read: new sales arrive once a period, so a table one period plus a day old warns
    (a delivery missed) and two periods plus a day fails."""
    frequency = load_settings().frequency
    first, second = pd.date_range("2024-01-01", periods=2, freq=frequency)
    period = (second - first).to_pytimedelta()
    return dg.FreshnessPolicy.time_window(fail_window=2 * period + timedelta(days=1),
                                          warn_window=period + timedelta(days=1))
