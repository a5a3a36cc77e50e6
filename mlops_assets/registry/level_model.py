"""The levels' reconciled forecasts as a registered model of their own, beside the series' model.

With a hierarchy declared (docs/levels.md), ``forecasting.forecasts_by_level`` holds the coherent forecast of
every node. Its default rows (``is_default``) of the nodes above the series (total, category/Cream,
category/Cream/brand/Bridel) are logged as a small pyfunc model, ``LevelsForecastModel``, and registered as
``<registered_model_name>_levels``. A request for a node's id gets its rows, up to h periods: the same request
and answer as the series' model (registry.pyfunc_model), plus the column ``level``. The series keep being
answered by the series' model (serving.routing routes a mixed request).

Alias discipline as the series' model: a new version gets ``challenger``; ``champion`` moves to it only when
the forecasts add up (the ``coherent`` check's test, run again on the rows registered). A version is tagged
with the series' model version whose forecasts it reconciles (the version that scored forecasting.forecasts),
and its answer rows carry that version in ``model_version``: a level's number is traceable to the series'
model that served its series.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as _installed_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from mlops_assets.registry.model_registry import CHALLENGER, CHAMPION, REGISTRATION_KEY_TAG, find_registered
from mlops_assets.registry.pyfunc_model import (
    MODEL_VERSION_KEY,
    RequestScope,
    bound_columns,
    build_signature,
    json_bounds,
    validate_request,
)

LEVELS_SUFFIX = "_levels"
ROWS_ARTIFACT = "level_forecasts"
ROWS_FILE = "level_forecasts.parquet"
CONFIG_FILE = "config.json"
LEVEL = "level"
SERIES_VERSION_TAG = "series_model_version"
_REQUIREMENTS = ("mlflow", "pandas", "numpy", "pyarrow", "cloudpickle")


def levels_model_name(model_name: str) -> str:
    """The levels' registered model beside ``model_name`` (sales_forecast -> sales_forecast_levels)."""
    return f"{model_name}{LEVELS_SUFFIX}"


def answer_columns(levels: tuple[float, ...]) -> list[str]:
    return ["unique_id", LEVEL, "ds", "model", MODEL_VERSION_KEY, "horizon_step", "y_hat", *bound_columns(levels)]


def default_rows(forecasts_by_level: pd.DataFrame, bottom_level: str) -> pd.DataFrame:
    """The default method's rows of every node above the series, with each node's step (1 = its first period),
    sorted by node and date: what the levels' model answers."""
    rows = forecasts_by_level[forecasts_by_level["is_default"].astype(bool)
                              & (forecasts_by_level[LEVEL] != bottom_level)].copy()
    if rows.empty:
        raise ValueError(f"forecasts_by_level has no default rows above the series' level {bottom_level!r}")
    rows = rows.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    rows["ds"] = pd.to_datetime(rows["ds"])
    rows["horizon_step"] = rows.groupby("unique_id", sort=False).cumcount().astype("int64") + 1
    return rows


@dataclass(frozen=True)
class LevelForecasts:
    """The nodes' default rows and what they reconcile: answers any node id for h up to ``horizon``."""

    rows: pd.DataFrame
    levels: tuple[float, ...]
    bottom_level: str
    series_version: str

    @property
    def horizon(self) -> int:
        """The periods every node is answered for (the shortest node's)."""
        return int(self.rows.groupby("unique_id", sort=False)["horizon_step"].max().min())

    @property
    def series(self) -> pd.DataFrame:
        """The node ids, as a forecaster's ``series`` table (what request checks read)."""
        return pd.DataFrame({"unique_id": self.rows["unique_id"].drop_duplicates().to_numpy()})

    def scope(self) -> RequestScope:
        return RequestScope(self.series, self.horizon, self.levels, noun="level ids")

    def forecast(self, request: pd.DataFrame, keep_row: bool = False) -> pd.DataFrame:
        """Each request row's node, its first h periods, with the interval levels it asked for (all when none);
        rows in request order then by date; ``keep_row`` as SalesForecastModel.forecast."""
        rows = self.rows.set_index("unique_id")
        sizes = rows.groupby(level=0, sort=False).size().reindex(request["unique_id"]).to_numpy()
        picked = rows.loc[request["unique_id"].to_numpy()].reset_index()
        picked["row"] = np.repeat(request.index.to_numpy(), sizes)
        picked = picked[picked["horizon_step"].to_numpy() <= np.repeat(request["h"].to_numpy(), sizes)]
        picked = picked.reset_index(drop=True)
        # The interval level each row asked for (NaN: all of them).
        asked = request["level"].reindex(picked["row"]).to_numpy(dtype=float)
        for lv in self.levels:
            other = ~np.isnan(asked) & (asked != float(lv))
            for column in bound_columns((lv,)):
                picked[column] = picked[column].astype(float).where(~other)
        out = picked.assign(model=picked["method"], **{MODEL_VERSION_KEY: self.series_version})
        out["ds"] = out["ds"].dt.strftime("%Y-%m-%d")
        row = out["row"].to_numpy()
        out = json_bounds(out[answer_columns(self.levels)].copy(), self.levels)
        return out.assign(row=row) if keep_row else out


class LevelsForecastModel(mlflow.pyfunc.PythonModel):
    """The levels' pyfunc: its rows are the artifact ``level_forecasts`` (a Parquet file and its config)."""

    def __init__(self, forecasts: LevelForecasts | None = None):
        self.forecasts = forecasts

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.forecasts = read_forecasts(Path(context.artifacts[ROWS_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.forecasts.forecast(validate_request(model_input, self.forecasts.scope()))


def write_forecasts(forecasts: LevelForecasts, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    forecasts.rows.to_parquet(folder / ROWS_FILE, index=False)
    config = {"levels": list(forecasts.levels), "bottom_level": forecasts.bottom_level,
              SERIES_VERSION_TAG: forecasts.series_version}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder


def read_forecasts(folder: Path) -> LevelForecasts:
    config = json.loads((folder / CONFIG_FILE).read_text())
    return LevelForecasts(pd.read_parquet(folder / ROWS_FILE), tuple(config["levels"]), config["bottom_level"],
                          str(config[SERIES_VERSION_TAG]))


def log_levels_model(forecasts: LevelForecasts, name: str = "levels_model"):
    """Log the rows as a pyfunc model in the active run; the package's code travels with it (``code_paths``)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_forecasts(forecasts, Path(tmp) / ROWS_ARTIFACT)
        example = pd.DataFrame({"unique_id": forecasts.series["unique_id"].head(2).tolist(),
                                "h": [forecasts.horizon, 1][: min(2, len(forecasts.series))]})
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=LevelsForecastModel(),
            artifacts={ROWS_ARTIFACT: str(folder)},
            signature=build_signature(forecasts.levels),
            input_example=example,
            code_paths=[str(Path(__file__).resolve().parent)],
            pip_requirements=[f"{p}=={_installed_version(p)}" for p in _REQUIREMENTS],
        )


@dataclass(frozen=True)
class LevelsRegistration:
    name: str
    version: str
    promoted: bool
    reason: str
    reused: bool
    run_id: str


def rows_key(forecasts: LevelForecasts) -> str:
    """What a levels version is made of: its rows and the series' version they reconcile."""
    payload = forecasts.rows.to_csv(index=False) + forecasts.series_version + ",".join(map(str, forecasts.levels))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def register_levels(forecasts: LevelForecasts, *, name: str, coherent: bool, why: str, tags: dict[str, str],
                    run_tags: dict[str, str] | None = None) -> LevelsRegistration:
    """Register the rows as a new version of ``name`` (alias challenger; the same rows reuse their version) and
    move ``champion`` to it only when ``coherent``; ``why`` says what the coherence test found."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        client.create_registered_model(name, description="The levels' reconciled forecasts (docs/serving.md).")
    key = rows_key(forecasts)
    existing = find_registered(name, key)
    if existing is not None:
        version, reused, run_id = str(existing.version), True, existing.run_id
    else:
        with mlflow.start_run(run_name=f"{name} (series version {forecasts.series_version})",
                              tags={**(run_tags or {}), "kind": "levels_model"},
                              description=f"The reconciled default forecasts of {len(forecasts.series)} nodes "
                              f"above the series (forecasting.forecasts_by_level), reconciling version "
                              f"{forecasts.series_version} of the series' model.",
                              nested=mlflow.active_run() is not None):
            info = log_levels_model(forecasts)
            registered = client.create_model_version(
                name, info.model_uri, run_id=info.run_id, model_id=info.model_id,
                tags={**tags, REGISTRATION_KEY_TAG: key, SERIES_VERSION_TAG: forecasts.series_version,
                      "nodes": str(len(forecasts.series)), "bottom_level": forecasts.bottom_level},
            )
        version, reused, run_id = str(registered.version), False, info.run_id
    client.set_registered_model_alias(name, CHALLENGER, version)
    reason = (f"coherent ({why}): champion" if coherent
              else f"not coherent ({why}): champion unchanged")
    client.set_model_version_tag(name, version, "promotion_status", "promoted" if coherent else "rejected")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    if coherent:
        client.set_registered_model_alias(name, CHAMPION, version)
    return LevelsRegistration(name, version, coherent, reason, reused, run_id)
