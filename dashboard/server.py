"""What one server shares with every session: the loaded model (one per spec, loaded once and
kept: ``st.cache_resource``), the operator's settings (:mod:`core.server_config`) and where
"Describe a task" asks for pairs, both read from the environment or Streamlit secrets."""

from __future__ import annotations

import os

import streamlit as st

from core.llm_pairs import VARIABLES as pairs_vars
from core.llm_pairs import Endpoint
from core.models import LoadedModel, ModelSpec, load_model
from core.server_config import VARIABLES as server_config_vars
from core.server_config import ServerConfig


@st.cache_resource(max_entries=2, show_spinner=False)
def _model(spec: ModelSpec) -> LoadedModel:
    return load_model(spec)


def server_config() -> ServerConfig:
    """The operator's settings (core.server_config), from the environment or Streamlit secrets."""
    return ServerConfig.read(secrets={name: _secret(name) for name in server_config_vars})


def get_model(spec: ModelSpec) -> LoadedModel:
    """The shared model for ``spec``, if this server allows it (else UserInputError)."""
    server_config().check(spec)
    if spec.remote and not os.environ.get("NDIF_API_KEY"):
        key = _secret("NDIF_API_KEY")
        if key:
            os.environ["NDIF_API_KEY"] = key
    with st.spinner(f"Loading {spec.model_id} (the first run dequantizes the default model, about 30 s)..."):
        return _model(spec)


def pairs_endpoint() -> Endpoint | None:
    """Where "Describe a task" asks for pairs (core.llm_pairs), from the environment or Streamlit
    secrets; None when none is configured. The key stays inside the Endpoint."""
    return Endpoint.read(secrets={name: _secret(name) for name in pairs_vars})


def _secret(name: str) -> str | None:
    try:
        return st.secrets.get(name)  # type: ignore[no-any-return]
    except Exception:  # no secrets file
        return None
