"""The pictures the run metadata shows: total sales per period, the SMAPE race of the models, champion wins."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from mlops_assets.reporting.render import ACTUAL_COLOR, date_axis, no_data, render

SALES_SIZE = (8.0, 3.6)


def plot_total_sales(gold: pd.DataFrame) -> bytes:
    """Units sold per period over all series."""
    total = gold.groupby(pd.to_datetime(gold["ds"]))["y"].sum(min_count=1)
    return plot_sales_totals(total, gold["unique_id"].nunique())


def plot_sales_totals(total: pd.Series, n_series: int) -> bytes:
    """Units sold per period (``total``, indexed by period) over ``n_series`` series: summed where they are
    stored (SQL), so that the plot never needs the whole table."""
    total = total.set_axis(pd.to_datetime(total.index)).sort_index()
    fig, ax = plt.subplots(figsize=SALES_SIZE)
    if total.empty:
        no_data(ax, "sales")
    else:
        ax.plot(total.index, total.values, color=ACTUAL_COLOR, linewidth=1.4)
        ax.set_title(f"Total units per period ({n_series} series)", fontsize=11)
        ax.set_ylabel("units")
        ax.grid(alpha=0.3)
        date_axis(ax)
    return render(fig)


def plot_smape_distribution(evaluation: pd.DataFrame) -> bytes:
    """Box plot of the per-series SMAPE of each model, best median first."""
    scores = evaluation.dropna(subset=["smape"])
    by_model = {str(model): group["smape"].to_numpy() for model, group in scores.groupby("model")}
    order = sorted(by_model, key=lambda model: (float(pd.Series(by_model[model]).median()), model))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(order) + 2), 4.0))
    if not order:
        no_data(ax, "SMAPE")
    else:
        ax.boxplot([by_model[m] for m in order], tick_labels=order, showfliers=True, flierprops={"ms": 3})
        ax.set_ylim(0, 200)
        ax.set_ylabel("SMAPE per series (M4 scale 0-200, lower is better)")
        ax.set_title(f"Backtest SMAPE by model ({scores['unique_id'].nunique()} series)", fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30 if len(order) > 4 else 0, labelsize=8)
    return render(fig)


def plot_win_share(win_share: dict[str, float]) -> bytes:
    """Bar chart of how often each model is the champion (shares in [0, 1] shown as percent)."""
    items = sorted(win_share.items(), key=lambda item: (-item[1], item[0]))
    as_share = all(0 <= value <= 1 for _, value in items)
    values = [100 * value if as_share else value for _, value in items]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(items) + 2), 3.6))
    if not items:
        no_data(ax, "champions")
    else:
        bars = ax.bar([model for model, _ in items], values, color=ACTUAL_COLOR)
        ax.bar_label(bars, labels=[f"{v:.0f}%" if as_share else f"{v:g}" for v in values], fontsize=8)
        ax.set_ylabel("share of series won (%)" if as_share else "series won")
        ax.set_title("Champion model wins", fontsize=11)
        ax.margins(y=0.15)
        ax.tick_params(axis="x", labelrotation=30 if len(items) > 4 else 0, labelsize=8)
    return render(fig)
