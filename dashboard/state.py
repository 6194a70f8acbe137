"""Every session-state key and its default, in one place.

How widget values survive a page change. Streamlit forgets a widget's state at the end of any
script run that does not draw the widget, which, with ``st.navigation``, is every run on
another page.

- The sidebar (``dashboard/sidebar.py``) is drawn by the entrypoint on every run, so its
  widgets use the keys below directly (``model_id``, ``task_source``, ``typed_examples``...).
- A page's own widgets are drawn on that page only, so each is drawn by :func:`bound` (or,
  inside an ``st.form``, :func:`form_field` plus :func:`committer`) under a private key
  ``_w_<key>`` seeded from the persistent key ``<key>`` on every run and copied back when the
  user changes it. Only the private key is forgotten on another page. A plain widget key
  would not do here: pages also write these keys after the widget is drawn (a click on the
  head heatmap adds a head to ``manual_heads``, below its multiselect), which Streamlit
  forbids for a widget's own key in the run that drew it.
- The Shots slider is the one sidebar widget with a key of its own (``n_shots_slider``):
  it shows the user's choice ``n_shots`` capped by the task's size, so the cap of a small
  example set never becomes the choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core import course
from core.models import DEFAULT_MODEL
from core.prompts import DEFAULT_TEMPLATE

DEFAULT_TYPED = "hot -> cold\nbig -> small\nfast -> slow\nhappy -> sad\nup -> down"

# option labels that are also stored values
STEER_LAST, STEER_PROMPT = "every step at the last position", "at the prompt's first positions"
GREEDY, SAMPLING = "greedy", "sampling"
PAIRS_TYPED, PAIRS_UPLOAD = "Type pairs", "Upload a file"
DEFAULT_PAIRS = "\n".join(f"{pos} | {neg}" for pos, neg in course.CAA_PAIRS)  # one "positive | negative" per line
SWEEP_DEFAULTS: dict[str, Any] = {
    "prompt": "I hate you because",
    "layers": None,  # set from the vector's layer
    "coeffs": "1, 4, 8",
    "max_new": 12,
    "target": "love",
    "keywords": "love, happy, wonderful, beautiful, kind",
    "run": False,
}

# The ranges of the widgets whose values a shareable link also carries: the widget and the
# link's check (dashboard.link_params) both read them here, so a restored value always fits.
SIDEBAR_PROMPTS = (1, 50)  # the sidebar's "Prompts per batch" slider
SIDEBAR_SEED = (0, 10_000)  # the sidebar's "Seed" input
FV_COEFF = (-10.0, 10.0)  # the Function vector page's "Coefficient" input
STEER_SEED = (0, 1_000_000)  # the Steer page's sampling "Seed" input
TOP_K_MAX = 50  # the Head attribution page's "k (top heads)" slider
COMPARE_K = (1, 30)  # the Compare tasks page's "k (top heads per task)"
COMPARE_N_EVAL = (5, 50)  # its "Test queries per task"
REPORT_K = (1, 30)  # the Task report's "Heads in the function vector"
LESSON_FV_COEFF = (0.0, 10.0)  # lesson step 3: the steering coefficient input
LESSON_MAX_NEW = (1, 100)  # lesson step 4: "New tokens"
LESSON_CAA_COEFF = (-20.0, 20.0)  # lesson step 5: "Coefficient"
SOURCES = ["Built-in task", "Type examples", "Upload a file"]  # the sidebar's "Examples" radio

CONTEXT = "_context"  # dashboard.sidebar: set by the entrypoint on every run, read by pages

DEFAULTS: dict[str, Any] = {
    # model
    "model_id": DEFAULT_MODEL,
    "dtype": "float32",
    "device": "cpu",
    "remote": False,
    # task
    "task_source": "Built-in task",  # or "Type examples", "Upload a file"
    "task_name": "antonym",
    "typed_examples": DEFAULT_TYPED,
    "uploaded_task": None,  # a core.tasks.Task parsed from an upload
    # "Describe a task" (dashboard.sidebar, core.llm_pairs): a language model writes typed examples
    "describe_text": "",
    "describe_n": 40,
    "written_pairs": None,  # {"text", "summary", "dropped"} of the last pairs written
    "written_pending": False,  # written pairs wait in the examples box until "Use these examples"
    # prompts
    "n_shots": 10,  # the user's choice; the slider shows it capped by the task's size
    "n_shots_slider": 10,  # the Shots slider's own key (dashboard.sidebar)
    "n_prompts": 20,
    "seed": 0,
    "template": DEFAULT_TEMPLATE.replace("\n", "\\n"),  # shown escaped in a one-line input
    # attention patterns (circuitsvis ships about 1.3 MB of JavaScript per pattern, so a
    # page draws one only when asked): on Model & prompts, and for a head on Head attribution
    "show_attention": False,
    "show_head_attention": False,
    "show_induction": False,  # Head attribution: the induction-heads comparison, run when asked
    # head attribution and function vectors
    "metric": "prob",
    "corruption": "shuffle",  # core.checks.CORRUPTIONS: chosen on Head attribution, read by the sidebar
    "top_k": 10,
    "manual_heads": [],  # ["20.5", ...] chosen by hand
    "head_mode": "Top-k",
    "fv_layer": "auto",
    "fv_coeff": 1.0,
    # Task report (form fields, copied on Run; "report_for" is the (model, task, settings) run)
    "report_heads": 10,
    "report_prompt": "",
    "report_for": None,
    # Compare tasks (widgets; the last Run's request: tasks, parameters and settings)
    "compare_tasks": ["antonym", "present_past", "singular_plural"],
    "compare_top_k": 10,
    "compare_layer": "auto",
    "compare_n_eval": 30,
    "compare_request": None,
    # vectors made in this session, by name (core.vectors.Vector)
    "session_vectors": {},
    # Steer (form fields are copied into these on submit, so they survive page switches)
    "steer_prompts": "When you think of Netherlands, you usually think of",
    "steer_vector": None,
    "steer_vector_for": None,  # the vector the layer and mode below were set for
    "steer_layer": 0,
    "steer_coeff": 4.0,
    "steer_mode": STEER_LAST,
    "steer_decoding": GREEDY,
    "steer_temperature": 1.0,
    "steer_top_p": 0.95,
    "steer_rep_penalty": 1.0,
    "steer_samples": 1,
    "steer_max_new": 30,
    "steer_seed": 0,
    "steer_request": None,  # the vector of the last Generate; its settings are the keys above
    # Steering vectors: activation addition (sv_a_*) and CAA (sv_c_*)
    "sv_a_positive": "Love",
    "sv_a_negative": "Hate",
    "sv_a_layer": 6,
    "sv_a_coeff": 5.0,
    "sv_a_built": False,
    "sv_c_source": PAIRS_TYPED,
    "sv_c_text": DEFAULT_PAIRS,
    "sv_c_pairs": None,  # the pairs of the last build (typed or uploaded)
    "sv_c_layer": None,
    # ... and the sweep of each (keys "sv_a_sweep_<name>", "sv_c_sweep_<name>")
    **{f"{p}_{name}": value for p in ("sv_a_sweep", "sv_c_sweep") for name, value in SWEEP_DEFAULTS.items()},
    # ---- the guided lesson (pages/lesson_*.py) and the Recipes menu (dashboard/recipes.py) ----
    # each step's button sets its "lesson_ran_<n>" (results stay on screen); a recipe sets the
    # controls below and the step's flag, then opens the page. The values are core.course's
    # (what `warm` computes ahead); layers are None: each page sets core.course's layer scaled
    # to the model (core.course.scaled_layer).
    **{f"lesson_ran_{n}": False for n in range(1, 6)},
    "lesson_prompt": course.ANATOMY_PROMPT,  # step 1
    "lesson_layer": None,  # step 1: the layer whose shapes are shown
    "lesson_steer_prompt": course.NETHERLANDS,  # step 3
    "lesson_steer_for": None,  # step 3: the task the prompt was chosen for (dashboard.lesson)
    "lesson_fv_coeff": course.FV_COEFF,  # step 3: the function vector's coefficient in free generation
    "lesson_additions": course.LOVE_HATE.additions,  # step 4: one `coefficient "prompt"` per line
    "lesson_add_layer": None,  # step 4 (course.LOVE_HATE.layer, scaled)
    "lesson_add_prompt": course.LOVE_HATE.prompt,
    "lesson_bos": course.ADD_BOS,
    "lesson_samples": course.ADD_SAMPLES,
    "lesson_add_seed": course.ADD_SEED,
    "lesson_max_new": course.ADD_MAX_NEW,
    "lesson_caa_prompt": course.CAA_PROMPT,  # step 5
    "lesson_caa_coeff": course.CAA_COEFF,
    "recipe_choice": None,  # the Recipes menu's selection (a recipe's label)
    "recipe_active": None,  # the label of the recipe applied last: its "what to look for"
    "recipe_go": None,  # the page a recipe opens on the next run
    # Vector library
    "lib_inspect": None,
    "lib_compare": None,
    "lib_flash": None,  # a message shown after a rerun
    # shareable links (dashboard.links): read once per session; what was wrong with the link opened
    "link_read": False,
    "link_warnings": None,  # (page opened, [messages], {waiting params}) until another page is shown
    # what the sidebar resolved to in this script run (a dashboard.sidebar.Context)
    CONTEXT: None,
    # the Cancel button (dashboard.running)
    "_cancelled": None,
    "_cancelled_now": None,
    "_cancel_keys": [],  # Cancel button keys drawn in this script run
}


def init() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, (dict, list)) else value


def get(key: str) -> Any:
    init()
    return st.session_state[key]


def set(key: str, value: Any) -> None:  # shadows the builtin on purpose: mirrors get
    st.session_state[key] = value


def form_field(container: Any, widget: str, label: str, *args: Any, key: str, **kwargs: Any) -> Any:
    """A widget inside an ``st.form`` seeded from the persistent ``key``; :func:`committer`
    copies it back on submit (a form's widgets report nothing until then)."""
    init()
    st.session_state[f"_w_{key}"] = st.session_state[key]
    return getattr(container, widget)(label, *args, key=f"_w_{key}", **kwargs)


def committer(keys: list[str], flag: str | None = None) -> Callable[[], None]:
    """An ``on_click`` for a form's submit button: copy ``keys`` back, then set ``flag``."""

    def commit() -> None:
        for key in keys:
            if f"_w_{key}" in st.session_state:
                st.session_state[key] = st.session_state[f"_w_{key}"]
        if flag:
            st.session_state[flag] = True

    return commit


def bound(container: Any, widget: str, label: str, *args: Any, key: str, **kwargs: Any) -> Any:
    """A page's widget whose value lives in the persistent key ``key`` (see the module
    docstring): drawn under the private key ``_w_<key>``, seeded from ``key`` and copied
    back to it on change."""
    init()
    wkey = f"_w_{key}"
    st.session_state[wkey] = st.session_state[key]

    def sync() -> None:
        st.session_state[key] = st.session_state[wkey]

    return getattr(container, widget)(label, *args, key=wkey, on_change=sync, **kwargs)
