"""Shareable links (dashboard.links): a link restores a page's settings, bad parameters give a
warning and the default, and changes are written back to the URL. AppTest on the tiny Llama
folder (3 layers x 4 heads), so each run takes a second or two."""

from __future__ import annotations

import pytest
from app_helpers import APP, button, frame

from core.checks import parse_heads, parse_whole
from core.errors import UserInputError


def _open(tmp_path, monkeypatch, page: str, **params: str):
    """An AppTest opened on ``page`` through a link with these query parameters."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FV_STUDIO_DATA", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(params)
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


@pytest.fixture
def model(tiny_llama_folder) -> str:
    return str(tiny_llama_folder)


def test_link_restores_function_vector_page(tmp_path, monkeypatch, model):
    link = {"model": model, "task": "country_capital", "shots": "3", "prompts": "4", "seed": "7"}
    link |= {"heads": "2.1,0.3", "layer": "1", "coeff": "2.5", "metric": "logprob"}
    at = _open(tmp_path, monkeypatch, "function_vector", **link)
    assert not _warnings(at) and not at.error
    ss = at.session_state
    assert (ss["task_name"], ss["n_shots"], ss["n_prompts"], ss["seed"]) == ("country_capital", 3, 4, 7)
    assert (ss["manual_heads"], ss["head_mode"], ss["fv_layer"], ss["fv_coeff"]) == (["2.1", "0.3"], "By hand", 1, 2.5)
    assert at.sidebar.slider(key="n_shots_slider").value == 3  # the widgets show the link's values
    assert at.selectbox(key="_w_fv_layer").value == 1
    assert any("2.1, 0.3" in str(m.value) for m in at.markdown)  # the page uses the link's heads
    assert at.query_params == link  # written back unchanged
    [url] = [c.value for c in at.sidebar.code]
    assert "heads=2.1%2C0.3" in url and "task=country_capital" in url


def test_bad_parameters_give_warnings_and_defaults(tmp_path, monkeypatch, model):
    link = {"model": model, "shots": "ten", "task": "no_such_task", "heads": "2-1", "layer": "3", "coeff": "50"}
    link |= {"colour": "red"}
    at = _open(tmp_path, monkeypatch, "function_vector", **link)
    warned = {w.split("`")[1].split("=")[0]: w for w in _warnings(at)}
    assert set(warned) == {"shots", "task", "heads", "layer", "coeff", "colour"}
    assert "whole number from 0 to 32" in warned["shots"] and "default (10)" in warned["shots"]
    assert "Unknown task 'no_such_task'" in warned["task"] and "default (antonym)" in warned["task"]
    assert "layer.head" in warned["heads"] and "top-k heads" in warned["heads"]
    assert "layers 0..2" in warned["layer"] and "default (auto)" in warned["layer"]
    assert "from -10 to 10" in warned["coeff"]
    assert "not a setting of this page" in warned["colour"]
    ss = at.session_state
    assert (ss["n_shots"], ss["task_name"], ss["head_mode"], ss["fv_layer"], ss["fv_coeff"]) == (
        10,
        "antonym",
        "Top-k",
        "auto",
        1.0,
    )
    assert not at.error  # the page itself ran on the defaults
    assert at.query_params == {"model": model}  # the bad ones are gone from the URL
    # out of range (rather than malformed) shots and heads
    at = _open(tmp_path, monkeypatch, "head_attribution", model=model, shots="99", heads="1.9")
    warned = " ".join(_warnings(at))
    assert "(got 99)" in warned and "Head 1.9 is out of range" in warned
    assert (at.session_state["n_shots"], at.session_state["head_mode"]) == (10, "Top-k")


def test_changes_are_written_to_the_url(tmp_path, monkeypatch, model):
    at = _open(tmp_path, monkeypatch, "head_attribution", model=model, prompts="4")
    assert at.query_params == {"model": model, "prompts": "4"}
    at.radio(key="_w_metric").set_value("logprob").run()
    at.sidebar.slider(key="n_shots_slider").set_value(4).run()
    at.sidebar.selectbox(key="task_name").set_value("present_past").run()
    assert at.query_params == {
        "model": model,
        "prompts": "4",
        "metric": "logprob",
        "shots": "4",
        "task": "present_past",
    }
    at.radio(key="_w_head_mode").set_value("By hand").run()
    at.multiselect(key="_w_manual_heads").select("1.2").select("0.0").run()
    assert at.query_params["heads"] == "1.2,0.0"
    # another page: the sidebar's settings stay, the page's own are those of the new page
    at.switch_page("../pages/steering_vectors.py")
    at.run()
    assert not at.exception and "metric" not in at.query_params and at.query_params["task"] == "present_past"
    at.text_input(key="_w_sv_a_positive").input("Happy")
    at.selectbox(key="_w_sv_a_layer").set_value(2)
    button(at, "Build the vector").click().run()
    assert not at.exception
    assert {k: at.query_params[k] for k in ("positive", "layer", "build")} == {
        "positive": "Happy",
        "layer": "2",
        "build": "1",
    }
    # ...and that link, opened in a new session, builds the same vector
    again = _open(tmp_path, monkeypatch, "steering_vectors", **at.query_params)
    assert not _warnings(again) and again.query_params == at.query_params
    assert (again.session_state["sv_a_positive"], again.session_state["sv_a_built"]) == ("Happy", True)


def test_parsing_checks():
    assert parse_heads(" 20.5, 14.1,20.5") == [(20, 5), (14, 1)]
    for bad in ("", "20", "20.5.1", "a.b", "20.5;14.1"):
        with pytest.raises(UserInputError, match="layer.head"):
            parse_heads(bad)
    assert parse_whole(" 7 ", "seed", 0, 10) == 7
    for bad in ("7.5", "", "11", "-1"):
        with pytest.raises(UserInputError, match="whole number from 0 to 10"):
            parse_whole(bad, "seed", 0, 10)


def test_lesson_and_steer_links(tmp_path, monkeypatch, model):
    # a lesson step's link: its prompt, layer and "run" show the same result at once
    at = _open(
        tmp_path, monkeypatch, "lesson_1_model", model=model, prompt="The capital of France is", layer="2", run="1"
    )
    assert not _warnings(at) and not at.error
    assert at.session_state["lesson_ran_1"] and at.session_state["lesson_layer"] == 2
    assert at.text_input(key="_w_lesson_prompt").value == "The capital of France is"
    assert len(frame(at, "shape")) > 0  # the trace's result (the activations' shapes) is on screen
    assert at.query_params == {"model": model, "prompt": "The capital of France is", "layer": "2", "run": "1"}
    # a steering link whose vector this server does not have: the message, and no error page
    at = _open(tmp_path, monkeypatch, "steer", model=model, vector="nope", layer="1", generate="1")
    warned = " ".join(_warnings(at))
    assert "`vector=nope`" in warned and "no vector 'nope'" in warned and "newest vector" in warned
    assert at.session_state["steer_request"] is None


def test_compare_and_report_links(tmp_path, monkeypatch, model):
    at = _open(tmp_path, monkeypatch, "compare_tasks", model=model, tasks="antonym,present-past", k="5", n_eval="10")
    assert not _warnings(at)
    ss = at.session_state
    assert (ss["compare_tasks"], ss["compare_top_k"], ss["compare_n_eval"]) == (["antonym", "present_past"], 5, 10)
    assert at.query_params["tasks"] == "antonym,present_past"
    at = _open(tmp_path, monkeypatch, "compare_tasks", model=model, tasks="antonym", layer="auto", run="yes")
    warned = _warnings(at)
    assert any("`tasks=antonym`" in w and "Compare 2 to 8 tasks" in w for w in warned)
    assert any("`run=yes`" in w and "use 1" in w and "no comparison until Run" in w for w in warned)
    assert at.session_state["compare_request"] is None and "run" not in at.query_params
    at = _open(tmp_path, monkeypatch, "task_report", model=model, k="31", prompt="Hello")
    [warning] = _warnings(at)
    assert "`k=31`" in warning and "from 1 to 30" in warning and at.session_state["report_prompt"] == "Hello"


def test_run_links_show_the_result(tmp_path, monkeypatch, model):
    """``run=1`` on Compare tasks and Task report: the link opens on the result of the Run, and
    a changed choice (the result no longer the choices') leaves it out of the URL again."""
    from app_helpers import errors

    small = {"model": model, "shots": "3", "prompts": "3"}
    link = small | {"tasks": "antonym,present_past", "k": "2", "layer": "1", "n_eval": "5", "run": "1"}
    at = _open(tmp_path, monkeypatch, "compare_tasks", **link)
    assert not _warnings(at) and not errors(at)
    assert list(frame(at, "own vector")["task"]) == ["antonym", "present_past"]
    assert list(frame(at, "own vector")["layer"]) == [1, 1]
    assert at.query_params == link
    at.slider(key="_w_compare_top_k").set_value(3).run()
    assert any("changed since the last Run" in i.value for i in at.info) and "run" not in at.query_params
    link = small | {"k": "2", "run": "1"}
    at = _open(tmp_path, monkeypatch, "task_report", **link)
    assert not _warnings(at) and not errors(at)
    assert [h.value for h in at.subheader][:1] == ["Verdict"]
    [heads] = [c.value for c in at.caption if "held-out test queries, 3 shots. Heads: " in c.value]
    assert len(heads.split("Heads: ")[1].split(". Computed")[0].split(", ")) == 2  # the link's k
    assert at.query_params == link
