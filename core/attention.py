"""Attention patterns of one layer, for circuitsvis.

The shared model runs with SDPA, which returns no attention weights; switching the whole
model to eager attention slows everything, so it is switched only for this one pass (under
the model lock) and switched back.
"""

from __future__ import annotations

import torch

from core.errors import UserInputError
from core.inference import _forward_kwargs
from core.models import LoadedModel


def attention_pattern(lm: LoadedModel, prompt: str, layer: int) -> tuple[list[str], torch.Tensor]:
    """Token labels and the pattern ``[n_heads, pos, pos]`` of ``layer`` on one prompt."""
    if not 0 <= layer < lm.arch.n_layers:
        raise UserInputError(f"Layer {layer} is out of range (0..{lm.arch.n_layers - 1}).")
    lm.require_local("Attention patterns")
    enc = lm.tokenizer(prompt, return_tensors="pt")
    ids = enc["input_ids"].to(lm.device)
    with lm.locked(), torch.no_grad():
        previous = lm.hf.config._attn_implementation
        lm.hf.set_attn_implementation("eager")
        try:
            out = lm.hf(input_ids=ids, output_attentions=True, **_forward_kwargs(lm))
        finally:
            lm.hf.set_attn_implementation(previous)
    pattern = out.attentions[layer][0].float().cpu()  # [n_heads, pos, pos]
    labels = [lm.tokenizer.decode([int(i)]) for i in ids[0]]
    return labels, pattern
