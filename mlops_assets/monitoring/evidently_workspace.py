"""Drift and realized accuracy over time in an Evidently workspace, for Evidently's own UI (`make monitor`).

One project, one Evidently run per drift report (its drift share) and per forecast issue that actuals
now cover (its realized SMAPE and interval coverage), stamped with when the report ran or the forecast
was issued, so the dashboard's line panels show the trend. The tables (monitoring.drift_summary,
monitoring.forecast_accuracy) are the record: the project's runs are rebuilt from them each time, so a
rerun never doubles a point; the project and its dashboard keep their id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from evidently import Report
from evidently.metrics import MeanValue
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import counter_panel, line_plot_panel
from evidently.ui.workspace import Project, Workspace

PROJECT = "sales_forecast monitoring"
DESCRIPTION = (
    "Drift share of the gold table per drift report, and the realized accuracy of every forecast issue "
    "once actuals cover it (SMAPE on the M4 scale, 0-200; share of actuals inside the 80% and 95% intervals)."
)
DRIFT_TAG, ACCURACY_TAG = "drift", "accuracy"


def _mean(column: str, legend: str) -> PanelMetric:
    return PanelMetric(legend=legend, metric="MeanValue", metric_labels={"column": column})


def _panels() -> dict[str, list]:
    return {
        "Drift": [
            counter_panel("Latest drift share", [_mean("drift_share", "drift share")], size="half"),
            line_plot_panel("Drift share per report", [_mean("drift_share", "share of drifted columns (0-1)")]),
        ],
        "Accuracy": [
            counter_panel("Latest realized SMAPE", [_mean("smape", "SMAPE (0-200)")], size="half"),
            line_plot_panel("Realized SMAPE per forecast issue", [_mean("smape", "mean SMAPE (0-200, M4)")]),
            line_plot_panel(
                "Interval coverage per forecast issue",
                [_mean("in_80", "inside the 80% interval"), _mean("in_95", "inside the 95% interval")],
            ),
        ],
    }


@dataclass
class WorkspaceSummary:
    project_id: str
    drift_runs: int
    accuracy_runs: int


def _project(workspace: Workspace) -> Project:
    found = workspace.search_project(PROJECT)
    if found:
        return found[0]
    project = workspace.create_project(PROJECT, description=DESCRIPTION)
    for tab, panels in _panels().items():
        for panel in panels:
            project.dashboard.add_panel(panel, tab=tab)
    return project


def _run(frame: pd.DataFrame, columns: list[str], when: pd.Timestamp, tag: str, metadata: dict):
    report = Report([MeanValue(column=c) for c in columns])
    return report.run(frame[columns], None, timestamp=when.to_pydatetime(), tags=[tag], metadata=metadata)


def rebuild_workspace(folder: Path, drift_summary: pd.DataFrame, accuracy: pd.DataFrame) -> WorkspaceSummary:
    """Write the project's runs from the two tables (either may be empty); returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(folder))
    project = _project(workspace)
    for run in workspace.list_runs(project.id):
        workspace.delete_run(project.id, run)

    drift_rows = drift_summary.sort_values("reported_at") if not drift_summary.empty else drift_summary
    for row in drift_rows.itertuples(index=False):
        one = pd.DataFrame({"drift_share": [float(row.drift_share)]})
        workspace.add_run(project.id, _run(one, ["drift_share"], pd.Timestamp(row.reported_at), DRIFT_TAG,
                                           {"method": str(row.method), "drifted": str(row.drifted_columns or "")}))

    issues = 0
    if not accuracy.empty:
        scored = accuracy.assign(
            **{f"in_{lv}": accuracy[f"in_{lv}"].astype("Float64").astype(float) for lv in (80, 95)
               if f"in_{lv}" in accuracy}
        )
        for issued_at, issue in scored.groupby("issued_at", sort=True):
            columns = ["smape", *[c for c in ("in_80", "in_95") if c in issue and issue[c].notna().any()]]
            versions = ",".join(sorted(issue["model_version"].astype(str).unique()))
            workspace.add_run(project.id, _run(issue, columns, pd.Timestamp(issued_at), ACCURACY_TAG,
                                               {"forecasts_scored": str(len(issue)), "model_versions": versions}))
            issues += 1
    return WorkspaceSummary(str(project.id), len(drift_summary), issues)
