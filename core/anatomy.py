"""One prompt through the model, as the first step of the lesson reads it with nnsight.

A single ``trace`` reads, in execution order, the residual stream one block writes
(``[batch, pos, d_model]``), the input of that block's attention out-projection
(``[batch, pos, n_heads * d_head]``: the heads' outputs side by side, which is why one head
is a slice ``[..., h * d_head:(h + 1) * d_head]`` of it), and the logits at the last position.
The shapes are the ones the trace really saw, so they hold for every supported family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core import checks
from core.arch import Arch
from core.inference import encode, top_tokens
from core.models import LoadedModel


@dataclass(frozen=True)
class Anatomy:
    """What one traced forward of ``prompt`` shows."""

    prompt: str
    layer: int
    tokens: list[tuple[int, str]]  # (id, decoded text) of each token
    top: list[tuple[str, int, float]]  # next-token (text, id, probability), most likely first
    shapes: dict[str, tuple[int, ...]]  # name of the activation -> its shape in the trace


def anatomy(lm: LoadedModel, prompt: str, layer: int, k: int = 10) -> Anatomy:
    """Tokens, next-token top-``k`` and the activation shapes of ``prompt`` at block ``layer``."""
    prompt = checks.check_text(prompt, "prompt")
    layer = checks.check_layer(layer, lm.arch.n_layers)
    arch = lm.arch
    enc = encode(lm, [prompt])
    with lm.locked(), torch.no_grad():
        with lm.trace(**enc.as_inputs()):
            z = arch.out_proj(lm.nn, layer).input.save()  # [1, pos, n_heads * d_head]
            h = arch.block_output(lm.nn, layer).save()  # [1, pos, d_model]
            logits = arch.unembed(lm.nn).output[:, -1].save()  # [1, d_vocab]
    n_pos = int(z.shape[1])
    shapes = {
        f"hidden state (block {layer} output)": tuple(h.shape),
        f"attention out-projection input (layer {layer})": tuple(z.shape),
        "the same, split per head": (int(z.shape[0]), n_pos, arch.n_heads, int(z.shape[-1]) // arch.n_heads),
        "logits at the last position": tuple(logits.shape),
    }
    ids = enc.input_ids[0][enc.attention_mask[0].bool()].tolist()
    return Anatomy(
        prompt=prompt,
        layer=layer,
        tokens=[(int(i), lm.tokenizer.decode([int(i)])) for i in ids],
        top=top_tokens(lm, logits.float().cpu(), k)[0],
        shapes=shapes,
    )


def trace_code(arch: Arch, layer: int) -> str:
    """The few nnsight lines that read what :func:`anatomy` shows, with this architecture's
    module paths (a listing to read beside the table; the runnable script is
    :func:`core.scripts.predict.next_token_script`)."""
    return (
        "with model.trace(prompt):\n"
        f"    z = model.{arch.blocks_path}[{layer}].{arch.out_proj_path}.input.save()"
        "  # [batch, pos, n_heads * d_head]\n"
        f"    h = model.{arch.blocks_path}[{layer}].output.save()  # [batch, pos, d_model]\n"
        f"    logits = model.{arch.unembed_path}.output[:, -1].save()  # [batch, d_vocab]\n"
        "z_heads = z.reshape(*z.shape[:-1], n_heads, d_head)  # [batch, pos, n_heads, d_head]"
    )
