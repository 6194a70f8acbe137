"""Steer: unsteered and steered continuations side by side, for any vector of this model."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from core import limits, steering_vectors
from core.models import ModelSpec
from core.predict import tokens
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import InlineVector
from core.steer import Decoding, PairResult
from core.steer_diff import first_divergence
from core.vectors import Vector
from dashboard import compute, figures, running, sidebar, state, widgets

MODES = {state.STEER_LAST: "last", state.STEER_PROMPT: "prompt"}
LAST, PROMPT = state.STEER_LAST, state.STEER_PROMPT
GREEDY, SAMPLING = state.GREEDY, state.SAMPLING
# the form's fields (copied into their persistent keys when Generate is pressed)
FORM_KEYS = [
    k
    for k in state.DEFAULTS
    if k.startswith("steer_") and k not in ("steer_vector", "steer_vector_for", "steer_request")
]
_field = state.form_field


def _commit() -> None:
    state.committer(FORM_KEYS)()
    state.set("steer_request", state.get("steer_vector"))


def _text_html(prompt: str, text: str, cut: int | None, color: str) -> str:
    """The prompt (grey), the shared part, and everything from the first divergence (highlighted)."""

    def esc(s: str) -> str:  # newlines as <br> keep the block one line, so markdown never parses it
        return html.escape(s, quote=True).replace("$", "&#36;").replace("\n", "<br>")

    shared, rest = (text, "") if cut is None else (text[:cut], text[cut:])
    body = f'<span style="color:#9ca3af">{esc(prompt)}</span>{esc(shared)}'
    if rest:
        body += f'<span style="background:{color};border-radius:3px;padding:0 2px">{esc(rest)}</span>'
    if not text:
        body += ' <i style="color:#9ca3af">(no text: the model ended at once)</i>'
    return f'<div class="fv-steer-text" style="font-family:monospace;font-size:0.9rem;line-height:1.5">{body}</div>'


def _change_table(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"token": repr(t), "p unsteered": b, "p steered": a, "change": a - b} for t, b, a in rows],
        columns=["token", "p unsteered", "p steered", "change"],
    )


@st.fragment
def results_panel(
    spec: ModelSpec,
    name: str,
    vec: Vector,
    results: list[PairResult],
    prompts: tuple[str, ...],
    layer: int,
    coeff: float,
    mode: str,
    max_new: int,
    norms: list[float] | None,
    decoding: Decoding,
) -> None:
    """The generations side by side, the next-token change and the script: a click here (a
    download) reruns this panel alone."""
    v_norm = steering_vectors.mean_norm(vec.values)  # per position for [n_pos, d_model]
    if norms:
        scale = steering_vectors.relative_norm(coeff, v_norm, norms[layer])
        st.info(
            f"Added per position: |coefficient| x ‖v‖ = {abs(coeff):g} x {v_norm:.2f} = **{abs(coeff) * v_norm:.1f}**, "
            f"that is **{scale:.2f} x** the typical residual norm at layer {layer} ({norms[layer]:.1f}, "
            "last token of your prompts)."
            + (
                " The vector goes to the prompt's first positions, whose norms can be much larger "
                "(the first token often carries a very large norm)."
                if mode == "prompt"
                else ""
            )
        )
    for i, r in enumerate(results):
        box = st.container(border=True)
        if len(results) > 1:
            box.subheader(f"Prompt {i + 1}")
        if r.note:
            box.caption(r.note)
        left, right = box.columns(2)
        left.markdown("**Unsteered**")
        right.markdown(f"**Steered** (layer {layer}, coefficient {coeff:g})")
        for j, (u, s) in enumerate(zip(r.unsteered, r.steered)):
            cut = first_divergence(u, s)
            if len(r.unsteered) > 1:
                left.caption(f"sample {j + 1}")
                right.caption(f"sample {j + 1}" + (" (identical)" if cut is None else ""))
            left.markdown(_text_html(r.prompt, u, cut, "#bfdbfe"), unsafe_allow_html=True)
            right.markdown(_text_html(r.prompt, s, cut, "#fde68a"), unsafe_allow_html=True)
        if r.first_divergence is None:
            box.caption("The two continuations are identical: try a larger coefficient or another layer.")
        change = r.next_token_change
        box.markdown(f"**First generated token**: KL(steered ‖ unsteered) = **{change.kl:.4f}** nats")
        up, down = box.columns(2)
        up.caption("Rose most")
        up.dataframe(_change_table(change.rose), hide_index=True, width="stretch", key=f"rose_{i}")
        down.caption("Fell most")
        down.dataframe(_change_table(change.fell), hide_index=True, width="stretch", key=f"fell_{i}")
    widgets.nnsight_code(  # the script behind these generations
        "these steered generations",
        lambda: steer_script(
            spec,
            prompts,
            InlineVector(vec.values, vec.metadata(), f"the vector {name!r}"),
            layer,
            coeff,
            mode,
            max_new,
            decoding,
        ),
        f"steer_{name}.py",
    )


st.title("Steer")
widgets.explain(
    "**What am I looking at?** The same prompt continued twice by the same model: *unsteered*, and "
    "*steered* with a vector times a coefficient added to the residual stream (the output of one "
    "decoder block). Either at the newest token on **every step** (how function vectors and CAA "
    "vectors are used), or once **at the prompt's first positions** (activation addition: the "
    "difference of two prompts' activations, added position by position). Both columns come from one "
    "batch with the same decoding settings and, when sampling, the same random numbers, so the texts "
    "differ only where the vector changed something: the first difference is highlighted. Below each "
    "pair: how the vector moved the first generated token's distribution. "
    f"{widgets.PAPERS['fv']}; {widgets.PAPERS['actadd']}; {widgets.PAPERS['caa']}."
)
ctx = sidebar.context()

if widgets.require(ctx, task=False):
    lm = ctx.lm
    vectors, where, problems = compute.vectors_for(lm)
    for problem in problems:
        st.warning(f"A library file was skipped: {problem}")
    if not vectors:
        st.info(
            f"No steering vector exists yet for **{lm.model_id}**. Make one first:\n\n"
            "- **Function vector** page: build a function vector from a task and save it;\n"
            "- **Steering vectors** page: activation addition (e.g. *Love* - *Hate*) or contrastive "
            "pairs (CAA), then save it;\n"
            "- **Vector library** page: upload a `.safetensors` vector file."
        )
        st.page_link("../pages/function_vector.py", label="Function vector", icon="🧪")
        st.page_link("../pages/steering_vectors.py", label="Steering vectors", icon="➕")
        st.page_link("../pages/vector_library.py", label="Vector library", icon="📚")
        st.stop()

    names = list(vectors)
    if state.get("steer_vector") not in vectors:  # first visit or deleted: the newest
        state.set("steer_vector", max(names, key=lambda n: vectors[n].created))
    state.bound(
        st,
        "selectbox",
        "Vector",
        names,
        key="steer_vector",
        format_func=lambda n: (
            f"{n}  ({vectors[n].method}, layer {vectors[n].layer}, "
            f"{'x'.join(map(str, vectors[n].values.shape))}, {where[n]})"
        ),
    )
    name = state.get("steer_vector")
    vec = vectors[name]
    n_pos = 1 if vec.values.dim() == 1 else int(vec.values.shape[0])
    mode_options = [PROMPT] if n_pos > 1 else [LAST, PROMPT]
    if state.get("steer_vector_for") != name:  # a new vector: its own layer and mode
        state.set("steer_layer", min(max(vec.layer, 0), lm.arch.n_layers - 1))
        state.set("steer_mode", PROMPT if n_pos > 1 else LAST)
        state.set("steer_coeff", steering_vectors.default_coeff(vec))
        state.set("steer_vector_for", name)
    if state.get("steer_mode") not in mode_options:
        state.set("steer_mode", mode_options[0])
    st.caption(
        f"Made by **{vec.method}** for layer {vec.layer}; norm {vec.norm:.2f}"
        + (
            f", {n_pos} positions (an activation-addition vector: it can only be added at the prompt's first positions)"
            if n_pos > 1
            else ""
        )
        + "."
    )

    with st.form("steer_form"):
        _field(
            st, "text_area", f"Prompts (one per line, at most {limits.MAX_PROMPTS})", key="steer_prompts", height=100
        )
        c1, c2, c3 = st.columns([1, 1, 2])
        _field(
            c1,
            "selectbox",
            "Layer",
            list(range(lm.arch.n_layers)),
            key="steer_layer",
            help="The output of this decoder block receives the vector. Default: the layer the vector was made for.",
        )
        _field(
            c2,
            "number_input",
            "Coefficient",
            -limits.MAX_ABS_COEFF,
            limits.MAX_ABS_COEFF,
            key="steer_coeff",
            step=0.5,
            help="The vector is multiplied by this before it is added; 0 reproduces the unsteered text.",
        )
        _field(c3, "radio", "Where the vector is added", mode_options, key="steer_mode")
        pictures = [st.container() for _ in mode_options]  # full width: the token labels need room
        first_prompt = next((p for p in state.get("steer_prompts").splitlines() if p.strip()), "")
        prompt_tokens = (
            [t for _, t in tokens(lm, first_prompt[: limits.MAX_PROMPT_CHARS])] if first_prompt else ["(prompt)"]
        )
        for col, label in zip(pictures, mode_options):
            col.caption(
                f"**{label}**: "
                + (
                    "the last prompt token on step 0, then each new token"
                    if MODES[label] == "last"
                    else f"the first {n_pos} prompt token(s), once; later tokens see them through the cache"
                )
            )
            col.plotly_chart(
                figures.steer_positions(prompt_tokens, MODES[label], n_pos),
                key=f"positions_{MODES[label]}",
                config={"displayModeBar": False},
            )
        st.markdown("**Decoding** (the same for both columns)")
        d = st.columns(7)
        _field(d[0], "radio", "Decoding", [GREEDY, SAMPLING], key="steer_decoding")
        _field(d[1], "number_input", "Max new tokens", 1, limits.MAX_NEW_TOKENS, key="steer_max_new")
        _field(
            d[2],
            "number_input",
            "Temperature",
            0.05,
            limits.MAX_TEMPERATURE,
            key="steer_temperature",
            step=0.1,
            help="Sampling only",
        )
        _field(d[3], "number_input", "Top-p", 0.05, 1.0, key="steer_top_p", step=0.05, help="Sampling only")
        _field(
            d[4],
            "number_input",
            "Repetition penalty",
            0.1,
            limits.MAX_REPETITION_PENALTY,
            key="steer_rep_penalty",
            step=0.1,
            help="1 = none; greedy and sampling",
        )
        _field(
            d[5],
            "number_input",
            "Samples",
            1,
            limits.MAX_SAMPLES,
            key="steer_samples",
            help="Per prompt, sampling only",
        )
        _field(d[6], "number_input", "Seed", *state.STEER_SEED, key="steer_seed")
        st.form_submit_button("Generate", type="primary", on_click=_commit)

    if state.get("steer_request") not in (None, name):
        st.caption(f"Press **Generate** to steer with '{name}'.")
    elif state.get("steer_request") == name:
        prompts = tuple(p for p in state.get("steer_prompts").splitlines() if p.strip())
        layer, coeff, mode = (
            int(state.get("steer_layer")),
            float(state.get("steer_coeff")),
            MODES[state.get("steer_mode")],
        )
        max_new = int(state.get("steer_max_new"))
        decoding = Decoding(
            sample=state.get("steer_decoding") == SAMPLING,
            temperature=float(state.get("steer_temperature")),
            top_p=float(state.get("steer_top_p")),
            repetition_penalty=float(state.get("steer_rep_penalty")),
            n_samples=int(state.get("steer_samples")),
            seed=int(state.get("steer_seed")),
        )
        key = compute.digest(vec.values)
        results = running.run(
            "Generating",
            lambda _progress: compute.steer_pair(
                ctx.spec, prompts, key, vec.values, layer, coeff, mode, max_new, decoding, lm, _progress
            ),
        )
        if results:
            norms = running.run(
                "Measuring the residual stream", lambda _progress: compute.resid_norms(ctx.spec, prompts, lm)
            )
            results_panel(ctx.spec, name, vec, results, prompts, layer, coeff, mode, max_new, norms, decoding)
