"""Lesson step 5 (bonus): contrastive activation addition from many pairs, and steering with it."""

from __future__ import annotations

import streamlit as st

from core import course, steering_vectors
from core.errors import UserInputError
from core.pairs import parse_pairs
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import CAASource
from core.steer import Decoding
from dashboard import compute, figures, lesson, running, sidebar, state, widgets

N = 5
lesson.header(N)
ctx = sidebar.context()
if widgets.require(ctx, task=False):
    lm = ctx.lm
    if state.get("sv_c_layer") is None or state.get("sv_c_layer") >= lm.arch.n_layers:
        state.set("sv_c_layer", course.caa_layer(lm.arch.n_layers))  # the Steering vectors page's default
    st.caption(
        "The pairs are the Steering vectors page's (*Contrastive pairs* tab): edit them there; "
        "the first three are shown here."
    )
    try:
        pairs = tuple(parse_pairs(state.get("sv_c_text")))
    except UserInputError as exc:
        st.error(str(exc))
        pairs = ()
    for pos, neg in pairs[:3]:
        st.markdown(f"- **+** {pos}  \n  **−** {neg}")
    c1, c2, c3 = st.columns([2, 1, 1])
    state.bound(c1, "text_input", "Prompt to steer", key="lesson_caa_prompt")
    state.bound(c2, "number_input", "Layer", 0, lm.arch.n_layers - 1, key="sv_c_layer")
    state.bound(c3, "number_input", "Coefficient", *state.LESSON_CAA_COEFF, key="lesson_caa_coeff", step=0.5)
    if pairs and st.button(f"Build from {len(pairs)} pairs and steer", type="primary", key="lesson_go_5"):
        state.set("lesson_ran_5", True)
        state.set("sv_c_pairs", pairs)  # the Steering vectors page shows the same vectors
    if pairs and state.get("lesson_ran_5"):
        layer, coeff, prompt = (
            int(state.get("sv_c_layer")),
            float(state.get("lesson_caa_coeff")),
            state.get("lesson_caa_prompt"),
        )
        caa = running.run(
            f"Reading {len(pairs)} pairs at every layer", lambda _progress: compute.caa(ctx.spec, pairs, lm, _progress)
        )
        if caa is not None:
            st.plotly_chart(
                figures.layer_curves(
                    {"‖v‖": steering_vectors.row_norms(caa)}, "CAA vector norm per layer", "norm", marked=layer
                ),
                key="lesson_caa_norms",
            )
            values = caa[layer]
            pair = running.run(
                "Generating",
                lambda _progress: compute.steer_pair(
                    ctx.spec,
                    (prompt,),
                    compute.digest(values),
                    values,
                    layer,
                    coeff,
                    "last",
                    course.CAA_MAX_NEW,
                    Decoding(),
                    lm,
                    _progress,
                ),
            )
            if pair:
                lesson.show_pair(pair[0], f"With CAA (layer {layer}, coefficient {coeff:g}, greedy)")
                widgets.nnsight_code(
                    "this steered generation (the CAA vector rebuilt in the script)",
                    lambda: steer_script(
                        ctx.spec, [prompt], CAASource(tuple(pairs)), layer, coeff, "last", course.CAA_MAX_NEW
                    ),
                    "lesson_caa.py",
                )
lesson.footer(N)
