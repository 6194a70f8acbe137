"""Compare tasks: heads shared by several tasks, their function vectors' similarity, and transfer."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core import limits
from core.scripts.compare import compare_script
from dashboard import compute, figures, link_params, running, sidebar, state, widgets

st.title("Compare tasks")
widgets.explain(
    "**What am I looking at?** The same analysis for several tasks on one model, with the sidebar's prompt "
    "settings. **Mean indirect effect**: each task's head-attribution grid (as on *Head attribution*), "
    "averaged over the tasks: heads that are red here matter for many tasks, as in "
    f"{widgets.PAPERS['fv']}, section 3. **Top-k overlap**: for two tasks, the share of heads their top-k "
    "sets have in common (Jaccard index: shared heads / heads in either; 1 = the same heads). **FV cosine**: "
    "how aligned the two function vectors (top-k heads each) are. **Transfer**: the function vector of the "
    "task in the row added at the last token of *zero-shot* held-out queries of the task in the column, "
    "scored on the column task's answers; the diagonal is each task's own vector (the Function vector "
    "page's number), and the zero-shot accuracy without any vector is in the table below. With layer *auto* "
    "each row's vector is added at its own best layer on its own validation queries."
)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, settings = ctx.lm, ctx.settings
    choices = link_params.compare_choices(ctx)  # built-in tasks, and the sidebar's typed or uploaded one
    current = [x for x in state.get("compare_tasks") if x in choices]
    state.set("compare_tasks", current)
    state.bound(
        st,
        "multiselect",
        f"Tasks (2 to {limits.MAX_COMPARE_TASKS})",
        list(choices),
        key="compare_tasks",
        help="Built-in tasks, plus the sidebar's typed or uploaded task when there is one.",
    )
    c1, c2, c3 = st.columns(3)
    state.bound(c1, "slider", "k (top heads per task)", *state.COMPARE_K, key="compare_top_k")
    state.bound(c2, "selectbox", "Layer of the vectors", ["auto"] + list(range(lm.arch.n_layers)), key="compare_layer")
    state.bound(c3, "slider", "Test queries per task", *state.COMPARE_N_EVAL, key="compare_n_eval")
    metric = state.get("metric")
    wanted = link_params.compare_request(ctx)  # a link's run=1 stores the same on opening
    st.caption(
        f"{settings.n_prompts} prompts per task, {settings.n_shots} shots, corrupted prompts with "
        f"{settings.corruption} labels, metric {metric} (the sidebar's and Head attribution's choices). Each task "
        "not yet seen on Head attribution needs its attribution: about 10-15 s at 20 prompts on an idle 2-core CPU."
    )
    if st.button("Run", type="primary", icon=":material/play_arrow:"):
        state.set("compare_request", wanted)
    request = state.get("compare_request")
    if request is None:
        st.info("Pick two or more tasks and press Run.")
    else:
        if request != wanted:
            st.info("The choices changed since the last Run: press Run to compare with the new ones.")
        res = running.run(
            "Comparing tasks",
            lambda _progress: compute.compare_tasks(
                ctx.spec,
                request["tasks"],
                request["settings"],
                request["metric"],
                request["top_k"],
                request["layer"],
                request["n_eval"],
                lm,
                _progress,
            ),
        )
        if res:
            names = list(res.tasks)
            layer_text = (
                "each source's best layer on its own validation queries: "
                + ", ".join(f"{t} {l}" for t, l in zip(names, res.layers))
                if res.layer_choice == "auto"
                else f"layer {res.layers[0]} for every source"
            )
            st.caption(
                f"Top {res.top_k} heads per task. Vectors added at {layer_text}. Computed in {res.seconds:.1f} s."
            )
            mean_top = res.mean_top_heads(res.top_k)
            st.plotly_chart(
                figures.head_heatmap(
                    res.mean_cie.tolist(),
                    mean_top,
                    f"Mean causal indirect effect ({res.metric}) over {len(names)} tasks",
                ),
                key="compare_mean_cie",
            )
            st.write(f"Top {res.top_k} heads of the mean:", ", ".join(f"{l}.{h}" for l, h in mean_top))
            left, right = st.columns(2)
            left.plotly_chart(
                figures.matrix(
                    res.top_head_overlap.tolist(), names, f"Top-{res.top_k} head overlap (Jaccard)", zmin=0, zmax=1
                ),
                key="compare_overlap",
            )
            right.plotly_chart(
                figures.matrix(res.fv_cosine.tolist(), names, "Function vector cosine"), key="compare_cosine"
            )
            hover = [[str(res.transfer_accuracy(a, b)) for b in range(len(names))] for a in range(len(names))]
            st.plotly_chart(
                figures.grid(
                    res.transfer.tolist(),
                    names,
                    names,
                    "Transfer: accuracy on the column task's zero-shot queries with the row task's vector",
                    "target task (its queries and answers)",
                    "function vector of",
                    hover=hover,
                ),
                key="compare_transfer",
            )
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "task": t,
                            "zero-shot": str(res.zero_shot_accuracy(b)),
                            "own vector": str(res.transfer_accuracy(b, b)),
                            "in-context (build prompts)": f"{res.icl_accuracy[b]:.0%}",
                            "layer": res.layers[b],
                            "top heads": ", ".join(f"{l}.{h}" for l, h in res.top_heads[b]),
                        }
                        for b, t in enumerate(names)
                    ]
                ),
                width="stretch",
                key="compare_table",
            )
            if any(res.overlap):
                st.caption("Small tasks: their test queries overlap the build queries.")
            st.download_button(
                "Download the comparison (JSON)",
                json.dumps(res.to_json(), indent=2, ensure_ascii=False),
                file_name="compare_tasks.json",
                mime="application/json",
            )
            widgets.nnsight_code(
                "this comparison (one forward per patched head of every task: slow, for reading)",
                lambda: compare_script(
                    ctx.spec,
                    request["tasks"],
                    request["settings"],
                    res.layers,
                    res.layer_choice,
                    res.metric,
                    res.top_k,
                    request["n_eval"],
                ),
                "compare_tasks.py",
            )
