"""The levels are opt-in: without a declared hierarchy the graph has none of their assets or checks."""

from mlops_assets.catalog import EVALUATION_BY_LEVEL, FORECASTS_BY_LEVEL
from mlops_assets.definitions import defs
from mlops_assets.defs.levels import levels
from mlops_assets.settings import SETTINGS_ENV


def _keys(definitions) -> set[str]:
    return {k.to_user_string() for a in definitions.assets or [] for k in a.keys}


def test_levels_are_wired_only_when_the_settings_declare_a_hierarchy(tmp_path, monkeypatch):
    wanted = {"/".join(FORECASTS_BY_LEVEL.key), "/".join(EVALUATION_BY_LEVEL.key)}
    # The suite's defaults: no hierarchy.
    assert not wanted & {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    monkeypatch.setenv(SETTINGS_ENV, "")
    assert not levels().assets
    declared = tmp_path / "settings.yaml"
    declared.write_text("hierarchy: {levels: [[category]]}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(declared))
    wired = levels()
    assert _keys(wired) == wanted
    checks = {(k.asset_key.to_user_string(), k.name) for c in wired.asset_checks for k in c.check_keys}
    assert checks == {(key, "matches_contract") for key in wanted} | {("/".join(FORECASTS_BY_LEVEL.key), "coherent")}


def test_the_sample_levels_settings_declare_total_category_brand_product():
    from pathlib import Path

    from mlops_assets.levels.hierarchy import level_name, level_spec
    from mlops_assets.settings import load_settings

    settings = load_settings(Path(__file__).resolve().parents[2] / "settings" / "sample_levels.yaml")
    assert settings.hierarchy is not None
    assert [level_name(columns) for columns in level_spec(settings)] == ["total", "category", "category/brand"]
