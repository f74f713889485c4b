"""Plotly figures as plain dicts: data in, figure out. No Django, no database.

Pages hand a figure to the browser with ``json_script``; ``static/costapp/app.js`` draws every
``<script type="application/json" data-chart>`` it finds with the plotly.js we serve ourselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["IDLE_COLOUR", "SHARED_COLOUR", "bar", "daily_stacked", "pools", "trend"]

PALETTE = ("#2458a6", "#e07b39", "#3a9d5d", "#b5443b", "#7b5ea7", "#2a9d9d", "#c9a227",
           "#8c564b", "#d45087", "#5c7080")
IDLE_COLOUR = "#b8c2cc"
SHARED_COLOUR = "#7d8a97"
FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13, "color": "#1d2733"}

Figure = dict[str, Any]


def _layout(title: str, currency: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        "font": FONT,
        "margin": {"l": 70, "r": 20, "t": 50, "b": 50},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "yaxis": {"title": {"text": currency}, "tickformat": ",.0f", "gridcolor": "#eef1f4",
                  "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "x unified",
    }
    layout.update(extra)
    return layout


def _money_hover(currency: str) -> str:
    return "%{fullData.name}: %{y:,.2f} " + currency + "<extra></extra>"


def daily_stacked(
    days: Sequence[str],
    series: Mapping[str, Sequence[float]],
    currency: str,
    *,
    idle: Sequence[float] | None = None,
    shared: Sequence[float] | None = None,
    title: str = "Daily cost by team",
) -> Figure:
    """Stacked bars per day: one trace per series (largest first), then shared and idle in
    grey so they read as what they are. Series of all zeros are left out."""
    order = sorted(series, key=lambda k: -sum(series[k]))
    data: list[dict[str, Any]] = []
    for i, name in enumerate(order):
        values = list(series[name])
        if not any(values):
            continue
        data.append({"type": "bar", "name": name, "x": list(days), "y": values,
                     "marker": {"color": PALETTE[i % len(PALETTE)]},
                     "hovertemplate": _money_hover(currency)})
    for name, values, colour in (("Shared", shared, SHARED_COLOUR), ("Idle", idle, IDLE_COLOUR)):
        if values is not None and any(values):
            data.append({"type": "bar", "name": name, "x": list(days), "y": list(values),
                         "marker": {"color": colour, "pattern": {"shape": "/"}},
                         "hovertemplate": _money_hover(currency)})
    return {"data": data, "layout": _layout(title, currency, barmode="stack",
                                            xaxis={"type": "category"})}


def bar(labels: Sequence[str], values: Sequence[float], currency: str, *, title: str = "",
        limit: int = 25) -> Figure:
    """Horizontal bars of the ``limit`` largest values; the rest summed as ``other (n)``."""
    pairs = sorted(zip(labels, values, strict=True), key=lambda p: -p[1])
    if len(pairs) > limit:
        rest = pairs[limit - 1:]
        pairs = pairs[: limit - 1] + [(f"other ({len(rest)})", sum(v for _, v in rest))]
    pairs.reverse()
    colours = [IDLE_COLOUR if "__idle__" in lab else SHARED_COLOUR if "__shared__" in lab
               else PALETTE[0] for lab, _ in pairs]
    layout = _layout(title, currency, hovermode="closest",
                     margin={"l": 220, "r": 20, "t": 50, "b": 40},
                     height=max(320, 26 * len(pairs) + 90))
    layout["xaxis"] = {"title": {"text": currency}, "tickformat": ",.0f", "gridcolor": "#eef1f4"}
    layout["yaxis"] = {"automargin": True, "type": "category"}
    return {"data": [{"type": "bar", "orientation": "h", "y": [p[0] for p in pairs],
                      "x": [p[1] for p in pairs], "marker": {"color": colours},
                      "hovertemplate": "%{y}: %{x:,.2f} " + currency + "<extra></extra>"}],
            "layout": layout}


def trend(days: Sequence[str], values: Sequence[float], currency: str, *,
          title: str = "Daily cost") -> Figure:
    """A single daily line with markers."""
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": title, "x": list(days),
                      "y": list(values), "line": {"color": PALETTE[0]},
                      "hovertemplate": "%{x}: %{y:,.2f} " + currency + "<extra></extra>"}],
            "layout": _layout(title, currency, xaxis={"type": "category"}, showlegend=False)}


def pools(names: Sequence[str], used: Sequence[float], idle: Sequence[float], currency: str, *,
          title: str = "Cost by node pool and capacity type") -> Figure:
    """Stacked bars per pool: allocated cost and idle cost."""
    return {"data": [
        {"type": "bar", "name": "Allocated", "x": list(names), "y": list(used),
         "marker": {"color": PALETTE[0]}, "hovertemplate": _money_hover(currency)},
        {"type": "bar", "name": "Idle", "x": list(names), "y": list(idle),
         "marker": {"color": IDLE_COLOUR, "pattern": {"shape": "/"}},
         "hovertemplate": _money_hover(currency)},
    ], "layout": _layout(title, currency, barmode="stack", xaxis={"type": "category"})}
