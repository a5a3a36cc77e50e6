"""An honest estimate of the time left of a set of tasks of unequal size.

Estimated from the share of the work done, each task weighted by its planned cost (series length x models),
not from the count of tasks: the first tasks to finish are the smallest, and a rate measured on them said
"about 20 s left" for a step that took 30 minutes. No estimate is given until enough is done: a share of the
work and a full round of tasks (one per worker), so that the estimate never rests on the first, fastest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# No estimate before this share of the work is done.
MIN_SHARE = 0.2


@dataclass
class TimeLeft:
    """Feed it each finished task's cost (``done``); ``seconds(elapsed)`` is the estimate, or None."""

    costs: Sequence[float]
    workers: int = 1
    min_share: float = MIN_SHARE
    done_cost: float = field(default=0.0, init=False)
    done_tasks: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        # Tasks with no planned cost (a combination of finished parts) count as the smallest planned one.
        positive = [float(c) for c in self.costs if c > 0]
        self._floor = min(positive) if positive else 1.0
        self.total_cost = sum(self.weight(c) for c in self.costs)

    def weight(self, cost: float) -> float:
        return float(cost) if cost > 0 else self._floor

    def done(self, cost: float) -> None:
        self.done_cost += self.weight(cost)
        self.done_tasks += 1

    def seconds(self, elapsed: float) -> float | None:
        """Seconds left at ``elapsed`` seconds, None until enough is done (or when all is)."""
        enough_tasks = self.done_tasks >= min(max(self.workers, 1), len(self.costs))
        if not enough_tasks or self.done_cost < self.min_share * self.total_cost or self.done_cost <= 0:
            return None
        left = self.total_cost - self.done_cost
        return elapsed * left / self.done_cost if left > 0 else None
