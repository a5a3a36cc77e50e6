"""Pictures of the series, actuals and forecasts, as PNG files beside serving.sales_overall (and the top
series for its metadata). Rendering: reporting/render.py; hundreds of series plots take seconds."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from mlops_assets.reporting.render import ACTUAL_COLOR, DPI, FORECAST_COLOR, date_axis, no_data, png, render

SERIES_SIZE = (8.0, 3.6)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A PNG carries the digest of what it shows, so a rerun on the same rows redraws nothing. Bump the version
# when the drawing itself changes.
DIGEST_KEY = "mlops_assets_digest"
DRAWING_VERSION = "1"


def _title(rows: pd.DataFrame, unique_id: str) -> str:
    parts = [
        str(rows[column].dropna().iloc[-1])
        for column in ("product_name", "customer_name")
        if column in rows.columns and rows[column].notna().any()
    ]
    label = f"{', '.join(parts)} ({unique_id})" if parts and parts != [unique_id] else unique_id
    predict = rows[rows["origin"] == "Predict"]
    if predict.empty:
        return f"{label}\nno forecast"
    models = sorted(predict["model"].dropna().astype(str).unique()) or ["unknown model"]
    versions = sorted(predict["model_version"].dropna().astype(str).unique())
    version = f", version {', '.join(versions)}" if versions else ""
    return f"{label}\n{', '.join(models)}{version}"


def _draw_series(ax: plt.Axes, rows: pd.DataFrame, unique_id: str, small: bool = False) -> None:
    rows = rows.sort_values("ds")
    train = rows[rows["origin"] == "Train"]
    predict = rows[rows["origin"] == "Predict"]
    ax.plot(train["ds"], train["sales"], color=ACTUAL_COLOR, linewidth=1.2, label="actual")
    for level, alpha in ((95, 0.15), (80, 0.3)):
        lo, hi = f"lo_{level}", f"hi_{level}"
        if lo in predict.columns and predict[lo].notna().any():
            ax.fill_between(
                predict["ds"],
                predict[lo],
                predict[hi],
                color=FORECAST_COLOR,
                alpha=alpha,
                linewidth=0,
                label=f"{level}% interval",
            )
    if not predict.empty:
        ax.plot(predict["ds"], predict["sales"], color=FORECAST_COLOR, linewidth=1.4, label="forecast")
        ax.axvline(predict["ds"].min(), color="grey", linestyle=":", linewidth=0.8)
    # Headroom above the highest value keeps the legend off the data; units start at zero.
    values = pd.concat([train["sales"], predict["sales"], predict.get("hi_95", predict["sales"])])
    low, high = values.min(), values.max()
    if pd.notna(high) and high > low:
        ax.set_ylim(min(0.0, low), high + 0.2 * (high - min(0.0, low)))
    ax.set_title(_title(rows, unique_id), fontsize=9 if small else 11)
    ax.set_ylabel("units")
    ax.grid(alpha=0.3)
    date_axis(ax)
    ax.legend(loc="upper left", fontsize=7 if small else 8, frameon=False, ncol=4)


def _series_layout(fig: plt.Figure) -> None:
    # Fixed margins: tight_layout measures every label and doubles the cost of a series plot.
    fig.subplots_adjust(left=0.08, right=0.98, top=0.84, bottom=0.1)


def _series_rows(overall: pd.DataFrame, unique_id: str) -> pd.DataFrame:
    rows = overall[overall["unique_id"].astype(str) == str(unique_id)]
    if rows.empty:
        known = sorted(overall["unique_id"].astype(str).unique())
        raise ValueError(
            f"serving.sales_overall has no series {unique_id!r} ({len(known)} series, e.g. {known[:5]}); "
            "find the id of a product with overall.find_series(overall, name)."
        )
    return rows


def plot_series(overall: pd.DataFrame, unique_id: str, path: Path | None = None) -> bytes:
    """Actuals, forecast and its 80%/95% intervals of one series; also written to ``path`` when given."""
    fig, ax = plt.subplots(figsize=SERIES_SIZE)
    _draw_series(ax, _series_rows(overall, unique_id), unique_id)
    _series_layout(fig)
    png = render(fig, tight=False)
    if path is not None:
        _write_atomic(Path(path), png)
    return png


def series_by_volume(overall: pd.DataFrame) -> list[str]:
    """unique_ids of the series that have actuals, most units sold (origin 'Train') first, ties by id."""
    train = overall[overall["origin"] == "Train"]
    return rank_by_volume(train.groupby(train["unique_id"].astype(str))["sales"].sum())


def rank_by_volume(volume: pd.Series) -> list[str]:
    """The unique_ids of ``volume`` (units sold, indexed by unique_id), most first, ties by id."""
    return [str(unique_id) for unique_id, _ in sorted(volume.items(), key=lambda item: (-item[1], str(item[0])))]


def plot_top_series(overall: pd.DataFrame, n: int = 4) -> bytes:
    """A grid of the n series that sold the most (sum of actuals), biggest first."""
    top = series_by_volume(overall)[: max(n, 0)]
    cols = 2 if len(top) > 1 else 1
    rows = max(math.ceil(len(top) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 3.2 * rows), squeeze=False)
    for ax, unique_id in zip(axes.flat, top, strict=False):
        _draw_series(ax, _series_rows(overall, unique_id), unique_id, small=True)
    for ax in list(axes.flat)[len(top) :]:
        ax.set_axis_off()
    if not top:
        no_data(axes[0, 0], "actuals")
    return render(fig)


def slugify(unique_id: str) -> str:
    """A file name stem that is safe on every file system: P001/C003 -> P001_C003."""
    slug = _UNSAFE.sub("_", str(unique_id)).strip("._")[:100]
    return slug or "series"


def _file_names(unique_ids: list[str]) -> dict[str, str]:
    slugs = {uid: slugify(uid) for uid in unique_ids}
    counts = pd.Series(list(slugs.values())).value_counts()
    # Two ids can share a slug (P1/C2 and P1_C2): a short hash of the id keeps both files apart.
    return {
        uid: f"{slug}-{hashlib.sha1(uid.encode()).hexdigest()[:8]}.png" if counts[slug] > 1 else f"{slug}.png"
        for uid, slug in slugs.items()
    }


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class SeriesPlots:
    """What write_series_plots left in its folder."""

    written: list[Path]  # one PNG per plotted series, in unique_id order
    drawn: list[Path]  # the PNGs of ``written`` drawn this time; the others already showed the same rows
    unplotted: int  # series of the table without a PNG
    removed: list[Path]  # PNGs of series no longer plotted


def write_series_plots(overall: pd.DataFrame, folder: Path, max_series: int) -> SeriesPlots:
    """One PNG in ``folder`` for each of the ``max_series`` series that sold the most, in unique_id order.

    Readers never see a half-written file. Every other ``*.png`` directly in ``folder`` is removed, so
    the folder shows the current table and no stale forecast; other files are left alone.
    """
    with SeriesPlotWriter(folder, series_by_volume(overall), overall["unique_id"].astype(str), max_series) as writer:
        writer.draw(overall)
        return writer.finish()


class SeriesPlotWriter:
    """write_series_plots for a caller that holds the table one bucket of whole series at a time.

    ``ranked`` (series_by_volume's order) and ``unique_ids`` (every series of the table) decide which series
    get a PNG and their file names before any row is seen; ``draw`` each bucket, then ``finish``.
    """

    def __init__(self, folder: Path, ranked: list[str], unique_ids: Iterable[str], max_series: int) -> None:
        if max_series < 0:
            raise ValueError(f"max_series must be 0 or more; got {max_series}")
        self.folder = Path(folder)
        # Series without actuals rank last: they are still series of the table.
        ranked = [*ranked, *sorted(set(map(str, unique_ids)) - set(ranked))]
        self.plotted = sorted(ranked[:max_series])
        self._wanted = set(self.plotted)
        # Names come from every series of the table, so a series keeps its file name whatever the cap.
        self._names = _file_names(sorted(ranked))
        self._unplotted = len(ranked) - len(self.plotted)
        self._drawn: list[Path] = []
        self.folder.mkdir(parents=True, exist_ok=True)
        # One figure redrawn per series: creating a figure costs more than drawing a small plot.
        self._fig, self._ax = plt.subplots(figsize=SERIES_SIZE)

    def __enter__(self) -> SeriesPlotWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        plt.close(self._fig)

    def draw(self, rows: pd.DataFrame) -> None:
        """Draw the plotted series among ``rows`` (whole series of sales_overall) whose PNG shows other rows."""
        unique_ids = rows["unique_id"].astype(str)
        rows = rows[unique_ids.isin(self._wanted)]
        for unique_id, group in rows.groupby(unique_ids[rows.index], sort=True):
            path = self.folder / self._names[unique_id]
            digest = series_digest(group)
            if _stored_digest(path) == digest:
                continue
            self._ax.clear()
            _draw_series(self._ax, group, unique_id)
            _series_layout(self._fig)
            _write_atomic(path, png(self._fig, {DIGEST_KEY: digest} if digest else None))
            self._drawn.append(path)

    def finish(self) -> SeriesPlots:
        """Remove the PNGs of series no longer plotted; what the folder now holds."""
        written = [self.folder / self._names[unique_id] for unique_id in self.plotted]
        keep = {path.name for path in written}
        removed = []
        for path in sorted(self.folder.glob("*.png")):
            if path.name not in keep and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
        return SeriesPlots(written=written, drawn=list(self._drawn), unplotted=self._unplotted, removed=removed)


def series_digest(rows: pd.DataFrame) -> str:
    """A hash of the rows a series plot shows (order-independent), and of the way it is drawn."""
    columns = sorted(rows.columns)
    ordered = rows[columns].sort_values(["origin", "ds"] if {"origin", "ds"} <= set(columns) else columns)
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()
    return hashlib.sha256(f"{DRAWING_VERSION}|{DPI}|{SERIES_SIZE}|{columns}".encode() + hashed).hexdigest()


def _stored_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            return image.text.get(DIGEST_KEY)
    except (OSError, SyntaxError):  # not a readable PNG: draw it again
        return None
