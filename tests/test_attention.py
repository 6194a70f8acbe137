"""Attention patterns (core.attention): equal to Hugging Face's eager attentions, one layer at a
time (the layers after the chosen one never run), and the shared model left as it was."""

from __future__ import annotations

import pytest
import torch

from core.attention import attention_pattern

PROMPT = "The Eiffel Tower is in the city of"


@pytest.mark.usefixtures("single_thread")
def test_pattern_of_one_layer_equals_eager_attentions(tiny_lm):
    lm = tiny_lm
    layer = 1
    ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    previous = lm.hf.config._attn_implementation
    lm.hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            reference = lm.hf(input_ids=ids, output_attentions=True).attentions[layer][0]  # [n_heads, pos, pos]
    finally:
        lm.hf.set_attn_implementation(previous)

    ran: list[int] = []
    hooks = [
        lm.arch.attention(lm.hf, l).register_forward_pre_hook(lambda m, args, l=l: ran.append(l))
        for l in range(lm.arch.n_layers)
    ]
    try:
        labels, pattern = attention_pattern(lm, PROMPT, layer)
    finally:
        for h in hooks:
            h.remove()
    torch.testing.assert_close(pattern, reference.float(), atol=1e-5, rtol=0)
    assert pattern.shape == (lm.arch.n_heads, ids.shape[1], ids.shape[1])
    assert len(labels) == ids.shape[1]
    assert ran == list(range(layer + 1))  # nothing after the chosen layer ran
    assert lm.hf.config._attn_implementation == previous
