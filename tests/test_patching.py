"""Activation patching, the last-token engine and function vectors on tiny random models.

The fast engine (prefix cache, groups as extra last-token columns, skipped early blocks) must
give the numbers of the plain engine (one whole forward per group), and both must agree with
an independent reference written here with plain PyTorch hooks on the Hugging Face model.
"""

from __future__ import annotations

import pytest
import torch
from conftest import CancelAt

import core.inference as inference
import core.patching as patching
from core.attribution import clean_stats, indirect_effects
from core.fv import check_heads, function_vector_values
from core.inference import encode, first_token_ids, run_forward
from core.layer_sweep import accuracy_sweep
from core.patching import Edit, last_token_scores
from core.prompts import PromptSettings, build_prompts, split_task
from core.stats import wilson_interval
from core.tasks import validate

pytestmark = pytest.mark.usefixtures("single_thread")

WORDS = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("open", "closed"),
    ("young", "old"),
    ("tall", "short"),
    ("rich", "poor"),
    ("good", "bad"),
    ("hard", "soft"),
    ("wet", "dry"),
    ("early", "late"),
    ("full", "empty"),
    ("loud", "quiet"),
    ("strong", "weak"),
    ("thick", "thin"),
    ("clean", "dirty"),
    ("near", "far"),
    ("true", "false"),
    ("win", "lose"),
    ("buy", "sell"),
    ("push", "pull"),
    ("day", "night"),
    ("left", "right"),
    ("high", "low"),
    ("new", "used"),
    ("first", "last"),
    ("in", "out"),
]
SETTINGS = PromptSettings(n_shots=3, n_prompts=4, seed=0)
# prompts of very different lengths, so the batch is left-padded (one is a single token)
RAGGED = [
    "Q: hot\nA: cold\n\nQ: big\nA: small\n\nQ: up\nA:",
    "Q: wet\nA:",
    "The",
    "Q: loud\nA: quiet\n\nQ: fast\nA:",
]
RAGGED_TARGETS = [" down", " dry", " cat", " slow"]


@pytest.fixture(scope="session")
def task():
    return validate("tiny_antonyms", WORDS)


@pytest.fixture(scope="session")
def prompts(task):
    splits = split_task(task, SETTINGS.seed)
    return build_prompts(splits.train, splits.train, SETTINGS)


@pytest.fixture(scope="session")
def stats(tiny_lm, prompts):
    return clean_stats(tiny_lm, prompts)


# --- independent references: plain PyTorch hooks on the Hugging Face model, one prompt at a time


def _reference_logprobs(lm, prompt: str, edits: list[Edit]) -> torch.Tensor:
    """``[d_vocab]`` last-token log-probs of one unpadded prompt with the edits applied by
    hooks (values here are ``[d]``)."""
    arch, hf = lm.arch, lm.hf
    d = arch.d_head
    handles = []

    def head_hook(edit):
        def pre(module, args):
            z = args[0].clone()  # [1, pos, n_heads * d_head]
            sl = slice(edit.head * d, (edit.head + 1) * d)
            z[:, -1, sl] = z[:, -1, sl] + edit.value if edit.add else edit.value
            return (z,) + tuple(args[1:])

        return pre

    def resid_hook(edit):
        def post(module, args, output):
            h = arch.resid(output).clone()  # [1, pos, d_model]
            h[:, -1] = h[:, -1] + edit.value if edit.add else edit.value
            return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

        return post

    try:
        for e in edits:
            if e.site == "head":
                handles.append(arch.out_proj(hf, e.layer).register_forward_pre_hook(head_hook(e)))
            else:
                handles.append(arch.blocks(hf)[e.layer].register_forward_hook(resid_hook(e)))
        ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = hf(input_ids=ids).logits[0, -1].float()
    finally:
        for handle in handles:
            handle.remove()
    return logits.log_softmax(-1)


def _random_groups(lm, seed: int) -> list[list[Edit]]:
    """Unedited, head replacements and adds, resid adds at every layer, and a multi-edit group."""
    arch = lm.arch
    g = torch.Generator().manual_seed(seed)
    groups: list[list[Edit]] = [[]]
    for layer in range(arch.n_layers):
        groups.append([Edit(layer, "resid", torch.randn(arch.d_model, generator=g), add=True)])
        groups.append([Edit(layer, "head", 2 * torch.randn(arch.d_head, generator=g), head=layer % arch.n_heads)])
    groups.append([Edit(arch.n_layers - 1, "resid", torch.randn(arch.d_model, generator=g))])  # replace
    groups.append(
        [
            Edit(0, "head", torch.randn(arch.d_head, generator=g), head=1, add=True),
            Edit(1, "resid", torch.randn(arch.d_model, generator=g), add=True),
            Edit(2, "head", torch.randn(arch.d_head, generator=g), head=3),
        ]
    )
    return groups


# --- attribution ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["prob", "logprob"])
def test_fast_and_reference_attribution_agree(tiny_lm, prompts, stats, metric):
    arch = tiny_lm.arch
    fast = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric=metric, method="fast")
    ref = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric=metric, method="reference")
    shape = (arch.n_layers, arch.n_heads, len(prompts))
    assert fast.per_prompt.shape == ref.per_prompt.shape == shape
    assert torch.isfinite(ref.per_prompt).all() and torch.isfinite(fast.per_prompt).all()
    # probabilities of a random model's targets are small: scale the tolerance to the largest
    scale = 1.0 if metric == "logprob" else float((ref.per_prompt + ref.baseline).max().clamp(min=ref.baseline.max()))
    torch.testing.assert_close(fast.baseline, ref.baseline, atol=1e-4 * scale, rtol=0)
    torch.testing.assert_close(fast.per_prompt, ref.per_prompt, atol=1e-4 * scale, rtol=0)
    torch.testing.assert_close(fast.cie, ref.per_prompt.mean(-1), atol=1e-4 * scale, rtol=0)
    # the patches do something, so the agreement above is not 0 == 0
    assert ref.per_prompt.abs().max() > 100 * 1e-4 * scale
    assert fast.top_heads(1)[0] == ref.top_heads(1)[0]


def test_attribution_of_listed_heads_only(tiny_lm, prompts, stats):
    heads = [(2, 1), (0, 3)]
    part = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric="logprob", heads=heads)
    full = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric="logprob")
    for l, h in heads:
        torch.testing.assert_close(part.per_prompt[l, h], full.per_prompt[l, h], atol=1e-5, rtol=0)
    assert torch.isnan(part.per_prompt[1]).all()


def test_attribution_matches_hooked_reference(tiny_lm, prompts, stats):
    """The CIE of a few heads, recomputed prompt by prompt with PyTorch hooks."""
    arch = tiny_lm.arch
    heads = [(0, 0), (1, 2), (arch.n_layers - 1, arch.n_heads - 1)]
    attr = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric="logprob", heads=heads)
    targets = first_token_ids(tiny_lm, prompts.targets)
    for i, prompt in enumerate(prompts.corrupted):
        base = _reference_logprobs(tiny_lm, prompt, [])[targets[i]]
        assert abs(float(attr.baseline[i]) - float(base)) < 1e-4
        for l, h in heads:
            patched = _reference_logprobs(tiny_lm, prompt, [Edit(l, "head", stats.mean_heads[l, h], head=h)])
            assert abs(float(attr.per_prompt[l, h, i]) - float(patched[targets[i]] - base)) < 1e-4


def test_clean_stats_against_hooks(tiny_lm, prompts, stats):
    """Mean head slices and the h-vector, read independently with hooks, one prompt at a time."""
    arch, hf = tiny_lm.arch, tiny_lm.hf
    heads_seen, resid_seen = [], []
    handles = [
        arch.out_proj(hf, l).register_forward_pre_hook(lambda m, a: heads_seen.append(a[0][0, -1].clone()))
        for l in range(arch.n_layers)
    ] + [
        arch.blocks(hf)[l].register_forward_hook(lambda m, a, o: resid_seen.append(arch.resid(o)[0, -1].clone()))
        for l in range(arch.n_layers)
    ]
    try:
        with torch.no_grad():
            for prompt in prompts.clean:
                hf(input_ids=tiny_lm.tokenizer(prompt, return_tensors="pt")["input_ids"])
    finally:
        for handle in handles:
            handle.remove()
    n = len(prompts)
    z = torch.stack(heads_seen).view(n, arch.n_layers, arch.n_heads, arch.d_head)
    h = torch.stack(resid_seen).view(n, arch.n_layers, arch.d_model)
    torch.testing.assert_close(stats.mean_heads, z.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(stats.hvector, h.mean(0), atol=1e-4, rtol=0)
    assert stats.logits.shape == (n, arch.d_vocab)
    targets = first_token_ids(tiny_lm, prompts.targets)
    assert stats.icl_accuracy == pytest.approx((stats.logits.argmax(-1) == targets).float().mean().item())


# --- identities ----------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_patching_heads_with_their_own_values_changes_nothing(tiny_lm, prompts, use_cache):
    arch = tiny_lm.arch
    d = arch.d_head
    enc = encode(tiny_lm, prompts.clean)
    targets = first_token_ids(tiny_lm, prompts.targets)
    heads = run_forward(tiny_lm, enc, save_heads=True).heads  # [n_layers, n_prompts, n_heads * d_head]
    own = lambda l, h: heads[l, :, h * d : (h + 1) * d]  # noqa: E731  [n_prompts, d_head]
    all_heads = [(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads)]
    groups = [[]] + [[Edit(l, "head", own(l, h), head=h)] for l, h in all_heads]
    groups.append([Edit(l, "head", own(l, h), head=h) for l, h in all_heads])  # all at once
    # control: another prompt's value for the same head must change the scores
    groups.append([Edit(0, "head", own(0, 0).roll(1, dims=0), head=0)])
    scores = last_token_scores(tiny_lm, enc, targets, groups, use_cache=use_cache)
    same = scores.logprob[:-1]
    torch.testing.assert_close(same, scores.logprob[:1].expand_as(same), atol=1e-5, rtol=0)
    assert torch.equal(scores.top1[:-1], scores.top1[:1].expand_as(scores.top1[:-1]))
    assert (scores.logprob[-1] - scores.logprob[0]).abs().max() > 1e-2


def test_adding_a_zero_vector_changes_nothing(tiny_lm, prompts):
    arch = tiny_lm.arch
    enc = encode(tiny_lm, prompts.zero_shot)
    targets = first_token_ids(tiny_lm, prompts.targets)
    zero = torch.zeros(arch.d_model)
    groups = [[]] + [[Edit(l, "resid", zero, add=True)] for l in range(arch.n_layers)]
    # control (random: a constant vector would vanish in the next LayerNorm)
    control = 3 * torch.randn(arch.d_model, generator=torch.Generator().manual_seed(0))
    groups.append([Edit(0, "resid", control, add=True)])
    for use_cache in (True, False):
        scores = last_token_scores(tiny_lm, enc, targets, groups, use_cache=use_cache)
        same = scores.logprob[:-1]
        torch.testing.assert_close(same, scores.logprob[:1].expand_as(same), atol=1e-5, rtol=0)
        assert torch.equal(scores.top1[:-1], scores.top1[:1].expand_as(scores.top1[:-1]))
        assert (scores.logprob[-1] - scores.logprob[0]).abs().max() > 1e-2


def _self_consistent_targets(lm, texts: list[str]) -> tuple[list[str], list[str]]:
    """Prompts and targets where the target is the model's own top-1 token (and survives a
    decode/encode round trip), so the unedited accuracy is exactly 1."""
    enc = encode(lm, texts)
    top = run_forward(lm, enc).logits.argmax(-1)
    keep_p, keep_t = [], []
    for text, tok in zip(texts, top.tolist()):
        word = lm.tokenizer.decode([tok])
        ids = lm.tokenizer(word, add_special_tokens=False)["input_ids"]
        if ids and ids[0] == tok:
            keep_p.append(text)
            keep_t.append(word)
    return keep_p, keep_t


def test_accuracy_sweep_with_zero_vectors(tiny_lm, prompts):
    arch = tiny_lm.arch
    texts, targets = _self_consistent_targets(tiny_lm, list(prompts.zero_shot) + list(prompts.clean) + RAGGED)
    assert len(texts) >= 4
    zero = torch.zeros(arch.d_model)
    big = torch.randn(arch.d_model, generator=torch.Generator().manual_seed(3)) * 50
    base, by_layer = accuracy_sweep(tiny_lm, texts, targets, [(l, zero) for l in range(arch.n_layers)])
    assert base == 1.0
    assert by_layer == [1.0] * arch.n_layers
    # coeff scales the vector: zero times a large vector is still nothing; a large one is not
    _, scaled = accuracy_sweep(tiny_lm, texts, targets, [(arch.n_layers - 1, big)], coeff=0.0)
    assert scaled == [1.0]
    _, pushed = accuracy_sweep(tiny_lm, texts, targets, [(arch.n_layers - 1, big)], coeff=1.0)
    assert pushed[0] < 1.0


# --- padding, chunking and the fast path against references ---------------------------------


def test_left_padded_batch_equals_each_prompt_alone(tiny_lm):
    enc = encode(tiny_lm, RAGGED)
    lengths = enc.attention_mask.sum(1)
    assert len(set(lengths.tolist())) == len(RAGGED) and int(lengths.min()) == 1  # really ragged
    targets = first_token_ids(tiny_lm, RAGGED_TARGETS)
    groups = _random_groups(tiny_lm, seed=0)
    batched = last_token_scores(tiny_lm, enc, targets, groups)
    for i, prompt in enumerate(RAGGED):
        alone = last_token_scores(tiny_lm, encode(tiny_lm, [prompt]), targets[i : i + 1], groups)
        torch.testing.assert_close(batched.logprob[:, i : i + 1], alone.logprob, atol=1e-4, rtol=0)
        assert torch.equal(batched.top1[:, i : i + 1], alone.top1)


@pytest.mark.parametrize("use_cache", [True, False])
def test_engine_matches_hooked_reference(tiny_lm, use_cache):
    """Every kind of edit, on a ragged batch, against PyTorch hooks on each prompt alone."""
    enc = encode(tiny_lm, RAGGED)
    targets = first_token_ids(tiny_lm, RAGGED_TARGETS)
    groups = _random_groups(tiny_lm, seed=1)
    scores = last_token_scores(tiny_lm, enc, targets, groups, use_cache=use_cache)
    for i, prompt in enumerate(RAGGED):
        for g, edits in enumerate(groups):
            ref = _reference_logprobs(tiny_lm, prompt, edits)
            assert abs(float(scores.logprob[g, i]) - float(ref[targets[i]])) < 1e-4, (g, i)
            assert int(scores.top1[g, i]) == int(ref.argmax())
    # the edits matter: every edited group moves some score
    moved = (scores.logprob[1:] - scores.logprob[:1]).abs().amax(1)
    assert (moved > 1e-3).all()


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_fast_resid_add_equals_full_forward(tiny_lm, prompts, layer):
    enc = encode(tiny_lm, list(prompts.clean) + RAGGED)
    targets = first_token_ids(tiny_lm, list(prompts.targets) + RAGGED_TARGETS)
    vec = torch.randn(tiny_lm.arch.d_model, generator=torch.Generator().manual_seed(layer))
    groups = [[], [Edit(layer, "resid", vec, add=True)], [Edit(layer, "resid", -2 * vec, add=True)]]
    fast = last_token_scores(tiny_lm, enc, targets, groups, use_cache=True)
    full = last_token_scores(tiny_lm, enc, targets, groups, use_cache=False)
    torch.testing.assert_close(fast.logprob, full.logprob, atol=1e-4, rtol=0)
    assert torch.equal(fast.top1, full.top1)
    assert (full.logprob[1] - full.logprob[0]).abs().max() > 1e-2


def test_chunked_passes_give_the_same_scores(tiny_lm, prompts, monkeypatch):
    """One prompt per chunk and one group per pass (per-prompt values follow their chunk;
    passes that start at the same layer reuse a cache cropped back to the prefix; a chunk
    holding only a one-token prompt has no prefix to cache)."""
    arch = tiny_lm.arch
    texts = [prompts.corrupted[0], RAGGED[1], RAGGED[2]]
    enc = encode(tiny_lm, texts)
    targets = first_token_ids(tiny_lm, [prompts.targets[0], RAGGED_TARGETS[1], RAGGED_TARGETS[2]])
    g = torch.Generator().manual_seed(5)
    n = len(enc)
    groups = [
        [],
        [Edit(0, "resid", torch.randn(arch.d_model, generator=g), add=True)],
        [Edit(1, "head", torch.randn(n, arch.d_head, generator=g), head=2)],  # per-prompt values
        [Edit(1, "resid", torch.randn(arch.d_model, generator=g), add=True)],  # same start layer
        [Edit(2, "resid", torch.randn(n, arch.d_model, generator=g), add=True)],
    ]
    default = last_token_scores(tiny_lm, enc, targets, groups)
    monkeypatch.setattr(inference, "CACHE_BYTES", 1)
    monkeypatch.setattr(patching, "LOGIT_BUDGET", 1)
    assert inference.prompt_chunk_size(tiny_lm, enc) == 1
    for use_cache in (True, False):
        chunked = last_token_scores(tiny_lm, enc, targets, groups, use_cache=use_cache)
        torch.testing.assert_close(chunked.logprob, default.logprob, atol=1e-4, rtol=0)
        assert torch.equal(chunked.top1, default.top1)
    assert (default.logprob[1:] - default.logprob[:1]).abs().amax(1).min() > 1e-3


def test_engine_leaves_the_model_unmodified(tiny_lm, prompts):
    enc = encode(tiny_lm, prompts.clean)
    before = run_forward(tiny_lm, enc).logits
    last_token_scores(tiny_lm, enc, first_token_ids(tiny_lm, prompts.targets), _random_groups(tiny_lm, 4))
    assert torch.equal(run_forward(tiny_lm, enc).logits, before)


def test_cancelled_patching_leaves_the_model_unmodified(tiny_lm, prompts, stats):
    """The app's Cancel raises core.errors.Cancelled from a progress report between passes."""
    from core.errors import Cancelled

    enc = encode(tiny_lm, prompts.clean)
    before = run_forward(tiny_lm, enc).logits
    full = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric="logprob")
    cancel = CancelAt(2)  # the second pass
    with pytest.raises(Cancelled):
        indirect_effects(tiny_lm, prompts, stats.mean_heads, metric="logprob", progress=cancel)
    assert len(cancel.reports) == 2  # stopped where asked, not at the end
    assert torch.equal(run_forward(tiny_lm, enc).logits, before)
    again = indirect_effects(tiny_lm, prompts, stats.mean_heads, metric="logprob")
    torch.testing.assert_close(again.per_prompt, full.per_prompt, atol=1e-6, rtol=0)


def test_bad_edits_are_rejected(tiny_lm, prompts):
    from core.errors import UserInputError

    enc = encode(tiny_lm, prompts.clean[:1])
    targets = first_token_ids(tiny_lm, prompts.targets[:1])
    n_layers, n_heads = tiny_lm.arch.n_layers, tiny_lm.arch.n_heads
    with pytest.raises(UserInputError, match=f"Layer {n_layers} is out of range"):
        last_token_scores(tiny_lm, enc, targets, [[Edit(n_layers, "resid", torch.zeros(64))]])
    with pytest.raises(UserInputError, match=f"Head 0.{n_heads} is out of range"):
        last_token_scores(tiny_lm, enc, targets, [[Edit(0, "head", torch.zeros(16), head=n_heads)]])


# --- function vectors ----------------------------------------------------------------------


def test_function_vector_is_the_sum_of_head_outputs(tiny_lm, stats):
    """Independently: run the out-projection module on each head's mean slice, zero elsewhere
    (that is the head's write plus the bias), and sum over the chosen heads."""
    arch, hf = tiny_lm.arch, tiny_lm.hf
    heads = [(0, 1), (2, 3), (1, 0), (2, 0)]
    expected = torch.zeros(arch.d_model)
    with torch.no_grad():
        for l, h in heads:
            z = torch.zeros(arch.n_heads * arch.d_head)
            z[h * arch.d_head : (h + 1) * arch.d_head] = stats.mean_heads[l, h]
            expected += arch.out_proj(hf, l)(z)
    values = function_vector_values(tiny_lm, stats.mean_heads, heads)
    assert values.shape == (arch.d_model,)
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=0)
    # a head listed twice counts once
    torch.testing.assert_close(
        function_vector_values(tiny_lm, stats.mean_heads, heads + heads[:2]), expected, atol=1e-5, rtol=0
    )


def test_check_heads_rejects_out_of_range(tiny_lm):
    from core.errors import UserInputError

    assert check_heads(tiny_lm, [(1, 2), (1, 2), (0, 0)]) == [(1, 2), (0, 0)]
    with pytest.raises(UserInputError, match="No heads"):
        check_heads(tiny_lm, [])
    with pytest.raises(UserInputError, match="Head 3.0 is out of range"):
        check_heads(tiny_lm, [(3, 0)])
    with pytest.raises(UserInputError, match="Head 0.4 is out of range"):
        check_heads(tiny_lm, [(0, 4)])


def test_decode_is_the_final_norm_then_the_unembedding(tiny_lm, stats):
    """core.fv.decode_vector (a traced forward with the final-norm input replaced) against calling the
    two modules directly; a [n_pos, d_model] vector decodes as its mean."""
    from core.fv import decode_vector as decode

    arch, hf = tiny_lm.arch, tiny_lm.hf
    v = function_vector_values(tiny_lm, stats.mean_heads, [(1, 2), (2, 0)])
    with torch.no_grad():
        logits = arch.unembed(hf)(arch.final_norm(hf)(v[None, None]))[0, 0]
    vals, ids = logits.topk(8)
    got = decode(tiny_lm, v, 8)
    assert [t for t, _ in got] == [tiny_lm.tokenizer.decode([int(i)]) for i in ids]
    torch.testing.assert_close(torch.tensor([x for _, x in got]), vals, atol=1e-4, rtol=0)
    two = torch.stack([v + 1.0, v - 1.0])
    mean_of_two, direct = decode(tiny_lm, two, 8), decode(tiny_lm, v, 8)
    assert [t for t, _ in mean_of_two] == [t for t, _ in direct]
    torch.testing.assert_close(
        torch.tensor([x for _, x in mean_of_two]), torch.tensor([x for _, x in direct]), atol=1e-4, rtol=0
    )
    from core.errors import UserInputError

    with pytest.raises(UserInputError, match="width"):
        decode(tiny_lm, torch.zeros(arch.d_model + 1), 3)


def test_auto_layer_breaks_accuracy_ties_by_log_probability(tiny_llama):
    """The layer is the one that raises the answers' mean log-probability most among the
    layers whose accuracy is inside the best layer's 95% Wilson interval. A random model gets
    (nearly) every query wrong at every layer: then every layer is tied and the log-probability
    decides, not simply layer 0."""
    from core import fv

    task = validate("toy", [(f"w{i}", f"v{i}") for i in range(60)])
    settings = PromptSettings(n_shots=3, n_prompts=6)
    wb = fv.build_workbench(tiny_llama, task, settings)
    heads = [(1, 0), (2, 3)]
    report = fv.evaluate(tiny_llama, wb, heads, layer="auto", n_eval=12, coeff=4.0)
    # the same sweep, scored independently, on the layer-choice queries: every valid and train
    # query (fewer than fv.MIN_LAYER_QUERIES here), never a test query
    splits = split_task(task, settings.seed)
    valid = build_prompts(splits.valid + splits.train, splits.train, settings, n_prompts=36)
    assert len(splits.valid + splits.train) == 36 and report.n_valid == 36
    assert not {q.input for q in valid.queries} & {p.input for p in splits.test}
    vec = function_vector_values(tiny_llama, wb.stats.mean_heads, heads) * 4.0
    tgt = first_token_ids(tiny_llama, valid.targets)
    groups = [[Edit(l, "resid", vec, add=True)] for l in range(tiny_llama.arch.n_layers)]
    scores = last_token_scores(tiny_llama, encode(tiny_llama, valid.zero_shot), tgt, groups)
    acc = (scores.top1 == tgt[None]).float().mean(1)
    logprob = scores.logprob.mean(1)
    assert report.valid_by_layer == pytest.approx(acc.tolist())
    n = len(valid)
    low = wilson_interval(round(float(acc.max()) * n), n)[0]
    tied = acc >= low - 1e-9
    assert tied.sum() > 1  # the case this is about: the log-probability decides among tied layers
    assert float(logprob[report.layer]) == float(logprob[tied].max()) and tied[report.layer]
    # the report keeps the vector it evaluated (coefficient 1), for saving without a new trace
    torch.testing.assert_close(
        report.vector.values, function_vector_values(tiny_llama, wb.stats.mean_heads, heads), atol=0, rtol=0
    )
    assert (report.vector.layer, report.vector.method) == (report.layer, "function_vector")
    assert report.vector.provenance["heads"] == [list(h) for h in heads] and report.vector.provenance["task"] == "toy"
    assert "vector" not in report.to_json()
    # the h-vector sweep alone gives the report's h-vector numbers (the same held-out queries)
    hv = fv.hvector_sweep(tiny_llama, wb, n_eval=12)
    assert list(hv.by_layer) == report.hvector_by_layer and len(hv.by_layer) == tiny_llama.arch.n_layers
    assert (hv.zero_shot_baseline, hv.icl_accuracy) == (report.zero_shot_baseline, report.icl_accuracy)
    assert (hv.n_eval, hv.overlap) == (report.n_eval, report.overlap)
    assert hv.best_layer == report.hvector_best_layer and hv.by_layer[hv.best_layer] == report.hvector_best_accuracy


def test_top_heads_are_layer_head_pairs_largest_first():
    from core.attribution import Attribution

    cie = torch.zeros(3, 4)
    cie[2, 1], cie[0, 3], cie[1, 0] = 0.9, 0.5, 0.7
    at = Attribution(
        cie=cie, per_prompt=cie[..., None], baseline=torch.zeros(1), metric="prob", method="fast", seconds=0.0
    )
    assert at.top_heads(3) == [(2, 1), (1, 0), (0, 3)]


def test_top_heads_put_heads_not_measured_last():
    """An attribution over some layers leaves the other heads NaN: never among the top heads."""
    from core.results import top_heads

    cie = torch.full((3, 2), float("nan"))
    cie[1] = torch.tensor([-0.2, 0.1])  # only layer 1 measured, one effect negative
    assert top_heads(cie, 2) == [(1, 1), (1, 0)]
