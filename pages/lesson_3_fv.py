"""Lesson step 3: function vectors (corrupted prompts, head effects, the vector, steering with it)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import course
from core.errors import UserInputError
from core.held_out import without_prompt_pairs
from core.scripts.attribution import attribution_script
from core.scripts.function_vector import fv_report_script
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import InlineVector
from core.steer import Decoding
from dashboard import compute, figures, lesson, running, sidebar, state, widgets

N = 3
lesson.header(N)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    lesson.course_task_hint(task, course.FV_TASK)
    metric = state.get("metric")
    if st.button("Find the heads and build the function vector", type="primary", key="lesson_go_3"):
        state.set("lesson_ran_3", True)
    if state.get("lesson_ran_3"):
        wb = running.run(
            "Reading clean activations", lambda _progress: compute.workbench(ctx.spec, task, settings, lm, _progress)
        )
        at = wb and running.run(
            "Patching every head",
            lambda _progress: compute.attribution(ctx.spec, task, settings, metric, lm, _progress),
        )
        heads = at.top_heads(state.get("top_k")) if at else []
        layer, coeff = state.get("fv_layer"), float(state.get("fv_coeff"))
        rep = at and running.run(
            "Evaluating the function vector",
            lambda _progress: compute.fv_report(
                ctx.spec, task, settings, metric, tuple(heads), layer, course.N_EVAL, coeff, lm, _progress
            ),
        )
        if rep:
            st.subheader("A clean and a corrupted prompt")
            clean, corrupted = lesson.prompt_diff_html(wb.prompts.clean[0], wb.prompts.corrupted[0])
            left, right = st.columns(2)
            left.markdown("**Clean**")
            left.markdown(clean, unsafe_allow_html=True)
            right.markdown(f"**Corrupted** ({settings.corruption}: the changed labels are highlighted)")
            right.markdown(corrupted, unsafe_allow_html=True)
            st.subheader("Each head's causal indirect effect")
            left, right = st.columns([2, 1])
            left.plotly_chart(
                figures.head_heatmap(at.cie.tolist(), heads, f"Causal indirect effect ({metric}) - {task.name}"),
                key="lesson_heatmap",
            )
            right.dataframe(
                pd.DataFrame([{"head": f"{l}.{h}", "effect": float(at.cie[l, h])} for l, h in heads]),
                hide_index=True,
                width="stretch",
                key="lesson_top_heads",
            )
            widgets.nnsight_code(
                "the indirect-effect grid (one forward per head: slow, for reading)",
                lambda: attribution_script(ctx.spec, task, settings, metric),
                f"lesson_attribution_{task.name}.py",
            )
            st.subheader(f"The function vector of the top {len(heads)} heads, added at layer {rep.layer}")
            widgets.fv_metrics(st.columns(5), rep)
            widgets.nnsight_code(
                "the function vector, its evaluation and decoding",
                lambda: fv_report_script(ctx.spec, task, settings, rep, course.N_EVAL),
                f"lesson_function_vector_{task.name}.py",
            )
            st.plotly_chart(
                figures.decoded_tokens(rep.decoded_tokens, "Tokens the vector promotes (decoded)"),
                key="lesson_decoded",
            )
            st.subheader("Steering free text with it")
            c1, c2 = st.columns([3, 1])
            lesson.steering_prompt_for(task)
            prompt = state.bound(c1, "text_input", "Prompt", key="lesson_steer_prompt")
            fv_coeff = state.bound(
                c2, "number_input", "Coefficient", *state.LESSON_FV_COEFF, key="lesson_fv_coeff", step=0.5
            )
            try:
                held, removed = without_prompt_pairs(task, prompt)
            except UserInputError as exc:
                st.error(str(exc))
            else:
                st.caption(
                    "Removed from the pairs the vector is built from (the prompt mentions them): "
                    + (", ".join(f"{p.input} → {p.output}" for p in removed) if removed else "none")
                    + f". The vector: the same {len(heads)} heads' mean outputs over {len(held)} remaining pairs' prompts."
                )
                vec = running.run(
                    "Building the vector without them",
                    lambda _progress: compute.held_out_vector(
                        ctx.spec, held, settings, tuple(heads), rep.layer, lm, _progress
                    ),
                )
                pairs = vec and running.run(
                    "Generating",
                    lambda _progress: compute.steer_pair(
                        ctx.spec,
                        (prompt,),
                        compute.digest(vec.values),
                        vec.values,
                        rep.layer,
                        float(fv_coeff),
                        "last",
                        course.FV_MAX_NEW,
                        Decoding(),
                        lm,
                        _progress,
                    ),
                )
                if pairs:
                    lesson.show_pair(
                        pairs[0], f"With the function vector (layer {rep.layer}, coefficient {fv_coeff:g})"
                    )
                    widgets.nnsight_code(
                        "this steered generation (the held-out vector inlined)",
                        lambda: steer_script(
                            ctx.spec,
                            [prompt],
                            InlineVector(vec.values, vec.metadata(), "the held-out function vector"),
                            rep.layer,
                            float(fv_coeff),
                            "last",
                            course.FV_MAX_NEW,
                        ),
                        "lesson_fv_steer.py",
                    )
lesson.footer(N)
