"""The PNG of an answer: series with their forecast and intervals, bars of totals, lines over periods."""

from __future__ import annotations

import math

import pandas as pd

from mlops_assets.reporting.render import ACTUAL_COLOR, FORECAST_COLOR, date_axis, plt, render

MAX_BARS = 30
SIZE = (8.0, 3.6)


def series_chart(rows: pd.DataFrame, label: str = "label") -> bytes:
    """One panel per series (``label``): actuals, forecast, and the widest then narrower interval bands."""
    names = list(dict.fromkeys(rows[label]))
    columns = 1 if len(names) < 4 else 2
    lines = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(SIZE[0] * (1 if columns == 1 else 1.3), 2.6 * lines + 0.6),
                             squeeze=False)
    levels = sorted({int(c.split("_")[1]) for c in rows.columns if c.startswith("hi_")}, reverse=True)
    for ax, name in zip(axes.flat, names, strict=False):
        part = rows[rows[label] == name].sort_values("ds")
        actual, forecast = part[part["origin"] == "Train"], part[part["origin"] == "Predict"]
        ax.plot(actual["ds"], actual["sales"], color=ACTUAL_COLOR, linewidth=1.2, label="actual")
        for i, level in enumerate(levels):
            if f"lo_{level}" in forecast:
                ax.fill_between(forecast["ds"], forecast[f"lo_{level}"].astype(float),
                                forecast[f"hi_{level}"].astype(float), color=FORECAST_COLOR, alpha=0.12 + 0.1 * i,
                                linewidth=0, label=f"{level}% interval")
        ax.plot(forecast["ds"], forecast["sales"], color=FORECAST_COLOR, linewidth=1.5, label="forecast")
        ax.set_title(str(name), fontsize=10)
        date_axis(ax)
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    axes.flat[0].legend(fontsize=7, loc="upper left")
    return render(fig)


def bar_chart(frame: pd.DataFrame, label: str, value: str, title: str) -> bytes:
    shown = frame.head(MAX_BARS)
    fig, ax = plt.subplots(figsize=(SIZE[0], max(2.4, 0.32 * len(shown) + 1.0)))
    ax.barh(shown[label].astype(str)[::-1], shown[value].astype(float)[::-1], color=ACTUAL_COLOR)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(value)
    ax.tick_params(axis="y", labelsize=8)
    # Margins from the longest label rather than tight_layout, which costs a third of the answer's time.
    longest = max(len(str(s)) for s in shown[label]) if len(shown) else 1
    fig.subplots_adjust(left=min(0.5, 0.04 + 0.0095 * longest), right=0.97, top=0.9,
                        bottom=min(0.3, 0.5 / fig.get_figheight()))
    return render(fig, tight=False)


def line_chart(frame: pd.DataFrame, x: str, value: str, hue: str | None, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    groups = frame.groupby(hue, sort=True) if hue else [(value, frame)]
    for name, part in groups:
        color = FORECAST_COLOR if str(name) == "Predict" else (ACTUAL_COLOR if str(name) == "Train" else None)
        ax.plot(part[x], part[value].astype(float), label=str(name), color=color, linewidth=1.3)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(value)
    if hue:
        ax.legend(fontsize=7)
    if pd.api.types.is_datetime64_any_dtype(frame[x]):
        date_axis(ax)
    return render(fig)


def fitting_chart(frame: pd.DataFrame, title: str) -> bytes | None:
    """A chart that fits a result of unknown shape (a language model's query): a date and a number make a
    line, a label and a number bars; anything else none."""
    if frame.empty:
        return None
    numbers = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]
    dates = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    labels = [c for c in frame.columns if c not in numbers and c not in dates]
    if not numbers:
        return None
    if dates:
        hue = labels[0] if labels and frame[labels[0]].nunique() <= 8 else None
        return line_chart(frame.sort_values(dates[0]), dates[0], numbers[0], hue, title)
    if labels and len(frame) <= MAX_BARS:
        return bar_chart(frame, labels[0], numbers[0], title)
    return None
