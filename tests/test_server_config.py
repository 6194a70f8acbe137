"""The operator's settings (core.server_config): parsing, what they allow, and the app and CLI
enforcing them."""

from __future__ import annotations

import pytest

from core.errors import UserInputError
from core.models import DEFAULT_MODEL, ModelSpec
from core.server_config import ServerConfig


def test_defaults_allow_anything_for_a_single_user():
    c = ServerConfig.read(env={})
    assert c.allowed_models is None and c.allow_remote
    assert c.check(ModelSpec("any/model", remote=True)).model_id == "any/model"
    assert ServerConfig.read(env={"FV_STUDIO_ALLOWED_MODELS": "*"}) == c


def test_a_model_list_limits_models_and_switches_remote_off(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    c = ServerConfig.read(env={"FV_STUDIO_ALLOWED_MODELS": f" {DEFAULT_MODEL}, {folder} ,gpt2"})
    assert c.allowed_models == (DEFAULT_MODEL, str(folder), "gpt2") and not c.allow_remote
    assert c.permits(DEFAULT_MODEL) and c.permits("gpt2")
    assert c.permits(str(tmp_path / "." / "my-model"))  # the same folder, written differently
    for bad in ("gpt2-xl", "..", str(tmp_path), "/"):
        with pytest.raises(UserInputError, match=f"Models allowed here: {DEFAULT_MODEL}, .*my-model, gpt2"):
            c.check(ModelSpec(bad))
    with pytest.raises(UserInputError, match="Remote execution .* switched off"):
        c.check(ModelSpec("gpt2", remote=True))
    on = ServerConfig.read(env={"FV_STUDIO_ALLOWED_MODELS": "gpt2", "FV_STUDIO_ALLOW_REMOTE": "yes"})
    assert on.check(ModelSpec("gpt2", remote=True)).remote


def test_secrets_are_read_and_the_environment_wins():
    secrets = {"FV_STUDIO_ALLOWED_MODELS": "a,b", "FV_STUDIO_ALLOW_REMOTE": "true"}
    assert ServerConfig.read(secrets=secrets, env={}) == ServerConfig(("a", "b"), True)
    assert ServerConfig.read(secrets=secrets, env={"FV_STUDIO_ALLOW_REMOTE": "off"}) == ServerConfig(("a", "b"), False)


@pytest.mark.parametrize(
    "env, pattern",
    [
        ({"FV_STUDIO_ALLOW_REMOTE": "maybe"}, "FV_STUDIO_ALLOW_REMOTE must be true or false"),
        ({"FV_STUDIO_ALLOWED_MODELS": " , ,"}, "FV_STUDIO_ALLOWED_MODELS must be"),
        ({"FV_STUDIO_ALLOWED_MODELS": "a,*"}, "FV_STUDIO_ALLOWED_MODELS must be"),
    ],
)
def test_malformed_settings_name_the_variable(env, pattern):
    with pytest.raises(UserInputError, match=pattern):
        ServerConfig.read(env=env)


def test_the_cli_refuses_a_model_the_server_does_not_allow(monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setenv("FV_STUDIO_ALLOWED_MODELS", DEFAULT_MODEL)
    assert main(["info", "--model", "/etc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not load '/etc'" in err and DEFAULT_MODEL in err


@pytest.mark.slow
def test_the_app_offers_only_the_allowed_models(tmp_path, monkeypatch):
    from app_helpers import errors, start

    monkeypatch.setenv("FV_STUDIO_ALLOWED_MODELS", DEFAULT_MODEL)
    at = start(tmp_path, monkeypatch, model_id="/etc", remote=True)  # e.g. from an old session
    assert not at.exception and not errors(at)
    box = at.sidebar.selectbox(key="model_id")
    assert box.options == [DEFAULT_MODEL] and box.value == DEFAULT_MODEL
    assert at.sidebar.toggle(key="remote").disabled and at.session_state["remote"] is False
    limits_table = at.sidebar.table[0].value
    assert ("models users may load", DEFAULT_MODEL) in list(zip(limits_table["what"], limits_table["limit"]))
    assert ("remote execution (NDIF)", "off") in list(zip(limits_table["what"], limits_table["limit"]))


def test_the_dashboard_never_loads_a_model_outside_the_list(monkeypatch):
    """Whatever the session state says (an old session, a crafted link), get_model checks."""
    from dashboard import server

    monkeypatch.setenv("FV_STUDIO_ALLOWED_MODELS", "some/other-model")
    monkeypatch.setattr(server, "_model", lambda spec: pytest.fail("loaded a model the server does not allow"))
    with pytest.raises(UserInputError, match="does not load 'SmolLM2-135M-Instruct'.*some/other-model"):
        server.get_model(ModelSpec(DEFAULT_MODEL))
