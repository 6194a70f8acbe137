"""The steering scripts (core.scripts.steering, .steering_vectors, .sweep) reproduce the app.

Each script runs in a fresh Python process, as a user would run it (one process for all of
them: ``run_scripts`` of test_scripts.py), on tiny random models of every family saved as
folders. Its JSON must have exactly the keys of the app's result (``python -m core steer``'s
for steering, :class:`core.sweep.SweepResult`'s for the sweep), the same texts (greedy and
sampled) and numbers within 1e-4. Every kind runs on Llama; each other family runs one kind
(the block paths differ per family). The vectors are strong (norm ~ the residual stream's),
so a vector added at the wrong place or step changes the texts.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import random_direction, save_tiny
from script_helpers import assert_matches, run_scripts

from core import steer
from core.additions import Addition, addition_sum, with_bos
from core.cli import main
from core.cli.steering import steer_json
from core.errors import UserInputError
from core.models import ModelSpec, load_model
from core.scripts.steering import steer_script
from core.scripts.steering_vectors import (
    ActAddSource,
    AdditionsSource,
    CAASource,
    InlineVector,
    build_script,
    float32_literals,
)
from core.scripts.sweep import sweep_script
from core.steer import Decoding
from core.steering_vectors import actadd_vectors, caa_vectors, row_norms
from core.sweep import sweep
from core.vectors import Vector, to_bytes

PROMPTS = ["I hate you because", "The cat"]  # different lengths: left padding is exercised
PAIRS = (("I love it", "I hate it"), ("Good day", "A bad day here"), ("Yes", "No way"))
SAMPLED = Decoding(sample=True, temperature=0.9, top_p=0.7, repetition_penalty=1.2, n_samples=2, seed=3)
N_NEW = 10
SPEC = ModelSpec(model_id="some-model")


def as_json(value):
    return json.loads(json.dumps(value))


def assert_same(got: dict, expected: dict, where: str) -> None:
    """The same keys at the top level and in ``settings``; every value equal (numbers within 1e-4)."""
    expected = as_json(expected)
    assert set(got) == set(expected), f"{where}: keys {sorted(got)} != {sorted(expected)}"
    if "settings" in expected:
        assert got["settings"] == expected["settings"], where
    if "layers" in expected:  # keys the shared comparison skips
        assert got["layers"] == expected["layers"], where
    assert got["vector"].get("method") == expected["vector"].get("method"), where
    assert_matches(got, expected, where)


def actadd_info(positive: str, negative: str, aligned) -> dict:
    return {
        "method": "actadd",
        "positive": positive,
        "negative": negative,
        "aligned_tokens": [list(a) for a in aligned],
    }


def steer_case(
    lm,
    name: str,
    source,
    values,
    layer: int,
    coeff: float,
    mode: str,
    decoding: Decoding,
    info: dict,
    prompts=PROMPTS,
    more=(),
):
    results = steer.generate_pair(
        lm,
        prompts,
        values,
        layer,
        coeff,
        mode,
        N_NEW,
        **decoding.kwargs(),
        more=more,
    )
    assert any(u != s for r in results for u, s in zip(r.unsteered, r.steered)), f"{name}: the vector did nothing"
    expected = steer_json(lm.model_id, results, layer, coeff, mode, N_NEW, decoding, info)
    return name, steer_script(lm.spec, prompts, source, layer, coeff, mode, N_NEW, decoding), expected


def cases_for(family: str, lm) -> list[tuple[str, str, dict]]:
    """(name, script, the app's result): every kind on Llama, one per other family."""
    n_layers = lm.arch.n_layers
    inline = random_direction(lm, seed=1) * 1.5  # [d_model]
    info = {"method": "test", "name": "direction"}
    actadd, aligned = actadd_vectors(lm, "Love", "Hate you", list(range(n_layers)))
    caa = caa_vectors(lm, PAIRS)  # [n_layers, d_model]
    caa_info = {"method": "caa", "n_pairs": len(PAIRS), "norm_by_layer": row_norms(caa)}
    a_info = actadd_info("Love", "Hate you", aligned)
    src_inline, src_actadd, src_caa = InlineVector(inline, info), ActAddSource("Love", "Hate you"), CAASource(PAIRS)
    kinds = {
        "inline-last-sampled": lambda: steer_case(
            lm, f"{family}-inline", src_inline, inline, 1, 2.0, "last", SAMPLED, info
        ),
        "actadd-prompt-greedy": lambda: steer_case(
            lm, f"{family}-actadd", src_actadd, actadd[1], 1, 4.0, "prompt", Decoding(repetition_penalty=1.3), a_info
        ),
        "caa-last-greedy": lambda: steer_case(
            lm, f"{family}-caa", src_caa, caa[2], 2, 4.0, "last", Decoding(), caa_info
        ),
    }
    if family == "gpt2":
        return [kinds["actadd-prompt-greedy"]()]
    if family == "gptj":
        return [kinds["inline-last-sampled"]()]
    if family == "gpt_neox":
        return [kinds["caa-last-greedy"]()]
    cases = [make() for make in kinds.values()]
    # the lesson's list of additions (+5 "Love ", -5 "Hate"), after the BOS token, sampled
    terms = ((5.0, "Love ", 1), (-5.0, "Hate", 1), (2.0, "Calm down", 2))  # two layers
    summed = addition_sum(lm, [Addition(p, layer, c) for c, p, layer in terms], prepend_bos=True)
    add_info = {"method": "additions", "additions": [list(t) for t in terms], "prepend_bos": True}
    add_info["tokens"] = summed.tokens
    prompts = [with_bos(lm, p) for p in PROMPTS]
    src = AdditionsSource(terms, prepend_bos=True)
    more = summed.more
    cases.append(
        steer_case(lm, "llama-additions", src, summed.values, 1, 1.0, "prompt", SAMPLED, add_info, prompts, more)
    )
    sw = sweep(lm, "I hate you because", {0: actadd[0], 2: actadd[2]}, [1.0, -3.0, 6.0], "prompt", 6, "cat")
    cases.append(
        (
            "llama-sweep-actadd",
            sweep_script(lm.spec, "I hate you because", src_actadd, [0, 2], [1.0, -3.0, 6.0], "prompt", 6, "cat"),
            {**dataclasses.asdict(sw), "vector": a_info},
        )
    )
    sw = sweep(lm, "Hello there", {1: caa[1], 2: caa[2]}, [0.5, 4.0], "last", 6, keywords=["the", "RD"])
    cases.append(
        (
            "llama-sweep-caa",
            sweep_script(lm.spec, "Hello there", src_caa, [1, 2], [0.5, 4.0], "last", 6, None, ["the", "RD"]),
            {**dataclasses.asdict(sw), "vector": caa_info},
        )
    )
    cases.append(
        (
            "llama-build-actadd",
            build_script(lm.spec, src_actadd, [0, 2]),
            {"vector": a_info, "layers": [0, 2], "norms": [row_norms(actadd[0]), row_norms(actadd[2])]},
        )
    )
    cases.append(
        (
            "llama-build-caa",
            build_script(lm.spec, src_caa, range(n_layers)),
            {"vector": caa_info, "layers": list(range(n_layers)), "norms": row_norms(caa)},
        )
    )
    return cases


def cli_cases(model_folder, folder) -> list[tuple[str, str, dict]]:
    """``python -m core steer --script``: activation addition (greedy), and a vector file
    (sampled, inlined in the script); the CLI's own JSON is the expected result."""
    lm = load_model(ModelSpec(model_id=str(model_folder)))
    vec = Vector(random_direction(lm, seed=2) * 1.5, str(model_folder), 1, "caa", "direction")
    (folder / "direction.safetensors").write_bytes(to_bytes(vec))
    common = ["steer", "--model", str(model_folder), "--prompt", "I hate you because", "--max-new-tokens", str(N_NEW)]
    runs = {
        "cli-actadd": ["--positive", "Love", "--negative", "Hate you", "--layer", "1", "--coeff", "4"],
        "cli-vector": ["--vector", str(folder / "direction.safetensors"), "--coeff", "2", "--sample", "--top-p", "0.8"]
        + ["--temperature", "0.7", "--repetition-penalty", "1.1", "--n-samples", "3", "--seed", "5"],
    }
    cases = []
    for name, extra in runs.items():
        script, out = folder / f"{name}.py", folder / f"{name}.json"
        assert main([*common, *extra, "--script", str(script), "--out", str(out)]) == 0
        expected = json.loads(out.read_text())
        assert expected.pop("script") == str(script)
        assert expected["unsteered"] != expected["steered"], f"{name}: the vector did nothing"
        cases.append((name, script.read_text(), expected))
    return cases


@pytest.fixture(scope="module")
def steering_runs(tokenizer, tmp_path_factory):
    """Every case's script written to a file, all run in one fresh process: ``{name: (printed, expected)}``."""
    torch.set_num_threads(1)
    cases = []
    for family in ("llama", "gpt2", "gptj", "gpt_neox"):
        folder = save_tiny(family, tokenizer, tmp_path_factory.mktemp(f"steer_{family}"))
        cases += cases_for(family, load_model(ModelSpec(model_id=str(folder))))
        if family == "llama":
            cases += cli_cases(folder, tmp_path_factory.mktemp("steer_cli"))
    folder = tmp_path_factory.mktemp("steering_scripts")
    paths = []
    for name, source, _ in cases:
        paths.append(str(folder / f"{name}.py"))
        (folder / f"{name}.py").write_text(source)
    printed = run_scripts(paths)
    return {name: (got, expected) for (name, _, expected), got in zip(cases, printed)}


def test_steering_scripts_reproduce_the_app(steering_runs):
    assert len(steering_runs) == 13
    for name, (got, expected) in steering_runs.items():
        assert_same(got, expected, name)


def test_sampled_script_differs_only_where_the_vector_acts(steering_runs):
    """The coupled sampler in the script: both columns of a sample share noise, two samples differ."""
    got, _ = steering_runs["llama-inline"]
    first = got["results"][0]
    assert len(first["unsteered"]) == 2 and first["unsteered"][0] != first["unsteered"][1]


def test_inlined_vector_is_exact_float32():
    values = torch.randn(3, 50) * torch.logspace(-30, 30, 50)
    values[0, 0] = 1 / 3
    texts = float32_literals(values)
    back = torch.tensor([float(t) for t in texts], dtype=torch.float32).reshape(values.shape)
    assert torch.equal(back, values)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: steer_script(SPEC, ["Hi"], InlineVector(torch.ones(2, 8)), 1, 1.0, "last", 5), "first positions"),
        (lambda: steer_script(SPEC, ["Hi"], InlineVector(torch.tensor([float("nan")])), 1, 1.0, "last", 5), "finite"),
        (lambda: steer_script(SPEC, ["Hi"], ActAddSource("Love", "Hate"), 1, 1.0, "sideways", 5), "mode"),
        (lambda: steer_script(SPEC, ["Hi"], ActAddSource("", "Hate"), 1, 1.0, "prompt", 5), "positive prompt"),
        (lambda: build_script(SPEC, CAASource(()), [1]), "contrastive pairs"),
        (lambda: sweep_script(SPEC, "Hi", ActAddSource("a", "b"), list(range(40)), [1.0] * 8, "prompt"), "grid"),
    ],
)
def test_bad_settings_are_clear_messages(make, message):
    with pytest.raises(UserInputError, match=message):
        make()
