"""Lesson step 2: task-encoding hidden states (the h-vector, per query and over layers)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import course
from core.scripts.task_vectors import hvector_script
from dashboard import compute, figures, lesson, running, saving, sidebar, state, widgets

N = 2
lesson.header(N)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    st.caption(f"Task: **{task.name}** ({len(task)} pairs), {settings.n_shots} shots, {settings.n_prompts} prompts.")
    if st.button("Build the h-vector and sweep the layers", type="primary", key="lesson_go_2"):
        state.set("lesson_ran_2", True)
    if state.get("lesson_ran_2"):
        wb = running.run(
            "Reading clean activations", lambda _progress: compute.workbench(ctx.spec, task, settings, lm, _progress)
        )
        sweep = wb and running.run(
            "Adding the h-vector at every layer",
            lambda _progress: compute.hvector_sweep(ctx.spec, task, settings, course.N_EVAL, lm, _progress),
        )
        layer = sweep.best_layer if sweep else None
        rows = sweep and running.run(
            "Scoring each query",
            lambda _progress: compute.query_effects(ctx.spec, task, settings, layer, course.N_TABLE, lm, _progress),
        )
        if rows:
            widgets.hvector_metrics(st.columns(3), sweep, layer, f"Zero-shot + h (layer {layer})")
            st.subheader(f"Each query, without and with the h-vector of layer {layer}")
            st.dataframe(
                pd.DataFrame([r.row() for r in rows]).style.format({"Δ log p(answer)": "{:+.2f}"}),
                hide_index=True,
                width="stretch",
                key="lesson_queries",
            )
            st.caption(
                f"Zero-shot prompts: the query alone (e.g. {rows[0].query!r}). The h-vector is the mean "
                f"hidden state at the last token over {len(wb.prompts)} in-context prompts; Δ log p is the "
                "change in the log-probability of the answer's first token."
            )
            st.plotly_chart(
                figures.hvector_sweep(
                    sweep, f"The h-vector of each layer added ({sweep.n_eval} queries; shaded: 95% interval)", layer
                ),
                key="lesson_sweep",
            )
            widgets.nnsight_code(
                "the h-vector and its layer sweep",
                lambda: hvector_script(ctx.spec, task, settings, course.N_EVAL, layer=layer),
                f"lesson_hvector_{task.name}.py",
            )
            st.subheader("Save the h-vector")
            saving.save_form(
                "lesson_save_h",
                compute.hvector(ctx.spec, task, settings, layer, lesson.vector_name("h", f"{task.name}_l{layer}"), lm),
                name_key="lesson_h_name",
                note="It is listed on Vector library and Steer.",
            )
lesson.footer(N)
