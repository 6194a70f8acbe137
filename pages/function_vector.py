"""Function vector: build from heads, choose a layer, evaluate, decode, save."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.scripts.function_vector import fv_report_script
from dashboard import compute, figures, running, saving, sidebar, state, widgets

st.title("Function vector")
widgets.explain(
    "**What am I looking at?** A *function vector* is the sum of the average outputs of the heads you "
    "selected on *Head attribution* (top-k by default). Added to the residual stream at one layer, at the "
    "last token of a *zero-shot* prompt, it makes the model do the task without any examples. Below: "
    "accuracy when the vector is added at each layer (zero-shot and shuffled-label prompts), accuracy as "
    "more heads are used, examples with and without it, and the tokens it promotes. With *auto*, the layer "
    "is the best one on validation queries; all figures are on held-out test queries. "
    f"{widgets.PAPERS['fv']}."
)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    metric = state.get("metric")
    wb = running.run(
        "Reading clean activations", lambda _progress: compute.workbench(ctx.spec, task, settings, lm, _progress)
    )
    at = wb and running.run(
        "Patching every head", lambda _progress: compute.attribution(ctx.spec, task, settings, metric, lm, _progress)
    )
    if at:
        if state.get("head_mode") == "By hand":  # as chosen on Head attribution; none is an error below
            heads = widgets.heads_from_labels(state.get("manual_heads"))
        else:
            heads = at.top_heads(state.get("top_k"))
        st.write("Heads:", ", ".join(f"{l}.{h}" for l, h in heads) or "none")
        c1, c2, c3 = st.columns(3)
        layer_options = ["auto"] + list(range(lm.arch.n_layers))
        layer = state.bound(c1, "selectbox", "Layer", layer_options, key="fv_layer")
        coeff = state.bound(c2, "number_input", "Coefficient", *state.FV_COEFF, key="fv_coeff", step=0.5)
        n_eval = c3.slider("Test queries", 5, 100, 50)
        if not heads:
            st.error("No heads selected: pick at least one head on the Head attribution page.")
        else:
            rep = running.run(
                "Evaluating the function vector",
                lambda _progress: compute.fv_report(
                    ctx.spec, task, settings, metric, tuple(heads), layer, n_eval, float(coeff), lm, _progress
                ),
            )
            if rep:
                acc = rep.accuracy
                st.markdown("**First token** (top-1 next token is the answer's first token)")
                widgets.fv_metrics(st.columns(5), rep)
                st.markdown(
                    f"**Whole answer, generated** (greedy, up to {rep.generation_max_new_tokens} new tokens, "
                    "up to the line break, spaces and punctuation at the ends ignored, "
                    + ("case-sensitive: this task is about case)" if rep.generation_case_sensitive else "any case)")
                )
                g = st.columns(5)
                widgets.accuracy_metric(g[1], "Zero-shot", acc("zero_shot_generation_accuracy"))
                widgets.accuracy_metric(
                    g[2],
                    f"Zero-shot + FV (layer {rep.layer})",
                    acc("zero_shot_with_fv_generation_accuracy"),
                    acc("zero_shot_generation_accuracy"),
                )
                choice = (
                    f"Layer: {rep.layer_choice}, on {rep.n_valid} queries of the valid and train splits"
                    if rep.n_valid
                    else f"Layer: {rep.layer_choice}"
                )
                st.caption(
                    f"{choice}; the best layer on the test queries is {rep.best_test_layer} "
                    f"({rep.zero_shot_by_layer[rep.best_test_layer]:.0%}). {rep.n_eval} test queries. "
                    + (
                        "Small task: test queries overlap the build queries."
                        if rep.overlap
                        else "Test queries are disjoint from the build queries."
                    )
                )
                names = {"zero_shot_by_layer": "zero-shot + FV", "hvector_by_layer": "zero-shot + h-vector"}
                if rep.valid_by_layer:
                    names["valid_by_layer"] = "layer-choice queries, zero-shot + FV"
                curves = {key: rep.curve(key) for key in names}
                st.plotly_chart(
                    figures.layer_curves(
                        {names[k]: [a.value for a in c] for k, c in curves.items()},
                        "Accuracy with the vector added at each layer (shaded: 95% interval)",
                        baselines={"zero-shot": rep.zero_shot_baseline, "in-context": rep.icl_accuracy},
                        marked=rep.layer,
                        intervals={names["zero_shot_by_layer"]: [a.interval for a in curves["zero_shot_by_layer"]]},
                        counts={names[k]: c[0].n for k, c in curves.items()},
                    ),
                    key="fv_sweep",
                )
                left, right = st.columns(2)
                left.plotly_chart(
                    figures.curve(
                        rep.heads_curve,
                        rep.zero_shot_baseline,
                        f"Top heads used (layer {rep.layer})",
                        "number of top heads",
                    ),
                    key="fv_curve",
                )
                right.plotly_chart(
                    figures.decoded_tokens(rep.decoded_tokens, "Tokens the vector promotes"),
                    key="fv_decode",
                )
                st.subheader("Zero-shot examples")
                st.dataframe(pd.DataFrame(rep.examples), width="stretch", key="fv_examples")
                widgets.nnsight_code(  # the script behind these numbers
                    "the function vector, its evaluation and decoding",
                    lambda: fv_report_script(ctx.spec, task, settings, rep, n_eval),
                    f"function_vector_{task.name}.py",
                )
                st.subheader("Save")
                saving.save_form("save_fv", rep.vector, name_key="fv_name", default_name=f"fv_{task.name}")
