"""What each page's shareable link carries: its query parameters, their names, checks and keys.

One :class:`Param` per parameter: its name in the URL, the :mod:`dashboard.state` key it
stands for, how the URL's text is checked (by :mod:`core.checks`, with the bounds of the widget
that shows the value, so a restored value never breaks its widget) and stored, and how the
current value is written back (only when it differs from its default). The sidebar's settings
are on every page (:data:`COMMON`); each page's own are in :data:`PAGE_PARAMS`, by the page's
URL path. :mod:`dashboard.links` reads and writes them.

A button's press travels too (``run=1``, ``generate=1``, ``build=1``), so a link opens on its
result. A lesson step's or a build's press is a flag (:func:`_flag`). A press that runs for the
current choices (Steer's Generate, Compare tasks' and Task report's Run) is stored as its request
and written back only while that request is the current choices' (:func:`_pressed`);
:func:`compare_request` and :func:`report_request` build the request, for the page's Run and a
link's ``run=1`` alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import checks, limits
from core.additions import parse_additions
from core.attribution import METRICS
from core.errors import UserInputError
from core.models import LoadedModel, ModelSpec
from core.prompts import PromptSettings, check_template
from core.tasks import Task, builtin_names, load_builtin, parse_lines
from dashboard import compute, sidebar, state
from dashboard.sidebar import Context

STEER_MODES = {"last": state.STEER_LAST, "prompt": state.STEER_PROMPT}
DECODINGS = (state.GREEDY, state.SAMPLING)
BUILT_IN, TYPED = state.SOURCES[:2]
DEFAULT_TEXT = {  # what a dropped parameter falls back to, where its default value does not say it
    "manual_heads": "the top-k heads",
    "steer_vector": "the newest vector",
    "steer_request": "no generation until Generate is pressed",
    "compare_request": "no comparison until Run is pressed",
    "report_for": "no report until Run the report is pressed",
}


@dataclass(frozen=True)
class Param:
    """One query parameter: its name in the URL and the session-state key it stands for.

    ``read(text, lm)`` checks the URL's text and stores it (raising ``UserInputError``);
    ``lm`` is the loaded model, given only when ``needs_model``. ``write()`` is the URL's text for
    the current state, or None to leave the parameter out.
    """

    name: str
    key: str
    read: Callable[[str, LoadedModel | None], None]
    write: Callable[[], str | None]
    needs_model: bool = False


def as_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plain(name: str, key: str, check: Callable[[str], Any], show: Callable[[Any], str] = as_text) -> Param:
    """A parameter that is one state key: written when it differs from its default."""

    def read(text: str, _lm: LoadedModel | None) -> None:
        state.set(key, check(text))

    def write() -> str | None:
        value = state.get(key)
        return None if value == state.DEFAULTS[key] else show(value)

    return Param(name, key, read, write)


def _modelled(
    name: str, key: str, check: Callable[[str, LoadedModel], Any], write: Callable[[], str | None] | None = None
) -> Param:
    """A parameter checked against the loaded model (a layer, a number of heads)."""

    def read(text: str, lm: LoadedModel | None) -> None:
        if lm is None:
            raise UserInputError("no model is loaded to check it against.")
        state.set(key, check(text, lm))

    def changed() -> str | None:
        value = state.get(key)
        return None if value == state.DEFAULTS[key] else as_text(value)

    return Param(name, key, read, write or changed, needs_model=True)


def _whole(what: str, low: int, high: int) -> Callable[[str], int]:
    return lambda text: checks.parse_whole(text, what, low, high)


def _real(what: str, low: float, high: float) -> Callable[[str], float]:
    return lambda text: checks.parse_number(text, what, low, high)


def _text(what: str) -> Callable[[str], str]:
    return lambda text: checks.check_text(text, what)


_coeff = _real("coefficient", -limits.MAX_ABS_COEFF, limits.MAX_ABS_COEFF)  # a steering coefficient


def _layer(text: str, lm: LoadedModel) -> int:
    return checks.check_layer(checks.parse_whole(text, "layer", 0, 10_000), lm.arch.n_layers)


def _fv_layer(text: str, lm: LoadedModel) -> int | str:
    return "auto" if text.strip() == "auto" else _layer(text, lm)


def _top_k(text: str, lm: LoadedModel) -> int:
    return checks.parse_whole(
        text, "number of top heads (k)", 1, min(state.TOP_K_MAX, lm.arch.n_layers * lm.arch.n_heads)
    )


# --- the sidebar's settings (every page) -------------------------------------------------------


def _read_task(text: str, _lm: LoadedModel | None) -> None:
    task = load_builtin(text[:100])  # an unknown name: the list of built-in tasks
    state.set("task_name", task.name)
    state.set("task_source", BUILT_IN)


def _write_task() -> str | None:
    if state.get("task_source") != BUILT_IN or state.get("task_name") == state.DEFAULTS["task_name"]:
        return None
    return state.get("task_name")


def _read_examples(text: str, _lm: LoadedModel | None) -> None:
    if len(text) > limits.MAX_LINK_EXAMPLES_CHARS:
        raise UserInputError(
            f"a link carries at most {limits.MAX_LINK_EXAMPLES_CHARS} characters of examples (got {len(text)})."
        )
    parse_lines(text, name="typed")  # a bad line: its number and what is wrong
    state.set("typed_examples", text)
    state.set("task_source", TYPED)


def write_examples() -> str | None:
    text = state.get("typed_examples")
    if state.get("task_source") != TYPED or len(text) > limits.MAX_LINK_EXAMPLES_CHARS:
        return None
    return text


def _template(text: str) -> str:
    checks.check_text(text, "template")
    check_template(text.replace("\\n", "\n"))
    return text  # kept escaped, as the sidebar's one-line input shows it


COMMON = [
    _plain("model", "model_id", lambda t: checks.check_text(t, "model id").strip()),
    Param("task", "task_name", _read_task, _write_task),
    Param("examples", "typed_examples", _read_examples, write_examples),
    _plain("shots", "n_shots", _whole("number of shots", 0, limits.MAX_SHOTS)),
    _plain("prompts", "n_prompts", _whole("number of prompts", *state.SIDEBAR_PROMPTS)),
    _plain("seed", "seed", _whole("seed", *state.SIDEBAR_SEED)),
    _plain("template", "template", _template),
    _plain("corruption", "corruption", checks.check_corruption),
]

# --- each page's own settings ------------------------------------------------------------------


def _read_heads(text: str, lm: LoadedModel | None) -> None:
    heads = checks.parse_heads(text)
    if lm is None:
        raise UserInputError("no model is loaded to check them against.")
    state.set("manual_heads", [f"{l}.{h}" for l, h in checks.check_heads(lm, heads)])
    state.set("head_mode", "By hand")


def _write_heads() -> str | None:
    if state.get("head_mode") != "By hand" or not state.get("manual_heads"):
        return None
    return ",".join(state.get("manual_heads"))


def _write_top_k() -> str | None:
    if state.get("head_mode") == "By hand" or state.get("top_k") == state.DEFAULTS["top_k"]:
        return None
    return str(state.get("top_k"))


HEADS = [
    _plain("metric", "metric", lambda t: checks.check_choice(t, "metric", METRICS)),
    Param("heads", "manual_heads", _read_heads, _write_heads, needs_model=True),
    _modelled("k", "top_k", _top_k, _write_top_k),
]


def _flag(name: str, key: str) -> Param:
    """A button's lasting effect (a result on screen): ``1`` in the URL while it is on."""

    def read(text: str, _lm: LoadedModel | None) -> None:
        state.set(key, checks.check_choice(text, "value (use 1)", ("1", "0")) == "1")

    return Param(name, key, read, lambda: "1" if state.get(key) else None)


def _read_vector(text: str, lm: LoadedModel | None) -> None:
    if lm is None:
        raise UserInputError("no model is loaded to look it up for.")
    vectors, _where, _problems = compute.vectors_for(lm)
    if text not in vectors:
        raise UserInputError(f"no vector '{text[:60]}' in this server's library for {lm.model_id}.")
    state.set("steer_vector", text)
    state.set("steer_vector_for", text)  # the link's layer, coefficient and mode, not the vector's own


def _write_vector() -> str | None:
    return state.get("steer_vector")


def _pressed(name: str, key: str, request: Callable[[], Any]) -> Param:
    """A Run-like button whose press is stored as its request (what it ran for) under ``key``,
    and whose result shows while that request is the current choices' ``request()``: ``1`` in
    the URL then; opening a link with ``1`` stores ``request()``, as the press does. Read after
    the sidebar (the request can need its model, task and settings) and after the page's other
    parameters."""

    def read(text: str, lm: LoadedModel | None) -> None:
        if checks.check_choice(text, "value (use 1)", ("1", "0")) == "1":
            if lm is None:
                raise UserInputError("no model is loaded to run it with.")
            state.set(key, request())

    def write() -> str | None:
        ran = state.get(key)
        return "1" if ran is not None and ran == request() else None

    return Param(name, key, read, write, needs_model=True)


STEER = [
    Param("vector", "steer_vector", _read_vector, _write_vector, needs_model=True),
    _plain(
        "prompt", "steer_prompts", lambda t: "\n".join(checks.check_prompts([p for p in t.splitlines() if p.strip()]))
    ),
    _modelled("layer", "steer_layer", _layer),
    _plain("coeff", "steer_coeff", _coeff),
    _plain(
        "mode",
        "steer_mode",
        lambda t: STEER_MODES[checks.check_choice(t, "steering mode", list(STEER_MODES))],
        lambda v: {label: m for m, label in STEER_MODES.items()}[v],
    ),
    _plain("decoding", "steer_decoding", lambda t: checks.check_choice(t, "decoding", DECODINGS)),
    _plain(
        "temperature",
        "steer_temperature",
        _real("temperature", 0.05, limits.MAX_TEMPERATURE),
    ),
    _plain("top_p", "steer_top_p", _real("top-p", 0.05, 1.0)),
    _plain(
        "penalty",
        "steer_rep_penalty",
        _real("repetition penalty", 0.1, limits.MAX_REPETITION_PENALTY),
    ),
    _plain("samples", "steer_samples", _whole("number of samples", 1, limits.MAX_SAMPLES)),
    _plain("max_new", "steer_max_new", _whole("number of new tokens", 1, limits.MAX_NEW_TOKENS)),
    _plain("sample_seed", "steer_seed", _whole("sampling seed", *state.STEER_SEED)),
    _pressed("generate", "steer_request", lambda: state.get("steer_vector")),  # after vector
]

STEERING_VECTORS = [
    _plain("positive", "sv_a_positive", _text("positive prompt")),
    _plain("negative", "sv_a_negative", _text("negative prompt")),
    _modelled("layer", "sv_a_layer", _layer),
    _plain("coeff", "sv_a_coeff", _coeff),
    _plain("prompt", "sv_a_sweep_prompt", _text("sweep prompt")),
    _flag("build", "sv_a_built"),
]


def _additions(text: str) -> str:
    parse_additions(checks.check_text(text, "additions"), 0)  # a bad line: its number
    return text


# the lesson's steps (pages/lesson_*.py); ``run=1``: the step's button was pressed
LESSON = {
    "lesson_1_model": [
        _plain("prompt", "lesson_prompt", _text("prompt")),
        _modelled("layer", "lesson_layer", _layer),
        _flag("run", "lesson_ran_1"),
    ],
    "lesson_2_hvector": [_flag("run", "lesson_ran_2")],
    "lesson_3_fv": [
        HEADS[0],  # metric
        _modelled("k", "top_k", _top_k),
        _modelled("layer", "fv_layer", _fv_layer),
        _plain("coeff", "fv_coeff", _real("coefficient", *state.FV_COEFF)),
        _plain("prompt", "lesson_steer_prompt", _text("steering prompt")),
        _plain("steer_coeff", "lesson_fv_coeff", _real("steering coefficient", *state.LESSON_FV_COEFF)),
        _flag("run", "lesson_ran_3"),
    ],
    "lesson_4_actadd": [
        _plain("additions", "lesson_additions", _additions),
        _modelled("layer", "lesson_add_layer", _layer),
        _plain("prompt", "lesson_add_prompt", _text("prompt to steer")),
        _plain(
            "bos",
            "lesson_bos",
            lambda t: checks.check_choice(t, "value (use 1)", ("1", "0")) == "1",
            lambda v: "1" if v else "0",
        ),
        _plain("samples", "lesson_samples", _whole("number of samples", 1, limits.MAX_SAMPLES)),
        _plain("sample_seed", "lesson_add_seed", _whole("sampling seed", *state.SIDEBAR_SEED)),
        _plain("max_new", "lesson_max_new", _whole("number of new tokens", *state.LESSON_MAX_NEW)),
        _flag("run", "lesson_ran_4"),
    ],
    "lesson_5_caa": [
        _plain("prompt", "lesson_caa_prompt", _text("prompt to steer")),
        _modelled("layer", "sv_c_layer", _layer),
        _plain("coeff", "lesson_caa_coeff", _real("coefficient", *state.LESSON_CAA_COEFF)),
        _flag("run", "lesson_ran_5"),
    ],
}


def _tasks(text: str) -> list[str]:
    """Built-in tasks to compare, by commas (the sidebar's typed task does not travel)."""
    names = checks.check_task_names([n.strip() for n in text.split(",") if n.strip()])
    return [load_builtin(n[:100]).name for n in names]


def compare_choices(ctx: Context) -> dict[str, str | None]:
    """The Compare tasks page's task options, label -> built-in name; the sidebar's typed or
    uploaded task, when there is one, is the label ``"<name> (sidebar)"`` -> None."""
    choices: dict[str, str | None] = {name: name for name in builtin_names()}
    if ctx.task is not None and state.get("task_source") != BUILT_IN:
        choices[f"{ctx.task.name} (sidebar)"] = None
    return choices


def compare_request(ctx: Context) -> dict[str, Any]:
    """What Compare tasks' Run asks for with the current choices ("compare_request" holds the
    last one): the tasks, the sidebar's prompt settings, the metric and the page's parameters."""
    choices = compare_choices(ctx)
    labels = [x for x in state.get("compare_tasks") if x in choices]
    return {
        "tasks": tuple(ctx.task if choices[x] is None else load_builtin(choices[x]) for x in labels),
        "settings": ctx.settings,
        "metric": state.get("metric"),
        "top_k": int(state.get("compare_top_k")),
        "layer": state.get("compare_layer"),
        "n_eval": int(state.get("compare_n_eval")),
    }


def report_request(ctx: Context) -> tuple[ModelSpec, Task | None, PromptSettings | None]:
    """What Task report's Run asks for ("report_for" holds the last one): the model, task and
    prompt settings; its own fields (heads, prompt) are committed with the press."""
    return (ctx.spec, ctx.task, ctx.settings)


COMPARE = [
    HEADS[0],  # metric
    _plain("tasks", "compare_tasks", _tasks, ",".join),
    _plain("k", "compare_top_k", _whole("number of top heads (k)", *state.COMPARE_K)),
    _modelled("layer", "compare_layer", _fv_layer),
    _plain("n_eval", "compare_n_eval", _whole("number of test queries", *state.COMPARE_N_EVAL)),
    _pressed("run", "compare_request", lambda: compare_request(sidebar.context())),  # after the others
]
REPORT = [
    _plain("k", "report_heads", _whole("number of heads", *state.REPORT_K)),
    _plain("prompt", "report_prompt", _text("prompt")),
    _pressed("run", "report_for", lambda: report_request(sidebar.context())),
]

# the parameters of each page, by its URL path ("" is the default page); sidebar ones on all
PAGE_PARAMS: dict[str, list[Param]] = {
    **LESSON,
    "compare_tasks": COMPARE,
    "task_report": REPORT,
    "head_attribution": HEADS,
    "function_vector": [
        *HEADS,
        _modelled("layer", "fv_layer", _fv_layer),
        _plain("coeff", "fv_coeff", _real("coefficient", *state.FV_COEFF)),
    ],
    "steer": STEER,
    "steering_vectors": STEERING_VECTORS,
}


def params_of(url_path: str) -> list[Param]:
    """The parameters a page's link carries: the sidebar's, then the page's own."""
    return COMMON + PAGE_PARAMS.get(url_path, [])
