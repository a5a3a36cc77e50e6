"""How many series the gold layer keeps out of forecasting, and when that is too many to pass quietly.

A run that forecasts 10 of 12 series still succeeds; this summary is what makes the other 2 visible in the
log, in the metadata of ``gold.series_excluded`` and in its ``excluded_share`` check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class ExclusionSummary:
    series: int
    excluded: int
    by_reason: dict[str, int]
    threshold: float

    @property
    def share(self) -> float:
        return self.excluded / self.series if self.series else 0.0

    @property
    def too_many(self) -> bool:
        return self.share > self.threshold

    def message(self) -> str:
        reasons = ", ".join(f"{code} {count}" for code, count in self.by_reason.items())
        text = (f"{self.excluded} of {self.series} series ({self.share:.1%}) are not forecast"
                + (f" ({reasons})" if reasons else ""))
        if self.too_many:
            text += (f": more than gold.warn_excluded_share {self.threshold:.0%}; read their reasons in "
                     "gold.series_excluded before trusting the forecast")
        return text


def summarize_exclusions(gold: pd.DataFrame, excluded: pd.DataFrame, threshold: float) -> ExclusionSummary:
    """Series known to the gold layer (in gold or excluded), how many are excluded, by reason (most first)."""
    ids = set(gold["unique_id"].astype(str)) | set(excluded["unique_id"].astype(str))
    return summary_from_counts(len(ids), excluded["reason_code"].value_counts().to_dict(), threshold)


def summary_from_counts(series: int, reason_counts: Mapping[str, int], threshold: float) -> ExclusionSummary:
    """The summary from counts made elsewhere (SQL on the stored tables): series known to the gold layer,
    excluded series per reason code."""
    by_reason = {str(code): int(n) for code, n in sorted(reason_counts.items(), key=lambda item: (-item[1], item[0]))}
    return ExclusionSummary(series=series, excluded=sum(by_reason.values()), by_reason=by_reason, threshold=threshold)
