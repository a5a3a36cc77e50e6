"""A fresh clone is self-contained: no test reads a file beside the checkout or on a developer's machine."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pandas as pd

from mlops_assets_tests.conftest import VENDORED_DATA

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# Where one machine keeps its checkouts and their neighbours; a user's clone has none of it.
MACHINE_ROOTS = ("/work/", "/home/", "/Users/", "/root/", "/srv/", "/mnt/", "/opt/")


def _outside_paths(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        if text == "shared" or "../shared" in text or text.startswith(MACHINE_ROOTS):
            found.append(text)
    return found


def test_the_outside_path_finder_sees_what_the_old_tests_read() -> None:
    old = 'DATA = Path("/work/shared/data")\nSHARED = Path(__file__).parents[1].parent / "shared" / "data"\n'
    assert _outside_paths(old) == ["/work/shared/data", "shared"]
    assert _outside_paths('CHROMIUM = "/usr/bin/chromium"\nurl = "/graphql"\nbad = "../etc"\n') == []


def test_no_test_names_a_path_outside_the_repository() -> None:
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve() and (found := _outside_paths(path.read_text()))
    }
    assert offenders == {}, f"tests must read only files inside the repository: {offenders}"


def test_vendored_datasets_carry_their_provenance_and_licence() -> None:
    notes = (VENDORED_DATA / "README.md").read_text()
    assert "expsmooth" in notes and "GPL" in notes
    for name in ("jewelry_weekly.csv", "carparts_monthly.csv"):
        frame = pd.read_csv(VENDORED_DATA / name)
        assert list(frame.columns) == ["unique_id", "ds", "y"]
        assert f"`{name}`" in notes
        # Small enough to keep in git; the full files stay outside the repository (benchmarks read them).
        assert (VENDORED_DATA / name).stat().st_size < 200_000


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60)


def test_make_test_stops_at_once_with_the_command_that_installs_missing_programs() -> None:
    missing = _make("system-packages", "TEST_PROGRAMS=/nonexistent/chromium:chromium /nonexistent/promtool:prometheus",
                    "APT_GET=/nonexistent/apt-get")
    assert missing.returncode == 2
    assert "sudo apt-get install -y --no-install-recommends chromium prometheus" in missing.stdout
    present = _make("system-packages", "TEST_PROGRAMS=/bin/sh:dash", "APT_GET=/nonexistent/apt-get")
    assert (present.returncode, present.stdout) == (0, "")


def test_ci_only_calls_make_test() -> None:
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == "make test" and not any("apt-get" in line for line in lines)
