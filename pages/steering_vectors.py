"""Steering vectors: build activation-addition and CAA vectors, sweep them, save them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from core import checks, course, limits, steering_vectors
from core.errors import UserInputError
from core.pairs import parse_pairs, parse_pairs_file
from core.scripts.steering_vectors import ActAddSource, CAASource, build_script
from core.scripts.sweep import sweep_script
from core.sweep import SweepResult
from core.vectors import Vector
from dashboard import compute, figures, running, saving, sidebar, state, widgets

TYPED, UPLOAD = state.PAIRS_TYPED, state.PAIRS_UPLOAD
MAX_COEFFS = 8  # coefficients in one sweep from this page (and at most 6 layers: 48 cells)
_field, _commit = state.form_field, state.committer


# ---- shared: sweep, relative norms, save ------------------------------------------------------


def _norms(ctx: widgets.Context, prompt: str) -> list[float] | None:
    return running.run(
        "Measuring the residual stream", lambda _progress: compute.resid_norms(ctx.spec, (prompt,), ctx.lm)
    )


def sweep_and_save(
    ctx: widgets.Context,
    vec: Vector,
    values_at: Callable[[tuple[int, ...]], dict[int, Any] | None],
    mode: str,
    p: str,
    source: ActAddSource | CAASource,
) -> None:
    """The coefficient x layer sweep and the Save form for one candidate vector.

    ``values_at(layers)``: ``{layer: the vector built at that layer}`` for the swept layers
    (each uses its own), or None when building them failed (the page shows why);
    ``p``: the prefix of this section's persistent keys; ``source``: how the vector is built,
    for the sweep's script.
    """
    lm = ctx.lm
    n_layers = lm.arch.n_layers
    if not state.get(f"{p}_layers") or any(l >= n_layers for l in state.get(f"{p}_layers")):
        state.set(f"{p}_layers", sorted({max(0, vec.layer - 3), vec.layer, min(n_layers - 1, vec.layer + 3)}))

    st.markdown("#### Coefficient x layer sweep")
    st.caption(
        "Greedy continuations of one prompt for every (layer, coefficient). Each layer uses the "
        f"vector built at that layer; mode: {'every step at the last position' if mode == 'last' else 'the prompt’s first positions'}. "
        "Score: the probability of the target word as the first new token, or, without a target word, "
        "the fraction of keywords that appear in the text."
    )
    keys = [f"{p}_{k}" for k in ("prompt", "layers", "coeffs", "max_new", "target", "keywords")]
    with st.form(f"{p}_sweep_form"):
        c1, c2 = st.columns(2)
        _field(c1, "text_input", "Prompt", key=f"{p}_prompt")
        _field(c2, "multiselect", "Layers (at most 6)", list(range(n_layers)), key=f"{p}_layers", max_selections=6)
        c3, c4, c5, c6 = st.columns(4)
        _field(c3, "text_input", f"Coefficients (at most {MAX_COEFFS})", key=f"{p}_coeffs")
        _field(c4, "number_input", "New tokens", 1, 40, key=f"{p}_max_new")
        _field(
            c5,
            "text_input",
            "Target word",
            key=f"{p}_target",
            help="Scored as p(' word') at the first new token; leave empty to score keywords",
        )
        _field(c6, "text_input", "Keywords (comma separated)", key=f"{p}_keywords")
        st.form_submit_button("Run the sweep", on_click=_commit(keys, f"{p}_run"))
    if state.get(f"{p}_run"):
        try:
            coeffs = tuple(checks.parse_coeffs(state.get(f"{p}_coeffs"), MAX_COEFFS))
            layers = tuple(sorted(state.get(f"{p}_layers")))
            checks.check_sweep_grid(layers, coeffs)
        except UserInputError as exc:
            st.error(str(exc))
        else:
            values = values_at(layers)
            if values is not None:
                target = state.get(f"{p}_target").strip() or None
                keywords = tuple(k.strip() for k in state.get(f"{p}_keywords").split(",") if k.strip())
                by_layer = tuple((l, compute.digest(values[l])) for l in layers)
                res = running.run(
                    f"Sweeping {len(layers)} layers x {len(coeffs)} coefficients",
                    lambda _progress: compute.steer_sweep(
                        ctx.spec,
                        state.get(f"{p}_prompt"),
                        by_layer,
                        values,
                        coeffs,
                        mode,
                        int(state.get(f"{p}_max_new")),
                        target,
                        keywords,
                        lm,
                        _progress,
                    ),
                )
                norms = res and _norms(ctx, res.prompt)
                if res and norms:
                    _show_sweep(res, norms, p)
                    widgets.nnsight_code(  # the script behind this sweep
                        "this sweep",
                        lambda: sweep_script(
                            ctx.spec,
                            res.prompt,
                            source,
                            res.layers,
                            res.coeffs,
                            mode,
                            int(state.get(f"{p}_max_new")),
                            target,
                            keywords,
                        ),
                        f"{p}.py",
                    )

    st.markdown("#### Save")
    saving.save_form(f"{p}_save", vec, name_key=f"{p}_name_{vec.name}", note="Use it on the Steer page.")


def _show_sweep(res: SweepResult, norms: list[float], p: str) -> None:
    rows = [f"{c:g}" for c in res.coeffs]
    cols = [f"layer {l}" for l in res.layers]
    texts = [list(r) for r in res.texts]
    if res.scores is not None:
        st.plotly_chart(
            figures.grid(
                [list(r) for r in res.scores],
                cols,
                rows,
                f"{res.score_name} (unsteered: {res.baseline_score:.3f})",
                "layer",
                "coefficient",
                hover=texts,
            ),
            key=f"{p}_grid",
        )
    st.caption(f"Unsteered: {res.prompt!r} → {res.baseline_text!r}".replace("`", "'"))
    st.dataframe(
        pd.DataFrame(texts, index=rows, columns=cols).rename_axis("coefficient"), width="stretch", key=f"{p}_texts"
    )
    rel = res.relative_norms(norms)
    st.caption(
        "Added norm relative to the typical residual norm at each layer (|coefficient| x ‖v‖ / ‖residual‖, last token of the prompt):"
    )
    st.dataframe(
        pd.DataFrame(rel, index=rows, columns=cols).rename_axis("coefficient").style.format("{:.2f}"),
        width="stretch",
        key=f"{p}_rel",
    )


# ---- the page ----------------------------------------------------------------------------------

st.title("Steering vectors")
widgets.explain(
    "**What am I looking at?** Two ways to make a steering vector without training. **Activation "
    "addition**: run a positive and a negative prompt (*Love* / *Hate*), subtract the outputs of one "
    "decoder block position by position; the difference is added to the first positions of a new "
    "prompt. **Contrastive pairs (CAA)**: for many (positive, negative) texts, average the difference "
    "of the block outputs at the last token, at every layer; the vector for one layer is added at the "
    "newest token on every step. Then sweep the coefficient and the layer on a prompt, and save the "
    "vector to the library for the *Steer* page. Coefficients are shown relative to the typical "
    "residual-stream norm, which grows with depth. "
    f"{widgets.PAPERS['actadd']}; {widgets.PAPERS['caa']}."
)
ctx = sidebar.context()

if widgets.require(ctx, task=False):
    lm = ctx.lm
    tab_a, tab_c = st.tabs(["Activation addition", "Contrastive pairs (CAA)"])

    with tab_a:
        if state.get("sv_a_layer") >= lm.arch.n_layers:
            state.set("sv_a_layer", lm.arch.n_layers // 4)
        keys = ["sv_a_positive", "sv_a_negative", "sv_a_layer", "sv_a_coeff"]
        with st.form("sv_a_form"):
            c1, c2, c3, c4 = st.columns(4)
            _field(c1, "text_input", "Positive prompt", key="sv_a_positive")
            _field(c2, "text_input", "Negative prompt", key="sv_a_negative")
            _field(c3, "selectbox", "Layer", list(range(lm.arch.n_layers)), key="sv_a_layer")
            _field(
                c4,
                "number_input",
                "Coefficient",
                -limits.MAX_ABS_COEFF,
                limits.MAX_ABS_COEFF,
                key="sv_a_coeff",
                step=0.5,
                help="Suggested strength, saved with the vector",
            )
            st.form_submit_button("Build the vector", type="primary", on_click=_commit(keys, "sv_a_built"))
        if state.get("sv_a_built"):
            pos, neg, layer, coeff = (
                state.get("sv_a_positive"),
                state.get("sv_a_negative"),
                int(state.get("sv_a_layer")),
                float(state.get("sv_a_coeff")),
            )
            built = running.run(
                "Running both prompts", lambda _progress: compute.actadd(ctx.spec, pos, neg, (layer,), lm)
            )
            if built:
                values, aligned = built[0][layer], built[1]
                vec = steering_vectors.make_actadd_vector(lm.model_id, pos, neg, layer, values, aligned, coeff)
                st.markdown(
                    "**The two prompts, aligned** (the shorter is padded at the end with spaces, as in the paper)"
                )
                table = pd.DataFrame(
                    {
                        "position": range(len(aligned)),
                        "positive token": [repr(a) for a, _ in aligned],
                        "negative token": [repr(b) for _, b in aligned],
                        "‖difference‖": steering_vectors.row_norms(values),
                    }
                )
                st.dataframe(table, hide_index=True, width="stretch", key="sv_a_tokens")
                norms = _norms(ctx, state.get("sv_a_sweep_prompt"))
                v_norm = steering_vectors.mean_norm(values)
                msg = f"Vector: {values.shape[0]} positions x {values.shape[1]}, mean norm per position {v_norm:.1f}."
                if norms:
                    msg += (
                        f" At coefficient {coeff:g} it adds {abs(coeff) * v_norm:.1f} per position, "
                        f"{steering_vectors.relative_norm(coeff, v_norm, norms[layer]):.2f} x the typical residual norm at layer {layer} ({norms[layer]:.1f}, "
                        "last token of the sweep prompt; the first positions, where this vector is added, can have much larger norms)."
                    )
                st.info(msg)
                widgets.nnsight_code(  # the script behind this vector
                    "building this vector",
                    lambda: build_script(ctx.spec, ActAddSource(pos, neg), [layer]),
                    "actadd_vector.py",
                )

                def actadd_at(layers: tuple[int, ...], pos=pos, neg=neg) -> dict[int, Any] | None:
                    out = running.run(
                        f"Running both prompts at {len(layers)} layer(s)",
                        lambda _progress: compute.actadd(ctx.spec, pos, neg, layers, lm),
                    )
                    return None if out is None else out[0]

                sweep_and_save(ctx, vec, actadd_at, "prompt", "sv_a_sweep", ActAddSource(pos, neg))

    with tab_c:
        source = state.bound(st, "radio", "Pairs", [TYPED, UPLOAD], key="sv_c_source", horizontal=True)
        with st.form("sv_c_form"):
            if source == TYPED:
                _field(
                    st,
                    "text_area",
                    f"One pair per line: `positive | negative` (at most {limits.MAX_CAA_PAIRS})",
                    key="sv_c_text",
                    height=180,
                )
                upload = None
            else:
                upload = st.file_uploader(
                    "CSV (positive,negative columns), JSON or text", type=["csv", "json", "txt"], key="sv_c_upload"
                )
            built = st.form_submit_button("Build per-layer vectors", type="primary", on_click=_commit(["sv_c_text"]))
        if built:
            try:
                if source == TYPED:
                    state.set("sv_c_pairs", tuple(parse_pairs(state.get("sv_c_text"))))
                elif upload is None:
                    raise UserInputError("Choose a file to upload first.")
                else:
                    state.set("sv_c_pairs", tuple(parse_pairs_file(upload.getvalue(), upload.name)))
            except UserInputError as exc:
                st.error(str(exc))
        pairs = state.get("sv_c_pairs")
        if pairs:
            caa = running.run(
                f"Reading {len(pairs)} pairs at every layer",
                lambda _progress: compute.caa(ctx.spec, pairs, lm, _progress),
            )
            if caa is not None:
                st.caption(f"{len(pairs)} pairs; first: {pairs[0][0]!r} vs {pairs[0][1]!r}.".replace("`", "'"))
                if state.get("sv_c_layer") is None or state.get("sv_c_layer") >= lm.arch.n_layers:
                    state.set("sv_c_layer", course.caa_layer(lm.arch.n_layers))
                norms = _norms(ctx, state.get("sv_c_sweep_prompt"))
                v_norms = steering_vectors.row_norms(caa)
                layer = state.bound(st, "slider", "Layer of the vector", 0, lm.arch.n_layers - 1, key="sv_c_layer")
                left, right = st.columns(2)
                left.plotly_chart(
                    figures.layer_curves({"‖v‖": v_norms}, "CAA vector norm per layer", "norm", marked=layer),
                    key="sv_c_norms",
                )
                if norms:
                    right.plotly_chart(
                        figures.layer_curves(
                            {
                                "‖v‖ / ‖residual‖": [
                                    steering_vectors.relative_norm(1.0, v, n) for v, n in zip(v_norms, norms)
                                ]
                            },
                            "Relative to the typical residual norm",
                            "ratio",
                            marked=layer,
                        ),
                        key="sv_c_rel",
                    )
                widgets.nnsight_code(  # the script behind these vectors
                    "building these vectors",
                    lambda: build_script(ctx.spec, CAASource(tuple(pairs)), range(lm.arch.n_layers)),
                    "caa_vectors.py",
                )
                vec = steering_vectors.make_caa_vector(lm.model_id, pairs, layer, caa)
                sweep_and_save(
                    ctx, vec, lambda layers: {l: caa[l] for l in layers}, "last", "sv_c_sweep", CAASource(tuple(pairs))
                )
