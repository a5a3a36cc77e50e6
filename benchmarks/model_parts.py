"""Peak memory of the registered model's consumers: one merged forecaster against per-group parts.

Synthetic weekly series (backtest_speed's generator) get Naive or SeasonalNaive champions, fitted in model
groups of ``--bucket`` series and written as parts (registry.model_parts), as the registry's refit tasks do.
Each measurement then runs in a fresh process, side by side at every size:

- ``merged``: unpickle every part, ChampionForecaster.combine, pickle the result (the registry step before
  the parts) and score every series from it;
- ``parts``: assemble the index (the registry step now) and score group by group, one group kept
  (forecasting.forecasts now).

    nice -n 19 python benchmarks/model_parts.py --sizes 3000,9000
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from backtest_speed import synthetic_weekly


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_parts(n_series: int, bucket: int, folder: Path) -> list[str]:
    from mlops_assets.registry.champion_model import ChampionForecaster
    from mlops_assets.registry.model_parts import write_part

    history = synthetic_weekly(n_series)
    ids = sorted(history["unique_id"].unique())
    groups = []
    for k in range(0, len(ids), bucket):
        members = ids[k:k + bucket]
        champions = pd.DataFrame({"unique_id": members,
                                  "model": ["Naive" if i % 2 else "SeasonalNaive" for i in range(len(members))]})
        forecaster = ChampionForecaster("W-MON", 52, 13, n_jobs=1).fit(
            history[history["unique_id"].isin(members)], champions)
        groups.append(f"bucket-{k // bucket:05d}")
        write_part(forecaster, folder, groups[-1])
    return groups


def measure(way: str, folder: Path, groups: list[str], bucket: int) -> dict:
    from mlops_assets.registry.champion_model import ChampionForecaster
    from mlops_assets.registry.model_parts import assemble

    cpu, wall, base = time.process_time(), time.perf_counter(), _peak_mb()
    rows = 0
    if way == "merged":
        merged = ChampionForecaster.combine([pickle.loads((folder / f"{g}.pkl").read_bytes()) for g in groups])
        pickled = pickle.dumps(merged, protocol=pickle.HIGHEST_PROTOCOL)
        del merged
        merged = pickle.loads(pickled)
        ids = merged.series["unique_id"].tolist()
        for k in range(0, len(ids), bucket):
            rows += len(merged.predict(ids[k:k + bucket]))
    else:
        model = assemble(folder, groups)
        model.kept_groups = 1
        for members in model.group_series().values():
            rows += len(model.predict(members))
    return {"way": way, "rows": rows, "peak_mb": round(_peak_mb(), 1), "imports_mb": round(base, 1),
            "cpu_s": round(time.process_time() - cpu, 2), "wall_s": round(time.perf_counter() - wall, 2),
            "load": round(os.getloadavg()[0], 2)}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="3000,9000")
    parser.add_argument("--bucket", type=int, default=2000)
    parser.add_argument("--child", choices=["fit", "merged", "parts"])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--n", type=int)
    args = parser.parse_args()
    if args.child == "fit":
        print(json.dumps(fit_parts(args.n, args.bucket, args.folder)))
        return
    if args.child:
        groups = sorted(p.stem for p in args.folder.glob("*.pkl"))
        print(json.dumps(measure(args.child, args.folder, groups, args.bucket)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.sizes.split(",")):
            folder = Path(tmp) / str(n)
            _child(["--child", "fit", "--n", str(n), "--bucket", str(args.bucket), "--folder", str(folder)])
            for way in ("merged", "parts"):
                row = _child(["--child", way, "--folder", str(folder), "--bucket", str(args.bucket)])
                results[(n, way)] = row
                print(f"{n:>7,} series  {way:<6}  peak {row['peak_mb']:7.1f} MB (imports {row['imports_mb']:.0f})  "
                      f"cpu {row['cpu_s']:6.2f} s  wall {row['wall_s']:6.2f} s  load {row['load']}", flush=True)
    sizes = sorted({n for n, _ in results})
    if len(sizes) > 1:
        for way in ("merged", "parts"):
            ratio = results[(sizes[-1], way)]["peak_mb"] / results[(sizes[0], way)]["peak_mb"]
            print(f"{way}: peak at {sizes[-1]:,} / peak at {sizes[0]:,} = {ratio:.2f}x")


if __name__ == "__main__":
    main()
