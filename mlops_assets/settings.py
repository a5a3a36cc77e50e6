"""Settings a user changes without editing code, and where the product keeps its files.

Two environment variables steer everything: ``MLOPS_DATA_DIR`` (default ``./data``) holds every file
the product writes; ``MLOPS_SETTINGS`` names a YAML file whose keys override the weekly defaults below.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DATA_DIR_ENV = "MLOPS_DATA_DIR"
SETTINGS_ENV = "MLOPS_SETTINGS"

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

# From simplest to most complex: selection breaks SMAPE ties towards the earlier name. The forecasting zoo
# builds them; they are listed here so that a settings file naming another is refused when it is read.
MODEL_NAMES: tuple[str, ...] = (
    "Naive",
    "SeasonalNaive",
    "HistoricAverage",
    "WindowAverage",
    "CrostonOptimized",
    "ADIDA",
    "IMAPA",
    "TSB",
    "AutoETS",
    "AutoTheta",
    "AutoCES",
    "MSTL",
    "AutoARIMA",
    "LightGBM",
    "Combination",
)
# Not StatsForecast models: the global model (forecasting.global_model) and the per-series combination of
# the best few others (forecasting.combinations); the backtest and the champion model run them themselves.
GLOBAL_MODEL = "LightGBM"
COMBINATION = "Combination"


def validate_model_names(names: list[str]) -> list[str]:
    """The names, checked: unknown or duplicated names raise ValueError listing the supported ones."""
    names = list(names)
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model name(s) {unknown} in settings.models; supported: {list(MODEL_NAMES)}")
    if not names:
        raise ValueError(f"settings.models is empty; name at least one of {list(MODEL_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"settings.models lists a model twice: {names}")
    return names


# Canonical landing tables, each a folder under ``<data dir>/landing``.
LANDING_TABLES = ("sales_orders", "products", "customers", "promotions", "series")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BacktestSettings(_Strict):
    windows: int = Field(3, ge=1, description="Rolling-origin cross-validation windows per series.")
    step: int | None = Field(None, ge=1, description="Periods between cutoffs; default: the horizon.")
    min_train_periods: int | None = Field(
        None, ge=1, description="Periods a series needs before its first cutoff; default: the horizon."
    )


class SelectionSettings(_Strict):
    metric: Literal["smape", "mase", "rmse", "wape"] = Field(
        "smape",
        description="What decides: each series' champion, the 'auto' guard, the one model for all, the "
        "Combination's members and the registry's promotion gate. 'smape' (0-200), 'mase' (scaled by the "
        "in-sample seasonal naive error before each cutoff), 'rmse' (units of y: big series weigh more in "
        "the comparisons over series), 'wape' (percent of the actuals). promotion_tolerance is in its units.",
    )
    mode: Literal["auto", "per_series", "global"] = Field(
        "auto",
        description="'per_series': each series' lowest backtest SMAPE; 'global': one model for all series; "
        "'auto': per-series only if, chosen on the earlier windows, it beats one model for all on each "
        "series' last backtest window (see mlops_assets/forecasting/selection.py).",
    )
    global_tolerance: float = Field(
        0.02,
        ge=0,
        description="The one model for all series is the simplest whose mean SMAPE is within this share of "
        "the best one's.",
    )
    margin: float = Field(
        0.0, ge=0, lt=1, description="'auto' keeps per-series choice only when it beats one model for all by "
        "this share on the guard's windows."
    )
    guard_windows: int | None = Field(
        None, ge=1, description="'auto' checks this many of the last backtest windows, each with choices made "
        "on the windows before it (at most windows - 1 are checked). Default: 2 for daily data, else 1 "
        "(docs/forecasting-defaults.md)."
    )
    guard_metric: Literal["smape", "mase", "rmse", "wape", "mae"] | None = Field(
        None,
        description="What the 'auto' guard and the one model for all compare, averaged over series (the "
        "metric above still picks each series' champion). 'mae' is the pooled error: a series weighs what it "
        "sells, as in the WAPE a retailer reads. Default: 'mae' for daily data, the metric above otherwise "
        "(docs/forecasting-defaults.md).",
    )


class IntervalSettings(_Strict):
    method: Literal["backtest", "model"] = Field(
        "backtest",
        description="'backtest': conformal on the champions' backtest errors, scaled per series, one smooth "
        "growth over the steps (mlops_assets/forecasting/intervals.py); 'model': each model's own intervals. "
        "Widths never shrink from one step to the next either way.",
    )
    clip: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Clip forecasts and bounds at 0: 'auto' only when the history has no negative value "
        "(returns), 'always', 'never'.",
    )


BUILTIN_REGRESSORS = ("promo_depth", "holiday_days")
# A declared series column becomes a DuckDB column (case-insensitive) and a LightGBM feature name.
SERIES_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Names a declared series column may not take: the series file's own columns and gold.regressors' others.
RESERVED_COLUMNS = ("unique_id", "ds", "y", "product_id", "product_name", "brand", "category", "source_file",
                    "source_row", "ingested_at", "is_future", *BUILTIN_REGRESSORS)


# gold.sales_data_for_forecast's attributes a series keeps over its history (regressors.statics).
STATIC_ATTRIBUTES = ("brand", "category", "channel", "region")


class RegressorSettings(_Strict):
    use: list[str] = Field(
        list(BUILTIN_REGRESSORS),
        description="Regressors the global model (LightGBM) uses: promo_depth (planned promotions' mean "
        "discount in the period), holiday_days (public holidays in the period), and any declared "
        "series_columns; see gold/regressors.py. Default: all of them.",
    )
    country: str | None = Field("US", description="Country of the public holidays (holidays package code).")
    last_known: list[str] = Field(
        [],
        description="Regressors whose future is not known (a price): after each cutoff, and in the final "
        "forecast, their last known value is used. series_columns declared last_known are added to them.",
    )
    series_columns: dict[str, Literal["planned", "last_known"]] = Field(
        {},
        description="Extra numeric columns of the series files (source: series) used as regressors, each "
        "'planned' (its future values are known in advance: given in rows after a series' last actual, with "
        "an empty y) or 'last_known' (only its last value at a cutoff is carried forward), e.g. "
        "{price: last_known, promo_flag: planned}.",
    )

    statics: list[str] = Field(
        [],
        description="Attributes of a series the global model (LightGBM) reads as static features, one value per "
        "series (its latest): brand and category (the product master for order lines, the series file's own "
        "columns for series files), channel and region (the customer master, order lines by product x "
        "customer), or another column of the series files (source: series; e.g. store_type, read as text). "
        "Text values become categories. Default: none (measured: docs/forecasting-defaults.md).",
    )

    @field_validator("statics")
    @classmethod
    def _statics_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"regressors.statics lists an attribute twice: {value}")
        for name in value:
            if name in STATIC_ATTRIBUTES:
                continue
            if not SERIES_COLUMN_NAME.fullmatch(name) or name.lower() in RESERVED_COLUMNS:
                raise ValueError(f"regressors.statics: {name!r} is neither one of {list(STATIC_ATTRIBUTES)} nor a "
                                 "column name a series file may declare (letters, digits and '_', not one of "
                                 f"{', '.join(RESERVED_COLUMNS)})")
        return value

    @property
    def file_statics(self) -> list[str]:
        """Static attributes read from the series files' own columns (beyond gold's attributes)."""
        return [name for name in self.statics if name not in STATIC_ATTRIBUTES]

    @field_validator("series_columns")
    @classmethod
    def _plain_column_names(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for name in value:
            if not SERIES_COLUMN_NAME.fullmatch(name):
                raise ValueError(f"regressors.series_columns: {name!r} must be letters, digits and '_' (not "
                                 "starting with a digit, at most 63); map a file column of another name in "
                                 "column_mapping.series")
            if name.lower() in RESERVED_COLUMNS:
                raise ValueError(f"regressors.series_columns: {name!r} is already a column of the series file or "
                                 f"of gold.regressors ({', '.join(RESERVED_COLUMNS)})")
            if name.lower() in seen:
                raise ValueError(f"regressors.series_columns: {seen[name.lower()]!r} and {name!r} differ only in "
                                 "case; columns are matched case-insensitively")
            seen[name.lower()] = name
        return value

    @model_validator(mode="after")
    def _known_regressors(self) -> RegressorSettings:
        available = [*BUILTIN_REGRESSORS, *self.series_columns]
        if "use" not in self.model_fields_set:
            self.use = available
        unknown = [name for name in self.use if name not in available]
        if unknown:
            raise ValueError(f"regressors.use names unknown regressors {unknown}; available: {available} "
                             "(declare a series file's column in regressors.series_columns)")
        both = [name for name in self.statics if name in self.series_columns]
        if both:
            raise ValueError(f"regressors.statics lists {both}, declared in regressors.series_columns: a column is "
                             "a driver per period or an attribute of the series, not both")
        planned = [name for name in self.last_known if self.series_columns.get(name) == "planned"]
        if planned:
            raise ValueError(f"regressors.last_known lists {planned}, declared planned in "
                             "regressors.series_columns: say one or the other")
        return self

    @property
    def unknown_future(self) -> list[str]:
        """Regressors whose values after a cutoff must be replaced by the last one up to it."""
        declared = [name for name, kind in self.series_columns.items() if kind == "last_known"]
        return [*self.last_known, *(name for name in declared if name not in self.last_known)]


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ClosedSettings(_Strict):
    """Periods of daily data with known zero demand (a store closed on Sundays, on Christmas Day)."""

    weekdays: list[str] = Field(
        [], description="Weekdays always closed: mon, tue, wed, thu, fri, sat, sun (or full names)."
    )
    dates: list[date] = Field([], description="Dates closed, e.g. [2024-12-25, 2025-01-01].")
    column: str | None = Field(
        None, description="A declared planned series column (regressors.series_columns) that is 0 on the periods "
        "a series is closed, e.g. an `open` flag: closed per series and period, known in advance."
    )

    @field_validator("weekdays", mode="before")
    @classmethod
    def _weekday_names(cls, value):
        if not isinstance(value, list):
            raise ValueError(f"closed.weekdays must be a list of weekday names, got {value!r}")
        out = []
        for name in value:
            key = str(name).strip().lower()[:3] if isinstance(name, str) else ""
            full = {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday",
                    "sat": "saturday", "sun": "sunday"}.get(key, "")
            if not isinstance(name, str) or name.strip().lower() not in (key, full):
                raise ValueError(f"closed.weekdays: {name!r} is not a weekday; use {', '.join(WEEKDAYS)} "
                                 "(or monday ... sunday)")
            out.append(key)
        return sorted(set(out), key=WEEKDAYS.index)

    @property
    def any(self) -> bool:
        return bool(self.weekdays or self.dates or self.column)


class DriftSettings(_Strict):
    recent_periods: int = Field(13, ge=2, description="Periods in the current window.")
    reference_periods: int = Field(52, ge=2, description="Periods in the reference window before it.")
    threshold: float = Field(0.5, gt=0, le=1, description="Drift share above which the check warns.")


class MonitoringSettings(_Strict):
    accuracy_warn_ratio: float = Field(
        1.5, gt=0, description="Warn when realized SMAPE exceeds the backtest SMAPE by this factor."
    )


class PlotSettings(_Strict):
    max_series: int = Field(
        500,
        ge=0,
        description="Series, largest by total actual sales, that get a PNG on each materialization of "
        "serving.sales_overall (about 0.1 CPU-second each); 0: none. `mlops-assets plot --product <id>` "
        "draws any series on demand.",
    )


class AutomationSettings(_Strict):
    forecasting_cadence: Literal["eager", "weekly"] = Field(
        "eager",
        description="'eager': backtest and champion refresh on every gold change; "
        "'weekly': only on the weekly schedule (for large data where a backtest is expensive).",
    )
    weekly_schedule: str = Field("0 6 * * 1", description="Cron of the weekly forecasting refresh.")
    weekly_schedule_running: bool = Field(False, description="Whether the weekly schedule starts on.")


class GoldSettings(_Strict):
    missing_periods: Literal["zero", "not_reported"] | None = Field(
        None,
        description="What a period without a value means in a series file (no row, or an empty y): 'zero' "
        "(no sales, filled with 0 up to the end of the data) or 'not_reported' (interior gaps interpolated "
        "linearly and flagged `imputed`; a series ends at its last value). Default: 'zero' for order "
        "lines (an order system records nothing in a week without orders), 'not_reported' for series.",
    )
    stale_after: int | None = Field(
        None,
        ge=0,
        description="Periods a series may lag the end of the data and still be forecast, from its own last "
        "period; default: half the horizon, so that at least half of its forecast lies ahead.",
    )
    warn_excluded_share: float = Field(
        0.1, ge=0, le=1, description="Share of series excluded from forecasting above which the gold "
        "run warns (log, metadata and the `excluded_share` check).",
    )


class IngestSettings(_Strict):
    chunk_rows: int = Field(
        200_000, ge=1, description="Rows of a landing file read and validated at a time: the raw step's memory "
        "is bounded by this plus compute.duckdb_memory_mb (DuckDB's cache of the staged and merged rows, which "
        "spills to disk beyond it), not by the size of the files or of the raw tables."
    )
    empty_y: Literal["keep", "erase"] = Field(
        "keep", description="Series files: what an empty or NaN y does to a value an earlier file gave the same "
        "series and period. 'keep': the known value stays (the row's other columns are still taken); 'erase': it "
        "becomes empty. Either way the run's log names the file, line and value."
    )
    as_of: date | None = Field(
        None, description="The last day an actual may be dated: series rows with a y and order lines dated later "
        "are quarantined as future-dated (planned series rows, y empty, are kept). Default: the run's day."
    )


class LockSettings(_Strict):
    run_wait_seconds: float = Field(
        600, ge=0, description="How long a run waits for another run on the same data directory to finish "
        "before it stops with a message naming that run (two runs never write at once)."
    )
    warehouse_wait_seconds: float = Field(
        300, ge=0, description="How long a run waits for another process (a reader) to close the DuckDB file "
        "before it stops with a message naming that process."
    )


class ComputeSettings(_Strict):
    engine: Literal["local", "dask"] = Field(
        "local",
        description="Where the backtest and the registry's refit run, as tasks by bucket of series: 'local': a "
        "process pool on this machine; 'dask': a Dask cluster (the scheduler at `address`, or a LocalCluster "
        "started for the step).",
    )
    address: str | None = Field(
        None, description="Dask scheduler address, e.g. tcp://10.0.0.5:8786; empty: a LocalCluster per step."
    )
    workers: int | None = Field(
        None, ge=1, description="Local pool processes or LocalCluster workers; default: this machine's cores."
    )
    bucket_series: int = Field(
        2000, ge=1, description="Most series in one model group (the global model is trained per group, so "
        "this, not the workers, sets its forecasts) and in one scoring chunk."
    )
    retries: int = Field(1, ge=0, description="Times a failed bucket is run again before the step fails.")
    duckdb_memory_mb: int = Field(
        512, ge=64, description="DuckDB's memory_limit in every step's connection: beyond it DuckDB spills to "
        "<warehouse>.tmp beside the database, so the warehouse's share of a step's memory does not grow with "
        "the tables. Raise it on a larger machine for speed, not for correctness."
    )


class ServingSettings(_Strict):
    """The serving app (`make serve`, ``python -m mlops_assets.serving.app``); its command-line flags override these."""

    host: str = Field("127.0.0.1", description="Address the serving app binds and its OpenAPI document names.")
    port: int = Field(5001, ge=1, le=65535, description="Port of the serving app and of its OpenAPI document.")
    poll_seconds: float = Field(10.0, gt=0, description="How often the app asks the registry for the alias champion.")
    max_body_bytes: int = Field(1_048_576, ge=1, description="Largest request body; beyond it HTTP 413.")
    max_rows: int = Field(5_000, ge=1, description="Most request rows (series and h) per request; beyond it HTTP 413.")
    max_forecast_rows: int = Field(
        20_000, ge=1, description="Most forecast rows (the sum of h over the rows) per request; beyond it HTTP 413."
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class LlmSettings(_Strict):
    """An OpenAI-compatible chat endpoint (a local Ollama, llama.cpp or vLLM server, or a hosted one)."""

    base_url: str = Field(description="The endpoint's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama).")
    model: str = Field(description="The model name the endpoint serves, e.g. qwen2.5-coder:7b.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key; empty: none is sent (a local server)."
    )
    timeout_seconds: float = Field(30.0, gt=0, description="How long to wait for the model's reply.")


class AskSettings(_Strict):
    """`mlops-assets ask` and the explorer's question box."""

    llm: LlmSettings | None = Field(
        None, description="A language model that writes the SQL; empty: the offline engine answers alone."
    )
    time_limit_seconds: float = Field(10.0, gt=0, description="Longest a question's query may run.")
    max_rows: int = Field(1000, ge=1, description="Most rows a query may return.")


RECONCILIATION_METHODS = ("auto", "BottomUp", "MinTrace(mint_shrink)", "MinTrace(ols)", "MinTrace(wls_struct)",
                          "TopDown(forecast_proportions)")


class HierarchySettings(_Strict):
    """Levels above the series, each forecast and reconciled with the series (mlops_assets/levels, docs/levels.md)."""

    levels: list[list[str]] | None = Field(
        None,
        description="The levels above the series, top first, each the columns its nodes are grouped by, each "
        "level's columns extending the one above, e.g. [[category], [category, brand]]. A total over all "
        "series is always added on top; the series are the bottom. Columns: gold's attributes (category, "
        "brand, product_name; with grain [product_id, customer_id] also channel, region, customer_id) or "
        "the named groups of id_pattern. Default: [[category], [category, brand]] for order lines; for "
        "series files the total only, unless levels are declared. []: the total only.",
    )
    id_pattern: str | None = Field(
        None,
        description="Series files: a regular expression whose named groups cut each unique_id into declared "
        "columns usable in levels, e.g. '(?P<store>[^_]+)__(?P<dept>.+)' for ids like '1__GROCERY'.",
    )
    reconciliation: Literal[RECONCILIATION_METHODS] = Field(
        "auto",
        description="How the levels' forecasts are made to add up: BottomUp (sum the series' forecasts), "
        "MinTrace(ols), MinTrace(wls_struct) or TopDown(forecast_proportions) (hierarchicalforecast), or "
        "'auto': the method with the lowest mean SMAPE over the levels on the backtest windows (never on a "
        "holdout). MinTrace(mint_shrink) is accepted but not computed (no in-sample errors of the series): "
        "BottomUp is used (docs/levels.md).",
    )

    @field_validator("id_pattern")
    @classmethod
    def _named_groups(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            pattern = re.compile(value)
        except re.error as err:
            raise ValueError(f"hierarchy.id_pattern {value!r} is not a regular expression: {err}") from err
        if not pattern.groupindex:
            raise ValueError(f"hierarchy.id_pattern {value!r} names no group; write (?P<store>...) for each "
                             "declared column")
        return value

    @model_validator(mode="after")
    def _nested_levels(self) -> HierarchySettings:
        for above, below in zip(self.levels or [], (self.levels or [])[1:], strict=False):
            if below[: len(above)] != above or len(below) <= len(above):
                raise ValueError(f"hierarchy.levels: {below} must extend the level above it, {above} "
                                 "(its columns first, then at least one more)")
        if any(not level for level in self.levels or []):
            raise ValueError("hierarchy.levels: a level names at least one column (the total is always added)")
        return self


class Settings(_Strict):
    frequency: str = Field("W-MON", description="pandas offset alias of the period: W-MON, D, MS, ...")
    horizon: int = Field(13, ge=1, description="Periods to forecast.")
    season_length: int | None = Field(None, ge=1, description="Default: from the frequency.")
    backtest: BacktestSettings = BacktestSettings()
    selection: SelectionSettings = SelectionSettings()
    grain: list[str] = Field(["product_id"], description="[product_id] or [product_id, customer_id].")
    source: Literal["orders", "series"] = Field(
        "orders", description="'orders': gold from order lines; 'series': from pre-aggregated series files."
    )
    models: list[str] | None = Field(None, description="StatsForecast model names; default: the zoo.")
    interval_levels: list[int] = Field([80, 95], description="Prediction interval levels, in percent.")
    intervals: IntervalSettings = IntervalSettings()
    regressors: RegressorSettings = RegressorSettings()
    closed: ClosedSettings = Field(
        ClosedSettings(),
        description="Daily data only: periods with known zero demand. They are forecast as 0 (bounds too), "
        "not scored in the backtest (they never decide the selection), and their actuals stay in the history.",
    )
    combination_size: int = Field(
        3, ge=2, description="Models in each series' Combination candidate: the median of its best ones."
    )
    column_mapping: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per landing table, canonical column -> the file's column, e.g. "
        "{sales_orders: {order_date: OrderDate}}.",
    )
    promotion_tolerance: float = Field(
        0.0, ge=0, description="How much worse a new version may score (in the units of selection.metric, "
        "SMAPE points by default) and still become champion."
    )
    registered_model_name: str = Field(
        "sales_forecast", description="MLflow registered model name: letters, digits, '_', '-', '.'."
    )
    experiment_name: str = "sales_forecast"
    mlflow_tracking_uri: str | None = Field(None, description="Default: SQLite in the data directory.")
    gold: GoldSettings = GoldSettings()
    drift: DriftSettings = DriftSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    plots: PlotSettings = PlotSettings()
    automation: AutomationSettings = AutomationSettings()
    locks: LockSettings = LockSettings()
    ingest: IngestSettings = IngestSettings()
    compute: ComputeSettings = ComputeSettings()
    serving: ServingSettings = ServingSettings()
    ask: AskSettings = AskSettings()
    hierarchy: HierarchySettings | None = Field(
        None,
        description="Levels above the series (total, category, brand...), each forecast and reconciled so that "
        "they add up (docs/levels.md). Order lines: on by default (total / category / brand / product); null "
        "turns them off. Series files: off unless declared ({} for the total alone, or levels and id_pattern).",
    )
    seed: int = 42

    @field_validator("frequency")
    @classmethod
    def _known_frequency(cls, value: str) -> str:
        pd.tseries.frequencies.to_offset(value)
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else validate_model_names(value)

    @model_validator(mode="after")
    def _order_lines_have_levels(self) -> Settings:
        # Order lines carry their master data (category, brand), so their levels are known: on unless the
        # settings say hierarchy: null. A series file's levels must be declared.
        if "hierarchy" not in self.model_fields_set and self.source == "orders":
            self.hierarchy = HierarchySettings()
        return self

    @model_validator(mode="after")
    def _models_have_intervals(self) -> Settings:
        without = sorted(set(self.models or ()) & {GLOBAL_MODEL, COMBINATION})
        if self.intervals.method == "model" and without:
            raise ValueError(f"settings.models lists {without}, which have no intervals of their own: "
                             "use intervals.method 'backtest' or leave them out")
        return self

    @field_validator("registered_model_name")
    @classmethod
    def _plain_model_name(cls, value: str) -> str:
        # The name goes into MLflow search filters and models:/ URIs, where a quote or a slash breaks them.
        if not MODEL_NAME.fullmatch(value):
            raise ValueError(
                f"registered_model_name {value!r} may hold only letters, digits, '_', '-' and '.' "
                "(starting with a letter or digit, at most 100 characters)"
            )
        return value

    @field_validator("grain")
    @classmethod
    def _known_grain(cls, value: list[str]) -> list[str]:
        if value not in (["product_id"], ["product_id", "customer_id"]):
            raise ValueError("grain must be [product_id] or [product_id, customer_id]")
        return value

    @field_validator("column_mapping")
    @classmethod
    def _known_tables(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(value) - set(LANDING_TABLES))
        if unknown:
            raise ValueError(f"column_mapping names unknown tables {unknown}; known: {list(LANDING_TABLES)}")
        return value

    @property
    def season(self) -> int:
        return self.season_length or default_season_length(self.frequency)

    @model_validator(mode="after")
    def _missing_periods_fit_the_source(self) -> Settings:
        if self.source == "orders" and self.regressors.series_columns:
            raise ValueError("regressors.series_columns are columns of series files (source: series); order "
                             "lines have promotions (raw.promotions) and prices of their own")
        if self.source == "orders" and self.regressors.file_statics:
            raise ValueError(f"regressors.statics {self.regressors.file_statics} would be columns of series files "
                             f"(source: series); order lines have {list(STATIC_ATTRIBUTES)}")
        if self.source == "orders" and self.gold.missing_periods == "not_reported":
            raise ValueError("gold.missing_periods: not_reported applies to series files (source: series); "
                             "order lines record every sale, so a period without one is zero sales")
        return self

    @model_validator(mode="after")
    def _closed_column_is_planned(self) -> Settings:
        column = self.closed.column
        if column is not None and self.regressors.series_columns.get(column) != "planned":
            raise ValueError(f"closed.column {column!r} must be declared planned in regressors.series_columns "
                             "(its future values say when the series is closed)")
        return self

    @model_validator(mode="after")
    def _closed_days_need_daily_data(self) -> Settings:
        base = pd.tseries.frequencies.to_offset(self.frequency)
        if self.closed.any and not (base.name in ("D", "B") and base.n == 1):
            raise ValueError(f"closed (weekdays/dates with zero demand) applies to daily data (frequency D or B); "
                             f"frequency is {self.frequency}, whose periods are never wholly closed: remove "
                             "`closed` or set frequency: D")
        return self

    @property
    def missing_periods(self) -> str:
        return self.gold.missing_periods or ("not_reported" if self.source == "series" else "zero")

    @property
    def stale_after(self) -> int:
        return self.horizon // 2 if self.gold.stale_after is None else self.gold.stale_after

    @property
    def step(self) -> int:
        return self.backtest.step or self.horizon

    @property
    def min_series_length(self) -> int:
        """Shortest history that can be backtested: training before the first cutoff plus every window."""
        min_train = self.backtest.min_train_periods or self.horizon
        return min_train + self.step * (self.backtest.windows - 1) + self.horizon

    def fingerprint(self) -> str:
        # The registry registers a new model version when this changes; how many PNGs are drawn, when the
        # gold layer warns, how long a run waits for a lock, the engine that computes it, how it is served and
        # how many rows a landing file is read at a time are not part of the model, so changing them must not
        # register one. Nor are the levels above the series (a layer beside the model, mlops_assets/levels).
        # mode="json": closed dates are dates, which json cannot dump as they are.
        settings = self.model_dump(
            mode="json",
            exclude={"plots": True, "locks": True, "compute": True, "serving": True, "ingest": True, "ask": True,
                     "hierarchy": True, "gold": {"warn_excluded_share"}},
        )
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def default_season_length(frequency: str) -> int:
    """Yearly season in periods of the given frequency (52 weeks, 12 months, 7 days for daily data)."""
    name = pd.tseries.frequencies.to_offset(frequency).name.split("-")[0]
    return {"W": 52, "MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "D": 7, "B": 5}.get(name, 1)


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Settings from a YAML file (``MLOPS_SETTINGS`` when no path is given), else the weekly defaults."""
    path = path or os.environ.get(SETTINGS_ENV) or None
    if not path:
        return Settings()
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"settings file {file} ({SETTINGS_ENV}) does not exist")
    try:
        values = yaml.load(file.read_text(), Loader=_DatesAsText) or {}
    except yaml.MarkedYAMLError as error:
        raise ValueError(f"settings file {file}{_yaml_problem(error)}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"settings file {file}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"settings file {file}: holds {type(values).__name__} {values!r}, not keys and values "
                         "(e.g. `horizon: 13`)")
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ValueError(f"settings file {file}: {_named_errors(error)}") from None


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    """`` line 4, column 1: not valid YAML: expected ... (while parsing ... from line 3, column 13)``."""
    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    mark = error.problem_mark or error.context_mark
    text = f" {at(mark)}: not valid YAML: {error.problem or error.context}" if mark else f": not valid YAML: {error}"
    if error.context and error.problem:
        opened = f" from {at(error.context_mark)}" if error.context_mark and error.context_mark != mark else ""
        text += f" ({error.context}{opened})"
    return text


class _DatesAsText(yaml.SafeLoader):
    """YAML without its date type: an impossible date (2024-13-45) then reaches the settings' own validation,
    which names its key, instead of failing inside the YAML parser with no key."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _named_errors(error: ValidationError) -> str:
    """Each problem as `key.path: message (got value)`, separated by "; "."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        value = problem.get("input")
        shown = "input" in problem and not isinstance(value, dict) and repr(value) not in message
        got = f" (got {value!r})" if shown else ""
        lines.append(f"{key}: {message}{got}" if key else message)
    return "; ".join(lines)


@dataclass(frozen=True)
class DataPaths:
    """Every file the product writes lives under one data directory."""

    root: Path

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike | None = None) -> DataPaths:
        return cls(Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data").resolve())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def landing_folder(self, table: str) -> Path:
        return self.landing / table

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def exports(self) -> Path:
        """Parquet snapshots of every table, replaced atomically, for readers in other processes."""
        return self.root / "exports"

    @property
    def engine(self) -> Path:
        """Bucket inputs and result parts of the heavy steps; on a cluster, a disk every worker mounts."""
        return self.root / "engine"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow / "artifacts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"
