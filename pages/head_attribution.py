"""Head attribution: the causal indirect effect of every attention head."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from core.models import LoadedModel, ModelSpec
from core.scripts.attribution import attribution_script, mean_activations_script
from core.scripts.heads import heads_script
from core.stats import Accuracy
from dashboard import circuits, compute, figures, running, sidebar, state, widgets


@running.fragment
def attention_picker(spec: ModelSpec, lm: LoadedModel, prompt: str, choices: list[str]) -> None:
    """The attention pattern of one head on ``prompt``: picking another head reruns this alone."""
    st.subheader("Attention of a head")
    shown = state.bound(
        st,
        "toggle",
        "Show attention pattern",
        key="show_head_attention",
        help="One head's attention over the first clean prompt (circuitsvis: loads about 1.3 MB of "
        "JavaScript, so it is drawn only when asked for)",
    )
    pick = st.selectbox("Head", choices) if shown else None
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
    state.bound(
        st,
        "radio",
        "Corrupted prompts",
        ["shuffle", "random"],
        key="corruption",
        horizontal=True,
        format_func={"shuffle": "shuffled labels (paper)", "random": "random labels of the task (course)"}.get,
        help="How the demos' labels are broken: shuffled among the demos (Todd et al.), or each replaced by "
        "the output of another pair of the task. Used by every page's corrupted prompts.",
    )
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
            f"{len(wb.prompts)} corrupted prompts ({settings.corruption} labels), {settings.n_shots} shots, in-context accuracy on the clean prompts "
            f"{Accuracy.of(wb.stats.icl_accuracy, wb.stats.n_prompts)}; computed in {at.seconds:.1f} s."
        )
        mode = state.bound(st, "radio", "Choose heads", ["Top-k", "By hand"], key="head_mode", horizontal=True)
        labels_all = [f"{l}.{h}" for l in range(lm.arch.n_layers) for h in range(lm.arch.n_heads)]
        if mode == "Top-k":
            state.bound(st, "slider", "k (top heads)", 1, min(state.TOP_K_MAX, n_heads_total), key="top_k")
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
        # the scripts behind these numbers
        widgets.nnsight_code(
            "mean head activations",
            lambda: mean_activations_script(ctx.spec, task, settings),
            f"mean_heads_{task.name}.py",
        )
        widgets.nnsight_code(
            "the indirect-effect grid (one forward per head: slow, for reading)",
            lambda: attribution_script(ctx.spec, task, settings, metric),
            f"attribution_{task.name}.py",
        )

        st.subheader("Function-vector heads and induction heads")
        st.caption(
            "Induction heads (Olsson et al. 2022) attend, at a repeated token, to the token that followed its "
            "earlier occurrence; their score is that attention on random tokens repeated twice (1 = perfect). "
            "Are they the heads that carry the task? Below: both scores per head, and in-context accuracy as the "
            "top-n heads of each kind are mean-ablated at the last token (Yin & Steinhardt 2025)."
        )
        if state.bound(st, "toggle", "Compare with induction heads", key="show_induction"):
            cmp = running.run(
                "Comparing with induction heads",
                lambda _progress: compute.heads_comparison(
                    ctx.spec, task, settings, metric, settings.n_prompts, lm, _progress
                ),
            )
            if cmp:
                ind_grid = cmp.induction.scores.tolist()
                left, right = st.columns(2)
                with left:
                    st.plotly_chart(
                        figures.head_heatmap(ind_grid, cmp.induction.top_heads(10), "Induction score", "induction"),
                        key="induction_heatmap",
                    )
                with right:
                    st.plotly_chart(
                        figures.heads_scatter(
                            ind_grid,
                            at.cie.tolist(),
                            "Each head: induction score vs indirect effect",
                            "induction score",
                            f"indirect effect ({metric})",
                        ),
                        key="heads_scatter",
                    )
                curves = cmp.ablation
                names = {"fv_heads": "top function-vector heads", "induction_heads": "top induction heads"}
                accs = {names[k]: curves.accuracy(k) for k in curves.orders}
                st.plotly_chart(
                    figures.ablation_curves(
                        {k: [a.value for a in v] for k, v in accs.items()},
                        {k: [a.interval for a in v] for k, v in accs.items()},
                        curves.n_prompts,
                        f"In-context accuracy as heads are mean-ablated - {task.name}",
                    ),
                    key="ablation_curves",
                )
                overlap = cmp.top_overlap(10)
                st.caption(
                    f"Rank correlation of the two scores over all heads (Spearman): {cmp.rank_correlation:.2f}. "
                    f"In both top-10 lists: {', '.join(f'{l}.{h}' for l, h in overlap) or 'no head'}. "
                    f"Ablation on {curves.n_prompts} held-out in-context prompts; with all 10 of each ablated: "
                    + "; ".join(f"{k} {v[-1]}" for k, v in accs.items())
                    + f". Computed in {cmp.seconds + cmp.induction.seconds:.1f} s."
                )
                widgets.nnsight_code(
                    "the induction comparison (one forward per patched head and per ablated set: slow, for reading)",
                    lambda: heads_script(
                        ctx.spec,
                        task,
                        settings,
                        cmp.metric,
                        settings.n_prompts,  # the n_eval of the comparison above
                        len(curves.n) - 1,  # the heads ablated at most
                        cmp.induction.n_seqs,
                        cmp.induction.seq_len,
                        cmp.induction.seed,
                    ),
                    f"heads_{task.name}.py",
                )
