"""Fair turns on the shared model: one queue, served in arrival order.

nnsight 0.8 is not thread-safe, so every trace and generate on a model shared by several
users (Streamlit sessions are threads of one process) runs while holding the model's turn.
A plain lock is unfair: whoever polls at the right moment wins, and a long computation can be
overtaken again and again. :class:`ModelQueue` hands the model out in arrival order and tells a
waiting caller its place, so a page can say "2 ahead of you (5 s)" and a Cancel can take the
caller out of the queue.

Long computations take the turn in short pieces (a generation every few tokens, attribution
every patching pass), so a short computation queued behind them waits for one piece, not for
the whole computation.

The turn is reentrant: a function that holds it may call others that take it again.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

# Called about every POLL_S while a caller waits: (callers ahead, seconds waited). It may raise
# (core.errors.Cancelled, or a UI framework's stop) to leave the queue.
OnWait = Callable[[int, float], None]

POLL_S = 0.25  # how often a waiting caller is told its place

_on_wait: contextvars.ContextVar[OnWait | None] = contextvars.ContextVar("fv_studio_on_wait", default=None)


@contextlib.contextmanager
def waiting_display(on_wait: OnWait) -> Iterator[None]:
    """Within this block, turns taken on this thread report waits to ``on_wait``.

    The UI sets it once around a computation; core code takes turns without knowing who shows
    the wait.
    """
    token = _on_wait.set(on_wait)
    try:
        yield
    finally:
        _on_wait.reset(token)


class ModelQueue:
    """A reentrant lock granted in arrival order (first come, first served)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None  # thread ident of the holder
        self._depth = 0
        self._queue: deque[object] = deque()  # tickets of waiting callers, oldest first

    def acquire(self, on_wait: OnWait | None = None) -> None:
        """Wait for this caller's turn; ``on_wait`` (default: the :func:`waiting_display` in
        force) hears the place in the queue while waiting and may raise to leave it."""
        me = threading.get_ident()
        on_wait = on_wait if on_wait is not None else _on_wait.get()
        ticket = object()
        start = time.monotonic()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            self._queue.append(ticket)
        try:
            while True:
                with self._cond:
                    if self._owner is None and self._queue[0] is ticket:
                        self._queue.popleft()
                        self._owner, self._depth = me, 1
                        return
                    self._cond.wait(POLL_S)
                    ahead = self._queue.index(ticket) + (self._owner is not None)
                    ready = self._owner is None and self._queue[0] is ticket
                if on_wait is not None and not ready:
                    on_wait(ahead, time.monotonic() - start)  # outside the condition: it may draw a page
        except BaseException:
            with self._cond:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._cond.notify_all()
            raise

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release() by a thread that does not hold the model's turn")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    @contextlib.contextmanager
    def turn(self, on_wait: OnWait | None = None) -> Iterator[None]:
        self.acquire(on_wait)
        try:
            yield
        finally:
            self.release()

    def held(self) -> bool:
        """Whether some caller holds the turn now."""
        with self._cond:
            return self._owner is not None

    def waiting(self) -> int:
        """How many callers are queued (not counting the holder)."""
        with self._cond:
            return len(self._queue)
