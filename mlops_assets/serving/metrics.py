"""Prometheus metrics of the serving app, on a registry of its own (one per app, so tests can run several).

Names are what the alert rules in ``mlops_assets/monitoring/prometheus/alerts.yml`` query.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From 2 ms (a one-series answer on an idle machine) to the scoring server's 60 s timeout.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServingMetrics:
    def __init__(self, model_name: str, poll_seconds: float):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "serving_requests", "Forecast requests answered, by HTTP status and error kind (none when 200).",
            ["status", "error_kind"], registry=r,
        )
        self.latency = Histogram(
            "serving_request_duration_seconds", "Time from the request's arrival to its answer, POST /invocations.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.forecast_rows = Counter("serving_forecast_rows", "Forecast rows returned (series x periods).", registry=r)
        self.series = Counter("serving_series_requested", "Series named in answered requests.", registry=r)
        self.model_version = Gauge(
            "serving_model_version", "Registered version of the model answering requests.", ["model"], registry=r
        )
        self.alias_version = Gauge(
            "serving_champion_alias_version", "Version the champion alias pointed at on the last registry poll.",
            ["model"], registry=r,
        )
        self.reloads = Counter(
            "serving_reloads", "Model swaps after the champion alias moved, by result.", ["result"], registry=r
        )
        self.last_reload = Gauge(
            "serving_last_reload_timestamp_seconds", "Unix time the served model last changed (or was first loaded).",
            registry=r,
        )
        self.last_poll = Gauge(
            "serving_last_alias_poll_timestamp_seconds", "Unix time of the last successful registry poll.", registry=r
        )
        self.poll_interval = Gauge(
            "serving_alias_poll_interval_seconds", "How often the app asks the registry for the champion.", registry=r
        )
        self.poll_errors = Counter("serving_alias_poll_errors", "Registry polls that failed.", registry=r)
        self.model_name = model_name
        self.poll_interval.set(poll_seconds)
        for result in ("success", "failure"):
            self.reloads.labels(result)

    def served(self, version: str, *, reloaded: bool) -> None:
        self.model_version.labels(self.model_name).set(float(version))
        self.last_reload.set(time.time())
        if reloaded:
            self.reloads.labels("success").inc()

    def polled(self, alias_version: str) -> None:
        self.alias_version.labels(self.model_name).set(float(alias_version))
        self.last_poll.set(time.time())

    def answered(self, status: int, error_kind: str, seconds: float, forecast_rows: int, series: int) -> None:
        self.requests.labels(str(status), error_kind).inc()
        self.latency.observe(seconds)
        if status == 200:
            self.forecast_rows.inc(forecast_rows)
            self.series.inc(series)
