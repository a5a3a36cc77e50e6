"""Regression: a parallel backtest inside Dagster's interrupt capture must not hang at pool shutdown."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np, pandas as pd
    from dagster._utils.interrupts import capture_interrupts
    from mlops_assets.forecasting.backtest import run_backtest
    from mlops_assets.settings import Settings

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"unique_id": np.repeat([f"s{i}" for i in range(20)], 100),
                       "ds": np.tile(pd.date_range("2020-01-06", periods=100, freq="W-MON"), 20),
                       "y": rng.random(2000)})
    for _ in range(3):
        with capture_interrupts():  # what a Dagster step does: SIGTERM only sets a flag
            out = run_backtest(df, Settings(models=["Naive", "SeasonalNaive"]), n_jobs=2)
    print(len(out))
    """
)


@pytest.mark.slow
def test_parallel_backtest_inside_captured_interrupts_finishes():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) == 20 * 3 * 13 * 2
