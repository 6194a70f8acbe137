"""A tokenizer that several threads (Streamlit sessions) can share.

A Hugging Face *fast* tokenizer is one Rust object. A call with padding or truncation first
reconfigures it (a mutable borrow) and then encodes; two threads doing that at once fail with
"RuntimeError: Already borrowed". The pages tokenize outside any model computation (the tokens
table, prompt lengths), so waiting for the model's turn there would make a cached page wait
behind another user's generation. Instead every call goes through :class:`SharedTokenizer`,
which holds a small lock of its own for the length of one tokenizer call, and nnsight gets a
separate copy that it only uses inside traces, under the model's turn.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any


class SharedTokenizer:
    """Wraps a tokenizer: every method call holds one lock; plain attributes read through."""

    def __init__(self, tokenizer: Any):
        object.__setattr__(self, "_tokenizer", tokenizer)
        object.__setattr__(self, "_lock", threading.RLock())

    @classmethod
    def copy_of(cls, tokenizer: Any) -> SharedTokenizer:
        """A shared copy: the original stays private to its owner (nnsight)."""
        return cls(copy.deepcopy(tokenizer))

    @property
    def wrapped(self) -> Any:
        """The tokenizer itself, for code that holds the model's turn and needs the real type."""
        return self._tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._tokenizer, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked

    def __setattr__(self, name: str, value: Any) -> None:
        with self._lock:
            setattr(self._tokenizer, name, value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokenizer)
