"""Plot builders: pure functions from numbers to plotly figures. Pages only show them."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.colors as px_colors
import plotly.graph_objects as go


def _translucent(hex_color: str, alpha: float = 0.15) -> str:
    """``"#636efa"`` -> ``"rgba(99,110,250,0.15)"``."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layer_curves(
    series: dict[str, Sequence[float]],
    title: str,
    y_title: str = "top-1 accuracy",
    baselines: dict[str, float] | None = None,
    marked: int | None = None,
    intervals: dict[str, Sequence[tuple[float, float]]] | None = None,
    counts: dict[str, int] | None = None,
) -> go.Figure:
    """One line per named series over layers; dashed horizontal lines for ``baselines`` and a
    vertical one at the ``marked`` layer. Accuracies (the default y axis) get a 0..1 axis.
    ``intervals[name]``: a ``(low, high)`` per point, drawn as a shaded band around that series
    and given in its hover text with ``counts[name]`` (the number of queries)."""
    fig = go.Figure()
    palette = px_colors.qualitative.Plotly
    for i, (name, ys) in enumerate(series.items()):
        color, xs = palette[i % len(palette)], list(range(len(ys)))
        band = (intervals or {}).get(name)
        hover, custom = None, None
        if band:
            lows, highs = [lo for lo, _ in band], [hi for _, hi in band]
            fig.add_trace(
                go.Scatter(x=xs, y=highs, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip")
            )
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=lows,
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor=_translucent(color),
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
            n = (counts or {}).get(name)
            custom = [[lo, hi] for lo, hi in band]
            of_n = f" of {n}" if n else ""
            hover = f"layer %{{x}}: %{{y:.0%}}{of_n} (95% CI %{{customdata[0]:.0%}}-%{{customdata[1]:.0%}})<extra>{name}</extra>"
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=list(ys),
                mode="lines+markers",
                name=name,
                line=dict(color=color),
                customdata=custom,
                hovertemplate=hover,
            )
        )
    dashes = ["dash", "dot", "dashdot"]
    for i, (name, y) in enumerate((baselines or {}).items()):
        fig.add_hline(
            y=y, line_dash=dashes[i % len(dashes)], annotation_text=f"{name}: {y:.2f}", annotation_position="top left"
        )
    if marked is not None:
        fig.add_vline(x=marked, line_dash="dash", annotation_text=f"layer {marked}")
    fig.update_layout(title=title, xaxis_title="layer", yaxis_title=y_title, height=380, margin=dict(t=50, b=40))
    if y_title == "top-1 accuracy":
        fig.update_layout(yaxis_range=[-0.02, 1.02])
    return fig


def head_heatmap(
    cie: Sequence[Sequence[float]], selected: Sequence[tuple[int, int]] = (), title: str = "", z_name: str = "effect"
) -> go.Figure:
    """A layer x head grid (red = positive); ``selected`` heads get a black square."""
    n_layers = len(cie)
    n_heads = len(cie[0]) if n_layers else 0
    fig = go.Figure(
        go.Heatmap(
            z=cie,
            x=list(range(n_heads)),
            y=list(range(n_layers)),
            colorscale="RdBu_r",  # positive effect = red
            zmid=0,
            hovertemplate="layer %{y}, head %{x}<br>" + z_name + " %{z:.4f}<extra></extra>",
            colorbar=dict(title=z_name),
        )
    )
    if selected:
        fig.add_trace(
            go.Scatter(
                x=[h for _, h in selected],
                y=[l for l, _ in selected],
                mode="markers",
                marker=dict(symbol="square-open", size=14, color="black", line=dict(width=2)),
                name="selected",
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="head",
        yaxis_title="layer",
        height=max(360, 16 * n_layers + 120),
        xaxis=dict(dtick=1),
        showlegend=False,
        margin=dict(t=50, b=40),
    )
    return fig


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
    fig = go.Figure(go.Bar(x=list(values)[::-1], y=[repr(l) for l in labels][::-1], orientation="h"))
    fig.update_layout(
        title=title, xaxis_title=x_title, height=40 + 26 * len(labels) + 60, margin=dict(t=50, b=40, l=10)
    )
    return fig


def curve(values: Sequence[float], baseline: float | None, title: str, x_title: str) -> go.Figure:
    fig = go.Figure(
        go.Scatter(x=list(range(1, len(values) + 1)), y=list(values), mode="lines+markers", name="with vector")
    )
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dash", annotation_text=f"zero-shot: {baseline:.2f}")
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title="top-1 accuracy", yaxis_range=[-0.02, 1.02], height=340
    )
    return fig


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
