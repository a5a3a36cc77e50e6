"""The registered forecasting model: every series' champion behind MLflow's pyfunc interface.

A request is a table of rows ``unique_id`` (string), ``h`` (integer, 1 to the trained horizon) and an
optional ``level`` (one of the fitted interval levels; absent = all of them). The answer has one row per
series and future period: unique_id, ds (ISO date), model (the model that produced the numbers),
model_version, horizon_step (the period's number after the series' last actual), y_hat and the interval
bounds ``lo_<level>``/``hi_<level>`` (null for levels the row did not ask for). A series whose last actual
is behind the others' gets as many more periods, so that every series ends on the same date.

The fitted models are the artifact ``model_parts``: a folder of per-group parts and their index
(registry.model_parts), read lazily, a group on the first request of one of its series.

The model knows the registry version it is served as: it is written into the model's ``model_config``
when the model is logged, and the registry checks after registering that the number matches.

Every request error raises ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, which the scoring server
of ``mlflow models serve`` turns into HTTP 400 with the message (``invocations`` re-raises an
``MlflowException`` from predict and the app answers ``e.get_http_status_code()``); any other exception
would also become a 400 there, but with a generic message and a stack trace, so we validate first.
"""

from __future__ import annotations

import numbers
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as _installed_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema

from mlops_assets.registry.champion_model import ChampionForecaster, ForecastRequestError
from mlops_assets.registry.model_parts import PartedForecaster, single_part

MODEL_VERSION_KEY = "model_version"
REQUIRED_COLUMNS = ("unique_id", "h")
# Pinned from the environment that logged the model so a served copy rebuilds the same one; listing
# them avoids MLflow's slow requirement inference (a subprocess that loads the model).
_REQUIREMENTS = ("mlflow", "statsforecast", "pandas", "numpy", "pyarrow", "cloudpickle", "pyyaml", "pydantic")
PARTS_ARTIFACT = "model_parts"
Forecaster = ChampionForecaster | PartedForecaster


def invalid_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _level_name(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level)


def bound_columns(levels: tuple[float, ...]) -> list[str]:
    return [f"{side}_{_level_name(lv)}" for lv in levels for side in ("lo", "hi")]


def output_columns(levels: tuple[float, ...]) -> list[str]:
    return ["unique_id", "ds", "model", MODEL_VERSION_KEY, "horizon_step", "y_hat", *bound_columns(levels)]


def _rows(mask: pd.Series) -> str:
    rows = mask.index[mask.to_numpy(dtype=bool)].tolist()
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}"


def _integers(values: pd.Series, column: str, usage: str) -> pd.Series:
    """The column as int64, or an error naming the rows whose value is not a whole number."""

    def whole(v: Any) -> bool:
        if isinstance(v, bool) or v is None:
            return False
        if isinstance(v, numbers.Integral):
            return True
        return isinstance(v, numbers.Real) and float(v).is_integer()

    bad = ~values.map(whole)
    if bad.any():
        shown = ", ".join(repr(v) for v in values[bad].head(5).tolist())
        raise invalid_request(f"{column} must be a whole number ({usage}), got {shown} in {_rows(bad)}")
    return values.astype("int64")


@dataclass(frozen=True)
class RequestScope:
    """What a request may ask for: the ids answered (``series``' unique_id), the horizon and interval levels.
    ``noun`` names the ids in messages."""

    series: pd.DataFrame
    horizon: int
    levels: tuple[float, ...]
    noun: str = "series"


def validate_request(model_input: Any, forecaster: Forecaster | RequestScope) -> pd.DataFrame:
    """The request as a clean table (unique_id str, h int64, level float or NaN), or MlflowException."""
    usage = (
        f"each row needs unique_id (string) and h (integer from 1 to {forecaster.horizon}), "
        f"optionally level (one of {list(forecaster.levels)})"
    )
    if not isinstance(model_input, pd.DataFrame):
        try:
            model_input = pd.DataFrame(model_input)
        except (ValueError, TypeError) as error:
            raise invalid_request(f"the request is not a table ({error}); {usage}") from error
    if model_input.empty:
        raise invalid_request(f"the request has no rows; {usage}")
    # Rows are named by position (from 0) in messages, whatever index the caller's table had.
    model_input = model_input.reset_index(drop=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in model_input.columns]
    if missing:
        raise invalid_request(f"the request lacks column(s) {missing}; {usage}")

    ids = model_input["unique_id"]
    no_id = ids.isna()
    if no_id.any():
        raise invalid_request(f"unique_id is missing in {_rows(no_id)}; {usage}")
    ids = ids.astype(str)
    known = pd.Index(forecaster.series["unique_id"])
    unknown = ~ids.isin(known)
    if unknown.any():
        names = ", ".join(repr(u) for u in ids[unknown].unique()[:10])
        raise invalid_request(
            f"unknown unique_id {names} in {_rows(unknown)}; the model knows {len(known)} "
            f"{getattr(forecaster, 'noun', 'series')}, "
            f"e.g. {', '.join(repr(u) for u in known[:3])}"
        )

    h = _integers(model_input["h"], "h", f"from 1 to {forecaster.horizon}")
    if (h < 1).any():
        raise invalid_request(f"h must be at least 1, got h={h[h < 1].iloc[0]} in {_rows(h < 1)}")
    beyond = h > forecaster.horizon
    if beyond.any():
        raise invalid_request(
            f"h={h[beyond].iloc[0]} in {_rows(beyond)} is beyond the trained horizon of "
            f"{forecaster.horizon} periods; ask for h from 1 to {forecaster.horizon}"
        )

    level = pd.Series(np.nan, index=model_input.index)
    if "level" in model_input.columns:
        given = model_input["level"].notna()
        level[given] = _integers(model_input.loc[given, "level"], "level", f"one of {list(forecaster.levels)}")
        unfitted = given & ~level.isin([float(lv) for lv in forecaster.levels])
        if unfitted.any():
            raise invalid_request(
                f"level {int(level[unfitted].iloc[0])} in {_rows(unfitted)} was not fitted; "
                f"the model has levels {list(forecaster.levels)} (or leave level out for all)"
            )
    return pd.DataFrame({"unique_id": ids.to_numpy(), "h": h.to_numpy(), "level": level.to_numpy()})


class SalesForecastModel(mlflow.pyfunc.PythonModel):
    """A fitted forecaster, served with request validation and its registry version; logged, its parts are
    the artifact ``model_parts`` and it is pickled without them."""

    def __init__(self, forecaster: Forecaster | None, model_version: str | None = None):
        self.forecaster = forecaster
        self.model_version = model_version

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        version = (context.model_config or {}).get(MODEL_VERSION_KEY)
        if version is not None:
            self.model_version = str(version)
        parts = (context.artifacts or {}).get(PARTS_ARTIFACT)
        if parts is not None:
            self.forecaster = PartedForecaster(parts)

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext | None, model_input: pd.DataFrame, params=None
    ) -> pd.DataFrame:
        if self.model_version is None:
            raise MlflowException(
                f"this model was logged without model_config['{MODEL_VERSION_KEY}']; log it with log_forecast_model",
                error_code=INTERNAL_ERROR,
            )
        request = validate_request(model_input, self.forecaster)
        return self.forecast(request)

    def forecast(self, request: pd.DataFrame, keep_row: bool = False) -> pd.DataFrame:
        """Forecasts for a validated request, rows in request order then by date; ``keep_row`` keeps the column
        ``row``: the request row (its index label) each answer row belongs to."""
        levels = tuple(self.forecaster.levels)
        parts = []
        # One forecaster call per distinct (h, level): a 100-series request is one call.
        for (h, level), group in request.groupby(["h", "level"], dropna=False, sort=True):
            h = int(h)
            asked = None if pd.isna(level) else [int(level)]
            try:
                result = self.forecaster.predict(group["unique_id"].unique().tolist(), h=h, levels=asked)
            except ForecastRequestError as error:
                raise invalid_request(str(error)) from error
            # The result holds consecutive rows per series (h, or more for a series behind the others): pick
            # each request row's block, in request order.
            sizes = result.groupby("unique_id", sort=False).size()
            firsts = pd.Series(np.cumsum(sizes.to_numpy()) - sizes.to_numpy(), index=sizes.index)
            counts = sizes.reindex(group["unique_id"]).to_numpy()
            starts = firsts.reindex(group["unique_id"]).to_numpy()
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            part = result.iloc[np.repeat(starts, counts) + offsets]
            parts.append(part.assign(row=np.repeat(group.index.to_numpy(), counts)))
        out = parts[0] if len(parts) == 1 else pd.concat(parts).sort_values("row", kind="stable")
        row = out["row"].to_numpy()
        out = out.reindex(columns=[c for c in output_columns(levels) if c != MODEL_VERSION_KEY])
        out["ds"] = pd.to_datetime(out["ds"]).dt.strftime("%Y-%m-%d")
        out["horizon_step"] = out["horizon_step"].astype("int64")
        out.insert(3, MODEL_VERSION_KEY, self.model_version)
        out = json_bounds(out, levels).reset_index(drop=True)
        return out.assign(row=row) if keep_row else out


def json_bounds(out: pd.DataFrame, levels: tuple[float, ...]) -> pd.DataFrame:
    """The answer with NaN bounds as null: JSON has no NaN, and bounds of levels a row did not ask for are null."""
    for column in bound_columns(levels):
        values = out[column].astype(float)
        out[column] = values if values.notna().all() else values.astype(object).where(values.notna(), None)
    return out


def request_constraints(forecaster: Forecaster) -> dict[str, dict[str, Any]]:
    """JSON-schema bounds of the request columns that a signature cannot express (for the OpenAPI doc)."""
    return {
        "h": {"minimum": 1, "maximum": forecaster.horizon},
        "level": {"enum": [int(lv) for lv in forecaster.levels if float(lv).is_integer()]},
    }


def build_signature(levels: tuple[float, ...] = (80, 95)) -> ModelSignature:
    inputs = Schema([ColSpec("string", "unique_id"), ColSpec("long", "h"), ColSpec("long", "level", required=False)])
    outputs = Schema(
        [ColSpec("string", c) for c in ("unique_id", "ds", "model", MODEL_VERSION_KEY)]
        + [ColSpec("long", "horizon_step"), ColSpec("double", "y_hat")]
        + [ColSpec("double", c, required=False) for c in bound_columns(levels)]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(forecaster: Forecaster) -> pd.DataFrame:
    # MLflow predicts the example when logging: series of one group cost one part's loading.
    if isinstance(forecaster, PartedForecaster):
        ids = forecaster.group_series()[forecaster.groups[0]][:2]
    else:
        ids = forecaster.series["unique_id"].head(2).tolist()
    return pd.DataFrame({"unique_id": ids, "h": [forecaster.horizon, 1][: len(ids)]})


def log_forecast_model(forecaster: Forecaster, *, name: str = "model", model_version: str) -> ModelInfo:
    """Log the forecaster as a pyfunc model (in the active run, if any) that answers as `model_version`.

    Its parts' folder is copied in as the artifact ``model_parts`` (a forecaster fitted in one piece becomes
    a one-part folder first); only the part of the input example's series is unpickled, when MLflow checks
    that the logged model answers the example. The package's code travels with the model
    (``code_paths``) so ``mlflow models serve`` can load it in an environment where mlops_assets is not
    installed.
    """
    if forecaster.series.empty:
        raise ValueError("the forecaster has no fitted series; call fit() before logging it")
    with tempfile.TemporaryDirectory() as tmp:
        parted = forecaster
        if not isinstance(parted, PartedForecaster):
            parted = single_part(parted, Path(tmp) / "parts")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=SalesForecastModel(None),
            artifacts={PARTS_ARTIFACT: str(parted.folder)},
            signature=build_signature(tuple(parted.levels)),
            input_example=input_example(parted),
            model_config={MODEL_VERSION_KEY: str(model_version)},
            code_paths=[str(Path(__file__).resolve().parent)],
            pip_requirements=[f"{p}=={_installed_version(p)}" for p in _REQUIREMENTS],
        )
