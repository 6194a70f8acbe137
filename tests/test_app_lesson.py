"""AppTest: the five lesson steps (one session walks them all, small settings) on the default
model and on a tiny random Llama saved as a folder (the lesson scales its layers to any model),
and one recipe applied from the sidebar."""

from __future__ import annotations

import pytest
from app_helpers import button, errors, frame, shown_scripts
from app_helpers import start as _app

FAST = {"n_prompts": 6, "n_shots": 5, "fv_layer": 12, "top_k": 3}  # small, and no layer search


def _texts(at, prompt: str) -> list[str]:
    """The generated-text blocks (dashboard.lesson.show_pair) that continue ``prompt``."""
    return [m.value for m in at.markdown if "font-family:monospace" in m.value and prompt in m.value]


def _step(at, n: int) -> None:
    from dashboard.lesson import step

    at.switch_page(step(n).path)
    at.run()
    assert not at.exception and not errors(at)
    assert any(f"Lesson: step {n} of 5" in m.value for m in at.markdown)


@pytest.mark.slow
def test_lesson_walkthrough(tmp_path, monkeypatch):
    _walk(_app(tmp_path, monkeypatch, **FAST), n_heads=9, d_head=64)  # SmolLM2: 9 heads of 64


def test_lesson_on_a_tiny_model(tmp_path, monkeypatch, tiny_llama_folder):
    at = _app(tmp_path, monkeypatch, **{**FAST, "fv_layer": "auto", "model_id": str(tiny_llama_folder)})
    _walk(at, n_heads=4, d_head=16)
    assert at.session_state["lesson_add_layer"] == 1  # layer 6 of 30 -> 1 of 3
    assert at.session_state["lesson_layer"] == 2  # 20 of 30 -> 2 of 3
    # step 3 on the course's task, one click away: the Netherlands pair leaves the vector's pairs
    _step(at, 3)
    button(at, "Use country_capital").click().run()
    assert not at.exception and not errors(at) and at.session_state["task_name"] == "country_capital"
    assert any("Netherlands → Amsterdam" in c.value for c in at.caption)
    assert at.session_state["lesson_steer_prompt"].startswith("When you think of Netherlands")
    # a list of additions at two layers
    at.session_state["lesson_additions"] = '+5 "Love "\n-5 "Hate" @0'
    _step(at, 4)
    assert list(frame(at, "coefficient")["layer"]) == [1, 0]
    assert len(_texts(at, "I hate you because")) == 6


def _walk(at, n_heads: int, d_head: int) -> None:
    _step(at, 1)
    button(at, "Run the trace").click().run()
    assert not at.exception and not errors(at)
    shapes, n_tokens = frame(at, "activation"), len(frame(at, "id"))
    assert n_tokens == 9 and f"[1, {n_tokens}, {n_heads}, {d_head}]" in set(shapes["shape"])
    assert any("Q1." in e.label for e in at.expander)
    shown_scripts(at, ["the next-token top-k of this prompt"])

    _step(at, 2)
    button(at, "Build the h-vector and sweep the layers").click().run()
    assert not at.exception and not errors(at)
    table = frame(at, "Δ log p(answer)")
    assert list(table.columns)[:3] == ["query", "target", "zero-shot prediction"] and len(table) == 12
    assert any(m.label.startswith("Zero-shot + h (layer") for m in at.metric)
    shown_scripts(at, ["the h-vector and its layer sweep"])
    button(at, "Save to the library").click().run()
    assert any(m.value.startswith("Saved 'h_") for m in at.success)

    _step(at, 3)
    button(at, "Find the heads and build the function vector").click().run()
    assert not at.exception and not errors(at)
    assert len(frame(at, "effect")) == 3
    assert any(m.label == "Shuffled + FV" for m in at.metric)
    # antonym: the course's prompt for it, and the pair it mentions left out of the vector
    assert any("hot → cold" in c.value and "Removed from the pairs" in c.value for c in at.caption)
    assert len(_texts(at, "The word &quot;hot&quot; means")) == 2  # unsteered and steered
    shown_scripts(at, ["the indirect-effect grid", "the function vector", "this steered generation"])

    _step(at, 4)
    button(at, "Steer").click().run()
    assert not at.exception and not errors(at)
    tokens = frame(at, "coefficient")
    assert list(tokens["coefficient"]) == ["+5", "-5"]
    assert at.session_state["sv_a_positive"] == "Love " and at.session_state["sv_a_built"]  # shared with the tool
    assert len(_texts(at, "I hate you because")) == 2 * 3  # unsteered and steered, three samples
    shown_scripts(at, ["these steered samples"])

    _step(at, 5)
    button(at, "Build from 6 pairs and steer").click().run()
    assert not at.exception and not errors(at)
    assert at.session_state["sv_c_pairs"]
    assert len(_texts(at, "I hate you because")) == 2
    shown_scripts(at, ["this steered generation"])


@pytest.mark.slow
def test_recipe_sets_controls_and_opens_the_page(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.selectbox(key="recipe_choice").set_value('"Love" − "Hate" (activation addition)').run()
    [apply] = [b for b in at.sidebar.button if b.label == "Apply"]
    apply.click().run()
    assert not at.exception and not errors(at)
    assert at.session_state["lesson_additions"] == '+5 "Love "\n-5 "Hate"'
    assert at.session_state["lesson_add_layer"] == 6 and at.session_state["lesson_ran_4"]
    assert any(t.value.startswith("4. Steering vectors") for t in at.title)  # the page switched
    assert len(_texts(at, "I hate you because")) == 6  # and it ran
