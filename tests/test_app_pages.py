"""AppTest: the foundation and function-vector pages render on the real default model."""

from __future__ import annotations

import ast

import pytest
from app_helpers import errors as _errors
from app_helpers import frame as _table
from app_helpers import shown_scripts
from app_helpers import start as _app

from dashboard.state import CONTEXT

pytestmark = pytest.mark.slow


def test_model_page_typed_examples(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    assert not at.exception
    at.sidebar.radio(key="task_source").set_value("Type examples").run()
    at.sidebar.text_area(key="typed_examples").set_value(
        "cat -> cats\ndog -> dogs\nbox -> boxes\ncar -> cars\ntree -> trees\nbird -> birds"
    ).run()
    assert not at.exception and not _errors(at)
    table = _table(at, "prediction")
    assert list(table.columns)[:4] == ["query", "target", "prediction", "correct"]
    assert len(table) == 6 and set(table["query"]) == {"cat", "dog", "box", "car", "tree", "bird"}
    for column in ("prediction", "zero-shot prediction"):  # tokens as repr: a newline is not a blank cell
        assert all(repr(ast.literal_eval(t)) == t for t in table[column]), list(table[column])
    labels = [m.label for m in at.metric]
    assert "In-context accuracy" in labels
    # the attention pattern (circuitsvis' heavy view) is drawn only when asked for
    assert not at.get("iframe")
    at.toggle(key="_w_show_attention").set_value(True).run()
    assert not at.exception and not _errors(at)
    [pattern] = at.get("iframe")
    assert "CircuitsVis.render(" in pattern.proto.srcdoc


def test_model_page_bad_line(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.radio(key="task_source").set_value("Type examples").run()
    at.sidebar.text_area(key="typed_examples").set_value("hot -> cold\nbig small\nup -> down").run()
    assert not at.exception
    assert any("Line 2" in e and "separator" in e for e in _errors(at))
    at.sidebar.text_area(key="typed_examples").set_value("hot -> cold").run()
    assert any("two" in e for e in _errors(at))


def test_attribution_and_function_vector_pages(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.slider(key="n_prompts").set_value(8).run()
    shown_scripts(at, ["predictions and in-context accuracy", "the top next tokens of the example prompt"])
    at.switch_page("../pages/task_vectors.py")
    at.run()
    assert not at.exception and not _errors(at)
    assert any(m.label.startswith("Zero-shot + h") for m in at.metric)
    shown_scripts(at, ["the h-vector and its layer sweep"])
    assert any(c.value.startswith("of ") and "95% CI" in c.value for c in at.caption)  # n and interval
    at.switch_page("../pages/head_attribution.py")
    at.run()
    assert not at.exception and not _errors(at)
    top = _table(at, "effect")
    assert len(top) == 10
    shown_scripts(at, ["mean head activations", "the indirect-effect grid"])
    assert not at.get("iframe")  # a head's attention pattern only when asked for
    at.toggle(key="_w_show_head_attention").set_value(True).run()
    assert not at.exception and not _errors(at)
    [pattern] = at.get("iframe")
    assert "CircuitsVis.render(" in pattern.proto.srcdoc
    # the induction-heads comparison, only when asked for
    assert not any(c.key == "ablation_curves" for c in at.get("plotly_chart"))
    at.toggle(key="_w_show_induction").set_value(True).run()
    assert not at.exception and not _errors(at)
    charts = {c.key for c in at.get("plotly_chart")}
    assert {"induction_heatmap", "heads_scatter", "ablation_curves"} <= charts
    assert any("Spearman" in c.value and "8 held-out" in c.value for c in at.caption)
    at.switch_page("../pages/function_vector.py")
    at.run()
    assert not at.exception and not _errors(at)
    labels = [m.label for m in at.metric]
    assert "Zero-shot" in labels and any(l.startswith("Zero-shot + FV") for l in labels)
    # first-token and generated whole-answer figures, each with its n and 95% interval
    assert sum(l.startswith("Zero-shot + FV") for l in labels) == 2
    assert any("Whole answer, generated" in m.value for m in at.markdown)
    assert sum(c.value.startswith("of ") and "95% CI" in c.value for c in at.caption) == 7
    assert len(_table(at, "with vector")) > 0
    shown_scripts(at, ["the function vector, its evaluation and decoding"])
    # save the vector to the library
    at.text_input(key="fv_name").set_value("fv_test")
    next(b for b in at.button if b.label == "Save to the library").click().run()
    assert not at.exception
    assert any("Saved 'fv_test'" in s.value for s in at.success)
    assert list((tmp_path / "vectors").glob("*/fv_test.safetensors"))


ADJECTIVES = "\n".join(
    f"{a} -> {a}er"
    for a in (
        "tall",
        "short",
        "fast",
        "slow",
        "small",
        "old",
        "young",
        "cold",
        "warm",
        "dark",
        "light",
        "long",
        "high",
        "low",
        "deep",
        "rich",
        "poor",
        "soft",
        "hard",
        "loud",
        "quick",
        "sharp",
        "thick",
        "thin",
        "clean",
        "clear",
        "cheap",
        "bright",
        "fresh",
        "great",
        "kind",
        "near",
        "neat",
        "plain",
        "proud",
        "quiet",
        "rough",
        "smart",
        "strong",
        "sweet",
    )
)  # 40 examples


def test_sidebar_keeps_its_values_and_the_shots_follow_the_user(tmp_path, monkeypatch):
    """The sidebar is drawn once, by the entrypoint: typed examples and shots survive page
    switches, and the Shots slider shows the user's choice capped by the examples, never a cap
    left over from an earlier, smaller example set."""

    def shots(at):
        slider = at.sidebar.slider(key="n_shots_slider")
        return slider.value, slider.max, at.session_state[CONTEXT].settings.n_shots

    at = _app(tmp_path, monkeypatch, n_prompts=2)
    at.sidebar.radio(key="task_source").set_value("Type examples").run()
    assert not at.exception and not _errors(at)
    assert shots(at) == (4, 4, 4)  # 5 default examples: at most 4 shots; the choice (10) is kept
    at.sidebar.text_area(key="typed_examples").set_value(ADJECTIVES).run()
    assert shots(at) == (10, 32, 10)  # 40 examples: back to the choice, not stuck at 4

    at.sidebar.slider(key="n_shots_slider").set_value(20).run()
    at.sidebar.text_area(key="typed_examples").set_value("hot -> cold\nbig -> small\nup -> down").run()
    assert shots(at) == (2, 2, 2)
    at.sidebar.text_area(key="typed_examples").set_value(ADJECTIVES).run()
    assert shots(at) == (20, 32, 20)
    at.sidebar.slider(key="n_shots_slider").set_value(3).run()  # a choice made under the cap holds
    assert shots(at) == (3, 32, 3)

    for page in ("../pages/vector_library.py", "../pages/steer.py", "../pages/model_prompts.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception and not _errors(at)
        assert at.sidebar.radio(key="task_source").value == "Type examples"
        assert at.sidebar.text_area(key="typed_examples").value == ADJECTIVES
        assert shots(at) == (3, 32, 3)
    table = _table(at, "prediction")
    assert set(table["query"]) <= set(line.split(" -> ")[0] for line in ADJECTIVES.splitlines())
