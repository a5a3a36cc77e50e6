import base64
import re

import numpy as np
import pandas as pd
import pytest

from mlops_assets import plots
from mlops_assets.overall import build_sales_overall

PNG = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 150_000


def make_gold(unique_ids: list[str], periods: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for i, unique_id in enumerate(unique_ids):
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": unique_id,
                    "ds": pd.date_range("2024-01-01", periods=periods, freq="W-MON"),
                    "y": rng.poisson(10 * (i + 1), periods).astype(float),
                    "product_id": unique_id.split("/")[0],
                    "product_name": f"Product {unique_id}",
                    "brand": "B",
                    "category": "C",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def make_forecasts(gold: pd.DataFrame, horizon: int = 6) -> pd.DataFrame:
    rows = []
    start = gold["ds"].max() + pd.Timedelta(weeks=1)
    for unique_id, y in gold.groupby("unique_id")["y"]:
        level = float(y.tail(4).mean())
        for ds in pd.date_range(start, periods=horizon, freq="W-MON"):
            rows.append(
                {
                    "unique_id": unique_id,
                    "ds": ds,
                    "model": "SeasonalNaive",
                    "y_hat": level,
                    "lo_80": level * 0.8,
                    "hi_80": level * 1.2,
                    "lo_95": level * 0.6,
                    "hi_95": level * 1.4,
                    "model_version": "3",
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def gold() -> pd.DataFrame:
    return make_gold(["P001", "P002", "P001/C003", "P004"])


@pytest.fixture(scope="module")
def overall(gold) -> pd.DataFrame:
    return build_sales_overall(gold, make_forecasts(gold))


def assert_png(data: bytes) -> None:
    assert data.startswith(PNG)
    assert 1_000 < len(data) < MAX_BYTES


def test_plot_series_returns_png_and_writes_file(overall, tmp_path):
    path = tmp_path / "sub" / "p001.png"
    data = plots.plot_series(overall, "P001", path)
    assert_png(data)
    assert path.read_bytes() == data
    assert not list(path.parent.glob("*.tmp"))


def test_plot_series_without_forecast(gold):
    overall = build_sales_overall(gold, make_forecasts(gold).iloc[0:0])
    assert_png(plots.plot_series(overall, "P002"))


def test_plot_series_unknown_id_is_named(overall):
    with pytest.raises(ValueError, match="P999"):
        plots.plot_series(overall, "P999")


def test_plot_series_title_names_product_model_and_version(overall):
    rows = overall[overall["unique_id"] == "P002"]
    assert plots._title(rows, "P002") == "Product P002 (P002)\nSeasonalNaive, version 3"


def test_plot_series_title_names_the_customer():
    gold = make_gold(["P001/C003"]).assign(customer_id="C003", customer_name="Shop")
    rows = build_sales_overall(gold, make_forecasts(gold).iloc[0:0])
    assert plots._title(rows, "P001/C003") == "Product P001/C003, Shop (P001/C003)\nno forecast"


def test_plot_top_series(overall):
    assert_png(plots.plot_top_series(overall, n=4))
    assert_png(plots.plot_top_series(overall, n=1))
    assert_png(plots.plot_top_series(overall, n=10))


def test_write_all_series_plots_one_safe_file_per_series(overall, tmp_path):
    paths = plots.write_all_series_plots(overall, tmp_path / "plots")
    assert [p.name for p in paths] == ["P001.png", "P001_C003.png", "P002.png", "P004.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [p.name for p in paths]
    for path in paths:
        assert re.fullmatch(r"[A-Za-z0-9._-]+\.png", path.name)
        assert_png(path.read_bytes())


def test_write_all_series_plots_keeps_colliding_slugs_apart(tmp_path):
    gold = make_gold(["P1/C2", "P1_C2", "../etc"])
    overall = build_sales_overall(gold, make_forecasts(gold))
    paths = plots.write_all_series_plots(overall, tmp_path)
    names = [p.name for p in paths]
    assert len(set(names)) == 3
    assert all(p.parent == tmp_path for p in paths)
    assert "etc.png" in names
    assert sum(name.startswith("P1_C2-") for name in names) == 2


def test_write_all_series_plots_is_deterministic(overall, tmp_path):
    first = plots.write_all_series_plots(overall, tmp_path / "a")
    second = plots.write_all_series_plots(overall, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_slugify():
    assert plots.slugify("P001/C003") == "P001_C003"
    assert plots.slugify("a b:c*d") == "a_b_c_d"
    assert plots.slugify("..") == "series"


def test_plot_total_sales(gold):
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
    markdown = plots.png_markdown(data, "champion [wins]")
    match = re.fullmatch(r"!\[(.*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match
    assert match.group(1) == "champion wins"
    assert base64.b64decode(match.group(2)) == data
