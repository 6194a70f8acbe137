"""The operator's settings for a shared server: which models users may load, and whether they
may run them remotely on NDIF (which spends the operator's API key).

Read from environment variables, or from Streamlit secrets with the same names (the dashboard
passes those in; environment variables win):

- ``FV_STUDIO_ALLOWED_MODELS``: a comma-separated list of model ids or local folders users may
  load, or ``*`` for any. Unset means any: a single user on their own machine.
- ``FV_STUDIO_ALLOW_REMOTE``: ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``).
  Unset means allowed only when no model list is set.

The CLI reads the same variables, so a server's shell enforces what its pages enforce. The
per-user limits live in :mod:`core.limits`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserInputError
from core.models import ModelSpec

ALLOWED_MODELS_VAR = "FV_STUDIO_ALLOWED_MODELS"
ALLOW_REMOTE_VAR = "FV_STUDIO_ALLOW_REMOTE"
VARIABLES = (ALLOWED_MODELS_VAR, ALLOW_REMOTE_VAR)

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def read_setting(
    name: str, secrets: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """One setting: the environment variable ``name`` (default: the process environment), else
    the Streamlit secret of that name; stripped, None when unset or blank."""
    env = os.environ if env is None else env
    raw = env.get(name)
    if raw is None and (secrets or {}).get(name) is not None:
        raw = str(secrets[name])  # type: ignore[index]
    return None if raw is None or not raw.strip() else raw.strip()


@dataclass(frozen=True)
class ServerConfig:
    allowed_models: tuple[str, ...] | None = None  # None: any model id or folder
    allow_remote: bool = True

    @classmethod
    def read(cls, secrets: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> ServerConfig:
        """The settings from ``env`` (default: the process environment), then ``secrets``.

        A malformed value raises :class:`UserInputError` naming the variable.
        """

        def value(name: str) -> str | None:
            return read_setting(name, secrets, env)

        models_raw = value(ALLOWED_MODELS_VAR)
        allowed: tuple[str, ...] | None = None
        if models_raw is not None and models_raw != "*":
            allowed = tuple(dict.fromkeys(m.strip() for m in models_raw.split(",") if m.strip()))
            if not allowed or "*" in allowed:
                raise UserInputError(
                    f"{ALLOWED_MODELS_VAR} must be '*' or a comma-separated list of model ids or folders (got {models_raw!r})."
                )
        remote_raw = value(ALLOW_REMOTE_VAR)
        if remote_raw is None:
            allow_remote = allowed is None
        elif remote_raw.lower() in _TRUE | _FALSE:
            allow_remote = remote_raw.lower() in _TRUE
        else:
            raise UserInputError(f"{ALLOW_REMOTE_VAR} must be true or false (got {remote_raw!r}).")
        return cls(allowed_models=allowed, allow_remote=allow_remote)

    def permits(self, model_id: str) -> bool:
        """Whether ``model_id`` is on the list (a folder also matches by its resolved path)."""
        if self.allowed_models is None:
            return True
        model_id = model_id.strip()
        if model_id in self.allowed_models:
            return True
        if not Path(model_id).is_dir():
            return False
        here = Path(model_id).resolve()
        return any(Path(m).is_dir() and Path(m).resolve() == here for m in self.allowed_models)

    def check(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` unchanged, or :class:`UserInputError` saying what this server allows."""
        if not self.permits(spec.model_id):
            raise UserInputError(
                f"This server does not load '{spec.model_id}'. Models allowed here: {', '.join(self.allowed_models or ())}."
            )
        if spec.remote and not self.allow_remote:
            raise UserInputError(
                "Remote execution (NDIF) is switched off on this server: run the model locally, or ask "
                f"the operator to set {ALLOW_REMOTE_VAR}=true."
            )
        return spec

    def as_table(self) -> list[tuple[str, str]]:
        """(what, setting) rows for the sidebar's Limits."""
        return [
            ("models users may load", "any" if self.allowed_models is None else ", ".join(self.allowed_models)),
            ("remote execution (NDIF)", "allowed" if self.allow_remote else "off"),
        ]
