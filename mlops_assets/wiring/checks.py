"""The contract check of a catalog table: every row of the stored table validated, failures in its metadata."""

import dagster as dg

from mlops_assets import contracts
from mlops_assets.catalog import CONTRACT_CHECK, Table
from mlops_assets.wiring.conditions import contract_check_condition
from mlops_assets.wiring.resources import ProjectResource, Warehouse


def contract_check(table: Table, *, chunk_rows: int = contracts.CHUNK_ROWS,
                   sql_rows: int = contracts.SQL_ROWS) -> dg.AssetChecksDefinition:
    """The check ``matches_contract`` on the table's asset; the contract is built at check time (settings, ids)."""

    @dg.asset_check(
        asset=table.key,
        name=CONTRACT_CHECK,
        blocking=table.blocking,
        description=table.contract_description,
        automation_condition=contract_check_condition(),
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, project: ProjectResource):
        contract = table.contract(project.settings, warehouse)
        found = contracts.validate_stored(warehouse.connection, table.name, contract, chunk_rows=chunk_rows,
                                          sql_rows=sql_rows)
        if found.validated_in == "duckdb":
            context.log.info(f"{table}: {found.rows:,} rows validated in DuckDB, {found.failures} failing row(s)")
        elif found.buckets > 1:
            context.log.info(f"{table}: {found.rows:,} rows validated in {found.buckets} buckets, "
                             f"{found.failures} failure(s)")
        metadata = {"failures": found.failures, "rows_checked": found.rows, "validated_in": found.validated_in}
        if found.passed:
            return dg.AssetCheckResult(passed=True, metadata=metadata)
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{found.failures} failure(s) of the {table} contract",
            metadata={**metadata, "examples": dg.MetadataValue.md(found.examples.to_markdown(index=False))},
        )

    return _check
