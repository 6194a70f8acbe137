"""Batched forward passes through nnsight: encoding prompts, running them in memory-bounded
chunks, and reading last-token activations (logits, block outputs, per-head outputs). The
patching engine built on them is :mod:`core.patching`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from nnsight.modeling.processing import positions

from core import limits
from core.errors import UserInputError
from core.models import LoadedModel

Progress = Callable[[float, str], None]  # (fraction done, message)

# bytes of key/value cache one batched pass may hold; bounds the fast path's memory
CACHE_BYTES = 768 * 1024 * 1024


def no_progress(fraction: float, message: str) -> None:
    """The default progress callback: reports nothing."""
    return None


@dataclass(frozen=True)
class Encoded:
    input_ids: torch.Tensor  # [batch, pos], left-padded
    attention_mask: torch.Tensor  # [batch, pos]
    position_ids: torch.Tensor  # [batch, pos], counted from each row's first real token

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: torch.Tensor | slice) -> Encoded:
        """A sub-batch, trimmed of columns that are padding in every row."""
        ids, mask, pos = self.input_ids[index], self.attention_mask[index], self.position_ids[index]
        keep = int(mask.sum(1).max())
        return Encoded(ids[:, -keep:], mask[:, -keep:], pos[:, -keep:])

    def as_inputs(self) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }


def encode(lm: LoadedModel, prompts: Sequence[str]) -> Encoded:
    """Tokenize with left padding, as nnsight does; positions skip the padding."""
    if not prompts:
        raise UserInputError("No prompts to run.")
    enc = lm.tokenizer(list(prompts), return_tensors="pt", padding=True)
    lengths = enc["attention_mask"].sum(1)
    if int(lengths.max()) > limits.MAX_PROMPT_TOKENS:
        raise UserInputError(
            f"A prompt has {int(lengths.max())} tokens; the limit is {limits.MAX_PROMPT_TOKENS}. "
            "Use fewer shots or shorter examples."
        )
    if int(lengths.min()) < 1:
        raise UserInputError("A prompt is empty after tokenization.")
    mask = enc["attention_mask"]
    device = lm.device
    return Encoded(enc["input_ids"].to(device), mask.to(device), positions(mask).to(device))


def first_token_ids(lm: LoadedModel, texts: Sequence[str]) -> torch.Tensor:
    """The first token of each text (targets carry their leading space): ``[batch]``."""
    ids = []
    for text in texts:
        toks = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not toks:
            raise UserInputError(f"The answer {text!r} has no tokens.")
        ids.append(toks[0])
    return torch.tensor(ids, dtype=torch.long)


def forward_kwargs(lm: LoadedModel) -> dict:
    """Ask for last-position logits only where the model supports it (saves memory)."""
    params = inspect.signature(lm.hf.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


@dataclass
class Forward:
    logits: torch.Tensor  # [batch, d_vocab] at the last position
    resid: torch.Tensor | None  # [n_layers, batch, d_model]: each block's output at the last position
    heads: torch.Tensor | None  # [n_layers, batch, n_heads * d_head]: out-projection input, last position


def prompt_slices(n: int, size: int) -> list[slice]:
    """``n`` prompts in consecutive chunks of at most ``size``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _kv_bytes_per_token_layer(lm: LoadedModel) -> int:
    arch = lm.arch
    elem = torch.finfo(lm.dtype).bits // 8
    return 2 * arch.n_kv_heads * arch.d_head * elem


def row_budget(lm: LoadedModel, enc: Encoded) -> int:
    """Full-width rows one pass may hold so its cache (or activations) stays within the budget."""
    width = enc.input_ids.shape[1]
    per_prompt = max(1, width * lm.arch.n_layers * _kv_bytes_per_token_layer(lm))
    return max(1, CACHE_BYTES // (4 * per_prompt))


def prompt_chunk_size(lm: LoadedModel, enc: Encoded) -> int:
    """Prompts per chunk so one chunk's cache (or activations) stays within the budget."""
    return min(len(enc), row_budget(lm, enc))


def run_forward(
    lm: LoadedModel,
    enc: Encoded,
    save_resid: bool = False,
    save_heads: bool = False,
    progress: Progress = no_progress,
) -> Forward:
    """One traced pass (in prompt chunks) reading last-token activations."""
    arch = lm.arch
    logits, resid, heads = [], [], []
    chunks = prompt_slices(len(enc), prompt_chunk_size(lm, enc))
    with lm.locked(), torch.no_grad():
        for i, sl in enumerate(chunks):
            sub = enc.rows(sl)
            saved_resid: list = []
            saved_heads: list = []
            with lm.trace(**sub.as_inputs(), **forward_kwargs(lm)):
                for layer in range(arch.n_layers):
                    if save_heads:
                        z = arch.out_proj(lm.nn, layer).input[:, -1]
                        saved_heads.append(z.save())
                    if save_resid:
                        h = arch.block_output(lm.nn, layer)[:, -1]
                        saved_resid.append(h.save())
                out = arch.unembed(lm.nn).output[:, -1].save()
            logits.append(out.float().cpu())
            if save_resid:
                resid.append(torch.stack([h.float().cpu() for h in saved_resid]))
            if save_heads:
                heads.append(torch.stack([z.float().cpu() for z in saved_heads]))
            progress((i + 1) / len(chunks), f"forward pass {i + 1}/{len(chunks)}")
    return Forward(
        logits=torch.cat(logits),
        resid=torch.cat(resid, dim=1) if save_resid else None,
        heads=torch.cat(heads, dim=1) if save_heads else None,
    )


def top_tokens(lm: LoadedModel, logits: torch.Tensor, k: int = 10) -> list[list[tuple[str, int, float]]]:
    """Top-k (token text, id, probability) per row of ``logits [batch, d_vocab]``."""
    probs = torch.softmax(logits.float(), dim=-1)
    values, ids = probs.topk(k, dim=-1)
    return [[(lm.tokenizer.decode([int(i)]), int(i), float(v)) for v, i in zip(vr, ir)] for vr, ir in zip(values, ids)]
