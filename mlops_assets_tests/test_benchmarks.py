"""The benchmark scripts import product code only, never test modules, and each of them imports."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_benchmarks_import_no_test_module():
    assert len(BENCHMARKS) >= 8
    offenders = {
        path.name: sorted(m for m in _imported_modules(path) if m.split(".")[0] == "mlops_assets_tests")
        for path in BENCHMARKS
    }
    assert not {name: modules for name, modules in offenders.items() if modules}


@pytest.mark.slow
def test_every_benchmark_imports():
    # One process for all: a name that moved out of a module fails here, not an hour into a benchmark.
    code = (
        "import importlib.util, sys\n"
        "for path in sys.argv[1:]:\n"
        "    spec = importlib.util.spec_from_file_location(path.rsplit('/', 1)[-1][:-3], path)\n"
        "    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(module)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'benchmarks'}"}
    done = subprocess.run([sys.executable, "-c", code, *map(str, BENCHMARKS)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
