"""AppTest: the Steer, Steering vectors and Vector library pages on the real default model.

One flow: build the Love - Hate activation-addition vector, sweep it briefly and save it;
steer with it; then list, combine, reject a bad expression and a bad upload, and take a good
upload. Generations are kept short (a few tokens) so the whole file stays near a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_helpers import button as _button
from app_helpers import errors as _errors
from app_helpers import frame as _frame
from app_helpers import start as _app
from streamlit.testing.v1 import AppTest

from core.library import Library
from core.models import DEFAULT_MODEL

pytestmark = pytest.mark.slow


def _library_folder(data: Path) -> Path:
    """Where the app saves the default model's vectors, with FV_STUDIO_DATA set to ``data``."""
    return Library(data / "vectors").folder(DEFAULT_MODEL)


def _outputs(at: AppTest) -> list[str]:
    """The continuations shown in the two columns (the HTML blocks, prompt span removed)."""
    texts = []
    for md in at.markdown:
        if 'class="fv-steer-text"' in md.value:
            body = md.value.split("</span>", 1)[1]  # after the grey prompt
            texts.append(body)
    return texts


def test_pages_render_without_vectors(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)
    for page in ("steer", "steering_vectors", "vector_library"):
        at.switch_page(f"../pages/{page}.py")
        at.run()
        assert not at.exception, page
        assert not _errors(at), page
    at.switch_page("../pages/steer.py")
    at.run()
    assert any("No steering vector exists yet" in i.value for i in at.info)


def test_build_save_steer_and_library(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch)

    # --- Steering vectors: Love - Hate at layer 6, a 1 x 2 sweep, save ---
    at.switch_page("../pages/steering_vectors.py")
    at.run()
    assert not at.exception
    assert at.text_input(key="_w_sv_a_positive").value == "Love"
    assert at.text_input(key="_w_sv_a_negative").value == "Hate"
    assert at.selectbox(key="_w_sv_a_layer").value == 6
    _button(at, "Build the vector").click().run()
    assert not at.exception and not _errors(at)
    aligned = _frame(at, "positive token")
    assert aligned["positive token"].iloc[0] == "'Love'" and len(aligned) >= 2
    at.multiselect(key="_w_sv_a_sweep_layers").set_value([6])
    at.text_input(key="_w_sv_a_sweep_coeffs").set_value("0, 6")
    at.number_input(key="_w_sv_a_sweep_max_new").set_value(4)
    _button(at, "Run the sweep").click().run()
    assert not at.exception and not _errors(at)
    texts = _frame(at, "layer 6")
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts["layer 6"])
    # a bad coefficient list is a message, not a traceback
    at.text_input(key="_w_sv_a_sweep_coeffs").set_value("1, lots")
    _button(at, "Run the sweep").click().run()
    assert not at.exception
    assert any("Coefficients must be numbers" in e for e in _errors(at))
    at.text_input(key="_w_sv_a_sweep_coeffs").set_value("0, 6")
    _button(at, "Run the sweep").click().run()  # cached: no new generation
    assert not at.exception and not _errors(at)
    name_box = next(t for t in at.text_input if t.label == "Name" and t.value.startswith("actadd_"))
    name_box.set_value("love_hate")
    _button(at, "Save to the library").click().run()
    assert not at.exception
    assert any("Saved 'love_hate'" in s.value for s in at.success)
    assert (_library_folder(tmp_path) / "love_hate.safetensors").exists()

    # CAA: a bad line is a clear message; good pairs give per-layer vectors
    at.text_area(key="_w_sv_c_text").set_value("good | bad\nno separator here")
    _button(at, "Build per-layer vectors").click().run()
    assert not at.exception
    assert any("line 2" in e and "'|'" in e for e in _errors(at))
    at.text_area(key="_w_sv_c_text").set_value("I love it. | I hate it.\nWhat a great day! | What an awful day!")
    _button(at, "Build per-layer vectors").click().run()
    assert not at.exception and not _errors(at)
    assert at.slider(key="_w_sv_c_layer").value == 12

    # --- Steer: the new vector is picked (the newest); generate a few tokens ---
    at.switch_page("../pages/steer.py")
    at.run()
    assert not at.exception and not _errors(at)
    assert at.selectbox(key="_w_steer_vector").value == "love_hate"
    assert at.selectbox(key="_w_steer_layer").value == 6  # the vector's layer
    assert at.radio(key="_w_steer_mode").value == "at the prompt's first positions"  # two positions
    at.number_input(key="_w_steer_max_new").set_value(6)
    at.number_input(key="_w_steer_coeff").set_value(6.0)
    _button(at, "Generate").click().run()
    assert not at.exception and not _errors(at)
    outputs = _outputs(at)
    assert len(outputs) == 2, outputs  # unsteered, steered
    assert all(o.strip() for o in outputs)
    assert any("KL(steered" in m.value for m in at.markdown)
    assert len(_frame(at, "p steered")) > 0
    assert any("typical residual norm at layer 6" in i.value for i in at.info)
    assert any("COEFF = 6.0" in c.value for c in at.code)  # the export script
    # an empty prompt is a message
    at.text_area(key="_w_steer_prompts").set_value("   ")
    _button(at, "Generate").click().run()
    assert not at.exception
    assert any("prompt" in e.lower() for e in _errors(at))

    # --- Vector library: listed, bad expression, bad upload, good combine and upload ---
    at.switch_page("../pages/vector_library.py")
    at.run()
    assert not at.exception and not _errors(at)
    table = _frame(at, "method")
    assert "love_hate" in set(table["name"])
    assert table.set_index("name").loc["love_hate", "method"] == "actadd"
    assert len(at.get("plotly_chart")) >= 2  # decoded tokens, cosine matrix
    at.text_input(key="lib_expression").set_value("love_hate + import_os")
    _button(at, "Combine and save").click().run()
    assert not at.exception
    assert any("Unknown vector 'import_os'" in e for e in _errors(at))
    at.text_input(key="lib_expression").set_value("__import__('os')")
    _button(at, "Combine and save").click().run()
    assert not at.exception
    assert _errors(at)
    at.text_input(key="lib_expression").set_value("0.5 * love_hate")
    at.text_input(key="lib_combined_name").set_value("half_love")
    _button(at, "Combine and save").click().run()
    assert not at.exception and not _errors(at)
    assert any("Saved 'half_love'" in s.value for s in at.success)
    assert "half_love" in set(_frame(at, "method")["name"])

    at.file_uploader(key="lib_upload").set_value(
        ("notes.safetensors", b"just some text", "application/octet-stream")
    ).run()
    assert not at.exception
    assert any("not a safetensors vector file" in e for e in _errors(at))
    # a real vector file for another model is refused with the reason
    from core.vectors import from_bytes, to_bytes

    good = (_library_folder(tmp_path) / "love_hate.safetensors").read_bytes()
    vec = from_bytes(good)
    other = to_bytes(type(vec)(values=vec.values, model_id="gpt2", layer=6, method="actadd", name="other"))
    at.file_uploader(key="lib_upload").set_value(("other.safetensors", other, "application/octet-stream")).run()
    assert not at.exception
    assert any("made for model 'gpt2'" in e for e in _errors(at))
    at.file_uploader(key="lib_upload").set_value(("love.safetensors", good, "application/octet-stream")).run()
    assert not at.exception and not _errors(at)
    assert any("a valid actadd vector" in s.value for s in at.success)
    assert json.loads((_library_folder(tmp_path) / "half_love.json").read_text())["method"] == "combined"

    # delete (behind a confirmation button): gone from the table and the folder
    at.selectbox(key="_w_lib_inspect").set_value("half_love").run()
    _button(at, "Yes, delete 'half_love'").click().run()
    assert not at.exception
    assert any("Deleted 'half_love'" in s.value for s in at.success)
    assert "half_love" not in set(_frame(at, "method")["name"])
    assert not (_library_folder(tmp_path) / "half_love.safetensors").exists()
