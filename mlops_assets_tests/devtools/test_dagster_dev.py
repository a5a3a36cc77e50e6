"""`dagster dev` against workspace.yaml: the UI's GraphQL API lists every asset and check."""

from __future__ import annotations

import pytest

from mlops_assets.definitions import defs
from mlops_assets.devtools.dagster_dev import dagster_dev, graphql

pytestmark = pytest.mark.e2e


def test_dagster_dev_lists_every_asset_and_check(tmp_path):
    graph = defs.resolve_asset_graph()
    expected_assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected_checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    with dagster_dev(tmp_path) as url:
        nodes = graphql(
            url,
            "{ assetNodes { assetKey { path } groupName hasAssetChecks "
            "assetChecksOrError { ... on AssetChecks { checks { name } } } } }",
        )["assetNodes"]
    found_assets = {"/".join(n["assetKey"]["path"]) for n in nodes}
    found_checks = {
        ("/".join(n["assetKey"]["path"]), c["name"])
        for n in nodes
        for c in n["assetChecksOrError"].get("checks", [])
    }
    assert found_assets == expected_assets
    assert found_checks == expected_checks
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    assert all(groups[key] == key.split("/")[0] for key in found_assets)
