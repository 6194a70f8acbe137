"""Activation addition from a list of additions, as the ARENA course writes it.

Turner et al. (2023) steer with ``+ c * h("Love ") - c * h("Hate")``: each addition is a short
prompt, a layer and a signed coefficient. Every prompt is tokenized (optionally after the
beginning-of-sequence token), the shorter ones padded at the END with space tokens (as
:func:`core.steering_vectors.actadd_vectors` aligns its two prompts), all run in one forward,
and at each layer the block outputs of that layer's additions are summed with their
coefficients: ``values[l] [n_pos_l, d_model] = sum_i c_i * h_i``, ``n_pos_l`` the longest of
that layer's prompts (causal attention: padding after a position never changes it, so one
forward padded to the longest prompt of all gives every layer's sum exactly). Each sum is added
to a new prompt's first positions on the first step of generation, through
:func:`core.steer.generate_pair` in its ``"prompt"`` mode with coefficient 1 (the coefficients
are inside the sums; further layers go in its ``more``). So a list of ``+c "Love"`` and
``-c "Hate"`` at one layer is the Steering vectors page's Love - Hate vector at coefficient
``c``, and all coefficients 0 leave the text unsteered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core import checks
from core.errors import UserInputError
from core.models import LoadedModel
from core.steering_vectors import aligned_block_outputs

MAX_ADDITIONS = 8


@dataclass(frozen=True)
class Addition:
    """One term of the sum: ``coeff * h(prompt)`` at block ``layer``."""

    prompt: str
    layer: int
    coeff: float


@dataclass(frozen=True)
class AdditionSum:
    """The summed additions: ``by_layer[l] [n_pos_l, d_model]`` (layers in increasing order),
    and each addition's tokens after alignment with its layer's prompts (``tokens[i][pos]``)."""

    by_layer: dict[int, torch.Tensor]
    tokens: list[list[str]]

    @property
    def layer(self) -> int:
        """The first layer (core.steer.generate_pair's ``layer``)."""
        return min(self.by_layer)

    @property
    def values(self) -> torch.Tensor:
        """``[n_pos, d_model]`` at :attr:`layer` (core.steer.generate_pair's ``vector``)."""
        return self.by_layer[self.layer]

    @property
    def more(self) -> list[tuple[int, torch.Tensor]]:
        """The other layers' sums (core.steer.generate_pair's ``more``)."""
        return [(l, v) for l, v in sorted(self.by_layer.items()) if l != self.layer]


def check_additions(lm: LoadedModel, additions: Sequence[Addition]) -> list[Addition]:
    """Each addition checked; one message for the first mistake."""
    if not additions:
        raise UserInputError("Add at least one prompt to the list of additions.")
    if len(additions) > MAX_ADDITIONS:
        raise UserInputError(f"At most {MAX_ADDITIONS} additions at once; you gave {len(additions)}.")
    out = [
        Addition(
            checks.check_text(a.prompt, f"prompt of addition {i + 1}"),
            checks.check_layer(a.layer, lm.arch.n_layers),
            checks.check_coeff(a.coeff),
        )
        for i, a in enumerate(additions)
    ]
    return out


_LINE = re.compile(r'^\s*([+-]?\s*\d+(?:\.\d*)?|[+-]?\s*\.\d+)\s*"(.*)"\s*(?:@\s*(\d+))?\s*$')


def parse_additions(text: str, layer: int) -> list[Addition]:
    """One addition per line, ``coefficient "prompt"`` (``+5 "Love "``, ``-5 "Hate"``), at
    ``layer`` unless the line ends with ``@ layer`` (``+2 "Calm" @10``); the quotes keep a
    prompt's spaces. Blank lines are skipped."""
    out = []
    for i, line in enumerate(str(text).splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise UserInputError(
                f'Line {i} of the additions is not `coefficient "prompt"` or `coefficient "prompt" @layer` '
                f'(e.g. +5 "Love " or +5 "Love " @6): {line.strip()[:60]!r}'
            )
        at = layer if m.group(3) is None else int(m.group(3))
        out.append(Addition(m.group(2), at, float(m.group(1).replace(" ", ""))))
    return out


def with_bos(lm: LoadedModel, text: str) -> str:
    """``text`` after the tokenizer's beginning-of-sequence token (unchanged if it has none)."""
    bos = lm.tokenizer.bos_token
    return text if not bos or text.startswith(bos) else bos + text


def addition_sum(lm: LoadedModel, additions: Sequence[Addition], prepend_bos: bool = False) -> AdditionSum:
    """``sum_i c_i * h_i`` at each of the additions' layers, from one forward (see the module
    docstring)."""
    additions = check_additions(lm, additions)
    layers = sorted({a.layer for a in additions})
    ids = []
    for a in additions:
        row = lm.tokenizer(a.prompt)["input_ids"]
        bos = lm.tokenizer.bos_token_id
        if prepend_bos and bos is not None and (not row or row[0] != bos):
            row = [int(bos)] + row
        if not row:
            raise UserInputError(f"The prompt {a.prompt!r} is empty after tokenization.")
        ids.append(row)
    padded, saved = aligned_block_outputs(lm, ids, layers)  # {layer: [n_additions, pos, d_model]}
    by_layer: dict[int, torch.Tensor] = {}
    width_of: dict[int, int] = {}
    for layer in layers:
        rows = [i for i, a in enumerate(additions) if a.layer == layer]
        width_of[layer] = max(len(ids[i]) for i in rows)  # this layer's longest prompt
        coeffs = torch.tensor([additions[i].coeff for i in rows])  # [n_rows]
        h_rows = saved[layer][rows, : width_of[layer]]  # [n_rows, n_pos, d_model]
        by_layer[layer] = (coeffs[:, None, None] * h_rows).sum(0)  # [n_pos, d_model]
    tokens = [[lm.tokenizer.decode([t]) for t in row[: width_of[a.layer]]] for row, a in zip(padded, additions)]
    return AdditionSum(by_layer=by_layer, tokens=tokens)
