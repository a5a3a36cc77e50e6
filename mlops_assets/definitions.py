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


def with_every_level() -> list:
    """ASSETS and CHECKS with every levels' definition (the layer, the tables people read, the levels' model)
    wired once, whatever the settings said at import: for runs that declare their own hierarchy (tests,
    benchmarks) in a process whose settings may have wired the levels or not."""
    from mlops_assets.defs.levels import level_definitions
    from mlops_assets.defs.levels_model import levels_model_definitions
    from mlops_assets.defs.levels_output import level_output_definitions

    extra = [level_definitions(), level_output_definitions(), levels_model_definitions()]
    keys = {k for d in extra for a in (d.assets or ()) for k in a.keys}
    return ([a for a in ASSETS if not set(a.keys) & keys]
            + [c for c in CHECKS if not {k.asset_key for k in c.check_keys} & keys]
            + [x for d in extra for x in (*(d.assets or ()), *(d.asset_checks or ()))])
