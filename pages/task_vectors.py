"""Task vectors: the h-vector layer sweep."""

from __future__ import annotations

import streamlit as st

from core.scripts.task_vectors import hvector_script
from dashboard import compute, figures, running, sidebar, widgets

st.title("Task vectors")
widgets.explain(
    "**What am I looking at?** The *h-vector* is the model's residual stream at the last token, "
    "averaged over in-context prompts of the task, at each layer. Added at that layer to a "
    "*zero-shot* prompt (the query alone), it can make the model perform the task. The curve shows, "
    "layer by layer, the zero-shot top-1 accuracy with the h-vector added, against the zero-shot and "
    "in-context baselines: where it peaks is where the task is represented. "
    f"See section 2.1 of {widgets.PAPERS['fv']} and {widgets.PAPERS['tv']}. Edit the examples in the sidebar "
    "(choose *Type examples*) to try your own task."
)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    n_eval = st.slider("Zero-shot queries to evaluate", 5, 100, 50)
    wb = running.run(
        "Reading clean activations", lambda _progress: compute.workbench(ctx.spec, task, settings, lm, _progress)
    )
    res = wb and running.run(
        "Adding the h-vector at every layer",
        lambda _progress: compute.hvector_sweep(ctx.spec, task, settings, n_eval, lm, _progress),
    )
    if res:
        best = res.best_layer
        widgets.hvector_metrics(st.columns(3), res, best, f"Zero-shot + h (best: layer {best})")
        st.plotly_chart(
            figures.hvector_sweep(
                res, f"h-vector layer sweep: {task.name} ({res.n_eval} queries; shaded: 95% interval)"
            ),
            key="hvector_sweep",
        )
        if res.overlap:
            st.caption(
                "The task is small, so the evaluation queries overlap the prompts the h-vector was averaged over."
            )
        st.caption(
            f"The h-vector is the mean over {len(wb.prompts)} in-context prompts ({settings.n_shots} shots); "
            f"evaluation uses held-out queries. Layer choice: the peak layer is usually in the middle of the network."
        )
        widgets.nnsight_code(  # the script behind these numbers
            "the h-vector and its layer sweep",
            lambda: hvector_script(ctx.spec, task, settings, n_eval, layer=best),
            f"hvector_{task.name}.py",
        )
