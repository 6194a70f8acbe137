"""Head attribution: the causal indirect effect of every attention head."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from core.models import LoadedModel, ModelSpec
from dashboard import circuits, compute, figures, running, sidebar, state, widgets


@running.fragment
def attention_picker(spec: ModelSpec, lm: LoadedModel, prompt: str, choices: list[str]) -> None:
    """The attention pattern of one head on ``prompt``: picking another head reruns this alone."""
    st.subheader("Attention of a head")
    pick = st.selectbox("Head", choices)
    if pick:
        l, h = widgets.heads_from_labels([pick])[0]
        att = running.run("Computing attention", lambda _progress: compute.attention(spec, prompt, l, lm))
        if att is not None:
            circuits.show_attention(att[0], att[1], head=h)


st.title("Head attribution")
widgets.explain(
    "**What am I looking at?** Each cell is one attention head (layer x head). We take prompts whose "
    "demonstration labels are *shuffled* (so the task is not shown), replace that one head's output at "
    "the last token with its average over clean in-context prompts, and measure how much the probability "
    "of the correct answer rises: the head's *causal indirect effect*. Bright red heads carry the task; "
    f"summing their average outputs gives a *function vector*. Method of {widgets.PAPERS['fv']}, section 2.2. "
    "Computed with a reused key/value cache, so all heads take seconds, not minutes."
)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    state.bound(
        st,
        "radio",
        "Metric",
        ["prob", "logprob"],
        key="metric",
        horizontal=True,
        help="Effect on the probability (paper) or the log-probability of the answer",
    )
    metric = state.get("metric")
    wb = running.run(
        "Reading clean activations", lambda _progress: compute.workbench(ctx.spec, task, settings, lm, _progress)
    )
    at = wb and running.run(
        f"Patching all {lm.arch.n_layers * lm.arch.n_heads} heads",
        lambda _progress: compute.attribution(ctx.spec, task, settings, metric, lm, _progress),
    )
    if at:
        n_heads_total = lm.arch.n_layers * lm.arch.n_heads
        st.caption(
            f"{len(wb.prompts)} corrupted prompts, {settings.n_shots} shots, in-context accuracy on the clean prompts "
            f"{wb.stats.icl_accuracy:.0%}; computed in {at.seconds:.1f} s."
        )
        mode = state.bound(st, "radio", "Choose heads", ["Top-k", "By hand"], key="head_mode", horizontal=True)
        labels_all = [f"{l}.{h}" for l in range(lm.arch.n_layers) for h in range(lm.arch.n_heads)]
        if mode == "Top-k":
            state.bound(st, "slider", "k (top heads)", 1, min(50, n_heads_total), key="top_k")
            selected = at.top_heads(state.get("top_k"))
        else:
            current = [x for x in state.get("manual_heads") if x in labels_all]
            state.set("manual_heads", current)
            state.bound(
                st, "multiselect", "Heads (layer.head); clicking a cell adds it", labels_all, key="manual_heads"
            )
            selected = widgets.heads_from_labels(state.get("manual_heads"))
        fig = figures.head_heatmap(at.cie.tolist(), selected, f"Causal indirect effect ({metric}) - {task.name}")
        event = st.plotly_chart(fig, key="heatmap", on_select="rerun", selection_mode="points")
        points = (
            (event or {}).get("selection", {}).get("points", [])
            if isinstance(event, dict) or hasattr(event, "get")
            else []
        )
        if points and mode == "By hand":
            clicked = [f"{int(p['y'])}.{int(p['x'])}" for p in points if "x" in p and "y" in p]
            new = list(dict.fromkeys(state.get("manual_heads") + clicked))
            if new != state.get("manual_heads"):
                state.set("manual_heads", new)
                st.rerun()
        top = at.top_heads(10)
        left, right = st.columns([1, 2])
        with left:
            st.subheader("Top heads")
            st.dataframe(
                pd.DataFrame([{"head": f"{l}.{h}", "effect": float(at.cie[l, h])} for l, h in top]),
                width="stretch",
                key="top_heads_table",
            )
            buf = io.StringIO()
            pd.DataFrame(at.cie.numpy(), columns=[f"head_{h}" for h in range(lm.arch.n_heads)]).rename_axis(
                "layer"
            ).to_csv(buf)
            st.download_button(
                "Download the grid (CSV)", buf.getvalue(), file_name=f"cie_{task.name}.csv", mime="text/csv"
            )
            st.write("Selected:", ", ".join(f"{l}.{h}" for l, h in selected) or "none")
        with right:
            attention_picker(ctx.spec, lm, wb.prompts.clean[0], [f"{l}.{h}" for l, h in (selected or top)])
