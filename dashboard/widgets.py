"""Shared widgets: the sidebar (model, task, prompt settings) and what it resolves to."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import limits
from core.errors import UserInputError
from core.models import DEFAULT_MODEL, DTYPES, LoadedModel, ModelSpec, available_devices
from core.prompts import PromptSettings, check_template
from core.server_config import ServerConfig
from core.tasks import Task, builtin_names, describe, load_builtin, parse_file, parse_lines
from dashboard import compute, state

PAPERS = {
    "fv": "[Todd et al., *Function Vectors in Large Language Models* (2023)](https://arxiv.org/abs/2310.15213)",
    "actadd": "[Turner et al., *Activation Addition* (2023)](https://arxiv.org/abs/2308.10248)",
    "caa": "[Rimsky et al., *Steering Llama 2 via Contrastive Activation Addition* (2023)](https://arxiv.org/abs/2312.06681)",
    "tv": "[Hendel et al., *In-Context Learning Creates Task Vectors* (2023)](https://arxiv.org/abs/2310.15916)",
}


@dataclass
class Context:
    """What the sidebar resolved to; pages read this and nothing else from the sidebar."""

    spec: ModelSpec
    lm: LoadedModel | None
    task: Task | None
    settings: PromptSettings | None


def explain(text: str) -> None:
    """The short 'what am I looking at' box at the top of every page."""
    with st.container(border=True):
        st.markdown(text)


def _model_section(config: ServerConfig | None) -> ModelSpec:
    st.sidebar.subheader("Model")
    if config is not None and config.allowed_models is not None:  # the operator's list
        if state.get("model_id") not in config.allowed_models:
            state.set("model_id", config.allowed_models[0])
        state.bound(st.sidebar, "selectbox", "Model", list(config.allowed_models), key="model_id",
            help="The models this server's operator allows (FV_STUDIO_ALLOWED_MODELS).",
        )
    else:
        state.bound(st.sidebar, "text_input", "Model id or folder",
            key="model_id",
            help=f"'{DEFAULT_MODEL}' is built in and works offline. Any Hugging Face id or local folder works where it is cached or reachable.",
        )
    remote_ok = config is None or config.allow_remote
    if not remote_ok and state.get("remote"):
        state.set("remote", False)
    with st.sidebar.expander("Precision, device, remote"):
        state.bound(st, "selectbox", "dtype", list(DTYPES), key="dtype")
        state.bound(st, "selectbox", "device", available_devices(), key="device")
        state.bound(st, "toggle", "Run remotely on NDIF", key="remote", disabled=not remote_ok,
            help="Needs the internet and NDIF_API_KEY (env or secrets)." if remote_ok
            else "Switched off on this server (FV_STUDIO_ALLOW_REMOTE).",
        )
    return ModelSpec(
        model_id=state.get("model_id").strip() or DEFAULT_MODEL,
        dtype=state.get("dtype"),
        device=state.get("device"),
        remote=bool(state.get("remote")),
    )


def _task_section() -> Task | None:
    st.sidebar.subheader("Task")
    source = state.bound(st.sidebar, "radio", "Examples", ["Built-in task", "Type examples", "Upload a file"], key="task_source")
    try:
        if source == "Built-in task":
            names = builtin_names()
            state.bound(st.sidebar, "selectbox", "Task", names, key="task_name", help="Tasks written for FV Studio")
            task = load_builtin(state.get("task_name"))
            st.sidebar.caption(f"{describe(task.name)} ({len(task)} pairs)")
            return task
        if source == "Type examples":
            state.bound(st.sidebar, "text_area", "One example per line (`input -> output`; `:`, tab or comma also work)",
                key="typed_examples",
                height=160,
            )
            text = state.get("typed_examples")
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


def _prompt_section(task: Task | None) -> PromptSettings | None:
    st.sidebar.subheader("Prompts")
    max_shots = limits.MAX_SHOTS if task is None else max(0, min(limits.MAX_SHOTS, len(task) - 1))
    if state.get("n_shots") > max_shots:
        state.set("n_shots", max_shots)
    state.bound(st.sidebar, "slider", "Shots (examples per prompt)", 0, max(max_shots, 1), key="n_shots", disabled=max_shots == 0)
    state.bound(st.sidebar, "slider", "Prompts per batch", 1, 50, key="n_prompts")
    state.bound(st.sidebar, "number_input", "Seed", 0, 10_000, key="seed")
    state.bound(st.sidebar, "text_input", "Template ({x} then {y})", key="template", help="Newlines are written as \\n")
    template = state.get("template").replace("\\n", "\n")
    try:
        check_template(template)
    except UserInputError as exc:
        st.sidebar.error(str(exc))
        return None
    return PromptSettings(
        n_shots=min(state.get("n_shots"), max_shots),
        n_prompts=state.get("n_prompts"),
        seed=int(state.get("seed")),
        template=template,
    )


def sidebar(load: bool = True) -> Context:
    """Draw the sidebar and load the model. Shows errors; never raises for user input."""
    state.init()
    try:
        config: ServerConfig | None = compute.server_config()
    except UserInputError as exc:  # the operator's settings are malformed: say so, load nothing
        st.error(str(exc))
        config, load = None, False
    spec = _model_section(config)
    task = _task_section()
    settings = _prompt_section(task)
    with st.sidebar.expander("Limits"):
        rows = (config.as_table() if config is not None else []) + limits.as_table()
        st.table({"what": [r[0] for r in rows], "limit": [r[1] for r in rows]})
    lm = None
    if load:
        try:
            lm = compute.get_model(spec)
        except UserInputError as exc:
            st.error(str(exc))
    if lm is not None:
        st.sidebar.caption(
            f"{lm.arch.family}: {lm.arch.n_layers} layers x {lm.arch.n_heads} heads "
            f"({lm.arch.n_kv_heads} KV), d_model {lm.arch.d_model}"
        )
    return Context(spec=spec, lm=lm, task=task, settings=settings)


def require(ctx: Context, task: bool = True) -> bool:
    """True when the page has what it needs; otherwise a message says what is missing."""
    if ctx.lm is None:
        st.warning("No model is loaded: fix the model id in the sidebar.")
        return False
    if task and (ctx.task is None or ctx.settings is None):
        st.warning("Fix the task or prompt settings in the sidebar first.")
        return False
    return True


def heads_from_labels(labels: list[str]) -> list[tuple[int, int]]:
    return [(int(x.split(".")[0]), int(x.split(".")[1])) for x in labels]
