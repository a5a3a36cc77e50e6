"""The pictures the run metadata shows, and their embedding in Markdown."""

import base64
import re

import numpy as np
import pandas as pd

from mlops_assets.reporting import plots
from mlops_assets.reporting.render import png_markdown
from mlops_assets_tests.serving.test_plots import assert_png, make_gold


def test_plot_total_sales():
    gold = make_gold(["P001", "P002", "P001/C003", "P004"])
    assert_png(plots.plot_total_sales(gold))
    assert_png(plots.plot_total_sales(gold.iloc[0:0]))


def test_plot_smape_distribution():
    evaluation = pd.DataFrame(
        {
            "unique_id": ["A", "B", "C"] * 2,
            "model": ["Naive"] * 3 + ["AutoTheta"] * 3,
            "smape": [10.0, 50.0, np.nan, 5.0, 20.0, 199.0],
        }
    )
    assert_png(plots.plot_smape_distribution(evaluation))
    assert_png(plots.plot_smape_distribution(evaluation.iloc[0:0]))


def test_plot_win_share():
    assert_png(plots.plot_win_share({"AutoTheta": 0.5, "Naive": 0.2, "SeasonalNaive": 0.3}))
    assert_png(plots.plot_win_share({"AutoTheta": 12, "Naive": 3}))
    assert_png(plots.plot_win_share({}))


def test_png_markdown():
    data = plots.plot_win_share({"Naive": 1.0})
    markdown = png_markdown(data, "champion [wins]")
    match = re.fullmatch(r"!\[(.*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match
    assert match.group(1) == "champion wins"
    assert base64.b64decode(match.group(2)) == data
