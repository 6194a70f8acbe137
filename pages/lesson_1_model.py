"""Lesson step 1: the model and nnsight (tokens, next-token top-k, activation shapes, attention)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import course
from core.anatomy import trace_code
from core.scripts.predict import next_token_script
from dashboard import compute, figures, lesson, running, sidebar, state, widgets

N = 1
lesson.header(N)
ctx = sidebar.context()
if widgets.require(ctx, task=False):
    lm = ctx.lm
    if state.get("lesson_layer") is None or state.get("lesson_layer") >= lm.arch.n_layers:
        state.set("lesson_layer", course.scaled_layer(course.ANATOMY_LAYER, lm.arch.n_layers))
    c1, c2 = st.columns([3, 1])
    prompt = state.bound(c1, "text_input", "Prompt", key="lesson_prompt")
    layer = state.bound(c2, "number_input", "Layer", 0, lm.arch.n_layers - 1, key="lesson_layer")
    if st.button("Run the trace", type="primary", key="lesson_go_1"):
        state.set("lesson_ran_1", True)
    if state.get("lesson_ran_1"):
        res = running.run(
            "Tracing the prompt", lambda _progress: compute.anatomy(ctx.spec, prompt, int(layer), lm, _progress)
        )
        if res is not None:
            left, right = st.columns(2)
            with left:
                st.subheader(f"{len(res.tokens)} tokens")
                st.dataframe(
                    pd.DataFrame(res.tokens, columns=["id", "text"]).assign(text=lambda d: d.text.map(repr)),
                    height=260,
                    width="stretch",
                    key="lesson_tokens",
                )
            with right:
                st.subheader("Next token")
                st.plotly_chart(
                    figures.bars([t for t, _, _ in res.top], [p for _, _, p in res.top], f"After {prompt!r}"),
                    key="lesson_top",
                )
            st.subheader("What the trace saw")
            arch = lm.arch
            st.dataframe(
                pd.DataFrame({"activation": list(res.shapes), "shape": [str(list(s)) for s in res.shapes.values()]}),
                hide_index=True,
                width="stretch",
                key="lesson_shapes",
            )
            st.caption(
                f"{lm.model_id}: {arch.n_layers} layers, d_model {arch.d_model}, {arch.n_heads} heads of "
                f"d_head {arch.d_head} ({arch.n_kv_heads} key/value heads), vocabulary {arch.d_vocab}."
            )
            st.code(trace_code(arch, res.layer), language="python")
            widgets.nnsight_code(
                "the next-token top-k of this prompt",
                lambda: next_token_script(ctx.spec, prompt, len(res.top)),
                "lesson_next_token.py",
            )
            st.subheader("Attention patterns")
            widgets.attention_view(
                ctx,
                prompt,
                int(layer),
                help="Every head's attention over this prompt at the layer above (circuitsvis, offline; "
                "about 1.3 MB of JavaScript, so drawn only when asked for)",
            )
    st.info(lesson.NDIF)
lesson.footer(N)
