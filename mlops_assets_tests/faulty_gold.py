"""The product's Definitions as a code location whose gold table a test can make bad on purpose.

Only `dagster dev` loads this module (through ``faulty_gold_workspace``): importing it patches the gold asset's
work for the whole process, so no test imports it.

The daemon test proves that a bad gold table stops the chain at gold's blocking check. Real data that passes
the raw contracts and still breaks gold's is a bug, and bugs get fixed, so the test breaks the table itself:
while the file ``BAD_GOLD_MARKER`` exists in the data directory, each bucket of gold writes its last row twice
(a duplicate series and period). Everything else (sensors, automation, checks, warehouse) is the product's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

import mlops_assets.gold.buckets as gold_buckets
from mlops_assets.definitions import defs
from mlops_assets.settings import DATA_DIR_ENV
from mlops_assets_tests.dagster_dev import BAD_GOLD_MARKER

_build_gold = gold_buckets.build_gold


def _build_gold_bad_on_demand(tables, settings, facts=None):
    gold, excluded = _build_gold(tables, settings, facts)
    if (Path(os.environ[DATA_DIR_ENV]) / BAD_GOLD_MARKER).exists():
        gold = pd.concat([gold, gold.tail(1)], ignore_index=True)
    return gold, excluded


gold_buckets.build_gold = _build_gold_bad_on_demand

__all__ = ["defs"]
