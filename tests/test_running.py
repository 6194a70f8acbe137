"""Progress reports from inside nnsight's intervention code reach the page's progress bar.

nnsight 0.8 runs the body of a ``with generate(...)`` block in a greenlet, whose
``contextvars`` context is empty; Streamlit keeps a script run's element state in context
variables, so a bare ``bar.progress(...)`` there raised "FragmentThreadState not initialized"
and the Steer page's bar never moved (dashboard.running.from_any_thread swallowed the error).
These AppTests run a real tiny-model generation inside a script run and read the bar.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _generating_page(lm, n_tokens: int) -> None:
    """An AppTest script: one steering-free generation whose progress drives a bar."""
    import streamlit as st

    from core import steer
    from dashboard.running import from_any_thread

    bar = st.progress(0.0, text="waiting")
    failures: list[str] = []
    reports: list[str] = []

    def progress(fraction: float, message: str) -> None:
        try:
            bar.progress(fraction, text=message)
            reports.append(message)
        except Exception as exc:  # from_any_thread swallows it: record it here
            failures.append(repr(exc))
            raise

    steer.generate_pair(lm, ["The cat"], None, 0, 0.0, "last", n_tokens, progress=from_any_thread(progress))
    st.write(f"failures: {failures}")
    st.write(f"reports: {len(reports)}")


def test_generation_progress_reaches_the_bar(tiny_llama, single_thread):
    n_tokens = 10  # two pieces (core.steer.TOKENS_PER_TURN = 8): both report
    at = AppTest.from_function(_generating_page, args=(tiny_llama, n_tokens), default_timeout=120).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == ["failures: []", f"reports: {n_tokens}"]
    bar = at.get("progress")[0].proto
    assert (bar.value, bar.text) == (100, f"token {n_tokens}/{n_tokens}")


def _greenlet_page() -> None:
    """An AppTest script: a progress report from a fresh greenlet, as nnsight makes them."""
    import greenlet
    import streamlit as st

    from dashboard.running import from_any_thread

    bar = st.progress(0.0, text="waiting")
    call = from_any_thread(lambda fraction, message: bar.progress(fraction, text=message))
    greenlet.greenlet(lambda: call(0.5, "half way")).switch()
    greenlet.greenlet(lambda: call(0.75, "three quarters")).switch()


def test_greenlet_progress_reaches_the_bar():
    at = AppTest.from_function(_greenlet_page, default_timeout=120).run()
    assert not at.exception
    bar = at.get("progress")[0].proto
    assert (bar.value, bar.text) == (75, "three quarters")


def _bare_bar_page() -> None:
    """An AppTest script: running.run's own bar, called bare from a greenlet (no from_any_thread)."""
    import greenlet
    import streamlit as st

    from dashboard import running

    failures: list[str] = []

    def work(_progress) -> str:
        def report() -> None:
            try:
                _progress(0.5, "half way")
            except Exception as exc:
                failures.append(repr(exc))

        greenlet.greenlet(report).switch()
        return "done"

    st.write(f"{running.run('Working', work)}; failures: {failures}")


def test_bare_progress_bar_works_from_a_greenlet():
    at = AppTest.from_function(_bare_bar_page, default_timeout=120).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == ["done; failures: []"]
