"""Steering scripts on the default model (slow-marked): what a user exports from the Steer page
and from ``python -m core steer --script`` reproduces the app's texts exactly.

Four scripts: a greedy steered generation with an inlined vector at
the newest token on every step (two prompts), and the course's activation addition ("Love" -
"Hate" at layer 6, rebuilt in the script) with the course's sampling settings (top-p 0.3,
repetition penalty 1.2, a fixed seed), written by the CLI itself; and the Steering vectors
page (AppTest): the scripts in its *nnsight code* expanders print the aligned tokens and the
sweep's texts the page shows. All four scripts run in one fresh process.
"""

from __future__ import annotations

import json

import pytest
import torch
from app_helpers import button, errors, frame, start
from script_helpers import assert_matches, run_scripts

from core import steer
from core.cli import main
from core.cli.steering import steer_json
from core.models import load_model
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import InlineVector
from core.steer import Decoding
from core.steering_vectors import caa_vectors

pytestmark = pytest.mark.slow
PROMPTS = ["When you think of Netherlands, you usually think of", "I think that"]
PAIRS = [("I love weddings.", "I hate weddings."), ("Weddings are wonderful.", "Weddings are awful.")]


def page_scripts(tmp_path, monkeypatch) -> tuple[dict[str, str], object, object]:
    """The Steering vectors page (AppTest): build "Love" - "Hate" at layer 6, sweep it (layer 6,
    coefficients 0 and 6, 4 tokens). Its two scripts by title, the aligned-token table and the
    sweep's texts as the page shows them."""
    at = start(tmp_path, monkeypatch)
    at.switch_page("../pages/steering_vectors.py")
    at.run()
    button(at, "Build the vector").click().run()
    at.multiselect(key="_w_sv_a_sweep_layers").set_value([6])
    at.text_input(key="_w_sv_a_sweep_coeffs").set_value("0, 6")
    at.number_input(key="_w_sv_a_sweep_max_new").set_value(4)
    button(at, "Run the sweep").click().run()
    assert not at.exception and not errors(at)
    codes = {
        title: c.value for c in at.code for title in ("A steering vector", "Coefficient x layer") if title in c.value
    }
    assert len(codes) == 2, [c.value[:60] for c in at.code]
    return codes, frame(at, "positive token"), frame(at, "layer 6")


def test_steering_scripts_match_the_app_on_the_default_model(tmp_path, monkeypatch):
    torch.set_num_threads(2)
    codes, aligned, sweep_texts = page_scripts(tmp_path, monkeypatch)
    lm = load_model()
    # the Steer page: an inlined vector (here CAA at layer 12), greedy, two prompts
    values = caa_vectors(lm, PAIRS)[12]
    info = {"method": "caa", "layer": 12}
    results = steer.generate_pair(lm, PROMPTS, values, 12, 6.0, "last", 8)
    assert results[0].unsteered != results[0].steered  # the vector acts
    page_expected = steer_json(lm.model_id, results, 12, 6.0, "last", 8, Decoding(), info)
    codes["steer"] = steer_script(lm.spec, PROMPTS, InlineVector(values, info), 12, 6.0, "last", 8)

    # the CLI: activation addition with the course's sampling settings, and its own script
    cli_script, cli_out = tmp_path / "steer_cli.py", tmp_path / "steer_cli.json"
    args = ["steer", "--prompt", "I hate you because", "--positive", "Love", "--negative", "Hate"]
    args += ["--layer", "6", "--coeff", "5", "--max-new-tokens", "8", "--sample", "--top-p", "0.3"]
    args += ["--repetition-penalty", "1.2", "--n-samples", "2", "--seed", "1"]
    assert main([*args, "--script", str(cli_script), "--out", str(cli_out)]) == 0
    cli_expected = json.loads(cli_out.read_text())
    assert cli_expected.pop("script") == str(cli_script)
    codes["cli"] = cli_script.read_text()

    paths = []
    for i, source in enumerate(codes.values()):
        paths.append(str(tmp_path / f"script_{i}.py"))
        (tmp_path / f"script_{i}.py").write_text(source)
    printed = dict(zip(codes, run_scripts(paths)))

    built, swept = printed["A steering vector"], printed["Coefficient x layer"]
    assert [repr(a) for a, _ in built["vector"]["aligned_tokens"]] == list(aligned["positive token"])
    assert built["norms"][0] == pytest.approx(list(aligned["‖difference‖"]), abs=1e-4)
    assert [row[0] for row in swept["texts"]] == list(sweep_texts["layer 6"])
    assert swept["coeffs"] == [0.0, 6.0] and swept["layers"] == [6]
    for name, expected in (("steer", page_expected), ("cli", cli_expected)):
        got, expected = printed[name], json.loads(json.dumps(expected))
        assert set(got) == set(expected), name
        assert got["settings"] == expected["settings"], name
        assert got["results"][0]["unsteered"] == expected["results"][0]["unsteered"], name
        assert got["results"][0]["steered"] == expected["results"][0]["steered"], name
        assert_matches(got, expected, name)
