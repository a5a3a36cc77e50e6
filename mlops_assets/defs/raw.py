"""Raw layer: every landing file ingested into DuckDB, bad rows quarantined in raw.rejected_rows."""


import tempfile
from pathlib import Path

import dagster as dg

from mlops_assets import schemas
from mlops_assets.defs.meta import OWNERS, pandera_check, preview, table_metadata
from mlops_assets.defs.resources import ProjectResource, Warehouse
from mlops_assets.ingest.raw_layer import apply_staged, stage_folder
from mlops_assets.settings import Settings
from mlops_assets.warehouse import publish_snapshot_from_table, table_exists

REJECTED_ROWS = "raw.rejected_rows"
READMITTED_ROWS = "raw.readmitted_rows"
INGESTED_FILES = "raw.ingested_files"
# Event metadata and log lines list this many items at most: a landing zone of thousands of files, or a
# batch full of conflicts, must not make an event of megabytes.
SHOWN_ITEMS = 20
CONTRACT_CHECK = "matches_contract"

DESCRIPTIONS = {
    "sales_orders": "Every sales order line ever received: one row per order and product; negative quantities"
    " are returns. Corrected lines replace the earlier version of the same order line; lines rejected for an"
    " unknown product or customer are taken back when it arrives.",
    "products": "The product master: name, brand, category, launch and discontinuation dates.",
    "customers": "The customer master: name, sales channel and region.",
    "promotions": "Promotions by product (and customer, empty = all customers) with their discount; a"
    " promotion rejected for an unknown product or customer is taken back when it arrives.",
    "series": "Pre-aggregated sales series (series id, period, value) for users who already have weekly or"
    " monthly sales; a missing value means 'not reported' and is kept as such. Columns declared in"
    " regressors.series_columns (a price, a promotion flag) are kept beside them, also in the rows after a"
    " series' last value that give their planned future.",
}
# Reference tables whose ids a table's rows must use, and the raw assets they come from.
REFERENCES = {
    "sales_orders": {"product_id": "products", "customer_id": "customers"},
    "promotions": {"product_id": "products", "customer_id": "customers"},
}
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


def _known_ids(table: str, warehouse: Warehouse) -> dict[str, set[str]] | None:
    refs = REFERENCES.get(table)
    if not refs:
        return None
    known = {}
    for column, ref in refs.items():
        frame = warehouse.read(f"raw.{ref}", missing_ok=True)
        known[column] = set(frame[column]) if column in frame else set()
    return known


def _declared(table: str, settings: Settings) -> tuple[str, ...]:
    """Numeric columns the settings add to a table: a series file's regressors."""
    return tuple(settings.regressors.series_columns) if table == "series" else ()


def _columns(warehouse: Warehouse, name: str) -> list[str]:
    with warehouse.connection() as con:
        if not table_exists(con, name):
            return []
        return [c[0] for c in con.execute(f"select * from {name} limit 0").description]


def build_raw_asset(table: str) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(["raw", ref]) for ref in sorted(set(REFERENCES.get(table, {}).values()))]

    @dg.asset(
        key=["raw", table],
        group_name="raw",
        deps=deps,
        kinds={"duckdb", "csv", "parquet"},
        owners=OWNERS,
        description=DESCRIPTIONS[table],
        tags={"layer": "raw"},
        automation_condition=MASTER_DATA_UPDATED if table in REFERENCES else None,
    )
    def _raw(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
        paths, settings = project.paths, project.settings
        name, extra = f"raw.{table}", _declared(table, settings)
        paths.engine.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=paths.engine, prefix=f"raw-{table}-") as stage_dir:
            # Files are read and staged with the warehouse closed: readers are kept out only while it merges.
            result = stage_folder(
                table,
                landing_root=paths.landing,
                stage_dir=Path(stage_dir),
                ingested_files=warehouse.read(INGESTED_FILES, missing_ok=True),
                existing_columns=_columns(warehouse, name),
                column_mapping=settings.column_mapping.get(table),
                known_ids=_known_ids(table, warehouse),
                quarantine=warehouse.read(REJECTED_ROWS, missing_ok=True) if table in REFERENCES else None,
                readmitted_before=warehouse.read(READMITTED_ROWS, missing_ok=True) if table in REFERENCES else None,
                settle_seconds=project.landing_settle_seconds,
                extra_numbers=extra,
                chunk_rows=settings.ingest.chunk_rows,
                memory_mb=settings.compute.duckdb_memory_mb,
                today=settings.ingest.as_of,
                empty_y=settings.ingest.empty_y,
            )
            with warehouse.connection() as con:
                written, write_id, readmitted = apply_staged(
                    con, result, rejected_table=REJECTED_ROWS, files_table=INGESTED_FILES,
                    readmitted_table=READMITTED_ROWS)
                for written_table in written:
                    publish_snapshot_from_table(con, Path(warehouse.exports_dir), written_table, write_id)
        with warehouse.connection() as con:
            rows = con.execute(f"select count(*) from {name}").fetchall()[0][0]
            head = con.execute(f"select * from {name} limit 10").df()
        for _, file in result.files.iterrows():
            context.log.info(
                f"{file.source_file}: {file.n_rows} rows kept, {file.n_rejected} rejected to {REJECTED_ROWS}"
            )
        for notice in result.notices:
            context.log.warning(notice)
        if readmitted:
            context.log.info(f"{readmitted} row(s) rejected earlier for an unknown id taken back now "
                             f"that the id is known (logged in {READMITTED_ROWS})")
        if result.n_conflicts:
            shown = "; ".join(f"{r.replaced} replaced by {r.kept}"
                              for r in result.conflicts.head(SHOWN_ITEMS // 4).itertuples())
            context.log.warning(f"{result.n_conflicts} key(s) held by more than one file of this batch; the "
                                f"later arrival (modification time, then name) wins: {shown}")
        if result.ignored:
            shown = "; ".join(f"{path}: {why}" for path, why in result.ignored[:SHOWN_ITEMS])
            context.log.warning(f"{len(result.ignored)} entr(ies) of the landing folder not read: {shown}")
        if result.settling:
            context.log.warning(
                f"left for a later run, modified in the last {project.landing_settle_seconds:g} s: {result.settling}"
            )
        if result.skipped:
            context.log.info(f"{len(result.skipped)} file(s) already ingested with the same content: skipped")
        return dg.MaterializeResult(
            metadata={
                **table_metadata(
                    head,
                    name,
                    new_files=dg.MetadataValue.json(result.files["source_file"].head(SHOWN_ITEMS).tolist()),
                    new_file_count=len(result.files),
                    unchanged_files=len(result.skipped),
                    ignored_files=dg.MetadataValue.json([f"{p}: {why}" for p, why in result.ignored[:SHOWN_ITEMS]]),
                    batch_key_conflicts=result.n_conflicts,
                    readmitted_rows=readmitted,
                    rejected_rows=result.n_rejected,
                    rejected_examples=preview(result.rejected_examples.drop(columns=["raw_record"])),
                ),
                "dagster/row_count": rows,
            }
        )

    return _raw


def _contract(table: str):
    if table == "sales_orders":
        return lambda wh, _project: schemas.sales_orders_schema(
            wh.read("raw.products")["product_id"], wh.read("raw.customers")["customer_id"]
        )
    if table == "promotions":
        return lambda wh, _project: schemas.promotions_schema(
            wh.read("raw.products")["product_id"], wh.read("raw.customers")["customer_id"]
        )
    if table == "series":
        return lambda _wh, project: schemas.series_schema(project.settings.regressors.series_columns)
    fixed = {"products": schemas.PRODUCTS, "customers": schemas.CUSTOMERS}[table]
    return lambda _wh, _project: fixed


RAW_TABLES = ("products", "customers", "promotions", "sales_orders", "series")
raw_assets = [build_raw_asset(table) for table in RAW_TABLES]
raw_checks = [
    pandera_check(
        asset=["raw", table],
        name=CONTRACT_CHECK,
        table=f"raw.{table}",
        schema=_contract(table),
        blocking=True,
        description=f"raw.{table} matches its Pandera contract (types, nulls, ranges, unique keys, known ids).",
    )
    for table in RAW_TABLES
]

