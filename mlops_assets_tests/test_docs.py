"""The settings reference (docs/settings.md) names every setting with the default the code has, and every
YAML block of the pages that show settings is settings the product accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import yaml

from mlops_assets.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
# The pages whose ```yaml blocks are settings files (another page may show other YAML).
SETTINGS_PAGES = [REPO / "README.md", *(REPO / "docs" / f"{page}.md" for page in ("settings", "forecasting",
                                                                                   "scaling"))]


def _yaml_blocks(page: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.S)


def _paths(model: type[pydantic.BaseModel], prefix: str = "") -> set[str]:
    """Every setting's dotted name; a section is a nested model, a mapping (column_mapping) is one setting."""
    names = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
            names |= _paths(kind, f"{prefix}{name}.")
        else:
            names.add(prefix + name)
    return names


def _documented(mapping: dict, prefix: str = "") -> set[str]:
    names = set()
    for name, value in mapping.items():
        if isinstance(value, dict) and value and f"{prefix}{name}" not in {"column_mapping"}:
            names |= _documented(value, f"{prefix}{name}.")
        else:
            names.add(prefix + name)
    return names


def test_the_settings_reference_lists_every_setting_with_the_codes_default(tmp_path: Path) -> None:
    reference = _yaml_blocks(REPO / "docs" / "settings.md")[0]
    file = tmp_path / "reference.yaml"
    file.write_text(reference)
    assert load_settings(file) == Settings()
    documented, settings = _documented(yaml.safe_load(reference)), _paths(Settings)
    assert documented == settings, (
        f"not documented: {sorted(settings - documented)}; not settings: {sorted(documented - settings)}")


def test_every_settings_example_in_the_docs_loads(tmp_path: Path) -> None:
    examples = [(page.name, block) for page in SETTINGS_PAGES for block in _yaml_blocks(page)]
    assert len(examples) >= 4
    for number, (page, block) in enumerate(examples):
        file = tmp_path / f"{number}.yaml"
        file.write_text(block)
        try:
            load_settings(file)
        except pydantic.ValidationError as error:
            raise AssertionError(f"a settings example of {page} does not load:\n{block}\n{error}") from error


# Folders the README describes as a whole: the Dagster definitions and helpers, and developer tools.
DESCRIBED_AS_FOLDERS = {"defs", "wiring", "devtools"}


def test_the_readme_names_every_module_of_the_product() -> None:
    package = REPO / "mlops_assets"
    modules = [path for path in package.glob("*.py") if path.name != "__init__.py"]
    for folder in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        if folder.name not in DESCRIBED_AS_FOLDERS:
            modules += [path for path in folder.glob("*.py") if path.name != "__init__.py"]
    readme = (REPO / "README.md").read_text()
    missing = sorted(str(path.relative_to(package)) for path in modules if f"`{path.name}`" not in readme)
    assert not missing, f"README.md, 'Where things are', does not name {missing}"
