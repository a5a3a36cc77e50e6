"""Resources: where the data lives, the settings, the DuckDB warehouse and MLflow."""


import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from mlops_assets import run_lock, warehouse
from mlops_assets.ingest.landing_watch import SETTLE_SECONDS
from mlops_assets.registry.abandoned_runs import end_abandoned_runs
from mlops_assets.registry.relocation import relocate_store
from mlops_assets.settings import (
    DATA_DIR_ENV,
    SETTINGS_ENV,
    ComputeSettings,
    DataPaths,
    LockSettings,
    Settings,
    load_settings,
)

logger = logging.getLogger(__name__)


class _RunScoped(dg.ConfigurableResource):
    """A resource that holds the data directory's run lock while a run uses it (see run_lock.py).

    Every resource a run can write through takes it (every asset and check uses the warehouse or MLflow),
    so no selection of assets escapes it. The project resource, which sensors use, does not: a sensor
    must never wait for a run.
    """

    data_dir: str = Field(description=f"Data directory (landing, warehouse, MLflow, reports); ${DATA_DIR_ENV}.")
    run_lock_wait_seconds: float = Field(
        LockSettings().run_wait_seconds,
        description="Seconds a run waits for another run on the same data directory (locks.run_wait_seconds).",
    )

    _log: object = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._log, self._run_id = context.log, context.run_id
        if context.run_id:
            run_lock.acquire(
                self.data_dir,
                owner=f"Dagster run {context.run_id}",
                wait_seconds=self.run_lock_wait_seconds,
                on_wait=context.log.warning if context.log else None,
            )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if context.run_id:
            run_lock.release(self.data_dir, owner=f"Dagster run {context.run_id}")


class ProjectResource(dg.ConfigurableResource):
    """The data directory and the settings file: everything a run needs to know about where and how."""

    data_dir: str = Field(description=f"Data directory (landing, warehouse, MLflow, reports); ${DATA_DIR_ENV}.")
    settings_file: str = Field("", description=f"YAML settings file; ${SETTINGS_ENV}; empty = built-in defaults.")
    landing_settle_seconds: float = Field(
        SETTLE_SECONDS,
        description="A landing file modified more recently than this may still be being written under its final "
        "name: runs leave it for later.",
    )

    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Read once per run: every asset of the run sees the same settings, even if the file changes meanwhile.
        self._settings = load_settings(self.settings_file or None)

    @property
    def paths(self) -> DataPaths:
        return DataPaths(Path(self.data_dir).resolve())

    @property
    def settings(self) -> Settings:
        """The run's settings; outside a run (a sensor tick, a test), the file as it is now."""
        return self._settings if self._settings is not None else load_settings(self.settings_file or None)


class Warehouse(_RunScoped):
    """The DuckDB warehouse, with every write mirrored as an atomically replaced Parquet snapshot.

    Each asset opens the file only for the moment it reads or writes. At the start of every run the
    snapshots are reconciled with the warehouse, so one left behind by a killed run heals on the next.
    """

    duckdb: DuckDBResource
    exports_dir: str = Field(description="Folder of the Parquet snapshots that other processes read.")
    wait_seconds: float = Field(
        LockSettings().warehouse_wait_seconds,
        description="Seconds a run waits for another process to close the DuckDB file "
        "(locks.warehouse_wait_seconds).",
    )
    memory_mb: int = Field(
        ComputeSettings().duckdb_memory_mb, description="DuckDB's memory_limit in MB (compute.duckdb_memory_mb)."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        if not context.run_id:
            return
        with self.connection() as con:
            repaired = warehouse.reconcile_snapshots(con, Path(self.exports_dir))
        if repaired and context.log:
            context.log.warning(f"exports behind the warehouse (an earlier run stopped between its commit and "
                                f"its export), republished: {', '.join(repaired)}")

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.duckdb.database).parent.mkdir(parents=True, exist_ok=True)
        with warehouse.connector(self.duckdb.database, wait_seconds=self.wait_seconds,
                                 on_wait=self._log.warning if self._log else None, memory_mb=self.memory_mb)() as con:
            yield con

    def read(self, table: str, *, missing_ok: bool = False) -> pd.DataFrame:
        with self.connection() as con:
            return warehouse.read_table(con, table, missing_ok=missing_ok)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connection() as con:
            return con.execute(sql, params or []).df()

    def rows(self, table: str) -> int:
        """The table's row count; 0 when it does not exist yet."""
        with self.connection() as con:
            return warehouse.row_count(con, table)

    def write(
        self, *, replace: dict[str, pd.DataFrame] | None = None, append: dict[str, pd.DataFrame] | None = None
    ) -> None:
        """Write in one transaction, then republish the snapshot of every table touched."""
        with self.connection() as con:
            write_id = warehouse.write_tables(con, replace=replace, append=append)
            touched = {**(replace or {}), **{t: warehouse.read_table(con, t) for t in (append or {})}}
        for table, df in touched.items():
            warehouse.publish_snapshot(Path(self.exports_dir), table, df, write_id)

    def replace_from_parquet(self, table: str, pattern: str, order_by: str, *, then_remove: Path | None = None) -> int:
        """Replace a table with the rows of Parquet files (a glob), sorted, never holding them in memory;
        ``then_remove``: the scratch folder of the parts, removed once they are stored (kept on a failure, so a
        rerun can resume from them)."""
        return self.replace_many_from_parquet({table: (pattern, order_by)}, then_remove=then_remove)[table]

    def replace_many_from_parquet(self, tables: dict[str, tuple[str, str]], *,
                                  then_remove: Path | None = None) -> dict[str, int]:
        """``replace_from_parquet`` for several tables (table -> (pattern, order_by)) in one transaction."""
        with self.connection() as con:
            rows, write_id = warehouse.replace_tables_from_parquet(con, tables)
            for table in tables:
                warehouse.publish_snapshot_from_table(con, Path(self.exports_dir), table, write_id)
        if then_remove is not None:
            shutil.rmtree(then_remove, ignore_errors=True)
        return rows

    def append_query(self, table: str, sql: str, params: list | None = None) -> int:
        """Append a query's rows to a history table inside DuckDB; returns the table's rows after it."""
        with self.connection() as con:
            write_id = warehouse.append_from_query(con, table, sql, params)
            warehouse.publish_snapshot_from_table(con, Path(self.exports_dir), table, write_id)
            return int(con.execute(f"select count(*) from {table}").fetchone()[0])

    def replace(self, table: str, df: pd.DataFrame) -> None:
        self.write(replace={table: df})

    def append(self, table: str, df: pd.DataFrame) -> pd.DataFrame:
        """Append rows to a history table; returns the whole table after the append."""
        self.write(append={table: df})
        return self.read(table)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_DESCRIPTION = (
    "Backtest evaluations of the forecasting model zoo (one run per evaluation of forecasting/series_evaluation, "
    "its registered per-series champion model) and drift reports of gold (monitoring/drift_report)."
)


class MlflowTracking(_RunScoped):
    """MLflow tracking and registry on one URI (SQLite in the data directory by default).

    dagster-mlflow's ``mlflow_tracking`` is a legacy function resource that opens one MLflow run per Dagster
    run and must be closed by a hook that ``dg.materialize`` cannot attach; this product wants one MLflow run
    per evaluation materialization and registry calls outside any run, so it wraps MLflow directly.
    """

    tracking_uri: str = Field(description="MLflow tracking and registry URI.")
    artifact_root: str = Field("", description="Artifact folder for a new experiment; empty = MLflow default.")
    experiment_name: str = Field("sales_forecast", description="Experiment of the evaluation runs.")

    def activate(self) -> str:
        """Point this process at the store and make sure the experiment exists; returns its id.

        A store in the data directory whose recorded artifact locations name another directory (the data
        directory was moved or copied) is first pointed at this one.
        """
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        paths = DataPaths(Path(self.data_dir).resolve())
        if self.tracking_uri == paths.mlflow_tracking_uri:
            moved = relocate_store(paths.mlflow / "mlflow.db", paths.mlflow_artifacts)
            if moved:
                (self._log or logger).warning(
                    f"data directory moved or copied: MLflow artifact locations under {', '.join(moved)} now point "
                    f"at {paths.mlflow_artifacts} ({sum(moved.values())} rewritten)"
                )
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        found = mlflow.get_experiment_by_name(self.experiment_name)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = Path(self.artifact_root).resolve().as_uri() if self.artifact_root else None
            experiment_id = mlflow.create_experiment(self.experiment_name, artifact_location=location)
        if found is None or EXPERIMENT_KIND_TAG not in found.tags:
            # Without the kind, MLflow 3's UI opens an experiment on its (empty) GenAI traces page.
            client = mlflow.MlflowClient()
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
            client.set_experiment_tag(experiment_id, "mlflow.note.content", EXPERIMENT_DESCRIPTION)
        mlflow.set_experiment(experiment_id=experiment_id)
        if abandoned := end_abandoned_runs(experiment_id, self._run_id):
            (self._log or logger).warning(f"MLflow runs left RUNNING by a stopped run ended as FAILED: "
                                          f"{', '.join(abandoned)}")
        return experiment_id

    def run_tags(self, context: dg.AssetExecutionContext) -> dict[str, str]:
        """Tags of a run an asset logs: the same source whether a sensor, the UI or the CLI started it."""
        # The first key of a multi-asset (drift_report beside drift_summary) names it.
        asset = sorted(key.to_user_string() for key in context.selected_asset_keys)[0]
        return {
            "dagster_run_id": context.run_id,
            "dagster_asset": asset,
            # MLflow otherwise names the program that started the process (dagster, mlops-assets, pytest).
            "mlflow.source.name": f"mlops_assets {asset}",
            "mlflow.source.type": "JOB",
        }

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Where `mlflow ui --backend-store-uri <uri>` (default port 5000) shows the run."""
        return f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"


def build_resources(
    data_dir: str | None = None, settings_file: str | None = None, landing_settle_seconds: float = SETTLE_SECONDS
) -> dict[str, object]:
    """All resources for one data directory; ``definitions.py`` and the tests build them the same way."""
    paths = DataPaths.from_env(data_dir)
    settings_file = settings_file if settings_file is not None else os.environ.get(SETTINGS_ENV, "")
    settings = load_settings(settings_file or None)
    scoped = {"data_dir": str(paths.root), "run_lock_wait_seconds": settings.locks.run_wait_seconds}
    return {
        "project": ProjectResource(
            data_dir=str(paths.root), settings_file=settings_file, landing_settle_seconds=landing_settle_seconds
        ),
        "warehouse": Warehouse(
            duckdb=DuckDBResource(database=str(paths.warehouse)),
            exports_dir=str(paths.exports),
            wait_seconds=settings.locks.warehouse_wait_seconds,
            memory_mb=settings.compute.duckdb_memory_mb,
            **scoped,
        ),
        "mlflow_tracking": MlflowTracking(
            tracking_uri=settings.mlflow_tracking_uri or paths.mlflow_tracking_uri,
            artifact_root=str(paths.mlflow_artifacts),
            experiment_name=settings.experiment_name,
            **scoped,
        ),
    }
