"""The shared result store (dashboard.store): stored results never wait, and one computation
per key at a time (single flight). Threads stand in for Streamlit sessions."""

from __future__ import annotations

import threading
import time

import pytest

from core.errors import Cancelled
from core.models import MODEL_LOCK
from dashboard import store as store_mod
from dashboard.store import ResultStore


def _store() -> ResultStore:
    return ResultStore(max_entries=10, max_bytes=10**6)


def test_a_stored_result_is_returned_while_the_model_is_busy():
    """A class opening a computed view must not queue behind someone's long generation."""
    s = _store()
    s.get(("cached",), lambda: "ready")
    busy, release = threading.Event(), threading.Event()

    def long_computation() -> str:
        with MODEL_LOCK.turn():  # holds the model, as a 200-token generation does
            busy.set()
            release.wait(10)
        return "slow"

    t = threading.Thread(target=lambda: s.get(("slow",), long_computation))
    t.start()
    busy.wait(5)
    start = time.monotonic()
    assert s.get(("cached",), lambda: pytest.fail("recomputed")) == "ready"
    assert time.monotonic() - start < 0.2
    release.set()
    t.join()


def test_two_sessions_asking_for_the_same_result_compute_it_once():
    s = _store()
    calls, started, go = [], threading.Event(), threading.Event()

    def make() -> list[int]:
        calls.append(1)
        started.set()
        go.wait(10)
        return [42]

    got: list = []
    first = threading.Thread(target=lambda: got.append(s.get(("k",), make)))
    first.start()
    started.wait(5)
    second = threading.Thread(target=lambda: got.append(s.get(("k",), make)))
    second.start()
    time.sleep(0.3)  # the second is waiting for the first, not computing
    assert len(calls) == 1 and len(got) == 0
    go.set()
    first.join()
    second.join()
    assert calls == [1] and got == [[42], [42]] and got[0] is got[1]
    assert s.computed == 1


def test_a_waiter_computes_it_when_the_first_is_cancelled():
    s = _store()
    started, go = threading.Event(), threading.Event()
    outcome: list = []

    def cancelled() -> str:
        started.set()
        go.wait(10)
        raise Cancelled("the first user pressed Cancel")

    def first() -> None:
        try:
            s.get(("k",), cancelled)
        except Cancelled:
            outcome.append("first cancelled")

    t1 = threading.Thread(target=first)
    t1.start()
    started.wait(5)
    t2 = threading.Thread(target=lambda: outcome.append(s.get(("k",), lambda: "computed by the second")))
    t2.start()
    time.sleep(0.3)
    go.set()
    t1.join()
    t2.join()
    assert sorted(outcome) == ["computed by the second", "first cancelled"]
    assert s.peek(("k",)) == "computed by the second" and not s.flights


def test_a_waiter_hears_how_long_it_waited_and_can_leave():
    s = _store()
    started, go = threading.Event(), threading.Event()

    def make() -> str:
        started.set()
        go.wait(10)
        return "done"

    t = threading.Thread(target=lambda: s.get(("k",), make))
    t.start()
    started.wait(5)
    heard: list[float] = []

    def on_wait(waited: float) -> None:
        heard.append(waited)
        if len(heard) == 2:
            raise Cancelled("left")

    with store_mod.waiting_display(on_wait), pytest.raises(Cancelled):
        s.get(("k",), lambda: pytest.fail("a waiter must not compute while the first is running"))
    assert len(heard) == 2 and heard[1] > heard[0]
    go.set()
    t.join()
    assert s.peek(("k",)) == "done"
