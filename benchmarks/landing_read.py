"""What does reading a landing file cost on top of pandas? read_landing_file vs a bare pandas.read_csv.

The same synthetic order-line file in four shapes: plain, every field quoted, one quoted value holding a
line break (the record-by-record reader that keeps true line numbers), and gzip-compressed. Each is read by
read_landing_file (parsing, line numbers, contracts, quarantine) and, as the baseline, by a bare
``pandas.read_csv(dtype=str)`` of the same file, side by side in one run.

    nice -n 19 python benchmarks/landing_read.py --rows 200000
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ingest.ingestion import read_landing_file

HEADER = "order_id,order_date,customer_id,product_id,quantity,unit_price\n"


def order_lines(rows: int, seed: int = 42) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=700, freq="D").strftime("%Y-%m-%d").to_numpy()
    return [[f"SO-{i:08d}", days[d], f"C{c}", f"P{p}", str(q), f"{u:.2f}"]
            for i, d, c, p, q, u in zip(range(rows), rng.integers(0, 700, rows), rng.integers(0, 50, rows),
                                        rng.integers(0, 300, rows), rng.integers(-2, 20, rows),
                                        rng.uniform(1, 30, rows), strict=True)]


def shapes(lines: list[list[str]], folder: Path) -> dict[str, Path]:
    plain = HEADER + "".join(",".join(r) + "\n" for r in lines)
    quoted = HEADER + "".join(",".join(f'"{v}"' for v in r) + "\n" for r in lines)
    broken = HEADER + "".join(",".join(r) + "\n" for r in lines[1:]) + '"SO-x\nsplit",2024-01-02,C1,P1,1,2\n'
    paths = {}
    for name, text in (("plain", plain), ("quoted", quoted), ("line_break", broken)):
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text(text)
    paths["gzip"] = folder / "plain.csv.gz"
    paths["gzip"].write_bytes(gzip.compress(plain.encode(), compresslevel=1))
    return paths


def timed(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sales_orders"
        folder.mkdir()
        paths = shapes(order_lines(args.rows), folder)
        print(f"{args.rows:,} order lines; wall and CPU seconds; load average beside each")
        print(f"{'shape':<11} {'baseline':>9} {'product':>9} {'ratio':>6} {'cpu base':>9} {'cpu prod':>9}  load")
        for name, path in paths.items():
            base_wall, base_cpu = timed(lambda p=path: pd.read_csv(p, dtype=str, keep_default_na=False))
            wall, cpu = timed(lambda p=path: read_landing_file(p, "sales_orders", landing_root=Path(tmp),
                                                                today=date(2026, 1, 1)))
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"{name:<11} {base_wall:9.2f} {wall:9.2f} {wall / base_wall:6.2f} {base_cpu:9.2f} {cpu:9.2f}  {load}")


if __name__ == "__main__":
    main()
