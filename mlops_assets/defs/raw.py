"""Raw layer: every landing file ingested into DuckDB, bad rows quarantined in raw.rejected_rows."""

from pathlib import Path

import dagster as dg

from mlops_assets import catalog
from mlops_assets.catalog import Table
from mlops_assets.ingest.raw_batch import REFERENCES, ingest_folder, rejected_preview
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import MASTER_DATA_UPDATED
from mlops_assets.wiring.metadata import OWNERS, preview, stored_table_metadata
from mlops_assets.wiring.resources import ProjectResource, Warehouse


def build_raw_asset(table: Table) -> dg.AssetsDefinition:
    folder = table.key[-1]
    deps = [catalog.raw(ref).key for ref in sorted(set(REFERENCES.get(folder, {}).values()))]

    @dg.asset(
        key=table.key,
        group_name="raw",
        deps=deps,
        kinds={"duckdb", "csv", "parquet"},
        owners=OWNERS,
        description=table.description,
        tags={"layer": "raw"},
        automation_condition=MASTER_DATA_UPDATED if folder in REFERENCES else None,
    )
    def _raw(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
        batch = ingest_folder(warehouse.connection, Path(warehouse.exports_dir), folder, project.paths,
                              project.settings, project.landing_settle_seconds)
        for level, message in batch.messages():
            getattr(context.log, level)(message)
        summary = batch.summary()
        return dg.MaterializeResult(metadata=stored_table_metadata(
            warehouse, table,
            **{k: dg.MetadataValue.json(v) if isinstance(v, list) else v for k, v in summary.items()},
            rejected_examples=preview(rejected_preview(batch)),
        ))

    return _raw


raw_assets = [build_raw_asset(table) for table in catalog.RAW_TABLES]
raw_checks = [contract_check(table) for table in catalog.RAW_TABLES]
