"""Recipes: the course's classic experiments in one click.

Each recipe is data: the page it opens, every session-state control it sets (keys of
:mod:`dashboard.state`), what to look for, and what the default model (SmolLM2-135M) showed
when it was checked. The experiments' own settings are :mod:`core.course`'s (``warm`` computes
them ahead); layers are written for a 30-layer model and scaled to the loaded one
(:func:`core.course.scaled_layer`). The menu sits in the sidebar, so it is on every page;
"Apply" sets the controls in a callback (before any widget is drawn) and the next run opens the
recipe's page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core import course
from dashboard import lesson, state

LAYER_KEYS = ("lesson_add_layer",)  # values written for 30 layers, scaled on apply


@dataclass(frozen=True)
class Recipe:
    label: str
    page: str  # the page file it opens (relative to the entrypoint)
    settings: dict[str, Any] = field(default_factory=dict)
    look_for: str = ""
    on_default_model: str = ""  # what SmolLM2-135M showed when checked (honest, negatives too)


_FV_COMMON: dict[str, Any] = {
    "task_source": "Built-in task",
    "n_shots": 10,
    "n_prompts": 20,
    "seed": 0,
    "corruption": "shuffle",
    "metric": "prob",
    "head_mode": "Top-k",
    "top_k": 10,
    "fv_layer": "auto",
    "fv_coeff": 1.0,
    "lesson_fv_coeff": course.FV_COEFF,
    "lesson_ran_3": True,
}
_ACTADD_COMMON: dict[str, Any] = {
    "lesson_bos": course.ADD_BOS,
    "lesson_samples": course.ADD_SAMPLES,
    "lesson_add_seed": course.ADD_SEED,
    "lesson_max_new": course.ADD_MAX_NEW,
    "lesson_ran_4": True,
}


def _fv(task_name: str) -> dict[str, Any]:
    return {
        **_FV_COMMON,
        "task_name": task_name,
        "lesson_steer_prompt": course.fv_steer_prompt(task_name),
        "lesson_steer_for": task_name,
    }


def _additions(experiment: course.AdditionsExperiment) -> dict[str, Any]:
    return {
        **_ACTADD_COMMON,
        "lesson_additions": experiment.additions,
        "lesson_add_layer": experiment.layer,
        "lesson_add_prompt": experiment.prompt,
    }


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "Netherlands → Amsterdam (country-capital function vector)",
        lesson.step(3).path,
        _fv("country_capital"),
        "The steered text names Amsterdam, the unsteered one only repeats 'the Netherlands'. "
        "The Netherlands → Amsterdam pair is removed from the vector's pairs (the page says so).",
        "Shown: unsteered ' the Netherlands. But what about the Netherlands? ...', steered "
        "' Amsterdam Amsterdam Amsterdam. ...' (top 10 heads, automatic layer 18, coefficient 1). "
        "Honestly: on single-token test queries this task's zero-shot accuracy barely moves with "
        "the vector on this small model (about 3% with and without); free generation shows it.",
    ),
    Recipe(
        'The word "hot" means (antonym function vector)',
        lesson.step(3).path,
        _fv("antonym"),
        "The steered text answers 'cold'; the unsteered one talks about 'very hot'. The pair hot → cold "
        "is removed from the vector's pairs.",
        "Shown: unsteered ' \"very hot\" in the context of the sentence. ...', steered ' cold. ...' "
        "(automatic layer 17, coefficient 1); zero-shot antonym accuracy rises from 0% to about 54% "
        "with the vector.",
    ),
    Recipe(
        '"Love" − "Hate" (activation addition)',
        lesson.step(4).path,
        _additions(course.LOVE_HATE),
        "Steered samples of 'I hate you because' turn warmer (love, care, kindness) than the unsteered ones.",
        "Shown in all 3 samples (layer 6, seed 0): unsteered ' of your past. I'm not going to tell you that.', "
        "steered ' I am your friend. ... love and loyalty are what make life worth living'.",
    ),
    Recipe(
        "Weddings (activation addition)",
        lesson.step(4).path,
        _additions(course.WEDDINGS),
        "Steered samples bring up weddings (marriage, bride, ceremony); unsteered ones do not.",
        "NOT shown: no steered sample mentions weddings, at the course's coefficient 4 (layer 12, the "
        "course's layer 20 of 48 scaled) nor at layers 3-12 with coefficients up to 15; the texts change "
        "but not toward weddings. The two prompts differ only by 'do not', and this small model does not "
        "turn that difference into the topic. Try it on a larger model.",
    ),
    Recipe(
        "The Eiffel Tower is in Rome (activation addition)",
        lesson.step(4).path,
        _additions(course.EIFFEL_ROME),
        "Steered samples send people to Rome or Italy instead of Paris or France.",
        "Partly shown: 2 of 3 steered samples (layer 15, the course's 24 of 48 scaled, seed 0) turn "
        "Roman ('The Roman Forum ... Italian festival', 'the Colosseum'); the unsteered ones mention Paris.",
    ),
)


def by_label(label: str) -> Recipe | None:
    return next((r for r in RECIPES if r.label == label), None)


def _n_layers() -> int:
    ctx = state.get(state.CONTEXT)
    lm = getattr(ctx, "lm", None)
    return lm.arch.n_layers if lm is not None else course.REFERENCE_LAYERS


def apply(label: str) -> None:
    """Set every control of the recipe ``label`` and ask for its page (a widget callback)."""
    recipe = by_label(label)
    if recipe is None:
        return
    for key, value in recipe.settings.items():
        if key in LAYER_KEYS:
            value = course.scaled_layer(value, _n_layers())
        state.set(key, value)
    state.set("recipe_active", recipe.label)
    state.set("recipe_go", recipe.page)


def menu() -> None:
    """The Recipes menu (sidebar): pick, Apply, and what to look for after applying."""
    with st.sidebar.expander("Recipes", expanded=state.get("recipe_active") is not None):
        labels = [r.label for r in RECIPES]
        choice = st.selectbox("Experiment", labels, key="recipe_choice", index=None, placeholder="Choose one")
        st.button("Apply", key="recipe_apply", disabled=choice is None, on_click=apply, args=(choice,), type="primary")
        active = by_label(state.get("recipe_active") or "")
        if active is not None:
            st.markdown(f"**{active.label}**: {active.look_for}")
            if active.on_default_model:
                st.caption(f"On SmolLM2-135M: {active.on_default_model}")
    go = state.get("recipe_go")
    if go is not None:
        state.set("recipe_go", None)
        st.switch_page(go)
