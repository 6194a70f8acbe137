"""Task report: one button, every stage, one screen of results, HTML and JSON downloads."""

from __future__ import annotations

import json

import streamlit as st

from core.report import ReportOptions
from core.report_html import render
from core.scripts.attribution import attribution_script
from core.scripts.function_vector import fv_report_script
from dashboard import compute, link_params, running, sidebar, state, widgets

st.title("Task report")
widgets.explain(
    "**What am I looking at?** One run answers the quick questions about a task: does the model do it "
    "*in context*, which attention heads carry it, does a *function vector* of the top heads make it do the "
    "task *zero-shot*, at which layer (chosen on validation queries), where the *h-vector* works, and does "
    "the vector steer a free generation. Every accuracy is on held-out test queries, with its 95% interval. "
    "The sentences under *Verdict* say what the numbers say, negatives included. Download the report as one "
    f"HTML file (works offline) or as JSON. Method of {widgets.PAPERS['fv']}."
)
ctx = sidebar.context()
if widgets.require(ctx):
    lm, task, settings = ctx.lm, ctx.task, ctx.settings
    run_key = link_params.report_request(ctx)  # a link's run=1 stores the same on opening
    chosen = state.get("n_shots")
    capped = (
        f" (you chose {chosen}; these {len(task)} examples allow at most {settings.n_shots})"
        if chosen > settings.n_shots
        else ""
    )
    st.caption(
        f"Task: {task.name}, {len(task)} pairs. Shots used: {settings.n_shots}{capped}. {settings.n_prompts} build prompts, seed {settings.seed}."
    )
    commit = state.committer(["report_heads", "report_prompt"])

    def request() -> None:
        commit()
        state.set("report_for", run_key)

    with st.form("report_form"):
        left, right = st.columns([1, 3])
        state.form_field(left, "slider", "Heads in the function vector", *state.REPORT_K, key="report_heads")
        state.form_field(
            right,
            "text_input",
            "Prompt for the steered generation (blank: a held-out query, zero-shot)",
            key="report_prompt",
        )
        st.form_submit_button("Run the report", icon=":material/play_arrow:", on_click=request)
    if state.get("report_for") != run_key:
        st.info("Click **Run the report** to run every stage for this task and these settings.")
    else:
        options = ReportOptions(top_k=int(state.get("report_heads")), prompt=state.get("report_prompt").strip() or None)
        rep = running.run(
            "Task report",
            lambda _progress: compute.task_report(ctx.spec, task, settings, options, lm, _progress),
        )
        if rep:
            r, g = rep.fv, rep.generation
            st.subheader("Verdict")
            with st.container(border=True):
                st.markdown("\n".join("- " + s.replace("*", "\\*").replace("_", "\\_") for s in rep.verdict()))
            m = st.columns(6)
            widgets.fv_metrics(m, r)
            widgets.accuracy_metric(
                m[5], f"h-vector (layer {r.hvector_best_layer})", r.accuracy("hvector_best_accuracy")
            )
            st.caption(
                f"{r.n_eval} held-out test queries, {settings.n_shots} shots. Heads: "
                + ", ".join(f"{l}.{h}" for l, h in rep.top_heads)
                + f". Computed in {rep.seconds:.1f} s ("
                + ", ".join(f"{k} {v:.1f} s" for k, v in rep.stage_seconds.items())
                + "; a stage another page already computed is reused)."
            )
            figs = rep.figures()
            st.plotly_chart(figs["heatmap"], key="report_heatmap")
            st.plotly_chart(figs["layers"], key="report_layers")
            a, b = st.columns(2)
            a.plotly_chart(figs["heads"], key="report_heads_curve")
            b.plotly_chart(figs["decoded"], key="report_decoded")
            st.subheader("Free generation")
            st.code(g.prompt, language=None)
            u, s = st.columns(2)
            u.markdown("**Unsteered**")
            u.code(g.unsteered, language=None)
            s.markdown(f"**Steered** (layer {g.layer}, coefficient {g.coeff:g})")
            s.code(g.steered, language=None)
            d1, d2 = st.columns(2)
            d1.download_button(
                "Download the report (HTML)",
                render(rep),
                file_name=f"report_{task.name}.html",
                mime="text/html",
                icon=":material/download:",
            )
            d2.download_button(
                "Download the report (JSON)",
                json.dumps(rep.to_json(), indent=2, ensure_ascii=False),
                file_name=f"report_{task.name}.json",
                mime="application/json",
                icon=":material/download:",
            )
            # the scripts behind the report's numbers
            widgets.nnsight_code(
                "the indirect-effect grid (one forward per head: slow, for reading)",
                lambda: attribution_script(ctx.spec, task, rep.settings, rep.options.metric),
                f"report_attribution_{task.name}.py",
            )
            widgets.nnsight_code(
                "the function vector, its evaluation and decoding",
                lambda: fv_report_script(ctx.spec, task, rep.settings, r, rep.options.n_eval),
                f"report_function_vector_{task.name}.py",
            )
