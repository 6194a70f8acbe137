"""Model & prompts: tokens, next-token predictions, in-context accuracy, attention."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.predict import tokens
from core.scripts.predict import next_token_script, predict_script
from dashboard import compute, figures, running, sidebar, widgets

st.title("Model & prompts")
widgets.explain(
    "**What am I looking at?** A few *input → output* examples followed by a query make an "
    "*in-context* prompt. Below: how the model tokenizes it, which next tokens it predicts with "
    "and without the examples (*zero-shot*), and how often its top prediction is the right answer "
    "over a batch of queries. The answer is scored on its first token (with its leading space). "
    f"Background: {widgets.PAPERS['fv']}."
)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    pred = running.run("Predicting", lambda _progress: compute.prediction(ctx.spec, task, settings, lm, _progress))
    if pred is not None:
        i = st.number_input("Example prompt", 0, len(pred.prompts) - 1, 0, help="Which query of the batch to inspect")
        prompt = pred.prompts.clean[i]
        left, right = st.columns(2)
        with left:
            st.subheader("In-context prompt")
            st.code(prompt, language=None)
            st.caption(f"Target: `{pred.prompts.targets[i]!r}`")
        with right:
            st.subheader("Tokens")
            toks = tokens(lm, prompt)
            st.dataframe(
                pd.DataFrame(toks, columns=["id", "text"]).assign(text=lambda d: d.text.map(repr)),
                height=300,
                width="stretch",
            )
        st.subheader("Top next-token predictions")
        c1, c2 = st.columns(2)
        icl_top, zs_top = pred.icl_top[i], pred.zero_shot_top[i]
        c1.plotly_chart(
            figures.bars([t for t, _, _ in icl_top], [p for _, _, p in icl_top], "In-context prompt"), key="icl_bars"
        )
        c2.plotly_chart(
            figures.bars(
                [t for t, _, _ in zs_top], [p for _, _, p in zs_top], f"Zero-shot: {pred.prompts.zero_shot[i]!r}"
            ),
            key="zs_bars",
        )
        st.subheader("In-context accuracy")
        m1, m2, m3 = st.columns(3)
        widgets.accuracy_metric(m1, "In-context accuracy", pred.icl)
        widgets.accuracy_metric(m2, "Zero-shot accuracy", pred.zero_shot)
        m3.metric("Queries", len(pred.prompts))
        if pred.overlap:
            st.caption(
                "This task is small, so queries and demonstrations come from the same pairs (a query never appears in its own demos)."
            )
        st.dataframe(pd.DataFrame(pred.table()), width="stretch", key="pred_table")
        st.subheader("Attention patterns")
        widgets.attention_view(
            ctx,
            prompt,
            None,
            help="Every head's attention over this prompt at one layer (circuitsvis: an interactive view "
            "that loads about 1.3 MB of JavaScript, so it is drawn only when asked for)",
        )
        widgets.nnsight_code(  # the script behind these numbers
            "predictions and in-context accuracy",
            lambda: predict_script(
                ctx.spec, task.name, pred.prompts.clean, pred.prompts.zero_shot, pred.prompts.targets
            ),
            f"predict_{task.name}.py",
        )
        widgets.nnsight_code(
            "the top next tokens of the example prompt",
            lambda: next_token_script(ctx.spec, prompt, len(icl_top)),
            f"next_token_{task.name}_{i}.py",
        )
