"""Helpers for the AppTest suites: start the app with seeded session state, read what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def start(tmp_path: Path, monkeypatch: Any, **state: Any) -> Any:
    """An AppTest of the whole app (fresh vector library in ``tmp_path``), session state seeded
    before the first run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FV_STUDIO_DATA", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=600)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    return at


def errors(at: Any) -> list[str]:
    """Texts of the error boxes on the page and in the sidebar."""
    return [e.value for e in at.error] + [e.value for e in at.sidebar.error]


def button(at: Any, label: str) -> Any:
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button '{label}' (buttons: {[b.label for b in at.button]})"
    return matches[0]


def frame(at: Any, column: str) -> Any:
    """The first dataframe on the page with this column."""
    for f in at.dataframe:
        if column in f.value.columns:
            return f.value
    raise AssertionError(f"no table with a '{column}' column")


def shown_scripts(at: Any, whats: list[str]) -> None:
    """The page shows one "nnsight code: <what>" expander per entry of ``whats`` (label starts),
    each with a download button and a script that compiles and imports nothing of this project
    (tests/test_scripts*.py check that such scripts print the app's numbers)."""
    blocks = [e for e in at.expander if e.label.startswith("nnsight code: ")]
    labels = [e.label.removeprefix("nnsight code: ") for e in blocks]
    assert len(blocks) == len(whats) and all(l.startswith(w) for l, w in zip(labels, whats)), labels
    for block in blocks:
        assert not [i for i in block.info if "No script" in i.value], block.label
        (code,) = block.code
        compile(code.value, block.label, "exec")
        assert "from core" not in code.value and "import core" not in code.value, block.label
        assert len(block.get("download_button")) == 1, block.label
