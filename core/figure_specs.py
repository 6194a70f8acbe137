"""Figures as plain JSON: plotly.js figure specs (``{"data": [...], "layout": {...}}``).

Plotly's JavaScript library draws a figure from a plain dictionary, and plotly's Python
``go.Figure(spec)`` (or ``st.plotly_chart(spec)``) accepts the same dictionary. Building the
Task report's figures here, as numbers in and a dict out, lets core write a self-contained
HTML page (:mod:`core.report_html`) without importing plotly, and lets the Task report page
show exactly the same figures: each figure is written once.

Colour scales are given as explicit lists, never by name: plotly.js and plotly.py give
different scales to the same name ("RdBu" is blue-to-red in one and red-to-blue in the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Spec = dict[str, Any]

# diverging, blue (negative) - white (0) - red (positive effect)
DIVERGING = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
PALETTE = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3"]
DASHES = ["dash", "dot", "dashdot"]


def head_heatmap(
    cie: Sequence[Sequence[float]], selected: Sequence[tuple[int, int]] = (), title: str = "", z_name: str = "effect"
) -> Spec:
    """Layer x head grid (``cie [n_layers][n_heads]``: effects, or any per-head score named
    ``z_name``), red positive, ``selected`` heads outlined."""
    n_layers = len(cie)
    n_heads = len(cie[0]) if n_layers else 0
    peak = max((abs(float(v)) for row in cie for v in row if v == v), default=1.0) or 1.0  # v == v: not NaN
    data: list[dict] = [
        {
            "type": "heatmap",
            "z": [[float(v) for v in row] for row in cie],
            "x": list(range(n_heads)),
            "y": list(range(n_layers)),
            "colorscale": DIVERGING,
            "zmin": -peak,
            "zmax": peak,
            "hovertemplate": "layer %{y}, head %{x}<br>" + z_name + " %{z:.4f}<extra></extra>",
            "colorbar": {"title": {"text": z_name}},
        }
    ]
    if selected:
        data.append(
            {
                "type": "scatter",
                "x": [h for _, h in selected],
                "y": [l for l, _ in selected],
                "mode": "markers",
                "marker": {"symbol": "square-open", "size": 14, "color": "black", "line": {"width": 2}},
                "name": "selected",
                "hoverinfo": "skip",
            }
        )
    return {
        "data": data,
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": "head"}, "dtick": 1},
            "yaxis": {"title": {"text": "layer"}},
            "height": max(360, 16 * n_layers + 120),
            "showlegend": False,
            "margin": {"t": 50, "b": 40},
        },
    }


def _translucent(hex_color: str, alpha: float = 0.15) -> str:
    """``"#636efa"`` -> ``"rgba(99,110,250,0.15)"``."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layer_curves(
    series: dict[str, Sequence[float]],
    title: str,
    baselines: dict[str, float] | None = None,
    marked: int | None = None,
    y_title: str = "top-1 accuracy",
    intervals: dict[str, Sequence[tuple[float, float]]] | None = None,
    counts: dict[str, int] | None = None,
) -> Spec:
    """One line per named series over layers; dashed lines at ``baselines``; a vertical line at
    the ``marked`` layer. Accuracies (the default y axis) get a 0..1 axis. ``intervals[name]``: a
    ``(low, high)`` per point, drawn as a shaded band around that series and given in its hover
    text with ``counts[name]`` (the number of queries)."""
    data: list[dict] = []
    for i, (name, ys) in enumerate(series.items()):
        color, xs = PALETTE[i % len(PALETTE)], list(range(len(ys)))
        line: dict[str, Any] = {
            "type": "scatter",
            "x": xs,
            "y": [float(y) for y in ys],
            "mode": "lines+markers",
            "name": name,
            "line": {"color": color},
        }
        band = (intervals or {}).get(name)
        if band:
            edge = {"type": "scatter", "x": xs, "mode": "lines", "line": {"width": 0}, "showlegend": False}
            data.append({**edge, "y": [float(hi) for _, hi in band], "hoverinfo": "skip"})
            data.append(
                {
                    **edge,
                    "y": [float(lo) for lo, _ in band],
                    "fill": "tonexty",
                    "fillcolor": _translucent(color),
                    "hoverinfo": "skip",
                }
            )
            n = (counts or {}).get(name)
            of_n = f" of {n}" if n else ""
            line["customdata"] = [[float(lo), float(hi)] for lo, hi in band]
            line["hovertemplate"] = (
                f"layer %{{x}}: %{{y:.0%}}{of_n} (95% CI %{{customdata[0]:.0%}}-%{{customdata[1]:.0%}})"
                f"<extra>{name}</extra>"
            )
        data.append(line)
    shapes, notes = [], []
    for i, (name, y) in enumerate((baselines or {}).items()):
        dash = {"dash": DASHES[i % len(DASHES)], "color": "#444", "width": 1}
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y, "line": dash})
        notes.append(
            {"xref": "paper", "x": 0, "y": y, "text": f"{name}: {y:.2f}", "showarrow": False, "yanchor": "bottom"}
        )
    if marked is not None:
        shapes.append(
            {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": marked, "x1": marked, "line": {"dash": "dash"}}
        )
        notes.append({"yref": "paper", "y": 1, "x": marked, "text": f"layer {marked}", "showarrow": False})
    y_axis: dict[str, Any] = {"title": {"text": y_title}}
    if y_title == "top-1 accuracy":
        y_axis["range"] = [-0.02, 1.02]
    return {
        "data": data,
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": "layer"}},
            "yaxis": y_axis,
            "shapes": shapes,
            "annotations": notes,
            "height": 380,
            "margin": {"t": 50, "b": 40},
        },
    }


def count_curve(values: Sequence[float], baseline: float | None, title: str, x_title: str) -> Spec:
    """Accuracy against a count (1, 2, ... top heads), a dashed line at ``baseline``."""
    layout: dict[str, Any] = {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": "top-1 accuracy"}, "range": [-0.02, 1.02]},
        "height": 340,
        "margin": {"t": 50, "b": 40},
    }
    if baseline is not None:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": baseline,
                "y1": baseline,
                "line": {"dash": "dash"},
            }
        ]
        layout["annotations"] = [
            {"xref": "paper", "x": 0, "y": baseline, "text": f"zero-shot: {baseline:.2f}", "showarrow": False}
        ]
    trace = {
        "type": "scatter",
        "x": list(range(1, len(values) + 1)),
        "y": [float(v) for v in values],
        "mode": "lines+markers",
        "name": "with vector",
    }
    return {"data": [trace], "layout": layout}


def bars(labels: Sequence[str], values: Sequence[float], title: str, x_title: str) -> Spec:
    """Horizontal bars, the first label on top (labels shown with repr, so spaces show)."""
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": [float(v) for v in values][::-1],
                "y": [repr(l) for l in labels][::-1],
            }
        ],
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": x_title}},
            "height": 40 + 26 * len(labels) + 60,
            "margin": {"t": 50, "b": 40, "l": 10},
            "yaxis": {"automargin": True},
        },
    }
