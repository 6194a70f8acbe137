"""The Cancel button's worker-thread path reads Streamlit's pending script requests.

Streamlit ends a script run at its next ``st`` call when a rerun or stop is requested, but
only on the script's own thread; nnsight's generation loop runs on a worker thread, where
dashboard.running asks ScriptRequests directly (a private attribute: this test pins it to the
installed Streamlit). The whole path, clicks included, is in tests/test_browser.py.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

from core.errors import Cancelled
from dashboard.running import from_any_thread, interrupt_requested


def test_pending_rerun_or_stop_is_seen():
    ctx = SimpleNamespace(script_requests=ScriptRequests())
    assert not interrupt_requested(ctx)
    assert ctx.script_requests.request_rerun(RerunData())
    assert interrupt_requested(ctx)
    stopped = SimpleNamespace(script_requests=ScriptRequests())
    stopped.script_requests.request_stop()
    assert interrupt_requested(stopped)
    assert not interrupt_requested(None) and not interrupt_requested(SimpleNamespace())


def test_worker_thread_progress_raises_cancelled(monkeypatch):
    ctx = SimpleNamespace(script_requests=ScriptRequests())
    monkeypatch.setattr(
        "streamlit.runtime.scriptrunner_utils.script_run_context.get_script_run_ctx", lambda suppress_warning=False: ctx
    )
    seen: list[str] = []
    call = from_any_thread(lambda f, m: seen.append(m))
    outcome: list[BaseException | None] = []

    def worker(message: str) -> None:
        try:
            call(0.5, message)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=worker, args=("token 1/2",))
    t.start()
    t.join()
    assert outcome == [None] and seen == ["token 1/2"]
    ctx.script_requests.request_rerun(RerunData())  # the Cancel click
    t = threading.Thread(target=worker, args=("token 2/2",))
    t.start()
    t.join()
    assert isinstance(outcome[1], Cancelled) and seen == ["token 1/2"]
    with pytest.raises(Cancelled):
        call(1.0, "on the script thread too")


@pytest.mark.slow
def test_the_page_after_a_cancel(tmp_path, monkeypatch):
    """The run after a Cancel click: the message and 'Run it again' instead of the computation;
    the click after that computes as usual (AppTest, default model)."""
    from app_helpers import button, errors, start

    small = {"task_source": "Type examples", "typed_examples": "cat -> cats\ndog -> dogs\nbox -> boxes", "n_prompts": 3}
    at = start(tmp_path, monkeypatch, _cancelled="Predicting", **small)  # what the Cancel button's callback sets
    assert not at.exception and not errors(at)
    assert [w.value for w in at.warning] == ["Cancelled: Predicting. Nothing from it was kept."]
    assert not any("prediction" in f.value.columns for f in at.dataframe)
    button(at, "Run it again").click().run()
    assert not at.exception and not errors(at)
    assert not any(w.value.startswith("Cancelled") for w in at.warning)
    assert any("prediction" in f.value.columns for f in at.dataframe)
