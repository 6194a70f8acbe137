"""Steered generation (core.steer), steering vectors (core.steering_vectors)
and the sweep (core.sweep): exact identities on tiny random models,
effects on the default model (slow-marked).

Tiny models: Llama (rotary positions) and GPT-2 (absolute positions, so a wrong position id
under left padding changes the text), plus GPT-J (blocks return tuples) for the batching
identity. References are plain Hugging Face ``generate`` and forwards, not nnsight.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import CancelAt, build_tiny, random_direction

from core import limits, steer, steer_diff, steering_vectors
from core.errors import UserInputError
from core.sweep import SweepResult, keyword_hit_rate, sweep
from core.vectors import Vector

# prompts of very different lengths: the batch is left-padded (one prompt is one token)
PROMPTS = ["The quick brown fox jumps over the lazy dog and", "Hi", "Once upon a time"]
N_NEW = 8


@pytest.fixture(scope="module", params=["llama", "gpt2", "gptj"])
def lm(request, tokenizer):
    return build_tiny(request.param, tokenizer, seed=1)


def _hf_greedy(lm, prompts: list[str], n: int) -> list[str]:
    """Plain Hugging Face greedy decoding of a left-padded batch, cut at end-of-sequence."""
    enc = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = lm.hf.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    eos = lm.hf.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    texts = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        cut = next((i for i, t in enumerate(row) if t in eos), len(row))
        texts.append(lm.tokenizer.decode(row[:cut], skip_special_tokens=True))
    return texts


# --- (a) a batch equals each prompt alone, row by row ------------------------------------------


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("mode, n_pos", [("last", None), ("prompt", 3)])
def test_batch_rows_equal_single_prompts(lm, mode, n_pos):
    vec = random_direction(lm, n_pos)
    batch = steer.generate_pair(lm, PROMPTS, vec, 1, 2.0, mode, N_NEW)
    alone = [steer.generate_pair(lm, [p], vec, 1, 2.0, mode, N_NEW)[0] for p in PROMPTS]
    for b, a in zip(batch, alone):
        assert b.unsteered == a.unsteered
        assert b.steered == a.steered
        assert b.next_token_change.kl == pytest.approx(a.next_token_change.kl, rel=1e-3, abs=1e-6)
    # the vector acts on every row, the one-token prompt (most padding) included; were the
    # addition to land on pad tokens, that row would come out unsteered in the batch
    for r in batch:
        assert r.first_divergence is not None, r
        assert r.next_token_change.kl > 1e-3
    if mode == "prompt":
        assert [r.n_steered_positions for r in batch] == [3, 1, 3]
        assert "fewer than the vector's 3 positions" in batch[1].note
        assert batch[0].note == ""


def _hf_hooked(lm, prompts: list[str], layer: int, delta_fn, n: int) -> list[str]:
    """HF greedy generation with a forward hook on block ``layer`` that adds
    ``delta_fn(call, output, mask)`` to its output on every forward call (an independent
    reference for both modes)."""
    enc = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    calls = []

    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        h += delta_fn(len(calls), h, enc["attention_mask"])
        calls.append(1)
        return output

    handle = lm.arch.blocks(lm.hf)[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = lm.hf.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    finally:
        handle.remove()
    assert len(calls) == n
    return [lm.tokenizer.decode(row, skip_special_tokens=True) for row in out[:, enc["input_ids"].shape[1] :]]


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_last_mode_matches_a_hook_at_every_step(model, request):
    lm, layer, coeff = request.getfixturevalue(model), 1, 2.0
    vec = random_direction(lm)

    def delta(call, h, mask):
        d = torch.zeros_like(h)
        d[:, -1] = coeff * vec  # the newest token, prompt's last on the first call
        return d

    results = steer.generate_pair(lm, PROMPTS, vec, layer, coeff, "last", N_NEW)
    assert [r.steered[0] for r in results] == _hf_hooked(lm, PROMPTS, layer, delta, N_NEW)


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_prompt_mode_matches_a_hook_on_the_first_real_tokens(model, request):
    lm, layer, coeff = request.getfixturevalue(model), 1, 2.0
    vec = random_direction(lm, 3)

    def delta(call, h, mask):
        d = torch.zeros_like(h)
        if call == 0:  # the prompt pass only; later steps see it through the cache
            for row, length in enumerate(mask.sum(1).tolist()):
                pad, k = mask.shape[1] - length, min(3, length)
                d[row, pad : pad + k] = coeff * vec[:k]
        return d

    results = steer.generate_pair(lm, PROMPTS, vec, layer, coeff, "prompt", N_NEW)
    assert [r.steered[0] for r in results] == _hf_hooked(lm, PROMPTS, layer, delta, N_NEW)


# --- (b) a coefficient of 0 reproduces the unsteered text exactly ------------------------------


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("mode, n_pos", [("last", None), ("prompt", 4)])
@pytest.mark.parametrize("sample", [False, True])
def test_zero_coefficient_is_unsteered(lm, mode, n_pos, sample):
    vec = random_direction(lm, n_pos) * 50.0  # huge, so that any leak of the vector would show
    results = steer.generate_pair(
        lm, PROMPTS, vec, 1, 0.0, mode, N_NEW, sample=sample, temperature=0.9, top_p=0.95, n_samples=3, seed=7
    )
    for r in results:
        assert r.steered == r.unsteered
        assert len(r.unsteered) == (3 if sample else 1)
        assert r.first_divergence is None
        assert r.next_token_change.kl == 0.0
        assert r.next_token_change.rose == [] and r.next_token_change.fell == []


# --- (c) the unsteered column is plain Hugging Face generation ---------------------------------


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_unsteered_equals_hf_generate(model, request):
    lm = request.getfixturevalue(model)
    results = steer.generate_pair(lm, PROMPTS, random_direction(lm), 1, 3.0, "last", 10)
    assert [r.unsteered[0] for r in results] == _hf_greedy(lm, PROMPTS, 10)
    # and the steered column is not
    assert [r.steered[0] for r in results] != _hf_greedy(lm, PROMPTS, 10)


@pytest.mark.usefixtures("single_thread")
def test_texts_end_at_end_of_sequence(tokenizer):
    """Rows run every step (the per-step loop must complete) but texts stop at EOS, as HF's do."""
    lm = build_tiny("llama", tokenizer, seed=1)
    plain = steer.generate_pair(lm, PROMPTS, None, 0, 0.0, "last", 10)
    first = lm.tokenizer(plain[0].unsteered[0], add_special_tokens=False)["input_ids"]
    lm.hf.generation_config.eos_token_id = first[3]  # row 0 now ends after 3 tokens
    results = steer.generate_pair(lm, PROMPTS, random_direction(lm), 0, 0.0, "last", 10)
    assert [r.unsteered[0] for r in results] == _hf_greedy(lm, PROMPTS, 10)
    assert results[0].unsteered[0] == lm.tokenizer.decode(first[:3])
    # alone, the prompt's row ends early: HF would stop the whole batch after 4 steps
    (alone,) = steer.generate_pair(lm, PROMPTS[:1], random_direction(lm), 0, 0.0, "last", 10)
    assert alone.unsteered == alone.steered == [lm.tokenizer.decode(first[:3])]


def test_no_vector_means_no_steering(llama):
    (r,) = steer.generate_pair(llama, ["Hello there"], None, 0, 5.0, "last", 4)
    assert r.steered == r.unsteered and r.first_divergence is None
    assert r.next_token_change.kl == 0.0 and r.n_steered_positions == 0


# --- sampling ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("single_thread")
def test_sampling_is_seeded_and_coupled(llama):
    vec = random_direction(llama)
    kw = dict(sample=True, n_samples=4, temperature=1.0, top_p=1.0)
    a = steer.generate_pair(llama, PROMPTS[:2], vec, 1, 0.5, "last", N_NEW, seed=3, **kw)
    b = steer.generate_pair(llama, PROMPTS[:2], vec, 1, 0.5, "last", N_NEW, seed=3, **kw)
    c = steer.generate_pair(llama, PROMPTS[:2], vec, 1, 0.5, "last", N_NEW, seed=4, **kw)
    assert [(r.unsteered, r.steered) for r in a] == [(r.unsteered, r.steered) for r in b]
    assert [r.unsteered for r in a] != [r.unsteered for r in c]
    assert len(set(a[0].unsteered)) > 1  # the samples differ from each other
    # a prompt's samples do not depend on the other prompts in the batch
    (alone,) = steer.generate_pair(llama, PROMPTS[1:2], vec, 1, 0.5, "last", N_NEW, seed=3, **kw)
    assert (alone.unsteered, alone.steered) == (a[1].unsteered, a[1].steered)


@pytest.mark.usefixtures("single_thread")
def test_sampling_with_tiny_top_p_is_greedy(gpt2):
    vec = random_direction(gpt2)
    greedy = steer.generate_pair(gpt2, PROMPTS, vec, 1, 2.0, "last", N_NEW)
    nucleus = steer.generate_pair(gpt2, PROMPTS, vec, 1, 2.0, "last", N_NEW, sample=True, top_p=1e-9, n_samples=2)
    for g, s in zip(greedy, nucleus):
        assert s.unsteered == g.unsteered * 2 and s.steered == g.steered * 2


def test_coupled_sampler_draws_from_the_softmax():
    """Gumbel-max with temperature and top-p gives the right frequencies (20000 draws at once)."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -3.0])
    n = 20000
    sampler = steer._CoupledSampler(torch.arange(n), n, seed=0, temperature=2.0, top_p=0.9)
    draws = sampler(None, logits.expand(n, -1).clone()).argmax(-1)
    freq = torch.bincount(draws, minlength=5) / n
    p = torch.softmax(logits / 2.0, -1)  # already sorted: the nucleus is the first tokens
    expected = torch.where(p.cumsum(0) - p < 0.9, p, torch.zeros(5))
    expected = expected / expected.sum()
    assert expected[-1] == 0 and freq[-1] == 0  # outside the nucleus: never drawn
    assert torch.allclose(freq, expected, atol=0.015), (freq, expected)


# --- bookkeeping -------------------------------------------------------------------------------


def test_first_divergence():
    assert steer_diff.first_divergence("abc", "abc") is None
    assert steer_diff.first_divergence("abc", "abd") == 2
    assert steer_diff.first_divergence("ab", "abc") == 2
    assert steer_diff.first_divergence("", "x") == 0


def test_next_token_change_lists_and_kl(llama):
    before = torch.log(torch.tensor([0.5, 0.3, 0.2] + [1e-9] * 5))
    after = torch.log(torch.tensor([0.2, 0.3, 0.5] + [1e-9] * 5))
    change = steer_diff.next_token_change(llama, before, after, k=3)
    assert [t for t, _, _ in change.rose] == [llama.tokenizer.decode([2])]
    assert [t for t, _, _ in change.fell] == [llama.tokenizer.decode([0])]
    assert change.rose[0][1:] == pytest.approx((0.2, 0.5), abs=1e-6)
    assert change.kl == pytest.approx(0.5 * math.log(2.5) + 0.2 * math.log(0.4), abs=1e-5)


@pytest.mark.usefixtures("single_thread")
def test_lock_is_held_and_model_left_unmodified(llama):
    ids = llama.tokenizer("A test of the model", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = llama.hf(ids).logits
    held = []

    def progress(fraction, message):
        held.append(llama.lock.held())

    steer.generate_pair(llama, ["Hello"], random_direction(llama, 2) * 10, 1, 5.0, "prompt", 3, progress=progress)
    assert held == [True, True, True]
    with torch.no_grad():
        assert torch.equal(llama.hf(ids).logits, before)


def test_accepts_a_vector_object(llama):
    vec = Vector(values=random_direction(llama), model_id=llama.model_id, layer=1, method="caa")
    a = steer.generate_pair(llama, ["Hello"], vec, 1, 2.0, "last", 3)
    b = steer.generate_pair(llama, ["Hello"], vec.values, 1, 2.0, "last", 3)
    assert a == b
    other = Vector(values=vec.values, model_id="another-model", layer=1, method="caa")
    with pytest.raises(UserInputError, match="made for model 'another-model'"):
        steer.generate_pair(llama, ["Hello"], other, 1, 2.0, "last", 3)


@pytest.mark.usefixtures("single_thread")
def test_repetition_penalty_is_hugging_faces(gpt2):
    prompts = ["Hi", "a b a b a b a b"]  # the tiny GPT-2 repeats itself on both
    results = steer.generate_pair(gpt2, prompts, None, 0, 0.0, "last", 12, repetition_penalty=3.0)
    enc = gpt2.tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = gpt2.hf.generate(**enc, max_new_tokens=12, do_sample=False, repetition_penalty=3.0, eos_token_id=None)
    ref = gpt2.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert [r.unsteered[0] for r in results] == ref
    plain = steer.generate_pair(gpt2, prompts, None, 0, 0.0, "last", 12)
    assert all(p.unsteered != r.unsteered for p, r in zip(plain, results))  # the penalty acts


# --- (d) validation ----------------------------------------------------------------------------

GOOD = dict(prompts=["Hello"], layer=1, coeff=1.0, mode="last", max_new_tokens=4)


@pytest.mark.parametrize(
    "change, pattern",
    [
        (dict(max_new_tokens=0), "New tokens"),
        (dict(max_new_tokens=limits.MAX_NEW_TOKENS + 1), "New tokens"),
        (dict(coeff=float("nan")), "finite"),
        (dict(coeff=float("inf")), "finite"),
        (dict(coeff=limits.MAX_ABS_COEFF + 1), "too large"),
        (dict(coeff="2"), "must be a number"),
        (dict(layer=-1), "out of range"),
        (dict(layer=3), "out of range"),
        (dict(prompts=[]), "No prompts"),
        (dict(prompts=["  "]), "empty"),
        (dict(prompts=["x" * (limits.MAX_PROMPT_CHARS + 1)]), "characters"),
        (dict(prompts=["x"] * (limits.MAX_PROMPTS + 1)), "too many"),
        (dict(n_samples=limits.MAX_SAMPLES + 1, sample=True), "Samples"),
        (dict(n_samples=0), "Samples"),
        (dict(temperature=0.0, sample=True), "temperature"),
        (dict(top_p=0.0, sample=True), "top-p"),
        (dict(repetition_penalty=float("nan")), "repetition penalty"),
        (dict(seed=-1), "seed"),
        (dict(mode="everywhere"), "mode"),
        (dict(vector=torch.zeros(32)), "width 32"),
        (dict(vector=torch.zeros(3, 64)), "'prompt' mode"),
        (dict(vector=torch.full((64,), float("nan"))), "non-finite"),
    ],
)
def test_generate_pair_validation(llama, change, pattern):
    kw = {**GOOD, "vector": torch.zeros(64), **change}
    with pytest.raises(UserInputError, match=pattern):
        steer.generate_pair(llama, **kw)


def test_one_message_per_mistake(llama):
    """The same mistake says the same thing through every entry point (core.checks)."""
    from core.attention import attention_pattern
    from core.checks import parse_coeffs

    vec = random_direction(llama)
    layer_calls = [
        lambda: steer.generate_pair(llama, ["Hi"], vec, 3, 1.0, "last", 2),
        lambda: steering_vectors.actadd_vector(llama, "Love", "Hate", 3),
        lambda: sweep(llama, "Hi", {3: vec}, [1.0], "last"),
        lambda: attention_pattern(llama, "Hi", 3),
    ]
    coeff_calls = [
        lambda: steer.generate_pair(llama, ["Hi"], vec, 1, float("nan"), "last", 2),
        lambda: sweep(llama, "Hi", {1: vec}, [float("nan")], "last"),
        lambda: parse_coeffs("1, nan", 8),
    ]
    for calls, message in (
        (layer_calls, "Layer 3 is out of range: this model has layers 0..2."),
        (coeff_calls, "The coefficient must be a finite number (got nan)."),
    ):
        for call in calls:
            with pytest.raises(UserInputError) as exc:
                call()
            assert str(exc.value) == message


# --- ActAdd, CAA, norms ------------------------------------------------------------------------


def _hidden(lm, ids: list[int], layer: int) -> torch.Tensor:
    """Block ``layer``'s output ``[pos, d_model]`` for one unpadded prompt (HF reference)."""
    with torch.no_grad():
        out = lm.hf(torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0]  # hidden_states[0] is the embedding


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_actadd_vector_pads_with_spaces_and_subtracts(model, request):
    lm = request.getfixturevalue(model)
    layer = 1
    values, tokens = steering_vectors.actadd_vector(lm, "Love and kindness", "Hate", layer)
    pos = lm.tokenizer("Love and kindness")["input_ids"]
    neg = lm.tokenizer("Hate")["input_ids"]
    space = lm.tokenizer(" ", add_special_tokens=False)["input_ids"]
    assert len(space) == 1
    neg_padded = neg + space * (len(pos) - len(neg))
    assert values.shape == (len(pos), lm.arch.d_model)
    assert [n for _, n in tokens] == [lm.tokenizer.decode([t]) for t in neg_padded]
    assert tokens[-1][1] == " "
    expected = _hidden(lm, pos, layer) - _hidden(lm, neg_padded, layer)
    torch.testing.assert_close(values, expected, atol=1e-4, rtol=1e-4)
    same, _ = steering_vectors.actadd_vector(lm, "Hate", "Hate", layer)
    assert torch.count_nonzero(same) == 0
    with pytest.raises(UserInputError, match="empty"):
        steering_vectors.actadd_vector(lm, "", "Hate", layer)


@pytest.mark.usefixtures("single_thread")
def test_actadd_vectors_read_every_layer_in_one_forward(gpt2):
    """Several layers from one forward: each equals the one-layer vector, in the order asked."""
    calls = []
    handle = gpt2.arch.blocks(gpt2.hf)[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        values, tokens = steering_vectors.actadd_vectors(gpt2, "Love and kindness", "Hate", [2, 0, 1])
    finally:
        handle.remove()
    assert calls == [1]  # one forward for all three layers
    assert list(values) == [2, 0, 1]
    for layer in (0, 1, 2):
        alone, alone_tokens = steering_vectors.actadd_vector(gpt2, "Love and kindness", "Hate", layer)
        assert torch.equal(values[layer], alone)
        assert tokens == alone_tokens
    with pytest.raises(UserInputError, match="Layer 3 is out of range"):
        steering_vectors.actadd_vectors(gpt2, "Love", "Hate", [0, 3])


@pytest.mark.usefixtures("single_thread")
def test_caa_vectors_are_mean_last_token_differences(gpt2):
    pairs = [("Yes, I agree", "No"), ("A", "B: something longer here"), ("kind words", "cruel words")]
    got = steering_vectors.caa_vectors(gpt2, pairs)
    assert got.shape == (gpt2.arch.n_layers, gpt2.arch.d_model)
    for layer in range(gpt2.arch.n_layers - 1):  # HF's last hidden state is after the final norm
        diffs = [
            _hidden(gpt2, gpt2.tokenizer(p)["input_ids"], layer)[-1]
            - _hidden(gpt2, gpt2.tokenizer(q)["input_ids"], layer)[-1]
            for p, q in pairs
        ]
        torch.testing.assert_close(got[layer], torch.stack(diffs).mean(0), atol=1e-4, rtol=1e-4)
    with pytest.raises(UserInputError, match="contrastive pairs"):
        steering_vectors.caa_vectors(gpt2, [])
    with pytest.raises(UserInputError, match="contrastive pairs"):
        steering_vectors.caa_vectors(gpt2, [("a", "b")] * (limits.MAX_CAA_PAIRS + 1))
    with pytest.raises(UserInputError, match="pair 2"):
        steering_vectors.caa_vectors(gpt2, [("a", "b"), ("a", " ")])


def test_vectors_with_provenance_from_actadd_and_caa_values():
    """The pages' vectors: named and described by core, values kept as given."""
    values = torch.randn(3, 8)
    aligned = [("L", "H"), ("ove", "ate"), (" ", " ")]
    vec = steering_vectors.make_actadd_vector("m", "Love!", "Hate you", 4, values, aligned, 5.0)
    assert (vec.name, vec.method, vec.layer, vec.model_id) == ("actadd_love_hate_you", "actadd", 4, "m")
    assert vec.values is values
    assert vec.provenance == {"positive": "Love!", "negative": "Hate you", "aligned_tokens": aligned, "coeff": 5.0}
    by_layer = torch.randn(6, 8)
    pairs = [(f"p{i}", f"n{i}") for i in range(7)]
    caa = steering_vectors.make_caa_vector("m", pairs, 2, by_layer)
    assert (caa.name, caa.method, caa.layer) == ("caa_l2", "caa", 2)
    assert torch.equal(caa.values, by_layer[2]) and caa.values.data_ptr() != by_layer[2].data_ptr()
    assert caa.provenance == {"n_pairs": 7, "first_pairs": [list(p) for p in pairs[:5]]}


def test_default_coeff_is_one_rule():
    def vec(method: str, **provenance) -> Vector:
        return Vector(values=torch.ones(4), model_id="m", layer=0, method=method, provenance=provenance)

    assert steering_vectors.default_coeff(vec("actadd", coeff=6)) == 6.0  # saved with it
    assert steering_vectors.default_coeff(vec("caa", coeff=-2.5)) == -2.5
    assert steering_vectors.default_coeff(vec("actadd")) == 4.0
    assert steering_vectors.default_coeff(vec("caa", coeff=True)) == 4.0  # not a number
    assert steering_vectors.default_coeff(vec("caa", coeff="8")) == 4.0
    assert steering_vectors.default_coeff(vec("caa", coeff=limits.MAX_ABS_COEFF + 1)) == 4.0  # beyond the limits
    assert steering_vectors.default_coeff(vec("function_vector")) == 1.0
    assert steering_vectors.default_coeff(vec("h_vector")) == 1.0
    assert steering_vectors.default_coeff(vec("function_vector", coeff=3)) == 3.0


def test_norm_helpers():
    v = torch.tensor([[3.0, 4.0], [6.0, 8.0]])  # norms 5 and 10
    assert steering_vectors.row_norms(v) == [5.0, 10.0]
    assert steering_vectors.mean_norm(v) == 7.5 and steering_vectors.mean_norm(v[0]) == 5.0
    assert steering_vectors.relative_norm(-2.0, 7.5, 3.0) == 5.0
    res = SweepResult(
        prompt="p",
        mode="last",
        layers=(1, 3),
        coeffs=(-1.0, 2.0),
        texts=(("", ""), ("", "")),
        scores=None,
        score_name=None,
        baseline_text="",
        baseline_score=None,
        vector_norms=(2.0, 4.0),
    )
    resid = [10.0, 4.0, 10.0, 8.0]
    assert (
        res.relative_norms(resid)
        == [
            [steering_vectors.relative_norm(c, v, resid[l]) for l, v in zip(res.layers, res.vector_norms)]
            for c in res.coeffs
        ]
        == [[0.5, 0.5], [1.0, 1.0]]
    )


@pytest.mark.usefixtures("single_thread")
def test_resid_norms(llama):
    prompts = ["Hello world", "A much longer prompt than the first one"]
    norms = steering_vectors.resid_norms(llama, prompts)
    assert norms.shape == (llama.arch.n_layers,)
    layer = 0
    ref = torch.stack([_hidden(llama, llama.tokenizer(p)["input_ids"], layer)[-1].norm() for p in prompts]).mean()
    assert float(norms[layer]) == pytest.approx(float(ref), rel=1e-4)
    with pytest.raises(UserInputError):
        steering_vectors.resid_norms(llama, [])


# --- sweep ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("mode, n_pos", [("last", None), ("prompt", 2)])
def test_sweep_cells_equal_single_generations(gpt2, mode, n_pos):
    """Each layer uses its own vector; every cell is the generation of that (layer, coefficient)."""
    vectors = {0: random_direction(gpt2, n_pos, seed=0), 2: random_direction(gpt2, n_pos, seed=1)}
    prompt, layers, coeffs = "Once upon a time", [0, 2], [0.0, 1.0, -3.0]
    result = sweep(gpt2, prompt, vectors, coeffs, mode, max_new_tokens=6, target_word="time")
    assert isinstance(result, SweepResult)
    assert result.layers == tuple(layers) and result.coeffs == tuple(coeffs) and result.mode == mode
    assert len(result.texts) == 3 and all(len(row) == 2 for row in result.texts)
    for li, layer in enumerate(layers):
        for ci, coeff in enumerate(coeffs):
            (r,) = steer.generate_pair(gpt2, [prompt], vectors[layer], layer, coeff, mode, 6)
            assert result.texts[ci][li] == r.steered[0]
            assert result.texts[0][li] == r.unsteered[0] == result.baseline_text
    # each layer its own vector: with the vectors swapped, the steered score at layer 0 changes
    # (in the "prompt" mode an edit of the last block's first positions reaches no logit)
    swapped = sweep(gpt2, prompt, {0: vectors[2], 2: vectors[0]}, coeffs, mode, max_new_tokens=1, target_word="time")
    assert swapped.scores[2][0] != pytest.approx(result.scores[2][0], rel=1e-3)
    # the score is p(" time") at the first new token: check the baseline against a plain forward
    target = gpt2.tokenizer(" time", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        logits = gpt2.hf(gpt2.tokenizer(prompt, return_tensors="pt")["input_ids"]).logits[0, -1]
    p = float(torch.softmax(logits, -1)[target])
    assert result.baseline_score == pytest.approx(p, rel=1e-4)
    assert result.scores[0] == pytest.approx([p, p], rel=1e-4)  # coefficient 0
    assert result.scores[2][0] != pytest.approx(p, rel=1e-3)  # steering moves it
    # norms for the relative-strength table: |c| x mean norm per position / residual norm
    norms = [float(vectors[l].float().norm(dim=-1).mean()) for l in layers]
    assert result.vector_norms == pytest.approx(norms, rel=1e-6)
    resid = [2.0, 4.0, 8.0]
    expected = [[abs(c) * n / resid[l] for l, n in zip(layers, norms)] for c in coeffs]
    for got_row, expected_row in zip(result.relative_norms(resid), expected, strict=True):
        assert got_row == pytest.approx(expected_row, rel=1e-6)


def test_sweep_keyword_scores_and_validation(llama):
    vec = random_direction(llama)
    result = sweep(llama, "Hello", {1: vec}, [0.0, 2.0], "last", max_new_tokens=3, keywords=["the", "a"])
    assert result.score_name == "keyword hit rate"
    for ci in range(2):
        assert result.scores[ci][0] == keyword_hit_rate(result.texts[ci][0], ["the", "a"])
    none = sweep(llama, "Hello", {1: vec}, [1.0], "last", max_new_tokens=2)
    assert none.scores is None and none.score_name is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        none.baseline_text = "x"
    with pytest.raises(UserInputError, match="at least one layer"):
        sweep(llama, "Hello", {}, [1.0], "last")
    with pytest.raises(UserInputError, match="too large"):
        sweep(llama, "Hello", {0: vec, 1: vec, 2: vec}, [0.1] * 40, "last")
    with pytest.raises(UserInputError, match="finite"):
        sweep(llama, "Hello", {1: vec}, [float("nan")], "last")
    with pytest.raises(UserInputError, match="out of range"):
        sweep(llama, "Hello", {3: vec}, [1.0], "last")
    with pytest.raises(UserInputError, match="width 32"):
        sweep(llama, "Hello", {0: vec, 1: torch.zeros(32)}, [1.0], "last")


def test_sweep_limits_hold_for_the_whole_grid(llama, monkeypatch):
    """Every layer's part of the grid is within the limits, the whole grid is not: refused before
    anything runs (the dashboard once swept layer by layer, so no part ever met the limit)."""
    vec = random_direction(llama)
    progress = []
    per_layer = 40  # 1 layer x 40 coefficients = 40 cells: within MAX_SWEEP_CELLS
    assert per_layer <= limits.MAX_SWEEP_CELLS < 3 * per_layer
    with pytest.raises(UserInputError, match=r"The grid is too large: .* \(got 3 x 40\)"):
        sweep(
            llama,
            "Hello",
            {0: vec, 1: vec, 2: vec},
            [0.1] * per_layer,
            "last",
            progress=lambda f, m: progress.append(m),
        )
    assert progress == []  # nothing was generated
    # the number of layers too: 2 layers x 1 coefficient, with at most 1 layer allowed
    monkeypatch.setattr(limits, "MAX_SWEEP_LAYERS", 1)
    with pytest.raises(UserInputError, match=r"at most 1 layers .* \(got 2 x 1\)"):
        sweep(llama, "Hello", {0: vec, 1: vec}, [1.0], "last", progress=lambda f, m: progress.append(m))
    assert progress == []
    sweep(llama, "Hello", {1: vec}, [1.0], "last", max_new_tokens=1, progress=lambda f, m: progress.append(m))
    assert progress  # the control: a grid within the limits runs


def test_keyword_hit_rate():
    assert keyword_hit_rate("I love you, Love!", ["love", "hate"]) == 0.5
    assert keyword_hit_rate("lovely", ["love"]) == 0.0  # whole words only
    assert keyword_hit_rate("anything", []) == 0.0


# --- the default model (slow) ------------------------------------------------------------------

# ActAdd settings that work on SmolLM2-135M-Instruct (explored over layers 2-10, coeffs 2-10):
# "Love" - "Hate" (2 positions: 'Love',' ' vs 'H','ate') at block 6, coefficient 5, prompt mode.
ACTADD_LAYER, ACTADD_COEFF, ACTADD_PROMPT = 6, 5.0, "I hate you because"


@pytest.fixture(scope="module")
def default_lm():
    from core.models import load_model

    return load_model()


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")  # one thread: a busy machine slows two by up to 10x
def test_love_minus_hate_actadd_on_default_model(default_lm):
    lm = default_lm
    values, tokens = steering_vectors.actadd_vector(lm, "Love", "Hate", ACTADD_LAYER)
    assert tokens == [("Love", "H"), (" ", "ate")]
    (r,) = steer.generate_pair(lm, [ACTADD_PROMPT], values, ACTADD_LAYER, ACTADD_COEFF, "prompt", 20)
    assert r.first_divergence is not None, r  # the continuation changes
    assert r.n_steered_positions == 2
    # " love" is among the tokens that rose most at the first new token (measured: 0.00017 ->
    # 0.0095, about 55x), and the distribution moved (measured KL 0.55 nats)
    rose = {t: (before, after) for t, before, after in r.next_token_change.rose}
    assert " love" in rose, r.next_token_change
    before, after = rose[" love"]
    assert after > 10 * before
    assert r.next_token_change.kl > 0.1


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")
def test_zero_coefficient_is_unsteered_on_default_model(default_lm):
    lm = default_lm
    values, _ = steering_vectors.actadd_vector(lm, "Love", "Hate", ACTADD_LAYER)
    (r,) = steer.generate_pair(lm, [ACTADD_PROMPT], values, ACTADD_LAYER, 0.0, "prompt", 20)
    assert r.steered == r.unsteered and r.first_divergence is None
    assert r.next_token_change.kl == 0.0
    assert r.unsteered == _hf_greedy(lm, [ACTADD_PROMPT], 20)


def test_cancelled_generation_leaves_the_model_unmodified(lm):
    """Cancel during nnsight's generation loop (a progress report raises on its worker thread)."""
    from core.errors import Cancelled

    v = random_direction(lm)
    before = steer.generate_pair(lm, PROMPTS, v, 1, 4.0, "last", N_NEW)
    cancel = CancelAt(3)  # the third token
    with pytest.raises(Cancelled):
        steer.generate_pair(lm, PROMPTS, v, 1, 4.0, "last", N_NEW, progress=cancel)
    assert cancel.reports == ["token 1/8", "token 2/8", "token 3/8"]
    assert steer.generate_pair(lm, PROMPTS, v, 1, 4.0, "last", N_NEW) == before
    assert [r.unsteered[0] for r in before] == _hf_greedy(lm, PROMPTS, N_NEW)
