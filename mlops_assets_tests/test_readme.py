"""Every command of the shell and Python blocks of the README and of docs/*.md runs as written, on a copy of
the checkout after `make run`, so the documentation cannot rot.

The README's blocks run first (its `make run` is what the others read), then each page of docs/ in name order.
A block whose commands all ran already (the same text on two pages) is not run again.

What is adapted, and why:
- the copy links the repository's files and the installed `.venv`, with a pyproject.toml older than the
  venv's install marker, so `make` does not install again (that is what `make test` did just before);
- fixed ports (3000, 5000, 5001, 8000) and the batch example's `/tmp/jewelry` become free ports and a temporary
  folder, so that parallel runs do not collide;
- `make test` and `make test-fast` are not run: they are what runs this test;
- `make dev`, `make serve`, `make mlflow-ui` and `make monitor` serve until stopped: each is started, must
  answer, and is stopped; the commands after it in its block run while it serves.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import requests

from mlops_assets.devtools.processes import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[1]
LINKED = ["Makefile", "mlops_assets", "mlops_assets_tests", "settings", "benchmarks", "dagster.yaml",
          "workspace.yaml", "README.md", "docs"]
SERVERS = {"make dev": "dev", "make serve": "serve", "make mlflow-ui": "mlflow", "make monitor": "monitor"}
RUNS = "{ runsOrError { ... on Runs { results { runId } } } }"


@dataclass
class Command:
    text: str
    language: str
    page: str = "README.md"

    @property
    def server(self) -> str | None:
        code = re.sub(r"#.*", "", self.text)
        return next((kind for command, kind in SERVERS.items() if re.search(rf"\b{command}\b", code)), None)


def readme_blocks(text: str, page: str = "README.md") -> list[list[Command]]:
    """Each ```bash / ```python block as its commands: continuation lines and heredocs stay together."""
    blocks = []
    for language, body in re.findall(r"```(bash|python)\n(.*?)```", text, flags=re.S):
        if language == "python":
            blocks.append([Command(body, language, page)])
            continue
        commands, lines = [], body.splitlines()
        while lines:
            line = lines.pop(0)
            while line.endswith("\\") and lines:
                line += "\n" + lines.pop(0)
            heredoc = re.search(r"<<'?(\w+)'?", line)
            if heredoc:
                while lines:
                    line += "\n" + lines.pop(0)
                    if line.endswith("\n" + heredoc.group(1)):
                        break
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(Command(line, language, page))
        blocks.append(commands)
    return blocks


def documented_blocks(pages: list[tuple[str, str]]) -> list[list[Command]]:
    """The blocks of (page name, text) pairs in order, but a block whose commands all ran before."""
    blocks, ran = [], set()
    for page, text in pages:
        for block in readme_blocks(text, page):
            texts = {c.text for c in block}
            if block and not texts <= ran:
                blocks.append(block)
            ran |= texts
    return blocks


def _pages() -> list[tuple[str, str]]:
    docs = sorted((REPO / "docs").glob("*.md"))
    return [("README.md", (REPO / "README.md").read_text()),
            *((f"docs/{page.name}", page.read_text()) for page in docs)]


def test_a_block_shown_twice_runs_once_and_every_page_is_read() -> None:
    pages = [("README.md", "```bash\nmake serve\ncurl x\n```"), ("docs/a.md", "```bash\nmake serve\ncurl x\n```"),
             ("docs/b.md", "```bash\nmake serve\ncurl y\n```\n```yaml\nnot: run\n```")]
    blocks = documented_blocks(pages)
    assert [[(c.page, c.text) for c in block] for block in blocks] == [
        [("README.md", "make serve"), ("README.md", "curl x")], [("docs/b.md", "make serve"), ("docs/b.md", "curl y")]]
    read = [page for page, _ in _pages()]
    assert read[0] == "README.md" and {"docs/edges.md", "docs/forecasting.md", "docs/serving.md"} <= set(read)


def test_the_block_parser_keeps_heredocs_and_continuations_whole() -> None:
    text = ("```bash\nmake dev   # the UI\ncat > f <<'EOF'\na: 1\nEOF\npython -c \"x\\\n.y\"\n```\n"
            "```python\nimport x\n```")
    blocks = readme_blocks(text)
    assert [[c.text for c in block] for block in blocks] == [
        ["make dev   # the UI", "cat > f <<'EOF'\na: 1\nEOF", 'python -c "x\\\n.y"'], ["import x\n"]]
    assert [c.server for c in blocks[0]] == ["dev", None, None]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, int]]:
    root = tmp_path_factory.mktemp("readme_clone")
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    venv = Path(sys.executable).parents[1]
    assert (venv / ".installed").exists(), f"{venv} was not installed by `make setup`: run the tests with make test"
    (root / ".venv").symlink_to(venv)
    # An older pyproject than the venv's install marker: make sees the install as done.
    (root / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    os.utime(root / "pyproject.toml", (0, 0))
    ports = {"dev": free_port(), "serve": free_port(), "mlflow": free_port(), "monitor": free_port()}
    drop = {"MLOPS_DATA_DIR", "MLOPS_SETTINGS", "DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
            "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env.update(PYTHONPATH=str(root), HOME=str(root), PORT=str(ports["dev"]), SERVE_PORT=str(ports["serve"]),
               MLFLOW_PORT=str(ports["mlflow"]), MONITOR_PORT=str(ports["monitor"]))
    return root, env, ports


def _adapt(text: str, root: Path, ports: dict[str, int]) -> str:
    for fixed, kind in (("3000", "dev"), ("5001", "serve"), ("5000", "mlflow"), ("8000", "monitor")):
        text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{ports[kind]}")
    return text.replace("/tmp/jewelry", str(root / "tmp_jewelry"))


def _run(command: Command, root: Path, env: dict[str, str]) -> str:
    argv = ["bash", "-euo", "pipefail", "-c", command.text] if command.language == "bash" else [
        str(root / ".venv" / "bin" / "python"), "-c", command.text]
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (f"{command.page} command failed:\n{command.text}\n"
                                  f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _answers(kind: str, port: int) -> bool:
    url = {"dev": f"http://127.0.0.1:{port}/graphql", "serve": f"http://127.0.0.1:{port}/ping",
           "mlflow": f"http://127.0.0.1:{port}/", "monitor": f"http://127.0.0.1:{port}/"}[kind]
    try:
        if kind == "dev":
            return requests.post(url, json={"query": RUNS}, timeout=5).ok
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def _serve(command: Command, root: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    log = open(root / f"server_{port}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(["bash", "-c", command.text], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=_restore_sigint)
    deadline = time.monotonic() + 240
    while not _answers(command.server, port):
        assert process.poll() is None, f"{command.text!r} exited; see {log.name}"
        assert time.monotonic() < deadline, f"{command.text!r} did not answer on port {port}; see {log.name}"
        time.sleep(1)
    return process


def _runs(port: int) -> int:
    answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": RUNS}, timeout=30).json()
    return len(answer["data"]["runsOrError"]["results"])


def _runs_in(home: Path) -> int:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs_count()


def _check_make_run_again(root: Path, env: dict[str, str]) -> None:
    """"make run is idempotent": again, it redraws no plot, registers nothing, and what it prints runs."""
    again = _run(Command("make run", "bash"), root, env)
    assert "0 drawn" in again and "nothing registered" in again, again[-3000:]
    printed = [line.strip() for line in again.splitlines() if "mlops-assets sql" in line]
    assert printed and "Predict" in _run(Command(printed[0], "bash"), root, env)


@pytest.mark.e2e
def test_every_documented_command_runs_as_written(clone):
    root, env, ports = clone
    blocks = documented_blocks([(page, _adapt(text, root, ports)) for page, text in _pages()])
    seen = [c.text.split("#")[0].strip() for block in blocks for c in block]
    assert "make run" in seen and "make dev" in seen and ".venv/bin/mlops-assets materialize" in seen
    outputs, first_run = {}, True
    for block in blocks:
        servers, pending = [], []
        try:
            for command in [*block, None]:
                if command is not None and command.server is None:
                    if not command.text.startswith("make test"):
                        pending.append(command)
                    continue
                if pending:
                    # The block's commands up to a server run in one shell: an `export` holds for the next.
                    script = Command("\n".join(c.text for c in pending), pending[0].language, pending[0].page)
                    outputs[script.text] = _run(script, root, env)
                    if script.text.startswith("make run") and first_run:
                        first_run = False
                        _check_make_run_again(root, env)
                    pending = []
                if command is None:
                    break
                after_make_run = command.server == "dev" and "jewelry" not in command.text
                before = _runs_in(root / "data" / "dagster_home") if after_make_run else 0
                servers.append(_serve(command, root, env, ports[command.server]))
                if after_make_run:
                    # Right after `make run`: the files are known and every asset is up to date, so the
                    # sensors' first ticks (every 5 s) start nothing.
                    time.sleep(20)
                    assert _runs(ports["dev"]) == before
        finally:
            for process in servers:
                stop_process_group(process, signal.SIGINT, grace=30)
    answers = "\n".join(outputs.values())
    assert "Predict" in answers and "Train" in answers  # mlops-assets sql on sales_overall
    assert '"y_hat"' in answers  # the curl against make serve
    assert "jewelry_001" in answers  # the batch example's forecasts
