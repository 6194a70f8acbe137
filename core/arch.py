"""Where things live in each supported architecture family.

This is the only module that names model attributes such as ``model.layers`` or
``transformer.h``. Everything else asks it for the decoder blocks, the attention
out-projection (whose *input* is the concatenation of the per-head outputs,
``[batch, pos, n_heads * d_head]``), the final norm and the unembedding.

Families: Llama/Mistral/Qwen2 (the default SmolLM2 is a Llama), GPT-2, GPT-J, GPT-NeoX/Pythia.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.errors import ModelLoadError


@dataclass(frozen=True)
class Arch:
    family: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    has_out_proj_bias: bool
    blocks_path: str  # from the root module to the list of decoder blocks
    out_proj_path: str  # from one block to the attention out-projection
    norm_path: str  # from the root to the final norm
    unembed_path: str  # from the root to the unembedding
    out_proj_is_conv1d: bool  # GPT-2's Conv1D stores its weight as [in, out]
    block_returns_tuple: bool = False  # GPT-J's block returns (hidden, attn_weights)

    def info(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "d_vocab": self.d_vocab,
            "out_proj_bias": self.has_out_proj_bias,
        }

    # --- where things are (``root``: the Hugging Face model or its nnsight wrapper) ---------

    def blocks(self, root: Any) -> Any:
        """The decoder blocks; a block's output is the residual stream ``[batch, pos, d_model]``."""
        return get_path(root, self.blocks_path)

    def resid(self, block_output: Any) -> Any:
        """The residual stream ``[batch, pos, d_model]`` from a block's output."""
        return block_output[0] if self.block_returns_tuple else block_output

    def block_output(self, root: Any, layer: int) -> Any:
        """The residual stream ``[batch, pos, d_model]`` that block ``layer`` writes."""
        return self.resid(self.blocks(root)[layer].output)

    def as_block_output(self, hidden: torch.Tensor) -> Any:
        """What a block returns when its output is ``hidden`` (for skipping a block)."""
        return (hidden, None) if self.block_returns_tuple else hidden

    def out_proj(self, root: Any, layer: int) -> Any:
        """Attention out-projection of ``layer``; its input is ``[batch, pos, n_heads * d_head]``."""
        return get_path(self.blocks(root)[layer], self.out_proj_path)

    def attention(self, root: Any, layer: int) -> Any:
        """The attention module of ``layer`` (the out-projection's parent). With eager attention
        its output is ``(attn_output, pattern [batch, n_heads, pos, pos])``."""
        return get_path(self.blocks(root)[layer], self.out_proj_path.rsplit(".", 1)[0])

    def final_norm(self, root: Any) -> Any:
        """The norm before the unembedding; its input is the final residual ``[batch, pos, d_model]``."""
        return get_path(root, self.norm_path)

    def unembed(self, root: Any) -> Any:
        """The unembedding; its output is the logits ``[batch, pos, d_vocab]``."""
        return get_path(root, self.unembed_path)

    # --- weights (a local Hugging Face model) ----------------------------------------------------

    def out_proj_weight(self, hf_model: torch.nn.Module, layer: int) -> torch.Tensor:
        """The out-projection weight as ``[d_model, n_heads * d_head]`` (Linear convention)."""
        weight = self.out_proj(hf_model, layer).weight
        return weight.T if self.out_proj_is_conv1d else weight

    def out_proj_bias(self, hf_model: torch.nn.Module, layer: int) -> torch.Tensor | None:
        return getattr(self.out_proj(hf_model, layer), "bias", None)

    def head_contribution(self, hf_model: torch.nn.Module, layer: int, head: int, z: torch.Tensor) -> torch.Tensor:
        """A head's write to the residual stream: ``z [..., d_head] -> [..., d_model]``.

        The out-projection is linear, so the sum of every head's contribution plus the bias
        equals the out-projection's output.
        """
        weight = self.out_proj_weight(hf_model, layer)  # [d_model, n_heads * d_head]
        cols = weight[:, head * self.d_head : (head + 1) * self.d_head]  # [d_model, d_head]
        return z.to(cols.dtype) @ cols.T


# model_type -> (family, blocks, out_proj, norm, unembed, conv1d)
_LAYOUTS: dict[str, tuple[str, str, str, str, str, bool]] = {
    "llama": ("llama", "model.layers", "self_attn.o_proj", "model.norm", "lm_head", False),
    "gpt2": ("gpt2", "transformer.h", "attn.c_proj", "transformer.ln_f", "lm_head", True),
    "gptj": ("gptj", "transformer.h", "attn.out_proj", "transformer.ln_f", "lm_head", False),
    "gpt_neox": (
        "gpt_neox",
        "gpt_neox.layers",
        "attention.dense",
        "gpt_neox.final_layer_norm",
        "lm_head",  # transformers 5 renamed GPT-NeoX's `embed_out` to `lm_head`
        False,
    ),
}
# Llama-shaped model types (same attribute names)
for _alias in ("mistral", "qwen2", "qwen3", "mixtral", "olmo", "olmo2", "smollm3"):
    _LAYOUTS[_alias] = ("llama",) + _LAYOUTS["llama"][1:]

SUPPORTED_MODEL_TYPES = tuple(sorted(_LAYOUTS))


def model_type_layouts() -> dict[str, dict[str, Any]]:
    """Where every supported model type keeps its modules, as plain data (a fresh copy):
    ``model_type -> {"family", "blocks", "out_proj", "norm", "unembed", "out_proj_is_conv1d",
    "block_returns_tuple"}``, the attribute paths as in :class:`Arch`. For code that cannot
    import this module, such as an exported script."""
    return {
        model_type: {
            "family": family,
            "blocks": blocks_path,
            "out_proj": out_proj_path,
            "norm": norm_path,
            "unembed": unembed_path,
            "out_proj_is_conv1d": conv1d,
            "block_returns_tuple": family == "gptj",
        }
        for model_type, (family, blocks_path, out_proj_path, norm_path, unembed_path, conv1d) in sorted(
            _LAYOUTS.items()
        )
    }


def get_path(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (works on torch modules and nnsight envoys)."""
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def detect(hf_model: torch.nn.Module) -> Arch:
    """The architecture description of a loaded Hugging Face causal LM."""
    config = hf_model.config
    model_type = getattr(config, "model_type", "?")
    if model_type not in _LAYOUTS:
        raise ModelLoadError(
            f"Unsupported architecture '{model_type}'. Supported model types: " + ", ".join(SUPPORTED_MODEL_TYPES)
        )
    family, blocks, out_proj, norm, unembed, conv1d = _LAYOUTS[model_type]
    d_model = config.hidden_size
    n_heads = config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or d_model // n_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    proj = get_path(get_path(hf_model, blocks)[0], out_proj)
    return Arch(
        family=family,
        n_layers=len(get_path(hf_model, blocks)),
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_model=d_model,
        d_head=d_head,
        d_vocab=get_path(hf_model, unembed).weight.shape[0],
        has_out_proj_bias=getattr(proj, "bias", None) is not None,
        blocks_path=blocks,
        out_proj_path=out_proj,
        norm_path=norm,
        unembed_path=unembed,
        out_proj_is_conv1d=conv1d,
        block_returns_tuple=family == "gptj",
    )
