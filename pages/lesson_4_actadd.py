"""Lesson step 4: activation addition from a list of additions, sampled as in the course."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import course, limits
from core.additions import MAX_ADDITIONS, parse_additions, with_bos
from core.errors import UserInputError
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import AdditionsSource
from dashboard import compute, lesson, running, sidebar, state, widgets

N = 4
KEYS = [
    "lesson_additions",
    "lesson_add_layer",
    "lesson_add_prompt",
    "lesson_bos",
    "lesson_samples",
    "lesson_add_seed",
    "lesson_max_new",
]
_field = state.form_field
lesson.header(N)
ctx = sidebar.context()
if widgets.require(ctx, task=False):
    lm = ctx.lm
    if state.get("lesson_add_layer") is None or state.get("lesson_add_layer") >= lm.arch.n_layers:
        state.set("lesson_add_layer", course.scaled_layer(course.LOVE_HATE.layer, lm.arch.n_layers))
    with st.form("lesson_add_form"):
        c1, c2 = st.columns([2, 1])
        _field(
            c1,
            "text_area",
            f'Additions: one `coefficient "prompt"` per line, `@layer` at the end for another layer '
            f"(at most {MAX_ADDITIONS}; the quotes keep spaces)",
            key="lesson_additions",
            height=110,
        )
        _field(c2, "number_input", "Layer (lines without @layer)", 0, lm.arch.n_layers - 1, key="lesson_add_layer")
        _field(c2, "checkbox", "Prepend the beginning-of-sequence token", key="lesson_bos")
        _field(st, "text_input", "Prompt to steer", key="lesson_add_prompt")
        c3, c4, c5 = st.columns(3)
        _field(c3, "number_input", "Comparisons (samples)", 1, limits.MAX_SAMPLES, key="lesson_samples")
        _field(c4, "number_input", "Seed", 0, 10_000, key="lesson_add_seed")
        _field(c5, "number_input", "New tokens", *state.LESSON_MAX_NEW, key="lesson_max_new")
        st.caption(
            f"Sampling as in the course: temperature {course.ADD_TEMPERATURE:g}, top-p "
            f"{course.ADD_TOP_P:g}, repetition penalty {course.ADD_REPETITION_PENALTY:g}; the unsteered and steered samples share the seed and the random numbers."
        )
        st.form_submit_button("Steer", type="primary", on_click=state.committer(KEYS, "lesson_ran_4"))
    if state.get("lesson_ran_4"):
        layer, bos = int(state.get("lesson_add_layer")), bool(state.get("lesson_bos"))
        prompt = state.get("lesson_add_prompt")
        try:
            additions = tuple(parse_additions(state.get("lesson_additions"), layer))
        except UserInputError as exc:
            st.error(str(exc))
            additions = ()
        summed = additions and running.run(
            "Running the additions' prompts",
            lambda _progress: compute.addition_sum(ctx.spec, additions, bos, lm, _progress),
        )
        if summed:
            st.subheader("The additions, aligned position by position")
            width = max(len(t) for t in summed.tokens)
            st.dataframe(
                pd.DataFrame(
                    [
                        [f"{a.coeff:+g}", a.layer] + [repr(t) for t in toks] + [""] * (width - len(toks))
                        for a, toks in zip(additions, summed.tokens)
                    ],
                    columns=["coefficient", "layer"] + [f"pos {i}" for i in range(width)],
                ),
                hide_index=True,
                width="stretch",
                key="lesson_add_tokens",
            )
            decoding = course.add_sampling(int(state.get("lesson_samples")), int(state.get("lesson_add_seed")))
            gen_prompt = with_bos(lm, prompt) if bos else prompt
            pairs = running.run(
                "Generating",
                lambda _progress: compute.steer_pair(
                    ctx.spec,
                    (gen_prompt,),
                    compute.digest(summed.values),
                    summed.values,
                    summed.layer,
                    1.0,
                    "prompt",
                    int(state.get("lesson_max_new")),
                    decoding,
                    lm,
                    _progress,
                    more=tuple(summed.more),
                ),
            )
            if pairs:
                terms = " ".join(f"{a.coeff:+g}·h{a.layer}({a.prompt!r})" for a in additions)
                lesson.show_pair(pairs[0], f"Steered: {terms}", prompt=prompt)
                widgets.nnsight_code(
                    "these steered samples (the additions rebuilt in the script)",
                    lambda: steer_script(
                        ctx.spec,
                        [gen_prompt],
                        AdditionsSource(tuple((a.coeff, a.prompt, a.layer) for a in additions), bos),
                        summed.layer,
                        1.0,
                        "prompt",
                        int(state.get("lesson_max_new")),
                        decoding,
                    ),
                    "lesson_actadd.py",
                )
                lesson.share_actadd(additions)
lesson.footer(N)
