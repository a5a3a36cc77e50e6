"""The loaded Definitions against a reviewed snapshot: an asset, check, sensor or condition dropped or changed
by a refactoring (a module the defs folder no longer finds, a spec rewritten) fails here, not in production.

After a deliberate change: `MLOPS_UPDATE_SNAPSHOT=1 pytest mlops_assets_tests/test_definitions_snapshot.py`,
then review the diff of definitions_snapshot.json like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from mlops_assets.definitions import defs

SNAPSHOT = Path(__file__).resolve().parent / "definitions_snapshot.json"
UPDATE_ENV = "MLOPS_UPDATE_SNAPSHOT"


def describe_condition(condition: dg.AutomationCondition | None) -> str | None:
    """A condition as its labels read: a labelled part by its label, the rest by operator and operands."""
    if condition is None:
        return None
    if condition.get_label():
        return condition.get_label()
    parts = [describe_condition(child) for child in condition.children]
    return f"{condition.name}({', '.join(parts)})" if parts else condition.description or condition.name


def _freshness(node) -> dict | None:
    policy = getattr(node, "freshness_policy", None)
    return None if policy is None else json.loads(dg.serialize_value(policy))


def snapshot(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "automation_condition": describe_condition(node.automation_condition),
            "freshness_policy": _freshness(node),
            "checks": {
                check.name: {
                    "blocking": graph.get_check_spec(check).blocking,
                    "automation_condition": describe_condition(graph.get_check_spec(check).automation_condition),
                }
                for check in sorted(node.check_keys, key=lambda c: c.name)
            },
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in definitions.jobs or []),
        "sensors": sorted(sensor.name for sensor in definitions.sensors or []),
        "schedules": {s.name: s.cron_schedule for s in sorted(definitions.schedules or [], key=lambda s: s.name)},
        "resources": sorted(definitions.resources or {}),
        "loggers": sorted(definitions.loggers or {}),
        "executor": definitions.executor.name if definitions.executor else None,
    }


def test_definitions_match_the_reviewed_snapshot():
    current = snapshot(defs)
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    missing = sorted(set(expected["assets"]) - set(current["assets"]))
    added = sorted(set(current["assets"]) - set(expected["assets"]))
    assert not missing and not added, f"assets dropped: {missing}; assets not in the snapshot: {added}"
    for key, spec in expected["assets"].items():
        assert current["assets"][key] == spec, f"{key} differs from {SNAPSHOT.name}"
    assert current == expected


def test_snapshot_sees_a_dropped_asset_and_a_changed_condition():
    """The comparison itself: a Definitions without one asset, or with another condition, is told apart."""
    expected = snapshot(defs)
    assets = list(defs.assets)
    dropped = dg.Definitions(assets=assets[1:], asset_checks=defs.asset_checks, resources=defs.resources)
    assert set(snapshot(dropped)["assets"]) < set(expected["assets"])
    first = assets[0]
    key = sorted(first.keys, key=lambda k: k.to_user_string())[0]
    changed = first.map_asset_specs(lambda spec: spec.replace_attributes(
        automation_condition=dg.AutomationCondition.on_missing()) if spec.key == key else spec)
    other = dg.Definitions(assets=[changed, *assets[1:]], asset_checks=defs.asset_checks, resources=defs.resources)
    assert snapshot(other)["assets"][key.to_user_string()]["automation_condition"] != \
        expected["assets"][key.to_user_string()]["automation_condition"]
