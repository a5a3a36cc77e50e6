"""Rendering shared by every picture: off screen (Agg), at a small resolution so a picture stays well under
150 KB, each figure closed once rendered so a long-running process does not grow; PNG bytes for files and for
Dagster metadata (``png_markdown``)."""

from __future__ import annotations

import base64
import io
import re
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

DPI = 80
ACTUAL_COLOR = "#1f4e79"
FORECAST_COLOR = "#d9534f"


def png(fig: plt.Figure, metadata: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # A series of a few periods leaves AutoDateLocator without a preferred interval; its fallback is fine.
        warnings.filterwarnings("ignore", message="AutoDateLocator was unable", category=UserWarning)
        fig.savefig(buffer, format="png", dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def render(fig: plt.Figure, tight: bool = True) -> bytes:
    try:
        if tight:
            fig.tight_layout()
        return png(fig)
    finally:
        plt.close(fig)


def no_data(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"No {what} to plot", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def date_axis(ax: plt.Axes) -> None:
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown that embeds the PNG inline, the form Dagster's metadata viewer renders."""
    alt = " ".join(re.sub(r"[\[\]]", " ", alt).split())
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
