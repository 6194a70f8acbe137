"""Every session-state key and its default, in one place."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.models import DEFAULT_MODEL
from core.prompts import DEFAULT_TEMPLATE

DEFAULT_TYPED = "hot -> cold\nbig -> small\nfast -> slow\nhappy -> sad\nup -> down"

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
    # prompts
    "n_shots": 10,
    "n_prompts": 20,
    "seed": 0,
    "template": DEFAULT_TEMPLATE.replace("\n", "\\n"),  # shown escaped in a one-line input
    # head attribution and function vectors
    "metric": "prob",
    "top_k": 10,
    "manual_heads": [],  # ["20.5", ...] chosen by hand
    "head_mode": "Top-k",
    "fv_layer": "auto",
    "fv_coeff": 1.0,
    # vectors made in this session, by name (core.vectors.Vector)
    "session_vectors": {},
}


def init() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, (dict, list)) else value


def get(key: str) -> Any:
    init()
    return st.session_state[key]


def set(key: str, value: Any) -> None:  # noqa: A001 - mirrors get
    st.session_state[key] = value


def bound(container: Any, widget: str, label: str, *args: Any, key: str, **kwargs: Any) -> Any:
    """A widget whose value lives in the persistent key ``key``.

    Streamlit forgets a widget's own state when the page changes, so each widget gets a
    private key seeded from the persistent value, and copies changes back to it.
    """
    init()
    wkey = f"_w_{key}"
    st.session_state[wkey] = st.session_state[key]

    def sync() -> None:
        st.session_state[key] = st.session_state[wkey]

    return getattr(container, widget)(label, *args, key=wkey, on_change=sync, **kwargs)
