"""Vector library: list, inspect, compare, combine, upload, download and delete vectors."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import streamlit as st

from core import limits, steering_vectors
from core.errors import UserInputError
from core.library import default_library_dir
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import InlineVector
from core.vectors import Vector, check_name, combine, cosine_matrix, from_bytes, to_bytes
from dashboard import compute, figures, running, saving, sidebar, state, widgets


def _summary(vec: Vector) -> str:
    """The provenance in one short line (recipe, prompts, pairs, heads...)."""
    prov = vec.provenance or {}
    if "recipe" in prov:
        return f"recipe: {prov['recipe']}"
    if "positive" in prov and "negative" in prov:
        return f"{prov['positive']!r} - {prov['negative']!r}"
    parts = []
    for key, value in prov.items():
        if key in ("aligned_tokens", "first_pairs"):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}: {text}")
    line = "; ".join(parts)
    return line if len(line) <= 90 else line[:87] + "..."


def _table(vectors: dict[str, Vector], where: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": n,
                "method": v.method,
                "layer": v.layer,
                "shape": "x".join(map(str, v.values.shape)),
                "norm": round(v.norm, 3),
                "created": dt.datetime.fromtimestamp(v.created).strftime("%Y-%m-%d %H:%M"),
                "stored": where[n],
                "provenance": _summary(v),
            }
            for n, v in vectors.items()
        ],
        columns=["name", "method", "layer", "shape", "norm", "created", "stored", "provenance"],
    )


def _save(vec: Vector) -> None:
    """Save to the library and this session, then rerun so every section lists it."""
    path = saving.save(vec)
    state.set("lib_flash", f"Saved '{vec.name}' ({vec.method}, layer {vec.layer}, norm {vec.norm:.2f}) to {path}.")
    st.rerun()


st.title("Vector library")
widgets.explain(
    "**What am I looking at?** Every vector saved for the loaded model (function vectors, activation "
    "addition, CAA, combinations) and those made in this session. Inspect one (its norm and the tokens "
    "it promotes when read through the final norm and the unembedding), compare several (cosine "
    "similarity: 1 = same direction, 0 = unrelated, -1 = opposite), combine them with arithmetic "
    "(`a + b - c`, `0.5 * fv_antonym + hvector`), and upload, download or delete vector files "
    "(`.safetensors` with their provenance in the header; nothing is ever unpickled). "
    f"{widgets.PAPERS['fv']}; {widgets.PAPERS['actadd']}; {widgets.PAPERS['caa']}."
)
ctx = sidebar.context()

if widgets.require(ctx, task=False):
    lm = ctx.lm
    vectors, where, problems = compute.vectors_for(lm)
    for problem in problems:
        st.warning(f"A library file was skipped: {problem}")
    if state.get("lib_flash"):
        st.success(state.get("lib_flash"))
        state.set("lib_flash", None)
    st.caption(f"Library folder: `{default_library_dir()}` (set `FV_STUDIO_DATA` to move it).")

    if not vectors:
        st.info(
            f"No vectors for **{lm.model_id}** yet. Build one on the **Function vector** or **Steering "
            "vectors** page, or upload a file below."
        )
    else:
        st.subheader("Vectors")
        st.dataframe(_table(vectors, where), hide_index=True, width="stretch", key="lib_table")
        names = list(vectors)

        st.subheader("Inspect")
        if state.get("lib_inspect") not in vectors:
            state.set("lib_inspect", names[0])
        name = state.bound(st, "selectbox", "Vector", names, key="lib_inspect")
        vec = vectors[name]
        m = st.columns(4)
        m[0].metric("Norm", f"{vec.norm:.2f}")
        m[1].metric("Layer", vec.layer)
        m[2].metric("Shape", "x".join(map(str, vec.values.shape)))
        m[3].metric("Method", vec.method)
        key = compute.digest(vec.values)
        decoded = running.run("Decoding", lambda _progress: compute.decode_vector(ctx.spec, key, vec.values, 15, lm))
        left, right = st.columns(2)
        if decoded:
            left.plotly_chart(
                figures.decoded_tokens(
                    decoded, "Tokens the vector promotes" + (" (mean over positions)" if vec.values.dim() == 2 else "")
                ),
                key="lib_decode",
            )
        with right:
            st.markdown("**Provenance**")
            st.json(vec.provenance or {}, expanded=False)
            b1, b2 = st.columns(2)
            b1.download_button("Download .safetensors", to_bytes(vec), f"{name}.safetensors", key="lib_download")
            with b2.popover("Delete"):
                st.write(f"Delete **{name}** from the library and this session? This cannot be undone.")
                if st.button(f"Yes, delete '{name}'", type="primary", key="lib_delete"):
                    try:
                        saving.delete(lm.model_id, name)
                    except UserInputError as exc:  # e.g. a read-only library folder
                        st.error(str(exc))
                    else:
                        state.set("lib_inspect", None)
                        state.set("lib_flash", f"Deleted '{name}'.")
                        st.rerun()
        # a script that steers with this vector, its values inlined
        mode = "prompt" if vec.values.dim() == 2 else "last"
        coeff = steering_vectors.default_coeff(vec)
        layer = max(0, min(vec.layer, lm.arch.n_layers - 1))
        widgets.nnsight_code(
            f"steering with it (greedy, coefficient {coeff:g}, layer {layer})",
            lambda: steer_script(
                ctx.spec,
                ["When you think of Netherlands, you usually think of"],
                InlineVector(vec.values, vec.metadata(), f"the vector {name!r}"),
                layer,
                coeff,
                mode,
                30,
            ),
            f"steer_{name}.py",
        )
        st.caption(
            "Or from a notebook: `from core.library import Library, default_library_dir; "
            f"vec = Library(default_library_dir()).load({lm.model_id!r}, {name!r})`."
        )

        st.subheader("Compare")
        if state.get("lib_compare") is None or not set(state.get("lib_compare")) <= set(names):
            state.set("lib_compare", [n for n in (state.get("lib_compare") or names) if n in vectors][:8] or names[:8])
        chosen = state.bound(st, "multiselect", "Vectors to compare", names, key="lib_compare", max_selections=12)
        if len(chosen) >= 1:
            sims = cosine_matrix([vectors[n] for n in chosen])
            st.plotly_chart(figures.matrix(sims.tolist(), chosen, "Cosine similarity"), key="lib_cosine")
            if sims.isnan().any():
                st.caption(
                    "Blank cells: the two vectors have different shapes (e.g. a multi-position activation-addition vector vs a one-position vector)."
                )

        st.subheader("Combine")
        st.caption(
            f"Names, numbers, `+`, `-`, `*` and parentheses. Available: {', '.join(f'`{n}`' for n in names)}. "
            "The result keeps the first vector's layer."
        )
        with st.form("lib_combine"):
            c1, c2 = st.columns([3, 1])
            expression = c1.text_input("Expression", placeholder="a + b - c", key="lib_expression")
            new_name = c2.text_input("Name", value="combined", key="lib_combined_name")
            if st.form_submit_button("Combine and save"):
                try:
                    _save(combine(expression, vectors).renamed(check_name(new_name)))
                except UserInputError as exc:
                    st.error(str(exc))

    st.subheader("Upload")
    upload = st.file_uploader("A vector file saved by FV Studio (.safetensors)", type=["safetensors"], key="lib_upload")
    if upload is not None:
        try:
            data = upload.getvalue()
            if len(data) > limits.MAX_UPLOAD_BYTES * 8:
                raise UserInputError(f"{upload.name} is too large to be a vector file.")
            vec = from_bytes(data, expect_model=lm.model_id, expect_d_model=lm.arch.d_model, source=upload.name)
            st.success(
                f"{upload.name}: a valid {vec.method} vector '{vec.name}' for layer {vec.layer}, norm {vec.norm:.2f}."
            )
            with st.form("lib_add_upload"):
                up_name = st.text_input("Save as", value=vec.name, key="lib_upload_name")
                if st.form_submit_button("Add to the library"):
                    try:
                        _save(vec.renamed(check_name(up_name)))
                    except UserInputError as exc:
                        st.error(str(exc))
        except UserInputError as exc:
            st.error(str(exc))
