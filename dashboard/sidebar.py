"""The sidebar: model, task and prompt settings, drawn once per script run by the entrypoint.

``dashboard/app.py`` calls :func:`draw` before ``st.navigation(...).run()``, so the sidebar
runs on every page and its widgets keep their values across pages with plain session-state
keys (Streamlit drops a widget's state only when a run does not draw it). :func:`draw`
resolves the widgets to a :class:`Context` (model spec, loaded model, task, prompt
settings); pages read it with :func:`context` and never draw the sidebar themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import limits
from core.errors import UserInputError
from core.llm_pairs import HOW_TO_CONFIGURE, write_pairs
from core.models import DEFAULT_MODEL, DTYPES, LoadedModel, ModelSpec, available_devices
from core.prompts import PromptSettings, check_template
from core.server_config import ServerConfig
from core.tasks import Task, builtin_names, describe, load_builtin, parse_file, parse_lines
from dashboard import compute, recipes, server, state

SOURCES = state.SOURCES


@dataclass
class Context:
    """What the sidebar resolved to; pages read this and nothing else from the sidebar."""

    spec: ModelSpec
    lm: LoadedModel | None
    task: Task | None
    settings: PromptSettings | None
    problem: str | None = None  # why no model is loaded; widgets.require shows it on the page


def _model_section(config: ServerConfig | None) -> ModelSpec:
    st.sidebar.subheader("Model")
    if config is not None and config.allowed_models is not None:  # the operator's list
        if state.get("model_id") not in config.allowed_models:
            state.set("model_id", config.allowed_models[0])
        st.sidebar.selectbox(
            "Model",
            list(config.allowed_models),
            key="model_id",
            help="The models this server's operator allows (FV_STUDIO_ALLOWED_MODELS).",
        )
    else:
        st.sidebar.text_input(
            "Model id or folder",
            key="model_id",
            help=f"'{DEFAULT_MODEL}' is built in and works offline. Any Hugging Face id or local folder works where it is cached or reachable.",
        )
    remote_ok = config is None or config.allow_remote
    if not remote_ok and state.get("remote"):
        state.set("remote", False)
    with st.sidebar.expander("Precision, device, remote"):
        st.selectbox("dtype", list(DTYPES), key="dtype")
        st.selectbox("device", available_devices(), key="device")
        st.toggle(
            "Run remotely on NDIF",
            key="remote",
            disabled=not remote_ok,
            help="Needs the internet and NDIF_API_KEY (env or secrets)."
            if remote_ok
            else "Switched off on this server (FV_STUDIO_ALLOW_REMOTE).",
        )
    _cached_results_block()
    return ModelSpec(
        model_id=state.get("model_id").strip() or DEFAULT_MODEL,
        dtype=state.get("dtype"),
        device=state.get("device"),
        remote=bool(state.get("remote")),
    )


# ---- clearing the result store (memory and disk tier) ------------------
def _cached_results_block() -> None:
    with st.sidebar.expander("Cached results"):
        st.caption(
            "Results are kept in memory and on disk (core.result_files), shared by every user of "
            "this server and by `python -m core`; `python -m core warm` precomputes them."
        )
        if server.server_config().allowed_models is not None:
            # a shared server (the operator chose its models): one user must not wipe the
            # results a teacher warmed for the class
            st.caption("On this shared server the operator clears them (`python -m core warm --clear`).")
            return
        if st.button("Clear cached results", key="clear_cached_results"):
            n_files = compute.store().clear()
            st.success(f"Cleared every cached result: memory, and {n_files} result files on disk.")


def _task_section() -> Task | None:
    st.sidebar.subheader("Task")
    source = st.sidebar.radio("Examples", SOURCES, key="task_source")
    try:
        if source == "Built-in task":
            st.sidebar.selectbox("Task", builtin_names(), key="task_name", help="Tasks written for FV Studio")
            task = load_builtin(state.get("task_name"))
            st.sidebar.caption(f"{describe(task.name)} ({len(task)} pairs)")
            return task
        if source == "Type examples":
            _describe_section()  # before the text area: it may fill it
            text = st.sidebar.text_area(
                "One example per line (`input -> output`; `:`, tab or comma also work)",
                key="typed_examples",
                height=160,
            )
            if not _written_pairs_used(text):
                return None
            if len(text) > limits.MAX_PAIRS * (2 * limits.MAX_ENTRY_CHARS + 4):
                raise UserInputError("That is far too much text for a task; paste fewer lines.")
            return parse_lines(text, name="typed")
        upload = st.sidebar.file_uploader("JSON, CSV (input,output) or text", type=["json", "csv", "txt"])
        if upload is not None:
            state.set("uploaded_task", parse_file(upload.getvalue(), upload.name))
        task = state.get("uploaded_task")
        if task is None:
            st.sidebar.info("Upload a file to use it as the task.")
        return task
    except UserInputError as exc:
        st.sidebar.error(str(exc))
        return None


def _describe_section() -> None:
    """The "Describe a task" box: a language model writes pairs into the typed-examples box
    (core.llm_pairs); they wait there, editable, until the user presses "Use these examples"."""
    error = None
    with st.sidebar.expander("Describe a task"):
        try:
            endpoint = server.pairs_endpoint()
        except UserInputError as exc:  # a malformed setting
            st.error(str(exc))
            return
        if endpoint is None:
            st.info(HOW_TO_CONFIGURE)
            return
        st.text_input("The task in one line", key="describe_text", placeholder="adjective -> its comparative")
        st.number_input("Pairs", limits.MIN_PAIRS, limits.MAX_WRITTEN_PAIRS, key="describe_n")
        st.caption(f"Asks {endpoint.model} at {endpoint.where()}. The pairs open in the box below for you to check.")
        if st.button("Write pairs", key="describe_write"):
            try:
                with st.spinner(f"Asking {endpoint.model} for pairs..."):
                    written = write_pairs(state.get("describe_text"), state.get("describe_n"), endpoint)
            except UserInputError as exc:
                error = str(exc)
            else:
                state.set("typed_examples", written.text())  # allowed: the text area is drawn after this
                dropped = list(written.duplicates + written.bad_lines)
                state.set("written_pairs", {"text": written.text(), "summary": written.summary(), "dropped": dropped})
                state.set("written_pending", True)
    if error is not None:
        st.sidebar.error(error)  # outside the expander, so a collapsed one cannot hide it


def _use_written_pairs() -> None:
    state.set("written_pending", False)


def _written_pairs_used(text: str) -> bool:
    """The summary of written pairs still in the box; False while they wait to be checked."""
    written = state.get("written_pairs")
    if written is not None and written["text"] == text:
        st.sidebar.caption(written["summary"])
        for line in written["dropped"][:5]:
            st.sidebar.caption(f"dropped: {line}")
        if len(written["dropped"]) > 5:
            st.sidebar.caption(f"... and {len(written['dropped']) - 5} more")
    if not state.get("written_pending"):
        return True
    st.sidebar.info("Check the written pairs and edit them if needed: nothing is computed until you go on.")
    st.sidebar.button("Use these examples", type="primary", on_click=_use_written_pairs)
    return False


def _remember_shots() -> None:
    """The user moved the Shots slider: that value is what they want from now on."""
    state.set("n_shots", state.get("n_shots_slider"))


def _prompt_section(task: Task | None) -> PromptSettings | None:
    st.sidebar.subheader("Prompts")
    max_shots = limits.MAX_SHOTS if task is None else max(0, min(limits.MAX_SHOTS, len(task) - 1))
    # "n_shots" keeps the user's choice; the slider shows it capped by what these examples allow,
    # so a smaller example set never lowers the choice for a larger one typed later
    shots = min(state.get("n_shots"), max_shots)
    state.set("n_shots_slider", shots)
    st.sidebar.slider(
        "Shots (examples per prompt)",
        0,
        max(max_shots, 1),
        key="n_shots_slider",
        on_change=_remember_shots,
        disabled=max_shots == 0,
    )
    st.sidebar.slider("Prompts per batch", *state.SIDEBAR_PROMPTS, key="n_prompts")
    st.sidebar.number_input("Seed", *state.SIDEBAR_SEED, key="seed")
    st.sidebar.text_input("Template ({x} then {y})", key="template", help="Newlines are written as \\n")
    template = state.get("template").replace("\\n", "\n")
    try:
        check_template(template)
    except UserInputError as exc:
        st.sidebar.error(str(exc))
        return None
    return PromptSettings(
        n_shots=shots,
        n_prompts=state.get("n_prompts"),
        seed=int(state.get("seed")),
        template=template,
        corruption=state.get("corruption"),  # chosen on Head attribution; every page's cache keys see it
    )


def draw() -> Context:
    """Draw the sidebar and load the model (entrypoint only, once per script run).

    Never raises for user input: task and prompt mistakes are shown in the sidebar, and why
    the model did not load goes to ``Context.problem`` for the page to show.
    """
    state.init()
    problem = None
    try:
        config: ServerConfig | None = server.server_config()
    except UserInputError as exc:  # the operator's settings are malformed: say so, load nothing
        config, problem = None, str(exc)
    spec = _model_section(config)
    task = _task_section()
    settings = _prompt_section(task)
    recipes.menu()  # the course's experiments; may switch page
    with st.sidebar.expander("Limits"):
        rows = (config.as_table() if config is not None else []) + limits.as_table()
        st.table({"what": [r[0] for r in rows], "limit": [r[1] for r in rows]})
    lm = None
    if problem is None:
        try:
            lm = server.get_model(spec)
        except UserInputError as exc:
            problem = str(exc)
    if lm is not None:
        st.sidebar.caption(
            f"{lm.arch.family}: {lm.arch.n_layers} layers x {lm.arch.n_heads} heads "
            f"({lm.arch.n_kv_heads} KV), d_model {lm.arch.d_model}"
        )
    ctx = Context(spec=spec, lm=lm, task=task, settings=settings, problem=problem)
    state.set(state.CONTEXT, ctx)
    return ctx


def context() -> Context:
    """The Context the entrypoint's sidebar resolved in this script run."""
    ctx = st.session_state.get(state.CONTEXT)
    if not isinstance(ctx, Context):
        raise RuntimeError("sidebar.context() before sidebar.draw(): run the app through dashboard/app.py")
    return ctx
