"""Rebuild the vendored subsets from the full datasets: `python make_subsets.py <folder of the full CSVs>`.

Every n-th series in sorted id order, so the subsets are the same on every run. Carparts keeps both kinds of
series: complete ones and ones that stop reporting (trailing missing values), each sampled on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def every_nth(frame: pd.DataFrame, ids: list[str], step: int) -> pd.DataFrame:
    return frame[frame["unique_id"].isin(sorted(ids)[::step])]


def main(source: Path) -> None:
    jewelry = pd.read_csv(source / "jewelry_weekly.csv", dtype={"unique_id": str})
    every_nth(jewelry, list(jewelry["unique_id"].unique()), 8).to_csv(HERE / "jewelry_weekly.csv", index=False)
    carparts = pd.read_csv(source / "carparts_monthly.csv", dtype={"unique_id": str})
    stopped = set(carparts.loc[carparts["y"].isna(), "unique_id"])
    complete = set(carparts["unique_id"]) - stopped
    subset = pd.concat([every_nth(carparts, list(complete), 40), every_nth(carparts, list(stopped), 11)])
    subset.sort_values(["unique_id", "ds"]).to_csv(HERE / "carparts_monthly.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
