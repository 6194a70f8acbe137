"""Running a computation from a page: a progress bar with Cancel, the wait for the model's
queue or another user's result, and errors turned into messages.

Cancel reads Streamlit's script requests. Clicking it asks Streamlit for a rerun; Streamlit
ends the run at its next update on the script thread, and a progress report from nnsight's
worker thread (where Streamlit cannot interrupt anything) raises core.errors.Cancelled when it
sees the request (:func:`from_any_thread`). The run that follows says what was cancelled:
:func:`begin_script_run` starts every script run, and :func:`fragment` does the same for a
fragment that reruns alone.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from core import turns
from core.errors import Cancelled, UserInputError
from core.inference import Progress, no_progress
from dashboard import store as store_mod

CANCELLED = "_cancelled"  # session key: label of the computation cancelled by the last click
CANCELLED_NOW = "_cancelled_now"  # the same, for the script run that follows the click only
CANCEL_KEYS = "_cancel_keys"  # Cancel button keys drawn in this script run

F = TypeVar("F", bound=Callable[..., Any])


def begin_script_run() -> None:
    """Called first in every script run (app.py): a cancel is reported in the run right after it."""
    st.session_state[CANCELLED_NOW] = st.session_state.pop(CANCELLED, None)
    st.session_state[CANCEL_KEYS] = []


def fragment(fn: F) -> F:
    """``st.fragment`` whose reruns alone count as script runs for Cancel.

    A click inside a fragment reruns only the fragment, so app.py's :func:`begin_script_run`
    does not run: the fragment calls it itself, when it reruns alone.
    """

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is not None and ctx.fragment_ids_this_run:  # this fragment reruns alone
            begin_script_run()
        return fn(*args, **kwargs)

    return st.fragment(body)  # type: ignore[return-value]


def _cancel_key(label: str) -> str:
    used = st.session_state.setdefault(CANCEL_KEYS, [])
    key, n = f"_cancel_{label}", 1
    while key in used:
        n += 1
        key = f"_cancel_{label}_{n}"
    used.append(key)
    return key


def _mark_cancelled(label: str) -> None:
    st.session_state[CANCELLED] = label


class ProgressBar:
    """A Streamlit progress bar as a core progress callback (:data:`core.inference.Progress`),
    with a Cancel button.

    Both are drawn on the script thread when the computation starts (Streamlit cannot draw a
    widget from nnsight's worker thread). Updates are drawn inside a snapshot of the script's
    ``contextvars`` context taken then, so a core function that reports from inside a
    ``with generate(...)`` block (a greenlet with an empty context) still moves the bar; wrap
    the callback in :func:`from_any_thread` to also make it cancellable and failure-proof there.
    """

    def __init__(self, label: str):
        self.label = label
        self.holder = st.empty()
        with self.holder.container():
            self.bar = st.progress(0.0, text=label)
            st.button(
                "Cancel", key=_cancel_key(label), icon=":material/cancel:", on_click=_mark_cancelled, args=(label,)
            )

        self.fraction = 0.0
        self.context = contextvars.copy_context()  # the script's, for updates from a worker

    def _draw(self, text: str) -> None:
        self.context.copy().run(self.bar.progress, self.fraction, text=text)

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        self._draw(f"{self.label} ({message})")

    def queued(self, ahead: int, waited: float) -> None:
        """core.turns' wait report: this computation waits for its turn on the model."""
        self._draw(
            f"{self.label}: Waiting for the model: another user's computation is running; "
            f"{ahead} ahead of you in the queue ({waited:.0f} s)..."
        )

    def awaiting_result(self, waited: float) -> None:
        """The store's wait report: another user is computing this very result."""
        self._draw(
            f"{self.label}: another user is computing this same result; it shows here when ready ({waited:.0f} s)..."
        )

    def done(self) -> None:
        self.holder.empty()


def run(label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a computation with a progress bar and a Cancel button.

    A stored result comes back at once. A computation takes turns on the model inside core
    (:mod:`core.turns`); while it waits in the queue, or for another user computing the same
    result, the bar says so, and Cancel leaves the queue. Returns None after showing an error,
    or when this computation was cancelled by the click that started this script run (it then
    offers to run it again).
    """
    if st.session_state.get(CANCELLED_NOW) == label:
        st.warning(f"Cancelled: {label}. Nothing from it was kept.")
        st.button("Run it again", key=f"_again_{label}", icon=":material/replay:")
        return None
    bar = ProgressBar(label)
    try:
        with turns.waiting_display(bar.queued), store_mod.waiting_display(bar.awaiting_result):
            return fn(*args, _progress=bar, **kwargs)
    except UserInputError as exc:
        st.error(str(exc))
        return None
    except Cancelled:
        # raised on nnsight's worker thread; the rerun the click asked for follows at once
        return None
    finally:
        bar.done()


def from_any_thread(progress: Progress | None) -> Progress:
    """A progress callback that also works inside nnsight's intervention code.

    The body of a ``with generate(...)`` loop does not run in the script's own context:
    nnsight 0.8 runs it in a greenlet (a worker with its own, empty ``contextvars`` context)
    or, for other backends, on another thread. Streamlit keeps a script run's element state in
    context variables (``FragmentThreadState``) and its session on the thread, so a bare
    ``bar.progress(...)`` there fails ("FragmentThreadState not initialized") and the bar never
    moves. The callback therefore takes a snapshot of the script's context when it is made (on
    the script thread) and reports inside a copy of it, attaching the session to the thread
    when it is another one. A progress bar must never break a computation, so what still fails
    (and a stop or rerun request, which the script's own thread handles) is ignored; a Cancel
    click raises core.errors.Cancelled instead.
    """
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    if progress is None:
        return no_progress
    owner = get_script_run_ctx(suppress_warning=True)
    snapshot = contextvars.copy_context()  # taken on the script thread

    def call(fraction: float, message: str) -> None:
        if interrupt_requested(owner):
            raise Cancelled("cancelled from the page")
        # a copy: one Context cannot be entered twice at once (two workers, or a nested call)
        snapshot.copy().run(_report, progress, owner, fraction, message)

    return call


def _report(progress: Progress, owner: Any, fraction: float, message: str) -> None:
    """One progress report, run inside the script's context snapshot (see from_any_thread)."""
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
    from streamlit.runtime.scriptrunner_utils.script_run_context import add_script_run_ctx, get_script_run_ctx

    try:
        if owner is not None and get_script_run_ctx(suppress_warning=True) is not owner:
            add_script_run_ctx(threading.current_thread(), owner)
        progress(fraction, message)
    except (Exception, ScriptControlException):
        pass


def interrupt_requested(ctx: Any) -> bool:
    """Whether the session of ``ctx`` has asked to stop or rerun its script (Cancel, Stop, a click).

    Streamlit acts on such a request only on the script's own thread; a computation on
    nnsight's worker thread asks here. (Reads ScriptRequests' state, which has no public getter.)
    """
    requests = getattr(ctx, "script_requests", None)
    state = getattr(requests, "_state", None)
    return getattr(state, "name", "") in ("STOP", "RERUN")
