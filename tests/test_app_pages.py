"""AppTest: the foundation and function-vector pages render on the real default model."""

from __future__ import annotations

import pytest

from app_helpers import errors as _errors
from app_helpers import frame as _table
from app_helpers import start as _app

pytestmark = pytest.mark.slow





def test_model_page_typed_examples(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    assert not at.exception
    at.sidebar.radio(key="_w_task_source").set_value("Type examples").run()
    at.sidebar.text_area(key="_w_typed_examples").set_value(
        "cat -> cats\ndog -> dogs\nbox -> boxes\ncar -> cars\ntree -> trees\nbird -> birds"
    ).run()
    assert not at.exception and not _errors(at)
    table = _table(at, "prediction")
    assert list(table.columns)[:4] == ["query", "target", "prediction", "correct"]
    assert len(table) == 6 and set(table["query"]) == {"cat", "dog", "box", "car", "tree", "bird"}
    labels = [m.label for m in at.metric]
    assert "In-context accuracy" in labels


def test_model_page_bad_line(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.radio(key="_w_task_source").set_value("Type examples").run()
    at.sidebar.text_area(key="_w_typed_examples").set_value("hot -> cold\nbig small\nup -> down").run()
    assert not at.exception
    assert any("Line 2" in e and "separator" in e for e in _errors(at))
    at.sidebar.text_area(key="_w_typed_examples").set_value("hot -> cold").run()
    assert any("two" in e for e in _errors(at))


def test_attribution_and_function_vector_pages(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    at.sidebar.slider(key="_w_n_prompts").set_value(8).run()
    at.switch_page("../pages/task_vectors.py")
    at.run()
    assert not at.exception and not _errors(at)
    assert any(m.label.startswith("Zero-shot + h") for m in at.metric)
    at.switch_page("../pages/head_attribution.py")
    at.run()
    assert not at.exception and not _errors(at)
    top = _table(at, "effect")
    assert len(top) == 10
    at.switch_page("../pages/function_vector.py")
    at.run()
    assert not at.exception and not _errors(at)
    labels = [m.label for m in at.metric]
    assert "Zero-shot" in labels and any(l.startswith("Zero-shot + FV") for l in labels)
    assert len(_table(at, "with vector")) > 0
    # save the vector to the library
    at.text_input(key="fv_name").set_value("fv_test")
    next(b for b in at.button if b.label == "Save to the library").click().run()
    assert not at.exception
    assert any("Saved 'fv_test'" in s.value for s in at.success)
    assert list((tmp_path / "vectors").glob("*/fv_test.safetensors"))
