"""core never imports the UI stack: it must work from a notebook or the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_MODULES = (
    "core",
    "core.arch",
    "core.errors",
    "core.limits",
    "core.models",
    "core.inference",
    "core.attribution",
    "core.fv",
    "core.vectors",
    "core.tasks",
    "core.prompts",
)
UI_PACKAGES = ("streamlit", "plotly")

SCRIPT = """
import sys
import {modules}
ui = sorted(name for name in sys.modules if name.split(".")[0] in {ui!r})
print("UI:" + ",".join(ui))
"""


def test_core_imports_no_ui_packages():
    script = SCRIPT.format(modules=", ".join(CORE_MODULES), ui=UI_PACKAGES)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("UI:")][-1]
    assert line == "UI:", f"core pulled in UI packages: {line[3:]}"


def test_the_check_can_fail():
    """The same script reports a UI package when one is imported (guards the test above)."""
    script = SCRIPT.format(modules="core, json, plotly", ui=UI_PACKAGES)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plotly" in result.stdout
