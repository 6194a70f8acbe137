"""Errors a user can cause. The UI shows their message; the CLI prints it and exits 2."""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from a person: the message says what is wrong and what to do."""


class ModelLoadError(UserInputError):
    """A model id or folder that cannot be loaded (offline, missing, unsupported)."""


class Cancelled(Exception):
    """A person stopped a running computation (the app's Cancel button): nothing is kept.

    Raised from a progress callback; core code lets it through, so every ``with`` block
    (traces, the model lock) unwinds and the shared model is left as it was.
    """
