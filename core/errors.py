"""Errors a user can cause. The UI shows their message; the CLI prints it and exits 2."""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from a person: the message says what is wrong and what to do."""


class ModelLoadError(UserInputError):
    """A model id or folder that cannot be loaded (offline, missing, unsupported)."""
