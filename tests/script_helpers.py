"""Running exported scripts (core.scripts) and comparing what they print with the app's result:
shared by the analysis and the steering script tests."""

from __future__ import annotations

import json
import math
import subprocess
import sys

TOL = 1e-4
IGNORED = {"seconds", "attribution_seconds", "method", "layers", "from_cache"}  # the script's own facts

# a script reads its files through runpy; stdout of each is captured and parsed
RUNNER = """
import contextlib, io, json, runpy, sys
out = []
for path in sys.argv[1:]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runpy.run_path(path, run_name="__main__")
    out.append(json.loads(buf.getvalue()))
print(json.dumps(out))
"""


def run_scripts(paths: list[str]) -> list[dict]:
    """Run scripts one after another in one fresh process; their printed JSON, in order."""
    done = subprocess.run([sys.executable, "-c", RUNNER, *paths], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def as_json(value):
    return json.loads(json.dumps(value))


def assert_matches(got, expected, where: str = "") -> None:
    """Every value the script printed equals the app's (numbers within TOL); a dict's keys
    must all be the app's, lists the same length. ``None`` in the script: not computed."""
    if got is None:
        return
    if isinstance(got, dict):
        assert isinstance(expected, dict), where
        for key, value in got.items():
            if key in IGNORED:
                continue
            assert key in expected, f"{where}.{key}: not a key of the app's result"
            assert_matches(value, expected[key], f"{where}.{key}")
    elif isinstance(got, list):
        assert isinstance(expected, list) and len(got) == len(expected), f"{where}: lengths differ"
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_matches(a, b, f"{where}[{i}]")
    elif isinstance(got, float) or isinstance(expected, float):
        assert not isinstance(got, bool) and math.isclose(got, expected, abs_tol=TOL), f"{where}: {got} != {expected}"
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"
