import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.serving import plots
from mlops_assets.serving.overall import build_sales_overall
from mlops_assets.settings import PlotSettings, Settings

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


def test_write_series_plots_one_safe_file_per_series(overall, tmp_path):
    result = plots.write_series_plots(overall, tmp_path / "plots", max_series=500)
    assert [p.name for p in result.written] == ["P001.png", "P001_C003.png", "P002.png", "P004.png"]
    assert result.unplotted == 0 and result.removed == []
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [p.name for p in result.written]
    for path in result.written:
        assert re.fullmatch(r"[A-Za-z0-9._-]+\.png", path.name)
        assert_png(path.read_bytes())


def test_write_series_plots_keeps_colliding_slugs_apart(tmp_path):
    gold = make_gold(["P1/C2", "P1_C2", "../etc"])
    overall = build_sales_overall(gold, make_forecasts(gold))
    names = [p.name for p in plots.write_series_plots(overall, tmp_path, max_series=500).written]
    assert len(set(names)) == 3
    assert "etc.png" in names
    assert sum(name.startswith("P1_C2-") for name in names) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_write_series_plots_is_deterministic(overall, tmp_path):
    first = plots.write_series_plots(overall, tmp_path / "a", max_series=500).written
    second = plots.write_series_plots(overall, tmp_path / "b", max_series=500).written
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_write_series_plots_redraws_only_series_whose_rows_changed(overall, tmp_path):
    first = plots.write_series_plots(overall, tmp_path, max_series=500)
    assert first.drawn == first.written
    before = {p.name: p.stat().st_mtime_ns for p in first.written}
    again = plots.write_series_plots(overall.sample(frac=1.0, random_state=1), tmp_path, max_series=500)
    assert again.written == first.written and again.drawn == []
    assert {p.name: p.stat().st_mtime_ns for p in again.written} == before
    changed = overall.copy()
    changed.loc[(changed["unique_id"] == "P002") & (changed["origin"] == "Predict"), "sales"] += 1.0
    (tmp_path / "P004.png").write_bytes(b"not a png")
    third = plots.write_series_plots(changed, tmp_path, max_series=500)
    assert [p.name for p in third.drawn] == ["P002.png", "P004.png"]
    assert_png((tmp_path / "P004.png").read_bytes())


def test_a_monthly_series_plots_without_a_matplotlib_warning(tmp_path, recwarn):
    # 51 months is carparts' span, where AutoDateLocator warns that it falls back to another interval.
    gold = make_gold(["P1"], periods=51).assign(ds=lambda g: pd.date_range("1998-01-01", periods=51, freq="MS"))
    plots.plot_series(build_sales_overall(gold, make_forecasts(gold, horizon=1)), "P1", tmp_path / "p.png")
    assert [str(w.message) for w in recwarn.list] == []


def constant_overall(units: dict[str, float], forecast: dict[str, float] | None = None) -> pd.DataFrame:
    gold = pd.concat(
        pd.DataFrame(
            {
                "unique_id": unique_id,
                "ds": pd.date_range("2024-01-01", periods=10, freq="W-MON"),
                "y": y,
                "product_id": unique_id,
                "product_name": f"Product {unique_id}",
            }
        )
        for unique_id, y in units.items()
    )
    forecasts = make_forecasts(gold)
    for unique_id, y_hat in (forecast or {}).items():
        forecasts.loc[forecasts["unique_id"] == unique_id, "y_hat"] = y_hat
    return build_sales_overall(gold, forecasts)


def test_series_by_volume_ranks_by_actual_sales_ties_by_id():
    # B's huge forecast must not count: the ranking is by what was sold.
    overall = constant_overall({"C": 5.0, "B": 1.0, "A": 5.0, "D": 9.0}, forecast={"B": 1e6})
    assert plots.series_by_volume(overall) == ["D", "A", "C", "B"]


def test_write_series_plots_caps_at_the_largest_series(tmp_path):
    overall = constant_overall({"C": 5.0, "B": 1.0, "A": 5.0, "D": 9.0}, forecast={"B": 1e6})
    result = plots.write_series_plots(overall, tmp_path, max_series=2)
    assert [p.name for p in result.written] == ["A.png", "D.png"]
    assert result.unplotted == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.png", "D.png"]


def test_write_series_plots_removes_stale_pngs_only(overall, tmp_path):
    plots.write_series_plots(overall, tmp_path, max_series=500)
    (tmp_path / "series_gone.png").write_bytes(PNG)
    (tmp_path / "notes.txt").write_text("kept")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "P002.png").write_bytes(PNG)
    (tmp_path / "folder.png").mkdir()

    result = plots.write_series_plots(overall, tmp_path, max_series=1)

    top = plots.series_by_volume(overall)[0]
    assert [p.name for p in result.written] == [f"{plots.slugify(top)}.png"]
    assert result.unplotted == 3
    assert sorted(p.name for p in result.removed) == sorted(
        {"P001.png", "P001_C003.png", "P002.png", "P004.png", "series_gone.png"} - {result.written[0].name}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [result.written[0].name, "notes.txt", "nested", "folder.png"]
    )
    assert (tmp_path / "nested" / "P002.png").read_bytes() == PNG


def test_write_series_plots_zero_writes_none(overall, tmp_path):
    plots.write_series_plots(overall, tmp_path, max_series=500)
    result = plots.write_series_plots(overall, tmp_path, max_series=0)
    assert result.written == [] and result.unplotted == 4 and len(result.removed) == 4
    assert list(tmp_path.glob("*.png")) == []


def test_write_series_plots_rejects_a_negative_cap(overall, tmp_path):
    with pytest.raises(ValueError, match="max_series"):
        plots.write_series_plots(overall, tmp_path, max_series=-1)


def test_plot_settings_default_and_validation():
    assert Settings().plots.max_series == 500
    assert Settings.model_validate({"plots": {"max_series": 0}}).plots.max_series == 0
    with pytest.raises(ValidationError, match="max_series"):
        Settings.model_validate({"plots": {"max_series": -1}})
    with pytest.raises(ValidationError, match="max_plots"):
        Settings.model_validate({"plots": {"max_plots": 10}})


def test_plot_settings_do_not_change_the_model_fingerprint():
    assert Settings(plots=PlotSettings(max_series=3)).fingerprint() == Settings().fingerprint()


def test_slugify():
    assert plots.slugify("P001/C003") == "P001_C003"
    assert plots.slugify("a b:c*d") == "a_b_c_d"
    assert plots.slugify("..") == "series"
