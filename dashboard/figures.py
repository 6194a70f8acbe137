"""Plot builders: pure functions from numbers to plotly figures. Pages only show them.

Figures that the Task report's HTML file also draws are built once, as plain specs, in
:mod:`core.figure_specs`; the builders here wrap them (and add the page-only figures)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from core import figure_specs as specs


def layer_curves(
    series: dict[str, Sequence[float]],
    title: str,
    y_title: str = "top-1 accuracy",
    baselines: dict[str, float] | None = None,
    marked: int | None = None,
    intervals: dict[str, Sequence[tuple[float, float]]] | None = None,
    counts: dict[str, int] | None = None,
) -> go.Figure:
    """:func:`core.figure_specs.layer_curves` as a figure (lines over layers, bands, baselines)."""
    return go.Figure(specs.layer_curves(series, title, baselines, marked, y_title, intervals, counts))


def hvector_sweep(sweep: Any, title: str, marked: int | None = None) -> go.Figure:
    """A :class:`core.results.HVectorSweep`: zero-shot accuracy with each layer's h-vector, its
    95% band, and the zero-shot and in-context baselines."""
    name = "zero-shot + h-vector"
    return layer_curves(
        {name: sweep.by_layer},
        title,
        baselines={"zero-shot": sweep.zero_shot_baseline, "in-context": sweep.icl_accuracy},
        marked=marked,
        intervals={name: [a.interval for a in sweep.curve]},
        counts={name: sweep.n_eval},
    )


def head_heatmap(
    cie: Sequence[Sequence[float]], selected: Sequence[tuple[int, int]] = (), title: str = "", z_name: str = "effect"
) -> go.Figure:
    """:func:`core.figure_specs.head_heatmap` as a figure (layer x head grid, red = positive)."""
    return go.Figure(specs.head_heatmap(cie, selected, title, z_name))


def heads_scatter(
    x: Sequence[Sequence[float]], y: Sequence[Sequence[float]], title: str, x_title: str, y_title: str
) -> go.Figure:
    """One point per head of two ``[n_layers][n_heads]`` scores, coloured by layer; hover names the head."""
    xs = [v for row in x for v in row]
    ys = [v for row in y for v in row]
    labels = [f"{l}.{h}" for l, row in enumerate(x) for h in range(len(row))]
    layers = [l for l, row in enumerate(x) for _ in row]
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            text=labels,
            marker=dict(color=layers, colorscale="Viridis", colorbar=dict(title="layer"), size=8),
            hovertemplate="head %{text}<br>" + x_title + " %{x:.3f}<br>" + y_title + " %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=420, margin=dict(t=50, b=40))
    return fig


def ablation_curves(
    series: dict[str, Sequence[float]],
    intervals: dict[str, Sequence[tuple[float, float]]],
    n_prompts: int,
    title: str,
) -> go.Figure:
    """Accuracy against the number of heads ablated (0, 1, ...), one line per order of heads,
    with its 95% interval as error bars."""
    fig = go.Figure()
    for name, ys in series.items():
        band = intervals[name]
        fig.add_trace(
            go.Scatter(
                x=list(range(len(ys))),
                y=list(ys),
                mode="lines+markers",
                name=name,
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[hi - v for v, (_, hi) in zip(ys, band)],
                    arrayminus=[v - lo for v, (lo, _) in zip(ys, band)],
                ),
                hovertemplate="%{x} heads ablated: %{y:.0%} of " + str(n_prompts) + "<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="heads mean-ablated at the last token",
        yaxis_title="in-context top-1 accuracy",
        yaxis_range=[-0.02, 1.02],
        xaxis=dict(dtick=1),
        height=380,
        margin=dict(t=50, b=40),
    )
    return fig


def bars(labels: Sequence[str], values: Sequence[float], title: str, x_title: str = "probability") -> go.Figure:
    """:func:`core.figure_specs.bars` as a figure (horizontal, first label on top)."""
    return go.Figure(specs.bars(labels, values, title, x_title))


def decoded_tokens(decoded: Sequence[tuple[str, float]], title: str) -> go.Figure:
    """The tokens a vector promotes (``core.fv.decode_vector``: (token, logit)), largest on top."""
    return bars([t for t, _ in decoded], [v for _, v in decoded], title, "logit")


def curve(values: Sequence[float], baseline: float | None, title: str, x_title: str) -> go.Figure:
    """:func:`core.figure_specs.count_curve` as a figure (accuracy against 1, 2, ... heads)."""
    return go.Figure(specs.count_curve(values, baseline, title, x_title))


def matrix(
    values: Sequence[Sequence[float]], labels: Sequence[str], title: str, zmin: float = -1, zmax: float = 1
) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(labels),
            y=list(labels),
            zmin=zmin,
            zmax=zmax,
            colorscale="RdBu",
            zmid=0,
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
            texttemplate="%{z:.2f}",
        )
    )
    fig.update_layout(title=title, height=max(320, 60 * len(labels) + 120))
    return fig


def grid(
    values: Sequence[Sequence[float]],
    x: Sequence,
    y: Sequence,
    title: str,
    x_title: str,
    y_title: str,
    hover: Sequence[Sequence[str]] | None = None,
) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[str(v) for v in x],
            y=[str(v) for v in y],
            colorscale="Viridis",
            text=hover,
            hovertemplate="%{y} / %{x}: %{z:.3f}<br>%{text}<extra></extra>" if hover else None,
            texttemplate="%{z:.3g}",
        )
    )
    # category axes: numeric-looking labels ("1", "4", "8") would otherwise become a numeric axis
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title=y_title, height=380, xaxis_type="category", yaxis_type="category"
    )
    return fig


# ---- steering ------------------------------------------------------------------------------

_STRIP_HEAD, _STRIP_TAIL = 6, 5  # prompt tokens shown before and after an ellipsis


def _shown_token(text: str) -> str:
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "⇥") or "∅"


def steer_positions(prompt_tokens: Sequence[str], mode: str, n_pos: int = 1, n_new: int = 3) -> go.Figure:
    """Which positions receive the vector: a strip of the prompt's tokens and a few new tokens.

    ``mode="last"``: the last prompt token (step 0), then every new token (one per step).
    ``mode="prompt"``: the prompt's first ``n_pos`` tokens, once, on step 0.
    Long prompts are shown as their first and last few tokens around an ellipsis.
    """
    n_prompt = len(prompt_tokens)
    if mode == "last":
        hit = [i == n_prompt - 1 for i in range(n_prompt)] + [True] * n_new
    else:
        hit = [i < n_pos for i in range(n_prompt)] + [False] * n_new
    labels = [_shown_token(t) for t in prompt_tokens] + [f"new {i + 1}" for i in range(n_new)]
    ticks = [f"p{i}" for i in range(n_prompt)] + [f"step {i + 1}" for i in range(n_new)]
    if n_prompt > _STRIP_HEAD + _STRIP_TAIL + 1:  # keep the first and last prompt tokens
        keep = list(range(_STRIP_HEAD)) + [-1] + list(range(n_prompt - _STRIP_TAIL, n_prompt + n_new))
        hidden = hit[_STRIP_HEAD : n_prompt - _STRIP_TAIL]
        labels = [labels[i] if i >= 0 else "…" for i in keep]
        ticks = [ticks[i] if i >= 0 else "…" for i in keep]
        hit = [hit[i] if i >= 0 else any(hidden) for i in keep]
    fig = go.Figure(
        go.Heatmap(
            z=[[1.0 if h else 0.0 for h in hit]],
            x=list(range(len(labels))),
            text=[labels],
            texttemplate="%{text}",
            textfont=dict(size=11),
            colorscale=[[0.0, "#e5e7eb"], [1.0, "#f59e0b"]],
            zmin=0,
            zmax=1,
            showscale=False,
            xgap=3,
            hovertemplate="%{text}<extra></extra>",
        )
    )
    fig.add_vline(x=len(labels) - n_new - 0.5, line_dash="dot")  # prompt | new tokens
    fig.update_layout(
        height=110,
        margin=dict(t=6, b=30, l=6, r=6),
        yaxis=dict(visible=False),
        xaxis=dict(tickmode="array", tickvals=list(range(len(ticks))), ticktext=ticks, tickfont=dict(size=9)),
    )
    return fig
