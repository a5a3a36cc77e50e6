"""The time left is estimated from the work done, weighted by task size, and only once enough is done."""

import pytest

from mlops_assets.forecasting.engine import Progress
from mlops_assets.forecasting.progress import TimeLeft


def test_a_small_first_task_gives_no_estimate_and_a_large_one_weighs_by_its_size():
    # One small task and three large ones on two workers: the small one finishes first, after 10 s.
    left = TimeLeft([1.0, 100.0, 100.0, 100.0], workers=2)
    left.done(1.0)
    assert left.seconds(10.0) is None  # one task of two workers, 0.3% of the work: no estimate
    left.done(100.0)
    # 101 of 301 units in 600 s: 200 more take about 1,188 s, where counting tasks (2 of 4) said 600 s.
    assert left.seconds(600.0) == pytest.approx(600.0 * 200 / 101)
    left.done(100.0)
    left.done(100.0)
    assert left.seconds(1200.0) is None  # all done


def test_enough_tasks_but_too_little_work_gives_no_estimate_and_costless_tasks_count():
    left = TimeLeft([1.0] * 3 + [1000.0], workers=2)
    left.done(1.0)
    left.done(1.0)
    assert left.seconds(5.0) is None  # two tasks, but 0.2% of the work
    combination = TimeLeft([0.0, 0.0, 0.0, 0.0], workers=1)  # no planned cost: each weighs the same
    combination.done(0.0)
    assert combination.seconds(3.0) == pytest.approx(9.0)


def test_the_progress_line_shows_the_estimate_only_when_there_is_one():
    assert "left" not in Progress(1, 4, 10, 40, 5.0, 0).message
    assert Progress(2, 4, 20, 40, 60.0, 0, left=118.8).message.endswith(", about 119 s left")
    assert "left" not in Progress(4, 4, 40, 40, 90.0, 0, left=None).message
