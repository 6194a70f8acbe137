"""The lesson's core functions on tiny random models: activation shapes, per-query effects of
a vector, pairs held out of a steering prompt, and activation addition from a list."""

from __future__ import annotations

import pytest
import torch

from core import steer, steering_vectors
from core.additions import Addition, addition_sum, with_bos
from core.anatomy import anatomy
from core.errors import UserInputError
from core.fv import fv_examples
from core.held_out import mentioned_pairs, without_prompt_pairs
from core.inference import encode, first_token_ids
from core.patching import Edit, last_token_scores
from core.prompts import PromptSettings, build_prompts, split_task
from core.query_effects import query_effects
from core.tasks import load_builtin, parse_lines


def test_anatomy_shapes(tiny_lm, single_thread):
    arch = tiny_lm.arch
    res = anatomy(tiny_lm, "The Eiffel Tower is in the city of", layer=1, k=5)
    n_pos = len(res.tokens)
    assert [v for v in res.shapes.values()] == [
        (1, n_pos, arch.d_model),
        (1, n_pos, arch.n_heads * arch.d_head),
        (1, n_pos, arch.n_heads, arch.d_head),
        (1, arch.d_vocab),
    ]
    probs = [p for _, _, p in res.top]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    with pytest.raises(UserInputError):
        anatomy(tiny_lm, "x", layer=arch.n_layers)


def _test_prompts(task, n=6):
    settings = PromptSettings(n_shots=3, n_prompts=n)
    splits = split_task(task, settings.seed)
    return build_prompts(splits.test, splits.train, settings, n_prompts=n)


def test_query_effects_match_the_engine(tiny_llama, single_thread):
    lm = tiny_llama
    prompts = _test_prompts(load_builtin("antonym"))
    vec = torch.randn(lm.arch.d_model, generator=torch.Generator().manual_seed(0)) * 8
    rows = query_effects(lm, prompts, 1, vec, n=6)
    assert len(rows) == 6
    # predictions agree with the Function vector page's examples table
    ex = fv_examples(lm, prompts, 1, vec, n=6)
    assert [r.zero_shot for r in rows] == [e["without"] for e in ex]
    assert [r.with_vector for r in rows] == [e["with vector"] for e in ex]
    # the log-prob change against the plain (uncached) reference path
    enc = encode(lm, prompts.zero_shot[:6])
    tgt = first_token_ids(lm, prompts.targets[:6])
    ref = last_token_scores(lm, enc, tgt, [[], [Edit(1, "resid", vec, add=True)]], use_cache=False)
    expected = (ref.logprob[1] - ref.logprob[0]).tolist()
    assert [r.logprob_change for r in rows] == pytest.approx(expected, abs=1e-4)
    assert any(abs(c) > 1e-2 for c in expected)  # the vector did something
    zero = query_effects(lm, prompts, 1, torch.zeros(lm.arch.d_model), n=3)
    assert all(r.logprob_change == 0.0 for r in zero)


def test_pairs_mentioned_by_the_prompt_are_removed():
    task = load_builtin("country_capital")
    kept, removed = without_prompt_pairs(task, "When you think of Netherlands, you usually think of")
    assert [(p.input, p.output) for p in removed] == [("Netherlands", "Amsterdam")]
    assert len(kept) == len(task) - 1 and all(p.input != "Netherlands" for p in kept.pairs)
    typed = parse_lines("Oman -> Muscat\nRomania -> Bucharest\nFrance -> Paris")
    # whole words, any case; outputs count too
    assert [p.input for p in mentioned_pairs(typed, "romania, not paris")] == ["Romania", "France"]
    assert mentioned_pairs(typed, "Romanian food") == []
    same, none = without_prompt_pairs(typed, "nothing here")
    assert same is typed and none == []
    with pytest.raises(UserInputError, match="fewer than"):
        without_prompt_pairs(typed, "Oman and Romania")


def test_a_list_of_additions_is_the_actadd_vector(llama, single_thread):
    lm = llama
    coeff, layer = 3.0, 1
    # prompts of different token lengths, so the alignment (spaces at the end) matters
    summed = addition_sum(lm, [Addition("Love and joy ", layer, coeff), Addition("Hate", layer, -coeff)])
    values, _ = steering_vectors.actadd_vector(lm, "Love and joy ", "Hate", layer)
    assert len(lm.tokenizer("Love and joy ")["input_ids"]) > len(lm.tokenizer("Hate")["input_ids"])
    assert summed.layer == layer and summed.values.shape == values.shape
    torch.testing.assert_close(summed.values, coeff * values, atol=1e-5, rtol=1e-5)
    prompts = ["I hate you because", "Tell me"]
    a = steer.generate_pair(lm, prompts, summed.values, layer, 1.0, "prompt", 8)
    b = steer.generate_pair(lm, prompts, values, layer, coeff, "prompt", 8)
    assert [r.steered for r in a] == [r.steered for r in b]
    assert any(r.steered != r.unsteered for r in a)  # it steers at all


def test_zero_coefficients_leave_the_text_unsteered(llama, single_thread):
    lm = llama
    zero = addition_sum(lm, [Addition("Love ", 1, 0.0), Addition("Hate", 1, -0.0)])
    assert not zero.values.any()
    [r] = steer.generate_pair(
        lm, ["I hate you because"], zero.values, 1, 1.0, "prompt", 8, sample=True, top_p=0.3,
        repetition_penalty=1.2, n_samples=2, seed=1,
    )  # fmt: skip
    assert r.steered == r.unsteered


def test_additions_checks_and_bos(llama):
    lm = llama
    with pytest.raises(UserInputError, match="at least one"):
        addition_sum(lm, [])
    with pytest.raises(UserInputError):
        addition_sum(lm, [Addition("Love", 99, 1.0)])
    plain = addition_sum(lm, [Addition("Love", 1, 1.0)])
    bos = addition_sum(lm, [Addition("Love", 1, 1.0)], prepend_bos=True)
    assert len(bos.tokens[0]) == len(plain.tokens[0]) + 1 and bos.tokens[0][0] == lm.tokenizer.bos_token
    assert with_bos(lm, "I hate") == lm.tokenizer.bos_token + "I hate" == with_bos(lm, with_bos(lm, "I hate"))


def test_parse_additions():
    from core.additions import parse_additions

    got = parse_additions('+5 "Love "\n\n-5 "Hate" @2\n0.5 "a \\"b\\""', 6)
    assert got == [Addition("Love ", 6, 5.0), Addition("Hate", 2, -5.0), Addition('a \\"b\\"', 6, 0.5)]
    with pytest.raises(UserInputError, match="Line 2"):
        parse_additions('+5 "Love"\nLove', 6)


def test_additions_at_several_layers(llama, single_thread):
    """Each layer's sum is that layer's additions alone (one forward padded to the longest prompt
    of all changes no earlier position), and steering adds each at its own layer."""
    lm = llama
    adds = [Addition("Love ", 0, 2.0), Addition("Hate", 0, -2.0), Addition("Calm and quiet", 2, 3.0)]
    both = addition_sum(lm, adds)
    assert sorted(both.by_layer) == [0, 2] and both.layer == 0 and [l for l, _ in both.more] == [2]
    torch.testing.assert_close(both.by_layer[0], addition_sum(lm, adds[:2]).values, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.by_layer[2], addition_sum(lm, adds[2:]).values, atol=1e-5, rtol=1e-5)
    assert [len(t) for t in both.tokens] == [2, 2, len(lm.tokenizer("Calm and quiet")["input_ids"])]
    prompt = ["I hate you because"]
    one = steer.generate_pair(lm, prompt, both.values, 0, 1.0, "prompt", 8)[0]
    two = steer.generate_pair(lm, prompt, both.values, 0, 1.0, "prompt", 8, more=both.more)[0]
    zero_more = [(2, torch.zeros_like(both.by_layer[2]))]
    same = steer.generate_pair(lm, prompt, both.values, 0, 1.0, "prompt", 8, more=zero_more)[0]
    assert same.steered == one.steered  # a zero vector at the further layer changes nothing
    assert two.steered != one.steered and two.unsteered == one.unsteered  # the further layer does something
    with pytest.raises(ValueError):
        steer.generate_pair(lm, prompt, both.values[:1], 0, 1.0, "last", 8, more=both.more)
