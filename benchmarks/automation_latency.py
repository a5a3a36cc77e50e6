"""Seconds from a landing file dropped to the last asset refreshed, on a real `dagster dev` (sensors + daemon).

Same setup as the end-to-end automation test (test_e2e_automation.py): the small sample (20 products,
8 customers, seed 7) and a small, fast model zoo. The sensors bring the chain up from the sample, then each new
week is dropped (written under a temporary name, renamed) and timed until serving/sales_overall is materialized
again.

"Waiting" is the time no run executes: from the drop to the first run's start, and every gap between one
run's end and the next run's start (sensor and automation ticks, the run queue, a run process starting).

    python benchmarks/automation_latency.py            # two new weeks
    python benchmarks/automation_latency.py --weeks 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.devtools.dagster_dev import (  # noqa: E402
    LAST_ASSET,
    Run,
    dagster_dev,
    latest_materialization,
    wait_until_refreshed,
)
from mlops_assets.sample_data import generate_sample, write_new_week  # noqa: E402

FIRST_NEW_WEEK = date(2026, 9, 28)
# The end-to-end automation test's zoo: cheap models, and AutoTheta for one seasonal model of some cost.
FAST_SETTINGS = "models: [Naive, SeasonalNaive, HistoricAverage, CrostonOptimized, AutoTheta]\n"


def breakdown(dropped: float, all_runs: list[Run], last_run_id: str) -> dict[str, float]:
    """Split drop -> last asset refreshed into waiting and executing, from the runs created after the drop."""
    chain = [r for r in all_runs if r.created >= dropped and r.start is not None]
    chain.sort(key=lambda r: r.start)
    chain = chain[: next(i for i, r in enumerate(chain) if r.run_id == last_run_id) + 1]
    first, last = chain[0], chain[-1]
    gaps = sum(max(0.0, nxt.start - prev.end) for prev, nxt in zip(chain, chain[1:], strict=False))
    total = last.end - dropped
    waiting = (first.start - dropped) + gaps
    return {
        "runs": len(chain),
        "drop_to_first_run_created": first.created - dropped,
        "drop_to_first_run_start": first.start - dropped,
        "gaps_between_runs": gaps,
        "executing": total - waiting,
        "total": total,
        "waiting_share": waiting / total,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=2, help="New weeks dropped one after the other.")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds allowed for each refresh.")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="automation-latency-") as tmp:
        data_dir = Path(tmp)
        generate_sample(data_dir / "landing", n_products=20, n_customers=8, seed=7)
        settings = data_dir / "settings.yaml"
        settings.write_text(FAST_SETTINGS)
        with dagster_dev(data_dir, settings_file=str(settings)) as url:
            up = time.time()
            wait_until_refreshed(url, after=0, deadline=up + args.timeout)
            print(f"chain brought up from the sample's 4 landing files in {time.time() - up:.0f} s")
            rows = []
            for week in range(args.weeks):
                time.sleep(6)  # let a drift retraining of the previous refresh start, so it is not timed
                wait_until_refreshed(url, after=0, deadline=time.time() + args.timeout)
                dropped = time.time()
                write_new_week(data_dir / "landing", FIRST_NEW_WEEK + timedelta(weeks=week), seed=7, n_products=20,
                               n_customers=8)
                all_runs = wait_until_refreshed(url, after=dropped, deadline=dropped + args.timeout)
                rows.append(breakdown(dropped, all_runs, latest_materialization(url, LAST_ASSET)[1]))

    print()
    print("| new week | runs | drop -> 1st run created (s) | drop -> 1st run start (s) | gaps between runs (s) "
          "| executing (s) | drop -> serving/sales_overall (s) | waiting share |")
    print("|---|---|---|---|---|---|---|---|")
    for week, row in enumerate(rows):
        print(f"| {FIRST_NEW_WEEK + timedelta(weeks=week)} | {row['runs']} | {row['drop_to_first_run_created']:.1f} "
              f"| {row['drop_to_first_run_start']:.1f} | {row['gaps_between_runs']:.1f} | {row['executing']:.1f} "
              f"| {row['total']:.1f} | {row['waiting_share']:.0%} |")


if __name__ == "__main__":
    main()
