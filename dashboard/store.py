"""The result store shared by every session of one server.

Results are kept in one bounded LRU keyed on (what, model spec, task, settings, parameters),
so moving between pages never recomputes them and a class opening the same built-in task
computes it once. Two rules make a shared server feel instant:

- A stored result is returned without waiting for the model: the store has its own small
  lock, and only computations take turns on the model (:mod:`core.turns`).
- One computation per key at a time ("single flight"): a second session asking for a result
  that is being computed waits for that computation instead of starting its own. If the first
  is cancelled or fails, the next waiter computes it.

Bounded by count and by the bytes of the tensors the results hold (:mod:`core.limits`).
Not ``st.cache_data``: that replays the elements created inside, and the progress bar is
created outside.

Behind the memory LRU sits the disk tier (:class:`core.result_files.ResultFiles`, shared with
the CLI and ``python -m core warm``): a miss in memory looks on disk before computing (inside
the single flight, so waiters share the read), and a computed result is written there. A
restarted server answers a computed view at once. Keys without a model spec (tests, helpers)
stay in memory only.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from core.result_files import MISSING, ResultFiles

POLL_S = 0.25  # how often a session waiting for another's result is told how long it waited

# Called about every POLL_S while waiting for another session's computation of the same result
# (seconds waited); it may raise to stop waiting (Cancel).
OnResultWait = Callable[[float], None]
_on_wait: contextvars.ContextVar[OnResultWait | None] = contextvars.ContextVar("fv_studio_on_result_wait", default=None)


@contextlib.contextmanager
def waiting_display(on_wait: OnResultWait) -> Iterator[None]:
    """Within this block, waits for another session's result on this thread report to ``on_wait``."""
    token = _on_wait.set(on_wait)
    try:
        yield
    finally:
        _on_wait.reset(token)


def nbytes(value: Any, _seen: set[int] | None = None) -> int:
    """Approximate memory held by a result: its tensors and arrays (shared ones counted once)
    plus strings; other leaves count a nominal 64 bytes."""
    import numpy as np
    import torch

    seen = _seen if _seen is not None else set()
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, dict):
        return sum(nbytes(k, seen) + nbytes(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(nbytes(v, seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if hasattr(value, "__dict__"):
        return sum(nbytes(v, seen) for v in vars(value).values())
    return 64


@dataclasses.dataclass
class _Flight:
    """A computation in progress: waiters block on ``done``; ``ok`` says whether ``value`` is set."""

    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    ok: bool = False
    value: Any = None


class ResultStore:
    """A bounded, thread-safe LRU with single-flight computation (see the module docstring)."""

    def __init__(self, max_entries: int, max_bytes: int, files: ResultFiles | None = None):
        """``files``: the disk tier (default: :func:`core.result_files.results_dir`, resolved
        at each use, so a test's ``FV_STUDIO_RESULTS`` holds even for a store made earlier)."""
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.data: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()  # key -> (value, bytes)
        self.flights: dict[tuple, _Flight] = {}
        self.lock = threading.Lock()
        self.files = files if files is not None else ResultFiles()
        self.computed = 0  # how many results were computed (not found): a test's witness
        self.loaded = 0  # how many were read from the disk tier

    def peek(self, key: tuple) -> Any | None:
        """The stored result or None; never waits for the model."""
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key][0]
        return None

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The stored result for ``key``, else the one another session is computing, else ``make()``."""
        while True:
            with self.lock:
                if key in self.data:
                    self.data.move_to_end(key)
                    return self.data[key][0]
                flight = self.flights.get(key)
                mine = flight is None
                if mine:
                    flight = self.flights[key] = _Flight()
            if mine:
                return self._compute(key, make, flight)
            self._wait_for(flight)
            if flight.ok:
                return flight.value
            # the other computation was cancelled or failed: try again (maybe computing it here)

    def _compute(self, key: tuple, make: Callable[[], Any], flight: _Flight) -> Any:
        try:
            value = self.files.load(key)
            found = value is not MISSING
            if not found:
                value = make()
        except BaseException:
            with self.lock:
                del self.flights[key]
            flight.done.set()
            raise
        size = nbytes(value)
        with self.lock:
            if found:
                self.loaded += 1
            else:
                self.computed += 1
            self.data[key] = (value, size)
            self.data.move_to_end(key)
            # the newest result always stays (the page is about to show it)
            while len(self.data) > 1 and (len(self.data) > self.max_entries or self.bytes > self.max_bytes):
                self.data.popitem(last=False)
            del self.flights[key]
        flight.value, flight.ok = value, True
        flight.done.set()
        if not found:  # after the waiters are woken: they need not wait for the write
            self.files.save(key, value)
        return value

    def clear(self) -> int:
        """Forget every stored result, in memory and on disk (computations in flight finish
        and are stored); how many result files were deleted."""
        with self.lock:
            self.data.clear()
        return self.files.clear()

    @staticmethod
    def _wait_for(flight: _Flight) -> None:
        on_wait = _on_wait.get()
        start = time.monotonic()
        while not flight.done.wait(POLL_S):
            if on_wait is not None:
                on_wait(time.monotonic() - start)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.data.values())

    def __len__(self) -> int:
        return len(self.data)
