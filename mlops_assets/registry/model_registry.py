"""Model registry steps: register a new version, decide whether it beats the champion, move the alias.

Aliases carry the state (MLflow 3 has no stages): ``challenger`` is the latest registered candidate,
``champion`` the version that serves forecasts. The champion moves only when the new version is at
least as good on the same data: both versions' per-series model choices are scored with the NEW
backtest evaluation, over the series both know, on the same metric (settings.selection.metric, recorded in
the version's tags): like with like, whatever metric the older version was chosen on. Every function uses
the current MLflow tracking and registry URIs set by the caller.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.pyfunc_model import log_forecast_model
from mlops_assets.settings import MODEL_NAME

CHAMPION = "champion"
CHALLENGER = "challenger"
CHAMPIONS_ARTIFACT_TAG = "champions_artifact"
REGISTRATION_KEY_TAG = "registration_key"
# Tags that name who registered, not what: left out of the registration key.
RUN_SPECIFIC_TAGS = ("dagster_run_id",)
_REGISTRATION_ATTEMPTS = 3


@dataclass
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str
    reused: bool = False


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    new_version: str
    new_score: float
    current_version: str | None
    current_score: float | None
    n_series_compared: int
    metric: str = "smape"


def _missing(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


@contextmanager
def _in_run(run_id: str | None) -> Iterator[str]:
    """The run to log into: the active one, else the one named by run_id (resumed), else a new one."""
    active = mlflow.active_run()
    if active is not None and run_id in (None, active.info.run_id):
        yield active.info.run_id
        return
    with mlflow.start_run(run_id=run_id, nested=active is not None) as run:
        yield run.info.run_id


def _checked_name(name: str) -> str:
    # The name is quoted into search filters below: a quote in it would break them.
    if not MODEL_NAME.fullmatch(name):
        raise ValueError(f"registered model name {name!r} may hold only letters, digits, '_', '-' and '.'")
    return name


def _versions(client: MlflowClient, name: str) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{_checked_name(name)}'"))


def registration_key(champions: pd.DataFrame, tags: dict[str, str]) -> str:
    """What a version is made of: the champions table and the tags that describe its inputs."""
    described = {k: str(v) for k, v in sorted(tags.items()) if k not in RUN_SPECIFIC_TAGS}
    payload = champions.to_csv(index=False) + json.dumps(described, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def find_registered(name: str, key: str) -> ModelVersion | None:
    """The newest version of ``name`` registered from the same inputs (same registration key), if any."""
    found = MlflowClient().search_model_versions(
        f"name='{_checked_name(name)}' and tags.{REGISTRATION_KEY_TAG}='{key}'"
    )
    return max(found, key=lambda v: int(v.version)) if found else None


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if _missing(error) or "alias" in error.message.lower():
            return None
        raise


def register_champions(
    forecaster: ChampionForecaster,
    champions: pd.DataFrame,
    *,
    name: str,
    run_id: str | None,
    description: str,
    tags: dict[str, str],
) -> RegisteredVersion:
    """Log the forecaster, register it as a new version of `name` with alias challenger.

    Idempotent: when a version was already registered from the same champions and input tags (a run that
    stopped after registering and is run again), that version is returned, marked ``reused``.

    The model must know its own version (it answers with it), so the number is predicted before
    logging and checked after registering. MLflow numbers versions max + 1 counting deleted ones, which
    a search does not show, and a concurrent registration can take the number: then the mislabelled
    version is deleted and the next number tried.
    """
    missing = [c for c in ("unique_id", "model") if c not in champions.columns]
    if missing:
        raise ValueError(f"champions lacks column(s) {missing}; it has {list(champions.columns)}")
    _checked_name(name)
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if not _missing(error):
            raise
        client.create_registered_model(name, description="Per-series champion forecasts (sales_forecast).")

    table = champions.sort_values("unique_id", kind="stable").reset_index(drop=True)
    key = registration_key(table, tags)
    existing = find_registered(name, key)
    if existing is not None:
        client.set_registered_model_alias(name, CHALLENGER, existing.version)
        return RegisteredVersion(name, str(existing.version), existing.run_id, f"models:/{name}/{existing.version}",
                                 reused=True)
    version_tags = {
        **{k: str(v) for k, v in tags.items()},
        REGISTRATION_KEY_TAG: key,
        "n_series": str(len(table)),
        "models_used": ",".join(f"{m}:{n}" for m, n in table["model"].value_counts().sort_index().items()),
    }
    if "smape" in table.columns and "backtest_smape" not in version_tags:
        version_tags["backtest_smape"] = f"{table['smape'].mean():.4f}"
    if run_id is not None and mlflow.active_run() is None and client.search_model_versions(f"run_id='{run_id}'"):
        # The evaluation run holds an earlier version's model (a settings change that left the backtest as
        # it was, so the evaluation and its run were kept): this version gets a run of its own, linked to it.
        version_tags["evaluation_run_id"] = run_id
        run_id = None

    with _in_run(run_id) as active_run_id:
        expected = (_versions(client, name) or [0])[-1] + 1
        for _ in range(_REGISTRATION_ATTEMPTS):
            artifact = f"champions/{name}-v{expected}.csv"
            client.log_text(active_run_id, table.to_csv(index=False), artifact)
            info = log_forecast_model(forecaster, model_version=str(expected))
            # The client, not mlflow.register_model: that one prints "Registered model ... already exists"
            # to stderr on every call, even the first (the model was created just above, with a description).
            registered: ModelVersion = client.create_model_version(
                name, info.model_uri, run_id=active_run_id, model_id=info.model_id,
                tags={**version_tags, CHAMPIONS_ARTIFACT_TAG: artifact},
            )
            if int(registered.version) == expected:
                break
            client.delete_model_version(name, registered.version)
            expected = int(registered.version) + 1
        else:
            raise MlflowException(
                f"could not register {name}: version numbers kept being taken by concurrent "
                f"registrations ({_REGISTRATION_ATTEMPTS} attempts); retry when they are done"
            )
    version = str(registered.version)
    client.update_model_version(name, version, description=description)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return RegisteredVersion(name, version, active_run_id, f"models:/{name}/{version}")


def champion_choices(name: str, version: str) -> pd.DataFrame:
    """unique_id, model: the per-series models a version uses, from its champions artifact or the model."""
    client = MlflowClient()
    mv = client.get_model_version(name, version)
    path = mv.tags.get(CHAMPIONS_ARTIFACT_TAG)
    if path and mv.run_id:
        text = mlflow.artifacts.load_text(f"runs:/{mv.run_id}/{path}")
        table = pd.read_csv(io.StringIO(text), dtype={"unique_id": str, "model": str})
    else:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        table = model.unwrap_python_model().forecaster.series
    return table[["unique_id", "model"]].astype(str)


def decide_promotion(
    *,
    name: str,
    new_version: str,
    new_champions: pd.DataFrame,
    evaluation: pd.DataFrame,
    tolerance: float,
    selection: dict | None = None,
    metric: str = "smape",
) -> PromotionDecision:
    """Compare the new choices with the champion's on the new evaluation, both on ``metric`` (a column of
    it: smape 0-200 M4, mase, rmse or wape); ``tolerance`` is in the metric's units.

    ``selection`` is the selection guard's record (selection.choose_champions). Per-series choices made on
    this evaluation always score at least as well on it as one model for all, so when the guard chose one
    model for all because it did better out of sample, that out-of-sample comparison decides instead (only
    when the guard ranked on the same metric).
    """
    if metric not in evaluation.columns:
        raise ValueError(f"the evaluation has no {metric!r} column to compare versions on")
    scores = evaluation[["unique_id", "model", metric]].rename(columns={metric: "score"})
    scores = scores.astype({"unique_id": str, "model": str})
    new = new_champions[["unique_id", "model"]].astype(str).merge(scores, on=["unique_id", "model"], how="left")
    new_overall = float(new["score"].mean()) if new["score"].notna().any() else float("nan")
    current = alias_version(name, CHAMPION)
    label = metric.upper()

    def decision(promoted: bool, reason: str, new_score: float, current_score: float | None, n: int):
        return PromotionDecision(promoted, reason, str(new_version), new_score, current, current_score, n, metric)

    if current is None:
        return decision(True, f"first version: {name} has no champion yet", new_overall, None, 0)
    if str(current) == str(new_version):
        return decision(True, f"version {new_version} already is the champion", new_overall, None, 0)

    old = champion_choices(name, current).merge(scores, on=["unique_id", "model"], how="left")
    both = new.merge(old, on="unique_id", suffixes=("_new", "_current")).dropna(subset=["score_new", "score_current"])
    if both.empty:
        absent = sorted(set(old["model"]) - set(scores["model"]))
        why = (
            f"the champion's models {absent} are not in the new evaluation"
            if absent
            else "the two versions share no evaluated series"
        )
        return decision(
            True,
            f"promoted without comparison: {why}, so version {current} cannot be scored on the new data",
            new_overall,
            None,
            0,
        )
    new_score, current_score = float(both["score_new"].mean()), float(both["score_current"].mean())
    promoted = new_score <= current_score + tolerance
    reason = (
        f"version {new_version} {label} {new_score:.4g} {'<=' if promoted else '>'} champion version "
        f"{current} {label} {current_score:.4g} + tolerance {tolerance:g}, on the same {len(both)} series "
        f"of the new backtest: {'promoted' if promoted else 'rejected, champion unchanged'}"
    )
    guard = selection or {}
    out_of_sample = (guard.get("global_last_window_score"), guard.get("per_series_last_window_score"))
    # The guard may judge on another metric than the gate (daily: the pooled MAE), where the tolerance, in
    # the gate metric's units, means nothing.
    guard_metric = guard.get("guard_metric") or guard.get("metric", "smape")
    slack = tolerance if guard_metric == metric else 0.0
    if not promoted and guard.get("mode") == "global" and None not in out_of_sample:
        promoted = out_of_sample[0] <= out_of_sample[1] + slack
        reason = (
            f"version {new_version} (one model for all: {guard.get('champion_for_all')}) {label} {new_score:.4g} > "
            f"champion version {current} {label} {current_score:.4g} on the backtest its per-series choices were "
            f"fitted to, but out of sample, on each series' last window, one model for all scored "
            f"{guard_metric.upper()} {out_of_sample[0]:.4g} against {out_of_sample[1]:.4g} for per-series choices: "
            f"{'promoted' if promoted else 'rejected, champion unchanged'}"
        )
    return decision(promoted, reason, new_score, current_score, len(both))


def apply_promotion(decision: PromotionDecision, *, name: str) -> None:
    """Record the decision on the new version's tags; move alias champion when it was promoted."""
    client = MlflowClient()
    tags = {
        "promotion_status": "promoted" if decision.promoted else "rejected",
        "promotion_reason": decision.reason,
        "compared_metric": decision.metric,
        "compared_score": f"{decision.new_score:.6g}",
        "compared_series": str(decision.n_series_compared),
        "compared_with_version": decision.current_version or "",
        "champion_score": "" if decision.current_score is None else f"{decision.current_score:.6g}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.new_version, key, value)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.new_version)


def register_and_gate(
    forecaster: ChampionForecaster,
    champions: pd.DataFrame,
    evaluation: pd.DataFrame,
    *,
    name: str,
    run_id: str | None,
    description: str,
    tags: dict[str, str],
    tolerance: float,
    selection: dict | None = None,
    metric: str = "smape",
) -> tuple[RegisteredVersion, PromotionDecision]:
    """Register a new version as challenger, then promote it to champion only if it is at least as good."""
    version = register_champions(forecaster, champions, name=name, run_id=run_id, description=description, tags=tags)
    decision = decide_promotion(
        name=name,
        new_version=version.version,
        new_champions=champions,
        evaluation=evaluation,
        tolerance=tolerance,
        selection=selection,
        metric=metric,
    )
    apply_promotion(decision, name=name)
    return version, decision


def load_champion(name: str) -> tuple[mlflow.pyfunc.PyFuncModel, str]:
    """The champion model and its version (loaded by number, so an alias move meanwhile cannot mix them)."""
    version = alias_version(name, CHAMPION)
    if version is None:
        raise MlflowException(
            f"registered model {name!r} has no '{CHAMPION}' alias: register and promote a version first",
            error_code=RESOURCE_DOES_NOT_EXIST,
        )
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}"), version


def rollback(name: str, version: str) -> str | None:
    """Point champion at an earlier version; returns the version that was champion (None if none)."""
    client = MlflowClient()
    existing = _versions(client, name)
    if not str(version).isdigit() or int(version) not in existing:
        raise MlflowException(
            f"cannot roll {name!r} back to version {version!r}: it does not exist; "
            f"existing versions: {existing or 'none'}",
            error_code=RESOURCE_DOES_NOT_EXIST,
        )
    _refuse_without_files(client, name, str(version))
    previous = alias_version(name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    client.set_model_version_tag(name, str(version), "rolled_back_from", previous or "")
    return previous


def _refuse_without_files(client: MlflowClient, name: str, version: str) -> None:
    """A version whose model files are gone cannot serve: the alias must not move to it.

    Otherwise the serving app, following the alias, fails to load it at every poll and keeps the old one.
    """
    try:
        files = mlflow.artifacts.list_artifacts(f"models:/{name}/{version}")
    except Exception as error:  # noqa: BLE001 (a missing folder, a store that cannot be reached: the same answer)
        files, reason = [], f"{type(error).__name__}: {error}"
    else:
        reason = "no files"
    if not any(Path(item.path).name == "MLmodel" for item in files):
        source = client.get_model_version(name, version).source
        raise MlflowException(
            f"cannot roll {name!r} back to version {version}: its model files are missing ({source}: {reason}); "
            "the champion alias was not moved. Roll back to another version, or run `mlops-assets relocate` "
            "if the data directory was moved",
            error_code=RESOURCE_DOES_NOT_EXIST,
        )
