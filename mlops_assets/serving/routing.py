"""One endpoint for every level: a request's series ids go to the series' model, its level ids to the levels'.

``RoutedModel`` pairs a loaded version of the series' model (registry.pyfunc_model) with a loaded version of
the levels' model (registry.level_model) and stands where MLflow's scoring server expects a pyfunc model (it
reads ``metadata`` and calls ``predict``), so the request and answer formats stay those of
``mlflow models serve``. The whole request is checked first against both models' ids, so an error names the
row of the request as sent; each part is then answered by its model and the rows put back in request order.
Every answer row carries ``level``: the series' own level (product, series, ...) or the node's (total,
category, category/brand).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_assets.registry.level_model import LEVEL, LevelForecasts, answer_columns
from mlops_assets.registry.pyfunc_model import RequestScope, json_bounds, validate_request


class RoutedModel:
    def __init__(self, series_model: Any, levels_model: Any):
        self.metadata = series_model.metadata
        self.series_model = series_model.unwrap_python_model()
        self.levels: LevelForecasts = levels_model.unwrap_python_model().forecasts
        forecaster = self.series_model.forecaster
        ids = pd.concat([forecaster.series[["unique_id"]], self.levels.series], ignore_index=True)
        self._node_ids = pd.Index(self.levels.series["unique_id"])
        self.scope = RequestScope(ids, min(int(forecaster.horizon), self.levels.horizon),
                                  tuple(forecaster.levels), noun=f"ids ({len(forecaster.series)} series and "
                                  f"{len(self._node_ids)} level ids such as {self._node_ids[0]!r})")

    def predict(self, data: Any, params: dict | None = None) -> pd.DataFrame:
        request = validate_request(data, self.scope)
        is_node = request["unique_id"].isin(self._node_ids)
        parts = []
        if (~is_node).any():
            series = self.series_model.forecast(request[~is_node], keep_row=True)
            parts.append(series.assign(**{LEVEL: self.levels.bottom_level}))
        if is_node.any():
            parts.append(self.levels.forecast(request[is_node], keep_row=True))
        columns = answer_columns(self.levels.levels)
        if len(parts) == 1:  # its bounds are already JSON-ready (null, not NaN)
            return parts[0][columns].reset_index(drop=True)
        out = pd.concat(parts, ignore_index=True).sort_values("row", kind="stable")[columns].reset_index(drop=True)
        # pandas concatenates an all-null object column with a float one as float: the nulls are NaN again.
        return json_bounds(out, self.levels.levels)
