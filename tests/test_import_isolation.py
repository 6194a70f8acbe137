"""The layers' import rules, for every module of each package (found on disk, so a new module
is covered the day it is added):

- imports flow ``pages -> dashboard -> core``, never back;
- ``core`` never imports the UI stack (streamlit, plotly): it must work from a notebook or the CLI;
- no module imports another module's private names (``from core.x import _helper``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "dashboard", "pages")  # each may import only the ones before it
UI_PACKAGES = ("streamlit", "plotly")


def modules(package: str) -> list[str]:
    return sorted(
        package if p.name == "__init__.py" else f"{package}.{p.stem}"
        for p in (ROOT / package).glob("*.py")
        if p.name != "__main__.py"
    )


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
    return found


def violations(package: str) -> list[str]:
    allowed = LAYERS[: LAYERS.index(package) + 1]
    out = []
    for path in sorted((ROOT / package).glob("*.py")):
        me = f"{package}.{path.stem}"
        for module, names in imports_of(path):
            top = module.split(".")[0]
            if top in LAYERS and top not in allowed:
                out.append(f"{me} imports {module} (imports flow pages -> dashboard -> core)")
            if package == "core" and top in UI_PACKAGES:
                out.append(f"{me} imports {module} (core stays free of the UI)")
            if top in LAYERS and module != me:
                out += [
                    f"{me} imports private {n} from {module}"
                    for n in names
                    if n.startswith("_") and not n.startswith("__")
                ]
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_every_module_follows_the_import_rules(package):
    assert len(modules(package)) >= 3
    assert violations(package) == []


def test_the_static_check_can_fail(tmp_path, monkeypatch):
    """Guards the test above: a core module that imports the dashboard, streamlit or a private
    name is reported."""
    fake = tmp_path / "core"
    fake.mkdir()
    (fake / "bad.py").write_text(
        "import streamlit\nfrom dashboard import compute\nfrom core.inference import _secret\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("core")
    assert len(found) == 3, found


def test_importing_all_of_core_loads_no_ui_package():
    """At run time too (an import inside a function counts): import every core module."""
    script = (
        f"import sys\nimport {', '.join(modules('core'))}\n"
        f"print('UI:' + ','.join(sorted(n for n in sys.modules if n.split('.')[0] in {UI_PACKAGES!r})))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("UI:")][-1]
    assert line == "UI:", f"core pulled in UI packages: {line[3:]}"
