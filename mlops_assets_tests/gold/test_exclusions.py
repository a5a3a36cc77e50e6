"""The excluded-share summary that makes a forecast of few series loud."""

import pandas as pd

from mlops_assets.gold.exclusions import summarize_exclusions
from mlops_assets.settings import Settings


def _tables(kept: list[str], excluded: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    # An excluded series may or may not have rows in gold (one without any value has none).
    gold = pd.DataFrame({"unique_id": kept + list(excluded)[:1], "y": 1.0})
    table = pd.DataFrame({"unique_id": list(excluded), "reason_code": list(excluded.values())})
    return gold, table


def test_share_counts_every_series_once_and_orders_reasons_by_count() -> None:
    gold, excluded = _tables(["A", "B", "C", "D", "E", "F"], {"X": "stale", "Y": "too_short", "Z": "stale"})
    summary = summarize_exclusions(gold, excluded, threshold=0.25)
    assert (summary.series, summary.excluded) == (9, 3)
    assert summary.by_reason == {"stale": 2, "too_short": 1}
    assert summary.too_many
    assert summary.message() == ("3 of 9 series (33.3%) are not forecast (stale 2, too_short 1): more than "
                                 "gold.warn_excluded_share 25%; read their reasons in gold.series_excluded "
                                 "before trusting the forecast")


def test_a_share_at_the_threshold_is_quiet_and_empty_tables_are_zero() -> None:
    gold, excluded = _tables(["A", "B", "C"], {"X": "all_zero"})
    summary = summarize_exclusions(gold, excluded, threshold=0.25)
    assert summary.share == 0.25 and not summary.too_many
    assert summary.message() == "1 of 4 series (25.0%) are not forecast (all_zero 1)"
    empty = summarize_exclusions(gold.iloc[:0], excluded.iloc[:0], threshold=0.1)
    assert (empty.series, empty.share, empty.too_many) == (0, 0.0, False)
    assert empty.message() == "0 of 0 series (0.0%) are not forecast"


def test_the_warning_threshold_is_not_part_of_the_model_but_the_gap_rules_are() -> None:
    series = Settings(source="series")
    assert Settings(source="series", gold={"warn_excluded_share": 0.5}).fingerprint() == series.fingerprint()
    assert Settings(source="series", gold={"stale_after": 0}).fingerprint() != series.fingerprint()
    assert Settings(source="series", gold={"missing_periods": "zero"}).fingerprint() != series.fingerprint()
