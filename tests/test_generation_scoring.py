"""Whole-answer scoring of greedy generations (core.generation_scoring): the matching rule, and
the batched unsteered + steered generation against plain Hugging Face greedy decoding of each
prompt alone with a forward hook (an independent reference), on tiny random models."""

from __future__ import annotations

import pytest
import torch
from conftest import random_direction

from core import generation_scoring as gs
from core import limits, steer
from core.errors import UserInputError
from core.tasks import load_builtin, validate

# more than core.limits.MAX_PROMPTS (free-form prompts), of different lengths (left padding)
PROMPTS = [f"Q: {w}\nA:" for w in ("hot", "a very long input word here", "x", "cold", "up", "dog", "yes", "sun", "one")]
N_NEW = 4


def test_strip_answer_and_stops():
    assert gs.strip_answer(" «Paris.»\n") == "Paris"
    assert gs.strip_answer("  U.S.  ") == "U.S"  # punctuation only at the ends
    assert gs.strip_answer(" ... ") == ""
    assert gs.generated_answer(" cold\n\nQ: warm") == "cold"
    assert gs.generated_answer(" cold, warm") == "cold, warm"  # a longer answer is not the answer
    assert gs.answer_stops("Q: {x}\nA: {y}", "\n\n") == ("\n",)
    assert gs.answer_stops("{x} -> {y};", " | ") == ("\n", ";", " | ")
    assert gs.generated_answer(" cold; hot", gs.answer_stops("{x} -> {y};", "\n")) == "cold"


def test_match_rule_and_case():
    assert gs.is_match(" Paris.\nQ:", " Paris", case_sensitive=True)
    assert not gs.is_match(" Paris is", " Paris", case_sensitive=True)
    assert not gs.is_match(" Par", " Paris", case_sensitive=False)  # first token right, answer not
    assert gs.is_match(" paris", " Paris", case_sensitive=False)
    assert not gs.is_match(" apple", " Apple", case_sensitive=True)
    assert gs.is_match(" Apple", " Apple", case_sensitive=True)


@pytest.mark.parametrize(
    "name, about_case",
    [("capitalize", True), ("lowercase_first_letter", True), ("antonym", False), ("country_capital", False)],
)
def test_case_tasks(name, about_case):
    assert gs.is_case_task(load_builtin(name)) is about_case


def test_case_rule_on_typed_tasks():
    assert gs.is_case_task(validate("t", [("ab", "AB"), ("Cd", "cd")]))
    assert not gs.is_case_task(validate("t", [("ab", "AB"), ("cd", "dc")]))
    assert gs.is_case_task(validate("t", [("Banana", "b"), ("cat", "C")]))


def _hf_alone(lm, prompt: str, n: int, layer: int | None = None, delta: torch.Tensor | None = None) -> str:
    """HF greedy decoding of one prompt (no padding), optionally adding ``delta`` at the newest
    position of block ``layer``'s output on every forward call; cut at end-of-sequence."""
    enc = lm.tokenizer([prompt], return_tensors="pt")
    handle = None
    if delta is not None:

        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            h[:, -1] += delta
            return output

        handle = lm.arch.blocks(lm.hf)[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = lm.hf.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    finally:
        if handle is not None:
            handle.remove()
    eos = lm.hf.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    row = out[0, enc["input_ids"].shape[1] :].tolist()
    cut = next((i for i, t in enumerate(row) if t in eos), len(row))
    return lm.tokenizer.decode(row[:cut], skip_special_tokens=True)


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_batched_generations_equal_hf_with_a_hook(model, request):
    lm, layer = request.getfixturevalue(model), 1
    vec = 2.0 * random_direction(lm)
    assert len(PROMPTS) > limits.MAX_PROMPTS
    without, with_vec = steer.generate_greedy_pairs(lm, PROMPTS, vec, layer, 1.0, N_NEW)
    assert without == [_hf_alone(lm, p, N_NEW) for p in PROMPTS]
    assert with_vec == [_hf_alone(lm, p, N_NEW, layer, vec) for p in PROMPTS]
    assert without != with_vec  # the vector acted (a lost edit would pass the first check only)


@pytest.mark.usefixtures("single_thread")
def test_scores_follow_the_rule(llama):
    vec = 2.0 * random_direction(llama)
    # a random model never stops writing: its own second tokens end the answers, so that on
    # even queries the steered first token is the whole answer; odd queries: another answer
    first = [_hf_alone(llama, p, 1, 1, vec) for p in PROMPTS]
    seconds = [t[len(f) :] for t, f in zip((_hf_alone(llama, p, 2, 1, vec) for p in PROMPTS), first)]
    stops = tuple(s for s in seconds if s.strip())
    targets = [f if i % 2 == 0 and gs.strip_answer(f) else " zq" for i, f in enumerate(first)]
    budget = gs.answer_budget(llama, targets)
    assert budget == max(len(llama.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets) + 1
    ref = [_hf_alone(llama, p, budget, 1, vec) for p in PROMPTS]
    scores = gs.score_generations(llama, PROMPTS, targets, vec, 1, case_sensitive=True, stops=stops)
    assert scores.max_new_tokens == budget and scores.with_vector == ref
    want = [gs.is_match(r, t, True, stops) for r, t in zip(ref, targets)]
    assert scores.correct_with == want and any(want) and not all(want)
    assert scores.accuracy_with.n == len(PROMPTS) and scores.accuracy_with.n_correct == sum(want)
    assert scores.correct_without == [gs.is_match(g, t, True, stops) for g, t in zip(scores.without, targets)]


def test_too_many_prompts_is_a_clear_error(llama):
    with pytest.raises(UserInputError, match="too many"):
        steer.generate_greedy_pairs(llama, ["a"] * (limits.MAX_N_PROMPTS + 1), random_direction(llama), 1, 1.0, 2)


@pytest.mark.usefixtures("single_thread")
def test_report_carries_generation_scores_and_intervals(tiny_llama):
    """fv.evaluate's generation figures equal score_generations run alone on the same test
    queries, and every accuracy in its JSON has its n and Wilson interval beside it."""
    from core import fv
    from core.prompts import PromptSettings, build_prompts, split_task
    from core.stats import wilson_interval

    task = validate("toy", [(f"w{i}", f"v{i}") for i in range(40)])
    settings = PromptSettings(n_shots=2, n_prompts=4)
    wb = fv.build_workbench(tiny_llama, task, settings)
    heads = [(1, 0), (2, 3)]
    rep = fv.evaluate(tiny_llama, wb, heads, layer=1, n_eval=10, coeff=3.0)
    splits = split_task(task, settings.seed)
    test = build_prompts(splits.test, splits.train, settings, n_prompts=10)
    vec = fv.function_vector_values(tiny_llama, wb.stats.mean_heads, heads) * 3.0
    alone = gs.score_generations(tiny_llama, test.zero_shot, test.targets, vec, 1, case_sensitive=False)
    assert rep.zero_shot_with_fv_generation_accuracy == alone.accuracy_with.value
    assert rep.zero_shot_generation_accuracy == alone.accuracy_without.value
    assert [r["generated with"] for r in rep.examples] == alone.with_vector
    assert rep.generation_max_new_tokens == alone.max_new_tokens and not rep.generation_case_sensitive
    data = rep.to_json()
    for key in fv.FVReport.TEST_ACCURACIES:
        k = round(data[key] * rep.n_eval)
        low, high = wilson_interval(k, rep.n_eval)
        assert data[key + "_ci"] == {"n": rep.n_eval, "low": low, "high": high}, key
    assert [c["n"] for c in data["zero_shot_by_layer_ci"]] == [10] * tiny_llama.arch.n_layers
    assert data["valid_by_layer_ci"] == [] and rep.n_valid == 0  # a given layer: no layer choice
    assert data["best_test_layer"] == max(range(3), key=lambda l: data["zero_shot_by_layer"][l])


def test_layer_choice_when_no_layer_gets_any_answer_right(tiny_llama, monkeypatch):
    """Every layer 0 right (the Wilson bound is then ~1e-17, not 0): all layers are tied and the
    answer's log-probability decides, rather than no layer being left to choose."""
    from core import fv, layer_choice
    from core.prompts import PromptSettings

    wb = fv.build_workbench(tiny_llama, validate("toy", [(f"w{i}", f"v{i}") for i in range(30)]), PromptSettings(2, 4))
    logprob = [0.0, -3.0, -1.0, -2.0]  # unedited, then layers 0..2
    monkeypatch.setattr(layer_choice, "scores_sweep", lambda *a, **k: ([0.0] * 4, logprob))
    assert layer_choice.choose_layer(tiny_llama, wb, torch.zeros(tiny_llama.arch.d_model)) == (1, [0.0, 0.0, 0.0])
