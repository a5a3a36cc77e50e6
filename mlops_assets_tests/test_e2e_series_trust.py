"""Issue 11, cases 1, 2 and 5 through the real graph: a series file where one series reports a week later,
one has a missing week and one holds monthly values. Every weekly series is forecast and keeps its
actuals; the monthly one is quarantined with its file and row; a large excluded share warns."""

from __future__ import annotations

import logging

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets_tests.conftest import materialize_all, read_table

pytestmark = pytest.mark.e2e


def _landing_file() -> pd.DataFrame:
    weeks = pd.date_range("2024-01-01", periods=31, freq="W-MON")
    rng = np.random.default_rng(11)
    frames = [pd.DataFrame({"unique_id": f"S{i:02d}", "ds": weeks[:30], "y": rng.poisson(20, 30).astype(float)})
              for i in range(12)]
    frames.append(pd.DataFrame({"unique_id": "S00", "ds": weeks[30:], "y": [22.0]}))  # one week ahead
    frames[5].loc[12, "y"] = np.nan  # one missing week inside S05
    months = pd.date_range("2024-01-01", periods=7, freq="MS")
    frames.append(pd.DataFrame({"unique_id": "MONTHLY", "ds": months, "y": 80.0}))
    return pd.concat(frames, ignore_index=True)


def test_lagging_gapped_and_monthly_series_are_each_handled_on_purpose(tmp_path):
    folder = tmp_path / "landing" / "series"
    folder.mkdir(parents=True)
    landed = _landing_file()
    landed.to_csv(folder / "weekly.csv", index=False)
    settings = {"source": "series", "horizon": 4, "season_length": 4, "backtest": {"windows": 2},
                "models": ["Naive", "SeasonalNaive"], "gold": {"warn_excluded_share": 0.05}}
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    instance = dg.DagsterInstance.ephemeral()
    # Monitoring (drift, accuracy) has nothing to say here and costs half the run.
    chain = dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring")
    result = materialize_all(tmp_path, str(settings_file), instance=instance, selection=chain)
    assert result.success

    gold = read_table(tmp_path, "gold.sales_data_for_forecast")
    excluded = read_table(tmp_path, "gold.series_excluded")
    assert excluded[["unique_id", "reason_code"]].values.tolist() == [["MONTHLY", "wrong_frequency"]]
    monthly_row = int(landed.index[landed["unique_id"] == "MONTHLY"][0]) + 2  # the header is line 1
    assert f"(series/weekly.csv row {monthly_row}) but 2024-02-01 (Thu)" in excluded["reason"].iloc[0]

    # Case 1: the eleven series that end a week before S00 are forecast from their own last week.
    forecasts = read_table(tmp_path, "forecasting.forecasts")
    assert sorted(forecasts["unique_id"].unique()) == [f"S{i:02d}" for i in range(12)]
    first = forecasts.groupby("unique_id")["ds"].min()
    assert first["S00"] == pd.Timestamp("2024-08-05") and (first.drop("S00") == pd.Timestamp("2024-07-29")).all()

    # Case 2: the missing week is interpolated and flagged; no actual is dropped from gold or sales_overall.
    s05 = gold.loc[gold["unique_id"] == "S05"].set_index("ds")
    assert len(s05) == 30 and s05["imputed"].sum() == 1
    gap = pd.Timestamp("2024-03-25")
    assert s05.loc[gap, "imputed"] and s05.loc[gap, "y"] == (s05["y"].shift(1) + s05["y"].shift(-1))[gap] / 2
    overall = read_table(tmp_path, "serving.sales_overall")
    train = overall.loc[overall["origin"] == "Train"]
    reported = landed.loc[landed["y"].notna() & (landed["unique_id"] != "MONTHLY")]
    merged = reported.merge(train, on=["unique_id", "ds"], how="left")
    assert len(merged) == len(reported) == 360 and (merged["sales"] == merged["y"]).all()
    assert train.loc[train["imputed"], ["unique_id", "ds"]].values.tolist() == [["S05", gap]]

    # One series in 13 excluded is above the 5% set here: the run succeeds but says so loudly.
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()
              if c.asset_key == dg.AssetKey(["gold", "series_excluded"])}
    share = checks["excluded_share"]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.WARN
    assert share.description.startswith("1 of 13 series (7.7%) are not forecast (wrong_frequency 1): more than")
    assert checks["matches_contract"].passed
    events = result.get_asset_materialization_events()
    metadata = next(e.materialization.metadata for e in events
                    if e.asset_key == dg.AssetKey(["gold", "series_excluded"]))
    assert metadata["excluded_share"].value == pytest.approx(1 / 13, abs=1e-4)
    logged = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING]
    assert any(message.startswith("gold.series_excluded: 1 of 13 series") for message in logged)
