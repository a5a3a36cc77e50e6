"""How many series the gold layer keeps out of forecasting on real series files, and what it costs.

For each shared dataset, cut 13 periods before its end (so the periods after are known), and build gold
twice side by side: with the rules of issue 11 (the defaults) and with the strict rules it replaced
(``stale_after: 0``, staleness then counted from the very last period of any series). Printed per rule:
series excluded by reason, and how many of each did sell in the 13 periods after the cut. A second case
makes one series report one period early (the issue's case 1).

Speed: ``build_gold_from_series`` against a floor, a bare pandas group-by sum of the same rows into
periods, on 10,000 weekly series of three years with 1% missing values; wall and CPU seconds, load average.

    SHARED_DATA=../shared/data nice -n 19 .venv/bin/python benchmarks/gold_trust.py
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.gold.aggregation import build_gold_from_series, period_start
from mlops_assets.settings import Settings

# Beside the checkout, as for benchmarks/accuracy.py; SHARED_DATA points elsewhere (a worktree).
DATA = Path(os.environ.get("SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
DATASETS = {
    "jewelry_weekly.csv": {"frequency": "W-MON", "horizon": 13},
    "carparts_monthly.csv": {"frequency": "MS", "horizon": 6},
    "m5_weekly_ca3_hobbies2.csv": {"frequency": "W-MON", "horizon": 13},
}
AFTER = 13


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _rules(settings: dict) -> dict[str, Settings]:
    return {"issue 11 defaults": Settings(source="series", **settings),
            "replaced: any lag is stale": Settings(source="series", gold={"stale_after": 0}, **settings)}


def _strict_excluded(raw: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The replaced rule: stale when behind the very last period of any series, by even one period."""
    _, excluded = build_gold_from_series(raw, settings)
    last = period_start(raw.dropna(subset=["y"])["ds"], settings.frequency)
    ends = last.groupby(raw.dropna(subset=["y"])["unique_id"]).max()
    behind = ends[ends < ends.max()].index.difference(excluded["unique_id"])
    extra = pd.DataFrame({"unique_id": behind, "reason_code": "stale"})
    return pd.concat([excluded[["unique_id", "reason_code"]], extra], ignore_index=True)


def _report(name: str, raw: pd.DataFrame, later: pd.DataFrame, settings: dict) -> None:
    sold_after = set(later.loc[later["y"] > 0, "unique_id"])
    for label, rule in _rules(settings).items():
        if label.startswith("replaced"):
            excluded = _strict_excluded(raw, rule)
        else:
            excluded = build_gold_from_series(raw, rule)[1]
        sold = excluded["unique_id"].isin(sold_after)
        reasons = {code: f"{n} ({sold[excluded['reason_code'] == code].sum()} sold after)"
                   for code, n in excluded["reason_code"].value_counts().items()}
        print(f"  {name:<48} {label:<26} excluded {len(excluded):>5} of {raw['unique_id'].nunique():>5}: "
              f"{reasons}")


def _replay_real_data() -> None:
    print(f"Excluded series, data cut {AFTER} periods before the end ({_load()})")
    for file, settings in DATASETS.items():
        raw = pd.read_csv(DATA / file, usecols=["unique_id", "ds", "y"], dtype={"unique_id": str},
                          parse_dates=["ds"])
        raw["y"] = raw["y"].astype("float64")
        periods = np.sort(raw["ds"].unique())
        cut = periods[-AFTER - 1]
        before, later = raw.loc[raw["ds"] <= cut], raw.loc[raw["ds"] > cut]
        _report(file, before, later, settings)
        # Case 1: every series but the first stops one period earlier.
        first = sorted(before["unique_id"].unique())[0]
        early = before.loc[(before["ds"] < cut) | (before["unique_id"] == first)]
        _report(f"{file}, one series a period early", early, later, settings)


def _synthetic(n_series: int = 10_000, n_weeks: int = 156) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    weeks = pd.date_range("2021-01-04", periods=n_weeks, freq="W-MON")
    y = rng.poisson(5, n_series * n_weeks).astype("float64")
    y[rng.random(len(y)) < 0.01] = np.nan
    return pd.DataFrame({"unique_id": np.repeat([f"S{i:05d}" for i in range(n_series)], n_weeks),
                         "ds": np.tile(weeks, n_series), "y": y})


def _timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    work()
    return time.perf_counter() - wall, _cpu() - cpu


def _speed() -> None:
    raw = _synthetic()
    settings = Settings(source="series")

    def floor() -> None:
        raw.groupby(["unique_id", period_start(raw["ds"], settings.frequency)])["y"].sum(min_count=1)

    results = {"floor (group-by sum)": _timed(floor), "build_gold_from_series": _timed(
        lambda: build_gold_from_series(raw, settings))}
    print(f"\nSpeed on {raw['unique_id'].nunique():,} weekly series, {len(raw):,} rows, 1% missing values")
    base_wall, base_cpu = results["floor (group-by sum)"]
    for label, (wall, cpu) in results.items():
        print(f"  {label:<24} wall {wall:6.2f} s  cpu {cpu:6.2f} s  ratio to floor (cpu) "
              f"{cpu / base_cpu:5.1f}x  ({_load()})")


if __name__ == "__main__":
    _replay_real_data()
    _speed()
