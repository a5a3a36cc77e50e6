"""StatsForecast whose pool workers answer SIGTERM, whatever signal handlers the caller installed.

StatsForecast forks its worker pool from the calling process, and the pool's shutdown stops idle workers
with SIGTERM. Dagster maps SIGTERM onto its SIGINT handler, and while a step runs that handler only records
the interrupt: forked workers inherit it, ignore SIGTERM, and the pool's shutdown waits for them forever
(seen here: a backtest hung in ``Pool._terminate_pool`` with its worker idle in ``SimpleQueue.get``).
Each worker restores the default handlers as it starts.
"""

from __future__ import annotations

import multiprocessing
import signal

from statsforecast import StatsForecast


def _default_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CleanWorkerStatsForecast(StatsForecast):
    def _get_pool(self):
        return multiprocessing.get_context("fork").Pool, {"initializer": _default_signal_handlers}
