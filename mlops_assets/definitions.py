"""The code location: every module of mlops_assets/defs, found by Dagster's defs-folder convention.

A module there exposes assets, checks, jobs, sensors and schedules at module level, or a ``@dg.definitions``
function (resources, loggers, executor: ``defs/runtime.py``). `dg check defs` loads it as `make dev` does.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets.logs import quiet_third_party

quiet_third_party()

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
ASSETS = list(defs.assets or [])
CHECKS = list(defs.asset_checks or [])
