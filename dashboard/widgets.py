"""Shared page widgets: the 'what am I looking at' box, paper links, and the check that the
sidebar (dashboard/sidebar.py) resolved what a page needs."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import UserInputError
from core.stats import Accuracy
from dashboard import circuits, compute, running, state
from dashboard.sidebar import Context

PAPERS = {
    "fv": "[Todd et al., *Function Vectors in Large Language Models* (2023)](https://arxiv.org/abs/2310.15213)",
    "actadd": "[Turner et al., *Activation Addition* (2023)](https://arxiv.org/abs/2308.10248)",
    "caa": "[Rimsky et al., *Steering Llama 2 via Contrastive Activation Addition* (2023)](https://arxiv.org/abs/2312.06681)",
    "tv": "[Hendel et al., *In-Context Learning Creates Task Vectors* (2023)](https://arxiv.org/abs/2310.15916)",
}


def explain(text: str) -> None:
    """The short 'what am I looking at' box at the top of every page."""
    with st.container(border=True):
        st.markdown(text)


def require(ctx: Context, task: bool = True) -> bool:
    """True when the page has what it needs; otherwise a message says what is missing."""
    if ctx.lm is None:
        if ctx.problem:
            st.error(ctx.problem)
        st.warning("No model is loaded: fix the model id in the sidebar.")
        return False
    if task and (ctx.task is None or ctx.settings is None):
        st.warning("Fix the task or prompt settings in the sidebar first.")
        return False
    return True


def heads_from_labels(labels: list[str]) -> list[tuple[int, int]]:
    return [(int(x.split(".")[0]), int(x.split(".")[1])) for x in labels]


def accuracy_metric(col, label: str, acc: Accuracy, baseline: Accuracy | None = None) -> None:
    """An accuracy as a metric, with its number of queries and 95% Wilson interval under it
    ("60%", "of 40 · 95% CI 45%-74%"); ``baseline`` adds the change from it."""
    delta = f"{acc.value - baseline.value:+.0%}" if baseline is not None else None
    col.metric(label, f"{acc.value:.0%}", delta, help=str(acc))
    col.caption(f"of {acc.n} · {acc.interval_text()}")


def hvector_metrics(cols, sweep, layer: int, label: str) -> None:
    """Three metrics of a :class:`core.results.HVectorSweep`: zero-shot, zero-shot with the
    h-vector of ``layer`` (named ``label``, with its gain) and in-context, each with n and interval."""
    base = sweep.accuracy(sweep.zero_shot_baseline)
    accuracy_metric(cols[0], "Zero-shot", base)
    accuracy_metric(cols[1], label, sweep.accuracy(sweep.by_layer[layer]), base)
    accuracy_metric(cols[2], "In-context", sweep.accuracy(sweep.icl_accuracy))


def fv_metrics(cols, rep) -> None:
    """A function-vector report's first-token accuracies (a ``core.fv.FVReport``) in the first
    five of ``cols``: in-context, zero-shot, zero-shot + FV, shuffled, shuffled + FV."""
    acc = rep.accuracy
    accuracy_metric(cols[0], "In-context", acc("icl_accuracy"))
    accuracy_metric(cols[1], "Zero-shot", acc("zero_shot_baseline"))
    accuracy_metric(cols[2], f"Zero-shot + FV (layer {rep.layer})", acc("zero_shot_with_fv"), acc("zero_shot_baseline"))
    accuracy_metric(cols[3], "Shuffled", acc("shuffled_baseline"))
    accuracy_metric(cols[4], "Shuffled + FV", acc("shuffled_with_fv"), acc("shuffled_baseline"))


# --- the code behind every number -----------------------------------------


def nnsight_code(what: str, make: Callable[[], str], file_name: str) -> None:
    """An "nnsight code" expander under a result: the self-contained script that reproduces it
    (:mod:`core.scripts`) and a button to download it. ``make`` builds the script (cheap, no
    model work); if it cannot (an odd setting), the expander says why and the page goes on."""
    with st.expander(f"nnsight code: {what}"):
        try:
            source = make()
        except (UserInputError, ValueError, KeyError, IndexError, TypeError) as exc:
            st.info(f"No script for this result: {exc}")
            return
        st.caption(
            "Plain transformers + nnsight, no FV Studio import: it loads the model as the app did, runs the "
            "same prompts and prints the result as JSON (the keys of the matching `python -m core` command)."
        )
        st.download_button(
            "Download the script", source, file_name=file_name, mime="text/x-python", key=f"script_{file_name}"
        )
        st.code(source, language="python")


def attention_view(ctx: Context, prompt: str, layer: int | None, help: str) -> None:
    """The *Show attention pattern* toggle and, when on, every head's pattern over ``prompt`` at
    ``layer`` (a slider when None), drawn with circuitsvis offline. Off by default: the view loads
    about 1.3 MB of JavaScript."""
    if not state.bound(st, "toggle", "Show attention pattern", key="show_attention", help=help):
        return
    n_layers = ctx.lm.arch.n_layers
    if layer is None:
        layer = st.slider("Layer", 0, n_layers - 1, min(n_layers - 1, n_layers * 2 // 3))
    att = running.run("Computing attention", lambda _progress: compute.attention(ctx.spec, prompt, int(layer), ctx.lm))
    if att is not None:
        circuits.show_attention(*att)
