"""Shareable links: each page's settings live in its URL's query parameters (``st.query_params``).

A teacher sets up a view and shares its link; a student who opens it sees the same view.

- :func:`restore` runs before the sidebar is drawn. On the first script run of a session (a
  link opened, or the app reloaded) it reads the URL's parameters into session state through
  :mod:`dashboard.state`, each checked by :mod:`core.checks` (the same rules and messages as the
  widgets and the CLI). Parameters that need the model (layers, heads, vectors) wait until the
  sidebar has loaded it.
- :func:`kept_in_url` wraps the page's run. On entry it checks those waiting parameters
  against the loaded model, writes the current settings back to the URL (only values that
  differ from their defaults, so a link stays short) and draws the sidebar's "Copy link" box;
  after the page it writes them again, with what the page itself set in that run.

A bad or out-of-range parameter never stops the page: it is dropped with a warning that names
it and the default used. Parameters belong to pages (``layer`` is the function vector's layer on
Function vector, the steering layer on Steer): :mod:`dashboard.link_params` says which. The README's
"Shareable links" section documents every name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from core import limits
from core.errors import UserInputError
from core.models import LoadedModel
from dashboard import sidebar, state
from dashboard.link_params import BUILT_IN, DEFAULT_TEXT, TYPED, Param, as_text, params_of, write_examples


def _apply(param: Param, text: str, lm: LoadedModel | None, problems: list[str]) -> None:
    try:
        param.read(text, lm)
    except UserInputError as exc:
        default = state.DEFAULTS[param.key]
        shown = DEFAULT_TEXT.get(param.key, f"the default ({as_text(default)})")
        problems.append(f"Link parameter `{param.name}={text[:60]}`: {exc} Using {shown} instead.")


def restore(page: Any) -> None:
    """On the first run of a session, the URL's parameters into session state (before the
    sidebar is drawn: its widgets take the values). Those that need the model wait for
    :func:`kept_in_url`. Runs of a session after its first do nothing."""
    if state.get("link_read"):
        return
    state.set("link_read", True)
    given = st.query_params.to_dict()
    known = {p.name: p for p in params_of(page.url_path)}
    problems: list[str] = []
    waiting: dict[str, str] = {}
    for name, text in given.items():
        param = known.get(name)
        if param is None:
            problems.append(f"Link parameter `{name[:40]}` is not a setting of this page: ignored.")
        elif param.needs_model:
            waiting[name] = text
        else:
            _apply(param, text, None, problems)
    state.set("link_warnings", (page.url_path, problems, waiting))


def _check_waiting(page: Any, lm: LoadedModel | None) -> None:
    """The waiting parameters (layers, heads, vectors) checked against the loaded model, in
    the order of the page's table (a steering link's layer after its vector)."""
    opened = state.get("link_warnings")
    if opened is None or not opened[2]:
        return
    url_path, problems, waiting = opened
    for param in params_of(url_path):
        if param.name in waiting:
            _apply(param, waiting[param.name], lm, problems)
    state.set("link_warnings", (url_path, problems, {}))


def query(url_path: str) -> dict[str, str]:
    """The query parameters of the current settings on the page at ``url_path``."""
    out = {}
    for param in params_of(url_path):
        text = param.write()
        if text is not None:
            out[param.name] = text
    return out


def _publish(page: Any, box: Any) -> None:
    """The URL's parameters set to the current settings (only when they changed: each write
    is a message to the browser), and the Copy-link box redrawn."""
    params = query(page.url_path)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    base = st.context.url or ""
    url = f"{base}?{urlencode(params)}" if params else base or "(this page with its defaults)"
    with box.container():
        with st.expander("Copy link", icon=":material/link:"):
            st.caption("The link to this page with these settings (the copy button is at the right):")
            st.code(url, language=None, wrap_lines=True)
            if state.get("task_source") == TYPED and write_examples() is None:
                st.caption(
                    f"Your examples are longer than {limits.MAX_LINK_EXAMPLES_CHARS} characters: the link "
                    "carries the other settings only."
                )
            elif state.get("task_source") not in (BUILT_IN, TYPED):
                st.caption("An uploaded task is not carried by links: the link carries the other settings.")


@contextmanager
def kept_in_url(page: Any) -> Iterator[None]:
    """Around ``page.run()``, after the sidebar: a link's model-dependent parameters checked,
    its warnings shown, the settings written to the URL before the page and again after it."""
    _check_waiting(page, sidebar.context().lm)
    opened = state.get("link_warnings")
    if opened is not None and opened[0] != page.url_path:  # another page: the link's notes are done
        state.set("link_warnings", None)
    elif opened is not None:
        for problem in opened[1]:
            st.warning(problem, icon=":material/link_off:")
    box = st.sidebar.empty()
    _publish(page, box)
    yield
    _publish(page, box)
