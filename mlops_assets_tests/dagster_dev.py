"""The code location whose gold table a test can make bad (``faulty_gold``), for `dagster dev` in the tests.

Starting `dagster dev` and watching its runs is product tooling: ``mlops_assets.devtools.dagster_dev``.
"""

from __future__ import annotations

from pathlib import Path

# While this file exists in the data directory, the faulty_gold code location writes a bad gold table.
BAD_GOLD_MARKER = "make_gold_bad"


def faulty_gold_workspace(path: Path, repo: Path) -> Path:
    """A workspace.yaml that loads ``mlops_assets_tests.faulty_gold`` in place of ``mlops_assets.definitions``."""
    path.write_text(
        "load_from:\n  - python_module:\n      module_name: mlops_assets_tests.faulty_gold\n"
        f"      location_name: mlops_assets\n      working_directory: {repo}\n"
    )
    return path
