"""Bad input, everywhere: a catalogue of what a person can get wrong, and what they see.

Every case must give a clear message (an ``st.error`` on the page or in the sidebar; one line
``error: ...`` and exit status 2 on the CLI), never a traceback, and leave the session usable:
after each AppTest case the input is fixed and the page shows results again.

Also here: the security rules (no user input reaches eval, exec, pickle or a shell; the
expression box parses only names, numbers, + - * and parentheses; the server listens on
localhost with XSRF protection and a small upload cap) and the limits table in the UI.
"""

from __future__ import annotations

import ast
import builtins
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch
from app_helpers import button as _button
from app_helpers import errors as _errors
from app_helpers import frame as _frame
from app_helpers import start as _app

from core import limits
from core.errors import UserInputError
from core.models import DEFAULT_MODEL
from core.vectors import Vector, combine, from_bytes, to_bytes

REPO = Path(__file__).resolve().parents[1]
D_MODEL = 576  # SmolLM2-135M's residual width
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    + bytes(64)
)
GOOD_TASK = "cat -> cats\ndog -> dogs\nbox -> boxes\ncar -> cars\ntree -> trees\nbird -> birds"


def _vector(model_id: str = DEFAULT_MODEL, width: int = D_MODEL, name: str = "probe") -> Vector:
    return Vector(torch.linspace(-1, 1, width), model_id, 6, "function_vector", name, {"coeff": 1.0})


def _pickled_vector() -> bytes:
    # what a careless exporter would write: a pickle named like a vector file (never loaded)
    return pickle.dumps({"vector": [0.5] * D_MODEL, "model_id": DEFAULT_MODEL})


# =============================================================================================
# 1. The CLI: exit status 2 and one line on stderr
# =============================================================================================


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_input")
    (d / "empty.txt").write_text("")
    (d / "one.txt").write_text("hot -> cold\n")
    (d / "nosep.txt").write_text("hot -> cold\nbig small\nup -> down\n")
    (d / "many.txt").write_text("\n".join(f"w{i} -> v{i}" for i in range(5000)))
    (d / "latin1.txt").write_bytes("café -> coffee\nthé -> tea\n".encode("latin-1"))
    (d / "binary.txt").write_bytes(b"hot -> cold\x00\x01\x02\nbig -> small\n")
    (d / "image.csv").write_bytes(PNG)  # an image renamed .csv: not UTF-8
    (d / "nocols.csv").write_text("word,opposite\nhot,cold\nbig,small\n")
    (d / "pickle.safetensors").write_bytes(_pickled_vector())
    (d / "image.safetensors").write_bytes(PNG)
    (d / "other.safetensors").write_bytes(to_bytes(_vector(model_id="other")))
    (d / "narrow.safetensors").write_bytes(to_bytes(_vector(width=64)))
    assert sorted(p.name for p in d.iterdir()) == FILES
    return d


FILES = sorted(
    [
        "empty.txt",
        "one.txt",
        "nosep.txt",
        "many.txt",
        "latin1.txt",
        "binary.txt",
        "image.csv",
        "nocols.csv",
        "pickle.safetensors",
        "image.safetensors",
        "other.safetensors",
        "narrow.safetensors",
    ]
)


def _cli(args: list[str], files: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # an unknown model id fails at once instead of retrying the hub
        "FV_STUDIO_DATA": str(files / "data"),
        "PYTHONPATH": str(REPO),
    }
    args = [a.replace("{d}", str(files)) for a in args]
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


LONG_PROMPT = ("Tell me a story. " * 1200)[:20_000]

# (id, argv, what the one error line must contain); {d} is the folder of bad files
CLI_CASES = [
    ("empty-examples", ["predict", "--task-file", "{d}/empty.txt"], "No examples given"),
    ("one-example", ["predict", "--task-file", "{d}/one.txt"], "Only one example"),
    ("no-separator", ["predict", "--task-file", "{d}/nosep.txt"], "Line 2 ('big small') has no separator"),
    (
        "5000-lines",
        ["predict", "--task-file", "{d}/many.txt"],
        f"Too many lines: 5000 (the limit is {limits.MAX_PAIRS}",
    ),
    ("non-utf8", ["predict", "--task-file", "{d}/latin1.txt"], "latin1.txt is not UTF-8 text"),
    ("binary", ["predict", "--task-file", "{d}/binary.txt"], "looks like a binary file"),
    ("image-as-csv", ["attribution", "--task-file", "{d}/image.csv"], "image.csv is not UTF-8 text"),
    (
        "csv-without-columns",
        ["predict", "--task-file", "{d}/nocols.csv"],
        "needs a header with 'input' and 'output' columns (found: word, opposite)",
    ),
    ("missing-file", ["predict", "--task-file", "{d}/nowhere.json"], "Cannot read task file"),
    ("unknown-task", ["predict", "--task", "telepathy"], "Unknown task 'telepathy'"),
    (
        "vector-pickle",
        ["steer", "--prompt", "Hi", "--vector", "{d}/pickle.safetensors"],
        "is not a safetensors vector file",
    ),
    (
        "vector-png",
        ["steer", "--prompt", "Hi", "--vector", "{d}/image.safetensors"],
        "is not a safetensors vector file",
    ),
    (
        "vector-other-model",
        ["steer", "--prompt", "Hi", "--vector", "{d}/other.safetensors"],
        "was made for model 'other'",
    ),
    (
        "coeff-nan",
        ["steer", "--prompt", "Hi", "--positive", "Love", "--negative", "Hate", "--coeff", "nan"],
        "--coeff: must be a finite number",
    ),
    ("coeff-inf", ["fv", "--task", "antonym", "--coeff", "inf"], "--coeff: must be a finite number"),
    (
        "coeff-huge",
        ["steer", "--prompt", "Hi", "--positive", "Love", "--negative", "Hate", "--coeff", "1e9"],
        f"between -{limits.MAX_ABS_COEFF:g} and {limits.MAX_ABS_COEFF:g}",
    ),
    ("fv-coeff-huge", ["fv", "--task", "antonym", "--coeff=-1e9"], "is too large"),
    ("zero-heads", ["fv", "--task", "antonym", "--head-list", ""], "No heads selected"),
    ("bad-head", ["fv", "--task", "antonym", "--head-list", "20"], "'20' is not a head"),
    (
        "layer-not-a-number",
        ["steer", "--prompt", "Hi", "--positive", "a", "--negative", "b", "--layer", "six"],
        "--layer must be an integer",
    ),
    (
        "max-new-tokens",
        ["steer", "--prompt", "Hi", "--positive", "Love", "--negative", "Hate", "--max-new-tokens", "100000"],
        f"from 1 to {limits.MAX_NEW_TOKENS} (got 100000)",
    ),
    (
        "max-new-tokens-text",
        ["steer", "--prompt", "Hi", "--positive", "a", "--negative", "b", "--max-new-tokens", "lots"],
        "--max-new-tokens: invalid int value",
    ),
    (
        "long-prompt",
        ["steer", "--prompt", LONG_PROMPT, "--positive", "Love", "--negative", "Hate"],
        f"{len(LONG_PROMPT)} characters; the limit is {limits.MAX_PROMPT_CHARS}",
    ),
    ("empty-prompt", ["steer", "--prompt", "  ", "--positive", "Love", "--negative", "Hate"], "The prompt is empty"),
    ("no-vector", ["steer", "--prompt", "Hi"], "Give --vector FILE, or both --positive TEXT and --negative TEXT"),
    ("both-tasks", ["predict", "--task", "antonym", "--task-file", "{d}/one.txt"], "Give exactly one of --task"),
    ("unknown-dtype", ["info", "--dtype", "float8"], "--dtype: invalid choice"),
    ("unknown-model", ["info", "--model", "no-such/model"], "Could not load model 'no-such/model'"),
    # files that cannot be read or written: found before any model loads (where a case names
    # a model that cannot load, the file's message shows it was checked first)
    ("task-file-is-a-folder", ["predict", "--task-file", "{d}"], "Cannot read task file"),
    (
        "vector-missing",
        ["steer", "--prompt", "Hi", "--vector", "{d}/nowhere.safetensors"],
        "Cannot read --vector {d}/nowhere.safetensors: No such file",
    ),
    ("vector-is-a-folder", ["steer", "--prompt", "Hi", "--vector", "{d}"], "Cannot read --vector {d}: it is a folder"),
    (
        "vector-under-a-file",
        ["steer", "--prompt", "Hi", "--vector", "{d}/one.txt/v.safetensors"],
        "a part of the path is not a folder",
    ),
    (
        "out-missing-folder",
        ["info", "--model", "no-such/model", "--out", "{d}/missing/out.json"],
        "Cannot write --out {d}/missing/out.json: the folder {d}/missing does not exist",
    ),
    (
        "out-is-a-folder",
        ["predict", "--task", "antonym", "--model", "no-such/model", "--out", "{d}"],
        "Cannot write --out {d}: it is a folder",
    ),
    (
        "out-under-a-file",
        ["info", "--model", "no-such/model", "--out", "{d}/one.txt/out.json"],
        "{d}/one.txt is not a folder",
    ),
    (
        "save-name-with-space",
        ["fv", "--task", "antonym", "--model", "no-such/model", "--save", "{d}/my vec.safetensors"],
        "--save {d}/my vec.safetensors: the vector is named after the file. Invalid vector name 'my vec'",
    ),
    (
        "save-name-too-long",
        ["fv", "--task", "antonym", "--model", "no-such/model", "--save", "{d}/" + "v" * 65 + ".safetensors"],
        "Invalid vector name",
    ),
    (
        "save-missing-folder",
        ["fv", "--task", "antonym", "--model", "no-such/model", "--save", "{d}/missing/fv.safetensors"],
        "Cannot write --save {d}/missing/fv.safetensors: the folder {d}/missing does not exist",
    ),
    (
        "save-as-json",
        ["fv", "--task", "antonym", "--model", "no-such/model", "--save", "{d}/fv.json"],
        "'fv.json' ends in .json",
    ),
    (
        "save-onto-out",
        ["fv", "--task", "antonym", "--model", "no-such/model", "--save", "{d}/fv.safetensors", "--out", "{d}/fv.json"],
        "would write the same file",
    ),
    # these load the default model (the check needs its width or its number of layers and heads)
    pytest.param(
        "vector-wrong-width",
        ["steer", "--prompt", "Hi", "--vector", "{d}/narrow.safetensors"],
        f"has width 64, but the loaded model's residual stream has width {D_MODEL}",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "layer-out-of-range",
        ["steer", "--prompt", "Hi", "--positive", "Love", "--negative", "Hate", "--layer", "99"],
        "Layer 99 is out of range",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "head-out-of-range",
        ["fv", "--task", "antonym", "--head-list", "99.0", "--layer", "99"],
        "Head 99.0 is out of range",
        marks=pytest.mark.slow,
    ),
]


def _param(case):
    if hasattr(case, "marks"):  # already a pytest.param (a ParameterSet)
        return pytest.param(*case.values, id=case.values[0], marks=case.marks)
    return pytest.param(*case, id=case[0])


def _check_cli_error(rc, out: str, err: str, expected: str, files: Path | None = None) -> None:
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    assert out == "", "no JSON on bad input"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    if files is not None:
        expected = expected.replace("{d}", str(files))
    assert expected in lines[0], (expected, lines[0])
    assert len(lines[0]) < 400, "a message, not a dump"


@pytest.fixture
def offline(monkeypatch):
    """No hub: an unknown model id fails at once instead of retrying the network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at call time


@pytest.mark.parametrize(("name", "argv", "expected"), [_param(c) for c in CLI_CASES])
def test_cli_rejects(name, argv, expected, files, offline, capsys):
    """The whole catalogue through ``core.cli.main`` (what ``python -m core`` runs), in-process:
    a subprocess per case would spend most of its time importing torch."""
    from core.cli import main

    argv = [a.replace("{d}", str(files)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    _check_cli_error(rc, out, err, expected, files)
    assert sorted(p.name for p in files.iterdir()) == FILES, "a failed command writes nothing"


# one case of each kind through a real `python -m core` process: the exit status and the
# whole of stderr as a user sees them (no warnings, progress bars or tracebacks around the line)
SUBPROCESS_CASES = [
    "5000-lines",
    "coeff-nan",
    "vector-png",
    "max-new-tokens",
    "unknown-model",
    "save-name-with-space",
    "layer-out-of-range",
]


@pytest.mark.parametrize(
    ("name", "argv", "expected"), [_param(c) for c in CLI_CASES if _param(c).id in SUBPROCESS_CASES]
)
def test_cli_process_rejects(name, argv, expected, files):
    proc = _cli(argv, files)
    _check_cli_error(proc.returncode, proc.stdout, proc.stderr, expected, files)


# (limit, a value no message would contain by chance, argv one past it, the message): each
# limit is set to the odd value, so the number in the message can only come from core.limits
LIMIT_CASES = [
    (
        "MAX_PAIRS",
        37,
        lambda d, n: ["predict", "--task-file", _lines(d, n + 1)],
        "Too many lines: 38 (the limit is 37 pairs)",
    ),
    (
        "MAX_PROMPT_CHARS",
        123,
        lambda d, n: ["steer", "--prompt", "x" * (n + 1), "--positive", "a", "--negative", "b"],
        "The prompt has 124 characters; the limit is 123",
    ),
    (
        "MAX_NEW_TOKENS",
        17,
        lambda d, n: ["steer", "--prompt", "Hi", "--positive", "a", "--negative", "b", "--max-new-tokens", str(n + 1)],
        "from 1 to 17 (got 18)",
    ),
    (
        "MAX_ABS_COEFF",
        7.25,
        lambda d, n: ["steer", "--prompt", "Hi", "--positive", "a", "--negative", "b", "--coeff", str(n + 0.5)],
        "between -7.25 and 7.25",
    ),
]


def _lines(folder: Path, n: int) -> str:
    path = folder / f"{n}_lines.txt"
    path.write_text("\n".join(f"w{i} -> v{i}" for i in range(n)))
    return str(path)


@pytest.mark.parametrize(("limit", "value", "argv", "expected"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_cli_messages_name_the_limits(limit, value, argv, expected, tmp_path, offline, monkeypatch, capsys):
    """One past a limit, the CLI's one line names the limit; at the limit it is not refused
    for it (it gets as far as loading the model, which does not exist here)."""
    from core.cli import main

    monkeypatch.setattr(limits, limit, value)
    assert main(argv(tmp_path, value)) == 2
    out, err = capsys.readouterr()
    _check_cli_error(2, out, err, expected)
    at_limit = argv(tmp_path, value - 1 if isinstance(value, int) else value - 0.5)
    assert main([*at_limit, "--model", "no-such/model"]) == 2
    out, err = capsys.readouterr()
    _check_cli_error(2, out, err, "Could not load model 'no-such/model'")


# =============================================================================================
# 2. The dashboard: a clear st.error, no exception, and the session still works
# =============================================================================================


def _shows_error(at, *fragments: str) -> str:
    """Exactly the expected message is shown, and nothing raised."""
    assert not at.exception, [e.value for e in at.exception]
    errors = _errors(at)
    hits = [e for e in errors if all(f in e for f in fragments)]
    assert hits, f"expected an error with {fragments}; shown: {errors}"
    assert not any("Traceback" in e for e in errors)
    return hits[0]


def _predictions_shown(at) -> None:
    """The Model & prompts page works: no error, the accuracy table of the typed task."""
    assert not at.exception, [e.value for e in at.exception]
    assert not _errors(at), _errors(at)
    table = _frame(at, "prediction")
    assert set(table["query"]) <= {"cat", "dog", "box", "car", "tree", "bird"} and len(table) > 0


SMALL = {"n_prompts": 4, "n_shots": 3}  # a fast batch on the real model


@pytest.mark.slow
def test_app_task_examples(tmp_path, monkeypatch):
    """Typed and uploaded examples on the Model & prompts page, one session throughout."""
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples="", **SMALL)
    _shows_error(at, "No examples given")
    assert any("Fix the task" in w.value for w in at.warning)  # the page says what is missing

    bad_typed = [
        ("hot -> cold", ("Only one example",)),
        ("hot -> cold\nbig small\nup -> down", ("Line 2", "no separator")),
        ("\n".join(f"w{i} -> v{i}" for i in range(5000)), ("Too many lines: 5000", str(limits.MAX_PAIRS))),
        ("hot -> cold\nhot -> warm", ("Line 2", "duplicate input 'hot'")),
        (f"hot -> {'x' * 500}\nbig -> small", ("500 characters", str(limits.MAX_ENTRY_CHARS))),
    ]
    for text, fragments in bad_typed:
        at.sidebar.text_area(key="typed_examples").set_value(text).run()  # fresh handle per run
        _shows_error(at, *fragments)
        assert not at.dataframe  # no stale results under the message
    at.sidebar.text_area(key="typed_examples").set_value(GOOD_TASK).run()
    _predictions_shown(at)

    # a bad template: a message, then fixed
    good_template = at.sidebar.text_input(key="template").value
    at.sidebar.text_input(key="template").set_value("Q: {x}").run()
    _shows_error(at, "{x} and {y}")
    at.sidebar.text_input(key="template").set_value("{y} then {x}").run()
    _shows_error(at, "{x} must come before {y}")
    at.sidebar.text_input(key="template").set_value(good_template).run()
    _predictions_shown(at)

    # uploads: not UTF-8, binary, an image renamed .csv, a CSV without input/output columns
    at.sidebar.radio(key="task_source").set_value("Upload a file").run()
    assert any("Upload a file" in i.value for i in at.sidebar.info)
    bad_uploads = [
        (
            ("pairs.txt", "café -> coffee\nthé -> tea\n".encode("latin-1"), "text/plain"),
            ("pairs.txt is not UTF-8 text",),
        ),
        (("pairs.txt", b"hot -> cold\x00\x00\nbig -> small\n", "text/plain"), ("looks like a binary file",)),
        (("photo.csv", PNG, "text/csv"), ("photo.csv is not UTF-8 text",)),
        (
            ("pairs.csv", b"word,opposite\nhot,cold\nbig,small\n", "text/csv"),
            ("'input' and 'output' columns", "word, opposite"),
        ),
        (("pairs.json", b'{"hot": "cold"}', "application/json"), ("expected a JSON list",)),
        (("pairs.json", b"[1, 2]", "application/json"), ("item 1 is not an object",)),
    ]
    for upload, fragments in bad_uploads:
        at.sidebar.file_uploader[0].set_value(upload).run()
        _shows_error(at, *fragments)
    csv = "input,output\n" + "\n".join(line.replace(" -> ", ",") for line in GOOD_TASK.splitlines())
    at.sidebar.file_uploader[0].set_value(("plurals.csv", csv.encode(), "text/csv")).run()
    _predictions_shown(at)


@pytest.mark.slow
def test_app_model_that_cannot_load(tmp_path, monkeypatch):
    """An unknown model id (offline): a message on the page, then the default model again."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at call time
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples=GOOD_TASK, **SMALL)
    _predictions_shown(at)
    at.sidebar.text_input(key="model_id").set_value("no-such/model").run()
    _shows_error(at, "Could not load model 'no-such/model'")
    assert any("No model is loaded" in w.value for w in at.warning)
    at.switch_page("../pages/steer.py")
    at.run()  # every page copes without a model
    _shows_error(at, "Could not load model 'no-such/model'")
    at.switch_page("../pages/model_prompts.py")
    at.run()
    at.sidebar.text_input(key="model_id").set_value(DEFAULT_MODEL).run()
    _predictions_shown(at)


def test_unreachable_hub_fails_at_once(monkeypatch):
    """Not offline mode, but the hub does not answer: one TCP probe, not a minute of retries.

    HF_ENDPOINT points at a closed local port, so this holds with or without internet."""
    import huggingface_hub.constants

    from core.errors import ModelLoadError
    from core.models import ModelSpec, _hub_reachable, load_model

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert not _hub_reachable()
    with pytest.raises(ModelLoadError, match=r"not in the Hugging Face cache, and 127\.0\.0\.1 cannot be reached"):
        load_model(ModelSpec(model_id="no-such/model"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # behind a proxy the probe cannot tell
    assert _hub_reachable()


@pytest.mark.slow
def test_app_steer_prompt_tokens_and_coefficient(tmp_path, monkeypatch):
    """Steer: a 20,000-character prompt, too many new tokens, a huge coefficient; then it steers."""
    from core.library import Library

    monkeypatch.setenv("FV_STUDIO_DATA", str(tmp_path))
    Library(tmp_path / "vectors").save(_vector())
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples=GOOD_TASK, **SMALL)
    at.switch_page("../pages/steer.py")
    at.run()
    assert not at.exception and not _errors(at)
    assert at.selectbox(key="_w_steer_vector").value == "probe"

    # the widgets carry the caps from core.limits
    max_new = at.number_input(key="_w_steer_max_new")
    coeff = at.number_input(key="_w_steer_coeff")
    assert max_new.max == limits.MAX_NEW_TOKENS and max_new.min == 1
    assert coeff.max == limits.MAX_ABS_COEFF and coeff.min == -limits.MAX_ABS_COEFF
    assert f"at most {limits.MAX_PROMPTS}" in at.text_area(key="_w_steer_prompts").label
    limits_table = next(t.value for t in at.sidebar.table if list(t.value.columns) == ["what", "limit"])
    shown = dict(zip(limits_table["what"], limits_table["limit"]))
    assert shown["new tokens per generation"] == str(limits.MAX_NEW_TOKENS)
    assert shown["characters in a free-form prompt"] == str(limits.MAX_PROMPT_CHARS)

    at.text_area(key="_w_steer_prompts").set_value(LONG_PROMPT)
    at.number_input(key="_w_steer_max_new").set_value(2)
    _button(at, "Generate").click().run()
    _shows_error(at, f"{len(LONG_PROMPT)} characters", f"the limit is {limits.MAX_PROMPT_CHARS}")
    assert not [m for m in at.markdown if 'class="fv-steer-text"' in m.value]

    many = "\n".join(f"Prompt {i}" for i in range(limits.MAX_PROMPTS + 1))
    at.text_area(key="_w_steer_prompts").set_value(many)
    _button(at, "Generate").click().run()
    _shows_error(at, f"use at most {limits.MAX_PROMPTS} at once")

    # past the widgets' caps (a crafted request: the browser stops at them): Streamlit puts the
    # value back in range, so a generation never sees it (core.checks checks again; see below)
    at.text_area(key="_w_steer_prompts").set_value("I went to the")
    at.number_input(key="_w_steer_max_new").set_value(100000)
    at.number_input(key="_w_steer_coeff").set_value(float("nan"))
    _button(at, "Generate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert 1 <= at.number_input(key="_w_steer_max_new").value <= limits.MAX_NEW_TOKENS
    coeff = at.number_input(key="_w_steer_coeff").value
    assert math.isfinite(coeff) and abs(coeff) <= limits.MAX_ABS_COEFF
    at.number_input(key="_w_steer_coeff").set_value(1e9).run()
    assert abs(at.number_input(key="_w_steer_coeff").value) <= limits.MAX_ABS_COEFF

    # fixed: both columns are shown
    at.number_input(key="_w_steer_coeff").set_value(2.0)
    at.number_input(key="_w_steer_max_new").set_value(2)
    _button(at, "Generate").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    outputs = [m for m in at.markdown if 'class="fv-steer-text"' in m.value]
    assert len(outputs) == 2
    assert any("(layer 6, coefficient 2)" in m.value for m in at.markdown)


@pytest.mark.parametrize(
    ("check", "value", "fragment"),
    [
        ("check_max_new_tokens", 100000, f"from 1 to {limits.MAX_NEW_TOKENS}"),
        ("check_max_new_tokens", 0, f"from 1 to {limits.MAX_NEW_TOKENS}"),
        ("check_max_new_tokens", 2.5, "whole number"),
        ("check_coeff", float("nan"), "finite"),
        ("check_coeff", float("-inf"), "finite"),
        ("check_coeff", 1e9, "too large"),
        ("check_coeff", "4", "must be a number"),
        ("check_text", "x" * 20000, f"the limit is {limits.MAX_PROMPT_CHARS}"),
        ("check_text", " \n ", "is empty"),
        ("check_layer", -1, "Layer -1 is out of range"),
        ("check_layer", 2.0, "whole number"),
    ],
)
def test_steer_checks_behind_the_widgets(check, value, fragment):
    """What a crafted request past the Steer widgets meets in core (the CLI meets it too)."""
    from core import checks

    with pytest.raises(UserInputError, match=re.escape(fragment)):
        getattr(checks, check)(value, "prompt") if check == "check_text" else getattr(checks, check)(value)


@pytest.mark.slow
def test_app_sweep_coefficients_text(tmp_path, monkeypatch):
    """Steering vectors: the sweep's coefficient box is free text, so NaN and 1e9 can be typed."""
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples=GOOD_TASK, **SMALL)
    at.switch_page("../pages/steering_vectors.py")
    at.run()
    assert not at.exception
    at.text_input(key="_w_sv_a_positive").set_value("")
    _button(at, "Build the vector").click().run()
    _shows_error(at, "positive prompt is empty")
    at.text_input(key="_w_sv_a_positive").set_value("Love")
    _button(at, "Build the vector").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    at.multiselect(key="_w_sv_a_sweep_layers").set_value([6])
    at.number_input(key="_w_sv_a_sweep_max_new").set_value(2)
    for text, fragments in (
        ("nan", ("finite number",)),
        ("1, 1e9", ("is too large",)),
        ("inf", ("finite number",)),
        ("1, two", ("Coefficients must be numbers",)),
    ):
        at.text_input(key="_w_sv_a_sweep_coeffs").set_value(text)
        _button(at, "Run the sweep").click().run()
        _shows_error(at, *fragments)
    at.text_input(key="_w_sv_a_sweep_coeffs").set_value("0, 4")
    _button(at, "Run the sweep").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    assert len(_frame(at, "layer 6")) == 2


@pytest.mark.slow
def test_app_vector_uploads(tmp_path, monkeypatch):
    """Vector library: a pickle, a renamed PNG, another model's and a narrower vector are refused."""
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples=GOOD_TASK, **SMALL)
    at.switch_page("../pages/vector_library.py")
    at.run()
    assert not at.exception and not _errors(at)
    cases = [
        (
            ("fv.safetensors", _pickled_vector(), "application/octet-stream"),
            ("fv.safetensors is not a safetensors vector file",),
        ),
        (("cat.safetensors", PNG, "application/octet-stream"), ("cat.safetensors is not a safetensors vector file",)),
        (
            ("other.safetensors", to_bytes(_vector(model_id="other")), "application/octet-stream"),
            ("made for model 'other'",),
        ),
        (
            ("narrow.safetensors", to_bytes(_vector(width=64)), "application/octet-stream"),
            ("has width 64", str(D_MODEL)),
        ),
    ]
    for upload, fragments in cases:
        at.file_uploader(key="lib_upload").set_value(upload).run()
        _shows_error(at, *fragments)
    at.file_uploader(key="lib_upload").set_value(
        ("probe.safetensors", to_bytes(_vector()), "application/octet-stream")
    ).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any("a valid function_vector vector 'probe'" in s.value for s in at.success)
    _button(at, "Add to the library").click().run()
    assert not at.exception and not _errors(at)
    assert "probe" in set(_frame(at, "method")["name"])


@pytest.mark.slow
def test_app_zero_heads_selected(tmp_path, monkeypatch):
    """Head attribution with no head picked by hand: Function vector says so; top-k works again."""
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples=GOOD_TASK, **SMALL)
    at.switch_page("../pages/head_attribution.py")
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    at.radio(key="_w_head_mode").set_value("By hand").run()
    at.multiselect(key="_w_manual_heads").set_value([]).run()
    assert not at.exception and not _errors(at)
    assert any("Selected:" in m.value and "none" in m.value for m in at.markdown)
    at.switch_page("../pages/function_vector.py")
    at.run()
    _shows_error(at, "No heads selected")
    assert not at.metric  # nothing was evaluated
    at.switch_page("../pages/head_attribution.py")
    at.run()
    at.radio(key="_w_head_mode").set_value("Top-k").run()
    at.slider(key="_w_top_k").set_value(2).run()
    at.switch_page("../pages/function_vector.py")
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any(m.label.startswith("Zero-shot + FV") for m in at.metric)


@pytest.mark.slow
def test_limits_are_shown_in_the_sidebar(tmp_path, monkeypatch):
    for name in ("FV_STUDIO_ALLOWED_MODELS", "FV_STUDIO_ALLOW_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    at = _app(tmp_path, monkeypatch, task_source="Type examples", typed_examples="")
    assert not at.exception
    tables = [t.value for t in at.sidebar.table]
    table = next(t for t in tables if list(t.columns) == ["what", "limit"])
    shown = list(zip(table["what"], table["limit"]))
    # the operator's settings (none here: a single user's defaults), then the per-user limits
    assert shown == [("models users may load", "any"), ("remote execution (NDIF)", "allowed")] + limits.as_table()
    for number in (limits.MAX_PAIRS, limits.MAX_PROMPT_CHARS, limits.MAX_NEW_TOKENS, limits.MAX_CAA_PAIRS):
        assert any(str(number) in limit for _, limit in shown)
    assert f"{limits.MAX_ABS_COEFF:g}" in dict(shown)["steering coefficient (absolute)"]


# =============================================================================================
# 3. Vector files and the expression box, without a model
# =============================================================================================


class Unpickled(BaseException):
    """Not an Exception: from_bytes turns every Exception into its user error, and this must
    get through to fail the test."""


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_pickled_vector(), "not a safetensors vector file"),
        (PNG, "not a safetensors vector file"),
        (b"", "not a safetensors vector file"),
        (b"\xff" * 64, "not a safetensors vector file"),
        (to_bytes(_vector(model_id="other")), "made for model 'other'"),
        (to_bytes(_vector(width=64)), "has width 64"),
    ],
    ids=["pickle", "png", "empty", "garbage", "other-model", "wrong-width"],
)
def test_vector_file_rejected(data, fragment, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise Unpickled("a vector file was unpickled")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(UserInputError, match=re.escape(fragment)):
        from_bytes(data, DEFAULT_MODEL, D_MODEL, source="upload.safetensors")


def test_vector_file_with_non_finite_values_rejected():
    bad = _vector()
    bad = Vector(
        bad.values.clone().index_fill_(0, torch.tensor([3]), float("nan")), bad.model_id, 6, "actadd", "nan_vec"
    )
    with pytest.raises(UserInputError, match="finite"):
        from_bytes(to_bytes(bad), DEFAULT_MODEL, D_MODEL)
    assert from_bytes(to_bytes(_vector()), DEFAULT_MODEL, D_MODEL).name == "probe"  # the control


@pytest.fixture
def named() -> dict[str, Vector]:
    return {"a": _vector(name="a"), "b": Vector(torch.ones(D_MODEL), DEFAULT_MODEL, 6, "caa", "b")}


@pytest.mark.parametrize(
    "expression",
    [
        "a.values",  # attribute access
        "a.__class__",
        "a()",  # calls
        "__import__('os')",
        "open('x')",
        "a[0]",  # subscript
        "lambda: a",  # lambda
        "'a'",  # strings
        "b'a'",
        "a ** 2",  # power
        "a / 2",
        "a @ b",
        "a if b else a",
        "[a, b]",
        "(a, b)",
        "{a}",
        "a == b",
        "not a",
        "a + (b := a)",
        "f'{a}'",
        "a; b",
        "import os",
        "",
        "a" * 501,
    ],
)
def test_expression_box_rejects(expression, named, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the expression box called eval/exec/compile")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    with pytest.raises(UserInputError):
        combine(expression, named)


def test_expression_box_accepts_arithmetic(named, monkeypatch):
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval called"))
    out = combine("-(a - 2 * b) + 0.5 * (b + -a)", named)
    a, b = named["a"].values, named["b"].values
    assert torch.allclose(out.values, -(a - 2 * b) + 0.5 * (b - a))
    assert out.method == "combined" and out.provenance["terms"] == ["a", "b"]


# =============================================================================================
# 4. Security: what the sources may not contain, and the server's configuration
# =============================================================================================

SOURCES = sorted(p for folder in ("core", "dashboard", "pages") for p in (REPO / folder).rglob("*.py"))

# Text patterns that must not appear anywhere in the app's sources (strings included: an
# exported script is code too). ``.eval()`` (torch's Module.eval) and ``re.compile`` are
# methods, not the builtins, so the builtins are matched only when not after a dot.
FORBIDDEN_TEXT = {
    "eval(": r"(?<![\w.])eval\s*\(",
    "exec(": r"(?<![\w.])exec\s*\(",
    "compile(": r"(?<![\w.])compile\s*\(",
    "__import__": r"__import__",
    "pickle": r"\b(c?pickle|_pickle|cloudpickle|dill|marshal|shelve|joblib)\b|read_pickle|allow_pickle",
    "torch.load": r"(?<![\w.])torch\.load\b|\bweights_only\s*=\s*False",
    "os.system": r"\bos\.(system|popen|exec\w*|spawn\w*)\b",
    "subprocess": r"\bsubprocess\b|\bpty\b|\bcommands\.getoutput",
    "shell=True": r"shell\s*=\s*True",
    "unsafe yaml": r"yaml\.(load|unsafe_load)\s*\(",
}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint", "input"}
FORBIDDEN_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "cloudpickle",
    "dill",
    "marshal",
    "shelve",
    "joblib",
    "subprocess",
    "pty",
    "code",
    "codeop",
}


def _violations(source: str) -> list[str]:
    found = [what for what, pattern in FORBIDDEN_TEXT.items() if re.search(pattern, source)]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"call {node.func.id}()")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("eval", "exec", "load")
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("builtins", "torch", "pickle", "np", "numpy")
        ):
            found.append(f"call {node.func.value.id}.{node.func.attr}()")
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"from {node.module} import")
    return found


def test_the_checker_finds_what_it_forbids():
    bad = [
        "x = eval(text)",
        "exec (code)",
        "import pickle",
        "from subprocess import run",
        "import os\nos.system('ls')",
        "subprocess.run(cmd, shell=True)",
        "w = torch.load(path)",
        "import builtins\nbuiltins.eval('1')",
        "m = __import__('os')",
        "df = pd.read_pickle(f)",
    ]
    for source in bad:
        assert _violations(source), source
    assert _violations("model.eval()\nhf = AutoModel.from_pretrained(x).eval()\npattern = re.compile('a')") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_eval_exec_pickle_or_shell(path):
    assert _violations(path.read_text(encoding="utf-8")) == []


def test_streamlit_config_is_safe():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    server = config["server"]
    assert server["address"] in ("127.0.0.1", "localhost")
    assert server["enableXsrfProtection"] is True
    assert 1 <= server["maxUploadSize"] <= 10  # MiB
    assert server["maxUploadSize"] * 1024 * 1024 >= limits.MAX_UPLOAD_BYTES  # our own cap is the one users meet
    assert config.get("client", {}).get("showErrorDetails") in ("none", False)
    make = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "--server.address 127.0.0.1" in make  # `make run` listens on localhost too
