"""Saving vectors from a page: to the library folder (``core.library.Library``) and to this
session's vectors, so every page lists a saved vector at once; and the Save form."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import streamlit as st

from core.errors import UserInputError
from core.library import Library, default_library_dir
from core.vectors import Vector, check_name
from dashboard import state

NAME_HELP = "Letters, digits, '_' or '-', starting with a letter"


def save(vector: Vector) -> Path:
    """Save ``vector`` to the library (never over another file: UserInputError) and to this
    session; returns the file's path."""
    path = Library(default_library_dir()).save(vector)
    state.set("session_vectors", {**state.get("session_vectors"), vector.name: vector})
    return path


def delete(model_id: str, name: str) -> None:
    """Delete the vector ``name`` from the library and from this session."""
    Library(default_library_dir()).delete(model_id, name)
    state.set("session_vectors", {n: v for n, v in state.get("session_vectors").items() if n != name})


def save_form(
    form_key: str, vector: Vector, *, name_key: str, default_name: str | None = None, note: str = ""
) -> Vector | None:
    """A form with a Name field and "Save to the library" for ``vector``: saves it under the
    typed name (made now: the library lists it as the newest) and says where, or shows why
    not. Returns the saved vector, or None."""
    with st.form(form_key):
        name = st.text_input("Name", value=default_name or vector.name, key=name_key, help=NAME_HELP)
        if not st.form_submit_button("Save to the library"):
            return None
        try:
            saved = dataclasses.replace(vector, name=check_name(name), created=time.time())
            path = save(saved)
        except UserInputError as exc:
            st.error(str(exc))
            return None
        st.success(f"Saved '{saved.name}' (layer {saved.layer}) to {path}.{' ' + note if note else ''}")
        return saved
