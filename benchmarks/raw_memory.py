"""Peak memory of the raw step against the size of the landing file: does it follow the chunk or the file?

Each measurement is a fresh process that runs the product's raw path (``ingest_folder``: read and validate
``ingest.chunk_rows`` rows at a time, stage in DuckDB, merge into the warehouse, publish the snapshot) on one
synthetic order-line file, for two file sizes and two DuckDB memory limits (``compute.duckdb_memory_mb``).
The baseline is the same process importing the same modules and ingesting a 1,000-row file. Peak RSS is
the child's own high-water mark (VmHWM, which starts afresh at exec; ``ru_maxrss`` would carry over the
parent's, which holds the generated file).

    nice -n 19 python benchmarks/raw_memory.py --sizes 200000 1000000 --memory-mb 512 128
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PRODUCTS, CUSTOMERS = 300, 50


def write_landing(root: Path, rows: int, seed: int = 42) -> None:
    """Products, customers and ``rows`` order lines that all use known ids (nothing quarantined)."""
    rng = np.random.default_rng(seed)
    for table, frame in (
        ("products", pd.DataFrame({"product_id": [f"P{i}" for i in range(PRODUCTS)],
                                   "product_name": [f"product {i}" for i in range(PRODUCTS)]})),
        ("customers", pd.DataFrame({"customer_id": [f"C{i}" for i in range(CUSTOMERS)],
                                    "customer_name": [f"customer {i}" for i in range(CUSTOMERS)]})),
    ):
        (root / table).mkdir(parents=True)
        frame.to_csv(root / table / f"{table}.csv", index=False)
    days = pd.date_range("2024-01-01", periods=700, freq="D").strftime("%Y-%m-%d").to_numpy()
    orders = pd.DataFrame({
        "order_id": [f"SO-{i:09d}" for i in range(rows)],
        "order_date": days[rng.integers(0, 700, rows)],
        "customer_id": np.char.add("C", rng.integers(0, CUSTOMERS, rows).astype(str)),
        "product_id": np.char.add("P", rng.integers(0, PRODUCTS, rows).astype(str)),
        "quantity": rng.integers(1, 20, rows),
        "unit_price": rng.uniform(1, 30, rows).round(2),
    })
    (root / "sales_orders").mkdir(parents=True)
    orders.to_csv(root / "sales_orders" / "orders.csv", index=False)


def child(data_dir: Path, memory_mb: int) -> None:
    from mlops_assets import warehouse
    from mlops_assets.ingest.raw_batch import ingest_folder
    from mlops_assets.settings import DataPaths, Settings

    paths = DataPaths(data_dir)
    settings = Settings(compute={"duckdb_memory_mb": memory_mb})

    def connect():
        return warehouse.connect(paths.warehouse, wait_seconds=10, memory_mb=memory_mb)

    for table in ("products", "customers", "sales_orders"):
        ingest_folder(connect, paths.exports, table, paths, settings, settle_seconds=0)
    with warehouse.connect(paths.warehouse, wait_seconds=10) as con:
        assert con.execute("select count(*) from raw.rejected_rows").fetchone()[0] == 0
    peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    print(int(peak.split()[1]) / 1024)


def measure(rows: int, memory_mb: int, work: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a fresh process ingesting ``rows`` order lines."""
    data_dir = work / f"rows{rows}-mem{memory_mb}"
    write_landing(data_dir / "landing", rows)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(data_dir), str(memory_mb)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the child for {rows:,} rows, {memory_mb} MB failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.split()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--memory-mb", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return
    print("peak RSS of one raw run (products, customers, order lines) in a fresh process; chunk_rows 200,000")
    print(f"{'order lines':>12} {'duckdb MB':>9} {'peak MB':>8} {'wall s':>7}  load")
    with tempfile.TemporaryDirectory() as tmp:
        for memory_mb in args.memory_mb:
            for rows in [1_000, *args.sizes]:
                peak, wall = measure(rows, memory_mb, Path(tmp))
                load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
                print(f"{rows:>12,} {memory_mb:>9} {peak:>8.0f} {wall:>7.1f}  {load}", flush=True)


if __name__ == "__main__":
    main()
