"""Induction scores and mean-ablation curves (core.induction) on tiny models.

The score must equal an independent computation from Hugging Face's eager ``attentions`` (every
family), and must find a planted induction head and ignore a planted duplicate-token head
(off by one position). The ablation curves must equal a plain PyTorch-hook reference: one
whole forward per ablated set, the heads' last-token slices overwritten by their clean means.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config

from core.attribution import clean_stats
from core.cli import main
from core.induction import (
    FV_HEADS,
    INDUCTION_HEADS,
    ablation_curves,
    induction_scores,
    repeated_random_tokens,
    spearman,
)
from core.inference import first_token_ids
from core.models import wrap_model
from core.prompts import PromptSettings, icl_prompts
from core.tasks import load_builtin

pytestmark = pytest.mark.usefixtures("single_thread")
SEQ_LEN = 12


def _eager_attentions(lm, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every layer's pattern ``[batch, n_heads, pos, pos]`` from Hugging Face itself."""
    previous = lm.hf.config._attn_implementation
    lm.hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return lm.hf(input_ids=ids, output_attentions=True).attentions
    finally:
        lm.hf.set_attn_implementation(previous)


def _reference_scores(lm, ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``[n_layers, n_heads]``, written out position by position: query ``start + j`` (the
    j-th token of the second copy) to key ``offset + j + 1`` (the token after its first copy)."""
    attentions = _eager_attentions(lm, ids)
    offset = ids.shape[1] - 2 * seq_len  # 1 with a BOS token
    out = torch.zeros(lm.arch.n_layers, lm.arch.n_heads)
    for layer, pattern in enumerate(attentions):
        for j in range(seq_len):
            query, key = offset + seq_len + j, offset + j + 1
            assert torch.equal(ids[:, query], ids[:, key - 1])  # the same token, one copy earlier
            out[layer] += pattern[:, :, query, key].mean(0) / seq_len
    return out


def test_sequences_are_repeated_distinct_and_seeded(tiny_llama):
    ids = repeated_random_tokens(tiny_llama, n_seqs=3, seq_len=SEQ_LEN, seed=5)
    bos = tiny_llama.tokenizer.bos_token_id
    assert ids.shape == (3, 1 + 2 * SEQ_LEN) and bool((ids[:, 0] == bos).all())
    first, second = ids[:, 1 : 1 + SEQ_LEN], ids[:, 1 + SEQ_LEN :]
    assert torch.equal(first, second)
    assert all(len(set(row.tolist())) == SEQ_LEN for row in first)  # one earlier occurrence each
    assert not set(first.flatten().tolist()) & set(tiny_llama.tokenizer.all_special_ids)
    assert torch.equal(ids, repeated_random_tokens(tiny_llama, 3, SEQ_LEN, seed=5))
    assert not torch.equal(ids, repeated_random_tokens(tiny_llama, 3, SEQ_LEN, seed=6))


def test_scores_equal_eager_attentions(tiny_lm):
    lm = tiny_lm
    previous = lm.hf.config._attn_implementation
    result = induction_scores(lm, n_seqs=3, seq_len=SEQ_LEN, seed=1)
    reference = _reference_scores(lm, repeated_random_tokens(lm, 3, SEQ_LEN, seed=1), SEQ_LEN)
    assert result.scores.shape == (lm.arch.n_layers, lm.arch.n_heads)
    torch.testing.assert_close(result.scores, reference, atol=1e-5, rtol=0)
    assert lm.hf.config._attn_implementation == previous  # switched back


@pytest.fixture(scope="module")
def planted(tokenizer):
    """A tiny Llama whose layer-1 head 0 is an induction head and head 2 a duplicate-token head.

    With zero query/key weights and a bias, a head's query and key are the same vectors at every
    position, so with rotary embeddings its score depends on the distance ``d = query - key``
    only: ``sum_c A cos((d - d0) theta_c)``, largest at ``d = d0``. ``d0 = SEQ_LEN - 1`` is the
    induction offset (the token after the earlier occurrence); ``d0 = SEQ_LEN`` is the earlier
    occurrence itself, one position off.
    """
    config = tiny_config("llama")
    config.attention_bias = True
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    attn = hf.model.layers[1].self_attn
    d = config.hidden_size // config.num_attention_heads  # 16
    theta = hf.model.rotary_emb.inv_freq  # [d / 2]
    group = config.num_attention_heads // config.num_key_value_heads  # query heads per kv head
    with torch.no_grad():
        for head, d0 in ((0, SEQ_LEN - 1), (2, SEQ_LEN)):
            q, k = slice(head * d, (head + 1) * d), slice((head // group) * d, (head // group + 1) * d)
            attn.q_proj.weight[q] = 0
            attn.k_proj.weight[k] = 0
            # rotary pairs are (c, c + d/2): key (1, 0) per pair, query rotated back by d0 theta_c
            attn.k_proj.bias[k] = torch.cat([torch.ones(d // 2), torch.zeros(d // 2)])
            attn.q_proj.bias[q] = 400 * torch.cat([torch.cos(d0 * theta), -torch.sin(d0 * theta)])
    return wrap_model(hf, tokenizer, model_id="tiny-planted")


def test_planted_induction_head_is_found(planted):
    result = induction_scores(planted, n_seqs=4, seq_len=SEQ_LEN, seed=0)
    assert result.top_heads(1) == [(1, 0)], result.scores
    assert result.scores[1, 0] > 0.99
    assert result.scores[1, 2] < 0.01  # attends one token too early: no induction
    others = result.scores.clone()
    others[1, 0] = 0
    assert others.max() < 0.5
    # the score counts the stripe of this length only
    assert induction_scores(planted, n_seqs=4, seq_len=SEQ_LEN + 3, seed=0).scores[1, 0] < 0.01


def test_spearman():
    a = torch.tensor([0.1, 0.5, 0.3, 0.9])
    assert spearman(a, a * 10 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, torch.tensor([1.0, 2.0, 4.0, 3.0])) == pytest.approx(0.4)  # 1 - 6 * 6 / (4 * 15)


SETTINGS = PromptSettings(n_shots=3, n_prompts=4, seed=0)


def _hooked_scores(lm, prompts, mean_heads, heads) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: one whole forward with ``heads`` mean-ablated at the last position by plain
    forward pre-hooks on the out-projections: ``(answer log-prob [n], top-1 [n])``."""
    arch, d = lm.arch, lm.arch.d_head
    enc = lm.tokenizer(list(prompts.clean), return_tensors="pt", padding=True)  # left padding
    hooks = []
    for layer in sorted({l for l, _ in heads}):

        def pre(module, args, layer=layer):
            z = args[0].clone()  # [batch, pos, n_heads * d_head]
            for l, h in heads:
                if l == layer:
                    z[:, -1, h * d : (h + 1) * d] = mean_heads[l, h]
            return (z,)

        hooks.append(arch.out_proj(lm.hf, layer).register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            logits = lm.hf(**enc).logits[:, -1].float()  # [n, d_vocab]
    finally:
        for hook in hooks:
            hook.remove()
    targets = first_token_ids(lm, prompts.targets)
    return logits.log_softmax(-1)[torch.arange(len(targets)), targets], logits.argmax(-1)


def test_ablation_curves_equal_plain_hooks(tiny_lm):
    lm = tiny_lm
    task = load_builtin("antonym")
    mean_heads = clean_stats(lm, icl_prompts(task, SETTINGS)).mean_heads
    prompts = icl_prompts(task, SETTINGS, split="test", n_prompts=5)
    orders = {FV_HEADS: [(2, 1), (0, 3), (1, 0), (2, 2)], INDUCTION_HEADS: [(0, 0), (2, 3), (1, 2), (0, 1)]}
    curves = ablation_curves(lm, prompts, mean_heads, orders, n_max=3)
    assert curves.n == [0, 1, 2, 3] and curves.n_prompts == 5
    for name, order in orders.items():
        assert curves.orders[name] == order[:3]
        for n in range(4):
            logprob, top1 = _hooked_scores(lm, prompts, mean_heads, order[:n])
            torch.testing.assert_close(curves.logprob[name][n], logprob, atol=1e-4, rtol=0)
            assert torch.equal(curves.correct[name][n], top1 == first_token_ids(lm, prompts.targets))
        assert [a.n_correct for a in curves.accuracy(name)] == curves.correct[name].sum(-1).tolist()
    # n = 0 is the same unedited run for both orders; ablating changes the answers' scores
    assert torch.equal(curves.logprob[FV_HEADS][0], curves.logprob[INDUCTION_HEADS][0])
    assert (curves.logprob[FV_HEADS][3] - curves.logprob[FV_HEADS][0]).abs().max() > 1e-2


# --- the CLI: a tiny random model saved to a folder ------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tiny_llama_folder):
    return tiny_llama_folder


def test_cli_heads(tiny_folder, tmp_path, capsys):
    out = tmp_path / "heads.json"
    argv = ["heads", "--model", str(tiny_folder), "--task", "antonym", "--n-shots", "2", "--n-prompts", "4"]
    rc = main([*argv, "--n-eval", "6", "--n-max", "3", "--out", str(out)])
    _, err = capsys.readouterr()
    assert rc == 0, err[-2000:]
    report = json.loads(out.read_text())
    for key in ("induction", "cie", "ablation", "top_fv_heads", "top_induction_heads", "rank_correlation"):
        assert key in report
    assert torch.tensor(report["induction"]).shape == torch.tensor(report["cie"]).shape == (3, 4)
    ablation = report["ablation"]
    assert ablation["n"] == [0, 1, 2, 3] and ablation["n_prompts"] == 6
    for name in (FV_HEADS, INDUCTION_HEADS):
        assert len(ablation[name]) == len(ablation[f"{name}_ci"]) == 4
        assert all(
            ci["n"] == 6 and ci["low"] - 1e-9 <= v <= ci["high"] + 1e-9
            for v, ci in zip(ablation[name], ablation[f"{name}_ci"])
        )
    assert ablation[FV_HEADS][0] == ablation[INDUCTION_HEADS][0]  # nothing ablated
    # the orders follow the two scores
    cie, induction = torch.tensor(report["cie"]), torch.tensor(report["induction"])
    assert [float(cie[l, h]) for l, h in ablation[f"{FV_HEADS}_order"]] == sorted(cie.flatten().tolist(), reverse=True)[
        :3
    ]
    assert [float(induction[l, h]) for l, h in ablation[f"{INDUCTION_HEADS}_order"]] == sorted(
        induction.flatten().tolist(), reverse=True
    )[:3]
    # bad input: one line, exit 2
    assert main([*argv, "--n-max", "13"]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and "from 1 to 12" in err


@pytest.mark.slow
def test_default_model_has_induction_heads():
    """SmolLM2-135M has induction heads (Olsson et al. 2022 find them in every model past one layer)."""
    from core.models import load_model

    lm = load_model()
    result = induction_scores(lm)  # 4 sequences of 2 x 25 random tokens
    assert result.scores.shape == (30, 9)
    assert result.scores.max() > 0.3, result.top_heads(5)
