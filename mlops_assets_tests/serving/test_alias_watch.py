"""The champion watch on a fake registry: moves, rollbacks, outages and a version that fails to load."""

from __future__ import annotations

import time

import pytest

from mlops_assets.serving.alias_watch import AliasWatch


class Registry:
    def __init__(self):
        self.alias: str | None = "1"
        self.served = "1"
        self.broken: set[str] = set()
        self.down = False
        self.errors: list[str] = []
        self.polled: list[str] = []

    def alias_version(self) -> str | None:
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.alias

    def serve(self, version: str) -> None:
        if version in self.broken:
            raise OSError(f"artifacts of version {version} missing")
        self.served = version

    def watch(self) -> AliasWatch:
        return AliasWatch(
            self.alias_version, self.serve, lambda: self.served, poll_seconds=0.01,
            on_poll=self.polled.append, on_error=lambda what, _e: self.errors.append(what),
        )


def test_a_move_and_a_rollback_are_both_followed():
    registry = Registry()
    watch = registry.watch()
    assert watch.poll_once() is None
    registry.alias = "2"
    assert watch.poll_once() == "2" and registry.served == "2"
    registry.alias = "1"
    assert watch.poll_once() == "1" and registry.served == "1"
    assert registry.polled == ["1", "2", "1"] and registry.errors == []


@pytest.mark.parametrize("fault", ["down", "no alias", "broken"])
def test_faults_keep_the_served_version_and_are_retried(fault):
    registry = Registry()
    watch = registry.watch()
    registry.alias = "3"
    if fault == "down":
        registry.down = True
    elif fault == "no alias":
        registry.alias = None
    else:
        registry.broken.add("3")
    assert watch.poll_once() is None and registry.served == "1"
    assert registry.errors == ["load" if fault == "broken" else "poll"]
    registry.down, registry.alias, registry.broken = False, "3", set()
    assert watch.poll_once() == "3"


def test_the_thread_polls_until_stopped():
    registry = Registry()
    watch = registry.watch()
    registry.alias = "2"
    watch.start()
    try:
        for _ in range(500):
            if registry.served == "2":
                break
            time.sleep(0.01)
    finally:
        watch.stop()
    assert registry.served == "2"
    polls = len(registry.polled)
    time.sleep(0.05)
    assert len(registry.polled) == polls
