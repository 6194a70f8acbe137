"""core.arch: shapes of every family, and the per-head split of the out-projection."""

from __future__ import annotations

import pytest
import torch
from conftest import D_MODEL, D_VOCAB, N_HEADS, N_LAYERS

from core import arch as A
from core.errors import ModelLoadError
from core.inference import encode

pytestmark = pytest.mark.usefixtures("single_thread")

EXPECTED = {
    # family: (n_kv_heads, out_proj_bias, out_proj_is_conv1d, block_returns_tuple)
    "llama": (2, False, False, False),
    "gpt2": (N_HEADS, True, True, False),
    "gptj": (N_HEADS, False, False, True),
    "gpt_neox": (N_HEADS, True, False, False),
}

PROMPTS = ["Q: hot\nA: cold\n\nQ: big\nA:", "Q: up\nA:", "The capital of France is"]


def test_arch_description(tiny_lm):
    arch = tiny_lm.arch
    n_kv, bias, conv1d, returns_tuple = EXPECTED[arch.family]
    assert tiny_lm.model_id == f"tiny-{arch.family}"
    assert (arch.n_layers, arch.n_heads, arch.n_kv_heads) == (N_LAYERS, N_HEADS, n_kv)
    assert (arch.d_model, arch.d_head, arch.d_vocab) == (D_MODEL, D_MODEL // N_HEADS, D_VOCAB)
    assert arch.has_out_proj_bias is bias
    assert arch.out_proj_is_conv1d is conv1d
    assert arch.block_returns_tuple is returns_tuple
    assert arch.info()["family"] == arch.family


def test_paths_resolve_on_the_hf_model(tiny_lm):
    arch, hf = tiny_lm.arch, tiny_lm.hf
    assert len(arch.blocks(hf)) == N_LAYERS
    assert arch.unembed(hf) is hf.get_output_embeddings()
    assert arch.out_proj_weight(hf, 0).shape == (arch.d_model, arch.n_heads * arch.d_head)
    bias = arch.out_proj_bias(hf, 0)
    assert (bias is not None) == arch.has_out_proj_bias
    if bias is not None:
        assert bias.shape == (arch.d_model,)
    norm = arch.final_norm(hf)  # a LayerNorm or RMSNorm over d_model
    assert isinstance(norm, torch.nn.Module) and norm.weight.shape == (arch.d_model,)


def test_head_split_sums_to_out_projection(tiny_lm):
    """Sum over heads of W_O[:, head] @ z_head, plus the bias, is the out-projection output."""
    arch = tiny_lm.arch
    enc = encode(tiny_lm, PROMPTS)
    inputs, outputs = [], []
    with torch.no_grad(), tiny_lm.trace(**enc.as_inputs()):
        for layer in range(arch.n_layers):
            proj = arch.out_proj(tiny_lm.nn, layer)
            inputs.append(proj.input.save())  # [batch, pos, n_heads * d_head]
            outputs.append(proj.output.save())  # [batch, pos, d_model]
    for layer in range(arch.n_layers):
        z, out = inputs[layer], outputs[layer]
        batch, pos = enc.input_ids.shape
        assert z.shape == (batch, pos, arch.n_heads * arch.d_head)
        assert out.shape == (batch, pos, arch.d_model)
        total = torch.zeros_like(out)
        per_head = []
        for h in range(arch.n_heads):
            zh = z[..., h * arch.d_head : (h + 1) * arch.d_head]
            contrib = arch.head_contribution(tiny_lm.hf, layer, h, zh)
            per_head.append(contrib)
            total += contrib
        bias = arch.out_proj_bias(tiny_lm.hf, layer)
        if bias is not None:
            total += bias
        torch.testing.assert_close(total, out, atol=1e-5, rtol=0)
        # each head writes something different (a slicing bug that repeats one head fails)
        assert (per_head[0] - per_head[1]).abs().max() > 1e-2


def test_head_contribution_matches_the_module(tiny_lm):
    """Feeding the out-projection a vector that is zero outside one head's slice gives that
    head's contribution plus the bias: an independent check of the weight layout."""
    arch, hf = tiny_lm.arch, tiny_lm.hf
    torch.manual_seed(1)
    for layer in range(arch.n_layers):
        module = arch.out_proj(hf, layer)
        bias = arch.out_proj_bias(hf, layer)
        for h in range(arch.n_heads):
            zh = torch.randn(5, arch.d_head)
            full = torch.zeros(5, arch.n_heads * arch.d_head)
            full[:, h * arch.d_head : (h + 1) * arch.d_head] = zh
            with torch.no_grad():
                expected = module(full)
                got = arch.head_contribution(hf, layer, h, zh)
            if bias is not None:
                got = got + bias
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_unsupported_architecture_is_a_clear_error():
    class Cfg:
        model_type = "bert"

    class Fake(torch.nn.Module):
        config = Cfg()

    with pytest.raises(ModelLoadError, match="Unsupported architecture 'bert'.*llama"):
        A.detect(Fake())
