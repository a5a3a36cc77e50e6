"""The levels are on by default for order lines, off with hierarchy: null and off for a series file unless
declared: without a hierarchy the graph has none of their assets or checks."""

from mlops_assets.catalog import EVALUATION_BY_LEVEL, FORECASTS_BY_LEVEL
from mlops_assets.definitions import defs
from mlops_assets.defs.levels import levels
from mlops_assets.settings import SETTINGS_ENV


def _keys(definitions) -> set[str]:
    return {k.to_user_string() for a in definitions.assets or [] for k in a.keys}


def test_levels_are_wired_for_order_lines_and_declared_series_files_only(tmp_path, monkeypatch):
    wanted = {"/".join(FORECASTS_BY_LEVEL.key), "/".join(EVALUATION_BY_LEVEL.key)}
    # The suite's defaults (the sample's order lines): the levels are wired.
    assert wanted <= {k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys}
    off = tmp_path / "off.yaml"
    for text in ("hierarchy: null\n", "source: series\n"):
        off.write_text(text)
        monkeypatch.setenv(SETTINGS_ENV, str(off))
        assert not levels().assets, text
    declared = tmp_path / "settings.yaml"
    declared.write_text("source: series\nhierarchy: {}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(declared))
    wired = levels()
    assert _keys(wired) == wanted
    checks = {(k.asset_key.to_user_string(), k.name) for c in wired.asset_checks for k in c.check_keys}
    assert checks == {(key, "matches_contract") for key in wanted} | {("/".join(FORECASTS_BY_LEVEL.key), "coherent")}


def test_the_sample_levels_settings_declare_total_category_brand_product():
    from pathlib import Path

    from mlops_assets.levels.hierarchy import level_name, level_spec
    from mlops_assets.settings import Settings, load_settings

    settings = load_settings(Path(__file__).resolve().parents[2] / "settings" / "sample_levels.yaml")
    assert settings.hierarchy is not None
    assert [level_name(columns) for columns in level_spec(settings)] == ["total", "category", "category/brand"]
    assert level_spec(settings) == level_spec(Settings())  # the order lines' defaults, written out
    assert Settings(hierarchy=None).hierarchy is None and Settings(source="series").hierarchy is None
