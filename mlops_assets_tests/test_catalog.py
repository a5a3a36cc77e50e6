"""The table catalog is the one source: the assets, their contract checks and docs/tables.md all follow it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets import catalog
from mlops_assets.definitions import defs
from mlops_assets.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "tables.md"
GRAPH = defs.resolve_asset_graph()


def test_docs_tables_is_generated_from_the_catalog():
    assert DOC.read_text() == catalog.markdown(), (
        "docs/tables.md is stale: python -m mlops_assets.catalog > docs/tables.md")


def test_every_catalog_table_is_an_asset_described_and_checked_as_the_catalog_says():
    for table in catalog.TABLES:
        key = dg.AssetKey(table.key)
        node = GRAPH.get(key)
        assert node.description == table.description, table.name
        check = GRAPH.get_check_spec(dg.AssetCheckKey(key, catalog.CONTRACT_CHECK))
        assert check.description == table.contract_description, table.name
        assert check.blocking == table.blocking, table.name


def test_every_contract_check_belongs_to_a_catalog_table():
    checked = {key.asset_key.to_user_string() for key in GRAPH.asset_check_keys if key.name == catalog.CONTRACT_CHECK}
    # The levels' tables exist with a hierarchy only (the suite's order lines have one by default).
    wired = {"/".join(table.key) for table in catalog.OPT_IN_TABLES} & checked
    assert checked == {"/".join(table.key) for table in catalog.TABLES} | wired


def test_every_contract_builds_from_the_settings_alone_or_reads_what_it_names():
    """Contracts that need no table build with the settings; the others ask the store for the tables they name."""
    asked: list[str] = []

    class Store:
        def read(self, table, *, missing_ok=False):
            import pandas as pd

            asked.append(table)
            return pd.DataFrame({"product_id": ["P1"], "customer_id": ["C1"]})

        def query(self, sql, params=None):
            import pandas as pd

            asked.append(sql)
            return pd.DataFrame({"n": [0]})

    for table in catalog.TABLES:
        schema = table.contract(Settings(), Store())
        assert schema.columns, table.name
    assert set(a for a in asked if a.startswith("raw.")) == {"raw.products", "raw.customers"}
