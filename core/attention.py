"""Attention patterns of one layer, for circuitsvis.

The shared model runs with SDPA, which returns no attention weights; switching the whole
model to eager attention slows everything, so it is switched only for this one pass (in the
model's turn) and switched back. Only the chosen layer's pattern is saved, and the forward
stops right after that layer: memory for one layer's pattern (``n_heads x pos x pos``), not
for every layer's, and no work after it.
"""

from __future__ import annotations

import torch

from core.checks import check_layer
from core.models import LoadedModel


def attention_pattern(lm: LoadedModel, prompt: str, layer: int) -> tuple[list[str], torch.Tensor]:
    """Token labels and the pattern ``[n_heads, pos, pos]`` of ``layer`` on one prompt."""
    layer = check_layer(layer, lm.arch.n_layers)
    lm.require_local("Attention patterns")
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.device)  # [1, pos]
    with lm.locked(), torch.no_grad():
        previous = lm.hf.config._attn_implementation
        lm.hf.set_attn_implementation("eager")
        try:
            with lm.trace(input_ids=ids, attention_mask=torch.ones_like(ids)) as tracer:
                pattern = lm.arch.attention(lm.nn, layer).output[1][0].save()  # [n_heads, pos, pos]
                tracer.stop()  # the layers after this one are not needed
        finally:
            lm.hf.set_attn_implementation(previous)
    labels = [lm.tokenizer.decode([int(i)]) for i in ids[0]]
    return labels, pattern.float().cpu()
